//! Refreshing: expired tokens get successors, forever means forever, racers agree, replays kill.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const EMAIL: &str = "jane@example.com";

const EXPIRED: &str = "Token has expired: Session expired. Please refresh your token (if still \
                       within refresh window) or re-login.";
const BLACKLISTED: &str = "The token has been blacklisted: Session terminated. Please re-login.";

/// A server with one ordinary user.
async fn app_with_user(backend: Backend, config: TestConfig) -> TestApp {
    let app = spawn_app_with(backend, config).await;
    app.create_user(EMAIL, false).await;
    app
}

const SESSION: &str = "/api/v2/user/session";

/// `n` forever sessions of the user.
async fn logins(app: &TestApp, n: usize) -> Vec<String> {
    login_tokens(app, EMAIL, n).await
}

/// Fires `n` refreshes with `token` at once and answers each (status, body).
async fn concurrent_refreshes(app: &TestApp, token: &str, n: usize) -> Vec<(StatusCode, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| spawn_call(app, Method::PUT, SESSION, token))
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.expect("refresh task"));
    }
    answers
}

/// Asserts every racer got 200 and the same token, and answers that token.
fn the_one_token(answers: &[(StatusCode, Value)]) -> String {
    let first = answers[0].1["session_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {}", answers[0].1))
        .to_owned();
    for (status, body) in answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["session_token"], json!(first), "racers disagree");
    }
    first
}

fn gen(token: &str) -> i64 {
    claims(token)["gen"].as_i64().expect("gen claim")
}

both_backends! {
    async fn an_expired_forever_token_is_refreshed_and_the_old_one_dies(backend) {
        let app = app_with_user(backend, TestConfig::new().var("DF_JWT_TTL", "2s")).await;
        let old = app.login_token(EMAIL, true).await;
        assert_eq!(app.get_session(&old).await.status(), StatusCode::OK);

        app.clock.advance(3);
        let (message, reason) = assert_error(app.get_session(&old).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(message, EXPIRED);
        assert_eq!(reason, "expired");

        let (status, body) = status_json(app.refresh(&old).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let new = body["session_token"].as_str().unwrap().to_owned();
        assert_eq!(body["session_id"], json!(new));
        assert_ne!(new, old);
        let (c_old, c_new) = (claims(&old), claims(&new));
        assert_eq!(c_new["gen"].as_i64().unwrap(), c_old["gen"].as_i64().unwrap() + 1);
        assert_eq!(c_new["sid"], c_old["sid"]);
        assert_eq!(c_new["forever"], json!(true));
        assert_eq!(c_new["exp"].as_i64().unwrap() - c_new["iat"].as_i64().unwrap(), 2);

        let (status, body) = status_json(app.get_session(&new).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["session_token"], json!(new));

        let (message, reason) = assert_error(app.get_session(&old).await, StatusCode::FORBIDDEN).await;
        assert_eq!(message, BLACKLISTED);
        assert_eq!(reason, "rotated");
    }

    async fn thirty_refreshes_in_a_row_never_break_the_chain(backend) {
        let app = app_with_user(backend, TestConfig::new().var("DF_JWT_TTL", "2s")).await;
        let first = app.login_token(EMAIL, true).await;
        let mut token = first.clone();
        for i in 0..30 {
            // Past the token's expiry and past the reuse grace of the previous rotation.
            app.clock.advance(12);
            let response = app.get_session(&token).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "refresh {i}: not expired");
            let next = app.refresh_token(&token).await;
            assert_eq!(gen(&next), gen(&token) + 1, "refresh {i}");
            token = next;
        }
        assert_eq!(gen(&token), gen(&first) + 30);
        let (status, body) = status_json(app.get_session(&token).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["email"], EMAIL);
    }

    async fn forever_survives_a_restart_and_any_age(backend) {
        let app = app_with_user(
            backend,
            TestConfig::new()
                .var("DF_JWT_TTL", "1m")
                .var("DF_JWT_REFRESH_TTL", "10m"),
        )
        .await;
        let token = app.login_token(EMAIL, true).await;
        let app = app.restart().await;
        // Far beyond the token's life and DF_JWT_REFRESH_TTL (df-core#32 killed these).
        app.clock.advance(30 * 24 * 3600);
        assert_error(app.get_session(&token).await, StatusCode::UNAUTHORIZED).await;
        let new = app.refresh_token(&token).await;
        assert_eq!(claims(&new)["forever"], json!(true));
        assert_eq!(gen(&new), gen(&token) + 1);
        assert_eq!(app.get_session(&new).await.status(), StatusCode::OK);

        // And again after another restart and another month.
        let app = app.restart().await;
        app.clock.advance(31 * 24 * 3600);
        let newer = app.refresh_token(&new).await;
        assert_eq!(app.get_session(&newer).await.status(), StatusCode::OK);
    }

    async fn an_ordinary_session_refreshes_only_inside_its_window(backend) {
        let app = app_with_user(
            backend,
            TestConfig::new()
                .var("DF_JWT_TTL", "1m")
                .var("DF_JWT_REFRESH_TTL", "10m"),
        )
        .await;
        let token = app.login_token(EMAIL, false).await;
        assert_eq!(claims(&token)["forever"], json!(false));

        app.clock.advance(5 * 60);
        let inside = app.refresh_token(&token).await;
        assert_eq!(claims(&inside)["forever"], json!(false));
        assert_eq!(app.get_session(&inside).await.status(), StatusCode::OK);

        // 10 min 1 s after the login: the window is closed, whatever the token's own age.
        app.clock.advance(5 * 60 + 1);
        let (message, reason) = assert_error(app.refresh(&inside).await, StatusCode::UNAUTHORIZED).await;
        assert!(message.starts_with("Token refresh failed."), "{message}");
        assert_eq!(reason, "refresh_window_closed");
        // Still refused on a second try: nothing changed.
        let (_, reason) = assert_error(app.refresh(&inside).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "refresh_window_closed");
    }

    async fn forever_sessions_can_be_switched_off(backend) {
        let app = app_with_user(
            backend,
            TestConfig::new().var("DF_ALLOW_FOREVER_SESSIONS", "false"),
        )
        .await;
        let token = app.login_token(EMAIL, true).await;
        assert_eq!(claims(&token)["forever"], json!(false));
        let refreshed = app.refresh_token(&token).await;
        assert_eq!(claims(&refreshed)["forever"], json!(false));

        let response = app.request(Method::GET, "/api/v2/system/environment").send().await.unwrap();
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["authentication"]["allow_forever_sessions"], json!(false), "{body}");
    }

    async fn simultaneous_refreshes_all_get_the_same_successor(backend) {
        let app = app_with_user(backend, TestConfig::new()).await;
        let a = app.login_token(EMAIL, true).await;

        let b = the_one_token(&concurrent_refreshes(&app, &a, 8).await);
        assert_ne!(b, a);
        assert_eq!(gen(&b), gen(&a) + 1);

        // Late racers with the same old token, within the grace: still exactly B.
        app.clock.advance(4);
        let late = the_one_token(&concurrent_refreshes(&app, &a, 8).await);
        assert_eq!(late, b);

        // A new race with B after the clock moved: one rotation, one shared successor.
        let c = the_one_token(&concurrent_refreshes(&app, &b, 8).await);
        assert_ne!(c, b);
        assert_eq!(gen(&c), gen(&b) + 1);
        assert_eq!(app.get_session(&c).await.status(), StatusCode::OK);
        let (_, reason) = assert_error(app.get_session(&b).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "rotated");
    }

    async fn a_lost_response_is_recovered_within_the_grace(backend) {
        let app = app_with_user(backend, TestConfig::new()).await;
        let a = app.login_token(EMAIL, true).await;
        let b = app.refresh_token(&a).await;
        app.clock.advance(5);
        let (status, body) = status_json(app.refresh(&a).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["session_token"], json!(b));
        // The session lives on with B.
        assert_eq!(app.get_session(&b).await.status(), StatusCode::OK);
        let c = app.refresh_token(&b).await;
        assert_eq!(gen(&c), gen(&b) + 1);
    }

    async fn a_replaced_token_replayed_after_the_grace_kills_the_session(backend) {
        let app = app_with_user(backend, TestConfig::new()).await;
        let a = app.login_token(EMAIL, true).await;
        let b = app.refresh_token(&a).await;
        app.clock.advance(11);

        let (message, reason) = assert_error(app.refresh(&a).await, StatusCode::UNAUTHORIZED).await;
        assert!(message.starts_with("Token refresh failed."), "{message}");
        assert_eq!(reason, "token_reuse");

        let (message, reason) = assert_error(app.get_session(&b).await, StatusCode::FORBIDDEN).await;
        assert_eq!(message, BLACKLISTED);
        assert_eq!(reason, "token_reuse");
        let (message, reason) = assert_error(app.refresh(&b).await, StatusCode::UNAUTHORIZED).await;
        assert!(message.starts_with("Token refresh failed."), "{message}");
        assert_eq!(reason, "token_reuse");

        // Other sessions of the same user are not affected.
        let other = app.login_token(EMAIL, true).await;
        assert_eq!(app.get_session(&other).await.status(), StatusCode::OK);
    }

    async fn a_token_two_generations_behind_is_reuse_even_inside_the_grace(backend) {
        let app = app_with_user(backend, TestConfig::new()).await;
        let a = app.login_token(EMAIL, true).await;
        let b = app.refresh_token(&a).await;
        let c = app.refresh_token(&b).await;
        assert_eq!(gen(&c), gen(&a) + 2);

        let (message, reason) = assert_error(app.refresh(&a).await, StatusCode::UNAUTHORIZED).await;
        assert!(message.starts_with("Token refresh failed."), "{message}");
        assert_eq!(reason, "token_reuse");

        let (_, reason) = assert_error(app.get_session(&c).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "token_reuse");
        let (_, reason) = assert_error(app.refresh(&c).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "token_reuse");
        // B, one behind and inside the grace, no longer gets anything either.
        let (_, reason) = assert_error(app.refresh(&b).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "token_reuse");
    }

    async fn nothing_bearer_like_is_stored(backend) {
        let app = app_with_user(backend, TestConfig::new()).await;
        let a = app.login_token(EMAIL, true).await;
        let b = app.refresh_token(&a).await;
        let ordinary = app.login_token(EMAIL, false).await;

        let mut rows = app.db.dump("sessions").await;
        assert_eq!(rows.len(), 2, "{rows:?}");
        rows.extend(app.db.dump("users").await);
        let stored = rows.join("\n");
        for token in [&a, &b, &ordinary] {
            assert!(!stored.contains(token.as_str()), "a token is stored");
            for (i, part) in token.split('.').enumerate() {
                assert!(!part.is_empty());
                assert!(!stored.contains(part), "part {i} of a token is stored: {part}");
            }
        }
        assert!(!stored.contains(PASSWORD), "the password is stored");
    }

    async fn a_burst_of_refreshes_of_many_sessions_keeps_every_rule_per_session(backend) {
        // On PostgreSQL concurrent refreshes are coalesced into shared statements: one batch
        // mixes good tokens with a replayed one and a logged-out one, and each answer must be
        // the one that session alone would get.
        let app = app_with_user(backend, TestConfig::new()).await;
        let mut tokens = logins(&app, 40).await;
        let replayed = tokens[0].clone();
        let successor = app.refresh_token(&replayed).await;
        let logged_out = tokens[1].clone();
        assert_eq!(app.logout(&logged_out).await.status(), StatusCode::OK);
        app.clock.advance(11); // past the reuse grace: presenting `replayed` is reuse

        for round in 0..3 {
            let burst: Vec<String> = if round == 0 { tokens.clone() } else { tokens[2..].to_vec() };
            let tasks: Vec<_> = burst
                .iter()
                .map(|token| (token, spawn_call(&app, Method::PUT, SESSION, token)))
                .collect();
            let mut next = Vec::new();
            for (token, task) in tasks {
                let (status, body) = task.await.unwrap();
                if *token == replayed {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
                    assert_eq!(body["error"]["context"]["reason"], json!("token_reuse"), "{body}");
                } else if *token == logged_out {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
                    assert_eq!(body["error"]["context"]["reason"], json!("logged_out"), "{body}");
                } else {
                    assert_eq!(status, StatusCode::OK, "round {round}: {body}");
                    let new = body["session_token"].as_str().unwrap().to_owned();
                    assert_eq!(claims(&new)["sid"], claims(token)["sid"]);
                    assert_eq!(gen(&new), gen(token) + 1, "one rotation per refresh");
                    next.push(new);
                }
            }
            assert_eq!(next.len(), 38, "round {round}");
            for token in &next {
                assert_eq!(app.get_session(token).await.status(), StatusCode::OK);
            }
            app.clock.advance(11);
            for token in &tokens[2..] {
                assert_eq!(app.get_session(token).await.status(), StatusCode::FORBIDDEN);
            }
            tokens.truncate(2);
            tokens.extend(next);
        }
        // The reuse ended the replayed session, its successor included.
        assert_eq!(app.get_session(&successor).await.status(), StatusCode::FORBIDDEN);
    }

    async fn a_global_logout_racing_bursts_of_refreshes_never_fails_and_leaves_nothing_usable(backend) {
        // Thirty refreshes of one user's sessions (coalesced on PostgreSQL) race a global
        // logout: no answer is a 500, and afterwards no token of the user, old or new, works.
        // (A deadlock between the two would be a 503 and a retry; this race has not been seen
        // to make one, so `a_batch_that_loses_a_deadlock_is_run_again` makes one on purpose.)
        let app = app_with_user(backend, TestConfig::new()).await;
        for round in 0..6 {
            let tokens = logins(&app, 30).await;
            let mut tasks: Vec<_> = tokens
                .iter()
                .map(|token| ("refresh", spawn_call(&app, Method::PUT, SESSION, token)))
                .collect();
            let global = "/api/v2/user/session?scope=global";
            tasks.insert(15, ("logout", spawn_call(&app, Method::DELETE, global, &tokens[round])));
            let mut minted = Vec::new();
            let mut logged_out = false;
            for (what, task) in tasks {
                let (status, body) = task.await.unwrap();
                assert!(
                    [StatusCode::OK, StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN]
                        .contains(&status)
                        || status == StatusCode::SERVICE_UNAVAILABLE,
                    "round {round}, {what}: {status} {body}"
                );
                if status == StatusCode::OK {
                    match what {
                        "logout" => logged_out = true,
                        _ => minted.push(body["session_token"].as_str().unwrap().to_owned()),
                    }
                }
            }
            if !logged_out {
                // A logout that lost a deadlock said 503: the client tries again.
                let token = minted.first().unwrap_or(&tokens[round]);
                let again = app.session_call(Method::DELETE, global, token).await;
                assert_eq!(again.status(), StatusCode::OK, "round {round}");
            }
            // Every token, old or minted in the race, says its session was logged out.
            for token in tokens.iter().chain(&minted) {
                let (_, reason) =
                    assert_error(app.get_session(token).await, StatusCode::FORBIDDEN).await;
                assert_eq!(reason, "logged_out", "round {round}: GET");
                let (_, reason) =
                    assert_error(app.refresh(token).await, StatusCode::UNAUTHORIZED).await;
                assert_eq!(reason, "logged_out", "round {round}: refresh");
            }
        }
    }
}

/// A coalesced rotation that loses a deadlock is run again: its refreshes succeed, never a 500
/// or a 503. The deadlock is made on purpose: another transaction holds one session's row while
/// the batch holds a second one, then asks for that second row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_loses_a_deadlock_is_run_again() {
    use sqlx::Connection;
    let app = app_with_user(Backend::Postgres, TestConfig::new()).await;
    let tokens: Vec<String> = logins(&app, 3).await;
    let sids: Vec<String> = tokens
        .iter()
        .map(|t| claims(t)["sid"].as_str().unwrap().to_owned())
        .collect();
    let mut other = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let deadlocks_before = deadlocks(&mut other).await;
    let mut tx = other.begin().await.unwrap();
    let lock = |sid: &str| format!("SELECT 1 FROM sessions WHERE id = '{sid}' FOR UPDATE");
    // Holds the third session for good, the first one only until the batch is queued.
    sqlx::query(sqlx::AssertSqlSafe(&*lock(&sids[2])))
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SAVEPOINT first")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(&*lock(&sids[0])))
        .execute(&mut *tx)
        .await
        .unwrap();

    let mut watch = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let put = |token: &str| start_call(&app, Method::PUT, SESSION, token);
    // The first refresh runs alone and waits for its row; the other two queue behind it, in
    // this order, and become one batch that locks the second session before the third.
    let first = put(&tokens[0]);
    wait_for_lock_waits(
        &mut watch,
        "the first refresh",
        "WHERE sessions.id = $1 AND",
    )
    .await;
    let second = put(&tokens[1]);
    second.started().await;
    let third = put(&tokens[2]);
    third.started().await;
    let batch = [second, third];
    // Lets the first refresh finish; the batch then locks the second row and waits for the third.
    sqlx::query("ROLLBACK TO SAVEPOINT first")
        .execute(&mut *tx)
        .await
        .unwrap();
    wait_for_lock_waits(&mut watch, "the batch of two", "unnest(").await;
    // Now ask for the second row: each waits for the other, and PostgreSQL ends the batch's
    // statement, which has waited longer.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE sessions SET device = device WHERE id = '{}'",
        sids[1]
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let (status, body) = first.answer().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (call, token) in batch.into_iter().zip(&tokens[1..]) {
        let (status, body) = call.answer().await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the batch was not run again: {body}"
        );
        let new = body["session_token"].as_str().unwrap();
        assert_eq!(gen(new), gen(token) + 1, "one rotation, not two");
    }
    // The scenario really made a deadlock (else this test would prove nothing).
    poll_until(
        "PostgreSQL to count the deadlock",
        std::time::Duration::from_secs(5),
        async || {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            let counted = deadlocks(&mut conn).await;
            if counted > deadlocks_before {
                Ok(())
            } else {
                Err(format!("{counted} deadlocks, as before"))
            }
        },
    )
    .await;
}

/// Waits (bounded) until one statement of the current database waits for a lock, and its
/// text contains `text` (which of the store's statements it is).
async fn wait_for_lock_waits(conn: &mut sqlx::PgConnection, what: &str, text: &str) {
    let what = format!("{what} to wait for a row lock, alone");
    poll_until(&what, std::time::Duration::from_secs(20), async || {
        let waiting: Vec<String> = sqlx::query_scalar(
            "SELECT query FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        match waiting.as_slice() {
            [one] if one.contains(text) => Ok(()),
            _ => Err(format!("statements waiting: {waiting:?}")),
        }
    })
    .await;
}

/// PostgreSQL's count of deadlocks in the current database.
async fn deadlocks(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(conn)
        .await
        .unwrap()
}
