//! Group commit for refreshes on PostgreSQL.
//!
//! One refresh is one `UPDATE … RETURNING` and one commit, and a commit waits for its WAL
//! flush. At high concurrency that flush, not the CPU, bounds the rate. So refreshes that
//! arrive while others are in flight are coalesced: one rotation task takes every request
//! waiting for it and rotates them all in one statement (one round trip, one commit), so
//! batches are as large as the load makes them. (Measured in BENCHMARKS.md: one such task
//! rotates about twice as many sessions per second as four smaller ones at 16 clients.)
//!
//! Nothing about the rules changes. The statement gives each row its own condition (`gen`
//! equal to the presented one, not revoked, inside its windows, user active), so two racing
//! refreshes of one token can never both move the counter; a request is answered only after the
//! commit that rotated it, so durability is unchanged. A lone refresh runs at once, so
//! coalescing never adds waiting. A session twice in one batch waits for the next one. A batch
//! that deadlocks with another statement (another replica's batch, a global logout) is rolled
//! back whole and run again.
//!
//! The rule is written once (`refresh_rule!` in `../sql.rs`) and used by both statements
//! here: the one-row form for a lone refresh and the batch form. A lone refresh through the
//! batch form was measured at about two thirds of the rate of the one-row form (1.5–1.8k
//! against 2.4–2.5k refreshes/s at one client), so both forms stay.

use std::collections::{HashMap, HashSet};

use sqlx::PgPool;
use uuid::Uuid;

use super::super::api::{Rotation, SessionWithUser};
use super::super::error::StoreResult;
use super::super::row::SessionUserRow;
use super::coalesce::{answer, by_session, gather, Answer, Coalescer, Requests};
use super::errors::{is_deadlock, map_error};

/// How often a batch that lost a deadlock is run before its error is answered (a 503).
const DEADLOCK_ATTEMPTS: u32 = 3;
/// The most rotations in one statement.
const MAX_BATCH: usize = 256;

/// The rotation of one session, and its row with its user.
const ROTATE_ONE: &str = concat!(
    "WITH s AS (",
    rotate_one!(),
    " RETURNING *) ",
    select_joined!("s JOIN users u ON u.id = s.user_id", "")
);

/// The same rule for many sessions at once (distinct ids), each row with its own parameters.
const ROTATE_MANY: &str = concat!(
    "WITH i AS (SELECT * FROM unnest($1::UUID[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], \
     $5::BOOLEAN[]) AS i(id, expected_gen, now, idle_cutoff, require_admin)), s AS (",
    rotate_set!("i.now"),
    " FROM i WHERE sessions.id = i.id AND ",
    refresh_rule!(
        "i.expected_gen",
        "i.now",
        "i.idle_cutoff",
        "i.require_admin"
    ),
    " RETURNING sessions.*) ",
    select_joined!("s JOIN users u ON u.id = s.user_id", "")
);

pub struct Rotator(Coalescer<Rotation>);

impl Rotator {
    /// Starts the rotation task; it stops when the rotator is dropped.
    pub fn start(pool: PgPool) -> Self {
        Self(Coalescer::start("rotation", move |requests| {
            rotate_batches(pool, requests)
        }))
    }

    pub async fn rotate(&self, rotation: &Rotation) -> Answer {
        self.0.submit(rotation.clone()).await
    }
}

async fn rotate_batches(pool: PgPool, mut requests: Requests<Rotation>) {
    let mut waiting = Vec::new();
    while gather(&mut requests, &mut waiting, MAX_BATCH).await {
        // One request per session in a batch; a repeat waits for the next batch.
        let mut seen = HashSet::new();
        let (batch, later): (Vec<_>, Vec<_>) = waiting
            .drain(..)
            .partition(|(rotation, _)| seen.insert(rotation.session_id));
        waiting = later;
        let (rotations, replies): (Vec<Rotation>, Vec<_>) = batch.into_iter().unzip();
        let result = match rotations.as_slice() {
            [] => continue,
            [one] => rotate_one(&pool, one).await,
            many => {
                metrics::histogram!("tenure_refresh_batch_size").record(many.len() as f64);
                rotate_many(&pool, many).await
            }
        };
        let ids = rotations.iter().map(|r| r.session_id);
        answer(ids.zip(replies), result);
    }
}

async fn rotate_one(pool: &PgPool, r: &Rotation) -> StoreResult<HashMap<Uuid, SessionWithUser>> {
    let row: Option<SessionUserRow> = sqlx::query_as(ROTATE_ONE)
        .bind(r.session_id)
        .bind(r.expected_gen)
        .bind(r.now)
        .bind(r.idle_cutoff)
        .bind(r.require_admin)
        .fetch_optional(pool)
        .await
        .map_err(map_error)?;
    by_session(row)
}

async fn rotate_many(
    pool: &PgPool,
    rotations: &[Rotation],
) -> StoreResult<HashMap<Uuid, SessionWithUser>> {
    // A batch locks several rows in the order of its plan, so it can deadlock with another
    // statement that locks some of them in another order (a global logout, another replica's
    // batch). PostgreSQL then rolls one of them back whole; the batch is simply run again, its
    // conditions evaluated afresh.
    let mut attempt = 1;
    let rows: Vec<SessionUserRow> = loop {
        let result = sqlx::query_as(ROTATE_MANY)
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
            Err(err) if attempt < DEADLOCK_ATTEMPTS && is_deadlock(&err) => attempt += 1,
            other => break other.map_err(map_error)?,
        }
    };
    by_session(rows)
}
