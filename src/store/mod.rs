//! Persistence: the [`Store`] trait, its row types and [`StoreError`]. One implementation per
//! backend (`sqlite.rs`, `postgres.rs`); both pass the same conformance tests. The store holds
//! no policy: the session service decides, the store runs one plain statement per call.

mod pg_coalesce;
mod pg_lookup;
mod pg_rotation;
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
    /// The password hash of the user row the login checked: the insert fails (`UserChanged`)
    /// if the user was deactivated or changed password since, so no login outlives either.
    pub verified_hash: Option<String>,
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

/// Which sessions count as live: not revoked, inside their refresh window, and (when idle
/// expiry is on) seen at or after `idle_cutoff`.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub now: UnixTime,
    pub idle_cutoff: Option<UnixTime>,
}

/// The per-user cap a login must respect.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimit {
    pub max: u32,
    /// Refuse the login instead of ending the least recently seen session.
    pub reject: bool,
    /// The revoke reason written on evicted sessions.
    pub evict_reason: &'static str,
}

/// Bumps `last_seen_at` to `now` when it is older than `older_than` and the token's `gen` is
/// still current: at most one write per resolution per session.
#[derive(Debug, Clone, Copy)]
pub struct Touch {
    pub gen: i64,
    pub now: UnixTime,
    pub older_than: UnixTime,
}

impl Touch {
    /// Whether `session`, as just read, needs the write: live, at the token's `gen`, and last
    /// seen before `older_than`. The write's own WHERE clause checks the same again.
    pub fn is_due(&self, session: &Session) -> bool {
        session.gen == self.gen
            && session.revoked_at.is_none()
            && session.last_seen_at < self.older_than
    }
}

/// A page of the administrators' session listing, newest first.
#[derive(Debug, Clone)]
pub struct SessionFilter {
    pub user_id: Option<i64>,
    pub email: Option<String>,
    /// Continue after this `(created_at, id)`.
    pub after: Option<(UnixTime, Uuid)>,
    pub limit: u32,
    pub live: Liveness,
}

/// The failed-login counter of one key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginFailures {
    pub key: String,
    pub failures: i64,
    pub window_start: UnixTime,
    pub last_failure_at: UnixTime,
}

/// What one purge pass deletes, at most `batch` rows per statement.
#[derive(Debug, Clone, Copy)]
pub struct Purge {
    pub now: UnixTime,
    /// Sessions whose every token has expired: last rotated before this.
    pub tokens_expired_before: UnixTime,
    pub idle_cutoff: Option<UnixTime>,
    pub revoked_before: UnixTime,
    pub failures_before: UnixTime,
    pub batch: u32,
}

/// A stored signing key. `secret` may be encrypted (`enc:v1:…`); the key ring decides.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub algorithm: String,
    pub secret: String,
    pub public_key: Option<String>,
    pub created_at: UnixTime,
    pub activates_at: UnixTime,
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

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint, by name (`users_email_key`, `users_username_key`).
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The user was deactivated, or changed password, while the login was checking it.
    #[error("the user changed during login")]
    UserChanged,
    /// The user is at the session cap and the policy is to reject.
    #[error("session limit reached")]
    LimitReached,
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

    /// One round trip that proves the database answers, and tells whether every migration this
    /// build knows is applied.
    async fn ready(&self) -> StoreResult<bool>;

    /// Connections in the pool: (open, idle).
    fn pool_stats(&self) -> (u32, u32);

    async fn create_user(&self, user: &NewUser) -> StoreResult<User>;

    /// Looks a user up by normalised email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;

    /// Looks a user up by normalised username.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;

    /// Inserts a session at `gen` 0 and records the login time on the user, in one
    /// transaction that holds the user's row lock, so concurrent logins of one user are
    /// serialised and can never leave more than `limit.max` live sessions: at the cap, the
    /// least recently seen live sessions are revoked, or the login fails with `LimitReached`.
    async fn create_session(
        &self,
        session: &NewSession,
        limit: &SessionLimit,
        live: &Liveness,
    ) -> StoreResult<SessionWithUser>;

    /// One session and its user, in one round trip; with `touch`, also bumps `last_seen_at`.
    async fn session_with_user(
        &self,
        id: Uuid,
        touch: Option<&Touch>,
    ) -> StoreResult<Option<SessionWithUser>>;

    /// A user's live sessions, newest first.
    async fn user_sessions(&self, user_id: i64, live: &Liveness) -> StoreResult<Vec<Session>>;

    /// Revokes session `id` only if it is a live session of `user_id`.
    async fn revoke_user_session(
        &self,
        id: Uuid,
        user_id: i64,
        live: &Liveness,
        reason: &str,
    ) -> StoreResult<bool>;

    /// Revokes every unrevoked session of a user, except `except`; answers how many.
    async fn revoke_user_sessions(
        &self,
        user_id: i64,
        except: Option<Uuid>,
        now: UnixTime,
        reason: &str,
    ) -> StoreResult<u64>;

    /// How many sessions are live.
    async fn count_live_sessions(&self, live: &Liveness) -> StoreResult<i64>;

    /// A page of live sessions with their users, newest first.
    async fn list_sessions(&self, filter: &SessionFilter) -> StoreResult<Vec<SessionWithUser>>;

    /// Activates or deactivates a user; deactivation revokes all of the user's sessions in the
    /// same transaction (reason `reason`). `None` when there is no such user.
    async fn set_user_active(
        &self,
        user_id: i64,
        active: bool,
        now: UnixTime,
        reason: &str,
    ) -> StoreResult<Option<User>>;

    /// Stores a new password hash and revokes every other session of the user, together.
    async fn change_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep: Uuid,
        now: UnixTime,
        reason: &str,
    ) -> StoreResult<u64>;

    /// The failed-login counters of `keys` that exist.
    async fn login_failures(&self, keys: &[String]) -> StoreResult<Vec<LoginFailures>>;

    /// Counts one failure for `key`; a counter whose window started before `window_cutoff`
    /// starts again at 1.
    async fn record_login_failure(
        &self,
        key: &str,
        now: UnixTime,
        window_cutoff: UnixTime,
    ) -> StoreResult<()>;

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()>;

    /// Deletes one batch of each kind of dead row; answers how many rows went.
    async fn purge(&self, purge: &Purge) -> StoreResult<u64>;

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

    /// Every signing key, oldest activation first.
    async fn signing_keys(&self) -> StoreResult<Vec<KeyRow>>;

    /// Inserts a key unless one with its `kid` exists; answers whether it was inserted.
    async fn insert_signing_key(&self, key: &KeyRow) -> StoreResult<bool>;

    /// Replaces a key's stored secret (to encrypt a plaintext one).
    async fn update_signing_key_secret(&self, kid: &str, secret: &str) -> StoreResult<()>;

    async fn setting(&self, key: &str) -> StoreResult<Option<String>>;

    async fn delete_setting(&self, key: &str) -> StoreResult<()>;

    /// Answers the stored value of `key`, storing `value` first if none exists. Replicas racing
    /// on the first start all get the one value that won.
    async fn setting_or_insert(&self, key: &str, value: &str) -> StoreResult<String>;
}

/// Opens the store that `database_url` names (creating a SQLite file when missing). A request
/// waits at most `acquire_timeout` for a connection before the store answers `Unavailable`.
pub async fn connect(
    database_url: &str,
    acquire_timeout: std::time::Duration,
) -> StoreResult<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::connect(database_url, acquire_timeout).await?,
        ))
    } else {
        Ok(Arc::new(
            PostgresStore::connect(database_url, acquire_timeout).await?,
        ))
    }
}

/// The flat row of a session joined with its user, shared by both backends.
#[derive(sqlx::FromRow)]
struct SessionUserRow {
    #[sqlx(flatten)]
    session: SessionRow,
    #[sqlx(flatten)]
    user: User,
}

impl TryFrom<SessionUserRow> for SessionWithUser {
    type Error = StoreError;

    fn try_from(row: SessionUserRow) -> Result<Self, StoreError> {
        Ok(Self {
            session: row.session.try_into()?,
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

/// The condition a live session meets, for a session table aliased `s`, with the bind
/// placeholders of `now` and `idle_cutoff` given.
fn live_condition(now: &str, idle_cutoff: &str) -> String {
    format!(
        "s.revoked_at IS NULL AND (s.refresh_until IS NULL OR s.refresh_until >= {now}) \
         AND ({idle_cutoff} IS NULL OR s.last_seen_at >= {idle_cutoff})"
    )
}

/// A session row (aliased `s`), with the id as text.
#[derive(sqlx::FromRow)]
struct SessionRow {
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
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        let id = Uuid::parse_str(&row.s_id)
            .map_err(|_| StoreError::Other("a stored session id is not a UUID".into()))?;
        Ok(Session {
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
        })
    }
}

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
