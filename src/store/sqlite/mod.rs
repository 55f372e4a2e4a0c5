//! The SQLite store: the zero-setup default (`cargo run` creates `tenure.db`).
//!
//! SQLite has one writer at a time, so every write goes through one writer task on one
//! connection that commits the writes waiting together (`writer.rs`); reads run on a pool of
//! readers beside it (WAL). The statements shared with PostgreSQL are in `../sql.rs`; what is
//! SQLite's own is here.

mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::api::{LoginFailures, Rotation, SessionWithUser};
use super::error::{map_common, StoreError, StoreResult};
use super::row::SessionUserRow;
use super::Work;
use writer::Writer;

/// How long the writer waits for SQLite's single write lock (held by another process on the
/// same file, or a reader's checkpoint) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The readers: WAL lets them run beside the writer and each other. A read holds its
/// connection for tens of microseconds (the file is in-process), so a few serve many requests.
const READERS: u32 = 4;
/// Each connection's page cache, in KiB (SQLite's default is 2000): the operating system
/// caches the file as well, and five connections' caches are the bulk of the server's memory
/// beside password hashing.
const CACHE_KIB: i64 = 512;

pub struct SqliteStore {
    /// The readers (and the migrations, which run before anything else).
    pool: SqlitePool,
    /// The one connection that writes, behind its task.
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file of `url`. `synchronous` is SQLite's
    /// durability setting (`FULL`: a commit is on disk before it is answered).
    pub async fn connect(
        url: &str,
        acquire_timeout: Duration,
        synchronous: SqliteSynchronous,
    ) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::database)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("cache_size", format!("-{CACHE_KIB}"));
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            // In-process: a pooled connection cannot have broken, so none is pinged first.
            .test_before_acquire(false)
            .acquire_timeout(acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(map_error)?;
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        Ok(Self {
            pool,
            writer: Writer::start(writes),
        })
    }

    /// Runs `work` on the writer's connection, in the next group commit; answers once that
    /// commit is durable.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Work<'c, T> + Clone + Send + 'static,
    {
        self.writer.run(work).await
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
        let r = r.clone();
        self.write(move |conn| {
            Box::pin(async move {
                // The UPDATE is the rotation (one statement, the WHERE clause is the whole
                // rule); the SELECT only reads back the row it wrote.
                let rotated = sqlx::query(rotate_one!())
                    .bind(id_text(r.session_id))
                    .bind(r.expected_gen)
                    .bind(r.now)
                    .bind(r.idle_cutoff)
                    .bind(r.require_admin)
                    .bind(r.by_credential)
                    .execute(&mut *conn)
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
                .fetch_one(&mut *conn)
                .await
                .map_err(map_error)?;
                row.try_into().map(Some)
            })
        })
        .await
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

    /// Nothing to take: every write runs on the one writer connection, one after another, so
    /// the session caps are already serialised.
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
