//! The PostgreSQL store: the production backend, shared by any number of replicas.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

use super::{
    map_common, NewSession, NewUser, Rotation, SessionUserRow, SessionWithUser, Store, StoreError,
    StoreResult, User, SESSION_COLUMNS, USER_COLUMNS,
};
use crate::clock::UnixTime;

/// How long a request waits for a pooled connection before it is answered 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 16;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(map_error)?;
        Ok(Self { pool })
    }
}

fn map_error(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        match db.constraint() {
            Some("users_email_key") => return StoreError::Conflict("users_email_key"),
            Some("users_username_key") => return StoreError::Conflict("users_username_key"),
            _ => {}
        }
    }
    map_common(err)
}

fn select_joined(from: &str, filter: &str) -> String {
    format!("SELECT s.id::text AS s_id, {SESSION_COLUMNS}, {USER_COLUMNS} FROM {from} {filter}")
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

    async fn create_session(&self, new: &NewSession) -> StoreResult<SessionWithUser> {
        // One round trip: record the login on the user and insert the session together.
        let sql = format!(
            "WITH u AS (UPDATE users SET last_login_at = $4 WHERE id = $2 RETURNING *), \
             s AS (INSERT INTO sessions (id, user_id, forever, gen, rotated_at, created_at, \
                   last_seen_at, refresh_until, device, user_agent, ip) \
                   VALUES ($1, $2, $3, 0, $4, $4, $4, $5, $6, $7, $8) RETURNING *) {}",
            select_joined("s JOIN u ON u.id = s.user_id", "")
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
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        row.try_into()
    }

    async fn session_with_user(&self, id: Uuid) -> StoreResult<Option<SessionWithUser>> {
        let sql = select_joined(
            "sessions s JOIN users u ON u.id = s.user_id",
            "WHERE s.id = $1",
        );
        let row: Option<SessionUserRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn rotate_session(&self, r: &Rotation) -> StoreResult<Option<SessionWithUser>> {
        // The rotation is this one statement: the WHERE clause is the whole rule, so two
        // racing refreshes of one token can never both move the counter.
        let sql = format!(
            "WITH s AS (UPDATE sessions SET gen = gen + 1, rotated_at = $3, last_seen_at = $3 \
               WHERE id = $1 AND gen = $2 AND revoked_at IS NULL \
                 AND (refresh_until IS NULL OR refresh_until >= $3) \
                 AND ($4::BIGINT IS NULL OR last_seen_at >= $4) \
                 AND EXISTS (SELECT 1 FROM users x WHERE x.id = sessions.user_id \
                             AND x.is_active AND (x.is_sys_admin OR NOT $5)) \
               RETURNING *) {}",
            select_joined("s JOIN users u ON u.id = s.user_id", "")
        );
        let row: Option<SessionUserRow> = sqlx::query_as(&sql)
            .bind(r.session_id)
            .bind(r.expected_gen)
            .bind(r.now)
            .bind(r.idle_cutoff)
            .bind(r.require_admin)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(TryInto::try_into).transpose()
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
