//! DreamFactory's profile API: `GET/POST /api/v2/user/profile` and
//! `/api/v2/system/admin/profile`. DreamFactory's fields, updates of names and phone, an email
//! change only with the current password, and the session routes' token errors.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const USER_PROFILE: &str = "/api/v2/user/profile";
const ADMIN_PROFILE: &str = "/api/v2/system/admin/profile";
const EMAIL: &str = "jane@example.com";
const OTHER: &str = "john@example.com";
const ADMIN: &str = "admin@example.com";
const EXPIRED: &str = "Token has expired: Session expired. Please refresh your token (if still within refresh window) or re-login.";
const BLACKLISTED: &str = "The token has been blacklisted: Session terminated. Please re-login.";

async fn get_profile(app: &TestApp, path: &str, token: Option<&str>) -> Response {
    let mut request = app.request(Method::GET, path);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn post_profile(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> Response {
    let mut request = app.request(Method::POST, path).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// The profile, asserting a 200.
async fn profile(app: &TestApp, path: &str, token: &str) -> Value {
    let (status, body) = status_json(get_profile(app, path, Some(token)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Posts `body` and asserts `{"success": true}`.
async fn update(app: &TestApp, path: &str, token: &str, body: Value) {
    let (status, answer) = status_json(post_profile(app, path, Some(token), body).await).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({ "success": true }));
}

/// A 400 "Validation failed" whose context names exactly `fields`; answers the context.
async fn assert_validation(response: Response, fields: &[&str]) -> Value {
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
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
    context
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
    async fn the_profile_has_dreamfactorys_fields_in_its_order(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        let response = get_profile(&app, USER_PROFILE, Some(&token)).await;
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body, json!({
            "username": null,
            "first_name": "Test",
            "last_name": "User",
            "name": "Test User",
            "email": EMAIL,
            "phone": null,
            "security_question": null,
            "default_app_id": null,
            "oauth_provider": "",
            "adldap": "",
        }));
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, [
            "username", "first_name", "last_name", "name", "email", "phone",
            "security_question", "default_app_id", "oauth_provider", "adldap",
        ]);
        assert!(!text.contains("password") && !text.contains("argon2"), "{text}");
        // From the other token sources too.
        let response = app.request(Method::GET, USER_PROFILE)
            .header("X-DreamFactory-Session-Token", &token)
            .send().await.unwrap();
        assert_eq!(status_json(response).await.1, body);
        let response = app.request(Method::GET, USER_PROFILE)
            .query(&[("session_token", &token)])
            .send().await.unwrap();
        assert_eq!(status_json(response).await.1, body);
    }

    async fn names_and_phone_change_and_the_rest_stays(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        app.create_user(OTHER, false).await;
        let token = app.login_token(EMAIL, true).await;
        let other_device = app.login_token(EMAIL, true).await;

        update(&app, USER_PROFILE, &token, json!({
            "first_name": "  Jane ",
            "last_name": "Doe",
            "name": "Jane Doe",
            "phone": "+1 555 0100",
        })).await;
        let body = profile(&app, USER_PROFILE, &token).await;
        assert_eq!(
            (&body["first_name"], &body["last_name"], &body["name"], &body["phone"], &body["email"]),
            (&json!("Jane"), &json!("Doe"), &json!("Jane Doe"), &json!("+1 555 0100"), &json!(EMAIL)),
        );
        // The session answer shows the new names; every session stays.
        let (status, session) = status_json(app.get_session(&other_device).await).await;
        assert_eq!(status, StatusCode::OK, "{session}");
        assert_eq!((&session["name"], &session["first_name"]), (&json!("Jane Doe"), &json!("Jane")));
        assert_eq!(app.refresh(&other_device).await.status(), StatusCode::OK);

        // Absent and null fields change nothing (DreamFactory drops nulls); `""` clears the
        // optional ones; DreamFactory's fields tenure does not keep are accepted and ignored.
        update(&app, USER_PROFILE, &token, json!({
            "phone": "",
            "last_name": null,
            "security_question": "first pet?",
            "security_answer": "rex",
            "default_app_id": 3,
            "oauth_provider": "",
            "adldap": "",
            "username": null,
        })).await;
        let body = profile(&app, USER_PROFILE, &token).await;
        assert_eq!(body["phone"], Value::Null, "{body}");
        assert_eq!(body["last_name"], "Doe", "{body}");
        assert_eq!(body["name"], "Jane Doe", "{body}");
        assert_eq!(body["security_question"], Value::Null, "{body}");
        assert_eq!(body["default_app_id"], Value::Null, "{body}");
        update(&app, USER_PROFILE, &token, json!({ "first_name": " ", "last_name": "" })).await;
        let body = profile(&app, USER_PROFILE, &token).await;
        assert_eq!((&body["first_name"], &body["last_name"]), (&Value::Null, &Value::Null));

        // A form body works too, as everywhere.
        let response = app.request(Method::POST, USER_PROFILE)
            .bearer_auth(&token)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("phone=%2B44+20+7946+0000&name=J.+Doe")
            .send().await.unwrap();
        assert_eq!(status_json(response).await.0, StatusCode::OK);
        let body = profile(&app, USER_PROFILE, &token).await;
        assert_eq!((&body["phone"], &body["name"]), (&json!("+44 20 7946 0000"), &json!("J. Doe")));

        // PUT and PATCH are POST, as in DreamFactory.
        for method in [Method::PUT, Method::PATCH] {
            let response = app.request(method.clone(), USER_PROFILE)
                .bearer_auth(&token)
                .json(&json!({ "phone": format!("{method}") }))
                .send().await.unwrap();
            assert_eq!(status_json(response).await, (StatusCode::OK, json!({ "success": true })));
            assert_eq!(profile(&app, USER_PROFILE, &token).await["phone"], format!("{method}"));
        }

        // Another user is not touched.
        let john = app.login_token(OTHER, false).await;
        let body = profile(&app, USER_PROFILE, &john).await;
        assert_eq!((&body["name"], &body["phone"]), (&json!("Test User"), &Value::Null));
    }

    async fn bad_input_is_a_400_and_writes_nothing(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        let users = app.db.dump("users").await;
        let long = "x".repeat(256);

        for (body, fields) in [
            (json!({ "name": "" }), vec!["name"]),
            (json!({ "name": "   " }), vec!["name"]),
            (json!({ "name": long }), vec!["name"]),
            (json!({ "first_name": long, "last_name": long }), vec!["first_name", "last_name"]),
            (json!({ "first_name": "a\u{0}b" }), vec!["first_name"]),
            (json!({ "phone": "1".repeat(33) }), vec!["phone"]),
            (json!({ "phone": "555\u{200b}0100" }), vec!["phone"]),
            (json!({ "phone": "555\u{0}" }), vec!["phone"]),
            (json!({ "username": "jane" }), vec!["username"]),
            (json!({ "email": "not-an-address", "old_password": PASSWORD }), vec!["email"]),
            (json!({ "email": "jane@example.com.", "old_password": PASSWORD }), vec!["email"]),
            (json!({ "email": "ja\u{200b}ne2@example.com", "old_password": PASSWORD }), vec!["email"]),
            // One bad field refuses the whole change.
            (json!({ "name": "Fine", "phone": "1".repeat(40) }), vec!["phone"]),
        ] {
            let response = post_profile(&app, USER_PROFILE, Some(&token), body.clone()).await;
            assert_validation(response, &fields).await;
        }
        assert_eq!(app.db.dump("users").await, users, "a refused change wrote");

        // An empty object is DreamFactory's "No data supplied for operation."; an empty body too.
        let (message, _) = assert_error(
            post_profile(&app, USER_PROFILE, Some(&token), json!({})).await,
            StatusCode::BAD_REQUEST,
        ).await;
        assert_eq!(message, "No data supplied for operation.");
        let response = app.request(Method::POST, USER_PROFILE).bearer_auth(&token).send().await.unwrap();
        let (message, _) = assert_error(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(message, "No data supplied for operation.");
        // Wrong types and broken JSON get the body errors every endpoint gives.
        assert_error(
            post_profile(&app, USER_PROFILE, Some(&token), json!({ "phone": 5550100 })).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ).await;
        assert_error(
            post_profile(&app, USER_PROFILE, Some(&token), json!(["name", "x"])).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ).await;
        let response = app.request(Method::POST, USER_PROFILE)
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body("{\"name\": ")
            .send().await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(app.db.dump("users").await, users, "a refused change wrote");

        // Exactly the limits are fine.
        update(&app, USER_PROFILE, &token, json!({
            "name": "n".repeat(255), "first_name": "f".repeat(255), "phone": "9".repeat(32),
        })).await;
        let body = profile(&app, USER_PROFILE, &token).await;
        assert_eq!(body["phone"], "9".repeat(32));
        // The current username (none) is accepted, as clients echo the profile back.
        update(&app, USER_PROFILE, &token, json!({ "username": "", "email": EMAIL })).await;
    }

    async fn the_email_changes_only_with_the_current_password(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        let other_device = app.login_token(EMAIL, false).await;
        let users = app.db.dump("users").await;

        // Without the password, or with a wrong one: nothing changes.
        let context = assert_validation(
            post_profile(&app, USER_PROFILE, Some(&token), json!({ "email": "jane.doe@example.com" })).await,
            &["old_password"],
        ).await;
        assert!(context["old_password"][0].as_str().unwrap().contains("required"), "{context}");
        assert_validation(
            post_profile(&app, USER_PROFILE, Some(&token),
                json!({ "email": "jane.doe@example.com", "old_password": "" })).await,
            &["old_password"],
        ).await;
        // A wrong password gets exactly the password change's answer.
        let wrong = json!({ "email": "jane.doe@example.com", "old_password": "not-the-password" });
        let (status, body) = status_json(post_profile(&app, USER_PROFILE, Some(&token), wrong).await).await;
        let (password_status, password_body) = status_json(
            app.request(Method::POST, "/api/v2/user/password")
                .bearer_auth(&token)
                .json(&json!({ "old_password": "not-the-password", "new_password": "a-new-passphrase" }))
                .send().await.unwrap(),
        ).await;
        assert_eq!((status, &body), (password_status, &password_body));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["context"]["old_password"][0], "The old password is not correct.");
        assert_eq!(app.db.dump("users").await, users, "a refused change wrote");

        // The same address in another spelling is no change and needs no password.
        update(&app, USER_PROFILE, &token, json!({ "email": " JANE@Example.COM ", "phone": "1" })).await;

        // With the password (also as `current_password`), folded as at registration.
        update(&app, USER_PROFILE, &token, json!({
            "email": " ＪＡＮＥ.Doe@Example.COM ",
            "current_password": PASSWORD,
        })).await;
        let body = profile(&app, USER_PROFILE, &token).await;
        assert_eq!(body["email"], "jane.doe@example.com", "{body}");
        update(&app, USER_PROFILE, &token, json!({
            "email": "jane.q.doe@example.com",
            "old_password": PASSWORD,
            "name": "Jane Q. Doe",
        })).await;
        let body = profile(&app, USER_PROFILE, &token).await;
        assert_eq!((&body["email"], &body["name"]), (&json!("jane.q.doe@example.com"), &json!("Jane Q. Doe")));

        // Every session stays (tokens name the user by id); the new address logs in.
        let (status, session) = status_json(app.get_session(&other_device).await).await;
        assert_eq!(status, StatusCode::OK, "{session}");
        assert_eq!(session["email"], "jane.q.doe@example.com");
        assert_eq!(app.refresh(&other_device).await.status(), StatusCode::OK);
        assert_eq!(app.login("jane.q.doe@example.com", PASSWORD, false).await.status(), StatusCode::OK);
        let (message, _) = assert_error(app.login(EMAIL, PASSWORD, false).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(message, "Invalid credentials supplied.");
    }

    async fn a_taken_email_is_refused_as_registration_refuses_it(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("DF_ALLOW_OPEN_REGISTRATION", "true")).await;
        app.create_user(EMAIL, false).await;
        app.create_user(OTHER, false).await;
        let token = app.login_token(EMAIL, true).await;
        let users = app.db.dump("users").await;

        // Registration's answer for a taken address...
        let response = app.request(Method::POST, "/api/v2/user/register")
            .json(&json!({ "email": OTHER, "password": PASSWORD }))
            .send().await.unwrap();
        let (status, registration) = status_json(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{registration}");
        // ...is the profile's, in any spelling of it.
        for taken in [OTHER, "JOHN@example.com", "ｊｏｈｎ@example.com"] {
            let response = post_profile(&app, USER_PROFILE, Some(&token),
                json!({ "email": taken, "old_password": PASSWORD, "name": "Not Written" })).await;
            let (status, body) = status_json(response).await;
            assert_eq!((status, &body), (StatusCode::BAD_REQUEST, &registration), "{taken}");
        }
        assert_eq!(body_email(&app, &token).await, EMAIL);
        assert_eq!(app.db.dump("users").await, users, "a refused change wrote");
    }

    async fn wrong_passwords_count_against_the_login_throttle(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("LOGIN_MAX_FAILURES", "2")).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        let wrong = json!({ "email": "jane.doe@example.com", "old_password": "not-the-password" });
        for _ in 0..2 {
            let response = post_profile(&app, USER_PROFILE, Some(&token), wrong.clone()).await;
            assert_validation(response, &["old_password"]).await;
        }
        let right = json!({ "email": "jane.doe@example.com", "old_password": PASSWORD });
        let response = post_profile(&app, USER_PROFILE, Some(&token), right.clone()).await;
        let (_, reason) = assert_error(response, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(reason, "throttled");
        assert_eq!(body_email(&app, &token).await, EMAIL);
        // Changes that need no password are not throttled.
        update(&app, USER_PROFILE, &token, json!({ "phone": "555" })).await;
    }

    async fn token_errors_are_the_session_routes(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        let users = app.db.dump("users").await;
        let change = json!({ "name": "Not Written" });
        for path in [USER_PROFILE, ADMIN_PROFILE] {
            // No token.
            let (message, reason) = assert_error(get_profile(&app, path, None).await, StatusCode::UNAUTHORIZED).await;
            assert_eq!((message.as_str(), reason.as_str()),
                ("There is no valid session for the current request.", "missing_token"));
            let (_, reason) = assert_error(post_profile(&app, path, None, change.clone()).await, StatusCode::UNAUTHORIZED).await;
            assert_eq!(reason, "missing_token");
            // A forged one.
            let (message, reason) = assert_error(get_profile(&app, path, Some("a.b.c")).await, StatusCode::UNAUTHORIZED).await;
            assert!(message.starts_with("Invalid token: "), "{message}");
            assert_eq!(reason, "invalid_token");
        }

        // Expired: DreamFactory clients refresh on exactly this message, on GET and POST, and
        // even when the body is bad (token errors come first, as in DreamFactory).
        app.clock.advance(25 * 3600);
        for response in [
            get_profile(&app, USER_PROFILE, Some(&token)).await,
            post_profile(&app, USER_PROFILE, Some(&token), change.clone()).await,
            post_profile(&app, USER_PROFILE, Some(&token), json!({})).await,
            post_profile(&app, USER_PROFILE, Some(&token), json!({ "phone": 5 })).await,
        ] {
            let (message, reason) = assert_error(response, StatusCode::UNAUTHORIZED).await;
            assert_eq!((message.as_str(), reason.as_str()), (EXPIRED, "expired"));
        }
        // The refreshed token works; the one it replaced is terminated (403), as on the
        // session routes.
        let fresh = app.refresh_token(&token).await;
        profile(&app, USER_PROFILE, &fresh).await;
        let (message, reason) = assert_error(get_profile(&app, USER_PROFILE, Some(&token)).await, StatusCode::FORBIDDEN).await;
        assert_eq!((message.as_str(), reason.as_str()), (BLACKLISTED, "rotated"));

        // Logged out: 403.
        let (status, _) = status_json(app.logout(&fresh).await).await;
        assert_eq!(status, StatusCode::OK);
        for response in [
            get_profile(&app, USER_PROFILE, Some(&fresh)).await,
            post_profile(&app, USER_PROFILE, Some(&fresh), change.clone()).await,
        ] {
            let (message, reason) = assert_error(response, StatusCode::FORBIDDEN).await;
            assert_eq!((message.as_str(), reason.as_str()), (BLACKLISTED, "logged_out"));
        }
        assert_eq!(app.db.dump("users").await, users, "a refused change wrote");
    }

    async fn administrators_have_their_own_path(backend) {
        let app = spawn_app(backend).await;
        app.create_user(ADMIN, true).await;
        app.create_user(EMAIL, false).await;
        let admin = admin_token(&app).await;
        let user = app.login_token(EMAIL, true).await;

        let body = profile(&app, ADMIN_PROFILE, &admin).await;
        assert_eq!(body["email"], ADMIN);
        update(&app, ADMIN_PROFILE, &admin, json!({ "name": "The Admin", "phone": "100" })).await;
        let body = profile(&app, ADMIN_PROFILE, &admin).await;
        assert_eq!((&body["name"], &body["phone"]), (&json!("The Admin"), &json!("100")));
        for method in [Method::PUT, Method::PATCH] {
            let response = app.request(method, ADMIN_PROFILE)
                .bearer_auth(&admin)
                .json(&json!({ "phone": "100" }))
                .send().await.unwrap();
            assert_eq!(status_json(response).await, (StatusCode::OK, json!({ "success": true })));
        }
        // An administrator's profile is also at the user path (admins may log in there).
        assert_eq!(profile(&app, USER_PROFILE, &admin).await, body);
        update(&app, ADMIN_PROFILE, &admin, json!({ "email": "root@example.com", "old_password": PASSWORD })).await;
        assert_eq!(profile(&app, USER_PROFILE, &admin).await["email"], "root@example.com");

        // A non-admin gets the admin session route's answer, and changes nothing.
        let users = app.db.dump("users").await;
        let put = app.request(Method::PUT, ADMIN_PROFILE)
            .bearer_auth(&user)
            .json(&json!({ "name": "Not Written" }))
            .send().await.unwrap();
        for response in [
            get_profile(&app, ADMIN_PROFILE, Some(&user)).await,
            post_profile(&app, ADMIN_PROFILE, Some(&user), json!({ "name": "Not Written" })).await,
            put,
        ] {
            let (message, reason) = assert_error(response, StatusCode::UNAUTHORIZED).await;
            assert_eq!((message.as_str(), reason.as_str()),
                ("You are not authorized to perform this action.", "not_admin"));
        }
        assert_eq!(app.db.dump("users").await, users, "a refused change wrote");
        // An expired admin token: the same refresh cue.
        app.clock.advance(25 * 3600);
        let (message, _) = assert_error(get_profile(&app, ADMIN_PROFILE, Some(&admin)).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(message, EXPIRED);
    }
}

/// The caller's email, from the profile.
async fn body_email(app: &TestApp, token: &str) -> String {
    profile(app, USER_PROFILE, token).await["email"]
        .as_str()
        .unwrap()
        .to_owned()
}
