//! Baseline: the raw durable commit rate of tenure's own rotation statement on SQLite, with
//! nothing else in the way: one connection, tenure's pragmas (WAL, `synchronous=FULL`, foreign
//! keys, busy timeout), and in a loop `BEGIN IMMEDIATE`, the one-row rotation, `COMMIT`. Then
//! the same with 64 rotations per transaction, the rate a writer that batches could reach.
//!
//! `cargo run --release --example sqlite_commit_rate -- DIR 10 [SESSIONS]` creates a fresh
//! database in DIR (put it on the file system of the database being compared), applies tenure's
//! migrations, seeds one user with SESSIONS sessions (10 000 by default), measures each rate for
//! the given number of seconds, and prints `commits_per_second=<n> rows_per_second_batched64=<n>`.

#![allow(clippy::expect_used)] // a benchmark: a failure should stop it loudly

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use tenure::store::statements::ROTATE_ONE;

/// tenure's SQLite busy timeout (`src/store/sqlite`); nothing else writes here, so it never waits.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const BATCH: usize = 64;

/// The seeded sessions, rotated round-robin; each one's gen is tracked so that every rotation
/// matches its row.
struct Sessions {
    gens: Vec<i64>,
    next: usize,
}

impl Sessions {
    /// The id of session `i`, as the seed writes it: a UUID in SQLite's text form.
    fn id(i: usize) -> String {
        format!("00000000-0000-4000-8000-{i:012x}")
    }

    /// Rotates the next session on `conn` (inside the caller's transaction).
    async fn rotate_next(&mut self, conn: &mut SqliteConnection, now: i64) {
        let i = self.next;
        self.next = (self.next + 1) % self.gens.len();
        let done = sqlx::query(ROTATE_ONE)
            .bind(Self::id(i))
            .bind(self.gens[i])
            .bind(now)
            .bind(None::<i64>) // no idle cutoff
            .bind(false) // not admin-only
            .bind(false) // by token, not by refresh credential (refresh_mode is NULL)
            .execute(&mut *conn)
            .await
            .expect("rotation");
        assert_eq!(done.rows_affected(), 1, "a rotation missed its row");
        self.gens[i] += 1;
    }
}

/// Rows rotated per second over `seconds`, `batch` rotations per durable transaction.
async fn measure(
    conn: &mut SqliteConnection,
    sessions: &mut Sessions,
    now: i64,
    seconds: u64,
    batch: usize,
) -> f64 {
    let started = Instant::now();
    let mut rows = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.expect("begin");
        for _ in 0..batch {
            sessions.rotate_next(&mut tx, now).await;
        }
        tx.commit().await.expect("commit");
        rows += batch as u64;
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: sqlite_commit_rate DIR SECONDS [SESSIONS]"),
    );
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let count: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;

    let path = dir.join("sqlite-commit-rate.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let url = format!("sqlite:{}", path.display());
    // tenure creates and migrates the file itself, so the schema is exactly the served one.
    let store = tenure::store::connect(&url, BUSY_TIMEOUT, tenure::config::SqliteSynchronous::Full)
        .await
        .expect("open the database");
    store.migrate().await.expect("migrate");
    drop(store);

    let mut conn = SqliteConnectOptions::from_str(&url)
        .expect("database URL")
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        .connect()
        .await
        .expect("connect");
    let user = sqlx::query(
        "INSERT INTO users (email, password_hash, name, created_at, password_changed_at) \
         VALUES ('baseline@bench.invalid', 'not-a-hash', 'baseline', $1, $1)",
    )
    .bind(now)
    .execute(&mut conn)
    .await
    .expect("seed the user")
    .last_insert_rowid();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1) \
         INSERT INTO sessions (id, user_id, forever, gen, rotated_at, created_at, last_seen_at) \
         SELECT printf('00000000-0000-4000-8000-%012x', i), $2, 1, 0, $3, $3, $3 FROM n",
    )
    .bind(count as i64)
    .bind(user)
    .bind(now)
    .execute(&mut conn)
    .await
    .expect("seed the sessions");

    let mut sessions = Sessions {
        gens: vec![0; count],
        next: 0,
    };
    let commits = measure(&mut conn, &mut sessions, now, seconds, 1).await;
    let batched = measure(&mut conn, &mut sessions, now, seconds, BATCH).await;
    conn.close().await.expect("close");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    println!(
        "sessions={count} commits_per_second={commits:.1} rows_per_second_batched64={batched:.1}"
    );
}
