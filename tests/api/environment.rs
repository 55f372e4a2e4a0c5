//! `GET /api/v2/system/environment`: DreamFactory's shape for everyone, `platform` for the
//! authenticated, the database kind for administrators, and never a secret. An expired token
//! of a live session reads as anonymous; a bad or terminated one is refused.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const ENVIRONMENT: &str = "/api/v2/system/environment";

/// GETs the environment (with `token` as a Bearer when given); answers the body and its text.
async fn environment(app: &TestApp, token: Option<&str>) -> (Value, String) {
    let mut request = app.request(Method::GET, ENVIRONMENT);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("environment request");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{text}");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (body, text)
}

async fn admin_token(app: &TestApp) -> String {
    let response = app
        .request(Method::POST, "/api/v2/system/admin/session")
        .json(&json!({ "email": "admin@example.com", "password": PASSWORD }))
        .send()
        .await
        .expect("admin login");
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["session_token"].as_str().expect("token").to_owned()
}

/// No secret, and not even the word, in `text`.
async fn assert_no_secret(app: &TestApp, text: &str) {
    let secrets = app.db.stored_key_secrets().await;
    assert!(!secrets.is_empty(), "the generated key should be stored");
    for secret in secrets {
        assert!(
            !text.contains(&secret),
            "the signing secret is exposed: {text}"
        );
    }
    assert!(!text.to_ascii_lowercase().contains("secret"), "{text}");
    // Administrators see the database URL with its password masked; `ops.rs` proves the
    // masking with a URL that has a password (the test databases have none).
    assert!(
        !text.contains("password_hash") && !text.contains("$argon2"),
        "{text}"
    );
}

both_backends! {
    async fn anonymous_callers_get_dreamfactorys_shape_without_platform(backend) {
        let app = spawn_app(backend).await;
        let (body, text) = environment(&app, None).await;
        let auth = &body["authentication"];
        let payload = json!({ "email": "string", "password": "string", "remember_me": "bool" });
        assert_eq!(
            auth["admin"],
            json!({ "path": "system/admin/session", "verb": "POST", "payload": payload })
        );
        assert_eq!(auth["user"], json!({ "path": "user/session", "verb": "POST", "payload": payload }));
        assert_eq!(auth["oauth"], json!([]));
        assert_eq!(auth["adldap"], json!([]));
        assert_eq!(auth["saml"], json!([]));
        assert_eq!(auth["allow_open_registration"], json!(false));
        assert!(auth.get("open_reg_email_service_id").is_some_and(Value::is_null), "{body}");
        assert_eq!(auth["allow_forever_sessions"], json!(true));
        assert_eq!(auth["login_attribute"], "email");
        assert_eq!(body["apps"], json!([]));
        assert!(body.get("platform").is_none(), "platform shown to an anonymous caller: {body}");
        assert_no_secret(&app, &text).await;
    }

    async fn the_policy_follows_the_configuration(backend) {
        let app = spawn_app_with(backend, TestConfig::new()
            .var("DF_ALLOW_FOREVER_SESSIONS", "false")
            .var("DF_ALLOW_OPEN_REGISTRATION", "true")
            .var("DF_LOGIN_ATTRIBUTE", "username")).await;
        let (body, text) = environment(&app, None).await;
        let auth = &body["authentication"];
        assert_eq!(auth["login_attribute"], "username");
        assert_eq!(auth["allow_open_registration"], json!(true));
        assert_eq!(auth["allow_forever_sessions"], json!(false));
        assert_no_secret(&app, &text).await;
    }

    async fn an_authenticated_user_sees_the_version_but_not_the_database(backend) {
        let app = spawn_app(backend).await;
        app.create_user("jane@example.com", false).await;
        let token = app.login_token("jane@example.com", true).await;
        let (body, text) = environment(&app, Some(&token)).await;
        let platform = &body["platform"];
        assert_eq!(platform["version"], env!("CARGO_PKG_VERSION"), "{body}");
        assert!(platform.get("db_driver").is_none(), "db_driver shown to a user: {body}");
        assert!(platform.get("host").is_none(), "host shown to a user: {body}");
        assert_eq!(body["authentication"]["login_attribute"], "email");
        assert!(!text.contains(&token), "the token is echoed back");
        assert_no_secret(&app, &text).await;

        // From the other token sources too.
        let response = app.request(Method::GET, ENVIRONMENT)
            .header("X-DreamFactory-Session-Token", &token)
            .send().await.expect("request");
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body["platform"]["version"].is_string(), "{body}");
        let response = app.request(Method::GET, ENVIRONMENT)
            .query(&[("session_token", &token)])
            .send().await.expect("request");
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body["platform"]["version"].is_string(), "{body}");
    }

    async fn an_administrator_also_sees_the_database_kind(backend) {
        let app = spawn_app(backend).await;
        app.create_user("admin@example.com", true).await;
        let token = admin_token(&app).await;
        let (body, text) = environment(&app, Some(&token)).await;
        let platform = &body["platform"];
        let expected = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        assert_eq!(platform["db_driver"], expected, "{body}");
        assert_eq!(platform["version"], env!("CARGO_PKG_VERSION"), "{body}");
        assert!(!text.contains(&token), "the token is echoed back");
        assert_no_secret(&app, &text).await;
        // An administrator's token from /user/session counts as an administrator too.
        let token = app.login_token("admin@example.com", false).await;
        let (body, _) = environment(&app, Some(&token)).await;
        assert_eq!(body["platform"]["db_driver"], expected, "{body}");
    }

    async fn a_dead_token_is_refused_rather_than_ignored(backend) {
        let app = spawn_app(backend).await;
        app.create_user("jane@example.com", false).await;
        let token = app.login_token("jane@example.com", true).await;
        let (status, _) = status_json(app.logout(&token).await).await;
        assert_eq!(status, StatusCode::OK);
        let response = app.session_call(Method::GET, ENVIRONMENT, &token).await;
        let (_, reason) = assert_error(response, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "logged_out");
        // Still refused once it has also expired: the client must log in again.
        app.clock.advance(25 * 3600);
        let response = app.session_call(Method::GET, ENVIRONMENT, &token).await;
        let (_, reason) = assert_error(response, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "logged_out");
        // A replaced token too, and a forged one.
        let token = app.login_token("jane@example.com", true).await;
        app.refresh_token(&token).await;
        let response = app.session_call(Method::GET, ENVIRONMENT, &token).await;
        let (_, reason) = assert_error(response, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "rotated");
        let response = app.session_call(Method::GET, ENVIRONMENT, "a.b.c").await;
        let (_, reason) = assert_error(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "invalid_token");
    }

    // A deliberate difference from DreamFactory, which answers 401: its clients read the
    // environment on start-up outside their refresh logic, and a 401 there logs the user out
    // on every reload.
    async fn an_expired_token_of_a_live_session_reads_as_anonymous(backend) {
        let app = spawn_app(backend).await;
        app.create_user("jane@example.com", false).await;
        app.create_user("admin@example.com", true).await;
        let (anonymous, _) = environment(&app, None).await;
        let forever = app.login_token("jane@example.com", true).await;
        let ordinary = app.login_token("jane@example.com", false).await;
        let admin = admin_token(&app).await;
        app.clock.advance(25 * 3600);
        let sessions = app.db.dump("sessions").await;

        for token in [&forever, &ordinary, &admin] {
            // 200, exactly the anonymous answer: no platform, nothing of the administrator's.
            let (body, text) = environment(&app, Some(token)).await;
            assert_eq!(body, anonymous);
            assert!(body.get("platform").is_none(), "{body}");
            assert_no_secret(&app, &text).await;
            // From the other token sources too.
            let response = app.request(Method::GET, ENVIRONMENT)
                .header("X-DreamFactory-Session-Token", token.as_str())
                .send().await.expect("request");
            assert_eq!(status_json(response).await, (StatusCode::OK, anonymous.clone()));
        }
        // Reading it wrote nothing (the sessions were not marked seen)...
        assert_eq!(app.db.dump("sessions").await, sessions);
        // ...and elsewhere the token is still expired: the client's next call refreshes.
        let (message, reason) = assert_error(app.get_session(&forever).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "expired");
        assert!(message.starts_with("Token has expired"), "{message}");
        let fresh = app.refresh_token(&forever).await;
        let (body, _) = environment(&app, Some(&fresh)).await;
        assert_eq!(body["platform"]["version"], env!("CARGO_PKG_VERSION"), "{body}");
        let fresh = app.refresh_token(&admin).await;
        let (body, _) = environment(&app, Some(&fresh)).await;
        assert!(body["platform"]["db_driver"].is_string(), "{body}");

        // Past its refresh window an ordinary session's token reads as anonymous as well; the
        // refresh then tells the client to log in.
        app.clock.advance(15 * 24 * 3600);
        let (body, _) = environment(&app, Some(&ordinary)).await;
        assert_eq!(body, anonymous);
        let (_, reason) = assert_error(app.refresh(&ordinary).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "refresh_window_closed");
    }

    async fn an_expired_token_of_a_deactivated_user_is_still_refused(backend) {
        let app = spawn_app(backend).await;
        app.create_user("jane@example.com", false).await;
        app.create_user("admin@example.com", true).await;
        let token = app.login_token("jane@example.com", true).await;
        let admin = admin_token(&app).await;
        let sessions = app.request(Method::GET, "/api/v2/system/sessions")
            .bearer_auth(&admin)
            .query(&[("email", "jane@example.com")])
            .send().await.expect("request");
        let (status, body) = status_json(sessions).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let user_id = body["resource"][0]["user_id"].as_i64().expect("user id");
        let response = app.request(Method::PATCH, &format!("/api/v2/system/user/{user_id}"))
            .bearer_auth(&admin)
            .json(&json!({ "is_active": false }))
            .send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        app.clock.advance(25 * 3600);
        let response = app.session_call(Method::GET, ENVIRONMENT, &token).await;
        assert_error(response, StatusCode::FORBIDDEN).await;
    }
}
