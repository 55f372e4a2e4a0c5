//! The session policy, with no HTTP in sight: who may log in, when a token may be refreshed,
//! what a replayed token means. Handlers call it; it calls the store.

mod error;
pub mod token;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

pub use error::{Reason, SessionError};
use token::{Claims, TokenKeys};

use crate::clock::{Clock, UnixTime};
use crate::config::{Config, LoginAttribute};
use crate::password::PasswordHasherPool;
use crate::store::{NewSession, NewUser, Rotation, SessionWithUser, Store, StoreError, User};

/// How many times a refresh retries when the row changed between its rotation attempt and
/// the read that explains the failure (another replica rotated, then the state moved on).
const ROTATION_ATTEMPTS: usize = 3;

/// Longest accepted values, so nothing unbounded reaches the database.
const MAX_FIELD_CHARS: usize = 255;
const MAX_PASSWORD_CHARS: usize = 1024;

/// The rules, in seconds, taken from [`Config`] once.
#[derive(Debug, Clone)]
pub struct Policy {
    pub jwt_ttl: i64,
    pub refresh_ttl: i64,
    pub leeway: i64,
    pub allow_forever_sessions: bool,
    pub allow_open_registration: bool,
    pub login_attribute: LoginAttribute,
    pub idle_ttl: Option<i64>,
    pub reuse_grace: i64,
    pub password_min_length: usize,
}

impl Policy {
    pub fn from_config(config: &Config) -> Self {
        let secs = |d: std::time::Duration| d.as_secs() as i64;
        Self {
            jwt_ttl: secs(config.jwt_ttl),
            refresh_ttl: secs(config.jwt_refresh_ttl),
            leeway: secs(config.jwt_leeway),
            allow_forever_sessions: config.allow_forever_sessions,
            allow_open_registration: config.allow_open_registration,
            login_attribute: config.login_attribute,
            idle_ttl: config.session_idle_ttl.map(secs),
            reuse_grace: secs(config.refresh_reuse_grace),
            password_min_length: config.password_min_length,
        }
    }
}

/// A login attempt, as the handler parsed it.
#[derive(Debug)]
pub struct LoginRequest {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub remember_me: bool,
    pub client: ClientInfo,
}

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
}

/// Which family of endpoints is asking: the admin ones accept only system administrators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    User,
    Admin,
}

pub struct SessionService {
    store: Arc<dyn Store>,
    keys: TokenKeys,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasherPool,
    policy: Policy,
    reuse_detected: AtomicU64,
}

impl SessionService {
    pub fn new(
        store: Arc<dyn Store>,
        keys: TokenKeys,
        clock: Arc<dyn Clock>,
        hasher: PasswordHasherPool,
        policy: Policy,
    ) -> Self {
        Self {
            store,
            keys,
            clock,
            hasher,
            policy,
            reuse_detected: AtomicU64::new(0),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// How many replayed tokens this process has caught.
    pub fn reuse_detected(&self) -> u64 {
        self.reuse_detected.load(Ordering::Relaxed)
    }

    /// Logs in with the configured login attribute and a password.
    pub async fn login(
        &self,
        request: LoginRequest,
        audience: Audience,
    ) -> Result<Authenticated, SessionError> {
        let identifier = match self.policy.login_attribute {
            LoginAttribute::Email => request.email.as_deref().map(normalize_email),
            LoginAttribute::Username => request.username.as_deref().map(normalize_username),
        }
        .filter(|v| !v.is_empty())
        .ok_or(SessionError::MissingField(
            self.policy.login_attribute.as_str(),
        ))?;
        let password = request
            .password
            .filter(|p| !p.expose_secret().is_empty())
            .ok_or(SessionError::MissingField("password"))?;

        // Over-long identifiers, and NUL (which no database text column can hold), cannot name
        // a user: they get the unknown-user answer.
        let user = if identifier.chars().count() > MAX_FIELD_CHARS || identifier.contains('\0') {
            None
        } else {
            match self.policy.login_attribute {
                LoginAttribute::Email => self.store.user_by_email(&identifier).await?,
                LoginAttribute::Username => self.store.user_by_username(&identifier).await?,
            }
        };
        // Unknown users verify against a dummy hash: the same work, the same answer.
        let matched = self
            .hasher
            .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let user = match user {
            Some(user) if matched && user.is_active => user,
            _ => {
                tracing::info!(outcome = "invalid_credentials", "login failed");
                return Err(SessionError::InvalidCredentials);
            }
        };
        if audience == Audience::Admin && !user.is_sys_admin {
            return Err(SessionError::InvalidCredentials);
        }

        let forever = request.remember_me && self.policy.allow_forever_sessions;
        let view = self.start_session(&user, forever, request.client).await?;
        tracing::info!(
            user_id = user.id,
            session = %short(view.session.id),
            forever,
            "login"
        );
        self.issue(view)
    }

    /// The caller's current session, for GET. Expired and terminated tokens are refused.
    pub async fn current(
        &self,
        token: Option<&str>,
        audience: Audience,
    ) -> Result<Authenticated, SessionError> {
        let token = token.ok_or(SessionError::NoSession)?;
        let (claims, view) = self.authenticate(token, false).await?;
        if audience == Audience::Admin && !view.user.is_sys_admin {
            return Err(SessionError::NotAdmin);
        }
        Ok(Authenticated {
            token: token.to_owned(),
            claims,
            view,
        })
    }

    /// The caller if a token was sent, for endpoints open to everyone that say more to
    /// authenticated callers. A token that was sent must be good.
    pub async fn optional_caller(
        &self,
        token: Option<&str>,
    ) -> Result<Option<Authenticated>, SessionError> {
        match token {
            None => Ok(None),
            some => self.current(some, Audience::User).await.map(Some),
        }
    }

    /// Refreshes: the (possibly expired) token of a live session gets its successor.
    pub async fn refresh(
        &self,
        token: Option<&str>,
        audience: Audience,
    ) -> Result<Authenticated, SessionError> {
        let token = token.ok_or(SessionError::refresh(
            Reason::MissingToken,
            "No session token was supplied.",
        ))?;
        let now = self.clock.now();
        let claims = self
            .keys
            .verify(token, now, self.policy.leeway)
            .map_err(|defect| SessionError::RefreshRefused {
                reason: Reason::InvalidToken,
                detail: defect.as_str(),
            })?;
        let rotation = Rotation {
            session_id: claims.sid,
            expected_gen: claims.gen,
            now,
            idle_cutoff: self.policy.idle_ttl.map(|ttl| now - ttl),
            require_admin: audience == Audience::Admin,
        };

        for _ in 0..ROTATION_ATTEMPTS {
            if let Some(view) = self.store.rotate_session(&rotation).await? {
                tracing::debug!(session = %short(view.session.id), gen = view.session.gen, "refresh");
                return self.issue(view);
            }
            // The rotation's conditions failed: read the row once to tell the caller why.
            let Some(view) = self.store.session_with_user(claims.sid).await? else {
                return Err(SessionError::refresh(
                    Reason::Revoked,
                    "The token has been blacklisted",
                ));
            };
            match self.explain_failed_rotation(&claims, &view, now, audience) {
                Verdict::Retry => continue,
                Verdict::Grace => {
                    tracing::debug!(session = %short(view.session.id), "refresh within grace");
                    return self.issue(view);
                }
                Verdict::Reuse => return Err(self.revoke_for_reuse(&claims, now).await?),
                Verdict::Refuse(err) => return Err(err),
            }
        }
        Err(SessionError::Unavailable(
            "the session kept changing during refresh".into(),
        ))
    }

    /// Logs out: the session ends at once. An expired token of a live session is accepted.
    /// Without a token there is nothing to end, and the answer is success (as DreamFactory).
    pub async fn logout(
        &self,
        token: Option<&str>,
        audience: Audience,
    ) -> Result<(), SessionError> {
        let Some(token) = token else {
            return Ok(());
        };
        let (claims, view) = self.authenticate(token, true).await?;
        if audience == Audience::Admin && !view.user.is_sys_admin {
            return Err(SessionError::NotAdmin);
        }
        let now = self.clock.now();
        if !self
            .store
            .revoke_session(claims.sid, Some(claims.gen), now, "logout")
            .await?
        {
            // Rotated or revoked between the read and the write.
            return Err(SessionError::Terminated(Reason::Rotated));
        }
        tracing::info!(user_id = claims.user_id, session = %short(claims.sid), "logout");
        Ok(())
    }

    /// Creates a user (open registration and the CLI).
    pub async fn create_user(&self, request: RegisterRequest) -> Result<User, SessionError> {
        let mut errors: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        let email = request
            .email
            .as_deref()
            .map(normalize_email)
            .unwrap_or_default();
        if email.is_empty() {
            errors
                .entry("email")
                .or_default()
                .push("The email field is required.".into());
        } else if !looks_like_email(&email) {
            errors
                .entry("email")
                .or_default()
                .push("The email must be a valid email address.".into());
        }
        let username = request
            .username
            .as_deref()
            .map(normalize_username)
            .filter(|u| !u.is_empty());
        if username
            .as_deref()
            .is_some_and(|u| u.chars().count() > MAX_FIELD_CHARS || u.contains(char::is_whitespace))
        {
            errors
                .entry("username")
                .or_default()
                .push("The username may not contain spaces or exceed 255 characters.".into());
        }
        if self.policy.login_attribute == LoginAttribute::Username && username.is_none() {
            errors
                .entry("username")
                .or_default()
                .push("The username field is required.".into());
        }
        let password_len = request
            .password
            .as_ref()
            .map_or(0, |p| p.expose_secret().chars().count());
        if password_len < self.policy.password_min_length {
            errors.entry("password").or_default().push(format!(
                "The password must be at least {} characters.",
                self.policy.password_min_length
            ));
        } else if password_len > MAX_PASSWORD_CHARS {
            errors.entry("password").or_default().push(format!(
                "The password may not be greater than {MAX_PASSWORD_CHARS} characters."
            ));
        }
        if let (Some(p), Some(c)) = (&request.password, &request.password_confirmation) {
            if p.expose_secret() != c.expose_secret() {
                errors
                    .entry("password")
                    .or_default()
                    .push("The password confirmation does not match.".into());
            }
        }
        let clean = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let first_name = clean(request.first_name);
        let last_name = clean(request.last_name);
        let name = clean(request.name)
            .or_else(|| {
                let joined = [first_name.as_deref(), last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                (!joined.is_empty()).then_some(joined)
            })
            .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
        for (field, value) in [
            ("name", Some(&name)),
            ("first_name", first_name.as_ref()),
            ("last_name", last_name.as_ref()),
        ] {
            if value.is_some_and(|v| v.chars().count() > MAX_FIELD_CHARS) {
                errors.entry(field).or_default().push(format!(
                    "The {field} may not be greater than 255 characters."
                ));
            }
        }
        for (field, value) in [
            ("username", username.as_deref()),
            ("name", Some(name.as_str())),
            ("first_name", first_name.as_deref()),
            ("last_name", last_name.as_deref()),
        ] {
            if has_nul(value) {
                errors
                    .entry(field)
                    .or_default()
                    .push(format!("The {field} may not contain NUL characters."));
            }
        }
        let Some(password) = request.password.filter(|_| errors.is_empty()) else {
            return Err(SessionError::Validation(errors));
        };

        let password_hash = self.hasher.hash(password).await?;
        let new = NewUser {
            email,
            username,
            password_hash,
            name,
            first_name,
            last_name,
            is_sys_admin: request.is_sys_admin,
            created_at: self.clock.now(),
        };
        match self.store.create_user(&new).await {
            Ok(user) => {
                tracing::info!(user_id = user.id, admin = user.is_sys_admin, "user created");
                Ok(user)
            }
            Err(StoreError::Conflict(constraint)) => {
                let field = if constraint == "users_username_key" {
                    "username"
                } else {
                    "email"
                };
                Err(SessionError::Validation(BTreeMap::from([(
                    field,
                    vec![format!("The {field} has already been taken.")],
                )])))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Open registration: creates the user and, when asked, an ordinary session.
    pub async fn register(
        &self,
        request: RegisterRequest,
        login: bool,
        client: ClientInfo,
    ) -> Result<Option<Authenticated>, SessionError> {
        if !self.policy.allow_open_registration {
            return Err(SessionError::RegistrationDisabled);
        }
        let user = self
            .create_user(RegisterRequest {
                is_sys_admin: false,
                ..request
            })
            .await?;
        if !login {
            return Ok(None);
        }
        let view = self.start_session(&user, false, client).await?;
        self.issue(view).map(Some)
    }

    /// Checks a token against its session. `allow_expired` is for logout, which may end a
    /// live session with an expired token.
    async fn authenticate(
        &self,
        token: &str,
        allow_expired: bool,
    ) -> Result<(Claims, SessionWithUser), SessionError> {
        let now = self.clock.now();
        let claims = self
            .keys
            .verify(token, now, self.policy.leeway)
            .map_err(SessionError::InvalidToken)?;
        let expired = claims.is_expired(now) && !allow_expired;
        let Some(view) = self.store.session_with_user(claims.sid).await? else {
            // Purged: long expired, or revoked long ago.
            return Err(if expired {
                SessionError::Expired
            } else {
                SessionError::Terminated(Reason::Revoked)
            });
        };
        if view.user.id != claims.user_id {
            return Err(SessionError::InvalidToken(token::TokenDefect::UserMismatch));
        }
        // A terminated session says so even when the token has also expired: the client
        // must log in again, not try a refresh.
        if view.session.revoked_at.is_some() {
            return Err(SessionError::Terminated(Reason::from_revoke_reason(
                view.session.revoke_reason.as_deref(),
            )));
        }
        if view.session.gen != claims.gen {
            return Err(SessionError::Terminated(Reason::Rotated));
        }
        if !view.user.is_active {
            return Err(SessionError::UserInactive);
        }
        if expired {
            return Err(SessionError::Expired);
        }
        Ok((claims, view))
    }

    /// Why the atomic rotation did not happen, read from the row as it is now.
    fn explain_failed_rotation(
        &self,
        claims: &Claims,
        view: &SessionWithUser,
        now: UnixTime,
        audience: Audience,
    ) -> Verdict {
        let (session, user) = (&view.session, &view.user);
        if user.id != claims.user_id {
            return Verdict::Refuse(SessionError::refresh(
                Reason::InvalidToken,
                "User verification failed.",
            ));
        }
        if session.revoked_at.is_some() {
            return Verdict::Refuse(SessionError::refresh(
                Reason::from_revoke_reason(session.revoke_reason.as_deref()),
                "The token has been blacklisted",
            ));
        }
        if !user.is_active {
            return Verdict::Refuse(SessionError::refresh(
                Reason::UserInactive,
                "User is not active.",
            ));
        }
        if audience == Audience::Admin && !user.is_sys_admin {
            return Verdict::Refuse(SessionError::NotAdmin);
        }
        if claims.gen > session.gen {
            return Verdict::Refuse(SessionError::refresh(
                Reason::InvalidToken,
                "The token does not belong to this session.",
            ));
        }
        if claims.gen < session.gen {
            let racer = claims.gen + 1 == session.gen
                && self.policy.reuse_grace > 0
                && now - session.rotated_at <= self.policy.reuse_grace;
            return if racer {
                Verdict::Grace
            } else {
                Verdict::Reuse
            };
        }
        if session.refresh_until.is_some_and(|until| until < now) {
            return Verdict::Refuse(SessionError::refresh(
                Reason::RefreshWindowClosed,
                "Token has expired and can no longer be refreshed",
            ));
        }
        if self
            .policy
            .idle_ttl
            .is_some_and(|ttl| session.last_seen_at < now - ttl)
        {
            return Verdict::Refuse(SessionError::refresh(
                Reason::IdleTimeout,
                "Session has been idle too long and can no longer be refreshed",
            ));
        }
        Verdict::Retry
    }

    /// Two parties hold the session: end it, count it, log it.
    async fn revoke_for_reuse(
        &self,
        claims: &Claims,
        now: UnixTime,
    ) -> Result<SessionError, SessionError> {
        self.store
            .revoke_session(claims.sid, None, now, "token_reuse")
            .await?;
        self.reuse_detected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            user_id = claims.user_id,
            session = %short(claims.sid),
            presented_gen = claims.gen,
            reason = "token_reuse",
            "replaced token presented again: session revoked"
        );
        Ok(SessionError::refresh(
            Reason::TokenReuse,
            "The token has been blacklisted",
        ))
    }

    async fn start_session(
        &self,
        user: &User,
        forever: bool,
        client: ClientInfo,
    ) -> Result<SessionWithUser, SessionError> {
        let now = self.clock.now();
        let new = NewSession {
            id: Uuid::new_v4(),
            user_id: user.id,
            forever,
            created_at: now,
            refresh_until: (!forever).then(|| now.saturating_add(self.policy.refresh_ttl)),
            device: client.device.map(|d| truncate(&d, MAX_FIELD_CHARS)),
            user_agent: client.user_agent.map(|d| truncate(&d, MAX_FIELD_CHARS)),
            ip: client.ip,
        };
        Ok(self.store.create_session(&new).await?)
    }

    /// The token for the session's current `gen`.
    fn issue(&self, view: SessionWithUser) -> Result<Authenticated, SessionError> {
        let claims = Claims::for_session(&view.session, self.policy.jwt_ttl);
        let token = self
            .keys
            .sign(&claims)
            .map_err(|e| SessionError::Internal(format!("signing failed: {e}")))?;
        Ok(Authenticated {
            token,
            claims,
            view,
        })
    }
}

enum Verdict {
    Retry,
    Grace,
    Reuse,
    Refuse(SessionError),
}

/// The first 8 characters of a session id: enough to correlate logs, useless as a credential.
pub fn short(id: Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn normalize_username(username: &str) -> String {
    username.trim().to_lowercase()
}

fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.chars().count() <= MAX_FIELD_CHARS
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// NUL cannot be stored in a PostgreSQL text column; a value holding one is refused.
fn has_nul(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.contains('\0'))
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}
