//! Logging out: the session ends at once, everywhere, even with an expired token.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

const EMAIL: &str = "jane@example.com";

const BLACKLISTED: &str = "The token has been blacklisted: Session terminated. Please re-login.";

async fn assert_logged_out(response: reqwest::Response) {
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "success": true }));
}

/// GET answers 403 `logged_out`, PUT answers 401 `Token refresh failed.`.
async fn assert_dead(app: &TestApp, token: &str) {
    let (message, reason) = assert_error(app.get_session(token).await, StatusCode::FORBIDDEN).await;
    assert_eq!(message, BLACKLISTED);
    assert_eq!(reason, "logged_out");
    let (message, reason) = assert_error(app.refresh(token).await, StatusCode::UNAUTHORIZED).await;
    assert!(message.starts_with("Token refresh failed."), "{message}");
    assert_eq!(reason, "logged_out");
}

both_backends! {
    async fn logout_ends_the_session_at_once(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        let other = app.login_token(EMAIL, true).await;
        assert_eq!(app.get_session(&token).await.status(), StatusCode::OK);

        assert_logged_out(app.logout(&token).await).await;
        assert_dead(&app, &token).await;
        // Only that session ended.
        assert_eq!(app.get_session(&other).await.status(), StatusCode::OK);
    }

    async fn an_expired_token_of_a_live_forever_session_can_log_out(backend) {
        let app = spawn_app_with(backend, TestConfig::new().var("DF_JWT_TTL", "2s")).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, true).await;
        app.clock.advance(3);
        let (_, reason) = assert_error(app.get_session(&token).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "expired");

        assert_logged_out(app.logout(&token).await).await;
        let (message, reason) = assert_error(app.refresh(&token).await, StatusCode::UNAUTHORIZED).await;
        assert!(message.starts_with("Token refresh failed."), "{message}");
        assert_eq!(reason, "logged_out");
        let (_, reason) = assert_error(app.get_session(&token).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "logged_out");
    }

    async fn replicas_agree_on_refreshes_and_logouts(backend) {
        let one = spawn_app(backend).await;
        one.create_user(EMAIL, false).await;
        let two = one.replica().await;

        // Issued by one, refreshed by the other, and back.
        let a = one.login_token(EMAIL, true).await;
        assert_eq!(two.get_session(&a).await.status(), StatusCode::OK);
        let b = two.refresh_token(&a).await;
        assert_eq!(one.get_session(&b).await.status(), StatusCode::OK);
        let (_, reason) = assert_error(one.get_session(&a).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "rotated");
        let c = one.refresh_token(&b).await;

        // Logged out on two: dead on one at once, and on two.
        assert_logged_out(two.logout(&c).await).await;
        assert_dead(&one, &c).await;
        assert_dead(&two, &c).await;

        // And the other way round.
        let d = two.login_token(EMAIL, true).await;
        assert_logged_out(one.logout(&d).await).await;
        assert_dead(&two, &d).await;
    }

    async fn logout_without_a_token_succeeds(backend) {
        let app = spawn_app(backend).await;
        let response = app.request(Method::DELETE, "/api/v2/user/session").send().await.unwrap();
        assert_logged_out(response).await;
    }

    async fn a_second_logout_with_the_same_token_is_refused(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let token = app.login_token(EMAIL, false).await;
        assert_logged_out(app.logout(&token).await).await;
        let (message, reason) = assert_error(app.logout(&token).await, StatusCode::FORBIDDEN).await;
        assert_eq!(message, BLACKLISTED);
        assert_eq!(reason, "logged_out");
    }
}
