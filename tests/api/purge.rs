//! Bounded tables: the background purge deletes rows that can never be used again (ordinary
//! sessions past their refresh window whose last token has expired, revoked sessions past
//! `REVOKED_RETENTION`, stale throttling counters) while requests go on, and keeps everything
//! else.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, Row};
use tenure::clock::Clock;

use crate::both_backends;
use crate::helpers::*;

const JANE: &str = "jane@example.com";
const BUSY: &str = "busy@example.com";
const DEAD_ROWS: i64 = 10_000;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

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

async fn count(db: &TestDb, sql: &str) -> i64 {
    query_i64(db, sql).await[0]
}

fn purge_config() -> TestConfig {
    TestConfig::new()
        .var("PURGE_INTERVAL", "1s")
        .var("DF_JWT_TTL", "1m")
        .var("DF_JWT_REFRESH_TTL", "10m")
        .var("REVOKED_RETENTION", "1h")
}

/// Inserts `n` ordinary sessions of `user_id` that can never be used again: past their refresh
/// window, their last token long expired. Marked `device = 'dead'`.
async fn insert_dead_sessions(app: &TestApp, user_id: i64, n: i64) {
    let now = app.clock.now();
    let (seen, until) = (now - DAY, now - HOUR);
    let columns = "id, user_id, forever, gen, rotated_at, created_at, last_seen_at, \
                   refresh_until, device";
    let sql = match app.db.backend {
        Backend::Postgres => format!(
            "INSERT INTO sessions ({columns}) \
             SELECT gen_random_uuid(), {user_id}, FALSE, 0, {seen}, {seen}, {seen}, {until}, 'dead' \
             FROM generate_series(1, {n})"
        ),
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}), \
             r(h) AS (SELECT lower(hex(randomblob(16))) FROM n) \
             INSERT INTO sessions ({columns}) \
             SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-' \
                    || substr(h, 17, 4) || '-' || substr(h, 21, 12), \
                    {user_id}, FALSE, 0, {seen}, {seen}, {seen}, {until}, 'dead' FROM r"
        ),
    };
    app.db.execute(&sql).await;
}

/// Inserts one session row with the given times; `device` labels it for the checks.
#[allow(clippy::too_many_arguments)]
async fn insert_session(
    app: &TestApp,
    user_id: i64,
    device: &str,
    forever: bool,
    rotated_at: i64,
    refresh_until: Option<i64>,
    revoked_at: Option<i64>,
) {
    let id = uuid::Uuid::new_v4();
    let sql_opt = |v: Option<i64>| v.map_or("NULL".to_owned(), |v| v.to_string());
    app.db
        .execute(&format!(
            "INSERT INTO sessions (id, user_id, forever, gen, rotated_at, created_at, \
             last_seen_at, refresh_until, device, revoked_at, revoke_reason) \
             VALUES ('{id}', {user_id}, {forever}, 0, {rotated_at}, {rotated_at}, {rotated_at}, \
             {}, '{device}', {}, {})",
            sql_opt(refresh_until),
            sql_opt(revoked_at),
            if revoked_at.is_some() {
                "'logged_out'"
            } else {
                "NULL"
            },
        ))
        .await;
}

async fn insert_failures(app: &TestApp, key: &str, last_failure_at: i64) {
    app.db
        .execute(&format!(
            "INSERT INTO login_failures (key, failures, window_start, last_failure_at) \
             VALUES ('{key}', 3, {last_failure_at}, {last_failure_at})"
        ))
        .await;
}

/// Logs in, refreshes, reads and logs out as `BUSY` in a loop until `stop`; every step must
/// succeed. Counts the completed rounds in `rounds`.
fn keep_logging_in(
    app: &TestApp,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU32>,
) -> tokio::task::JoinHandle<()> {
    let client = app.client.clone();
    let url = app.url("/api/v2/user/session");
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let response = client
                .post(&url)
                .json(&json!({ "email": BUSY, "password": PASSWORD }))
                .send()
                .await
                .unwrap();
            let (status, body) = status_json(response).await;
            assert_eq!(status, StatusCode::OK, "login during the purge: {body}");
            let token = body["session_token"].as_str().unwrap().to_owned();
            let response = client.put(&url).bearer_auth(&token).send().await.unwrap();
            let (status, body) = status_json(response).await;
            assert_eq!(status, StatusCode::OK, "refresh during the purge: {body}");
            let token = body["session_token"].as_str().unwrap().to_owned();
            let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "GET during the purge");
            let response = client
                .delete(&url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "logout during the purge");
            rounds.fetch_add(1, Ordering::SeqCst);
        }
    })
}

/// Waits (at most 20 s) until `sql` counts zero; answers the counts seen on the way.
async fn wait_until_none(app: &TestApp, sql: &str) -> Vec<i64> {
    let mut seen = Vec::new();
    poll_until(
        "the purge to leave none",
        Duration::from_secs(20),
        async || {
            let n = count(&app.db, sql).await;
            if seen.last() != Some(&n) {
                seen.push(n);
            }
            if n == 0 {
                Ok(())
            } else {
                Err(format!("counts seen: {seen:?}"))
            }
        },
    )
    .await;
    seen
}

/// Waits until a purge pass has run since the call: inserts one dead session of `user_id`
/// and waits until it is gone.
async fn wait_for_a_purge_pass(app: &TestApp, user_id: i64) {
    insert_dead_sessions(app, user_id, 1).await;
    wait_until_none(app, "SELECT count(*) FROM sessions WHERE device = 'dead'").await;
}

async fn user_id(app: &TestApp, email: &str) -> i64 {
    count(
        &app.db,
        &format!("SELECT id FROM users WHERE email = '{email}'"),
    )
    .await
}

/// Every session row, for failure messages.
async fn session_rows(app: &TestApp) -> Vec<String> {
    app.db.dump("sessions").await
}

both_backends! {
    async fn ten_thousand_dead_sessions_are_purged_while_logins_continue(backend) {
        let app = spawn_app_with(backend, purge_config()).await;
        app.create_user(JANE, false).await;
        app.create_user(BUSY, false).await;
        let jane = user_id(&app, JANE).await;
        let now = app.clock.now();

        // What must stay: live sessions with real tokens, and recently revoked ones whose
        // tokens must keep saying why they died.
        let forever = app.login_token(JANE, true).await;
        let ordinary = app.login_token(JANE, false).await;
        let logged_out = app.login_token(JANE, true).await;
        assert_eq!(app.logout(&logged_out).await.status(), StatusCode::OK);
        insert_session(&app, jane, "keep: forever, unused for a year", true, now - 365 * DAY, None, None).await;
        insert_session(&app, jane, "keep: window closed, token still valid", false, now - 30, Some(now - 10), None).await;
        insert_session(&app, jane, "keep: revoked 30 min ago", false, now - DAY, Some(now - HOUR), Some(now - 30 * 60)).await;
        insert_failures(&app, "account:fresh@example.com", now - 60).await;

        // What must go.
        insert_dead_sessions(&app, jane, DEAD_ROWS).await;
        for i in 0..20 {
            let (rotated, until) = (now - 2 * DAY, now + DAY);
            insert_session(&app, jane, "gone: revoked 2 h ago", i % 2 == 0, rotated, (i % 2 == 1).then_some(until), Some(now - 2 * HOUR)).await;
        }
        insert_failures(&app, "account:stale@example.com", now - 2 * HOUR).await;
        insert_failures(&app, "ip:192.0.2.1", now - 16 * 60).await;

        let (stop, rounds) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU32::new(0)));
        let busy = keep_logging_in(&app, stop.clone(), rounds.clone());
        let seen = wait_until_none(
            &app,
            "SELECT (SELECT count(*) FROM sessions WHERE device = 'dead' OR device LIKE 'gone:%') \
                  + (SELECT count(*) FROM login_failures WHERE key <> 'account:fresh@example.com')",
        ).await;
        // Logins go on while the purger runs (every second): a round completes, then one
        // more purge pass runs, and must leave the rest alone.
        poll_until("a login round while the purger runs", Duration::from_secs(20), async || {
            rounds.load(Ordering::SeqCst) >= 1
        }).await;
        wait_for_a_purge_pass(&app, jane).await;
        stop.store(true, Ordering::SeqCst);
        busy.await.unwrap();
        let rounds = rounds.load(Ordering::SeqCst);
        eprintln!("dead rows seen while purging: {seen:?}; {rounds} login rounds meanwhile");

        let kept = count(&app.db, "SELECT count(*) FROM sessions WHERE device LIKE 'keep:%'").await;
        assert_eq!(kept, 3, "{:?}", session_rows(&app).await);
        let jane_sessions = count(&app.db, &format!("SELECT count(*) FROM sessions WHERE user_id = {jane}")).await;
        assert_eq!(jane_sessions, 6, "{:?}", session_rows(&app).await);
        let failures = count(&app.db, "SELECT count(*) FROM login_failures").await;
        assert_eq!(failures, 1);

        // No row that can never be used again is left.
        let dead = count(&app.db, &format!(
            "SELECT count(*) FROM sessions WHERE (revoked_at IS NULL AND refresh_until < {now} \
             AND rotated_at < {}) OR revoked_at < {}", now - 60, now - HOUR)).await;
        assert_eq!(dead, 0);

        // The live tokens work; the logged-out one still says why.
        for token in [&forever, &ordinary] {
            assert_eq!(app.get_session(token).await.status(), StatusCode::OK);
        }
        let forever = app.refresh_token(&forever).await;
        let ordinary = app.refresh_token(&ordinary).await;
        let (_, reason) = assert_error(app.get_session(&logged_out).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "logged_out");
        let (_, reason) = assert_error(app.refresh(&logged_out).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "logged_out");
        let listed = app.session_call(Method::GET, "/api/v2/user/sessions", &forever).await;
        let (status, body) = status_json(listed).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // The two API logins, the year-old forever one, the one whose token is still valid
        // (its window has closed, so it is no longer listed as live).
        assert_eq!(body["resource"].as_array().unwrap().len(), 3, "{body}");
        assert_eq!(app.get_session(&ordinary).await.status(), StatusCode::OK);
    }

    async fn rows_go_once_they_can_no_longer_be_used(backend) {
        let app = spawn_app_with(backend, purge_config()).await;
        app.create_user(JANE, false).await;
        let forever = app.login_token(JANE, true).await;
        let ordinary = app.login_token(JANE, false).await;
        let logged_out = app.login_token(JANE, false).await;
        assert_eq!(app.logout(&logged_out).await.status(), StatusCode::OK);
        let response = app.login(JANE, "not-the-password", false).await;
        assert_error(response, StatusCode::UNAUTHORIZED).await;
        // A purge pass leaves every row that can still be used.
        wait_for_a_purge_pass(&app, user_id(&app, JANE).await).await;
        assert_eq!(count(&app.db, "SELECT count(*) FROM sessions").await, 3);
        assert_eq!(count(&app.db, "SELECT count(*) FROM login_failures").await, 2);

        // Past the ordinary session's refresh window (10 min), the revoked one's retention
        // (1 h) and the failure counters' relevance (15 min): only the forever session stays.
        app.clock.advance(2 * HOUR);
        wait_until_none(&app, "SELECT (SELECT count(*) FROM sessions WHERE forever = FALSE) \
                                    + (SELECT count(*) FROM login_failures)").await;
        assert_eq!(count(&app.db, "SELECT count(*) FROM sessions").await, 1);
        let forever = app.refresh_token(&forever).await;
        assert_eq!(app.get_session(&forever).await.status(), StatusCode::OK);
        let (_, reason) = assert_error(app.refresh(&ordinary).await, StatusCode::UNAUTHORIZED).await;
        assert!(!reason.is_empty());
    }

    async fn idle_expired_sessions_are_purged_once_their_token_has_expired(backend) {
        let app = spawn_app_with(backend, purge_config().var("SESSION_IDLE_TTL", "30m")).await;
        app.create_user(JANE, false).await;
        let idle = app.login_token(JANE, true).await;
        let mut used = app.login_token(JANE, true).await;
        for _ in 0..4 {
            app.clock.advance(10 * 60);
            used = app.refresh_token(&used).await;
        }
        // 40 min on, the first has been idle past the TTL and its token has long expired.
        let idle_sid = claims(&idle)["sid"].as_str().unwrap().to_owned();
        wait_until_none(
            &app,
            &format!("SELECT count(*) FROM sessions WHERE id = '{idle_sid}'"),
        )
        .await;
        assert_eq!(count(&app.db, "SELECT count(*) FROM sessions").await, 1);
        assert_eq!(app.get_session(&used).await.status(), StatusCode::OK);
        app.clock.advance(10 * 60);
        app.refresh_token(&used).await;
    }
}
