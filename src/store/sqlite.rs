//! The SQLite store: the zero-setup default (`cargo run` creates `tenure.db`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use uuid::Uuid;

use super::{
    map_common, NewSession, NewUser, Rotation, SessionUserRow, SessionWithUser, Store, StoreError,
    StoreResult, User, SESSION_COLUMNS, USER_COLUMNS,
};
use crate::clock::UnixTime;

/// How long a writer waits for SQLite's single write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 8;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        Ok(Self { pool })
    }
}

fn map_error(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        // SQLite reports no constraint name, only "UNIQUE constraint failed: table.column".
        if db.is_unique_violation() {
            if db.message().contains("users.email") {
                return StoreError::Conflict("users_email_key");
            }
            if db.message().contains("users.username") {
                return StoreError::Conflict("users_username_key");
            }
        }
        if db.message().contains("database is locked") {
            return StoreError::Unavailable(db.message().to_owned());
        }
    }
    map_common(err)
}

fn select_joined(filter: &str) -> String {
    format!(
        "SELECT s.id AS s_id, {SESSION_COLUMNS}, {USER_COLUMNS} \
         FROM sessions s JOIN users u ON u.id = s.user_id {filter}"
    )
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))
    }

    async fn create_user(&self, user: &NewUser) -> StoreResult<User> {
        sqlx::query_as(
            "INSERT INTO users (email, username, password_hash, name, first_name, last_name, \
             is_sys_admin, is_active, created_at, password_changed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8) RETURNING *",
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
        sqlx::query_as("SELECT * FROM users WHERE email = ?1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        sqlx::query_as("SELECT * FROM users WHERE username = ?1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn create_session(&self, new: &NewSession) -> StoreResult<SessionWithUser> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query("UPDATE users SET last_login_at = ?1 WHERE id = ?2")
            .bind(new.created_at)
            .bind(new.user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, forever, gen, rotated_at, created_at, \
             last_seen_at, refresh_until, device, user_agent, ip) \
             VALUES (?1, ?2, ?3, 0, ?4, ?4, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(new.id.to_string())
        .bind(new.user_id)
        .bind(new.forever)
        .bind(new.created_at)
        .bind(new.refresh_until)
        .bind(&new.device)
        .bind(&new.user_agent)
        .bind(&new.ip)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        let row: SessionUserRow = sqlx::query_as(&select_joined("WHERE s.id = ?1"))
            .bind(new.id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        row.try_into()
    }

    async fn session_with_user(&self, id: Uuid) -> StoreResult<Option<SessionWithUser>> {
        let row: Option<SessionUserRow> = sqlx::query_as(&select_joined("WHERE s.id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn rotate_session(&self, r: &Rotation) -> StoreResult<Option<SessionWithUser>> {
        // The UPDATE is the rotation (one statement, the WHERE clause is the whole rule); the
        // SELECT in the same transaction only reads back the row it wrote.
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let rotated = sqlx::query(
            "UPDATE sessions SET gen = gen + 1, rotated_at = ?3, last_seen_at = ?3 \
             WHERE id = ?1 AND gen = ?2 AND revoked_at IS NULL \
               AND (refresh_until IS NULL OR refresh_until >= ?3) \
               AND (?4 IS NULL OR last_seen_at >= ?4) \
               AND EXISTS (SELECT 1 FROM users x WHERE x.id = sessions.user_id \
                           AND x.is_active AND (x.is_sys_admin OR NOT ?5))",
        )
        .bind(r.session_id.to_string())
        .bind(r.expected_gen)
        .bind(r.now)
        .bind(r.idle_cutoff)
        .bind(r.require_admin)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        if rotated.rows_affected() != 1 {
            return Ok(None);
        }
        let row: SessionUserRow = sqlx::query_as(&select_joined("WHERE s.id = ?1"))
            .bind(r.session_id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        row.try_into().map(Some)
    }

    async fn revoke_session(
        &self,
        id: Uuid,
        gen: Option<i64>,
        now: UnixTime,
        reason: &str,
    ) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE sessions SET revoked_at = ?2, revoke_reason = ?3 \
             WHERE id = ?1 AND revoked_at IS NULL AND (?4 IS NULL OR gen = ?4)",
        )
        .bind(id.to_string())
        .bind(now)
        .bind(reason)
        .bind(gen)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        sqlx::query_scalar("SELECT value FROM settings WHERE key = ?1")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)
    }
}
