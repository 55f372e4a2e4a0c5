//! Changing the password: the caller's session stays, every other one ends.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const EMAIL: &str = "jane@example.com";
const OTHER: &str = "john@example.com";
const NEW_PASSWORD: &str = "a-brand-new-passphrase";

/// `POST /api/v2/user/password` with `body`, and the token when given.
async fn change(app: &TestApp, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app
        .request(Method::POST, "/api/v2/user/password")
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// A 400 "Validation failed" whose context names `fields` (and only those); answers the context.
async fn assert_validation(response: reqwest::Response, fields: &[&str]) -> Value {
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], json!(400), "{body}");
    assert_eq!(body["error"]["message"], "Validation failed", "{body}");
    let context = body["error"]["context"].clone();
    let mut named: Vec<&str> = context
        .as_object()
        .unwrap_or_else(|| panic!("no context object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    named.sort_unstable();
    let mut expected = fields.to_vec();
    expected.sort_unstable();
    assert_eq!(named, expected, "{body}");
    for field in fields {
        let messages = context[*field].as_array().unwrap();
        assert!(
            !messages.is_empty() && messages.iter().all(Value::is_string),
            "{body}"
        );
    }
    context
}

async fn assert_alive(app: &TestApp, token: &str) {
    let (status, body) = status_json(app.get_session(token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

both_backends! {
    async fn a_password_change_keeps_the_callers_session_and_ends_the_others(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        app.create_user(OTHER, false).await;
        let mine = app.login_token(EMAIL, true).await;
        let forever = app.login_token(EMAIL, true).await;
        let ordinary = app.login_token(EMAIL, false).await;
        let john = app.login_token(OTHER, true).await;

        let response = change(&app, Some(&mine), json!({
            "old_password": PASSWORD,
            "new_password": NEW_PASSWORD,
        })).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], json!(true), "{body}");

        // The caller's session stays, and keeps refreshing.
        assert_alive(&app, &mine).await;
        let next = app.refresh_token(&mine).await;
        assert_alive(&app, &next).await;
        app.clock.advance(5);
        let next = app.refresh_token(&next).await;
        assert_alive(&app, &next).await;

        // Every other session of the user is over, with the reason.
        for token in [&forever, &ordinary] {
            let (message, reason) = assert_error(app.get_session(token).await, StatusCode::FORBIDDEN).await;
            assert_eq!(reason, "password_changed");
            assert_eq!(message, "The token has been blacklisted: Session terminated. Please re-login.");
            let (_, reason) = assert_error(app.refresh(token).await, StatusCode::UNAUTHORIZED).await;
            assert_eq!(reason, "password_changed");
        }
        // Another user's sessions are not touched.
        assert_alive(&app, &john).await;

        // The old password no longer logs in; the new one does.
        let (message, _) = assert_error(app.login(EMAIL, PASSWORD, true).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(message, "Invalid credentials supplied.");
        let (status, body) = status_json(app.login(EMAIL, NEW_PASSWORD, true).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // John's password is unchanged.
        assert_eq!(app.login(OTHER, PASSWORD, false).await.status(), StatusCode::OK);
    }

    async fn a_wrong_old_password_is_a_400_and_changes_nothing(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let mine = app.login_token(EMAIL, true).await;
        let other = app.login_token(EMAIL, true).await;
        let users = app.db.dump("users").await;

        let response = change(&app, Some(&mine), json!({
            "old_password": "not-the-password",
            "new_password": NEW_PASSWORD,
        })).await;
        let context = assert_validation(response, &["old_password"]).await;
        assert_eq!(context["old_password"][0], "The old password is not correct.");

        assert_eq!(app.db.dump("users").await, users, "the user row changed");
        assert_alive(&app, &mine).await;
        assert_alive(&app, &other).await;
        assert_eq!(app.refresh(&other).await.status(), StatusCode::OK);
        assert_eq!(app.login(EMAIL, PASSWORD, false).await.status(), StatusCode::OK);
        assert_error(app.login(EMAIL, NEW_PASSWORD, false).await, StatusCode::UNAUTHORIZED).await;
    }

    async fn a_short_new_password_is_a_400_naming_the_rule(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let mine = app.login_token(EMAIL, true).await;
        let other = app.login_token(EMAIL, true).await;
        let users = app.db.dump("users").await;

        for short in ["", "a", "seven77"] {
            let response = change(&app, Some(&mine), json!({
                "old_password": PASSWORD,
                "new_password": short,
            })).await;
            let context = assert_validation(response, &["new_password"]).await;
            let rule = context["new_password"][0].as_str().unwrap();
            assert!(rule.contains("at least 8 characters"), "{rule}");
        }
        assert_eq!(app.db.dump("users").await, users, "the user row changed");
        assert_alive(&app, &other).await;

        // Exactly the minimum is enough.
        let response = change(&app, Some(&mine), json!({
            "old_password": PASSWORD,
            "new_password": "eight888",
        })).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(app.login(EMAIL, "eight888", false).await.status(), StatusCode::OK);
    }

    async fn the_minimum_length_comes_from_the_configuration(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("PASSWORD_MIN_LENGTH", "12")).await;
        app.create_user(EMAIL, false).await;
        let mine = app.login_token(EMAIL, true).await;

        let response = change(&app, Some(&mine), json!({
            "old_password": PASSWORD,
            "new_password": "eleven-char",
        })).await;
        let context = assert_validation(response, &["new_password"]).await;
        let rule = context["new_password"][0].as_str().unwrap();
        assert!(rule.contains("at least 12 characters"), "{rule}");
        assert_error(app.login(EMAIL, "eleven-char", false).await, StatusCode::UNAUTHORIZED).await;

        let response = change(&app, Some(&mine), json!({
            "old_password": PASSWORD,
            "new_password": "twelve-chars",
        })).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(app.login(EMAIL, "twelve-chars", false).await.status(), StatusCode::OK);
    }

    async fn missing_fields_are_a_400_naming_them(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let mine = app.login_token(EMAIL, true).await;
        let users = app.db.dump("users").await;

        for (body, fields) in [
            (json!({}), vec!["new_password", "old_password"]),
            (json!({ "old_password": PASSWORD }), vec!["new_password"]),
            (json!({ "new_password": NEW_PASSWORD }), vec!["old_password"]),
            (json!({ "old_password": "", "new_password": NEW_PASSWORD }), vec!["old_password"]),
            (json!({ "old_password": null, "new_password": null }), vec!["new_password", "old_password"]),
        ] {
            let response = change(&app, Some(&mine), body.clone()).await;
            assert_validation(response, &fields).await;
        }
        // An empty body is the same as `{}`.
        let response = app
            .request(Method::POST, "/api/v2/user/password")
            .bearer_auth(&mine)
            .send()
            .await
            .unwrap();
        assert_validation(response, &["new_password", "old_password"]).await;

        assert_eq!(app.db.dump("users").await, users, "the user row changed");
        assert_alive(&app, &mine).await;
    }

    async fn a_password_change_needs_a_live_session(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let mine = app.login_token(EMAIL, true).await;
        let ended = app.login_token(EMAIL, true).await;
        assert_eq!(app.logout(&ended).await.status(), StatusCode::OK);
        let users = app.db.dump("users").await;
        let body = json!({ "old_password": PASSWORD, "new_password": NEW_PASSWORD });

        let (_, reason) = assert_error(change(&app, None, body.clone()).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "missing_token");
        let (_, reason) = assert_error(change(&app, Some("garbage"), body.clone()).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "invalid_token");

        // A logged-out token cannot change the password either.
        let (_, reason) = assert_error(change(&app, Some(&ended), body).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "logged_out");

        assert_eq!(app.db.dump("users").await, users, "the user row changed");
        assert_alive(&app, &mine).await;
        assert_eq!(app.login(EMAIL, PASSWORD, false).await.status(), StatusCode::OK);
    }
}
