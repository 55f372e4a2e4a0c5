//! Login throttling: failures counted per account and per client address in the database (so
//! every replica shares them), 429 with `Retry-After` and a growing backoff, reset by a success,
//! never permanent; `X-Forwarded-For` believed only from `TRUSTED_PROXIES`.
//!
//! Not tested here: that a throttled attempt costs no Argon2 work. It is answered before the
//! user lookup and the hash verification (`check_throttle` runs first in `SessionService::login`),
//! which a timing test could only show flakily.

use reqwest::{Method, Response, StatusCode};
use serde_json::json;
use sqlx::{Connection, Row};

use crate::both_backends;
use crate::helpers::*;

const JANE: &str = "jane@example.com";
const JOHN: &str = "john@example.com";
const WRONG: &str = "not-the-password";

/// The first column of every row of `sql`, as text.
async fn query_text(db: &TestDb, sql: &str) -> Vec<String> {
    match db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut c)
                .await
                .unwrap();
            rows.iter().map(|r| r.get::<String, _>(0)).collect()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut c)
                .await
                .unwrap();
            rows.iter().map(|r| r.get::<String, _>(0)).collect()
        }
    }
}

/// A login with an `X-Forwarded-For` header.
async fn login_via(app: &TestApp, forwarded_for: &str, email: &str, password: &str) -> Response {
    app.request(Method::POST, "/api/v2/user/session")
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

/// `n` wrong-password logins for `email`, each answered 401 (not throttled yet).
async fn fail_logins(app: &TestApp, email: &str, n: usize) {
    for i in 0..n {
        let response = app.login(email, WRONG, false).await;
        let (message, reason) = assert_error(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(
            message,
            "Invalid credentials supplied.",
            "failure {}",
            i + 1
        );
        assert_eq!(reason, "invalid_credentials", "failure {}", i + 1);
    }
}

/// Asserts a 429 in the JSON error shape with reason `throttled`; answers the seconds to wait,
/// as the message states them (and as `Retry-After` says when the header is there; its presence
/// is asserted by `ten_failures_are_throttled_with_retry_after_on_every_replica`).
async fn throttled(response: Response) -> i64 {
    let header = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (message, reason) = assert_error(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(reason, "throttled", "{message}");
    let wait: i64 = message
        .split_whitespace()
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no number of seconds in {message:?}"));
    assert!(wait > 0, "{message}");
    if let Some(header) = header {
        assert_eq!(
            header.parse::<i64>().ok(),
            Some(wait),
            "Retry-After {header:?} vs {message:?}"
        );
    }
    wait
}

both_backends! {
    async fn ten_failures_are_throttled_with_retry_after_on_every_replica(backend) {
        let app = spawn_app(backend).await;
        app.create_user(JANE, false).await;
        fail_logins(&app, JANE, 10).await;

        // The 11th attempt, even with the right password.
        let response = app.login(JANE, PASSWORD, false).await;
        let header = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let wait = throttled(response).await;
        let header = header.expect("a 429 carries Retry-After");
        let seconds: i64 = header.parse().unwrap_or_else(|_| panic!("Retry-After {header:?} is not seconds"));
        assert!(seconds > 0);
        assert_eq!(seconds, wait);

        // Another replica on the same database says the same.
        let replica = app.replica().await;
        let response = replica.login(JANE, PASSWORD, false).await;
        assert!(response.headers().get("retry-after").is_some(), "the replica's 429 carries Retry-After");
        assert_eq!(throttled(response).await, wait);
    }

    async fn the_right_password_after_the_wait_works_and_resets_the_account(backend) {
        let app = spawn_app(backend).await;
        app.create_user(JANE, false).await;
        fail_logins(&app, JANE, 10).await;
        let wait = throttled(app.login(JANE, PASSWORD, false).await).await;
        let replica = app.replica().await;
        assert_eq!(throttled(replica.login(JANE, WRONG, false).await).await, wait);

        // Throttled attempts do not extend the wait: it runs down with the clock.
        app.clock.advance(wait - 1);
        assert_eq!(throttled(app.login(JANE, PASSWORD, false).await).await, 1);
        assert_eq!(throttled(replica.login(JANE, PASSWORD, false).await).await, 1);
        app.clock.advance(1);

        // On the replica: the right password works...
        let response = replica.login(JANE, PASSWORD, false).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["session_token"].as_str().unwrap().to_owned();
        assert_eq!(app.get_session(&token).await.status(), StatusCode::OK);
        // ...and the success reset the account's counter: failures start from zero again.
        fail_logins(&app, JANE, 9).await;
        app.login_token(JANE, false).await;
        fail_logins(&app, JANE, 10).await;
        throttled(app.login(JANE, PASSWORD, false).await).await;
    }

    async fn the_backoff_grows_up_to_its_cap_and_never_locks_out(backend) {
        let app = spawn_app_with(backend, TestConfig::new()
            .var("LOGIN_BACKOFF_BASE", "30s")
            .var("LOGIN_BACKOFF_MAX", "100s")).await;
        app.create_user(JANE, false).await;
        fail_logins(&app, JANE, 10).await;
        let mut waits = vec![throttled(app.login(JANE, WRONG, false).await).await];
        for _ in 0..3 {
            app.clock.advance(*waits.last().unwrap());
            // One more failure after the wait...
            fail_logins(&app, JANE, 1).await;
            // ...and the next wait is longer, up to the cap.
            waits.push(throttled(app.login(JANE, PASSWORD, false).await).await);
        }
        assert_eq!(waits, vec![30, 60, 100, 100]);
        // Never permanent: after the (capped) wait the right password works.
        app.clock.advance(100);
        app.login_token(JANE, false).await;
        fail_logins(&app, JANE, 1).await;
    }

    async fn failures_outside_the_window_do_not_add_up(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("LOGIN_FAILURE_WINDOW", "15m")).await;
        app.create_user(JANE, false).await;
        fail_logins(&app, JANE, 9).await;
        app.clock.advance(16 * 60);
        fail_logins(&app, JANE, 9).await;
        app.login_token(JANE, false).await;
    }

    async fn another_account_from_the_same_address_is_not_throttled_by_the_account_rule(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("LOGIN_MAX_FAILURES_PER_IP", "100")).await;
        app.create_user(JANE, false).await;
        app.create_user(JOHN, false).await;
        fail_logins(&app, JANE, 10).await;
        throttled(app.login(JANE, PASSWORD, false).await).await;

        let token = app.login_token(JOHN, false).await;
        assert_eq!(app.get_session(&token).await.status(), StatusCode::OK);
        fail_logins(&app, JOHN, 1).await;
        app.login_token(JOHN, true).await;
        // Jane is still throttled.
        throttled(app.login(JANE, PASSWORD, false).await).await;
    }

    async fn the_address_rule_throttles_every_account_from_that_address(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("LOGIN_MAX_FAILURES_PER_IP", "5")).await;
        app.create_user(JANE, false).await;
        app.create_user(JOHN, false).await;
        // Five failures on five different accounts (unknown ones count too): no account is
        // near its own threshold of 10.
        for i in 0..5 {
            fail_logins(&app, &format!("user{i}@example.com"), 1).await;
        }
        let wait = throttled(app.login(JANE, PASSWORD, false).await).await;
        assert_eq!(throttled(app.login(JOHN, PASSWORD, true).await).await, wait);
        let replica = app.replica().await;
        assert_eq!(throttled(replica.login(JOHN, PASSWORD, false).await).await, wait);

        app.clock.advance(wait);
        app.login_token(JOHN, false).await;
    }

    async fn forwarded_for_is_ignored_without_trusted_proxies(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("LOGIN_MAX_FAILURES_PER_IP", "5")).await;
        app.create_user(JANE, false).await;
        for i in 0..5 {
            let response = login_via(&app, &format!("203.0.113.{i}"), &format!("user{i}@example.com"), WRONG).await;
            assert_error(response, StatusCode::UNAUTHORIZED).await;
        }
        // A fresh spoofed address does not escape the throttle on the real peer address.
        let wait = throttled(login_via(&app, "198.51.100.7", JANE, PASSWORD).await).await;
        throttled(login_via(&app, "198.51.100.8, 198.51.100.9", JANE, PASSWORD).await).await;

        app.clock.advance(wait);
        let response = login_via(&app, "198.51.100.7", JANE, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        // The session records the socket's address, not the header's.
        let ips = query_text(&app.db, "SELECT ip FROM sessions").await;
        assert_eq!(ips, vec!["127.0.0.1".to_owned()]);
    }

    async fn forwarded_for_from_a_trusted_proxy_names_the_client(backend) {
        let app = spawn_app_with(backend, TestConfig::new()
            .var("LOGIN_MAX_FAILURES_PER_IP", "5")
            .var("TRUSTED_PROXIES", "127.0.0.1")).await;
        app.create_user(JANE, false).await;
        app.create_user(JOHN, false).await;
        for i in 0..5 {
            let response = login_via(&app, "203.0.113.1", &format!("user{i}@example.com"), WRONG).await;
            assert_error(response, StatusCode::UNAUTHORIZED).await;
        }
        // That client is throttled, whichever account it tries...
        throttled(login_via(&app, "203.0.113.1", JANE, PASSWORD).await).await;
        throttled(login_via(&app, "203.0.113.1", JOHN, PASSWORD).await).await;
        // ...even when it prepends a made-up hop: the proxy's own entry is the last one.
        throttled(login_via(&app, "192.0.2.50, 203.0.113.1", JANE, PASSWORD).await).await;

        // Other clients behind the same proxy are counted separately.
        let response = login_via(&app, "203.0.113.2", JANE, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        for i in 0..4 {
            let response = login_via(&app, "203.0.113.3", &format!("user{i}@example.com"), WRONG).await;
            assert_error(response, StatusCode::UNAUTHORIZED).await;
        }
        let response = login_via(&app, "203.0.113.3", JOHN, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        // A request from the proxy itself (no header) is the proxy's address, not throttled.
        app.login_token(JANE, false).await;

        let mut ips = query_text(&app.db, "SELECT ip FROM sessions").await;
        ips.sort();
        assert_eq!(ips, vec!["127.0.0.1", "203.0.113.2", "203.0.113.3"]);
    }

    async fn spellings_of_one_login_count_as_one_account(backend) {
        let app = spawn_app(backend).await;
        app.create_user(JANE, false).await;
        for email in ["Jane@Example.com", " JANE@EXAMPLE.COM ", "jane@example.com"] {
            fail_logins(&app, email, 3).await;
        }
        fail_logins(&app, "jAnE@eXaMpLe.CoM", 1).await;
        throttled(app.login(JANE, PASSWORD, false).await).await;
        throttled(app.login("JANE@example.com", PASSWORD, false).await).await;
    }

    async fn the_admin_login_counts_against_the_same_account(backend) {
        let app = spawn_app(backend).await;
        app.create_user("admin@example.com", true).await;
        let admin_login = |password: &'static str| {
            app.request(Method::POST, "/api/v2/system/admin/session")
                .json(&json!({ "email": "admin@example.com", "password": password }))
                .send()
        };
        for _ in 0..5 {
            assert_error(admin_login(WRONG).await.unwrap(), StatusCode::UNAUTHORIZED).await;
        }
        fail_logins(&app, "admin@example.com", 5).await;
        throttled(admin_login(PASSWORD).await.unwrap()).await;
        throttled(app.login("admin@example.com", PASSWORD, false).await).await;
    }

    async fn concurrent_failures_are_all_counted(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("LOGIN_MAX_FAILURES", "100")).await;
        app.create_user(JANE, false).await;
        let replica = app.replica().await;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let client = app.client.clone();
            let url = if i % 2 == 0 { app.url("/api/v2/user/session") } else { replica.url("/api/v2/user/session") };
            tasks.push(tokio::spawn(async move {
                client.post(url).json(&json!({ "email": JANE, "password": WRONG })).send().await.unwrap().status()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), StatusCode::UNAUTHORIZED);
        }
        let mut counters = query_text(&app.db, "SELECT key || '=' || CAST(failures AS TEXT) FROM login_failures").await;
        counters.sort();
        assert_eq!(counters, vec![format!("account:{JANE}=20"), "ip:127.0.0.1=20".to_owned()]);
    }
}
