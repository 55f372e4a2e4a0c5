//! Crash safety of batched writes (issue 18, item 4).
//!
//! Sixteen clients refresh their sessions as fast as they can (on PostgreSQL the refreshes
//! coalesce into batches), a quarter of them log out along the way, and the `tenure` process is
//! killed with SIGKILL in the middle. A new process on the same database must then honour every
//! answer the old one gave: every token a client received refreshes and its successor works (no
//! token was answered for a rotation that was not committed), every logout answered 200 holds,
//! and a client whose last refresh got no answer retries it and converges.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::process::create_user_with_cli;

const CLIENTS: usize = 16;
const START: Duration = Duration::from_secs(30);

/// Where a client stood when its server died.
#[derive(Debug)]
enum Outcome {
    /// Its last request (a refresh of this token, the last one it received) got no answer.
    Refreshing(String),
    /// Its logout of this token was answered 200.
    LoggedOut(String),
    /// Its logout of this token got no answer.
    LoggingOut(String),
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
) -> Option<(StatusCode, Value)> {
    let response = client
        .request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    let status = response.status();
    let body = response.json().await.ok()?;
    Some((status, body))
}

/// Refreshes until the server stops answering; clients `i % 4 == 0` log out after `i` refreshes.
async fn client(i: usize, base: String, mut token: String, answered: Arc<AtomicUsize>) -> Outcome {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("{base}/api/v2/user/session");
    for n in 0.. {
        if i.is_multiple_of(4) && n == i + 4 {
            return match send(&http, reqwest::Method::DELETE, &url, &token).await {
                Some((StatusCode::OK, _)) => Outcome::LoggedOut(token),
                None => Outcome::LoggingOut(token),
                Some((status, body)) => panic!("client {i}: logout answered {status}: {body}"),
            };
        }
        match send(&http, reqwest::Method::PUT, &url, &token).await {
            Some((StatusCode::OK, body)) => {
                token = body["session_token"].as_str().expect("a token").to_owned();
                answered.fetch_add(1, Ordering::SeqCst);
            }
            None => return Outcome::Refreshing(token),
            Some((status, body)) => panic!("client {i}: refresh answered {status}: {body}"),
        }
    }
    unreachable!()
}

async fn login(base: &str, email: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v2/user/session"))
        .json(&json!({ "email": email, "password": PASSWORD, "remember_me": true }))
        .send()
        .await
        .expect("login");
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["session_token"].as_str().unwrap().to_owned()
}

both_backends! {
    async fn a_killed_process_leaves_every_answer_true(backend) {
        let db = TestDb::new(backend).await;
        create_user_with_cli(&db.url, "crash@example.com", PASSWORD);
        // A retry on the new process comes seconds later: a grace that covers the restart.
        let env = [("DF_ALLOW_FOREVER_SESSIONS", "true"), ("REFRESH_REUSE_GRACE", "60s")];
        let mut first = TenureProcess::spawn(&db.url, &env);
        let base = first.wait_listening(START).await;
        let mut tokens = Vec::new();
        for _ in 0..CLIENTS {
            tokens.push(login(&base, "crash@example.com").await);
        }

        let answered = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = tokens
            .into_iter()
            .enumerate()
            .map(|(i, token)| tokio::spawn(client(i, base.clone(), token, answered.clone())))
            .collect();
        poll_until("refreshes under way", Duration::from_secs(30), async || {
            answered.load(Ordering::SeqCst) >= 200
        })
        .await;
        first.kill9();
        let mut outcomes = Vec::new();
        for c in clients {
            outcomes.push(c.await.expect("client"));
        }
        let in_flight = outcomes.iter().filter(|o| matches!(o, Outcome::Refreshing(_))).count();
        assert!(in_flight >= CLIENTS / 2, "refreshes were in flight at the kill: {outcomes:?}");

        let mut second = TenureProcess::spawn(&db.url, &env);
        let base = second.wait_listening(START).await;
        let http = reqwest::Client::new();
        let url = format!("{base}/api/v2/user/session");
        for (i, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Outcome::Refreshing(token) => {
                    // The token was answered, so its rotation committed: its retry rotates (or
                    // gets the successor the unanswered refresh committed), and that works.
                    let (status, body) = send(&http, reqwest::Method::PUT, &url, token).await.expect("answer");
                    assert_eq!(status, StatusCode::OK, "client {i}: the retried refresh: {body}");
                    let next = body["session_token"].as_str().unwrap();
                    let (status, body) = send(&http, reqwest::Method::GET, &url, next).await.expect("answer");
                    assert_eq!(status, StatusCode::OK, "client {i}: the successor: {body}");
                    let again = send(&http, reqwest::Method::PUT, &url, next).await.expect("answer");
                    assert_eq!(again.0, StatusCode::OK, "client {i}: it keeps refreshing: {}", again.1);
                }
                Outcome::LoggedOut(token) => {
                    let (status, _) = send(&http, reqwest::Method::GET, &url, token).await.expect("answer");
                    assert_eq!(status, StatusCode::FORBIDDEN, "client {i}: the logout holds");
                    let (status, _) = send(&http, reqwest::Method::PUT, &url, token).await.expect("answer");
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "client {i}: the logout holds");
                }
                Outcome::LoggingOut(token) => {
                    let (status, body) = send(&http, reqwest::Method::DELETE, &url, token).await.expect("answer");
                    assert!(status.is_success() || status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED, "client {i}: {status} {body}");
                    let (status, _) = send(&http, reqwest::Method::GET, &url, token).await.expect("answer");
                    assert_ne!(status, StatusCode::OK, "client {i}: the retried logout holds");
                }
            }
        }
    }
}
