//! The PostgreSQL store: the production backend, shared by any number of replicas.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

use super::pg_lookup::Lookups;
use super::pg_rotation::Rotator;
use super::{
    live_condition, map_common, KeyRow, Liveness, LoginFailures, NewSession, NewUser, Purge,
    Rotation, Session, SessionFilter, SessionLimit, SessionRow, SessionUserRow, SessionWithUser,
    Store, StoreError, StoreResult, Touch, User, SESSION_COLUMNS, USER_COLUMNS,
};
use crate::clock::UnixTime;

const MAX_CONNECTIONS: u32 = 16;

pub struct PostgresStore {
    pool: PgPool,
    rotator: Rotator,
    lookups: Lookups,
}

impl PostgresStore {
    pub async fn connect(url: &str, acquire_timeout: Duration) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(acquire_timeout)
            // No ping before every query (a round trip per request): a connection the server
            // dropped fails its query with a connection error, which is a 503, and is replaced.
            .test_before_acquire(false)
            .connect(url)
            .await
            .map_err(map_error)?;
        let rotator = Rotator::start(pool.clone());
        let lookups = Lookups::start(pool.clone(), acquire_timeout);
        Ok(Self {
            pool,
            rotator,
            lookups,
        })
    }
}

pub(super) fn map_error(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        match db.constraint() {
            Some("users_email_key") => return StoreError::Conflict("users_email_key"),
            Some("users_username_key") => return StoreError::Conflict("users_username_key"),
            _ => {}
        }
        if db.code().as_deref().is_some_and(is_transient) {
            return StoreError::Unavailable(err.to_string());
        }
    }
    map_common(err)
}

/// SQLSTATEs with which the server says it is going away or cannot serve yet: a 503, like a
/// refused connection. Class 08 is a connection exception; 57P01, 57P02 and 57P03 are what a
/// fast shutdown, a crash of another backend and a starting or stopping server answer.
fn is_outage(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// Outages, and the two answers with which PostgreSQL rolls a transaction back for trying again
/// (40P01 deadlock detected, 40001 serialization failure): the client should retry, so a 503.
fn is_transient(code: &str) -> bool {
    is_outage(code) || matches!(code, "40P01" | "40001")
}

/// The statement lost a deadlock and was rolled back whole.
pub(super) fn is_deadlock(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("40P01"))
}

const SESSION_ID: &str = "s.id::text AS s_id";

pub(super) fn select_joined(from: &str, filter: &str) -> String {
    format!("SELECT {SESSION_ID}, {SESSION_COLUMNS}, {USER_COLUMNS} FROM {from} {filter}")
}

fn rows_into<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> StoreResult<()> {
        // sqlx takes an advisory lock, so replicas starting together migrate once.
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))
    }

    async fn ready(&self) -> StoreResult<bool> {
        let known = sqlx::migrate!("migrations/postgres").migrations.len() as i64;
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .map_err(map_error)?;
        Ok(applied >= known)
    }

    fn pool_stats(&self) -> (u32, u32) {
        (self.pool.size(), self.pool.num_idle() as u32)
    }

    async fn create_user(&self, user: &NewUser) -> StoreResult<User> {
        sqlx::query_as(
            "INSERT INTO users (email, username, password_hash, name, first_name, last_name, \
             is_sys_admin, is_active, created_at, password_changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $8) RETURNING *",
        )
        .bind(&user.email)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(&user.name)
        .bind(&user.first_name)
        .bind(&user.last_name)
        .bind(user.is_sys_admin)
        .bind(user.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(map_error)
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        sqlx::query_as("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        sqlx::query_as("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        sqlx::query_as("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn create_session(
        &self,
        new: &NewSession,
        limit: &SessionLimit,
        live: &Liveness,
    ) -> StoreResult<SessionWithUser> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        // Recording the login takes the user's row lock: concurrent logins of one user wait
        // here, so the count below cannot go stale before the insert.
        let recorded = sqlx::query(
            "UPDATE users SET last_login_at = $1 WHERE id = $2 AND is_active \
             AND ($3::TEXT IS NULL OR password_hash = $3)",
        )
        .bind(new.created_at)
        .bind(new.user_id)
        .bind(&new.verified_hash)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        if recorded.rows_affected() != 1 {
            return Err(StoreError::UserChanged);
        }
        let live_sql = live_condition("$2", "$3::BIGINT");
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM sessions s WHERE s.user_id = $1 AND {live_sql}"
        ))
        .bind(new.user_id)
        .bind(live.now)
        .bind(live.idle_cutoff)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_error)?;
        let excess = count + 1 - i64::from(limit.max);
        if excess > 0 {
            if limit.reject {
                return Err(StoreError::LimitReached);
            }
            sqlx::query(&format!(
                "UPDATE sessions SET revoked_at = $2, revoke_reason = $5 WHERE id IN \
                 (SELECT s.id FROM sessions s WHERE s.user_id = $1 AND {live_sql} \
                  ORDER BY s.last_seen_at, s.created_at LIMIT $4)"
            ))
            .bind(new.user_id)
            .bind(live.now)
            .bind(live.idle_cutoff)
            .bind(excess)
            .bind(limit.evict_reason)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        }
        let sql = format!(
            "WITH s AS (INSERT INTO sessions (id, user_id, forever, gen, rotated_at, created_at, \
                   last_seen_at, refresh_until, device, user_agent, ip) \
                   VALUES ($1, $2, $3, 0, $4, $4, $4, $5, $6, $7, $8) RETURNING *) {}",
            select_joined("s JOIN users u ON u.id = s.user_id", "")
        );
        let row: SessionUserRow = sqlx::query_as(&sql)
            .bind(new.id)
            .bind(new.user_id)
            .bind(new.forever)
            .bind(new.created_at)
            .bind(new.refresh_until)
            .bind(&new.device)
            .bind(&new.user_agent)
            .bind(&new.ip)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        row.try_into()
    }

    async fn session_with_user(
        &self,
        id: Uuid,
        touch: Option<&Touch>,
    ) -> StoreResult<Option<SessionWithUser>> {
        // A key lookup, coalesced with the checks that arrive with it (pg_lookup.rs).
        let view = self.lookups.session_with_user(id).await?;
        // The last-seen write, at most once per LAST_SEEN_RESOLUTION, only when it is due.
        if let (Some(t), Some(v)) = (touch, &view) {
            if t.is_due(&v.session) {
                sqlx::query(
                    "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 \
                       AND gen = $3 AND revoked_at IS NULL AND last_seen_at < $4",
                )
                .bind(id)
                .bind(t.now)
                .bind(t.gen)
                .bind(t.older_than)
                .execute(&self.pool)
                .await
                .map_err(map_error)?;
            }
        }
        Ok(view)
    }

    async fn user_sessions(&self, user_id: i64, live: &Liveness) -> StoreResult<Vec<Session>> {
        let rows: Vec<SessionRow> = sqlx::query_as(&format!(
            "SELECT {SESSION_ID}, {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = $1 AND {} \
             ORDER BY s.created_at DESC, s.id DESC",
            live_condition("$2", "$3::BIGINT")
        ))
        .bind(user_id)
        .bind(live.now)
        .bind(live.idle_cutoff)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        rows_into(rows)
    }

    async fn revoke_user_session(
        &self,
        id: Uuid,
        user_id: i64,
        live: &Liveness,
        reason: &str,
    ) -> StoreResult<bool> {
        let result = sqlx::query(&format!(
            "UPDATE sessions s SET revoked_at = $3, revoke_reason = $5 \
             WHERE s.id = $1 AND s.user_id = $2 AND {}",
            live_condition("$3", "$4::BIGINT")
        ))
        .bind(id)
        .bind(user_id)
        .bind(live.now)
        .bind(live.idle_cutoff)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: i64,
        except: Option<Uuid>,
        now: UnixTime,
        reason: &str,
    ) -> StoreResult<u64> {
        let result = sqlx::query(
            "UPDATE sessions SET revoked_at = $3, revoke_reason = $4 \
             WHERE user_id = $1 AND revoked_at IS NULL AND ($2::UUID IS NULL OR id <> $2)",
        )
        .bind(user_id)
        .bind(except)
        .bind(now)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(result.rows_affected())
    }

    async fn count_live_sessions(&self, live: &Liveness) -> StoreResult<i64> {
        sqlx::query_scalar(&format!(
            "SELECT count(*) FROM sessions s WHERE {}",
            live_condition("$1", "$2::BIGINT")
        ))
        .bind(live.now)
        .bind(live.idle_cutoff)
        .fetch_one(&self.pool)
        .await
        .map_err(map_error)
    }

    async fn list_sessions(&self, f: &SessionFilter) -> StoreResult<Vec<SessionWithUser>> {
        let (after_at, after_id) = f
            .after
            .map_or((None, None), |(at, id)| (Some(at), Some(id)));
        let sql = select_joined(
            "sessions s JOIN users u ON u.id = s.user_id",
            &format!(
                "WHERE {} AND ($3::BIGINT IS NULL OR s.user_id = $3) \
                 AND ($4::TEXT IS NULL OR u.email = $4) \
                 AND ($5::BIGINT IS NULL OR (s.created_at, s.id) < ($5, $6::UUID)) \
                 ORDER BY s.created_at DESC, s.id DESC LIMIT $7",
                live_condition("$1", "$2::BIGINT")
            ),
        );
        let rows: Vec<SessionUserRow> = sqlx::query_as(&sql)
            .bind(f.live.now)
            .bind(f.live.idle_cutoff)
            .bind(f.user_id)
            .bind(&f.email)
            .bind(after_at)
            .bind(after_id)
            .bind(i64::from(f.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        rows_into(rows)
    }

    async fn set_user_active(
        &self,
        user_id: i64,
        active: bool,
        now: UnixTime,
        reason: &str,
    ) -> StoreResult<Option<User>> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let user: Option<User> =
            sqlx::query_as("UPDATE users SET is_active = $2 WHERE id = $1 RETURNING *")
                .bind(user_id)
                .bind(active)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?;
        if user.is_some() && !active {
            sqlx::query(
                "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 \
                 WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(user_id)
            .bind(now)
            .bind(reason)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(user)
    }

    async fn change_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep: Uuid,
        now: UnixTime,
        reason: &str,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query("UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        let revoked = sqlx::query(
            "UPDATE sessions SET revoked_at = $3, revoke_reason = $4 \
             WHERE user_id = $1 AND revoked_at IS NULL AND id <> $2",
        )
        .bind(user_id)
        .bind(keep)
        .bind(now)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(revoked.rows_affected())
    }

    async fn login_failures(&self, keys: &[String]) -> StoreResult<Vec<LoginFailures>> {
        sqlx::query_as("SELECT * FROM login_failures WHERE key = ANY($1)")
            .bind(keys)
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn record_login_failure(
        &self,
        key: &str,
        now: UnixTime,
        window_cutoff: UnixTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO login_failures (key, failures, window_start, last_failure_at) \
             VALUES ($1, 1, $2, $2) ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN login_failures.window_start < $3 THEN 1 \
                             ELSE login_failures.failures + 1 END, \
             window_start = CASE WHEN login_failures.window_start < $3 THEN $2 \
                                 ELSE login_failures.window_start END, \
             last_failure_at = $2",
        )
        .bind(key)
        .bind(now)
        .bind(window_cutoff)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn purge(&self, p: &Purge) -> StoreResult<u64> {
        // Each statement deletes at most one batch; SKIP LOCKED lets replicas purge side by
        // side and never waits on a row a request is using.
        let batch = i64::from(p.batch);
        let mut deleted = 0;
        // Ordinary sessions past their refresh window whose last token has expired.
        deleted += sqlx::query(
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
               WHERE revoked_at IS NULL AND refresh_until < $1 AND rotated_at < $2 \
               LIMIT $3 FOR UPDATE SKIP LOCKED)",
        )
        .bind(p.now)
        .bind(p.tokens_expired_before)
        .bind(batch)
        .execute(&self.pool)
        .await
        .map_err(map_error)?
        .rows_affected();
        // Idle-expired sessions whose last token has expired.
        if let Some(idle_cutoff) = p.idle_cutoff {
            deleted += sqlx::query(
                "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
                   WHERE revoked_at IS NULL AND last_seen_at < $1 AND rotated_at < $2 \
                   LIMIT $3 FOR UPDATE SKIP LOCKED)",
            )
            .bind(idle_cutoff)
            .bind(p.tokens_expired_before)
            .bind(batch)
            .execute(&self.pool)
            .await
            .map_err(map_error)?
            .rows_affected();
        }
        // Revoked sessions past the retention.
        deleted += sqlx::query(
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
               WHERE revoked_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(p.revoked_before)
        .bind(batch)
        .execute(&self.pool)
        .await
        .map_err(map_error)?
        .rows_affected();
        // Failure counters that no longer throttle anyone.
        deleted += sqlx::query(
            "DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures \
               WHERE last_failure_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(p.failures_before)
        .bind(batch)
        .execute(&self.pool)
        .await
        .map_err(map_error)?
        .rows_affected();
        Ok(deleted)
    }

    async fn rotate_session(&self, r: &Rotation) -> StoreResult<Option<SessionWithUser>> {
        // Coalesced with concurrent refreshes into one statement and one commit.
        self.rotator.rotate(r).await
    }

    async fn revoke_session(
        &self,
        id: Uuid,
        gen: Option<i64>,
        now: UnixTime,
        reason: &str,
    ) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 \
             WHERE id = $1 AND revoked_at IS NULL AND ($4::BIGINT IS NULL OR gen = $4)",
        )
        .bind(id)
        .bind(now)
        .bind(reason)
        .bind(gen)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<KeyRow>> {
        sqlx::query_as("SELECT * FROM signing_keys ORDER BY activates_at, kid")
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn insert_signing_key(&self, key: &KeyRow) -> StoreResult<bool> {
        let result = sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, secret, public_key, created_at, activates_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(&key.secret)
        .bind(&key.public_key)
        .bind(key.created_at)
        .bind(key.activates_at)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn update_signing_key_secret(&self, kid: &str, secret: &str) -> StoreResult<()> {
        sqlx::query("UPDATE signing_keys SET secret = $2 WHERE kid = $1")
            .bind(kid)
            .bind(secret)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn delete_setting(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM settings WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)
    }
}
