//! Roles, the minimal faithful subset of DreamFactory's: a session resolves its role as
//! DreamFactory does (the user's role for the app, else the app's default role; none for an
//! administrator), carries it as `role`/`role_id` in the session answer and as the token's
//! `role` claim (byte-identical for racing refreshes), an inactive role refuses the login, and
//! every change that would alter a live session's role ends that session.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const EMAIL: &str = "jane@example.com";
const OTHER: &str = "john@example.com";
const ADMIN: &str = "admin@example.com";

async fn setup(backend: Backend) -> (TestApp, String) {
    let app = spawn_app(backend).await;
    app.create_user(ADMIN, true).await;
    app.create_user(EMAIL, false).await;
    app.create_user(OTHER, false).await;
    let admin = app.admin_login_token(ADMIN).await;
    (app, admin)
}

/// The role a login through `key` gives `email`: (role, role_id, the token's claim).
async fn role_of(app: &TestApp, email: &str, key: &str) -> (Value, Value, Value) {
    let body = app.login_body_with_key(email, key).await;
    let token = body["session_token"].as_str().unwrap();
    let claim = claims(token).get("role").cloned().unwrap_or(Value::Null);
    (
        body.get("role").cloned().unwrap_or(Value::Null),
        body.get("role_id").cloned().unwrap_or(Value::Null),
        claim,
    )
}

fn held(name: &str, id: i64) -> (Value, Value, Value) {
    (json!(name), json!(id), json!(name))
}

fn none() -> (Value, Value, Value) {
    (Value::Null, Value::Null, Value::Null)
}

both_backends! {
    async fn roles_are_created_listed_changed_and_deleted(backend) {
        let (app, admin) = setup(backend).await;
        let (status, body) = app.admin_call(&admin, Method::POST, "/api/v2/system/role",
            json!({ "resource": [{ "name": "users", "description": "Everyone" }, { "name": "staff", "is_active": false }] })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let users = body["resource"][0]["id"].as_i64().unwrap();
        let (status, list) = app.admin_call(&admin, Method::GET, "/api/v2/system/role", Value::Null).await;
        assert_eq!(status, StatusCode::OK);
        let records = list["resource"].as_array().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((&records[0]["name"], &records[0]["description"], &records[0]["is_active"]),
            (&json!("users"), &json!("Everyone"), &json!(true)));
        assert_eq!(records[1]["is_active"], false);
        let (status, one) = app.admin_call(&admin, Method::GET, &format!("/api/v2/system/role/{users}"), Value::Null).await;
        assert_eq!((status, &one), (StatusCode::OK, &records[0]));
        let (status, changed) = app.admin_call(&admin, Method::PATCH, &format!("/api/v2/system/role/{users}"),
            json!({ "description": "All users" })).await;
        assert_eq!((status, &changed["description"], &changed["name"]), (StatusCode::OK, &json!("All users"), &json!("users")));
        // A taken or missing name.
        for (method, path, body) in [
            (Method::POST, "/api/v2/system/role".to_owned(), json!({ "name": "staff" })),
            (Method::POST, "/api/v2/system/role".to_owned(), json!({ "description": "x" })),
            (Method::PATCH, format!("/api/v2/system/role/{users}"), json!({ "name": "staff" })),
        ] {
            let (status, answer) = app.admin_call(&admin, method, &path, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            assert!(answer["error"]["context"]["name"].is_array(), "{answer}");
        }
        let (status, _) = app.admin_call(&admin, Method::DELETE, &format!("/api/v2/system/role/{users}"), Value::Null).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app.admin_call(&admin, Method::GET, &format!("/api/v2/system/role/{users}"), Value::Null).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // A user's token is refused as DreamFactory's access check refuses it.
        let user = app.login_token(EMAIL, true).await;
        let response = app.request(Method::GET, "/api/v2/system/role").bearer_auth(&user).send().await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST).await;
    }

    async fn the_users_role_for_the_app_comes_first_then_the_apps_default(backend) {
        let (app, admin) = setup(backend).await;
        let users = app.create_role(&admin, "users", true).await;
        let staff = app.create_role(&admin, "staff", true).await;
        let with_default = app.create_app(&admin, "web", json!({ "role_id": users })).await;
        let without = app.create_app(&admin, "tools", json!({})).await;
        let jane = app.user_id(EMAIL).await;
        app.set_user_role(&admin, jane, with_default.id, Some(staff)).await;
        app.set_user_role(&admin, jane, without.id, Some(staff)).await;

        assert_eq!(role_of(&app, EMAIL, &with_default.key).await, held("staff", staff));
        assert_eq!(role_of(&app, OTHER, &with_default.key).await, held("users", users));
        assert_eq!(role_of(&app, EMAIL, &without.key).await, held("staff", staff));
        assert_eq!(role_of(&app, OTHER, &without.key).await, none());
        // No key, no role; administrators need none.
        let body = status_json(app.login(EMAIL, PASSWORD, true).await).await.1;
        assert!(body.get("role").is_none() && body.get("role_id").is_none(), "{body}");
        assert!(claims(body["session_token"].as_str().unwrap()).get("role").is_none());
        assert_eq!(role_of(&app, ADMIN, &with_default.key).await, none());

        // The role holds through GET and refresh, in the answer and the claim.
        let body = app.login_body_with_key(OTHER, &with_default.key).await;
        let token = body["session_token"].as_str().unwrap().to_owned();
        let (_, got) = status_json(app.get_session(&token).await).await;
        assert_eq!((&got["role"], &got["role_id"]), (&json!("users"), &json!(users)));
        let (status, refreshed) = status_json(app.refresh(&token).await).await;
        assert_eq!(status, StatusCode::OK, "{refreshed}");
        assert_eq!((&refreshed["role"], &refreshed["role_id"]), (&json!("users"), &json!(users)));
        assert_eq!(claims(refreshed["session_token"].as_str().unwrap())["role"], "users");

        // The assignments are answered, and a null removes one.
        let (status, user) = app.admin_call(&admin, Method::PATCH, &format!("/api/v2/system/user/{jane}"),
            json!({ "user_to_app_to_role_by_user_id": [{ "app_id": without.id, "role_id": null }] })).await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert_eq!(user["user_to_app_to_role_by_user_id"],
            json!([{ "user_id": jane, "app_id": with_default.id, "role_id": staff }]));
        assert_eq!(role_of(&app, EMAIL, &without.key).await, none());
        // An unknown app or role, or user.
        for body in [
            json!({ "user_to_app_to_role_by_user_id": [{ "app_id": 999, "role_id": staff }] }),
            json!({ "user_to_app_to_role_by_user_id": [{ "app_id": without.id, "role_id": 999 }] }),
        ] {
            let (status, answer) = app.admin_call(&admin, Method::PATCH, &format!("/api/v2/system/user/{jane}"), body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        }
        let (status, _) = app.admin_call(&admin, Method::PATCH, "/api/v2/system/user/999",
            json!({ "user_to_app_to_role_by_user_id": [] })).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn an_inactive_role_refuses_the_login_and_deactivation_ends_its_sessions(backend) {
        let (app, admin) = setup(backend).await;
        let users = app.create_role(&admin, "users", true).await;
        let off = app.create_role(&admin, "off", false).await;
        let web = app.create_app(&admin, "web", json!({ "role_id": users })).await;
        let jane = app.user_id(EMAIL).await;
        app.set_user_role(&admin, jane, web.id, Some(off)).await;
        let (message, reason) = assert_error(app.login_with_key(EMAIL, &web.key).await, StatusCode::FORBIDDEN).await;
        assert_eq!((message.as_str(), reason.as_str()), ("Role is not active.", "role_disabled"));
        // Only with the right password: a wrong one is the usual 401.
        let response = app.request(Method::POST, "/api/v2/user/session").header("X-DreamFactory-API-Key", &web.key)
            .json(&json!({ "email": EMAIL, "password": "wrong-password" })).send().await.unwrap();
        assert_error(response, StatusCode::UNAUTHORIZED).await;
        // Nothing was created.
        let (_, page) = app.admin_call(&admin, Method::GET, "/api/v2/system/sessions?email=jane@example.com", Value::Null).await;
        assert_eq!(page["resource"], json!([]));
        // Administrators need no role: never refused for one.
        app.set_user_role(&admin, app.user_id(ADMIN).await, web.id, Some(off)).await;
        app.login_body_with_key(ADMIN, &web.key).await;

        // Deactivating a role ends the sessions holding it, on every replica, and only them.
        let replica = app.replica().await;
        let john = app.login_body_with_key(OTHER, &web.key).await["session_token"].as_str().unwrap().to_owned();
        let plain = app.login_token(OTHER, true).await;
        let (status, _) = app.admin_call(&admin, Method::PATCH, &format!("/api/v2/system/role/{users}"), json!({ "is_active": false })).await;
        assert_eq!(status, StatusCode::OK);
        let (_, reason) = assert_error(replica.get_session(&john).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "role_disabled");
        assert_eq!(replica.get_session(&plain).await.status(), StatusCode::OK);
        assert_error(replica.login_with_key(OTHER, &web.key).await, StatusCode::FORBIDDEN).await;
        // Active again, logins get it again; deleting it ends them too, and the app has no
        // default role any more.
        app.admin_call(&admin, Method::PATCH, &format!("/api/v2/system/role/{users}"), json!({ "is_active": true })).await;
        let again = replica.login_body_with_key(OTHER, &web.key).await["session_token"].as_str().unwrap().to_owned();
        let (status, _) = app.admin_call(&admin, Method::DELETE, &format!("/api/v2/system/role/{users}"), Value::Null).await;
        assert_eq!(status, StatusCode::OK);
        let (_, reason) = assert_error(replica.get_session(&again).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "role_disabled");
        assert_eq!(role_of(&app, OTHER, &web.key).await, none());
    }

    async fn a_change_to_a_sessions_role_ends_exactly_the_sessions_it_changes(backend) {
        let (app, admin) = setup(backend).await;
        let users = app.create_role(&admin, "users", true).await;
        let staff = app.create_role(&admin, "staff", true).await;
        let web = app.create_app(&admin, "web", json!({ "role_id": users })).await;
        let ios = app.create_app(&admin, "ios", json!({ "role_id": users })).await;
        let jane = app.user_id(EMAIL).await;
        let login = async |email: &str, key: &str| {
            app.login_body_with_key(email, key).await["session_token"].as_str().unwrap().to_owned()
        };
        let reason = async |token: &str| {
            match app.get_session(token).await.status() {
                StatusCode::OK => "live".to_owned(),
                _ => assert_error(app.get_session(token).await, StatusCode::FORBIDDEN).await.1,
            }
        };

        // A user's new role for one app ends their sessions of that app only.
        let (jane_web, jane_ios, john_web) = (login(EMAIL, &web.key).await, login(EMAIL, &ios.key).await, login(OTHER, &web.key).await);
        app.set_user_role(&admin, jane, web.id, Some(staff)).await;
        assert_eq!(reason(&jane_web).await, "role_changed");
        assert_eq!(reason(&jane_ios).await, "live");
        assert_eq!(reason(&john_web).await, "live");
        // Setting the role a session already holds changes nothing.
        let jane_web = login(EMAIL, &web.key).await;
        app.set_user_role(&admin, jane, web.id, Some(staff)).await;
        assert_eq!(reason(&jane_web).await, "live");

        // A new default role for the app ends the sessions that held the old default, not
        // those with a role of their own.
        app.patch_app(&admin, web.id, "", json!({ "role_id": staff })).await;
        assert_eq!(reason(&john_web).await, "role_changed");
        assert_eq!(reason(&jane_web).await, "live");
        assert_eq!(role_of(&app, OTHER, &web.key).await, held("staff", staff));
        // Removing the default ends the sessions that held it.
        let john_web = login(OTHER, &web.key).await;
        app.patch_app(&admin, web.id, "", json!({ "role_id": null })).await;
        assert_eq!(reason(&john_web).await, "role_changed");
        assert_eq!(reason(&jane_web).await, "live");

        // Renaming a role ends its sessions (their tokens carry the old name); a change of
        // description does not.
        let john_ios = login(OTHER, &ios.key).await;
        app.admin_call(&admin, Method::PATCH, &format!("/api/v2/system/role/{users}"), json!({ "description": "x" })).await;
        assert_eq!(reason(&john_ios).await, "live");
        app.admin_call(&admin, Method::PATCH, &format!("/api/v2/system/role/{users}"), json!({ "name": "members" })).await;
        assert_eq!(reason(&john_ios).await, "role_changed");
        assert_eq!(reason(&jane_ios).await, "role_changed");
        assert_eq!(reason(&jane_web).await, "live", "staff was not renamed");
        assert_eq!(role_of(&app, OTHER, &ios.key).await, held("members", users));
    }

    async fn racing_refreshes_of_a_session_with_a_role_get_the_same_successor(backend) {
        let (app, admin) = setup(backend).await;
        let users = app.create_role(&admin, "users", true).await;
        let web = app.create_app(&admin, "web", json!({ "role_id": users })).await;
        let token = app.login_body_with_key(EMAIL, &web.key).await["session_token"].as_str().unwrap().to_owned();
        let replica = app.replica().await;
        let first = spawn_call(&app, Method::PUT, "/api/v2/user/session", &token);
        let second = spawn_call(&replica, Method::PUT, "/api/v2/user/session", &token);
        let (a, b) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{a:?} {b:?}");
        assert_eq!(a.1["session_token"], b.1["session_token"], "byte-identical successors");
        assert_eq!(claims(a.1["session_token"].as_str().unwrap())["role"], "users");
        // And a third racer inside the grace, later.
        app.clock.advance(3);
        let late = app.refresh_token(&token).await;
        assert_eq!(json!(late), a.1["session_token"]);
    }
}
