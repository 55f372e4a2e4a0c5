//! Network faults between tenure and PostgreSQL (issue 18, item 2), through the proxy of
//! `proxy.rs`: added latency, a black hole, resets in the middle of a statement, a slow trickle.
//!
//! For each: a session check, a refresh and a login sent during the fault all end within
//! `REQUEST_TIMEOUT` with 503 and `Retry-After` (never a 500, never a hang); checks and
//! refreshes succeed again within a second of the fault clearing; and the `sessions` table is
//! the same row by row afterwards (but for `gen`, `rotated_at` and `last_seen_at` of the
//! sessions used). PostgreSQL only: SQLite has no network.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, Row};

use crate::helpers::*;
use crate::proxy::{upstream_of, Fault, FaultProxy};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How much later than `REQUEST_TIMEOUT` an answer may come (scheduling, the 503 itself).
const MARGIN: Duration = Duration::from_millis(500);
const RECOVERY: Duration = Duration::from_secs(1);

/// Each session's row as JSON: whole, and without what a use of the session changes.
async fn sessions(db: &TestDb) -> BTreeMap<String, (String, String)> {
    let mut c = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let rows = sqlx::query(
        "SELECT id::text, to_jsonb(s)::text, \
                (to_jsonb(s) - 'gen' - 'rotated_at' - 'last_seen_at')::text \
         FROM sessions s",
    )
    .fetch_all(&mut c)
    .await
    .expect("sessions");
    rows.iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

fn sid(token: &str) -> String {
    claims(token)["sid"].as_str().expect("sid").to_owned()
}

/// Sends one request with a client timeout a bit past `REQUEST_TIMEOUT`; asserts it answered
/// 503 JSON with `Retry-After` in time.
async fn assert_503_in_time(what: &str, request: reqwest::RequestBuilder) {
    let started = Instant::now();
    let response = request
        .timeout(REQUEST_TIMEOUT + Duration::from_secs(2))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer ({e}) after {:?}", started.elapsed()));
    let elapsed = started.elapsed();
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert!(retry_after.is_some(), "{what}: no Retry-After");
    assert!(
        elapsed <= REQUEST_TIMEOUT + MARGIN,
        "{what}: answered after {elapsed:?}"
    );
}

async fn rides_out(fault: &str) {
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = FaultProxy::start(upstream_of(&db.url)).await;
    let config = TestConfig::new()
        .var("DATABASE_URL", &proxy.route(&db.url))
        .var("REQUEST_TIMEOUT", "2s");
    let app = TestApp::start(db.clone(), config, tenure::clock::TestClock::new()).await;
    app.create_user("net@example.com", false).await;
    // Two sessions used during the fault, two bystanders (one refreshed, one logged out).
    let mut used = login_tokens(&app, "net@example.com", 2).await;
    let bystander = app.login_token("net@example.com", true).await;
    app.refresh_token(&bystander).await;
    let gone = app.login_token("net@example.com", true).await;
    assert_eq!(app.logout(&gone).await.status(), StatusCode::OK);
    let before = sessions(&db).await;

    match fault {
        "latency" => proxy.set_fault(Fault::Latency(REQUEST_TIMEOUT * 2)),
        "black hole" => proxy.hold(),
        "reset" => proxy.set_fault(Fault::Reset),
        "trickle" => proxy.set_fault(Fault::Trickle),
        other => unreachable!("{other}"),
    }
    let path = "/api/v2/user/session";
    let login = json!({ "email": "net@example.com", "password": PASSWORD, "remember_me": true });
    tokio::join!(
        assert_503_in_time(
            "check",
            app.request(Method::GET, path).bearer_auth(&used[0])
        ),
        assert_503_in_time(
            "refresh",
            app.request(Method::PUT, path).bearer_auth(&used[1])
        ),
        assert_503_in_time("login", app.request(Method::POST, path).json(&login)),
    );

    proxy.clear();
    let cleared = Instant::now();
    let (check, _) = try_poll_until("a check to succeed", Duration::from_secs(10), async || {
        app.get_session(&used[0]).await.status() == StatusCode::OK
    })
    .await
    .expect("checks recover");
    let refresh_ok = try_poll_until(
        "a refresh to succeed",
        Duration::from_secs(10),
        async || {
            let (status, body) = status_json(app.refresh(&used[1]).await).await;
            body["session_token"]
                .as_str()
                .filter(|_| status == StatusCode::OK)
                .map(str::to_owned)
        },
    )
    .await
    .expect("refreshes recover");
    let recovered = cleared.elapsed();
    assert!(
        recovered <= RECOVERY,
        "{fault}: recovered after {recovered:?} (check {check:?})"
    );
    used[1] = refresh_ok.0;
    assert_eq!(app.get_session(&used[1]).await.status(), StatusCode::OK);

    // No session lost or corrupted; no login's session left behind by the fault.
    let after = sessions(&db).await;
    let touched = [sid(&used[0]), sid(&used[1])];
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{fault}: the same sessions"
    );
    for (id, (whole, stable)) in &before {
        let (whole_after, stable_after) = &after[id];
        if touched.contains(id) {
            assert_eq!(stable, stable_after, "{fault}: session {id}");
        } else {
            assert_eq!(whole, whole_after, "{fault}: session {id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_beyond_the_request_timeout_answers_503_and_recovers() {
    rides_out("latency").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_answers_503_and_recovers() {
    rides_out("black hole").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_in_the_middle_of_statements_answer_503_and_recover() {
    rides_out("reset").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_trickle_answers_503_and_recovers() {
    rides_out("trickle").await;
}
