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
//! replica, exactly as a statement of its own would. There is no cache. A check that finds no other in
//! flight runs at once as the one-row statement on its own task, so coalescing never adds
//! waiting, nor a hop to the lookup task.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use super::super::error::{Stalled, StoreError, StoreResult};
use super::super::row::SessionUserRow;
use super::coalesce::{answer, by_session, gather, Answer, Coalescer, Requests};
use super::errors::map_error;

/// The most sessions read by one statement.
const MAX_BATCH: usize = 512;

pub struct Lookups {
    coalescer: Coalescer<Uuid>,
    pool: PgPool,
    stall: Duration,
    busy: Arc<Busy>,
    /// Checks handed to the lookup task and not yet answered.
    queued: Arc<AtomicUsize>,
}

/// A queued check's place in `queued`, given back when it is answered (or abandoned).
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a statement of checks is in flight (the task's batch, or a lone check's own): one at
/// a time, as when the task ran them all.
#[derive(Default)]
struct Busy {
    taken: AtomicBool,
    freed: Notify,
}

impl Busy {
    fn taken(&self) -> bool {
        self.taken.load(Ordering::Acquire)
    }

    /// Takes the turn if it is free.
    fn try_take(self: &Arc<Self>) -> Option<Turn> {
        self.taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then(|| Turn(self.clone()))
    }

    /// Waits for the turn.
    async fn take(self: &Arc<Self>) -> Turn {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(turn) = self.try_take() {
                return turn;
            }
            freed.await;
        }
    }
}

/// The turn to have a statement in flight, given back when dropped.
struct Turn(Arc<Busy>);

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.taken.store(false, Ordering::Release);
        self.0.freed.notify_waiters();
    }
}

impl Lookups {
    /// Starts the lookup task; it stops when this is dropped. A statement that has not
    /// answered within `stall` (a lock held on the table, a connection that went silent) is
    /// abandoned and its checks answer `Unavailable`, so one stuck statement never holds up
    /// the checks behind it for longer than that.
    pub fn start(pool: PgPool, stall: Duration) -> Self {
        let busy = Arc::new(Busy::default());
        let task = (pool.clone(), busy.clone());
        Self {
            coalescer: Coalescer::start("lookup", move |requests| {
                look_up_batches(task.0, stall, task.1, requests)
            }),
            pool,
            stall,
            busy,
            queued: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A check that finds no statement of checks in flight runs its own at once, on its own
    /// task (the hop to the lookup task would only add a wake-up: +23 % checks/s at one
    /// client); one that finds one in flight, or checks queued, queues for the next batch,
    /// which starts when that statement ends.
    pub async fn session_with_user(&self, id: Uuid) -> Answer {
        // Only when none waits for the task either: a check never overtakes queued ones.
        let alone = || self.queued.load(Ordering::Acquire) == 0;
        if alone() && !self.busy.taken() {
            // The connection first, then the turn: a check that waits for a connection (the
            // database is down) holds up no other check while it waits.
            let mut conn = self.pool.acquire().await.map_err(map_error)?;
            if let Some(_turn) = alone().then(|| self.busy.try_take()).flatten() {
                let query = sqlx::query_as::<_, SessionUserRow>(ONE).bind(id);
                let row = within(self.stall, query.fetch_optional(&mut *conn)).await?;
                return row.map(TryInto::try_into).transpose();
            }
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        let _queued = Queued(self.queued.clone());
        self.coalescer.submit(id).await
    }
}

/// One session and its user.
const ONE: &str = select_joined!(
    "sessions s JOIN users u ON u.id = s.user_id",
    "WHERE s.id = $1"
);

async fn look_up_batches(
    pool: PgPool,
    stall: Duration,
    busy: Arc<Busy>,
    mut requests: Requests<Uuid>,
) {
    let many = select_joined!(
        "sessions s JOIN users u ON u.id = s.user_id",
        "WHERE s.id = ANY($1)"
    );
    let mut batch = Vec::new();
    while gather(&mut requests, &mut batch, MAX_BATCH).await {
        if batch.is_empty() {
            continue;
        }
        // A lone check's own statement may be in flight: the batch waits for it to end.
        let _turn = busy.take().await;
        let rows = match batch.as_slice() {
            [(id, _)] => {
                let query = sqlx::query_as::<_, SessionUserRow>(ONE).bind(id);
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
