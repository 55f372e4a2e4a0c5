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
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::super::api::{Rotation, SessionWithUser};
use super::super::error::StoreResult;
use super::super::row::SessionUserRow;
use super::coalesce::{answer, by_session, gather, Answer, Coalescer, Reply, Requests};
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
     $5::BOOLEAN[], $6::BOOLEAN[]) \
     AS i(id, expected_gen, now, idle_cutoff, require_admin, by_credential)), s AS (",
    rotate_set!("i.now"),
    " FROM i WHERE sessions.id = i.id AND ",
    refresh_rule!(
        "i.expected_gen",
        "i.now",
        "i.idle_cutoff",
        "i.require_admin",
        "i.by_credential"
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
        let (rotations, replies): (Vec<Rotation>, Vec<Reply>) = batch.into_iter().unzip();
        if rotations.is_empty() {
            continue;
        }
        if rotations.len() > 1 {
            metrics::histogram!("tenure_refresh_batch_size").record(rotations.len() as f64);
        }
        match rotate_while_waited(&pool, &rotations, &replies).await {
            Ok(Committed::Rotated(found)) => {
                let ids = rotations.iter().map(|r| r.session_id);
                answer(ids.zip(replies), Ok(found));
            }
            // A caller gave up before the commit: nothing was rotated. The others go round
            // again (their conditions evaluated afresh); the ones that left need nothing.
            Ok(Committed::RolledBack) => waiting.extend(
                rotations
                    .into_iter()
                    .zip(replies)
                    .filter(|(_, reply)| !reply.is_closed()),
            ),
            Err(err) => {
                let ids = rotations.iter().map(|r| r.session_id);
                answer(ids.zip(replies), Err(err));
            }
        }
    }
}

/// What became of a batch.
enum Committed {
    /// Committed, with every rotated row by session.
    Rotated(HashMap<Uuid, SessionWithUser>),
    /// Rolled back, because a caller had stopped waiting before the commit.
    RolledBack,
}

/// Rotates `rotations` in a transaction that commits only if every caller is still waiting
/// when the rotation is done.
///
/// This is what keeps a network partition from logging anyone out. A statement sent while the
/// database is unreachable reaches it when the network heals, long after its request answered
/// 503 and its client kept the old token. Committed then, it would make the client's retry of
/// that token look like a replay outside `REFRESH_REUSE_GRACE`, and revoke the session. So the
/// rotation stays uncommitted until its answer can still be delivered, and is rolled back
/// otherwise. Two more bounds close the remaining windows: the server itself rolls back a
/// transaction whose `COMMIT` does not arrive within `IDLE_IN_TRANSACTION_TIMEOUT` (a `COMMIT`
/// lost in a partition), and a commit whose caller left while it was in flight (its answer
/// lost) restarts the grace from now, so the client's retry gets the same successor.
async fn rotate_while_waited(
    pool: &PgPool,
    rotations: &[Rotation],
    replies: &[Reply],
) -> StoreResult<Committed> {
    let started = Instant::now();
    let gone = || replies.iter().any(Reply::is_closed);
    let mut attempt = 1;
    let (tx, found) = loop {
        let mut tx = pool.begin().await.map_err(map_error)?;
        if gone() {
            tx.rollback().await.map_err(map_error)?;
            return Ok(Committed::RolledBack);
        }
        let result = match rotations {
            [one] => rotate_one(&mut tx, one).await,
            many => rotate_many(&mut tx, many).await,
        };
        match result {
            Ok(found) => break (tx, found),
            // A batch locks several rows in the order of its plan, so it can deadlock with
            // another statement that locks some of them in another order (a global logout,
            // another replica's batch). PostgreSQL then rolls one of them back whole; the batch
            // is simply run again, its conditions evaluated afresh.
            Err(err) if attempt < DEADLOCK_ATTEMPTS && is_deadlock(&err) => attempt += 1,
            Err(err) => return Err(map_error(err)),
        }
    };
    if gone() {
        tx.rollback().await.map_err(map_error)?;
        return Ok(Committed::RolledBack);
    }
    tx.commit().await.map_err(map_error)?;
    let late: Vec<&SessionWithUser> = rotations
        .iter()
        .zip(replies)
        .filter(|(_, reply)| reply.is_closed())
        .filter_map(|(r, _)| found.get(&r.session_id))
        .collect();
    if !late.is_empty() {
        restart_grace(pool, &late, started.elapsed()).await;
    }
    Ok(Committed::Rotated(found))
}

/// The rotations committed while their callers were leaving: their answers were lost, so their
/// clients will retry with the old token. Moves their `rotated_at` to the time the commit was
/// known (the grace counts from there) at the same `gen`, so the retry is a racer within the
/// grace and gets the successor. Best effort: a failure is logged, and the retry may then be
/// judged a replay, as it would have been without this.
async fn restart_grace(pool: &PgPool, late: &[&SessionWithUser], elapsed: Duration) {
    let elapsed = i64::try_from(elapsed.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    let ids: Vec<Uuid> = late.iter().map(|v| v.session.id).collect();
    let gens: Vec<i64> = late.iter().map(|v| v.session.gen).collect();
    let times: Vec<i64> = late
        .iter()
        .map(|v| v.session.rotated_at.saturating_add(elapsed))
        .collect();
    let result = sqlx::query(
        "UPDATE sessions SET rotated_at = GREATEST(sessions.rotated_at, l.at) \
         FROM unnest($1::UUID[], $2::BIGINT[], $3::BIGINT[]) AS l(id, gen, at) \
         WHERE sessions.id = l.id AND sessions.gen = l.gen",
    )
    .bind(ids)
    .bind(gens)
    .bind(times)
    .execute(pool)
    .await;
    match result {
        Ok(done) => tracing::warn!(
            sessions = done.rows_affected(),
            "refresh committed after its request gave up: grace restarted"
        ),
        Err(err) => tracing::error!(
            error = %super::super::error::StoreError::database(err),
            "refresh committed after its request gave up; restarting its grace failed"
        ),
    }
}

async fn rotate_one(
    tx: &mut PgConnection,
    r: &Rotation,
) -> Result<HashMap<Uuid, SessionWithUser>, sqlx::Error> {
    let row: Option<SessionUserRow> = sqlx::query_as(ROTATE_ONE)
        .bind(r.session_id)
        .bind(r.expected_gen)
        .bind(r.now)
        .bind(r.idle_cutoff)
        .bind(r.require_admin)
        .bind(r.by_credential)
        .fetch_optional(tx)
        .await?;
    by_session(row).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

async fn rotate_many(
    tx: &mut PgConnection,
    rotations: &[Rotation],
) -> Result<HashMap<Uuid, SessionWithUser>, sqlx::Error> {
    let rows: Vec<SessionUserRow> = sqlx::query_as(ROTATE_MANY)
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
        .bind(
            rotations
                .iter()
                .map(|r| r.by_credential)
                .collect::<Vec<_>>(),
        )
        .fetch_all(tx)
        .await?;
    by_session(rows).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
