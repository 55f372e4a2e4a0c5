//! Administration: listing and revoking anyone's sessions, deactivating users, and the same
//! from the command line.

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::both_backends;
use crate::helpers::*;
use crate::process::create_user_with_cli;

const ADMIN: &str = "admin@example.com";
const JANE: &str = "jane@example.com";
const JOHN: &str = "john@example.com";

/// Logs in at `/api/v2/user/session` and answers (token, user id).
async fn login(app: &TestApp, email: &str) -> (String, i64) {
    let (status, body) = status_json(app.login(email, PASSWORD, true).await).await;
    assert_eq!(status, StatusCode::OK, "login failed: {body}");
    (
        body["session_token"].as_str().unwrap().to_owned(),
        body["id"].as_i64().unwrap(),
    )
}

/// An administrator's token from `/api/v2/system/admin/session`.
async fn admin_token(app: &TestApp) -> String {
    let response = app
        .request(Method::POST, "/api/v2/system/admin/session")
        .json(&json!({ "email": ADMIN, "password": PASSWORD, "remember_me": true }))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "admin login failed: {body}");
    body["session_token"].as_str().unwrap().to_owned()
}

fn sid(token: &str) -> String {
    claims(token)["sid"].as_str().unwrap().to_owned()
}

/// A server with an administrator and two ordinary users.
async fn app_with_users(backend: Backend) -> TestApp {
    let app = spawn_app(backend).await;
    app.create_user(ADMIN, true).await;
    app.create_user(JANE, false).await;
    app.create_user(JOHN, false).await;
    app
}

/// `GET /api/v2/system/sessions{query}`: (status, body).
async fn list(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    let path = format!("/api/v2/system/sessions{query}");
    status_json(app.session_call(Method::GET, &path, token).await).await
}

/// A 200 listing: its items.
async fn list_ok(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = list(app, token, query).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["resource"].as_array().unwrap().clone()
}

fn ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn patch_user(app: &TestApp, token: &str, id: &str, body: Value) -> reqwest::Response {
    app.request(Method::PATCH, &format!("/api/v2/system/user/{id}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn assert_alive(app: &TestApp, token: &str) {
    let (status, body) = status_json(app.get_session(token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// GET 403 with `reason`, PUT 401.
async fn assert_dead(app: &TestApp, token: &str, reason: &str) {
    let (_, got) = assert_error(app.get_session(token).await, StatusCode::FORBIDDEN).await;
    assert_eq!(got, reason);
    assert_error(app.refresh(token).await, StatusCode::UNAUTHORIZED).await;
}

/// Runs `tenure` with `args` on the database at `database_url`.
fn tenure(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenure"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("LOG_FORMAT", "json")
        .args(args)
        .output()
        .expect("run tenure")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "tenure failed ({:?}): {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        stdout(output)
    );
}

both_backends! {
    async fn an_admin_lists_everyones_live_sessions_and_filters_them(backend) {
        let app = app_with_users(backend).await;
        let admin = admin_token(&app).await;
        let (jane1, jane_id) = login(&app, JANE).await;
        app.clock.advance(2);
        let (jane2, _) = login(&app, JANE).await;
        let (john1, john_id) = login(&app, JOHN).await;
        // A logged-out session is not live: it is not listed.
        let (gone, _) = login(&app, JOHN).await;
        assert_eq!(app.logout(&gone).await.status(), StatusCode::OK);

        let (status, body) = list(&app, &admin, "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["next_cursor"], Value::Null, "{body}");
        let items = body["resource"].as_array().unwrap();
        let expected: BTreeSet<String> =
            [&admin, &jane1, &jane2, &john1].into_iter().map(|t| sid(t)).collect();
        assert_eq!(ids(items), expected);
        assert_eq!(items.len(), 4);
        for item in items {
            for field in ["id", "user_id", "email", "device", "user_agent", "ip",
                          "created_at", "last_seen_at", "forever"] {
                assert!(item.get(field).is_some(), "missing {field} in {item}");
            }
            let id = item["id"].as_str().unwrap();
            let (user_id, email) = if id == sid(&jane1) || id == sid(&jane2) {
                (jane_id, JANE)
            } else if id == sid(&john1) {
                (john_id, JOHN)
            } else {
                (claims(&admin)["user_id"].as_i64().unwrap(), ADMIN)
            };
            assert_eq!(item["user_id"], json!(user_id), "{item}");
            assert_eq!(item["email"], json!(email), "{item}");
        }
        // Newest first.
        let created: Vec<&str> = items.iter().map(|i| i["created_at"].as_str().unwrap()).collect();
        let mut sorted = created.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(created, sorted);

        let jane = list_ok(&app, &admin, &format!("?user_id={jane_id}")).await;
        assert_eq!(ids(&jane), [sid(&jane1), sid(&jane2)].into_iter().collect());
        assert!(jane.iter().all(|i| i["email"] == JANE && i["user_id"] == json!(jane_id)));
        let john = list_ok(&app, &admin, &format!("?user_id={john_id}")).await;
        assert_eq!(ids(&john), [sid(&john1)].into_iter().collect());

        for email in ["jane@example.com", "JANE@Example.COM", "%20Jane@example.com%20"] {
            let by_email = list_ok(&app, &admin, &format!("?email={email}")).await;
            assert_eq!(ids(&by_email), ids(&jane), "email={email}");
        }
        assert!(list_ok(&app, &admin, "?email=nobody@example.com").await.is_empty());
        assert!(list_ok(&app, &admin, "?user_id=999999").await.is_empty());
        // Both filters: only what matches both.
        let both = list_ok(&app, &admin, &format!("?user_id={john_id}&email={JANE}")).await;
        assert!(both.is_empty(), "{both:?}");
    }

    async fn cursor_pagination_walks_every_session_exactly_once(backend) {
        let app = app_with_users(backend).await;
        let admin = admin_token(&app).await;
        let mut tokens = vec![admin.clone()];
        // Several sessions share a second, so the cursor must break ties.
        for round in 0..3 {
            for email in [JANE, JOHN] {
                tokens.push(login(&app, email).await.0);
            }
            if round != 1 {
                app.clock.advance(1);
            }
        }
        let expected: BTreeSet<String> = tokens.iter().map(|t| sid(t)).collect();
        assert_eq!(expected.len(), 7);

        let mut seen = Vec::new();
        let mut query = "?limit=2".to_owned();
        let mut pages = 0;
        loop {
            let (status, body) = list(&app, &admin, &query).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            pages += 1;
            assert!(pages <= 10, "pagination does not end");
            let items = body["resource"].as_array().unwrap();
            assert!(items.len() <= 2, "{body}");
            seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
            match &body["next_cursor"] {
                Value::Null => break,
                Value::String(cursor) => {
                    assert_eq!(items.len(), 2, "a page before the last is full: {body}");
                    query = format!("?limit=2&cursor={cursor}");
                }
                other => panic!("next_cursor is {other}"),
            }
        }
        assert_eq!(pages, 4);
        assert_eq!(seen.len(), 7, "{seen:?}");
        assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
        // The pages put together are the single listing, in the same order.
        let all: Vec<String> = list_ok(&app, &admin, "")
            .await
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(seen, all);

        // Filters and the cursor combine.
        let jane_id = claims(&tokens[1])["user_id"].as_i64().unwrap();
        let mut jane_seen = Vec::new();
        let mut query = format!("?user_id={jane_id}&limit=2");
        loop {
            let (status, body) = list(&app, &admin, &query).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let items = body["resource"].as_array().unwrap();
            assert!(items.iter().all(|i| i["email"] == JANE), "{body}");
            jane_seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
            match body["next_cursor"].as_str() {
                None => break,
                Some(cursor) => query = format!("?user_id={jane_id}&limit=2&cursor={cursor}"),
            }
            assert!(jane_seen.len() <= 3, "{jane_seen:?}");
        }
        assert_eq!(jane_seen.len(), 3);
    }

    async fn bad_listing_parameters_are_a_400(backend) {
        let app = app_with_users(backend).await;
        let admin = admin_token(&app).await;
        for query in ["?cursor=not-a-cursor", "?cursor=%2A%2A%2A", "?cursor=MTIzOm5vdC1hLXV1aWQ",
                      "?user_id=abc", "?user_id=1.5", "?limit=many", "?limit=-1"] {
            let response = app
                .session_call(Method::GET, &format!("/api/v2/system/sessions{query}"), &admin)
                .await;
            assert_error(response, StatusCode::BAD_REQUEST).await;
        }
        assert_alive(&app, &admin).await;
    }

    async fn admin_routes_refuse_everyone_but_administrators(backend) {
        let app = app_with_users(backend).await;
        let (jane, jane_id) = login(&app, JANE).await;
        let (john, john_id) = login(&app, JOHN).await;
        let routes = [
            (Method::GET, "/api/v2/system/sessions".to_owned(), None),
            (Method::DELETE, format!("/api/v2/system/sessions?user_id={john_id}"), None),
            (Method::DELETE, format!("/api/v2/system/sessions/{}", sid(&john)), None),
            (Method::PATCH, format!("/api/v2/system/user/{john_id}"), Some(json!({ "is_active": false }))),
            (Method::PATCH, format!("/api/v2/system/user/{jane_id}"), Some(json!({ "is_active": false }))),
        ];
        for (method, path, body) in &routes {
            // An ordinary user's token.
            let mut request = app.request(method.clone(), path).bearer_auth(&jane);
            if let Some(body) = body {
                request = request.json(body);
            }
            let (message, reason) =
                assert_error(request.send().await.unwrap(), StatusCode::UNAUTHORIZED).await;
            assert_eq!(message, "You are not authorized to perform this action.", "{method} {path}");
            assert_eq!(reason, "not_admin", "{method} {path}");
            // No token at all.
            let mut request = app.request(method.clone(), path);
            if let Some(body) = body {
                request = request.json(body);
            }
            let (_, reason) =
                assert_error(request.send().await.unwrap(), StatusCode::UNAUTHORIZED).await;
            assert_eq!(reason, "missing_token", "{method} {path}");
        }
        // Nothing was done.
        assert_alive(&app, &jane).await;
        assert_alive(&app, &john).await;
        assert_eq!(app.login(JOHN, PASSWORD, false).await.status(), StatusCode::OK);
        assert_eq!(app.login(JANE, PASSWORD, false).await.status(), StatusCode::OK);
    }

    async fn an_admin_revokes_one_session(backend) {
        let app = app_with_users(backend).await;
        // Administrators may also log in at /user/session.
        let (admin, _) = login(&app, ADMIN).await;
        let (jane1, _) = login(&app, JANE).await;
        let (jane2, _) = login(&app, JANE).await;

        let path = format!("/api/v2/system/sessions/{}", sid(&jane1));
        let (status, body) = status_json(app.session_call(Method::DELETE, &path, &admin).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], json!(true), "{body}");
        let (message, reason) = assert_error(app.get_session(&jane1).await, StatusCode::FORBIDDEN).await;
        assert_eq!(message, "The token has been blacklisted: Session terminated. Please re-login.");
        assert_eq!(reason, "revoked");
        let (_, reason) = assert_error(app.refresh(&jane1).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "revoked");
        assert_alive(&app, &jane2).await;
        assert!(!ids(&list_ok(&app, &admin, "").await).contains(&sid(&jane1)));

        // Already revoked, unknown or malformed: 404.
        let response = app.session_call(Method::DELETE, &path, &admin).await;
        assert_error(response, StatusCode::NOT_FOUND).await;
        let unknown = format!("/api/v2/system/sessions/{}", uuid::Uuid::new_v4());
        assert_error(app.session_call(Method::DELETE, &unknown, &admin).await, StatusCode::NOT_FOUND).await;
        let malformed = "/api/v2/system/sessions/not-a-uuid";
        assert_error(app.session_call(Method::DELETE, malformed, &admin).await, StatusCode::NOT_FOUND).await;
        assert_alive(&app, &jane2).await;
        assert_alive(&app, &admin).await;
    }

    async fn an_admin_revokes_every_session_of_a_user(backend) {
        let app = app_with_users(backend).await;
        let admin = admin_token(&app).await;
        let (jane1, jane_id) = login(&app, JANE).await;
        let (jane2, _) = login(&app, JANE).await;
        let jane3 = app.login_token(JANE, false).await;
        let (john, _) = login(&app, JOHN).await;

        // Without user_id: 400, and nothing ends.
        let response = app.session_call(Method::DELETE, "/api/v2/system/sessions", &admin).await;
        let (message, _) = assert_error(response, StatusCode::BAD_REQUEST).await;
        assert!(message.contains("user_id"), "{message}");
        let response = app.session_call(Method::DELETE, "/api/v2/system/sessions?user_id=x", &admin).await;
        assert_error(response, StatusCode::BAD_REQUEST).await;
        for token in [&jane1, &jane2, &jane3, &john, &admin] {
            assert_alive(&app, token).await;
        }

        let path = format!("/api/v2/system/sessions?user_id={jane_id}");
        let (status, body) = status_json(app.session_call(Method::DELETE, &path, &admin).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], json!(true), "{body}");
        for token in [&jane1, &jane2, &jane3] {
            assert_dead(&app, token, "revoked").await;
        }
        assert_alive(&app, &john).await;
        assert_alive(&app, &admin).await;
        assert!(list_ok(&app, &admin, &format!("?user_id={jane_id}")).await.is_empty());
        // Revocation is not deactivation: Jane can log in again.
        let (fresh, _) = login(&app, JANE).await;
        assert_alive(&app, &fresh).await;
    }

    async fn a_deactivated_user_is_out_at_once_until_reactivated(backend) {
        let app = app_with_users(backend).await;
        let admin = admin_token(&app).await;
        let (jane1, jane_id) = login(&app, JANE).await;
        let jane2 = app.login_token(JANE, false).await;
        let (john, _) = login(&app, JOHN).await;

        let response = patch_user(&app, &admin, &jane_id.to_string(), json!({ "is_active": false })).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], json!(jane_id), "{body}");
        assert_eq!(body["email"], JANE, "{body}");
        assert_eq!(body["is_active"], json!(false), "{body}");
        assert!(body.get("password_hash").is_none(), "{body}");
        for token in [&jane1, &jane2] {
            assert_error(app.get_session(token).await, StatusCode::FORBIDDEN).await;
            assert_error(app.refresh(token).await, StatusCode::UNAUTHORIZED).await;
        }
        let (message, _) = assert_error(app.login(JANE, PASSWORD, true).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(message, "Invalid credentials supplied.");
        assert_alive(&app, &john).await;

        let response = patch_user(&app, &admin, &jane_id.to_string(), json!({ "is_active": true })).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["is_active"], json!(true), "{body}");
        let (fresh, _) = login(&app, JANE).await;
        assert_alive(&app, &fresh).await;
        // The sessions ended by the deactivation stay ended.
        for token in [&jane1, &jane2] {
            assert_error(app.get_session(token).await, StatusCode::FORBIDDEN).await;
        }

        // Unknown or malformed user: 404; nothing to change: 400.
        for id in ["999999", "abc"] {
            let response = patch_user(&app, &admin, id, json!({ "is_active": false })).await;
            assert_error(response, StatusCode::NOT_FOUND).await;
        }
        for body in [json!({}), json!({ "is_active": null }), json!({ "name": "Jane" })] {
            let response = patch_user(&app, &admin, &jane_id.to_string(), body).await;
            assert_error(response, StatusCode::BAD_REQUEST).await;
        }
        assert_alive(&app, &fresh).await;
    }
}

both_backends! {
    async fn a_login_racing_a_deactivation_does_not_outlive_it(backend) {
        // Logins in flight when the user is deactivated must either fail or have their session
        // ended by the deactivation: none may come back to life on reactivation. (Refused
        // logins count as failures: keep the throttle out of the way of later rounds.)
        let config = TestConfig::new()
            .var("LOGIN_MAX_FAILURES", "100000")
            .var("LOGIN_MAX_FAILURES_PER_IP", "100000");
        let app = spawn_app_with(backend, config).await;
        app.create_user(ADMIN, true).await;
        app.create_user(JANE, false).await;
        let admin = admin_token(&app).await;
        let (_, jane_id) = login(&app, JANE).await;
        let jane_id = jane_id.to_string();
        // Enough logins that most are still queued for Argon2 when the first one answers.
        let count = 4 * std::thread::available_parallelism().map_or(1, |n| n.get()) + 8;
        for round in 0..5 {
            let first_answer = Arc::new(Notify::new());
            let logins: Vec<_> = (0..count)
                .map(|_| {
                    let client = app.client.clone();
                    let url = app.url("/api/v2/user/session");
                    let first_answer = first_answer.clone();
                    tokio::spawn(async move {
                        let response = client
                            .post(url)
                            .json(&json!({ "email": JANE, "password": PASSWORD, "remember_me": true }))
                            .send()
                            .await
                            .unwrap();
                        let answered = Instant::now();
                        first_answer.notify_one();
                        let (status, body) = status_json(response).await;
                        (status, body["session_token"].as_str().map(str::to_owned), answered)
                    })
                })
                .collect();
            // The others have read the user by now and wait for their password check.
            first_answer.notified().await;
            let response = patch_user(&app, &admin, &jane_id, json!({ "is_active": false })).await;
            assert_eq!(response.status(), StatusCode::OK);
            let deactivated = Instant::now();
            let mut tokens = Vec::new();
            let mut answered_after = 0;
            for task in logins {
                let (status, token, answered) = task.await.unwrap();
                assert!(status == StatusCode::OK || status == StatusCode::UNAUTHORIZED, "{status}");
                answered_after += usize::from(answered > deactivated);
                tokens.extend(token);
            }
            // While the user is inactive, no token works.
            for token in &tokens {
                assert_error(app.get_session(token).await, StatusCode::FORBIDDEN).await;
            }
            let response = patch_user(&app, &admin, &jane_id, json!({ "is_active": true })).await;
            assert_eq!(response.status(), StatusCode::OK);
            let mut revived = 0;
            for token in &tokens {
                if app.get_session(token).await.status() == StatusCode::OK {
                    revived += 1;
                }
            }
            assert_eq!(
                revived, 0,
                "round {round}: {revived} of the {} tokens issued to logins racing the \
                 deactivation work again after reactivation ({answered_after} of {count} logins \
                 were answered after the deactivation was)",
                tokens.len()
            );
            if answered_after > 0 && !tokens.is_empty() {
                return;
            }
        }
        panic!("the logins never overlapped the deactivation: the race was not exercised");
    }
}

both_backends! {
    async fn the_cli_lists_and_revokes_sessions(backend) {
        let app = spawn_app(backend).await;
        create_user_with_cli(&app.db.url, JANE, PASSWORD);
        create_user_with_cli(&app.db.url, JOHN, PASSWORD);
        let (jane1, _) = login(&app, JANE).await;
        let (jane2, _) = login(&app, JANE).await;
        let (jane3, _) = login(&app, JANE).await;
        let (john, _) = login(&app, JOHN).await;

        // `session list --email` shows the user's sessions and no one else's.
        let output = tenure(&app.db.url, &["session", "list", "--email", "Jane@Example.com"]);
        assert_success(&output);
        let text = stdout(&output);
        for token in [&jane1, &jane2, &jane3] {
            assert!(text.contains(&sid(token)), "{text}");
        }
        assert!(!text.contains(&sid(&john)), "{text}");
        assert!(!text.contains(&jane1), "a token was printed: {text}");
        // Without --email: everyone's.
        let output = tenure(&app.db.url, &["session", "list"]);
        assert_success(&output);
        let text = stdout(&output);
        for token in [&jane1, &jane2, &jane3, &john] {
            assert!(text.contains(&sid(token)), "{text}");
        }

        // `session revoke <ID>` ends that one session; the server refuses its token at once.
        let output = tenure(&app.db.url, &["session", "revoke", &sid(&jane1)]);
        assert_success(&output);
        let (_, reason) = assert_error(app.get_session(&jane1).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "revoked");
        assert_error(app.refresh(&jane1).await, StatusCode::UNAUTHORIZED).await;
        assert_alive(&app, &jane2).await;
        let output = tenure(&app.db.url, &["session", "list", "--email", JANE]);
        assert_success(&output);
        assert!(!stdout(&output).contains(&sid(&jane1)), "{}", stdout(&output));
        // Revoking it again, or an unknown id, fails.
        let output = tenure(&app.db.url, &["session", "revoke", &sid(&jane1)]);
        assert!(!output.status.success(), "{}", stdout(&output));
        let output = tenure(&app.db.url, &["session", "revoke", &uuid::Uuid::new_v4().to_string()]);
        assert!(!output.status.success(), "{}", stdout(&output));
        let output = tenure(&app.db.url, &["session", "revoke", "not-a-uuid"]);
        assert!(!output.status.success(), "{}", stdout(&output));

        // `session revoke --email` ends all of the user's sessions.
        let output = tenure(&app.db.url, &["session", "revoke", "--email", JANE]);
        assert_success(&output);
        for token in [&jane2, &jane3] {
            let (_, reason) = assert_error(app.get_session(token).await, StatusCode::FORBIDDEN).await;
            assert_eq!(reason, "revoked");
            assert_error(app.refresh(token).await, StatusCode::UNAUTHORIZED).await;
        }
        assert_alive(&app, &john).await;
        let output = tenure(&app.db.url, &["session", "list", "--email", JANE]);
        assert_success(&output);
        let text = stdout(&output);
        for token in [&jane1, &jane2, &jane3] {
            assert!(!text.contains(&sid(token)), "{text}");
        }

        // An unknown email is an error, for listing and revoking alike.
        for args in [
            ["session", "list", "--email", "nobody@example.com"].as_slice(),
            ["session", "revoke", "--email", "nobody@example.com"].as_slice(),
            ["session", "revoke"].as_slice(),
        ] {
            let output = tenure(&app.db.url, args);
            assert!(!output.status.success(), "{args:?}: {}", stdout(&output));
        }
        assert_alive(&app, &john).await;
    }
}
