//! Domain outcomes of the session service. No status codes here: `http/error.rs` translates.

use std::collections::BTreeMap;

use super::system::AccessRefusal;
use crate::password::PasswordError;
use crate::session::keys::KeyError;
use crate::session::token::TokenDefect;
use crate::store::StoreError;

/// Why a token or session was refused: a stable, documented, machine-readable set, reported in
/// the error's `context.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    MissingToken,
    InvalidToken,
    InvalidCredentials,
    Expired,
    /// The token was replaced by a refresh.
    Rotated,
    LoggedOut,
    /// Ended by an administrator or an operator.
    Revoked,
    /// A replaced token was presented again outside the grace: the session was revoked.
    TokenReuse,
    RefreshWindowClosed,
    IdleTimeout,
    UserInactive,
    NotAdmin,
    /// Ended to make room for a newer login (`MAX_SESSIONS_PER_USER`).
    SessionLimit,
    /// Ended by a password change made from another session.
    PasswordChanged,
    /// Too many failed logins; retry later.
    Throttled,
    /// The session refreshes only with its refresh credential, not with the access token.
    RefreshCredentialRequired,
    /// A refresh credential was sent where only the refresh endpoint takes one.
    RefreshTokenNotAllowedHere,
    /// A request carrying the refresh cookie failed the CSRF checks.
    Csrf,
    /// Ended to make room for a newer login from the same address (`MAX_SESSIONS_PER_IP`).
    IpSessionLimit,
    /// Ended to make room for a newer login (`MAX_SESSIONS`).
    TotalSessionLimit,
    /// The API key sent is an inactive app's; or the session's app was deactivated or deleted.
    AppDisabled,
    /// The role is inactive; or the session's role was deactivated or deleted.
    RoleDisabled,
    /// The session's role changed (renamed, reassigned, or the app's default changed).
    RoleChanged,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Expired => "expired",
            Self::Rotated => "rotated",
            Self::LoggedOut => "logged_out",
            Self::Revoked => "revoked",
            Self::TokenReuse => "token_reuse",
            Self::RefreshWindowClosed => "refresh_window_closed",
            Self::IdleTimeout => "idle_timeout",
            Self::UserInactive => "user_inactive",
            Self::NotAdmin => "not_admin",
            Self::SessionLimit => "session_limit",
            Self::PasswordChanged => "password_changed",
            Self::Throttled => "throttled",
            Self::RefreshCredentialRequired => "refresh_credential_required",
            Self::RefreshTokenNotAllowedHere => "refresh_token_not_allowed_here",
            Self::Csrf => "csrf",
            Self::IpSessionLimit => "ip_session_limit",
            Self::TotalSessionLimit => "total_session_limit",
            Self::AppDisabled => "app_disabled",
            Self::RoleDisabled => "role_disabled",
            Self::RoleChanged => "role_changed",
        }
    }

    /// The reason a stored `revoke_reason` stands for.
    pub fn from_revoke_reason(stored: Option<&str>) -> Self {
        match stored {
            Some("logged_out" | "logout") => Self::LoggedOut,
            Some("token_reuse") => Self::TokenReuse,
            Some("session_limit") => Self::SessionLimit,
            Some("password_changed") => Self::PasswordChanged,
            Some("user_inactive") => Self::UserInactive,
            Some("ip_session_limit") => Self::IpSessionLimit,
            Some("total_session_limit") => Self::TotalSessionLimit,
            Some("app_disabled") => Self::AppDisabled,
            Some("role_disabled") => Self::RoleDisabled,
            Some("role_changed") => Self::RoleChanged,
            _ => Self::Revoked,
        }
    }
}

/// What can go wrong in the session service.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("login request is missing {0}")]
    MissingField(&'static str),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("no session token")]
    NoSession,
    #[error("invalid token: {}", .0.as_str())]
    InvalidToken(TokenDefect),
    #[error("token expired")]
    Expired,
    #[error("session terminated ({})", .0.as_str())]
    Terminated(Reason),
    #[error("refresh refused ({})", reason.as_str())]
    RefreshRefused {
        reason: Reason,
        detail: &'static str,
    },
    #[error("not a system administrator")]
    NotAdmin,
    #[error("user is not active")]
    UserInactive,
    #[error("open registration is not enabled")]
    RegistrationDisabled,
    #[error("too many failed logins; retry in {retry_after} s")]
    Throttled { retry_after: i64 },
    #[error("session limit of {1} reached ({0:?})")]
    SessionLimit(SessionCap, u32),
    /// The API key sent is an inactive app's: DreamFactory's 403 `App is not active.`
    #[error("the app is not active")]
    AppInactive,
    /// The role the login resolved is inactive: DreamFactory's 403 `Role is not active.`
    #[error("the role is not active")]
    RoleInactive,
    /// No app has this id (as the request named it).
    #[error("app not found")]
    AppNotFound(String),
    /// No role has this id (as the request named it).
    #[error("role not found")]
    RoleNotFound(String),
    /// Introspection without an active app's API key or an administrator's token.
    #[error("introspection needs an API key or an administrator")]
    IntrospectionUnauthorized,
    #[error("session not found")]
    SessionNotFound,
    #[error("user not found")]
    UserNotFound,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("validation failed")]
    Validation(BTreeMap<&'static str, Vec<String>>),
    /// DreamFactory's `AccessCheck` refuses a resource no role grants.
    #[error("access refused ({})", .0.as_str())]
    AccessRefused(AccessRefusal),
    /// The database cannot serve now: a 503.
    #[error("storage unavailable")]
    Unavailable(#[source] StoreError),
    /// A refresh found its session changing under it on every attempt: a 503, retry.
    #[error("the session kept changing during refresh")]
    Contended,
    /// The database failed in a way retrying will not fix: a 500.
    #[error("storage failed")]
    Store(#[source] StoreError),
    #[error("signing a token failed")]
    Signing(#[from] KeyError),
    /// The operating system gave no randomness (for a new API key).
    #[error("no randomness")]
    Randomness(#[source] getrandom::Error),
    #[error("password hashing failed")]
    Password(#[from] PasswordError),
}

/// Which session cap a login hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCap {
    /// `MAX_SESSIONS_PER_USER`.
    PerUser,
    /// `MAX_SESSIONS_PER_IP`.
    PerIp,
    /// `MAX_SESSIONS`.
    Total,
}

impl SessionCap {
    /// The variable that sets it.
    pub fn var(self) -> &'static str {
        match self {
            Self::PerUser => "MAX_SESSIONS_PER_USER",
            Self::PerIp => "MAX_SESSIONS_PER_IP",
            Self::Total => "MAX_SESSIONS",
        }
    }

    /// The reason of a refusal, and of the sessions it evicts.
    pub fn reason(self) -> Reason {
        match self {
            Self::PerUser => Reason::SessionLimit,
            Self::PerIp => Reason::IpSessionLimit,
            Self::Total => Reason::TotalSessionLimit,
        }
    }
}

impl SessionError {
    pub(crate) fn refresh(reason: Reason, detail: &'static str) -> Self {
        Self::RefreshRefused { reason, detail }
    }
}

impl From<StoreError> for SessionError {
    fn from(err: StoreError) -> Self {
        match err {
            _ if err.is_unavailable() => Self::Unavailable(err),
            other => Self::Store(other),
        }
    }
}
