//! FairCom's session caps: `MAX_SESSIONS_PER_IP` (live sessions created from one client
//! address, after `TRUSTED_PROXIES`) and `MAX_SESSIONS` (all live sessions), enforced in the
//! login's transaction like `MAX_SESSIONS_PER_USER`, under the same `SESSION_LIMIT_POLICY`;
//! each refusal names the limit it hit.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

/// Users `user0@example.com` … `user{n-1}@example.com`.
async fn users(app: &TestApp, n: usize) -> Vec<String> {
    let mut emails = Vec::new();
    for i in 0..n {
        let email = format!("user{i}@example.com");
        app.create_user(&email, false).await;
        emails.push(email);
    }
    emails
}

/// A login of `email` from `address` (the server trusts the loopback proxy).
async fn login_from(app: &TestApp, email: &str, address: &str) -> (StatusCode, Value) {
    let response = app
        .request(Method::POST, "/api/v2/user/session")
        .header("X-Forwarded-For", address)
        .json(&json!({ "email": email, "password": PASSWORD, "remember_me": true }))
        .send()
        .await
        .unwrap();
    status_json(response).await
}

fn token(body: &Value) -> String {
    body["session_token"]
        .as_str()
        .expect("a session token")
        .to_owned()
}

/// Asserts the 409 of `limit` with `reason`.
fn assert_refused(answer: &(StatusCode, Value), limit: &str, reason: &str, max: u32) {
    let (status, body) = answer;
    assert_eq!(*status, StatusCode::CONFLICT, "{body}");
    let context = &body["error"]["context"];
    assert_eq!(
        (&context["reason"], &context["limit"], &context["max"]),
        (&json!(reason), &json!(limit), &json!(max)),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Session limit reached"),
        "{body}"
    );
}

fn config(policy: &str) -> TestConfig {
    TestConfig::new()
        .var("TRUSTED_PROXIES", "127.0.0.1/32")
        .var("SESSION_LIMIT_POLICY", policy)
}

/// How many of `tokens` still answer GET /user/session.
async fn live(app: &TestApp, tokens: &[String]) -> usize {
    let mut n = 0;
    for token in tokens {
        if app.get_session(token).await.status() == StatusCode::OK {
            n += 1;
        }
    }
    n
}

both_backends! {
    async fn the_per_address_cap_counts_every_user_from_that_address(backend) {
        let app = spawn_app_with(backend, config("reject").var("MAX_SESSIONS_PER_IP", "2")).await;
        let emails = users(&app, 3).await;
        let a = login_from(&app, &emails[0], "203.0.113.1").await;
        let b = login_from(&app, &emails[1], "203.0.113.1").await;
        assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
        assert_refused(&login_from(&app, &emails[2], "203.0.113.1").await, "MAX_SESSIONS_PER_IP", "ip_session_limit", 2);
        // Another address has its own count; a logout makes room.
        assert_eq!(login_from(&app, &emails[2], "203.0.113.2").await.0, StatusCode::OK);
        assert_eq!(app.logout(&token(&a.1)).await.status(), StatusCode::OK);
        assert_eq!(login_from(&app, &emails[2], "203.0.113.1").await.0, StatusCode::OK);
        assert_refused(&login_from(&app, &emails[0], "203.0.113.1").await, "MAX_SESSIONS_PER_IP", "ip_session_limit", 2);
        // A refresh is not a new session.
        assert_eq!(app.refresh(&token(&b.1)).await.status(), StatusCode::OK);
    }

    async fn at_the_per_address_cap_evict_idle_ends_the_least_recently_seen_session_there(backend) {
        let app = spawn_app_with(backend, config("evict_idle").var("MAX_SESSIONS_PER_IP", "2")).await;
        let emails = users(&app, 3).await;
        let a = token(&login_from(&app, &emails[0], "203.0.113.1").await.1);
        app.clock.advance(1);
        let b = token(&login_from(&app, &emails[1], "203.0.113.1").await.1);
        let elsewhere = token(&login_from(&app, &emails[2], "198.51.100.9").await.1);
        app.clock.advance(120);
        // The older login is used since: the newer one is now the least recently seen.
        assert_eq!(app.get_session(&a).await.status(), StatusCode::OK);
        let c = login_from(&app, &emails[2], "203.0.113.1").await;
        assert_eq!(c.0, StatusCode::OK, "{}", c.1);
        let (_, reason) = assert_error(app.get_session(&b).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "ip_session_limit");
        for token in [&a, &token(&c.1), &elsewhere] {
            assert_eq!(app.get_session(token).await.status(), StatusCode::OK);
        }
    }

    async fn concurrent_logins_from_one_address_never_exceed_the_cap(backend) {
        for policy in ["reject", "evict_idle"] {
            let app = spawn_app_with(backend, config(policy).var("MAX_SESSIONS_PER_IP", "3")).await;
            let emails = users(&app, 8).await;
            let replica = app.replica().await;
            let mut logins = Vec::new();
            for (i, email) in emails.iter().enumerate() {
                let server = if i % 2 == 0 { &app } else { &replica };
                let request = server.request(Method::POST, "/api/v2/user/session")
                    .header("X-Forwarded-For", "203.0.113.7")
                    .json(&json!({ "email": email, "password": PASSWORD }));
                logins.push(tokio::spawn(async move { status_json(request.send().await.unwrap()).await }));
            }
            let mut tokens = Vec::new();
            let mut refused = 0;
            for login in logins {
                let answer = login.await.unwrap();
                match answer.0 {
                    StatusCode::OK => tokens.push(token(&answer.1)),
                    _ => {
                        assert_refused(&answer, "MAX_SESSIONS_PER_IP", "ip_session_limit", 3);
                        refused += 1;
                    }
                }
            }
            match policy {
                "reject" => assert_eq!((tokens.len(), refused), (3, 5), "{policy}"),
                _ => assert_eq!((tokens.len(), refused), (8, 0), "{policy}"),
            }
            assert_eq!(live(&app, &tokens).await, 3, "{policy}: live sessions from the address");
        }
    }

    async fn the_total_cap_counts_every_session(backend) {
        let app = spawn_app_with(backend, config("reject").var("MAX_SESSIONS", "3")).await;
        let emails = users(&app, 2).await;
        let mut tokens = Vec::new();
        for (email, address) in [(&emails[0], "203.0.113.1"), (&emails[0], "203.0.113.2"), (&emails[1], "203.0.113.3")] {
            let (status, body) = login_from(&app, email, address).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            tokens.push(token(&body));
        }
        assert_refused(&login_from(&app, &emails[1], "198.51.100.1").await, "MAX_SESSIONS", "total_session_limit", 3);
        assert_eq!(app.logout(&tokens[0]).await.status(), StatusCode::OK);
        assert_eq!(login_from(&app, &emails[1], "198.51.100.1").await.0, StatusCode::OK);

        // Evicting: the least recently seen session of anyone goes.
        let app = spawn_app_with(backend, config("evict_idle").var("MAX_SESSIONS", "2")).await;
        let emails = users(&app, 2).await;
        let first = token(&login_from(&app, &emails[0], "203.0.113.1").await.1);
        app.clock.advance(1);
        let second = token(&login_from(&app, &emails[1], "203.0.113.2").await.1);
        app.clock.advance(1);
        let third = token(&login_from(&app, &emails[1], "203.0.113.3").await.1);
        let (_, reason) = assert_error(app.get_session(&first).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "total_session_limit");
        assert_eq!(live(&app, &[second, third]).await, 2);
    }

    async fn the_per_user_cap_names_its_limit_too(backend) {
        let app = spawn_app_with(backend, config("reject").var("MAX_SESSIONS_PER_USER", "1").var("MAX_SESSIONS_PER_IP", "5")).await;
        let emails = users(&app, 1).await;
        assert_eq!(login_from(&app, &emails[0], "203.0.113.1").await.0, StatusCode::OK);
        assert_refused(&login_from(&app, &emails[0], "203.0.113.1").await, "MAX_SESSIONS_PER_USER", "session_limit", 1);
    }
}
