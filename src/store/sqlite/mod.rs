//! The SQLite store: the zero-setup default (`cargo run` creates `tenure.db`).
//!
//! SQLite has one writer at a time: every transaction here starts with a write, so it holds
//! the write lock from its first statement and concurrent writers queue (up to BUSY_TIMEOUT).
//! The statements shared with PostgreSQL are in `../sql.rs`; what is SQLite's own is here.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use uuid::Uuid;

use super::api::{LoginFailures, Rotation, SessionWithUser};
use super::error::{map_common, StoreError, StoreResult};
use super::row::SessionUserRow;

/// How long a writer waits for SQLite's single write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 8;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str, acquire_timeout: Duration) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::database)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        Ok(Self { pool })
    }

    async fn find_session(&self, id: Uuid) -> StoreResult<Option<SessionWithUser>> {
        let row: Option<SessionUserRow> = sqlx::query_as(select_joined!(
            "sessions s JOIN users u ON u.id = s.user_id",
            "WHERE s.id = $1"
        ))
        .bind(id_text(id))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn rotate(&self, r: &Rotation) -> StoreResult<Option<SessionWithUser>> {
        // The UPDATE is the rotation (one statement, the WHERE clause is the whole rule); the
        // SELECT in the same transaction only reads back the row it wrote.
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let rotated = sqlx::query(rotate_one!())
            .bind(id_text(r.session_id))
            .bind(r.expected_gen)
            .bind(r.now)
            .bind(r.idle_cutoff)
            .bind(r.require_admin)
            .bind(r.by_credential)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        if rotated.rows_affected() != 1 {
            return Ok(None);
        }
        let row: SessionUserRow = sqlx::query_as(select_joined!(
            "sessions s JOIN users u ON u.id = s.user_id",
            "WHERE s.id = $1"
        ))
        .bind(id_text(r.session_id))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        row.try_into().map(Some)
    }

    /// SQLite runs in-process: a broken connection is not something a fresh one fixes.
    fn connection_broke(&self) {}

    async fn failures(&self, keys: &[String]) -> StoreResult<Vec<LoginFailures>> {
        // SQLite has no arrays: one key lookup each (there are two: the user's and the IP's).
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            let row: Option<LoginFailures> =
                sqlx::query_as("SELECT * FROM login_failures WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_error)?;
            found.extend(row);
        }
        Ok(found)
    }
}

impl SqliteStore {
    /// Nothing to do: `users.id` is `AUTOINCREMENT`, and SQLite records the largest id a row
    /// ever had in `sqlite_sequence`, explicit ids included, so later ids follow the imported
    /// ones (and never reuse a deleted user's).
    async fn advance_user_ids(_tx: &mut sqlx::SqliteConnection, _highest: i64) -> StoreResult<()> {
        Ok(())
    }

    /// Nothing to take: every write transaction here holds SQLite's one write lock from its
    /// first statement, so the session caps are already serialised.
    async fn lock_cap(_conn: &mut sqlx::SqliteConnection, _key: i64) -> StoreResult<()> {
        Ok(())
    }
}

/// The database the statements of `../sql.rs` are built for.
type Db = sqlx::Sqlite;

/// SQLite stores session ids as text.
fn id_text(id: Uuid) -> String {
    id.to_string()
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
            if db.message().contains("apps.name") {
                return StoreError::Conflict("apps_name_key");
            }
            if db.message().contains("apps.api_key_hash") {
                return StoreError::Conflict("apps_api_key_hash_key");
            }
            if db.message().contains("roles.name") {
                return StoreError::Conflict("roles_name_key");
            }
        }
        if db.is_foreign_key_violation() {
            return StoreError::Conflict("foreign_key");
        }
        if db.message().contains("database is locked") {
            return StoreError::unavailable(err);
        }
    }
    map_common(err)
}

impl_store!(
    SqliteStore,
    name: "sqlite",
    migrations: "migrations/sqlite",
    id: id_text,
    map_error: map_error,
    skip_locked: "",
    for_share: "",
);
