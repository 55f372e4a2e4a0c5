//! `GET /api/v2/system/environment`: DreamFactory's shape for everyone, `platform` for the
//! authenticated, the database kind for administrators, and never a secret.

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
        assert_error(response, StatusCode::FORBIDDEN).await;

        let token = app.login_token("jane@example.com", false).await;
        app.clock.advance(25 * 3600);
        let response = app.session_call(Method::GET, ENVIRONMENT, &token).await;
        let (_, reason) = assert_error(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "expired");
    }
}
