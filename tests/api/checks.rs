//! Session checks under load: on PostgreSQL, checks that arrive together are read by one
//! statement (`src/store/pg_lookup.rs`). Each answer must still be the one its own token would
//! get alone, read after the request arrived: no crossed answers, no stale session.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::both_backends;
use crate::helpers::*;

const SESSION: &str = "/api/v2/user/session";
const JANE: &str = "jane@example.com";
const JOHN: &str = "john@example.com";
const ANN: &str = "ann@example.com";

/// Starts a GET of the session with `token`.
fn start_check(app: &TestApp, token: &str) -> Call {
    start_call(app, Method::GET, SESSION, token)
}

/// What a token's check must answer: the user's email, or the refusal's reason.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    User(&'static str),
    Refused(&'static str),
}

/// Sessions in every state a check can meet, for three users, each token with its answer.
async fn tokens_in_every_state(app: &TestApp) -> Vec<(String, Expect)> {
    for email in [JANE, JOHN, ANN] {
        app.create_user(email, false).await;
    }
    let mut tokens = Vec::new();
    for email in [JANE, JOHN] {
        for _ in 0..8 {
            tokens.push((app.login_token(email, true).await, Expect::User(email)));
        }
    }
    for _ in 0..3 {
        let token = app.login_token(JANE, true).await;
        assert_eq!(app.logout(&token).await.status(), StatusCode::OK);
        tokens.push((token, Expect::Refused("logged_out")));
    }
    for _ in 0..3 {
        let token = app.login_token(JOHN, true).await;
        let successor = app.refresh_token(&token).await;
        tokens.push((token, Expect::Refused("rotated")));
        tokens.push((successor, Expect::User(JOHN)));
    }
    for _ in 0..3 {
        tokens.push((
            app.login_token(ANN, true).await,
            Expect::Refused("user_inactive"),
        ));
    }
    app.db
        .execute(&format!(
            "UPDATE users SET is_active = FALSE WHERE email = '{ANN}'"
        ))
        .await;
    tokens
}

fn assert_answer(token: &str, expect: &Expect, status: StatusCode, body: &Value) {
    match expect {
        Expect::User(email) => {
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["email"], *email, "{body}");
            assert_eq!(body["session_token"], token, "{body}");
        }
        Expect::Refused(reason) => {
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            assert_eq!(body["error"]["context"]["reason"], *reason, "{body}");
        }
    }
}

/// Holds an ACCESS EXCLUSIVE lock on `users` (which every check reads) until dropped or
/// released, so that checks queue up behind the one that is waiting for it.
struct UsersLocked(PgConnection);

impl UsersLocked {
    async fn take(app: &TestApp) -> Self {
        let mut conn = PgConnection::connect(&app.db.url).await.unwrap();
        for sql in ["BEGIN", "LOCK TABLE users IN ACCESS EXCLUSIVE MODE"] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Self(conn)
    }

    /// How many statements of this database wait for a lock, now (not as first read in this
    /// transaction: PostgreSQL keeps a transaction's view of pg_stat_activity unless cleared).
    async fn waiting(&mut self) -> i64 {
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut self.0)
            .await
            .unwrap();
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut self.0)
        .await
        .unwrap()
    }

    /// Waits (bounded) until exactly `n` statements wait for a lock.
    async fn wait_for_waiting(&mut self, n: i64) {
        let what = format!("{n} statements to wait for the lock on users");
        poll_until(&what, Duration::from_secs(20), async || {
            match self.waiting().await {
                waiting if waiting == n => Ok(()),
                waiting => Err(format!("{waiting} waiting")),
            }
        })
        .await;
    }

    async fn release(mut self) {
        sqlx::query("COMMIT").execute(&mut self.0).await.unwrap();
    }
}

both_backends! {
    async fn a_burst_of_checks_answers_each_token_as_its_own_session_stands(backend) {
        // Good sessions of two users, logged-out and rotated ones, and a deactivated user's,
        // each token checked three times, all at once. On PostgreSQL a lock holds the first
        // check while the rest arrive, so they are read together in one statement.
        let app = spawn_app_with(backend, TestConfig::new().var("DATABASE_ACQUIRE_TIMEOUT", "20s"))
            .await;
        let tokens = tokens_in_every_state(&app).await;
        for round in 0..3 {
            let mut lock = match backend {
                Backend::Postgres => Some(UsersLocked::take(&app).await),
                Backend::Sqlite => None,
            };
            let first = start_check(&app, &tokens[0].0);
            if let Some(lock) = &mut lock {
                // The first check's statement is sent, and waits for the lock.
                lock.wait_for_waiting(1).await;
            }
            let (checks, expected): (Vec<Call>, Vec<_>) = (0..3)
                .flat_map(|_| tokens.iter())
                .map(|(token, expect)| (start_check(&app, token), (token, expect)))
                .unzip();
            if let Some(mut lock) = lock {
                // Every check of the burst is being handled, and still one statement waits:
                // the first check's. The burst waits for the lookup task, not for connections
                // of its own.
                wait_started(&checks).await;
                assert_eq!(lock.waiting().await, 1, "round {round}");
                lock.release().await;
            }
            let (status, body) = first.answer().await;
            assert_answer(&tokens[0].0, &tokens[0].1, status, &body);
            for (check, (token, expect)) in checks.into_iter().zip(expected) {
                let (status, body) = check.answer().await;
                assert_answer(token, expect, status, &body);
            }
        }
    }

    async fn a_check_sent_after_a_logout_never_sees_the_session(backend) {
        // While other clients keep checks in flight (so that checks are coalesced), a session
        // is logged out on one replica and checked at once on the other: the check must see
        // the logout, every time.
        let app = spawn_app(backend).await;
        let other = app.replica().await;
        app.create_user(JANE, false).await;
        app.create_user(JOHN, false).await;
        let busy = login_tokens(&app, JOHN, 8).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load: Vec<_> = busy
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let stop = stop.clone();
                let target = if i % 2 == 0 { &app } else { &other };
                let request = target.request(Method::GET, SESSION).bearer_auth(token);
                tokio::spawn(async move {
                    let mut checks = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let response = request.try_clone().unwrap().send().await.unwrap();
                        assert_eq!(response.status(), StatusCode::OK);
                        checks += 1;
                    }
                    checks
                })
            })
            .collect();
        for round in 0..30 {
            let (ends, checks) = if round % 2 == 0 { (&app, &other) } else { (&other, &app) };
            let token = ends.login_token(JANE, true).await;
            assert_eq!(checks.get_session(&token).await.status(), StatusCode::OK, "round {round}");
            assert_eq!(ends.logout(&token).await.status(), StatusCode::OK, "round {round}");
            let (_, reason) = assert_error(checks.get_session(&token).await, StatusCode::FORBIDDEN)
                .await;
            assert_eq!(reason, "logged_out", "round {round}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in load {
            assert!(task.await.unwrap() > 0, "the background checks ran");
        }
    }
}

/// A check whose statement cannot answer (here: a lock held on the table; in production also a
/// connection gone silent) answers 503 with Retry-After after DATABASE_ACQUIRE_TIMEOUT, and so
/// do the checks queued behind it, instead of hanging until the request timeout; once the
/// database answers again, checks succeed. PostgreSQL only: SQLite has no such lock to hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_check_answers_503_and_does_not_hold_up_the_next_ones() {
    let config = TestConfig::new()
        .var("DATABASE_ACQUIRE_TIMEOUT", "1s")
        .var("REQUEST_TIMEOUT", "120s");
    let app = spawn_app_with(Backend::Postgres, config).await;
    app.create_user(JANE, false).await;
    let token = app.login_token(JANE, true).await;

    let mut lock = UsersLocked::take(&app).await;
    let stuck = start_check(&app, &token);
    lock.wait_for_waiting(1).await;
    let behind: Vec<_> = (0..5).map(|_| start_check(&app, &token)).collect();
    for check in std::iter::once(stuck).chain(behind) {
        let (status, body) = check.answer().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["context"]["reason"], "unavailable", "{body}");
    }
    let response = app.get_session(&token).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response.headers().contains_key("retry-after"),
        "{response:?}"
    );

    lock.release().await;
    let burst: Vec<_> = (0..10).map(|_| start_check(&app, &token)).collect();
    for check in burst {
        let (status, body) = check.answer().await;
        assert_answer(&token, &Expect::User(JANE), status, &body);
    }
}
