//! The PostgreSQL store: the production backend, shared by any number of replicas.
//!
//! The statements shared with SQLite are in `../sql.rs`. What is PostgreSQL's own: session
//! checks and refreshes are coalesced into one statement per batch by two tasks (`lookup.rs`,
//! `rotation.rs`, on the plumbing of `coalesce.rs`), the failure counters of several keys are
//! read with one `ANY`, and purges skip locked rows.

mod coalesce;
mod errors;
mod lookup;
mod rotation;

use std::time::Duration;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

use super::api::{LoginFailures, Rotation, SessionWithUser};
use super::error::{StoreError, StoreResult};
use super::Work;
use errors::map_error;
use lookup::Lookups;
use rotation::Rotator;

const MAX_CONNECTIONS: u32 = 16;
/// How long the server keeps a transaction of ours open while waiting for our next statement.
/// No transaction of tenure waits on anything but the database between its statements, so only
/// a lost connection or a partition reaches this: the server then rolls back (a rotation whose
/// `COMMIT` is stuck in the network is never committed late; see `rotation.rs`).
const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PostgresStore {
    pool: PgPool,
    rotator: Rotator,
    lookups: Lookups,
    /// Until when (milliseconds on [`Suspect`]'s clock) pooled connections are tested before
    /// use: set when a connection broke, since its siblings likely broke with it.
    suspect: Arc<Suspect>,
}

/// How long after a broken connection the pool tests the connections it hands out. A restart
/// of PostgreSQL breaks every pooled connection at once; each is then found dead by a ping
/// instead of by a request.
const SUSPECT_FOR: Duration = Duration::from_secs(10);

/// Whether pooled connections should be tested before use, and until when.
struct Suspect {
    start: Instant,
    until_ms: AtomicU64,
}

impl Suspect {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn raise(&self) {
        let until = self.now_ms().saturating_add(SUSPECT_FOR.as_millis() as u64);
        self.until_ms.fetch_max(until, Ordering::Relaxed);
    }

    fn active(&self) -> bool {
        self.now_ms() < self.until_ms.load(Ordering::Relaxed)
    }
}

impl PostgresStore {
    pub async fn connect(url: &str, acquire_timeout: Duration) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(StoreError::database)?
            .options([(
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT.as_millis().to_string(),
            )]);
        let suspect = Arc::new(Suspect {
            start: Instant::now(),
            until_ms: AtomicU64::new(0),
        });
        let testing = suspect.clone();
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(acquire_timeout)
            // No ping before every query (a round trip per request). A connection the server
            // dropped fails its statement with a broken-connection error; the store then tests
            // connections before use for a while (`Suspect`) and runs the statement once more,
            // on a connection that answered the test.
            .test_before_acquire(false)
            .before_acquire(move |conn, _meta| {
                let testing = testing.clone();
                Box::pin(async move {
                    if testing.active() {
                        use sqlx::Connection;
                        Ok(conn.ping().await.is_ok())
                    } else {
                        Ok(true)
                    }
                })
            })
            .connect_with(options)
            .await
            .map_err(map_error)?;
        let rotator = Rotator::start(pool.clone());
        let lookups = Lookups::start(pool.clone(), acquire_timeout);
        Ok(Self {
            pool,
            rotator,
            lookups,
            suspect,
        })
    }

    /// A connection broke: test the pooled ones before use for a while.
    fn connection_broke(&self) {
        tracing::warn!("a database connection broke; testing pooled connections before use");
        self.suspect.raise();
    }

    /// Runs a write's statements on a pooled connection (autocommit, or the transaction they
    /// begin), once more on a fresh one when the first broke before any answer.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: for<'c> FnOnce(&'c mut sqlx::PgConnection) -> Work<'c, T> + Clone + Send,
    {
        retry_broken!(self, {
            let mut conn = self.pool.acquire().await.map_err(map_error)?;
            work.clone()(&mut conn).await
        })
    }

    /// A key lookup, coalesced with the checks that arrive with it (`lookup.rs`).
    async fn find_session(&self, id: Uuid) -> StoreResult<Option<SessionWithUser>> {
        self.lookups.session_with_user(id).await
    }

    /// Coalesced with concurrent refreshes into one statement and one commit (`rotation.rs`).
    async fn rotate(&self, r: &Rotation) -> StoreResult<Option<SessionWithUser>> {
        self.rotator.rotate(r).await
    }

    async fn failures(&self, keys: &[String]) -> StoreResult<Vec<LoginFailures>> {
        sqlx::query_as("SELECT * FROM login_failures WHERE key = ANY($1)")
            .bind(keys)
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)
    }
}

impl PostgresStore {
    /// Moves the `users.id` identity past `highest` (explicit ids do not advance it), never
    /// back: ids of deleted users are not handed out again.
    async fn advance_user_ids(tx: &mut sqlx::PgConnection, highest: i64) -> StoreResult<()> {
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), $1) \
             WHERE $1 > COALESCE(pg_sequence_last_value(\
             CAST(pg_get_serial_sequence('users', 'id') AS regclass)), 0)",
        )
        .bind(highest)
        .execute(tx)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    /// A session cap's lock (`MAX_SESSIONS_PER_IP`, `MAX_SESSIONS`): logins that count against
    /// one cap take turns from their count to their commit, so none counts before another's
    /// insert is visible. Released with the transaction.
    async fn lock_cap(conn: &mut sqlx::PgConnection, key: i64) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(conn)
            .await
            .map_err(map_error)?;
        Ok(())
    }
}

/// The database the statements of `../sql.rs` are built for.
type Db = sqlx::Postgres;

/// PostgreSQL stores session ids as `uuid`.
fn id_uuid(id: Uuid) -> Uuid {
    id
}

impl_store!(
    PostgresStore,
    name: "postgres",
    migrations: "migrations/postgres",
    id: id_uuid,
    map_error: map_error,
    skip_locked: "FOR UPDATE SKIP LOCKED",
    for_share: "FOR SHARE",
);
