//! Idle expiry (`SESSION_IDLE_TTL`) and the bounded `last_seen_at` writes
//! (`LAST_SEEN_RESOLUTION`).

use reqwest::StatusCode;
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

/// The `last_seen_at` of the only session in the database.
async fn last_seen_at(app: &TestApp) -> i64 {
    let values = query_i64(&app.db, "SELECT last_seen_at FROM sessions").await;
    assert_eq!(values.len(), 1, "expected exactly one session row");
    values[0]
}

fn idle_config() -> TestConfig {
    TestConfig::new()
        .var("SESSION_IDLE_TTL", "3s")
        .var("DF_JWT_TTL", "1s")
}

/// Makes `gets` GET calls, advancing the clock `step` seconds before each; answers how many
/// distinct `last_seen_at` values the row went through (the login's included), and the value
/// after each call.
async fn seen_values_over_gets(app: &TestApp, token: &str, gets: usize, step: i64) -> Vec<i64> {
    let mut values = vec![last_seen_at(app).await];
    for _ in 0..gets {
        app.clock.advance(step);
        let response = app.get_session(token).await;
        assert_eq!(response.status(), StatusCode::OK);
        values.push(last_seen_at(app).await);
    }
    values
}

fn distinct(values: &[i64]) -> usize {
    let mut v = values.to_vec();
    v.dedup();
    v.len()
}

both_backends! {
    async fn a_forever_session_unused_past_the_idle_ttl_cannot_refresh(backend) {
        let app = spawn_app_with(backend, idle_config()).await;
        app.create_user(EMAIL, false).await;
        let forever = app.login_token(EMAIL, true).await;
        let ordinary = app.login_token(EMAIL, false).await;
        app.clock.advance(4);
        for token in [&forever, &ordinary] {
            let (message, reason) = assert_error(app.refresh(token).await, StatusCode::UNAUTHORIZED).await;
            assert_eq!(reason, "idle_timeout", "{message}");
            assert!(message.starts_with("Token refresh failed."), "{message}");
        }
        // It stays dead: coming back later changes nothing, and it is not a live session.
        app.clock.advance(60);
        let (_, reason) = assert_error(app.refresh(&forever).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "idle_timeout");
        // A new login is unaffected.
        let fresh = app.login_token(EMAIL, true).await;
        app.clock.advance(2);
        app.refresh_token(&fresh).await;
    }

    async fn exactly_at_the_idle_ttl_a_session_still_refreshes(backend) {
        let app = spawn_app_with(backend, idle_config()).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        app.clock.advance(3);
        app.refresh_token(&token).await;
    }

    async fn a_forever_session_refreshed_every_second_keeps_refreshing(backend) {
        let app = spawn_app_with(backend, idle_config()).await;
        app.create_user(EMAIL, false).await;
        let mut token = app.login_token(EMAIL, true).await;
        for _ in 0..10 {
            app.clock.advance(1);
            token = app.refresh_token(&token).await;
        }
        // Used every 2 s for a while longer (still inside the 3 s idle TTL)...
        for _ in 0..5 {
            app.clock.advance(2);
            token = app.refresh_token(&token).await;
        }
        // ...and then left alone past the TTL.
        app.clock.advance(4);
        let (_, reason) = assert_error(app.refresh(&token).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "idle_timeout");
    }

    async fn access_counts_as_use_when_the_resolution_is_finer_than_the_idle_ttl(backend) {
        let app = spawn_app_with(
            backend,
            TestConfig::new()
                .var("SESSION_IDLE_TTL", "3s")
                .var("LAST_SEEN_RESOLUTION", "1s"),
        )
        .await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        // The (long-lived) token is used every second, never refreshed...
        for _ in 0..10 {
            app.clock.advance(1);
            assert_eq!(app.get_session(&token).await.status(), StatusCode::OK);
        }
        // ...so the session was seen a second ago and refreshes.
        app.clock.advance(1);
        app.refresh_token(&token).await;
    }

    async fn last_seen_at_is_written_at_most_once_per_resolution(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("LAST_SEEN_RESOLUTION", "60s")).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        let login_seen = last_seen_at(&app).await;
        // 30 requests over 150 s.
        let values = seen_values_over_gets(&app, &token, 30, 5).await;
        let writes = distinct(&values) - 1;
        assert!(writes <= 150usize.div_ceil(60) + 1, "{writes} writes: {values:?}");
        assert!(writes >= 2, "last_seen_at should follow use at the resolution: {values:?}");
        // Nothing within the first minute, a write once it has passed.
        assert!(values[..=12].iter().all(|v| *v == login_seen), "{values:?}");
        assert!(values[13..].iter().all(|v| *v > login_seen), "{values:?}");
        // Each write records the time of the request that made it, and writes are >= 60 s apart.
        let mut written: Vec<i64> = values.clone();
        written.dedup();
        for pair in written.windows(2) {
            assert!(pair[1] - pair[0] > 60, "{written:?}");
        }
    }

    async fn with_no_resolution_last_seen_at_follows_every_request(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("LAST_SEEN_RESOLUTION", "0s")).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        let values = seen_values_over_gets(&app, &token, 30, 5).await;
        assert_eq!(distinct(&values), 31, "{values:?}");
        assert_eq!(values[30] - values[0], 150);
    }

    async fn a_stale_token_does_not_touch_its_session(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("LAST_SEEN_RESOLUTION", "0s")).await;
        app.create_user(EMAIL, false).await;
        let old = app.login_token(EMAIL, true).await;
        app.clock.advance(5);
        let _new = app.refresh_token(&old).await;
        let after_refresh = last_seen_at(&app).await;
        app.clock.advance(5);
        // The replaced token is refused, and its use does not count as the session being seen.
        assert_error(app.get_session(&old).await, StatusCode::FORBIDDEN).await;
        assert_eq!(last_seen_at(&app).await, after_refresh);
    }

    // A session in constant use (a GET every second with its long-lived token) must not idle
    // out, whatever LAST_SEEN_RESOLUTION is: the acceptance's SESSION_IDLE_TTL=3s runs with the
    // default resolution of 60 s, so `last_seen_at` must be written often enough for the idle
    // rule (or the configuration must refuse an idle TTL not longer than the resolution).
    async fn a_session_used_every_second_stays_alive_with_the_default_resolution(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("SESSION_IDLE_TTL", "3s")).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        for _ in 0..10 {
            app.clock.advance(1);
            assert_eq!(app.get_session(&token).await.status(), StatusCode::OK);
        }
        app.clock.advance(1);
        app.refresh_token(&token).await;
    }
}
