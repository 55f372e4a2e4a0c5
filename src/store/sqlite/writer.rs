//! Group commit on SQLite: one writer task, one connection, every write.
//!
//! SQLite lets one connection write at a time, and a durable commit waits for its `fsync`. With
//! a pool of writers, each write is its own commit and the others wait out `busy_timeout`
//! back-offs for the lock (and answer `database is locked` when the wait runs out). So every
//! write goes to this task instead: it takes every write waiting, runs them one after another
//! in one `BEGIN IMMEDIATE` transaction, and commits once. Reads stay on the reader pool (WAL
//! lets them run beside the writer).
//!
//! Nothing about the rules changes. Each write runs its own statements with its own conditions
//! (a rotation is still `WHERE gen = <presented>`, so of two racing refreshes of one token the
//! second finds the first's `gen` and rotates nothing), and a caller is answered only after the
//! commit that holds its write, so durability is unchanged (`synchronous=FULL` by default,
//! `SQLITE_SYNCHRONOUS`).
//!
//! A batch is optimistic. When a write fails (a taken name, a full session cap), or its caller
//! has stopped waiting (a timed-out request), the whole transaction is rolled back, that write
//! is answered (its error, as it stood after the writes before it) and left out, and the others
//! run again from a clean slate, their conditions evaluated afresh; nothing of a failed write,
//! nor of one whose caller left before it ran, is ever committed (as on PostgreSQL,
//! `../postgres/rotation.rs`). Failures are rare next to successes, so the common batch costs
//! each write only its own statements: no savepoint round trips. A batch that keeps failing
//! (more than [`OPTIMISTIC_PASSES`] passes) runs its remaining writes one transaction each. A
//! write that fails by an error of the database is left out the same way (and logged); a
//! transaction that cannot begin (a lock held by another process past `busy_timeout`) or roll
//! back fails the batch's writes with that error. A lone write is committed at once: batching never adds waiting,
//! it only shares the `fsync` of writes that arrive while one is in flight.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::super::error::{Stalled, StoreError, StoreResult};
use super::super::Work;
use super::map_error;

/// The most writes in one transaction: enough to share a commit among every connection of a
/// busy server, few enough that the first of them does not wait long for the last.
const MAX_BATCH: usize = 256;

/// The callers' side of the writer task.
pub(super) struct Writer {
    jobs: mpsc::UnboundedSender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer task on `pool` (one connection); it ends when the writer is dropped.
    pub fn start(pool: SqlitePool) -> Self {
        let (jobs, receive) = mpsc::unbounded_channel();
        let receive = Arc::new(Mutex::new(receive));
        // A write that panics takes the task down with it (its batch's callers answer
        // `TaskStopped`, a 503, and its transaction is rolled back as the connection is
        // dropped); the writer starts again for the writes behind it.
        tokio::spawn(async move {
            loop {
                match tokio::spawn(write_batches(pool.clone(), receive.clone())).await {
                    Err(err) if err.is_panic() => {
                        tracing::error!("the sqlite writer panicked; starting it again");
                    }
                    _ => return,
                }
            }
        });
        Self { jobs }
    }

    /// Queues `work` and waits until the transaction that holds it has committed. `work` may
    /// run more than once (a clone each time): a pass of its batch that is rolled back is run
    /// again.
    pub async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Work<'c, T> + Clone + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(Call {
                work,
                result: None,
                reply,
            }))
            .map_err(|_| StoreError::TaskStopped("sqlite writer"))?;
        answer
            .await
            .map_err(|_| StoreError::TaskStopped("sqlite writer"))?
    }
}

/// A queued write, its result type erased so that writes of every kind share a batch.
trait Job: Send {
    /// Whether its caller stopped waiting.
    fn gone(&self) -> bool;
    /// Runs its statements (again, if an earlier pass was rolled back) and keeps the result;
    /// answers whether it succeeded.
    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = Ran> + Send + 'c>>;
    /// Answers the caller: its result, or `commit`'s error when the commit failed.
    fn answer(self: Box<Self>, commit: &StoreResult<()>);
    /// Answers the caller `err` (its batch could not run).
    fn fail(self: Box<Self>, err: StoreError);
    /// The error its last run ended with.
    fn error(&self) -> Option<StoreError>;
}

/// How a write's run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Succeeded,
    /// Failed by the rules (a conflict, a cap).
    Refused,
    /// Failed by the database (logged: the rules never cause it).
    Broke,
}

struct Call<F, T> {
    work: F,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<F, T> Job for Call<F, T>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> Work<'c, T> + Clone + Send + 'static,
{
    fn gone(&self) -> bool {
        self.reply.is_closed()
    }

    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = Ran> + Send + 'c>> {
        let work = self.work.clone();
        Box::pin(async move {
            let result = work(conn).await;
            let ran = match &result {
                Ok(_) => Ran::Succeeded,
                Err(err) if refused_by_rules(err) => Ran::Refused,
                Err(_) => Ran::Broke,
            };
            self.result = Some(result);
            ran
        })
    }

    fn answer(self: Box<Self>, commit: &StoreResult<()>) {
        let answer = match (commit, self.result) {
            (_, None) => Err(StoreError::TaskStopped("sqlite writer")),
            // Its own error stands: nothing of it was committed.
            (_, Some(Err(err))) => Err(err),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Err(err), Some(Ok(_))) => Err(err.clone()),
        };
        let _ = self.reply.send(answer);
    }

    fn fail(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }

    fn error(&self) -> Option<StoreError> {
        self.result.as_ref()?.as_ref().err().cloned()
    }
}

/// An error the rules give (the write is refused), not the database (it is unwell).
fn refused_by_rules(err: &StoreError) -> bool {
    matches!(
        err,
        StoreError::Conflict(_)
            | StoreError::UserChanged
            | StoreError::LimitReached
            | StoreError::IpLimitReached
            | StoreError::TotalLimitReached
            | StoreError::AppInactive
            | StoreError::RoleInactive
    )
}

/// Passes of one batch before its remaining writes run one transaction each.
const OPTIMISTIC_PASSES: usize = 4;

async fn write_batches(
    pool: SqlitePool,
    receive: Arc<Mutex<mpsc::UnboundedReceiver<Box<dyn Job>>>>,
) {
    let mut receive = receive.lock().await;
    // The writer keeps its connection between batches (SQLite runs in-process: there is no
    // network to break it); after an error it takes a fresh one from the pool.
    let mut held: Option<PoolConnection<Sqlite>> = None;
    let mut batch: Vec<Box<dyn Job>> = Vec::new();
    loop {
        match receive.recv().await {
            Some(job) => batch.push(job),
            None => return,
        }
        while batch.len() < MAX_BATCH {
            match receive.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Requests that gave up while queued need no statement.
        batch.retain(|job| !job.gone());
        if batch.is_empty() {
            continue;
        }
        if batch.len() > 1 {
            metrics::histogram!("tenure_sqlite_write_batch_size").record(batch.len() as f64);
        }
        let mut conn = match held.take() {
            Some(conn) => conn,
            None => match pool.acquire().await.map_err(map_error) {
                Ok(conn) => conn,
                Err(err) => {
                    fail_all(std::mem::take(&mut batch), &err);
                    continue;
                }
            },
        };
        if commit_batch(&mut conn, std::mem::take(&mut batch)).await {
            held = Some(conn);
        } else {
            // Whatever state it was left in, the next batch gets a new connection.
            let _ = conn.close().await;
        }
    }
}

/// Runs `batch` in one transaction, commits, and answers every caller (see the module's
/// doc). Answers whether the connection is fit for the next batch.
async fn commit_batch(conn: &mut SqliteConnection, mut batch: Vec<Box<dyn Job>>) -> bool {
    for _ in 0..OPTIMISTIC_PASSES {
        match one_pass(conn, &mut batch).await {
            Pass::Done(fit) => return fit,
            Pass::Again if batch.is_empty() => return true,
            Pass::Again => {}
        }
    }
    // Writes that keep failing one after another: each on its own.
    let mut rest = batch.into_iter();
    while let Some(job) = rest.next() {
        let mut alone = vec![job];
        loop {
            match one_pass(conn, &mut alone).await {
                Pass::Done(false) => {
                    let err = StoreError::unavailable(Stalled(
                        "a transaction of the sqlite writer failed".to_owned(),
                    ));
                    fail_all(rest.collect(), &err);
                    return false;
                }
                Pass::Done(true) => break,
                Pass::Again if alone.is_empty() => break,
                Pass::Again => {}
            }
        }
    }
    true
}

/// What became of one pass over a batch.
enum Pass {
    /// Committed (or failed) and answered; whether the connection is fit.
    Done(bool),
    /// Rolled back, with the write that failed (or whose caller left) answered and removed.
    Again,
}

async fn one_pass(conn: &mut SqliteConnection, batch: &mut Vec<Box<dyn Job>>) -> Pass {
    // IMMEDIATE takes the write lock now (waiting up to `busy_timeout` for another process that
    // holds it), so no statement of the batch can fail for want of it halfway.
    let mut tx = match conn.begin_with("BEGIN IMMEDIATE").await.map_err(map_error) {
        Ok(tx) => tx,
        Err(err) => {
            fail_all(std::mem::take(batch), &err);
            return Pass::Done(false);
        }
    };
    let mut stopped = None;
    for (i, job) in batch.iter_mut().enumerate() {
        // A caller that left before its write ran needs nothing run.
        if job.gone() {
            stopped = Some((i, Ran::Refused));
            break;
        }
        let ran = job.run(&mut tx).await;
        // A caller that left while its write ran is never told: nothing of it may stay.
        if ran != Ran::Succeeded || job.gone() {
            stopped = Some((i, ran));
            break;
        }
    }
    let Some((i, ran)) = stopped else {
        let commit = tx.commit().await.map_err(map_error);
        log_failed(&commit, batch.len());
        let fit = commit.is_ok();
        for job in batch.drain(..) {
            job.answer(&commit);
        }
        return Pass::Done(fit);
    };
    let rolled_back = tx.rollback().await.map_err(map_error);
    let failed = batch.remove(i);
    match rolled_back {
        // Refused by the rules, abandoned, or failed by the database (its own error, say a row
        // that does not decode): the others run again without it, on a clean slate.
        Ok(()) => {
            if ran == Ran::Broke {
                if let Some(err) = failed.error() {
                    tracing::error!(error = %err, "a write failed in a sqlite group commit");
                }
            }
            failed.answer(&Ok(()));
            Pass::Again
        }
        // The rollback failed: nothing of the transaction is trusted.
        Err(err) => {
            log_failed(&Err(err.clone()), batch.len() + 1);
            failed.fail(err.clone());
            fail_all(std::mem::take(batch), &err);
            Pass::Done(false)
        }
    }
}

fn log_failed(commit: &StoreResult<()>, writes: usize) {
    if let Err(err) = commit {
        tracing::error!(error = %err, writes, "sqlite group commit failed");
    }
}

fn fail_all(jobs: Vec<Box<dyn Job>>, err: &StoreError) {
    for job in jobs {
        job.fail(err.clone());
    }
}
