//! Persistence: the [`Store`] trait, its row types and [`StoreError`]. One implementation per
//! backend (`sqlite.rs`, `postgres.rs`); both pass the same conformance tests. The store holds
//! no policy: the session service decides, the store runs one plain statement per call.

mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::clock::UnixTime;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A user row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub username: Option<String>,
    pub password_hash: String,
    pub name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub is_sys_admin: bool,
    pub is_active: bool,
    pub created_at: UnixTime,
    pub last_login_at: Option<UnixTime>,
    pub password_changed_at: UnixTime,
}

/// A user to insert; `email` and `username` arrive normalised by the caller.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub username: Option<String>,
    pub password_hash: String,
    pub name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub is_sys_admin: bool,
    pub created_at: UnixTime,
}

/// A session row: what the database knows of a login. Never a token.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: Uuid,
    pub user_id: i64,
    pub forever: bool,
    pub gen: i64,
    pub rotated_at: UnixTime,
    pub created_at: UnixTime,
    pub last_seen_at: UnixTime,
    pub refresh_until: Option<UnixTime>,
    pub device: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub revoked_at: Option<UnixTime>,
    pub revoke_reason: Option<String>,
}

/// A session to insert at login.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: i64,
    pub forever: bool,
    pub created_at: UnixTime,
    pub refresh_until: Option<UnixTime>,
    pub device: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// A session together with its user: what every session endpoint answers with.
#[derive(Debug, Clone)]
pub struct SessionWithUser {
    pub session: Session,
    pub user: User,
}

/// The conditions of one atomic rotation: the row changes only if every one holds.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub session_id: Uuid,
    /// The `gen` the presented token carries; the row must still be at it.
    pub expected_gen: i64,
    pub now: UnixTime,
    /// When set, the session must have been seen at or after this time.
    pub idle_cutoff: Option<UnixTime>,
    /// When set, only a session of a system administrator rotates.
    pub require_admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint, by name (`users_email_key`, `users_username_key`).
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The database cannot be reached right now (pool timeout, I/O): a 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The persistence operations the session service needs.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Applies pending migrations (idempotent; safe when replicas start together).
    async fn migrate(&self) -> StoreResult<()>;

    async fn create_user(&self, user: &NewUser) -> StoreResult<User>;

    /// Looks a user up by normalised email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;

    /// Looks a user up by normalised username.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;

    /// Inserts a session at `gen` 0 and records the login time on the user, atomically.
    async fn create_session(&self, session: &NewSession) -> StoreResult<SessionWithUser>;

    /// One session and its user, in one query.
    async fn session_with_user(&self, id: Uuid) -> StoreResult<Option<SessionWithUser>>;

    /// Increments `gen` in one statement if every condition of `rotation` holds, and answers
    /// the rotated session; `None` when any condition failed (the caller finds out which).
    async fn rotate_session(&self, rotation: &Rotation) -> StoreResult<Option<SessionWithUser>>;

    /// Revokes a live session, only if it is still at `gen` when one is given. Answers whether
    /// this call revoked it.
    async fn revoke_session(
        &self,
        id: Uuid,
        gen: Option<i64>,
        now: UnixTime,
        reason: &str,
    ) -> StoreResult<bool>;

    /// Answers the stored value of `key`, storing `value` first if none exists. Replicas racing
    /// on the first start all get the one value that won.
    async fn setting_or_insert(&self, key: &str, value: &str) -> StoreResult<String>;
}

/// Opens the store that `database_url` names (creating a SQLite file when missing).
pub async fn connect(database_url: &str) -> StoreResult<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(database_url).await?))
    } else {
        Ok(Arc::new(PostgresStore::connect(database_url).await?))
    }
}

/// The flat row of a session joined with its user, shared by both backends.
#[derive(sqlx::FromRow)]
struct SessionUserRow {
    s_id: String,
    s_user_id: i64,
    s_forever: bool,
    s_gen: i64,
    s_rotated_at: i64,
    s_created_at: i64,
    s_last_seen_at: i64,
    s_refresh_until: Option<i64>,
    s_device: Option<String>,
    s_user_agent: Option<String>,
    s_ip: Option<String>,
    s_revoked_at: Option<i64>,
    s_revoke_reason: Option<String>,
    #[sqlx(flatten)]
    user: User,
}

impl TryFrom<SessionUserRow> for SessionWithUser {
    type Error = StoreError;

    fn try_from(row: SessionUserRow) -> Result<Self, StoreError> {
        let id = Uuid::parse_str(&row.s_id)
            .map_err(|_| StoreError::Other("a stored session id is not a UUID".into()))?;
        Ok(Self {
            session: Session {
                id,
                user_id: row.s_user_id,
                forever: row.s_forever,
                gen: row.s_gen,
                rotated_at: row.s_rotated_at,
                created_at: row.s_created_at,
                last_seen_at: row.s_last_seen_at,
                refresh_until: row.s_refresh_until,
                device: row.s_device,
                user_agent: row.s_user_agent,
                ip: row.s_ip,
                revoked_at: row.s_revoked_at,
                revoke_reason: row.s_revoke_reason,
            },
            user: row.user,
        })
    }
}

/// The session columns, aliased for [`SessionUserRow`]; `{id}` is how the backend renders the
/// id as text.
const SESSION_COLUMNS: &str = "s.user_id AS s_user_id, s.forever AS s_forever, s.gen AS s_gen, \
    s.rotated_at AS s_rotated_at, s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at, \
    s.refresh_until AS s_refresh_until, s.device AS s_device, s.user_agent AS s_user_agent, \
    s.ip AS s_ip, s.revoked_at AS s_revoked_at, s.revoke_reason AS s_revoke_reason";

/// The user columns, for a user aliased `u`.
const USER_COLUMNS: &str = "u.id, u.email, u.username, u.password_hash, u.name, u.first_name, \
    u.last_name, u.is_sys_admin, u.is_active, u.created_at, u.last_login_at, u.password_changed_at";

/// Maps the sqlx errors both backends share; backend-specific constraint names are mapped by
/// each backend before falling back to this.
fn map_common(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}
