//! Group commit on SQLite: one writer task, one connection, every write.
//!
//! SQLite lets one connection write at a time, and a durable commit waits for its `fsync`. With
//! a pool of writers, each write is its own commit and the others wait out `busy_timeout`
//! back-offs for the lock (and answer `database is locked` when the wait runs out). So every
//! write goes to this task instead: it takes every write waiting, runs them one after another
//! in one `BEGIN IMMEDIATE` transaction, each inside its own savepoint, and commits once. Reads
//! stay on the reader pool (WAL lets them run beside the writer).
//!
//! Nothing about the rules changes. Each write runs its own statements with its own conditions
//! (a rotation is still `WHERE gen = <presented>`, so of two racing refreshes of one token the
//! second finds the first's `gen` and rotates nothing); a write that fails is rolled back to
//! its savepoint alone, the others keep theirs; and a caller is answered only after the commit
//! that holds its write, so durability is unchanged (`synchronous=FULL` by default,
//! `SQLITE_SYNCHRONOUS`). A write whose caller stopped waiting (a timed-out request) before it
//! ran is not run; one whose caller left while it ran is rolled back to its savepoint, so what
//! a client was never told about is not committed (as on PostgreSQL, `../postgres/rotation.rs`).
//! A lone write is committed at once: batching never adds waiting, it only shares the `fsync`
//! of writes that arrive while one is in flight.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::super::error::{StoreError, StoreResult};
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

    /// Queues `work` and waits until the transaction that holds it has committed.
    pub async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> Work<'c, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(Call { work, reply }))
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
    /// Runs its statements.
    fn run<'c>(
        self: Box<Self>,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = Box<dyn Ran>> + Send + 'c>>;
    /// Answers the caller without running (the batch could not start).
    fn fail(self: Box<Self>, err: StoreError);
}

/// A write that has run, waiting for the commit.
trait Ran: Send {
    /// Whether its effects stay: it succeeded and its caller still waits.
    fn keep(&self) -> bool;
    /// Answers the caller once the batch's commit is known.
    fn answer(self: Box<Self>, commit: &StoreResult<()>);
}

struct Call<F, T> {
    work: F,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<F, T> Job for Call<F, T>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> Work<'c, T> + Send + 'static,
{
    fn gone(&self) -> bool {
        self.reply.is_closed()
    }

    fn run<'c>(
        self: Box<Self>,
        conn: &'c mut SqliteConnection,
    ) -> Pin<Box<dyn Future<Output = Box<dyn Ran>> + Send + 'c>> {
        let Call { work, reply } = *self;
        Box::pin(async move {
            let result = work(conn).await;
            Box::new(Done { result, reply }) as Box<dyn Ran>
        })
    }

    fn fail(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }
}

struct Done<T> {
    result: StoreResult<T>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T: Send> Ran for Done<T> {
    fn keep(&self) -> bool {
        self.result.is_ok() && !self.reply.is_closed()
    }

    fn answer(self: Box<Self>, commit: &StoreResult<()>) {
        let answer = match (commit, self.result) {
            // Its own error stands: it was rolled back whatever the commit did.
            (_, Err(err)) => Err(err),
            (Ok(()), Ok(value)) => Ok(value),
            (Err(err), Ok(_)) => Err(err.clone()),
        };
        let _ = self.reply.send(answer);
    }
}

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

/// Runs `batch` in one transaction, commits, and answers every caller. A lone write is the
/// transaction; several each run in a savepoint of their own. Answers whether the connection
/// is fit for the next batch.
async fn commit_batch(conn: &mut SqliteConnection, mut batch: Vec<Box<dyn Job>>) -> bool {
    // IMMEDIATE takes the write lock now (waiting up to `busy_timeout` for another process that
    // holds it), so no statement of the batch can fail for want of it halfway.
    let mut tx = match conn.begin_with("BEGIN IMMEDIATE").await.map_err(map_error) {
        Ok(tx) => tx,
        Err(err) => {
            fail_all(batch, &err);
            return false;
        }
    };
    if batch.len() == 1 {
        let Some(job) = batch.pop() else { return true };
        let done = job.run(&mut tx).await;
        let (commit, fit) = if done.keep() {
            let commit = tx.commit().await.map_err(map_error);
            let fit = commit.is_ok();
            (commit, fit)
        } else {
            // Failed, or its caller left: nothing of it stays; its own error is its answer.
            (Ok(()), tx.rollback().await.is_ok())
        };
        log_failed(&commit, 1);
        done.answer(&commit);
        return fit;
    }
    let mut ran: Vec<Box<dyn Ran>> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let mut broken = None;
    for job in jobs.by_ref() {
        let mut savepoint = match tx.begin().await.map_err(map_error) {
            Ok(savepoint) => savepoint,
            Err(err) => {
                job.fail(err.clone());
                broken = Some(err);
                break;
            }
        };
        let done = job.run(&mut savepoint).await;
        let ended = if done.keep() {
            savepoint.commit().await
        } else {
            savepoint.rollback().await
        };
        ran.push(done);
        if let Err(err) = ended {
            broken = Some(map_error(err));
            break;
        }
    }
    let commit = match broken {
        // A savepoint could not be taken or ended: nothing of the batch is trusted.
        Some(err) => {
            let _ = tx.rollback().await;
            fail_all(jobs.collect(), &err);
            Err(err)
        }
        None => tx.commit().await.map_err(map_error),
    };
    log_failed(&commit, ran.len());
    let fit = commit.is_ok();
    for done in ran {
        done.answer(&commit);
    }
    fit
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
