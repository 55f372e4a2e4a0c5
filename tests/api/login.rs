//! Logging in: claims, token sources, credentials, admins.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends! {
    async fn forever_login_issues_a_forever_token_usable_from_every_source(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("DF_JWT_TTL", "90")).await;
        app.create_user("jane@example.com", false).await;
        let response = app.login("Jane@Example.com", PASSWORD, true).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["session_token"].as_str().unwrap().to_owned();
        assert_eq!(body["session_id"], body["session_token"]);
        for field in ["id", "name", "first_name", "last_name", "email", "is_sys_admin",
                      "last_login_date", "host", "token_expiry_date"] {
            assert!(body.get(field).is_some(), "missing {field} in {body}");
        }
        assert_eq!(body["email"], "jane@example.com");
        let c = claims(&token);
        assert_eq!(c["forever"], json!(true));
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 90 * 60);
        for claim in ["iss", "sub", "user_id", "sid", "gen", "jti", "iat", "nbf", "exp"] {
            assert!(c.get(claim).is_some(), "missing claim {claim}");
        }
        assert_eq!(c["sub"], json!(c["user_id"].to_string()));

        let bearer = app.get_session(&token).await;
        assert_eq!(bearer.status(), StatusCode::OK);
        let header = app.request(Method::GET, "/api/v2/user/session")
            .header("X-DreamFactory-Session-Token", &token)
            .header("X-DreamFactory-API-Key", "any-app-key")
            .send().await.unwrap();
        assert_eq!(header.status(), StatusCode::OK);
        let query = app.request(Method::GET, &format!("/api/v2/user/session?session_token={token}"))
            .send().await.unwrap();
        let (status, body) = status_json(query).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["session_token"], json!(token));

        let none = app.request(Method::GET, "/api/v2/user/session").send().await.unwrap();
        let (message, reason) = assert_error(none, StatusCode::UNAUTHORIZED).await;
        assert_eq!(message, "There is no valid session for the current request.");
        assert_eq!(reason, "missing_token");
    }

    async fn unknown_user_and_wrong_password_get_the_same_answer(backend) {
        let app = spawn_app(backend).await;
        app.create_user("jane@example.com", false).await;
        let wrong = app.login("jane@example.com", "not-the-password", false).await;
        let unknown = app.login("nobody@example.com", PASSWORD, false).await;
        let (s1, b1) = status_json(wrong).await;
        let (s2, b2) = status_json(unknown).await;
        assert_eq!(s1, StatusCode::UNAUTHORIZED);
        assert_eq!((s1, &b1), (s2, &b2));
        assert_eq!(b1["error"]["message"], "Invalid credentials supplied.");
    }

    async fn inactive_users_cannot_log_in(backend) {
        let app = spawn_app(backend).await;
        app.create_user("jane@example.com", false).await;
        app.db.execute("UPDATE users SET is_active = FALSE WHERE email = 'jane@example.com'").await;
        let response = app.login("jane@example.com", PASSWORD, false).await;
        let (message, _) = assert_error(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(message, "Invalid credentials supplied.");
    }

    async fn a_missing_field_is_a_400_naming_it(backend) {
        let app = spawn_app(backend).await;
        for (body, field) in [
            (json!({ "password": "x" }), "email"),
            (json!({ "email": "a@b.c" }), "password"),
            (json!({ "email": "", "password": "x" }), "email"),
        ] {
            let response = app.request(Method::POST, "/api/v2/user/session").json(&body).send().await.unwrap();
            let (message, _) = assert_error(response, StatusCode::BAD_REQUEST).await;
            assert_eq!(message, format!("Login request is missing required {field}."));
        }
    }

    async fn admin_endpoints_accept_only_administrators(backend) {
        let app = spawn_app(backend).await;
        app.create_user("admin@example.com", true).await;
        app.create_user("jane@example.com", false).await;
        let path = "/api/v2/system/admin/session";

        let response = app.request(Method::POST, path)
            .json(&json!({ "email": "jane@example.com", "password": PASSWORD }))
            .send().await.unwrap();
        assert_error(response, StatusCode::UNAUTHORIZED).await;

        let response = app.request(Method::POST, path)
            .json(&json!({ "email": "admin@example.com", "password": PASSWORD, "remember_me": true }))
            .send().await.unwrap();
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["is_sys_admin"], json!(true));
        let admin_token = body["session_token"].as_str().unwrap().to_owned();
        assert_eq!(app.session_call(Method::GET, path, &admin_token).await.status(), StatusCode::OK);

        let user_token = app.login_token("jane@example.com", true).await;
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let response = app.session_call(method.clone(), path, &user_token).await;
            let (message, reason) = assert_error(response, StatusCode::UNAUTHORIZED).await;
            assert_eq!(message, "You are not authorized to perform this action.", "{method}");
            assert_eq!(reason, "not_admin");
        }
        // The user's session is untouched by the refused admin calls.
        assert_eq!(app.get_session(&user_token).await.status(), StatusCode::OK);

        let refreshed = app.session_call(Method::PUT, path, &admin_token).await;
        assert_eq!(refreshed.status(), StatusCode::OK);
    }
}
