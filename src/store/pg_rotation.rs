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
//! The rule is written twice, side by side below: for one session ([`rotate_one_sql`]) and for
//! a batch ([`rotate_many_sql`]). A lone refresh through the batch form was measured at about
//! two thirds of the rate of the one-row form (1.5–1.8k against 2.4–2.5k refreshes/s at one
//! client); a change to one must be made to the other.

use std::collections::{HashMap, HashSet};

use sqlx::PgPool;
use uuid::Uuid;

use super::pg_coalesce::{answer, by_session, gather, Answer, Coalescer, Requests};
use super::postgres::{is_deadlock, map_error, select_joined};
use super::{Rotation, SessionUserRow, SessionWithUser, StoreResult};

/// How often a batch that lost a deadlock is run before its error is answered (a 503).
const DEADLOCK_ATTEMPTS: u32 = 3;
/// The most rotations in one statement.
const MAX_BATCH: usize = 256;

/// The rotation rule for one session: the WHERE clause is the whole rule.
fn rotate_one_sql() -> String {
    format!(
        "WITH s AS (UPDATE sessions SET gen = gen + 1, rotated_at = $3, last_seen_at = $3 \
           WHERE id = $1 AND gen = $2 AND revoked_at IS NULL \
             AND (refresh_until IS NULL OR refresh_until >= $3) \
             AND ($4::BIGINT IS NULL OR last_seen_at >= $4) \
             AND EXISTS (SELECT 1 FROM users x WHERE x.id = sessions.user_id \
                         AND x.is_active AND (x.is_sys_admin OR NOT $5)) \
           RETURNING *) {}",
        select_joined("s JOIN users u ON u.id = s.user_id", "")
    )
}

/// The same rule for many sessions at once (distinct ids), each row with its own parameters.
fn rotate_many_sql() -> String {
    format!(
        "WITH i AS (SELECT * FROM unnest($1::UUID[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], \
                                        $5::BOOLEAN[]) \
                    AS i(id, expected_gen, now, idle_cutoff, require_admin)), \
         s AS (UPDATE sessions SET gen = sessions.gen + 1, rotated_at = i.now, last_seen_at = i.now \
           FROM i \
           WHERE sessions.id = i.id AND sessions.gen = i.expected_gen \
             AND sessions.revoked_at IS NULL \
             AND (sessions.refresh_until IS NULL OR sessions.refresh_until >= i.now) \
             AND (i.idle_cutoff IS NULL OR sessions.last_seen_at >= i.idle_cutoff) \
             AND EXISTS (SELECT 1 FROM users x WHERE x.id = sessions.user_id \
                         AND x.is_active AND (x.is_sys_admin OR NOT i.require_admin)) \
           RETURNING sessions.*) {}",
        select_joined("s JOIN users u ON u.id = s.user_id", "")
    )
}

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
    let (single, batched) = (rotate_one_sql(), rotate_many_sql());
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
            [one] => rotate_one(&pool, &single, one).await,
            many => {
                metrics::histogram!("tenure_refresh_batch_size").record(many.len() as f64);
                rotate_many(&pool, &batched, many).await
            }
        };
        let ids = rotations.iter().map(|r| r.session_id);
        answer(ids.zip(replies), result);
    }
}

async fn rotate_one(
    pool: &PgPool,
    sql: &str,
    r: &Rotation,
) -> StoreResult<HashMap<Uuid, SessionWithUser>> {
    let row: Option<SessionUserRow> = sqlx::query_as(sql)
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
            Err(err) if attempt < DEADLOCK_ATTEMPTS && is_deadlock(&err) => attempt += 1,
            other => break other.map_err(map_error)?,
        }
    };
    by_session(rows)
}
