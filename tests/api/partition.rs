//! A network partition between tenure and PostgreSQL never logs anyone out (issue 18, item 3).
//!
//! A refresh whose statement is caught in a partition answers 503 within `REQUEST_TIMEOUT`, and
//! its client keeps the old token. When the network heals, the statement reaches the database
//! after all. Had it committed then, the client's retry of the old token, later than
//! `REFRESH_REUSE_GRACE`, would be judged a replay and the session revoked (`token_reuse`): a
//! user logged out, and flagged as a theft, by a network blip. The rotation must instead not
//! commit once its request has given up, so the retry simply rotates.
//!
//! The partition is `proxy.rs`: it holds everything from the moment the rotation statement's
//! text crosses it, and delivers it all, late, when it heals. The test clock moves past the
//! grace during the partition. PostgreSQL only: SQLite has no network.

use reqwest::{Method, StatusCode};

use crate::helpers::*;
use crate::proxy::{upstream_of, FaultProxy};

const GRACE_SECONDS: i64 = 2;
/// The text of the one-row rotation (`rotate_one!` in src/store/sql.rs).
const ONE_ROW: &str = "WHERE sessions.id = $1 AND sessions.gen";
/// The text of the batch rotation (`ROTATE_MANY` in src/store/postgres/rotation.rs).
const BATCH: &str = "AS i(id, expected_gen";

/// A server on a fresh PostgreSQL database, reaching it through a proxy.
async fn partitionable() -> (TestApp, FaultProxy) {
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = FaultProxy::start(upstream_of(&db.url)).await;
    let config = TestConfig::new()
        .var("DATABASE_URL", &proxy.route(&db.url))
        .var("REQUEST_TIMEOUT", "2s")
        .var("REFRESH_REUSE_GRACE", &format!("{GRACE_SECONDS}s"));
    let app = TestApp::start(db, config, tenure::clock::TestClock::new()).await;
    (app, proxy)
}

/// The statuses of refreshing every token at once, with the new tokens of the ones that
/// succeeded.
async fn refresh_all(app: &TestApp, tokens: &[String]) -> Vec<(StatusCode, Option<String>)> {
    let calls: Vec<_> = tokens
        .iter()
        .map(|token| spawn_call(app, Method::PUT, "/api/v2/user/session", token))
        .collect();
    let mut out = Vec::with_capacity(calls.len());
    for call in calls {
        let (status, body) = call.await.expect("refresh task");
        out.push((status, body["session_token"].as_str().map(str::to_owned)));
    }
    out
}

/// After the partition, the retried token rotates and its successor works: the session lives.
async fn assert_retry_lives(app: &TestApp, token: &str) {
    let response = app.refresh(token).await;
    let (status, body) = status_json(response).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the retry after the partition: {body}"
    );
    let successor = body["session_token"].as_str().expect("a successor");
    let (status, body) = status_json(app.get_session(successor).await).await;
    assert_eq!(status, StatusCode::OK, "the successor: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_longer_than_the_grace_during_a_refresh_logs_nobody_out() {
    let (app, proxy) = partitionable().await;
    app.create_user("partition@example.com", false).await;
    let token = app.login_token("partition@example.com", true).await;

    proxy.hold_on(ONE_ROW);
    let response = app.refresh(&token).await;
    assert!(
        proxy.is_holding(),
        "the rotation statement never reached the proxy"
    );
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE).await;

    // The partition outlasts the grace; then everything held reaches the database.
    app.clock.advance(GRACE_SECONDS + 3);
    proxy.heal();

    assert_retry_lives(&app, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_during_a_batch_of_refreshes_logs_nobody_out() {
    let (app, proxy) = partitionable().await;
    let mut tokens = Vec::new();
    for i in 0..8 {
        let email = format!("batch{i}@example.com");
        app.create_user(&email, false).await;
        tokens.push(app.login_token(&email, true).await);
    }

    // Refresh all at once until a batch forms (the first refresh to arrive runs alone, those
    // that queue behind it run as one batch) and is caught in the partition.
    proxy.hold_on(BATCH);
    let mut stuck = Vec::new();
    for _round in 0..10 {
        for (i, (status, successor)) in refresh_all(&app, &tokens).await.into_iter().enumerate() {
            match status {
                StatusCode::OK => tokens[i] = successor.expect("a successor"),
                StatusCode::SERVICE_UNAVAILABLE => stuck.push(tokens[i].clone()),
                other => panic!("refresh answered {other}"),
            }
        }
        if !stuck.is_empty() {
            break;
        }
    }
    assert!(proxy.is_holding(), "no batch was caught in the partition");
    assert!(
        stuck.len() >= 2,
        "a batch holds several refreshes: {}",
        stuck.len()
    );

    app.clock.advance(GRACE_SECONDS + 3);
    proxy.heal();

    for token in &stuck {
        assert_retry_lives(&app, token).await;
    }
}
