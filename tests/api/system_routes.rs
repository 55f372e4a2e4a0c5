//! DreamFactory's system resources tenure does not serve answer as df-core's `AccessCheck`
//! does, never 404 (DreamFactory's admin interface replaces its page on a 403 or 404):
//! token errors first, then no credentials, no API key, no session token, no role. An
//! administrator's `lookup` is an empty list.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const EMAIL: &str = "jane@example.com";
const ADMIN: &str = "admin@example.com";
const NO_CREDENTIALS: &str = "No session token (JWT) or API Key detected in request. Please send in X-DreamFactory-Session-Token and/or X-DreamFactory-API-Key request header. You can also use URL query parameters session_token and/or api_key.";
const NO_API_KEY: &str = "No API Key provided. Please provide a valid API Key using X-DreamFactory-API-Key request header or 'api_key' url query parameter.";
const NO_SESSION_TOKEN: &str = "No session token (JWT) provided. Please provide a valid JWT using X-DreamFactory-Session-Token request header or 'session_token' url query parameter.";
const ROLE_NOT_FOUND: &str =
    "Role not found. A role may not be assigned to you or your application.";
const EXPIRED: &str = "Token has expired: Session expired. Please refresh your token (if still within refresh window) or re-login.";
const BLACKLISTED: &str = "The token has been blacklisted: Session terminated. Please re-login.";

/// Requests across resources, methods and depths, including `user`, whose `{id}` form another
/// module serves for PATCH.
const REQUESTS: &[(&str, &str)] = &[
    ("GET", "/api/v2/system/lookup"),
    ("GET", "/api/v2/system/service"),
    ("GET", "/api/v2/system/service_type"),
    ("POST", "/api/v2/system/cors"),
    ("PUT", "/api/v2/system/email_template/3"),
    ("PATCH", "/api/v2/system/custom"),
    ("DELETE", "/api/v2/system/cache/db"),
    ("GET", "/api/v2/system/event"),
    ("GET", "/api/v2/system/package"),
    ("GET", "/api/v2/system/config"),
    ("GET", "/api/v2/system/user"),
    ("GET", "/api/v2/system/role/1"),
    ("GET", "/api/v2/system/no_such_resource"),
];

/// How a request carries its token and an API key.
#[derive(Clone, Copy)]
enum Key<'a> {
    None,
    Header(&'a str),
    Query(&'a str),
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    key: Key<'_>,
) -> Response {
    let mut request = app.request(method.parse::<Method>().unwrap(), path);
    if let Some(token) = token {
        request = request.header("X-DreamFactory-Session-Token", token);
    }
    request = match key {
        Key::None => request,
        Key::Header(key) => request.header("X-DreamFactory-API-Key", key),
        Key::Query(key) => request.query(&[("api_key", key)]),
    };
    request.send().await.unwrap()
}

/// A key no app has: DreamFactory ignores it, so it counts as no key.
const UNKNOWN_KEY: &str = "6498a8ad1beb9d84d63035c5d1120c007fad6de706734db9689f8996707e0f7d";

/// An active app's API key, made by an administrator (created when missing).
async fn app_key(app: &TestApp) -> String {
    if app.login(ADMIN, PASSWORD, false).await.status() != StatusCode::OK {
        app.create_user(ADMIN, true).await;
    }
    let admin = admin_token(app).await;
    let key = app
        .create_app(
            &admin,
            &format!("web-{}", uuid::Uuid::new_v4().simple()),
            json!({}),
        )
        .await
        .key;
    assert_eq!(app.logout(&admin).await.status(), StatusCode::OK);
    key
}

/// Every request of [`REQUESTS`] gets `status` with exactly `message` and `reason`.
async fn assert_everywhere(
    app: &TestApp,
    token: Option<&str>,
    key: Key<'_>,
    status: StatusCode,
    message: &str,
    reason: &str,
) {
    for (method, path) in REQUESTS {
        let response = call(app, method, path, token, key).await;
        let (got_message, got_reason) = assert_error(response, status).await;
        assert_eq!(
            (got_message.as_str(), got_reason.as_str()),
            (message, reason),
            "{method} {path}"
        );
    }
}

async fn admin_token(app: &TestApp) -> String {
    let response = app
        .request(Method::POST, "/api/v2/system/admin/session")
        .json(&json!({ "email": ADMIN, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["session_token"].as_str().unwrap().to_owned()
}

both_backends! {
    async fn without_a_token_the_answer_depends_on_the_api_key(backend) {
        let app = spawn_app(backend).await;
        let key = app_key(&app).await;
        assert_everywhere(&app, None, Key::None, StatusCode::BAD_REQUEST, NO_CREDENTIALS, "no_credentials").await;
        assert_everywhere(&app, None, Key::Header(&key), StatusCode::BAD_REQUEST, NO_SESSION_TOKEN, "session_token_required").await;
        assert_everywhere(&app, None, Key::Query(&key), StatusCode::BAD_REQUEST, NO_SESSION_TOKEN, "session_token_required").await;
        // A blank key, and a key no app has, are no key.
        assert_everywhere(&app, None, Key::Header(UNKNOWN_KEY), StatusCode::BAD_REQUEST, NO_CREDENTIALS, "no_credentials").await;
        for request in [
            app.request(Method::GET, "/api/v2/system/lookup").header("X-DreamFactory-API-Key", "  "),
            app.request(Method::GET, "/api/v2/system/lookup").query(&[("api_key", "")]),
        ] {
            let (message, _) = assert_error(request.send().await.unwrap(), StatusCode::BAD_REQUEST).await;
            assert_eq!(message, NO_CREDENTIALS);
        }
    }

    async fn a_users_token_needs_a_key_and_then_has_no_role(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let key = app_key(&app).await;
        let token = app.login_token(EMAIL, true).await;
        assert_everywhere(&app, Some(&token), Key::None, StatusCode::BAD_REQUEST, NO_API_KEY, "api_key_required").await;
        assert_everywhere(&app, Some(&token), Key::Query(UNKNOWN_KEY), StatusCode::BAD_REQUEST, NO_API_KEY, "api_key_required").await;
        assert_everywhere(&app, Some(&token), Key::Header(&key), StatusCode::FORBIDDEN, ROLE_NOT_FOUND, "role_not_found").await;
        assert_everywhere(&app, Some(&token), Key::Query(&key), StatusCode::FORBIDDEN, ROLE_NOT_FOUND, "role_not_found").await;
        // The token from the other sources counts the same.
        let response = app.request(Method::GET, "/api/v2/system/lookup").bearer_auth(&token).send().await.unwrap();
        assert_eq!(assert_error(response, StatusCode::BAD_REQUEST).await.0, NO_API_KEY);
        let response = app.request(Method::GET, "/api/v2/system/lookup")
            .query(&[("session_token", token.as_str()), ("api_key", key.as_str())])
            .send().await.unwrap();
        assert_eq!(assert_error(response, StatusCode::FORBIDDEN).await.0, ROLE_NOT_FOUND);
        // The session stays good.
        assert_eq!(app.get_session(&token).await.status(), StatusCode::OK);
    }

    async fn token_errors_come_first(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        app.create_user(ADMIN, true).await;
        let app_key = app_key(&app).await;
        for key in [Key::None, Key::Header(&app_key)] {
            assert_everywhere(&app, Some("a.b.c"), key, StatusCode::UNAUTHORIZED,
                "Invalid token: Wrong number of segments", "invalid_token").await;
        }
        // Expired (a user's and an administrator's): DreamFactory clients refresh on this.
        let user = app.login_token(EMAIL, true).await;
        let admin = admin_token(&app).await;
        app.clock.advance(25 * 3600);
        for token in [&user, &admin] {
            for key in [Key::None, Key::Query(&app_key)] {
                assert_everywhere(&app, Some(token), key, StatusCode::UNAUTHORIZED, EXPIRED, "expired").await;
            }
        }
        // Refreshed, the administrator is let through again.
        let admin = app.refresh_token(&admin).await;
        let response = call(&app, "GET", "/api/v2/system/lookup", Some(&admin), Key::None).await;
        assert_eq!(status_json(response).await, (StatusCode::OK, json!({ "resource": [] })));
        // Terminated: 403 with the session routes' message, not "Role not found".
        assert_eq!(app.logout(&admin).await.status(), StatusCode::OK);
        for key in [Key::None, Key::Header(&app_key)] {
            assert_everywhere(&app, Some(&admin), key, StatusCode::FORBIDDEN, BLACKLISTED, "logged_out").await;
        }
    }

    async fn an_administrator_reads_an_empty_lookup_list(backend) {
        let app = spawn_app(backend).await;
        app.create_user(ADMIN, true).await;
        let admin = admin_token(&app).await;
        // Through either login path, with or without a key, from every token source.
        let via_user_path = app.login_token(ADMIN, false).await;
        let key = app_key(&app).await;
        for token in [&admin, &via_user_path] {
            for key in [Key::None, Key::Header(&key), Key::Query(&key), Key::Header(UNKNOWN_KEY)] {
                let response = call(&app, "GET", "/api/v2/system/lookup", Some(token), key).await;
                assert_eq!(status_json(response).await, (StatusCode::OK, json!({ "resource": [] })));
            }
        }
        let response = app.request(Method::GET, "/api/v2/system/lookup")
            .query(&[("session_token", admin.as_str()), ("fields", "*")])
            .send().await.unwrap();
        assert_eq!(status_json(response).await, (StatusCode::OK, json!({ "resource": [] })));

        // Anything else: DreamFactory's "not supported" (a 400, which its admin interface
        // ignores), or its "not found" for what DreamFactory does not have either.
        for (method, path, status, message) in [
            ("GET", "/api/v2/system/service", StatusCode::BAD_REQUEST,
                "GET requests for resource 'service' are not currently supported by the 'system' service."),
            ("POST", "/api/v2/system/lookup", StatusCode::BAD_REQUEST,
                "POST requests for resource 'lookup' are not currently supported by the 'system' service."),
            ("DELETE", "/api/v2/system/cache/db", StatusCode::BAD_REQUEST,
                "DELETE requests for resource 'cache/db' are not currently supported by the 'system' service."),
            ("GET", "/api/v2/system/user", StatusCode::BAD_REQUEST,
                "GET requests for resource 'user' are not currently supported by the 'system' service."),
            ("GET", "/api/v2/system/lookup/3", StatusCode::NOT_FOUND,
                "Record with identifier '3' not found."),
            ("GET", "/api/v2/system/no_such_resource", StatusCode::NOT_FOUND,
                "Resource 'no_such_resource' not found for service 'system'."),
        ] {
            let response = call(&app, method, path, Some(&admin), Key::None).await;
            let (got, _) = assert_error(response, status).await;
            assert_eq!(got, message, "{method} {path}");
        }
    }

    async fn tenures_own_system_routes_are_untouched(backend) {
        let app = spawn_app(backend).await;
        app.create_user(ADMIN, true).await;
        app.create_user(EMAIL, false).await;
        let admin = admin_token(&app).await;
        // Anonymous: the environment is open; the session endpoint answers as before.
        let (status, body) = status_json(call(&app, "GET", "/api/v2/system/environment", None, Key::None).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (message, _) = assert_error(
            call(&app, "GET", "/api/v2/system/admin/session", None, Key::None).await,
            StatusCode::UNAUTHORIZED,
        ).await;
        assert_eq!(message, "There is no valid session for the current request.");
        // An administrator's own routes.
        let (status, body) = status_json(call(&app, "GET", "/api/v2/system/sessions", Some(&admin), Key::None).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["resource"].is_array(), "{body}");
        let (status, body) = status_json(call(&app, "GET", "/api/v2/system/admin/session", Some(&admin), Key::None).await).await;
        assert_eq!((status, &body["email"]), (StatusCode::OK, &Value::from(ADMIN)));
        // Deeper paths than DreamFactory's records are not routes at all.
        let response = call(&app, "GET", "/api/v2/system/service/1/extra", Some(&admin), Key::None).await;
        assert_error(response, StatusCode::NOT_FOUND).await;
    }
}
