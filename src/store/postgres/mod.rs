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

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

use super::api::{LoginFailures, Rotation, SessionWithUser};
use super::error::{StoreError, StoreResult};
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
}

impl PostgresStore {
    pub async fn connect(url: &str, acquire_timeout: Duration) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(StoreError::database)?
            .options([(
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT.as_millis().to_string(),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(acquire_timeout)
            // No ping before every query (a round trip per request): a connection the server
            // dropped fails its query with a connection error, which is a 503, and is replaced.
            .test_before_acquire(false)
            .connect_with(options)
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
