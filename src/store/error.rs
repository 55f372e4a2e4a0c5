//! What can go wrong in the store, with the cause kept for the logs.

use std::error::Error;
use std::sync::Arc;

/// The underlying cause of an outage or a failure: shared, because one failed batch statement
/// answers every request in it.
pub type Cause = Arc<dyn Error + Send + Sync>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint, by name (`users_email_key`, `users_username_key`, `apps_name_key`,
    /// `roles_name_key`), or `foreign_key` for a reference to a row that does not exist.
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The user was deactivated, or changed password, while the login was checking it.
    #[error("the user changed during login")]
    UserChanged,
    /// The user is at the session cap and the policy is to reject.
    #[error("session limit reached")]
    LimitReached,
    /// The client address is at its session cap and the policy is to reject.
    #[error("per-address session limit reached")]
    IpLimitReached,
    /// The total session cap is reached and the policy is to reject.
    #[error("total session limit reached")]
    TotalLimitReached,
    /// The login's app was deactivated or deleted while the login was checking it.
    #[error("the app is not active")]
    AppInactive,
    /// The role the login resolved is inactive.
    #[error("the role is not active")]
    RoleInactive,
    /// The database cannot be reached right now (pool timeout, I/O, a server going away, a
    /// statement that stalled): a 503.
    #[error("database unavailable")]
    Unavailable(#[source] Cause),
    /// The connection broke before the database answered (reset, closed, or the server said it
    /// is terminating it): nothing of the statement took effect, so the store retries it once
    /// on a fresh connection, and answers this (a 503) only if that fails too.
    #[error("database connection broken")]
    Broken(#[source] Cause),
    /// The database answered with an error that retrying will not fix.
    #[error("database error")]
    Database(#[source] Cause),
    /// A migration could not be applied.
    #[error("migration failed")]
    Migration(#[source] Arc<sqlx::migrate::MigrateError>),
    /// A stored value does not have the form this build writes.
    #[error("corrupt row: {what}")]
    Corrupt {
        what: &'static str,
        #[source]
        cause: Cause,
    },
    /// A background task of the store (PostgreSQL's coalescing tasks) is gone.
    #[error("the {0} task stopped")]
    TaskStopped(&'static str),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A cause that is a plain message (a stall the store detected itself, not a library error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Stalled(pub String);

impl StoreError {
    pub fn unavailable(cause: impl Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Arc::new(cause))
    }

    pub fn database(cause: impl Error + Send + Sync + 'static) -> Self {
        Self::Database(Arc::new(cause))
    }

    /// Whether the statement failed because its connection broke (worth one retry).
    pub fn is_broken_connection(&self) -> bool {
        matches!(self, Self::Broken(_))
    }

    /// Whether the database cannot serve right now (a 503): unreachable, or a connection broke.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Broken(_))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Self::Migration(Arc::new(err))
    }
}

/// Maps the sqlx errors both backends share; backend-specific constraint names and codes are
/// mapped by each backend before falling back to this.
pub(super) fn map_common(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Io(_) => StoreError::Broken(Arc::new(err)),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::unavailable(err),
        other => StoreError::database(other),
    }
}
