//! Group commit for refreshes on PostgreSQL.
//!
//! One refresh is one `UPDATE … RETURNING` and one commit, and a commit waits for its WAL
//! flush. At high concurrency that flush, not the CPU, bounds the rate. So refreshes that
//! arrive while others are in flight are coalesced: a rotation lane takes every
//! request waiting for it and rotates them all in one statement (one round trip, one commit).
//!
//! Nothing about the rules changes. Each row still carries its own condition (`gen` equal to
//! the presented one, not revoked, inside its windows, user active) in the same single
//! statement, so two racing refreshes of one token can never both move the counter; a request
//! is answered only after the commit that rotated it, so durability is unchanged. A session
//! always goes to the same lane (by its id), so one server's batches never touch the same row
//! at once; a session twice in one batch waits for the next one. A batch that deadlocks with
//! another statement (another replica's batch, a global logout) is rolled back whole and run
//! again. A request arriving at an idle lane runs at once, alone: coalescing never adds waiting.

use std::collections::{HashMap, HashSet};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{Rotation, SessionUserRow, SessionWithUser, StoreError, StoreResult};

/// Rotation lanes. One: every refresh that arrives while a batch commits joins the next batch,
/// so batches are as large as the load makes them (measured in BENCHMARKS.md: one lane rotates
/// about twice as many sessions per second as four at 16 clients). More lanes would let batches
/// overlap, but each would be smaller and the commits, not the CPU, are what the lanes share.
const LANES: usize = 1;
/// How often a batch that lost a deadlock is run before its error is answered (a 503).
const DEADLOCK_ATTEMPTS: u32 = 3;
/// The most rotations in one statement.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<StoreResult<Option<SessionWithUser>>>;

pub struct Rotator {
    lanes: Vec<mpsc::UnboundedSender<(Rotation, Reply)>>,
}

impl Rotator {
    /// Starts the lanes; they stop when the rotator is dropped.
    pub fn start(pool: PgPool, single: String, batched: String) -> Self {
        let lanes = (0..LANES)
            .map(|_| {
                let (send, receive) = mpsc::unbounded_channel();
                tokio::spawn(lane(pool.clone(), single.clone(), batched.clone(), receive));
                send
            })
            .collect();
        Self { lanes }
    }

    pub async fn rotate(&self, rotation: &Rotation) -> StoreResult<Option<SessionWithUser>> {
        let lane = &self.lanes[lane_of(rotation.session_id)];
        let (reply, answer) = oneshot::channel();
        lane.send((rotation.clone(), reply))
            .map_err(|_| StoreError::Other("the rotation lane stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Other("the rotation lane dropped a request".into()))?
    }
}

fn lane_of(id: Uuid) -> usize {
    (id.as_u128() % LANES as u128) as usize
}

async fn lane(
    pool: PgPool,
    single: String,
    batched: String,
    mut receive: mpsc::UnboundedReceiver<(Rotation, Reply)>,
) {
    let mut waiting: Vec<(Rotation, Reply)> = Vec::new();
    loop {
        if waiting.is_empty() {
            match receive.recv().await {
                Some(request) => waiting.push(request),
                None => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match receive.try_recv() {
                Ok(request) => waiting.push(request),
                Err(_) => break,
            }
        }
        // One request per session in a batch; a repeat waits for the next batch.
        let mut seen = HashSet::new();
        let (batch, later): (Vec<_>, Vec<_>) = waiting
            .drain(..)
            .partition(|(rotation, _)| seen.insert(rotation.session_id));
        waiting = later;
        // Callers that gave up (a timed-out request) need no rotation.
        let batch: Vec<_> = batch
            .into_iter()
            .filter(|(_, reply)| !reply.is_closed())
            .collect();
        match batch.len() {
            0 => {}
            1 => {
                for (rotation, reply) in batch {
                    let _ = reply.send(rotate_one(&pool, &single, &rotation).await);
                }
            }
            n => {
                metrics::histogram!("tenure_refresh_batch_size").record(n as f64);
                let (rotations, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                match rotate_many(&pool, &batched, &rotations).await {
                    Ok(mut rotated) => {
                        for (rotation, reply) in rotations.iter().zip(replies) {
                            let _ = reply.send(Ok(rotated.remove(&rotation.session_id)));
                        }
                    }
                    Err(err) => {
                        let message = err.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(match &err {
                                StoreError::Unavailable(_) => {
                                    StoreError::Unavailable(message.clone())
                                }
                                _ => StoreError::Other(message.clone()),
                            }));
                        }
                    }
                }
            }
        }
    }
}

async fn rotate_one(
    pool: &PgPool,
    sql: &str,
    r: &Rotation,
) -> StoreResult<Option<SessionWithUser>> {
    let row: Option<SessionUserRow> = sqlx::query_as(sql)
        .bind(r.session_id)
        .bind(r.expected_gen)
        .bind(r.now)
        .bind(r.idle_cutoff)
        .bind(r.require_admin)
        .fetch_optional(pool)
        .await
        .map_err(super::postgres::map_error)?;
    row.map(TryInto::try_into).transpose()
}

async fn rotate_many(
    pool: &PgPool,
    sql: &str,
    rotations: &[Rotation],
) -> StoreResult<HashMap<Uuid, SessionWithUser>> {
    // A batch locks several rows in the order of its plan, so it can deadlock with another
    // statement that locks some of them in another order (a global logout, another replica's
    // batch). PostgreSQL then rolls one of them back whole; the batch is simply run again, its
    // conditions evaluated afresh.
    let mut attempt = 1;
    let rows: Vec<SessionUserRow> = loop {
        let result = sqlx::query_as(sql)
            .bind(rotations.iter().map(|r| r.session_id).collect::<Vec<_>>())
            .bind(rotations.iter().map(|r| r.expected_gen).collect::<Vec<_>>())
            .bind(rotations.iter().map(|r| r.now).collect::<Vec<_>>())
            .bind(rotations.iter().map(|r| r.idle_cutoff).collect::<Vec<_>>())
            .bind(
                rotations
                    .iter()
                    .map(|r| r.require_admin)
                    .collect::<Vec<_>>(),
            )
            .fetch_all(pool)
            .await;
        match result {
            Err(err) if attempt < DEADLOCK_ATTEMPTS && super::postgres::is_deadlock(&err) => {
                attempt += 1;
            }
            other => break other.map_err(super::postgres::map_error)?,
        }
    };
    rows.into_iter()
        .map(|row| {
            let view = SessionWithUser::try_from(row)?;
            Ok((view.session.id, view))
        })
        .collect()
}
