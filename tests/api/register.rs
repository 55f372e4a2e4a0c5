//! Open registration: off by default; when on, validated, case-insensitive, never an admin.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const REGISTER: &str = "/api/v2/user/register";

async fn open_app(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        TestConfig::new().var("DF_ALLOW_OPEN_REGISTRATION", "true"),
    )
    .await
}

async fn register(app: &TestApp, path: &str, body: Value) -> Response {
    app.request(Method::POST, path)
        .json(&body)
        .send()
        .await
        .expect("register request")
}

/// A 400 "Validation failed" whose context names exactly `fields`; answers the context.
async fn assert_validation(response: Response, fields: &[&str]) -> Value {
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], 400, "{body}");
    assert_eq!(body["error"]["status_code"], 400, "{body}");
    assert_eq!(body["error"]["message"], "Validation failed", "{body}");
    let context = body["error"]["context"].clone();
    let mut named: Vec<&str> = context
        .as_object()
        .unwrap_or_else(|| panic!("context is not an object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    named.sort_unstable();
    let mut expected = fields.to_vec();
    expected.sort_unstable();
    assert_eq!(named, expected, "{body}");
    for field in fields {
        let messages = context[field].as_array().expect("messages");
        assert!(
            !messages.is_empty() && messages.iter().all(Value::is_string),
            "{body}"
        );
    }
    context
}

both_backends! {
    async fn registration_is_off_by_default(backend) {
        let app = spawn_app(backend).await;
        let before = app.db.dump("users").await;
        let response = register(&app, REGISTER, json!({
            "email": "new@example.com", "password": PASSWORD, "first_name": "New",
        })).await;
        let (message, reason) = assert_error(response, StatusCode::FORBIDDEN).await;
        assert_eq!(message, "Open Registration is not enabled.");
        assert_eq!(reason, "registration_disabled");
        let response = register(&app, &format!("{REGISTER}?login=true"), json!({
            "email": "new@example.com", "password": PASSWORD,
        })).await;
        assert_error(response, StatusCode::FORBIDDEN).await;
        assert_eq!(app.db.dump("users").await, before, "a refused registration stored a user");
        let login = app.login("new@example.com", PASSWORD, false).await;
        assert_error(login, StatusCode::UNAUTHORIZED).await;
    }

    async fn a_registered_user_can_log_in(backend) {
        let app = open_app(backend).await;
        let response = register(&app, REGISTER, json!({
            "email": "New.User@Example.com", "password": PASSWORD,
            "first_name": "New", "last_name": "User",
        })).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({ "success": true }));
        assert_eq!(app.db.dump("sessions").await, Vec::<String>::new(), "no login was asked");

        let response = app.login("new.user@example.com", PASSWORD, true).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["email"], "new.user@example.com");
        assert_eq!(body["first_name"], "New");
        assert_eq!(body["last_name"], "User");
        assert_eq!(body["name"], "New User");
        assert_eq!(body["is_sys_admin"], json!(false));
        let token = body["session_token"].as_str().expect("token");
        assert_eq!(app.get_session(token).await.status(), StatusCode::OK);
        // The password is not stored as sent.
        let users = app.db.dump("users").await.join("\n");
        assert!(!users.contains(PASSWORD), "the password is stored in clear");
    }

    async fn login_true_also_answers_a_working_ordinary_session(backend) {
        let app = open_app(backend).await;
        let response = register(&app, &format!("{REGISTER}?login=true"), json!({
            "email": "new@example.com", "password": PASSWORD, "remember_me": true,
        })).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], json!(true));
        let token = body["session_token"].as_str().expect("session_token").to_owned();
        let c = claims(&token);
        assert_eq!(c["forever"], json!(false), "a registration login is never forever");

        let response = app.get_session(&token).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["email"], "new@example.com");
        assert_eq!(body["name"], "new", "the name defaults to the email's local part");

        let refreshed = app.refresh_token(&token).await;
        assert_eq!(claims(&refreshed)["forever"], json!(false));
        let (status, body) = status_json(app.logout(&refreshed).await).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
    }

    async fn a_taken_email_is_refused_whatever_its_case(backend) {
        let app = open_app(backend).await;
        app.create_user("jane@example.com", false).await;
        let before = app.db.dump("users").await;
        for email in ["jane@example.com", "JANE@EXAMPLE.COM", "  Jane@Example.com "] {
            let response = register(&app, REGISTER, json!({
                "email": email, "password": "another-password-123",
            })).await;
            let context = assert_validation(response, &["email"]).await;
            assert_eq!(context["email"][0], "The email has already been taken.", "{email}");
        }
        assert_eq!(app.db.dump("users").await, before);
        // The original password still works; the attempted one does not.
        assert_eq!(app.login("jane@example.com", PASSWORD, false).await.status(), StatusCode::OK);
        let response = app.login("jane@example.com", "another-password-123", false).await;
        assert_error(response, StatusCode::UNAUTHORIZED).await;
    }

    async fn invalid_registrations_name_their_fields_and_store_nothing(backend) {
        let app = open_app(backend).await;
        let before = app.db.dump("users").await;

        let response = register(&app, REGISTER, json!({ "email": "new@example.com", "password": "short7!" })).await;
        let context = assert_validation(response, &["password"]).await;
        assert_eq!(context["password"][0], "The password must be at least 8 characters.");

        let response = register(&app, REGISTER, json!({ "email": "new@example.com" })).await;
        assert_validation(response, &["password"]).await;

        for email in ["not-an-email", "@example.com", "new@", "new user@example.com", "a@b@c"] {
            let response = register(&app, REGISTER, json!({ "email": email, "password": PASSWORD })).await;
            let context = assert_validation(response, &["email"]).await;
            assert_eq!(context["email"][0], "The email must be a valid email address.", "{email}");
        }
        let response = register(&app, REGISTER, json!({ "password": PASSWORD })).await;
        let context = assert_validation(response, &["email"]).await;
        assert_eq!(context["email"][0], "The email field is required.");

        let response = register(&app, REGISTER, json!({
            "email": "new@example.com", "password": PASSWORD,
            "password_confirmation": "correct-horse-battery-staple",
        })).await;
        let context = assert_validation(response, &["password"]).await;
        assert_eq!(context["password"][0], "The password confirmation does not match.");

        // Several problems at once are all reported.
        let response = register(&app, REGISTER, json!({ "email": "nope", "password": "x" })).await;
        assert_validation(response, &["email", "password"]).await;

        let long = "n".repeat(300);
        let response = register(&app, REGISTER, json!({
            "email": "new@example.com", "password": PASSWORD, "first_name": long,
        })).await;
        assert_validation(response, &["first_name", "name"]).await;

        assert_eq!(app.db.dump("users").await, before, "an invalid registration stored a user");
        assert_eq!(app.db.dump("sessions").await, Vec::<String>::new());

        // A matching confirmation and `new_password` (DreamFactory's alias) are accepted.
        let response = register(&app, REGISTER, json!({
            "email": "new@example.com", "new_password": PASSWORD, "password_confirmation": PASSWORD,
        })).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(app.login("new@example.com", PASSWORD, false).await.status(), StatusCode::OK);
    }

    async fn registration_never_makes_an_administrator(backend) {
        let app = open_app(backend).await;
        let response = register(&app, &format!("{REGISTER}?login=true"), json!({
            "email": "sneaky@example.com", "password": PASSWORD, "is_sys_admin": true,
        })).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["session_token"].as_str().expect("token");
        let response = app.get_session(token).await;
        let (_, body) = status_json(response).await;
        assert_eq!(body["is_sys_admin"], json!(false));
        let response = app.session_call(Method::GET, "/api/v2/system/admin/session", token).await;
        assert_error(response, StatusCode::UNAUTHORIZED).await;
        let response = app.request(Method::POST, "/api/v2/system/admin/session")
            .json(&json!({ "email": "sneaky@example.com", "password": PASSWORD }))
            .send().await.expect("request");
        assert_error(response, StatusCode::UNAUTHORIZED).await;
    }

    async fn sql_looking_values_are_stored_literally(backend) {
        let app = open_app(backend).await;
        app.create_user("jane@example.com", false).await;
        let email = "x';drop/**/table/**/users;--@example.com";
        let response = register(&app, REGISTER, json!({
            "email": email, "password": PASSWORD, "name": "Robert'); DROP TABLE sessions;--",
        })).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let response = app.login(email, PASSWORD, false).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["email"], email);
        assert_eq!(body["name"], "Robert'); DROP TABLE sessions;--");
        assert_eq!(app.db.dump("users").await.len(), 2);
        assert_eq!(app.login("jane@example.com", PASSWORD, false).await.status(), StatusCode::OK);
    }
}
