//! Persistence: the [`Store`] trait (`api.rs`), its errors (`error.rs`), and one
//! implementation per backend (`sqlite/`, `postgres/`). The statements both backends run are
//! written once (`sql.rs`), and so is the mapping of their rows (`row.rs`); both backends pass
//! the same conformance tests (`tests/store`). The store holds no policy: the session service
//! decides, the store runs plain statements.

#[macro_use]
mod sql;
mod api;
mod error;
mod postgres;
mod row;
mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use api::*;
pub use error::{Cause, StoreError, StoreResult};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A write's statements, run on a connection the store hands them: owned, so that SQLite's
/// writer task can run them (`sqlite/writer.rs`).
pub(crate) type Work<'c, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'c>>;

/// Opens the store that `database_url` names (creating a SQLite file when missing). A request
/// waits at most `acquire_timeout` for a connection before the store answers `Unavailable`;
/// `sqlite_synchronous` is SQLite's durability (PostgreSQL's is the server's own setting).
pub async fn connect(
    database_url: &str,
    acquire_timeout: std::time::Duration,
    sqlite_synchronous: crate::config::SqliteSynchronous,
) -> StoreResult<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        let synchronous = match sqlite_synchronous {
            crate::config::SqliteSynchronous::Full => sqlx::sqlite::SqliteSynchronous::Full,
            crate::config::SqliteSynchronous::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
        };
        Ok(Arc::new(
            SqliteStore::connect(database_url, acquire_timeout, synchronous).await?,
        ))
    } else {
        Ok(Arc::new(
            PostgresStore::connect(database_url, acquire_timeout).await?,
        ))
    }
}

/// tenure's own statements, for the benchmarks that run them against the database alone
/// (`bench/sqlite_commit_rate.rs`), so a baseline measures exactly the text tenure runs.
#[doc(hidden)]
pub mod statements {
    /// The rotation of one session: `$1` id (as SQLite stores it: text), `$2` gen, `$3` now,
    /// `$4` idle cutoff (or null), `$5` admin only, `$6` by refresh credential.
    pub const ROTATE_ONE: &str = rotate_one!();
}
