//! The caller's own devices: listing sessions, ending one from another, and logout scopes.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const EMAIL: &str = "jane@example.com";
const OTHER: &str = "john@example.com";

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const ANDROID_APP: &str = "NotesApp/3.1 (okhttp/4.12.0)";
const IOS_APP: &str = "NotesApp/3.1 (iOS 17.4; CFNetwork)";

/// Logs in with the given `X-Device-Model` and `User-Agent` headers (each only when given) and
/// answers the session token.
async fn login_from(
    app: &TestApp,
    email: &str,
    remember_me: bool,
    device: Option<&str>,
    user_agent: Option<&str>,
) -> String {
    let mut request = app
        .request(Method::POST, "/api/v2/user/session")
        .json(&json!({ "email": email, "password": PASSWORD, "remember_me": remember_me }));
    if let Some(device) = device {
        request = request.header("X-Device-Model", device);
    }
    if let Some(user_agent) = user_agent {
        request = request.header("User-Agent", user_agent);
    }
    let (status, body) = status_json(request.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "login failed: {body}");
    body["session_token"].as_str().unwrap().to_owned()
}

/// The session id a token stands for.
fn sid(token: &str) -> String {
    claims(token)["sid"].as_str().unwrap().to_owned()
}

/// `GET /api/v2/user/sessions` with `token`; panics unless 200.
async fn my_sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app
        .session_call(Method::GET, "/api/v2/user/sessions", token)
        .await;
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["resource"]
        .as_array()
        .unwrap_or_else(|| panic!("no resource array: {body}"))
        .clone()
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `DELETE /api/v2/user/sessions/{id}` with `token`.
async fn end_session(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.session_call(
        Method::DELETE,
        &format!("/api/v2/user/sessions/{id}"),
        token,
    )
    .await
}

/// `DELETE /api/v2/user/session` with `?scope=` when given.
async fn logout_scope(app: &TestApp, token: &str, scope: Option<&str>) -> reqwest::Response {
    let path = match scope {
        Some(scope) => format!("/api/v2/user/session?scope={scope}"),
        None => "/api/v2/user/session".to_owned(),
    };
    app.session_call(Method::DELETE, &path, token).await
}

/// GET answers 403 (with `reason`), PUT answers 401: the session is over.
async fn assert_dead(app: &TestApp, token: &str, reason: &str) {
    let (_, got) = assert_error(app.get_session(token).await, StatusCode::FORBIDDEN).await;
    assert_eq!(got, reason);
    let (_, got) = assert_error(app.refresh(token).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(got, reason);
}

async fn assert_alive(app: &TestApp, token: &str) {
    let response = app.get_session(token).await;
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Datetimes are DreamFactory's `Y-m-d H:i:s`.
fn assert_df_datetime(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let bytes = text.as_bytes();
    assert_eq!(bytes.len(), 19, "{text}");
    for (i, b) in bytes.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*b, b'-', "{text}"),
            10 => assert_eq!(*b, b' ', "{text}"),
            13 | 16 => assert_eq!(*b, b':', "{text}"),
            _ => assert!(b.is_ascii_digit(), "{text}"),
        }
    }
}

both_backends! {
    async fn the_list_shows_every_device_newest_first_with_one_current(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let phone = login_from(&app, EMAIL, true, Some("Pixel 8"), Some(ANDROID_APP)).await;
        app.clock.advance(5);
        let tablet = login_from(&app, EMAIL, false, Some("iPad Pro"), Some(IOS_APP)).await;
        app.clock.advance(5);
        let browser = login_from(&app, EMAIL, true, None, Some(FIREFOX)).await;

        let items = my_sessions(&app, &tablet).await;
        assert_eq!(items.len(), 3, "{items:?}");
        // Newest first.
        assert_eq!(ids(&items), vec![sid(&browser), sid(&tablet), sid(&phone)]);
        for item in &items {
            let mut keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                vec!["app", "app_id", "created_at", "current", "device", "forever", "id", "ip", "last_seen_at", "user_agent"],
                "{item}"
            );
            assert_df_datetime(&item["created_at"]);
            assert_df_datetime(&item["last_seen_at"]);
            assert_eq!(item["ip"], "127.0.0.1", "{item}");
        }
        assert!(items[0]["created_at"].as_str() > items[1]["created_at"].as_str());
        assert!(items[1]["created_at"].as_str() > items[2]["created_at"].as_str());

        // The browser has no device header: its name is derived from the User-Agent.
        let derived = items[0]["device"].as_str().unwrap();
        assert!(derived.contains("Firefox"), "{derived}");
        assert_ne!(derived, FIREFOX, "the raw User-Agent is not a readable name");
        assert_eq!(items[0]["user_agent"], FIREFOX);
        assert_eq!(items[0]["forever"], json!(true));
        // The apps named their device; the header wins over the User-Agent.
        assert_eq!(items[1]["device"], "iPad Pro");
        assert_eq!(items[1]["user_agent"], IOS_APP);
        assert_eq!(items[1]["forever"], json!(false));
        assert_eq!(items[2]["device"], "Pixel 8");
        assert_eq!(items[2]["user_agent"], ANDROID_APP);
        assert_eq!(items[2]["forever"], json!(true));

        // Exactly one current: the caller's, whichever device asks.
        for (token, index) in [(&tablet, 1), (&browser, 0), (&phone, 2)] {
            let items = my_sessions(&app, token).await;
            let current: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| item["current"] == json!(true))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(current, vec![index], "{items:?}");
            assert!(items.iter().all(|item| item["current"].is_boolean()), "{items:?}");
        }
    }

    async fn ending_a_device_from_another_kills_it_at_once(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let phone = login_from(&app, EMAIL, true, Some("Pixel 8"), Some(ANDROID_APP)).await;
        let tablet = login_from(&app, EMAIL, true, Some("iPad Pro"), Some(IOS_APP)).await;
        let browser = login_from(&app, EMAIL, false, None, Some(FIREFOX)).await;
        assert_alive(&app, &browser).await;

        let (status, body) = status_json(end_session(&app, &phone, &sid(&browser)).await).await;
        assert_eq!((status, &body), (StatusCode::OK, &json!({ "success": true })), "{body}");
        assert_dead(&app, &browser, "logged_out").await;

        let items = my_sessions(&app, &phone).await;
        let mut remaining = ids(&items);
        remaining.sort();
        let mut expected = vec![sid(&phone), sid(&tablet)];
        expected.sort();
        assert_eq!(remaining, expected);
        // The others are untouched.
        assert_alive(&app, &phone).await;
        assert_alive(&app, &tablet).await;
        assert_eq!(app.refresh(&tablet).await.status(), StatusCode::OK);

        // An ended session is no longer the caller's to end.
        let response = end_session(&app, &phone, &sid(&browser)).await;
        assert_error(response, StatusCode::NOT_FOUND).await;
        // The ended token cannot list or end anything either.
        let response = app.session_call(Method::GET, "/api/v2/user/sessions", &browser).await;
        assert_error(response, StatusCode::FORBIDDEN).await;
        let response = end_session(&app, &browser, &sid(&phone)).await;
        assert_error(response, StatusCode::FORBIDDEN).await;
        assert_alive(&app, &phone).await;
    }

    async fn another_users_sessions_are_not_found(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        app.create_user(OTHER, false).await;
        let jane = login_from(&app, EMAIL, true, Some("Pixel 8"), None).await;
        let john = login_from(&app, OTHER, true, Some("Galaxy S24"), None).await;

        // John's sessions never show in Jane's list.
        assert_eq!(ids(&my_sessions(&app, &jane).await), vec![sid(&jane)]);
        assert_eq!(ids(&my_sessions(&app, &john).await), vec![sid(&john)]);

        // Jane cannot end John's session: the same 404 as for a session that does not exist.
        let response = end_session(&app, &jane, &sid(&john)).await;
        let (message, _) = assert_error(response, StatusCode::NOT_FOUND).await;
        let unknown = end_session(&app, &jane, &uuid::Uuid::new_v4().to_string()).await;
        let (unknown_message, _) = assert_error(unknown, StatusCode::NOT_FOUND).await;
        assert_eq!(message, unknown_message);
        assert_alive(&app, &john).await;
        assert_eq!(app.refresh(&john).await.status(), StatusCode::OK);

        // A malformed id is not found either.
        for bad in ["not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g"] {
            let response = end_session(&app, &jane, bad).await;
            assert_error(response, StatusCode::NOT_FOUND).await;
        }
        assert_alive(&app, &jane).await;

        // No token: 401.
        let response = app.request(Method::GET, "/api/v2/user/sessions").send().await.unwrap();
        let (_, reason) = assert_error(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "missing_token");
        let response = app
            .request(Method::DELETE, &format!("/api/v2/user/sessions/{}", sid(&jane)))
            .send()
            .await
            .unwrap();
        let (_, reason) = assert_error(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "missing_token");
        assert_alive(&app, &jane).await;
        // A garbage token: 401 too.
        let response = app.session_call(Method::GET, "/api/v2/user/sessions", "garbage").await;
        let (_, reason) = assert_error(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "invalid_token");
    }

    async fn logout_scope_others_leaves_only_the_caller(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        app.create_user(OTHER, false).await;
        let phone = login_from(&app, EMAIL, true, Some("Pixel 8"), None).await;
        let tablet = login_from(&app, EMAIL, false, Some("iPad Pro"), None).await;
        let browser = login_from(&app, EMAIL, true, None, Some(FIREFOX)).await;
        let john = app.login_token(OTHER, true).await;

        let (status, body) = status_json(logout_scope(&app, &phone, Some("others")).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], json!(true), "{body}");
        assert_dead(&app, &tablet, "logged_out").await;
        assert_dead(&app, &browser, "logged_out").await;
        assert_alive(&app, &phone).await;
        assert_eq!(ids(&my_sessions(&app, &phone).await), vec![sid(&phone)]);
        // Another user is untouched.
        assert_alive(&app, &john).await;
    }

    async fn logout_scope_global_leaves_none(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        app.create_user(OTHER, false).await;
        let phone = login_from(&app, EMAIL, true, Some("Pixel 8"), None).await;
        let tablet = login_from(&app, EMAIL, false, Some("iPad Pro"), None).await;
        let browser = login_from(&app, EMAIL, true, None, Some(FIREFOX)).await;
        let john = app.login_token(OTHER, true).await;

        let (status, body) = status_json(logout_scope(&app, &tablet, Some("global")).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], json!(true), "{body}");
        for token in [&phone, &tablet, &browser] {
            assert_dead(&app, token, "logged_out").await;
        }
        let response = app.session_call(Method::GET, "/api/v2/user/sessions", &tablet).await;
        assert_error(response, StatusCode::FORBIDDEN).await;
        // A new login sees only itself: nothing of the old sessions is live.
        let fresh = app.login_token(EMAIL, true).await;
        assert_eq!(ids(&my_sessions(&app, &fresh).await), vec![sid(&fresh)]);
        assert_alive(&app, &john).await;
    }

    async fn logout_scope_local_is_the_default_and_answers_like_dreamfactory(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let phone = login_from(&app, EMAIL, true, Some("Pixel 8"), None).await;
        let tablet = login_from(&app, EMAIL, true, Some("iPad Pro"), None).await;
        let browser = login_from(&app, EMAIL, true, None, Some(FIREFOX)).await;

        // No scope: only the caller.
        let (status, body) = status_json(logout_scope(&app, &phone, None).await).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
        assert_dead(&app, &phone, "logged_out").await;
        assert_alive(&app, &tablet).await;
        assert_alive(&app, &browser).await;

        // scope=local: the same.
        let (status, body) = status_json(logout_scope(&app, &tablet, Some("local")).await).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
        assert_dead(&app, &tablet, "logged_out").await;
        assert_alive(&app, &browser).await;
        assert_eq!(ids(&my_sessions(&app, &browser).await), vec![sid(&browser)]);
    }

    async fn an_unknown_logout_scope_is_a_400_and_ends_nothing(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let phone = login_from(&app, EMAIL, true, Some("Pixel 8"), None).await;
        let tablet = login_from(&app, EMAIL, true, Some("iPad Pro"), None).await;
        for scope in ["everything", "GLOBAL", "others%00"] {
            let response = logout_scope(&app, &phone, Some(scope)).await;
            assert_error(response, StatusCode::BAD_REQUEST).await;
        }
        assert_alive(&app, &phone).await;
        assert_alive(&app, &tablet).await;
        assert_eq!(my_sessions(&app, &phone).await.len(), 2);
    }
}
