//! The per-user session cap (`MAX_SESSIONS_PER_USER`, `SESSION_LIMIT_POLICY`): eviction of the
//! least recently seen session, rejection with 409, and atomicity under concurrent logins.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::both_backends;
use crate::helpers::*;

const EMAIL: &str = "jane@example.com";

/// The first column of every row of `sql`, as integers.
async fn query_i64(db: &TestDb, sql: &str) -> Vec<i64> {
    match db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut c)
                .await
                .unwrap();
            rows.iter().map(|r| r.get::<i64, _>(0)).collect()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut c)
                .await
                .unwrap();
            rows.iter().map(|r| r.get::<i64, _>(0)).collect()
        }
    }
}

/// Unrevoked session rows of `email`, whatever their age.
async fn unrevoked_sessions(app: &TestApp, email: &str) -> i64 {
    query_i64(
        &app.db,
        &format!(
            "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE u.email = '{email}' AND s.revoked_at IS NULL"
        ),
    )
    .await[0]
}

/// GET /api/v2/user/sessions as the holder of `token`.
async fn my_sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app
        .session_call(Method::GET, "/api/v2/user/sessions", token)
        .await;
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["resource"].as_array().expect("resource list").clone()
}

fn capped(policy: &str) -> TestConfig {
    TestConfig::new()
        .var("MAX_SESSIONS_PER_USER", "3")
        .var("SESSION_LIMIT_POLICY", policy)
}

/// Logs in `count` times at once, each login its own request on its own task, spread over
/// `app` and three replicas of it (each with its own password-hashing pool, so several logins
/// reach the database at the same moment); answers the statuses.
async fn concurrent_logins(app: &TestApp, count: usize) -> Vec<StatusCode> {
    let replicas = [
        app.replica().await,
        app.replica().await,
        app.replica().await,
    ];
    let mut urls = vec![app.url("/api/v2/user/session")];
    urls.extend(replicas.iter().map(|r| r.url("/api/v2/user/session")));
    let mut tasks = Vec::new();
    for i in 0..count {
        let client = app.client.clone();
        let url = urls[i % urls.len()].clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({ "email": EMAIL, "password": PASSWORD, "remember_me": true }))
                .send()
                .await
                .expect("login request")
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

both_backends! {
    async fn a_fourth_login_evicts_the_least_recently_seen_session(backend) {
        let app = spawn_app_with(backend, capped("evict_idle")).await;
        app.create_user(EMAIL, false).await;
        // Three logins; the first is the oldest, but it is the *least recently seen* one that
        // goes, so make the second the idle one: the first and third are used later.
        let first = app.login_token(EMAIL, true).await;
        app.clock.advance(1);
        let idle = app.login_token(EMAIL, false).await;
        app.clock.advance(1);
        let third = app.login_token(EMAIL, true).await;
        app.clock.advance(30);
        let first = app.refresh_token(&first).await;
        let third = app.refresh_token(&third).await;
        assert_eq!(unrevoked_sessions(&app, EMAIL).await, 3);

        let fourth = app.login_token(EMAIL, true).await;

        let (message, reason) = assert_error(app.get_session(&idle).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "session_limit", "{message}");
        let (message, reason) = assert_error(app.refresh(&idle).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "session_limit", "{message}");

        for token in [&first, &third, &fourth] {
            assert_eq!(app.get_session(token).await.status(), StatusCode::OK);
        }
        assert_eq!(unrevoked_sessions(&app, EMAIL).await, 3);
        let listed = my_sessions(&app, &fourth).await;
        assert_eq!(listed.len(), 3, "{listed:?}");
        let idle_sid = claims(&idle)["sid"].clone();
        assert!(listed.iter().all(|s| s["id"] != idle_sid), "{listed:?}");

        // And again: the next least recently seen (the first, refreshed before the third) goes.
        app.clock.advance(5);
        let third = app.refresh_token(&third).await;
        let fourth = app.refresh_token(&fourth).await;
        let fifth = app.login_token(EMAIL, false).await;
        let (_, reason) = assert_error(app.get_session(&first).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "session_limit");
        for token in [&third, &fourth, &fifth] {
            assert_eq!(app.get_session(token).await.status(), StatusCode::OK);
        }
        assert_eq!(unrevoked_sessions(&app, EMAIL).await, 3);
    }

    async fn the_cap_is_per_user(backend) {
        let app = spawn_app_with(backend, capped("reject")).await;
        app.create_user(EMAIL, false).await;
        app.create_user("john@example.com", false).await;
        for _ in 0..3 {
            app.login_token(EMAIL, true).await;
        }
        for _ in 0..3 {
            app.login_token("john@example.com", true).await;
        }
        assert_eq!(unrevoked_sessions(&app, EMAIL).await, 3);
        assert_eq!(unrevoked_sessions(&app, "john@example.com").await, 3);
    }

    async fn under_reject_a_fourth_login_is_a_409_and_the_three_keep_working(backend) {
        let app = spawn_app_with(backend, capped("reject")).await;
        app.create_user(EMAIL, false).await;
        let mut tokens = Vec::new();
        for _ in 0..3 {
            tokens.push(app.login_token(EMAIL, true).await);
            app.clock.advance(1);
        }

        let response = app.login(EMAIL, PASSWORD, true).await;
        let (message, reason) = assert_error(response, StatusCode::CONFLICT).await;
        assert_eq!(reason, "session_limit");
        let lower = message.to_lowercase();
        assert!(lower.contains("session limit") && message.contains('3'), "unclear message: {message}");

        for token in &tokens {
            assert_eq!(app.get_session(token).await.status(), StatusCode::OK);
        }
        let mut refreshed = Vec::new();
        for token in &tokens {
            refreshed.push(app.refresh_token(token).await);
        }
        assert_eq!(unrevoked_sessions(&app, EMAIL).await, 3);
        assert_eq!(my_sessions(&app, &refreshed[0]).await.len(), 3);

        // Still full: refreshing made no room.
        assert_eq!(app.login(EMAIL, PASSWORD, false).await.status(), StatusCode::CONFLICT);
        // Ending one makes room again.
        assert_eq!(app.logout(&refreshed[1]).await.status(), StatusCode::OK);
        let fourth = app.login_token(EMAIL, false).await;
        assert_eq!(app.get_session(&fourth).await.status(), StatusCode::OK);
        assert_eq!(unrevoked_sessions(&app, EMAIL).await, 3);
    }

    async fn twenty_concurrent_logins_never_exceed_the_cap_when_evicting(backend) {
        let app = spawn_app_with(backend, capped("evict_idle")).await;
        app.create_user(EMAIL, false).await;
        let statuses = concurrent_logins(&app, 20).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
        assert_eq!(unrevoked_sessions(&app, EMAIL).await, 3);
        let revoked = query_i64(
            &app.db,
            "SELECT count(*) FROM sessions WHERE revoke_reason = 'session_limit'",
        )
        .await[0];
        assert_eq!(revoked, 17);
    }

    async fn twenty_concurrent_logins_never_exceed_the_cap_when_rejecting(backend) {
        let app = spawn_app_with(backend, capped("reject")).await;
        app.create_user(EMAIL, false).await;
        let statuses = concurrent_logins(&app, 20).await;
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let conflict = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
        assert_eq!((ok, conflict), (3, 17), "{statuses:?}");
        assert_eq!(unrevoked_sessions(&app, EMAIL).await, 3);
        let rows = query_i64(&app.db, "SELECT count(*) FROM sessions").await[0];
        assert_eq!(rows, 3, "a rejected login leaves no row behind");
    }

    async fn sessions_that_can_no_longer_be_used_do_not_count_against_the_cap(backend) {
        let app = spawn_app_with(
            backend,
            capped("reject")
                .var("DF_JWT_REFRESH_TTL", "10m")
                .var("SESSION_IDLE_TTL", "1h"),
        )
        .await;
        app.create_user(EMAIL, false).await;
        // Two ordinary sessions whose refresh window will close, one forever session that will
        // idle out.
        let ordinary = app.login_token(EMAIL, false).await;
        app.login_token(EMAIL, false).await;
        let forever = app.login_token(EMAIL, true).await;
        assert_eq!(app.login(EMAIL, PASSWORD, true).await.status(), StatusCode::CONFLICT);

        app.clock.advance(11 * 60);
        // The window of the ordinary ones has closed: room for two.
        let (_, reason) = assert_error(app.refresh(&ordinary).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "refresh_window_closed");
        app.login_token(EMAIL, true).await;
        app.login_token(EMAIL, true).await;
        assert_eq!(app.login(EMAIL, PASSWORD, true).await.status(), StatusCode::CONFLICT);

        app.clock.advance(2 * 3_600);
        // Everything idled out: room for three again.
        let (_, reason) = assert_error(app.refresh(&forever).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "idle_timeout");
        for _ in 0..3 {
            app.login_token(EMAIL, true).await;
        }
        assert_eq!(app.login(EMAIL, PASSWORD, true).await.status(), StatusCode::CONFLICT);
    }
}
