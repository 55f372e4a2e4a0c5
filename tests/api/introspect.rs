//! Token introspection (RFC 7662) at `POST /api/v2/system/introspect`: only for an active
//! app's API key or an administrator; `{"active": true, …}` for a good token, `{"active":
//! false}` and nothing else for an expired, rotated, revoked or foreign one; a logout on
//! another replica is seen at once.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const EMAIL: &str = "jane@example.com";
const ADMIN: &str = "admin@example.com";
const PATH: &str = "/api/v2/system/introspect";

/// Introspects `token` (form-encoded, as RFC 7662 has it) with whatever `auth` adds.
async fn introspect(
    app: &TestApp,
    token: &str,
    auth: impl FnOnce(RequestBuilder) -> RequestBuilder,
) -> (StatusCode, Value) {
    let request = app
        .request(Method::POST, PATH)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("token", token)]).unwrap());
    status_json(auth(request).send().await.unwrap()).await
}

/// Introspects with an app's key; panics unless 200.
async fn ask(app: &TestApp, key: &str, token: &str) -> Value {
    let (status, body) = introspect(app, token, |r| r.header("X-DreamFactory-API-Key", key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn inactive() -> Value {
    json!({ "active": false })
}

async fn setup(backend: Backend) -> (TestApp, String, TestAppKey) {
    let app = spawn_app(backend).await;
    app.create_user(ADMIN, true).await;
    app.create_user(EMAIL, false).await;
    let admin = app.admin_login_token(ADMIN).await;
    let api = app.create_app(&admin, "billing-service", json!({})).await;
    (app, admin, api)
}

both_backends! {
    async fn only_an_active_apps_key_or_an_administrator_may_introspect(backend) {
        let (app, admin, api) = setup(backend).await;
        let token = app.login_token(EMAIL, true).await;
        // Nobody, a user, an unknown key: 401, and nothing about the token.
        for (status, body) in [
            introspect(&app, &token, |r| r).await,
            introspect(&app, &token, |r| r.header("X-DreamFactory-API-Key", "f".repeat(64))).await,
        ] {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["error"]["context"]["reason"], "introspection_unauthorized");
        }
        let (status, body) = introspect(&app, &token, |r| r.bearer_auth(&token)).await;
        assert_eq!((status, &body["error"]["context"]["reason"]), (StatusCode::UNAUTHORIZED, &json!("not_admin")));
        // An inactive app's key: 403.
        let off = app.create_app(&admin, "off", json!({ "is_active": false })).await;
        let (status, _) = introspect(&app, &token, |r| r.header("X-DreamFactory-API-Key", &off.key)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // An administrator's token, or the key (query or header), is enough.
        let by_admin = introspect(&app, &token, |r| r.bearer_auth(&admin)).await;
        let by_query = introspect(&app, &token, |r| r.query(&[("api_key", api.key.as_str())])).await;
        assert_eq!(by_admin.0, StatusCode::OK);
        assert_eq!(by_admin, by_query);
        assert_eq!(by_admin.1, ask(&app, &api.key, &token).await);
        // A JSON body works too.
        let response = app.request(Method::POST, PATH).header("X-DreamFactory-API-Key", &api.key)
            .json(&json!({ "token": token, "token_type_hint": "access_token" })).send().await.unwrap();
        assert_eq!(status_json(response).await, by_admin);
    }

    async fn a_good_token_is_described_by_its_claims_and_its_session(backend) {
        let (app, admin, api) = setup(backend).await;
        let users = app.create_role(&admin, "users", true).await;
        let web = app.create_app(&admin, "web", json!({ "role_id": users })).await;
        let body = app.login_body_with_key(EMAIL, &web.key).await;
        let token = body["session_token"].as_str().unwrap();
        let c = claims(token);
        assert_eq!(ask(&app, &api.key, token).await, json!({
            "active": true, "iss": "tenure", "sub": c["sub"], "user_id": c["user_id"],
            "sid": c["sid"], "jti": c["jti"], "iat": c["iat"], "exp": c["exp"], "forever": true,
            "role": "users", "role_id": users, "app": "web", "app_id": web.id,
        }));
        let plain = app.login_token(EMAIL, false).await;
        let answer = ask(&app, &api.key, &plain).await;
        assert_eq!((&answer["active"], &answer["forever"], &answer["role"], &answer["app"]),
            (&json!(true), &json!(false), &Value::Null, &Value::Null));
    }

    async fn expired_rotated_revoked_and_foreign_tokens_are_inactive_and_say_nothing_more(backend) {
        let (app, admin, api) = setup(backend).await;
        // Expired (the session is fine: a refresh would succeed).
        let expired = app.login_token(EMAIL, true).await;
        app.clock.advance(25 * 3600);
        assert_eq!(ask(&app, &api.key, &expired).await, inactive());
        let fresh = app.refresh_token(&expired).await;
        assert_eq!(ask(&app, &api.key, &fresh).await["active"], true);
        // Rotated: inactive at once, even inside the refresh grace.
        let successor = app.refresh_token(&fresh).await;
        assert_eq!(ask(&app, &api.key, &fresh).await, inactive());
        assert_eq!(ask(&app, &api.key, &successor).await["active"], true);
        // Revoked (logged out).
        assert_eq!(app.logout(&successor).await.status(), StatusCode::OK);
        assert_eq!(ask(&app, &api.key, &successor).await, inactive());
        // Foreign: another server's key, a tampered one, garbage, nothing.
        let other = spawn_app(app.db.backend).await;
        other.create_user(EMAIL, false).await;
        let foreign = other.login_token(EMAIL, true).await;
        assert_eq!(ask(&other, &other_key(&other).await, &foreign).await["active"], true);
        let live = app.login_token(EMAIL, true).await;
        let mut tampered: Vec<String> = live.split('.').map(str::to_owned).collect();
        tampered[2] = foreign.split('.').nth(2).unwrap().to_owned();
        for token in [foreign.as_str(), &tampered.join("."), "a.b.c", "garbage", ""] {
            assert_eq!(ask(&app, &api.key, token).await, inactive(), "{token:?}");
        }
        let response = app.request(Method::POST, PATH).header("X-DreamFactory-API-Key", &api.key).send().await.unwrap();
        assert_eq!(status_json(response).await, (StatusCode::OK, inactive()));
        // A deactivated user's token.
        assert_eq!(ask(&app, &api.key, &live).await["active"], true);
        let user_id = claims(&live)["user_id"].as_i64().unwrap();
        let admin = app.refresh_token(&admin).await;
        let (status, _) = app.admin_call(&admin, Method::PATCH, &format!("/api/v2/system/user/{user_id}"),
            json!({ "is_active": false })).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ask(&app, &api.key, &live).await, inactive());
    }

    async fn a_logout_on_another_replica_is_seen_at_once(backend) {
        let (app, _admin, api) = setup(backend).await;
        let replica = app.replica().await;
        let token = app.login_token(EMAIL, true).await;
        assert_eq!(ask(&app, &api.key, &token).await["active"], true);
        assert_eq!(replica.logout(&token).await.status(), StatusCode::OK);
        assert_eq!(ask(&app, &api.key, &token).await, inactive());
        // Other ways a session ends elsewhere: the user logs out everywhere.
        let token = app.login_token(EMAIL, true).await;
        let other = app.login_token(EMAIL, true).await;
        assert_eq!(ask(&app, &api.key, &token).await["active"], true);
        let response = replica.request(Method::DELETE, "/api/v2/user/session?scope=global").bearer_auth(&other).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(ask(&app, &api.key, &token).await, inactive());
    }

    async fn introspection_is_not_use_of_the_session(backend) {
        let config = TestConfig::new().var("SESSION_IDLE_TTL", "1h").var("LAST_SEEN_RESOLUTION", "1s");
        let app = spawn_app_with(backend, config).await;
        app.create_user(ADMIN, true).await;
        app.create_user(EMAIL, false).await;
        let admin = app.admin_login_token(ADMIN).await;
        let api = app.create_app(&admin, "svc", json!({})).await;
        let token = app.login_token(EMAIL, true).await;
        // Asked about at 30 and 59 minutes, the unused session still goes idle after an hour.
        for minutes in [30, 29] {
            app.clock.advance(minutes * 60);
            assert_eq!(ask(&app, &api.key, &token).await["active"], true);
        }
        app.clock.advance(2 * 60);
        assert_eq!(ask(&app, &api.key, &token).await, inactive());
    }
}

/// An API key on `other` (a server of its own, with its own administrator).
async fn other_key(other: &TestApp) -> String {
    other.create_user(ADMIN, true).await;
    let admin = other.admin_login_token(ADMIN).await;
    other.create_app(&admin, "svc", json!({})).await.key
}
