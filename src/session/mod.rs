//! The session policy, with no HTTP in sight: who may log in, when a token may be refreshed,
//! what a replayed token means. Handlers call it; it calls the store.

mod access;
mod admin;
mod error;
pub mod keys;
mod login;
pub mod purge;
mod refresh;
pub mod token;
mod users;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use secrecy::SecretString;
use uuid::Uuid;

pub use access::LogoutScope;
pub use admin::{AdminGrant, SessionPage};
pub use error::{Reason, SessionError};
use keys::KeyRing;
use token::Claims;

use crate::clock::{Clock, UnixTime};
use crate::config::{Config, LoginAttribute, SessionLimitPolicy};
use crate::password::PasswordHasherPool;
use crate::store::{Liveness, NewSession, SessionLimit, SessionWithUser, Store, StoreError, User};

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
    pub max_sessions_per_user: u32,
    pub reject_over_limit: bool,
    pub last_seen_resolution: i64,
    pub login_max_failures: i64,
    pub login_max_failures_per_ip: i64,
    pub login_failure_window: i64,
    pub login_backoff_base: i64,
    pub login_backoff_max: i64,
    pub revoked_retention: i64,
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
            max_sessions_per_user: config.max_sessions_per_user,
            reject_over_limit: config.session_limit_policy == SessionLimitPolicy::Reject,
            // Idle expiry must see use: record it at least twice per idle period, whatever
            // the resolution says.
            last_seen_resolution: match config.session_idle_ttl {
                Some(idle) => secs(config.last_seen_resolution).min(secs(idle) / 2),
                None => secs(config.last_seen_resolution),
            },
            login_max_failures: i64::from(config.login_max_failures),
            login_max_failures_per_ip: i64::from(config.login_max_failures_per_ip),
            login_failure_window: secs(config.login_failure_window),
            login_backoff_base: secs(config.login_backoff_base),
            login_backoff_max: secs(config.login_backoff_max),
            revoked_retention: secs(config.revoked_retention),
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
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasherPool,
    policy: Policy,
    reuse_detected: AtomicU64,
}
impl SessionService {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
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

    /// How many replayed tokens this process has caught.
    pub fn reuse_detected(&self) -> u64 {
        self.reuse_detected.load(Ordering::Relaxed)
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
            verified_hash: Some(user.password_hash.clone()),
            forever,
            created_at: now,
            refresh_until: (!forever).then(|| now.saturating_add(self.policy.refresh_ttl)),
            device: client
                .device
                .or_else(|| client.user_agent.as_deref().map(device_name))
                .map(|d| truncate(&d, MAX_FIELD_CHARS)),
            user_agent: client.user_agent.map(|d| truncate(&d, MAX_FIELD_CHARS)),
            ip: client.ip,
        };
        let limit = SessionLimit {
            max: self.policy.max_sessions_per_user,
            reject: self.policy.reject_over_limit,
            evict_reason: Reason::SessionLimit.as_str(),
        };
        match self
            .store
            .create_session(&new, &limit, &self.liveness(now))
            .await
        {
            Ok(view) => Ok(view),
            Err(StoreError::LimitReached) => Err(SessionError::SessionLimit(limit.max)),
            Err(StoreError::UserChanged) => Err(SessionError::InvalidCredentials),
            Err(other) => Err(other.into()),
        }
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

    /// Which sessions are live at `now`.
    fn liveness(&self, now: UnixTime) -> Liveness {
        Liveness {
            now,
            idle_cutoff: self.idle_cutoff(now),
        }
    }

    /// Sessions last seen before this are idle-expired (when idle expiry is on).
    fn idle_cutoff(&self, now: UnixTime) -> Option<UnixTime> {
        self.policy.idle_ttl.map(|ttl| now - ttl)
    }
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
