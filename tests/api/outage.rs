//! A database outage, as operators live it: a PostgreSQL cluster the test owns is stopped under
//! a running server and started again. Meanwhile requests fail fast with 503 JSON and
//! `Retry-After` (never a 500, never a hang), readiness turns 503, the process stays up, and it
//! recovers by itself. A server started while the database is down waits for it.

use std::time::{Duration, Instant};

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tenure::clock::TestClock;

use crate::helpers::*;

/// Readiness must turn 503 within this long of the database going away.
const READY_DETECTION: Duration = Duration::from_secs(2);
/// A request during the outage must answer within this long (the acquire timeout is 2 s by
/// default; the request timeout is 30 s).
const FAST_FAILURE: Duration = Duration::from_secs(5);
/// Past this, the client gives up and the test reports a hang.
const HANG: Duration = Duration::from_secs(15);
/// How long recovery may take once the database is back.
const RECOVERY: Duration = Duration::from_secs(10);

const EMAIL: &str = "outage@example.com";

/// `/health/ready`: (status, body, how long it took).
async fn ready(client: &reqwest::Client, base: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let response = client
        .get(format!("{base}/health/ready"))
        .timeout(HANG)
        .send()
        .await
        .unwrap_or_else(|e| panic!("/health/ready did not answer: {e}"));
    let took = started.elapsed();
    let (status, body) = status_json(response).await;
    (status, body, took)
}

/// Sends `request`, failing on a hang; answers the response and how long it took.
async fn timed(what: &str, request: reqwest::RequestBuilder) -> (Response, Duration) {
    let started = Instant::now();
    let response = request
        .timeout(HANG)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer during the outage (a hang?): {e}"));
    (response, started.elapsed())
}

/// A 503 in DreamFactory's error shape with a `Retry-After` of whole seconds, quickly.
async fn assert_fast_503(what: &str, response: Response, took: Duration) {
    assert!(
        took < FAST_FAILURE,
        "{what} took {took:?} during the outage (should fail fast)"
    );
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what} during the outage: {text}"
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
    assert_eq!(body["error"]["code"], json!(503), "{what}: {body}");
    assert_eq!(body["error"]["status_code"], json!(503), "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
    let retry_after = retry_after.unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
    let seconds: u64 = retry_after
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After {retry_after:?} is not seconds"));
    assert!(seconds >= 1, "{what}: Retry-After {seconds}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_rides_out_a_database_outage() {
    let cluster = OwnedCluster::start().await;
    let db = cluster.database().await;
    let app = TestApp::start(db.clone(), TestConfig::new(), TestClock::new()).await;
    app.create_user(EMAIL, false).await;
    let token = app.login_token(EMAIL, true).await;
    let client = reqwest::Client::new();

    let (status, body, _) = ready(&client, &app.base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");

    // The database goes away.
    cluster.stop().await;
    let stopped = Instant::now();

    // Readiness says so within 2 s, in JSON, saying what is wrong.
    let (status, body, took) = ready(&client, &app.base).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        stopped.elapsed() < READY_DETECTION,
        "/health/ready took {took:?} to say 503"
    );
    assert_eq!(body["status"], "unavailable", "{body}");
    let database = body["checks"]["database"].as_str().unwrap_or_default();
    assert!(!database.is_empty() && database != "ok", "{body}");

    // Session endpoints fail fast with 503 JSON and Retry-After; twice, so a second wave finds
    // the pool in no worse shape.
    let session = app.url("/api/v2/user/session");
    for round in 1..=2 {
        let (response, took) = timed("GET session", client.get(&session).bearer_auth(&token)).await;
        assert_fast_503(&format!("GET session (round {round})"), response, took).await;
        let (response, took) = timed("PUT session", client.put(&session).bearer_auth(&token)).await;
        assert_fast_503(&format!("PUT session (round {round})"), response, took).await;
        let login = json!({ "email": EMAIL, "password": PASSWORD, "remember_me": true });
        let (response, took) = timed("POST session", client.post(&session).json(&login)).await;
        assert_fast_503(&format!("POST session (round {round})"), response, took).await;
        let (response, took) = timed(
            "DELETE session",
            client.delete(&session).bearer_auth(&token),
        )
        .await;
        assert_fast_503(&format!("DELETE session (round {round})"), response, took).await;
    }
    // Several at once do not pile up behind each other for longer either.
    let started = Instant::now();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let request = client.get(&session).bearer_auth(&token).timeout(HANG);
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    for call in calls {
        let response = call.await.expect("task").expect("concurrent GET answered");
        assert_fast_503("concurrent GET session", response, started.elapsed()).await;
    }

    // The process is up, and still says not ready.
    let live = client
        .get(app.url("/health/live"))
        .timeout(HANG)
        .send()
        .await
        .expect("live");
    assert_eq!(live.status(), StatusCode::OK);
    let (status, body, took) = ready(&client, &app.base).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(took < READY_DETECTION, "/health/ready took {took:?}");

    // The database returns: the same server recovers by itself within seconds.
    cluster.restart().await;
    let body = poll_until(
        "/health/ready to answer 200 after the database returned",
        RECOVERY,
        async || match ready(&client, &app.base).await {
            (StatusCode::OK, body, _) => Ok(body),
            (status, body, _) => Err(format!("{status} {body}")),
        },
    )
    .await;
    assert_eq!(body["checks"]["database"], "ok", "{body}");

    // The session created before the outage is intact: it answers, and once its token has
    // expired it refreshes normally.
    let (status, body) = status_json(app.get_session(&token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.clock.advance(25 * 3600);
    let (_, reason) = assert_error(app.get_session(&token).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(reason, "expired");
    let refreshed = app.refresh_token(&token).await;
    assert_ne!(refreshed, token);
    assert_eq!(
        claims(&refreshed)["sid"],
        claims(&token)["sid"],
        "the refresh should continue the same session"
    );
    let (status, body) = status_json(app.get_session(&refreshed).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // And new logins work again.
    let (status, body) = status_json(app.login(EMAIL, PASSWORD, false).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `url` with `password` in its userinfo (the owned cluster trusts every connection, so any
/// password works; the point is to see it masked).
fn with_password(url: &str, password: &str) -> String {
    url.replacen("postgres@", &format!("postgres:{password}@"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_started_while_the_database_is_down_waits_for_it() {
    const DB_PASSWORD: &str = "Outage-Db-Password-77";
    let cluster = OwnedCluster::start().await;
    let db = cluster.database().await;
    let url = with_password(&db.url, DB_PASSWORD);
    assert!(url.contains(DB_PASSWORD), "{url}");
    cluster.stop().await;

    let mut server = TenureProcess::spawn(&url, &[("DATABASE_STARTUP_TIMEOUT", "60s")]);
    let waiting = server
        .wait_for_message("waiting for the database", Duration::from_secs(15))
        .await;
    assert_eq!(waiting["level"], "WARN", "{waiting}");
    // It keeps waiting (more attempts), without listening and without exiting.
    let attempts = try_poll_until(
        "a second attempt to reach the database",
        Duration::from_secs(10),
        async || {
            let attempts = server
                .log_entries()
                .iter()
                .filter(|e| e["fields"]["message"] == "waiting for the database")
                .count();
            if attempts >= 2 {
                Ok(())
            } else {
                Err(format!("{attempts} attempt logged"))
            }
        },
    )
    .await;
    if let Err(why) = attempts {
        panic!("{why}; the log:\n{}", server.log_text());
    }
    assert!(
        server.exited().is_none(),
        "tenure gave up: {}",
        server.log_text()
    );
    assert!(
        !server.log_text().contains("tenure listening"),
        "{}",
        server.log_text()
    );

    // The database starts: the server follows, without a restart.
    cluster.restart().await;
    let started = Instant::now();
    let base = server.wait_listening(Duration::from_secs(30)).await;
    assert!(
        started.elapsed() < RECOVERY,
        "tenure took {:?} to start after the database did",
        started.elapsed()
    );
    let client = reqwest::Client::new();
    let (status, body, _) = ready(&client, &base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = client
        .request(Method::GET, format!("{base}/health/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(response.status(), StatusCode::OK);

    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
    let log = server.log_text();
    assert!(
        !log.contains(DB_PASSWORD),
        "the database password is in the log:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
