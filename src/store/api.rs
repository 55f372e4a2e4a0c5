//! The persistence contract: the [`Store`] trait and the values it takes and answers.

use async_trait::async_trait;
use uuid::Uuid;

use super::error::StoreResult;
use crate::clock::UnixTime;

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
    /// DreamFactory's profile field; free text, never used to log in.
    pub phone: Option<String>,
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
    /// How the session's refresh credential travels (`body` or `cookie`); none for
    /// DreamFactory's flow, where the expired access token refreshes.
    pub refresh_mode: Option<String>,
    /// The app whose API key the login sent, if any.
    pub app_id: Option<i64>,
    /// The role the login resolved (`role_id` and its name then), kept as it was: the token's
    /// `role` claim derives from it.
    pub role_id: Option<i64>,
    pub role_name: Option<String>,
}

/// A session to insert at login.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: i64,
    /// The password hash of the user row the login checked: the insert fails (`UserChanged`)
    /// if the user was deactivated or changed password since, so no login outlives either.
    pub verified_hash: Option<String>,
    /// A hash to store in place of `verified_hash` (an imported hash the login verified, now
    /// Argon2id), written by the statement that checks `verified_hash`: no extra round trip,
    /// and no login can upgrade a hash that changed meanwhile.
    pub upgraded_hash: Option<String>,
    pub forever: bool,
    pub created_at: UnixTime,
    pub refresh_until: Option<UnixTime>,
    pub device: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub refresh_mode: Option<String>,
    /// The app whose active API key the login sent. The insert checks, in its transaction,
    /// that the app is still active, and resolves the session's role (see `create_session`).
    pub app_id: Option<i64>,
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

/// The caps a login must respect: per user, and optionally per client address and in total.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimit {
    /// Live sessions per user.
    pub max: u32,
    /// Refuse the login instead of ending the least recently seen session (every cap).
    pub reject: bool,
    /// The revoke reason written on sessions evicted by the per-user cap.
    pub evict_reason: &'static str,
    /// Live sessions created from one client address (`MAX_SESSIONS_PER_IP`).
    pub per_ip: Option<Cap>,
    /// Live sessions of everyone (`MAX_SESSIONS`).
    pub total: Option<Cap>,
}

/// One of the wider caps: its maximum, and the revoke reason of the sessions it evicts.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    pub max: u32,
    pub evict_reason: &'static str,
}

/// Bumps `last_seen_at` to `now` when it is older than `older_than` and the token's `gen` is
/// still current: at most one write per resolution per session. A session already idle-expired
/// (last seen before `idle_cutoff`) is never touched: use cannot bring it back.
#[derive(Debug, Clone, Copy)]
pub struct Touch {
    pub gen: i64,
    pub now: UnixTime,
    pub older_than: UnixTime,
    pub idle_cutoff: Option<UnixTime>,
}

impl Touch {
    /// Whether `session`, as just read, needs the write: live, at the token's `gen`, not
    /// idle-expired, and last seen before `older_than`. The write's own WHERE clause checks the
    /// same again.
    pub fn is_due(&self, session: &Session) -> bool {
        session.gen == self.gen
            && session.revoked_at.is_none()
            && session.last_seen_at < self.older_than
            && self
                .idle_cutoff
                .is_none_or(|cutoff| session.last_seen_at >= cutoff)
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
    /// The refresh presents the session's refresh credential (not the access token): a session
    /// with a refresh mode rotates only so, one without only with its access token.
    pub by_credential: bool,
}

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

    /// Inserts a session at `gen` 0 and records the login time on the user, in one
    /// transaction that holds the user's row lock, so concurrent logins of one user are
    /// serialised and can never leave more than `limit.max` live sessions: at the cap, the
    /// least recently seen live sessions are revoked, or the login fails with `LimitReached`.
    /// The wider caps hold the same way under a lock of their own (the client address's, and
    /// one for the total): `IpLimitReached`, `TotalLimitReached`.
    ///
    /// With an app, the same transaction checks that the app is still active (`AppInactive`)
    /// and resolves the session's role: none for a system administrator, else the user's role
    /// for the app, else the app's default role; an inactive one is `RoleInactive`. The app
    /// and role rows are share-locked until the commit, so a deactivation committing meanwhile
    /// waits and then sees (and ends) the new session.
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

    /// Applies a change to a user's own profile in one statement: only the columns `change`
    /// names are written. An email change is applied only while the user's password hash is
    /// still `change.verified_hash` (the one the current password was checked against).
    /// `None` when no row matched (no such user, or the password changed meanwhile); a taken
    /// email is `Conflict("users_email_key")`.
    async fn update_profile(
        &self,
        user_id: i64,
        change: &ProfileChange,
    ) -> StoreResult<Option<User>>;

    // Moving in and out: `tenure user import` and `tenure user export`.

    /// Every user, by id, with what its last import recorded.
    async fn all_users(&self) -> StoreResult<Vec<StoredUser>>;

    /// Applies an import in one transaction: inserts users with their ids (or updates the
    /// users with those ids), ends the sessions of the users it deactivates, and moves the id
    /// sequence past the highest id, so later users get ids after the imported ones. A
    /// conflict on email or username rolls everything back (`Conflict`).
    async fn import_users(&self, import: &UserImport) -> StoreResult<()>;

    // Apps, API keys and roles (DreamFactory's), and what sessions keep of them.

    /// Inserts an app; a taken name is `Conflict("apps_name_key")`, a role that does not exist
    /// `Conflict("foreign_key")`.
    async fn create_app(&self, app: &NewApp) -> StoreResult<App>;

    /// Every app, by id.
    async fn apps(&self) -> StoreResult<Vec<App>>;

    async fn app(&self, id: i64) -> StoreResult<Option<App>>;

    async fn app_by_name(&self, name: &str) -> StoreResult<Option<App>>;

    /// The app whose key hashes to `api_key_hash` (SHA-256, hex): the lookup never compares key
    /// material in SQL.
    async fn app_by_key_hash(&self, api_key_hash: &str) -> StoreResult<Option<App>>;

    /// Applies `change` to an app, in one transaction with what it implies for the app's live
    /// sessions: a deactivation revokes all of them (`change.disabled_reason`); a new default
    /// role revokes those whose role it changes (`change.role_changed_reason`). `None` when
    /// there is no such app.
    async fn update_app(
        &self,
        id: i64,
        change: &AppChange,
        now: UnixTime,
    ) -> StoreResult<Option<App>>;

    /// Revokes every live session of an app (`reason`) and deletes it, together. Answers
    /// whether it existed.
    async fn delete_app(&self, id: i64, now: UnixTime, reason: &str) -> StoreResult<bool>;

    /// Inserts a role; a taken name is `Conflict("roles_name_key")`.
    async fn create_role(&self, role: &NewRole) -> StoreResult<Role>;

    /// Every role, by id.
    async fn roles(&self) -> StoreResult<Vec<Role>>;

    async fn role(&self, id: i64) -> StoreResult<Option<Role>>;

    async fn role_by_name(&self, name: &str) -> StoreResult<Option<Role>>;

    /// Applies `change` to a role, in one transaction with the revocation of the live sessions
    /// holding it when it is deactivated (`change.disabled_reason`) or renamed
    /// (`change.renamed_reason`: their tokens carry the old name). `None` when there is no
    /// such role.
    async fn update_role(
        &self,
        id: i64,
        change: &RoleChange,
        now: UnixTime,
    ) -> StoreResult<Option<Role>>;

    /// Revokes every live session holding a role (`reason`) and deletes it, together (apps
    /// lose it as their default; users' assignments of it go). Answers whether it existed.
    async fn delete_role(&self, id: i64, now: UnixTime, reason: &str) -> StoreResult<bool>;

    /// Sets (a role) or removes (none) a user's role for each app, serialised with the user's
    /// logins, and revokes the user's live sessions of those apps whose role that changes
    /// (`reason`). Answers the user's assignments after the change; `None` when there is no
    /// such user; an app or role that does not exist is `Conflict("foreign_key")`.
    async fn set_user_app_roles(
        &self,
        user_id: i64,
        assignments: &[(i64, Option<i64>)],
        now: UnixTime,
        reason: &str,
    ) -> StoreResult<Option<Vec<UserAppRole>>>;

    /// A user's role for each app that has one for them, by app.
    async fn user_app_roles(&self, user_id: i64) -> StoreResult<Vec<UserAppRole>>;

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;

    // User administration (the `tenure user` commands).

    /// Users by id, each with their live sessions counted; only the one with `email`
    /// (normalised) when it is given.
    async fn list_users(
        &self,
        email: Option<&str>,
        live: &Liveness,
    ) -> StoreResult<Vec<UserSummary>>;

    /// Whether any user exists.
    async fn has_users(&self) -> StoreResult<bool>;

    /// Stores a new password hash and revokes every session of the user, in one transaction.
    /// Answers how many sessions it revoked; `None` when there is no such user.
    async fn reset_password(
        &self,
        user_id: i64,
        password_hash: &str,
        now: UnixTime,
        reason: &str,
    ) -> StoreResult<Option<u64>>;

    /// Deletes a user and every session of theirs in one transaction that first locks the
    /// user's row, so no login can add a session meanwhile. Answers how many of the sessions
    /// were not revoked yet; `None` when there is no such user.
    async fn delete_user(&self, user_id: i64) -> StoreResult<Option<u64>>;
}

/// What a profile update writes. `None` leaves a column as it is; for the nullable columns,
/// `Some(None)` clears it. Values arrive validated and normalised by the caller.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub name: Option<String>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub email: Option<String>,
    /// With `email`: the password hash the change was authorised against.
    pub verified_hash: Option<String>,
}

/// A user with what its last import recorded: export and import read these.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredUser {
    #[sqlx(flatten)]
    pub user: User,
    /// `sha256:<hex>` of the password hash the user's last import brought (never the hash).
    pub imported_hash: Option<String>,
}

/// A user as an import writes it: inserted with its id, or replacing that user's columns
/// (all but `created_at` and `last_login_at`, which only an insert writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedUser {
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
    pub imported_hash: Option<String>,
}

/// One import's writes, applied together or not at all.
#[derive(Debug, Clone)]
pub struct UserImport {
    /// Users created or updated.
    pub users: Vec<ImportedUser>,
    /// Users the import deactivates: their live sessions end, with `reason`.
    pub deactivated: Vec<i64>,
    pub now: UnixTime,
    pub reason: &'static str,
}

/// An app (DreamFactory's `app`): a frontend, known by its API key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    /// The app's default role: a user without a role of their own for the app gets this one.
    pub role_id: Option<i64>,
    pub url: Option<String>,
    /// 64 lowercase hex characters.
    pub api_key: String,
    pub created_at: UnixTime,
}

/// An app to insert, its key generated and hashed by the caller.
#[derive(Debug, Clone)]
pub struct NewApp {
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub role_id: Option<i64>,
    pub url: Option<String>,
    pub api_key: String,
    pub api_key_hash: String,
    pub created_at: UnixTime,
}

/// What an app update writes. `None` leaves a column as it is; for the nullable columns,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct AppChange {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub role_id: Option<Option<i64>>,
    pub url: Option<Option<String>>,
    /// A new key and its hash: the old key stops working when this commits.
    pub api_key: Option<(String, String)>,
    /// The revoke reason of the app's sessions when it is deactivated.
    pub disabled_reason: &'static str,
    /// The revoke reason of the sessions whose role a new default role changes.
    pub role_changed_reason: &'static str,
}

/// A role (DreamFactory's `role`). tenure keeps no service access rules: a role is a name that
/// sessions carry (the token's `role` claim) for other services to authorise on.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone)]
pub struct NewRole {
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub created_at: UnixTime,
}

/// What a role update writes; `None` leaves a column as it is.
#[derive(Debug, Clone, Default)]
pub struct RoleChange {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
    /// The revoke reason of the role's sessions when it is deactivated.
    pub disabled_reason: &'static str,
    /// The revoke reason of the role's sessions when it is renamed.
    pub renamed_reason: &'static str,
}

/// A user's role for one app (DreamFactory's `user_to_app_to_role`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserAppRole {
    pub user_id: i64,
    pub app_id: i64,
    pub role_id: i64,
}

/// A user with the count of their live sessions, as `tenure user list` shows them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserSummary {
    #[sqlx(flatten)]
    pub user: User,
    pub live_sessions: i64,
}
