//! Coalesced session checks on PostgreSQL.
//!
//! Every authenticated request reads its session and user: one key lookup. Sent one by one,
//! each lookup costs a round trip, and on the database's side a wake-up of a backend process
//! and a statement of its own; under load those wake-ups, not the lookups, take the cores
//! (BENCHMARKS.md). So checks that arrive while others are in flight are coalesced: one
//! lookup task takes every check waiting for it and reads all their sessions in one statement
//! (`WHERE s.id = ANY($1)`), one round trip.
//!
//! Nothing about freshness changes. A check's statement is sent after the check arrived, so it
//! sees every logout, revocation and deactivation committed before the request did, on every
//! replica, exactly as a statement of its own would. There is no cache. A lone check runs at
//! once as the one-row statement, so coalescing never adds waiting.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::super::error::{Stalled, StoreError, StoreResult};
use super::super::row::SessionUserRow;
use super::coalesce::{answer, by_session, gather, Answer, Coalescer, Requests};
use super::errors::map_error;

/// The most sessions read by one statement.
const MAX_BATCH: usize = 512;

pub struct Lookups(Coalescer<Uuid>);

impl Lookups {
    /// Starts the lookup task; it stops when this is dropped. A statement that has not
    /// answered within `stall` (a lock held on the table, a connection that went silent) is
    /// abandoned and its checks answer `Unavailable`, so one stuck statement never holds up
    /// the checks behind it for longer than that.
    pub fn start(pool: PgPool, stall: Duration) -> Self {
        Self(Coalescer::start("lookup", move |requests| {
            look_up_batches(pool, stall, requests)
        }))
    }

    pub async fn session_with_user(&self, id: Uuid) -> Answer {
        self.0.submit(id).await
    }
}

async fn look_up_batches(pool: PgPool, stall: Duration, mut requests: Requests<Uuid>) {
    let one = select_joined!(
        "sessions s JOIN users u ON u.id = s.user_id",
        "WHERE s.id = $1"
    );
    let many = select_joined!(
        "sessions s JOIN users u ON u.id = s.user_id",
        "WHERE s.id = ANY($1)"
    );
    let mut batch = Vec::new();
    while gather(&mut requests, &mut batch, MAX_BATCH).await {
        let rows = match batch.as_slice() {
            [] => continue,
            [(id, _)] => {
                let query = sqlx::query_as::<_, SessionUserRow>(one).bind(id);
                within(stall, query.fetch_optional(&pool))
                    .await
                    .map(Vec::from_iter)
            }
            requests => {
                metrics::histogram!("tenure_check_batch_size").record(requests.len() as f64);
                let ids: Vec<Uuid> = requests.iter().map(|(id, _)| *id).collect();
                let query = sqlx::query_as::<_, SessionUserRow>(many).bind(ids);
                within(stall, query.fetch_all(&pool)).await
            }
        };
        answer(batch.drain(..), rows.and_then(by_session));
    }
}

async fn within<T>(
    stall: Duration,
    query: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> StoreResult<T> {
    match tokio::time::timeout(stall, query).await {
        Ok(result) => result.map_err(map_error),
        Err(_) => Err(StoreError::unavailable(Stalled(format!(
            "a session lookup took longer than {stall:?}"
        )))),
    }
}
