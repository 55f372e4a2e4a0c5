//! The session policy, with no HTTP in sight: who may log in, when a token may be refreshed,
//! what a replayed token means. Handlers call it; it calls the store.

mod access;
mod admin;
pub mod apps;
mod error;
mod import;
mod introspect;
pub mod keys;
mod login;
pub mod purge;
mod refresh;
mod system;
pub mod token;
mod users;

use std::sync::Arc;

use secrecy::SecretString;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use uuid::Uuid;

pub use access::{LogoutBy, LogoutScope};
pub use admin::{AdminGrant, SessionPage};
pub use apps::{AppRequest, LaunchpadApp, RoleRequest};
pub use error::{Reason, SessionCap, SessionError};
pub use import::{ImportReport, ImportRow, LoginDisabled, Refusal};
pub use introspect::Introspection;
use keys::KeyRing;
pub use refresh::RefreshBy;
pub use system::AccessRefusal;
use token::Claims;
pub use users::ProfileRequest;

use crate::clock::{Clock, Seconds, UnixTime};
use crate::config::{Config, SessionLimitPolicy};
use crate::password::PasswordHasherPool;
use crate::store::{
    App, Cap, Liveness, NewSession, SessionLimit, SessionWithUser, Store, StoreError, User,
};

/// Longest accepted values, so nothing unbounded reaches the database.
const MAX_FIELD_CHARS: usize = 255;
const MAX_PASSWORD_CHARS: usize = 1024;

/// A login attempt, as the handler parsed it.
#[derive(Debug)]
pub struct LoginRequest {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub remember_me: bool,
    pub client: ClientInfo,
    /// A refresh credential besides the token (`X-Tenure-Refresh`); none for DreamFactory's
    /// flow.
    pub refresh_mode: Option<RefreshMode>,
    /// The app whose active API key the request sent ([`SessionService::resolve_api_key`]):
    /// the session remembers it and takes its role from it.
    pub app: Option<App>,
}

/// How a session's refresh credential travels, chosen at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMode {
    /// In the answer's `refresh_token` (native apps).
    Body,
    /// In an HttpOnly cookie scoped to the session endpoint (browser apps).
    Cookie,
}

impl RefreshMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Body => "body",
            Self::Cookie => "cookie",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "body" => Some(Self::Body),
            "cookie" => Some(Self::Cookie),
            _ => None,
        }
    }
}

/// A session's refresh credential, as issued with a login or a refresh.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub credential: String,
    pub mode: RefreshMode,
    /// Seconds the credential can still refresh (the cookie's `Max-Age`): the rest of the
    /// refresh window, or 400 days (browsers' cap, renewed on each rotation) for a forever
    /// session.
    pub max_age: i64,
}

/// Where forever sessions' cookies are capped: browsers keep no cookie longer.
const COOKIE_MAX_AGE_CAP: i64 = 400 * 24 * 3600;

/// Where a login came from, kept on the session for the user's device list.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub device: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// A user to create (open registration or the CLI).
#[derive(Debug)]
pub struct RegisterRequest {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// When given, must equal `password`.
    pub password_confirmation: Option<SecretString>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub is_sys_admin: bool,
}

/// A session with the token that stands for it.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub token: String,
    pub claims: Claims,
    pub view: SessionWithUser,
    /// The session's refresh credential, on a login or refresh of a session that has one.
    pub refresh: Option<RefreshGrant>,
}

/// Which family of endpoints is asking: the admin ones accept only system administrators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    User,
    Admin,
}

pub struct SessionService {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasherPool,
    /// The rules: lifetimes, limits, what login and registration allow.
    config: Arc<Config>,
}
impl SessionService {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
        hasher: PasswordHasherPool,
        config: Arc<Config>,
    ) -> Self {
        Self {
            store,
            keys,
            clock,
            hasher,
            config,
        }
    }

    /// The configuration the rules come from.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    async fn start_session(
        &self,
        user: &User,
        forever: bool,
        client: ClientInfo,
        refresh_mode: Option<RefreshMode>,
        upgraded_hash: Option<String>,
        app: Option<&App>,
    ) -> Result<SessionWithUser, SessionError> {
        let now = self.clock.now();
        let new = NewSession {
            id: Uuid::new_v4(),
            user_id: user.id,
            verified_hash: Some(user.password_hash.clone()),
            upgraded_hash,
            forever,
            created_at: now,
            refresh_until: (!forever)
                .then(|| now.saturating_add(self.config.jwt_refresh_ttl.seconds())),
            device: client
                .device
                .or_else(|| client.user_agent.as_deref().map(device_name))
                .map(|d| truncate(&d, MAX_FIELD_CHARS)),
            user_agent: client.user_agent.map(|d| truncate(&d, MAX_FIELD_CHARS)),
            ip: client.ip,
            refresh_mode: refresh_mode.map(|m| m.as_str().to_owned()),
            app_id: app.map(|a| a.id),
        };
        let cap = |max: Option<u32>, kind: SessionCap| {
            max.map(|max| Cap {
                max,
                evict_reason: kind.reason().as_str(),
            })
        };
        let limit = SessionLimit {
            max: self.config.max_sessions_per_user,
            reject: self.config.session_limit_policy == SessionLimitPolicy::Reject,
            evict_reason: SessionCap::PerUser.reason().as_str(),
            per_ip: cap(self.config.max_sessions_per_ip, SessionCap::PerIp),
            total: cap(self.config.max_sessions, SessionCap::Total),
        };
        let refused = |kind: SessionCap, max: Option<u32>| {
            tracing::info!(limit = kind.var(), "login refused at a session cap");
            Err(SessionError::SessionLimit(kind, max.unwrap_or_default()))
        };
        match self
            .store
            .create_session(&new, &limit, &self.liveness(now))
            .await
        {
            Ok(view) => Ok(view),
            Err(StoreError::LimitReached) => refused(SessionCap::PerUser, Some(limit.max)),
            Err(StoreError::IpLimitReached) => {
                refused(SessionCap::PerIp, self.config.max_sessions_per_ip)
            }
            Err(StoreError::TotalLimitReached) => {
                refused(SessionCap::Total, self.config.max_sessions)
            }
            Err(StoreError::UserChanged) => Err(SessionError::InvalidCredentials),
            Err(StoreError::AppInactive) => Err(SessionError::AppInactive),
            Err(StoreError::RoleInactive) => Err(SessionError::RoleInactive),
            Err(other) => Err(other.into()),
        }
    }

    /// The token for the session's current `gen`.
    fn issue(&self, view: SessionWithUser) -> Result<Authenticated, SessionError> {
        let claims = Claims::for_session(&view.session, self.config.jwt_ttl.seconds());
        let token = self.keys.sign(&claims)?;
        let refresh = self.refresh_grant(&view);
        Ok(Authenticated {
            token,
            claims,
            view,
            refresh,
        })
    }

    /// The refresh credential of the session's current `gen`, when it has a refresh mode.
    fn refresh_grant(&self, view: &SessionWithUser) -> Option<RefreshGrant> {
        let session = &view.session;
        let mode = RefreshMode::parse(session.refresh_mode.as_deref()?)?;
        let now = self.clock.now();
        Some(RefreshGrant {
            credential: self.keys.refresh_credential(session.id, session.gen),
            mode,
            max_age: session.refresh_until.map_or(COOKIE_MAX_AGE_CAP, |until| {
                (until - now).clamp(0, COOKIE_MAX_AGE_CAP)
            }),
        })
    }

    /// Which sessions are live at `now`.
    fn liveness(&self, now: UnixTime) -> Liveness {
        Liveness {
            now,
            idle_cutoff: self.idle_cutoff(now),
        }
    }

    /// The grace rule of DESIGN §2, the one place it is written: generation `gen` is the one
    /// the session's last rotation replaced, within `REFRESH_REUSE_GRACE` of it. A refresh with
    /// it gets the identical successor; a logout with it ends the session.
    fn within_grace(&self, gen: i64, session: &crate::store::Session, now: UnixTime) -> bool {
        gen + 1 == session.gen
            && !self.config.refresh_reuse_grace.is_zero()
            && now - session.rotated_at <= self.config.refresh_reuse_grace.seconds()
    }

    /// Sessions last seen before this are idle-expired (when idle expiry is on).
    fn idle_cutoff(&self, now: UnixTime) -> Option<UnixTime> {
        self.config.session_idle_ttl.map(|ttl| now - ttl.seconds())
    }

    /// `last_seen_at` is written at most this often: `LAST_SEEN_RESOLUTION`, but at least
    /// twice per idle period, so idle expiry sees use whatever the resolution says.
    fn last_seen_resolution(&self) -> i64 {
        let resolution = self.config.last_seen_resolution.seconds();
        match self.config.session_idle_ttl {
            Some(idle) => resolution.min(idle.seconds() / 2),
            None => resolution,
        }
    }
}

/// The first 8 characters of a session id: enough to correlate logs, useless as a credential.
pub fn short(id: Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

/// The one form in which an email is stored and compared: everything that stores, looks up or
/// filters by email (login, registration, `tenure user create`, the admin listing, the login
/// throttle's account key) goes through here, so equal forms mean the same user.
///
/// NFKC first, so compatibility variants become their plain letters (fullwidth `ｊａｎｅ`, the
/// Kelvin sign U+212A, ligatures, a fullwidth `＠`) and a letter followed by a combining accent
/// equals the precomposed letter; then surrounding whitespace goes; then each character is
/// lower-cased on its own (no context: `Σ` is always `σ`), and the Greek final sigma `ς` is
/// folded to `σ` as Unicode case folding does. Look-alikes from other scripts (Cyrillic `а`,
/// Greek `ο`, dotless `ı`) are different letters and stay different. The result is in NFKC and
/// a fixed point: normalising it again changes nothing.
pub fn normalize_email(email: &str) -> String {
    fold_identifier(email)
}

/// Usernames (`DF_LOGIN_ATTRIBUTE=username`) are folded as emails are.
fn normalize_username(username: &str) -> String {
    fold_identifier(username)
}

fn fold_identifier(value: &str) -> String {
    let compatible: String = value.nfkc().collect();
    compatible
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ς' { 'σ' } else { c })
        // Lower-casing can make a pair composable (`Ϊ` + U+0301 becomes `ϊ` + U+0301, which
        // is `ΐ`): normalise once more, so the result is a fixed point.
        .nfkc()
        .collect()
}

/// What registration says about an identifier holding a character [`is_forbidden`] refuses.
const FORBIDDEN_CHARS_RULE: &str =
    "may not contain invisible, control, private-use or unassigned characters";

/// Characters no email or username may hold, because they make one address look like another
/// or are not stable under normalisation: controls (Cc, NUL included), invisible format
/// characters (Cf: zero-width space and joiners, the byte-order mark, bidirectional overrides,
/// the soft hyphen), private-use (Co) and unassigned (Cn) code points.
fn is_forbidden(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::Surrogate
    )
}

/// Whether `value` holds a character [`is_forbidden`] refuses.
fn has_forbidden_chars(value: &str) -> bool {
    value.chars().any(is_forbidden)
}

/// A plausible address (after [`normalize_email`]): one `@`, a non-empty local part, a domain of
/// non-empty dot-separated labels (so no trailing dot), no whitespace, at most 255 characters.
fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.chars().count() <= MAX_FIELD_CHARS
        && !local.is_empty()
        && !domain.contains('@')
        && domain.split('.').all(|label| !label.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// NUL cannot be stored in a PostgreSQL text column; a value holding one is refused.
fn has_nul(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.contains('\0'))
}

/// A readable device name from a User-Agent: "Firefox on Linux", "Safari on iPhone", or the
/// User-Agent itself when it names nothing known (an app's own agent string, curl).
pub fn device_name(user_agent: &str) -> String {
    match woothee::parser::Parser::new().parse(user_agent) {
        Some(ua) if ua.name != woothee::woothee::VALUE_UNKNOWN => {
            if ua.os == woothee::woothee::VALUE_UNKNOWN {
                ua.name.to_owned()
            } else {
                format!("{} on {}", ua.name, ua.os)
            }
        }
        _ => user_agent.to_owned(),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_forms_case_and_composition_fold_to_one_email() {
        for variant in [
            "jane@example.com",
            " Jane@Example.COM\n",
            "ｊａｎｅ@example.com",
            "ＪＡＮＥ＠ＥＸＡＭＰＬＥ．ＣＯＭ",
            "jane@example.com\u{3000}",
        ] {
            assert_eq!(normalize_email(variant), "jane@example.com", "{variant:?}");
        }
        // The Kelvin sign is a compatibility form of K.
        assert_eq!(
            normalize_email("\u{212A}ATE@example.com"),
            "kate@example.com"
        );
        // Decomposed and precomposed accents are one address.
        assert_eq!(
            normalize_email("jane\u{301}@example.com"),
            normalize_email("jan\u{e9}@example.com")
        );
        assert_eq!(
            normalize_email("JAN\u{c9}@example.com"),
            "jan\u{e9}@example.com"
        );
        // Sigma folds the same however it is written.
        for sigma in ["ΑΣ@example.com", "ας@example.com", "ασ@example.com"] {
            assert_eq!(normalize_email(sigma), "ασ@example.com", "{sigma}");
        }
        assert_eq!(normalize_username(" ＪＡＮＥ "), "jane");
    }

    #[test]
    fn look_alikes_from_other_scripts_stay_different() {
        for other in [
            "j\u{430}ne@example.com", // Cyrillic а
            "jan\u{3b5}@example.com", // Greek ε
            "j\u{131}ll@example.com", // dotless ı
            "J\u{130}LL@example.com", // dotted İ lower-cases to i + U+0307
            "jane@example.com.",
        ] {
            let folded = normalize_email(other);
            assert_ne!(folded, "jane@example.com", "{other:?}");
            assert_ne!(folded, "jill@example.com", "{other:?}");
        }
    }

    #[test]
    fn normalising_twice_changes_nothing_and_keeps_forbidden_characters_visible() {
        // Every scalar value, inside a word, before a combining mark, and after a capital: the
        // folded form is a fixed point. Inside a word (where trimming cannot reach it), the
        // folded form holds a forbidden character exactly when the input did: normalisation
        // can neither hide one nor introduce one.
        for c in (0..=0x10_FFFF_u32).filter_map(char::from_u32) {
            for input in [format!("a{c}b"), format!("{c}\u{301}"), format!("A{c}")] {
                let once = normalize_email(&input);
                assert_eq!(normalize_email(&once), once, "U+{:04X}", c as u32);
            }
            assert_eq!(
                has_forbidden_chars(&normalize_email(&format!("a{c}b"))),
                is_forbidden(c),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn invisible_and_control_characters_are_forbidden() {
        for c in [
            '\u{0}',
            '\u{7}',
            '\u{200b}',
            '\u{200d}',
            '\u{feff}',
            '\u{202e}',
            '\u{ad}',
            '\u{e000}',
            '\u{10ffff}',
        ] {
            assert!(is_forbidden(c), "U+{:04X}", c as u32);
        }
        for c in [
            'a', 'é', '\u{301}', '\u{430}', '\u{131}', '@', '.', '+', '-',
        ] {
            assert!(!is_forbidden(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn a_domain_needs_non_empty_labels() {
        for good in [
            "a@b.c",
            "jane@example.com",
            "jane@localhost",
            "jan\u{e9}@exämple.com",
        ] {
            assert!(looks_like_email(good), "{good}");
        }
        for bad in [
            "jane@example.com.",
            "jane@.example.com",
            "jane@example..com",
            "jane@",
            "@example.com",
            "a@b@c",
            "ja ne@example.com",
        ] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }
}
