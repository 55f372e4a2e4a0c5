//! Apps and API keys as DreamFactory has them: the admin API, the key read from `?api_key`
//! then `X-DreamFactory-API-Key`, an unknown key ignored, an inactive app's key refused, a
//! regenerated key replacing the old one at once, `REQUIRE_API_KEY`, sessions remembering
//! their app and ending with it (on every replica), the environment's launchpad list, and the
//! `tenure app` commands.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const EMAIL: &str = "jane@example.com";
const OTHER: &str = "john@example.com";
const ADMIN: &str = "admin@example.com";
const NO_API_KEY: &str = "No API Key provided. Please provide a valid API Key using X-DreamFactory-API-Key request header or 'api_key' url query parameter.";
const BLACKLISTED: &str = "The token has been blacklisted: Session terminated. Please re-login.";

/// A server with an administrator and two users; answers it and the administrator's token.
async fn setup(backend: Backend, config: TestConfig) -> (TestApp, String) {
    let app = spawn_app_with(backend, config).await;
    app.create_user(ADMIN, true).await;
    app.create_user(EMAIL, false).await;
    app.create_user(OTHER, false).await;
    let admin = app.admin_login_token(ADMIN).await;
    (app, admin)
}

/// The caller's device list (`GET /api/v2/user/sessions`).
async fn devices(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = status_json(
        app.session_call(Method::GET, "/api/v2/user/sessions", token)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["resource"].as_array().unwrap().clone()
}

/// The current session's entry in the caller's device list.
async fn this_device(app: &TestApp, token: &str) -> Value {
    devices(app, token)
        .await
        .into_iter()
        .find(|d| d["current"] == json!(true))
        .expect("the current session is listed")
}

fn is_api_key(key: &str) -> bool {
    key.len() == 64 && key.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

both_backends! {
    async fn apps_are_created_listed_read_and_deleted_with_dreamfactorys_shapes(backend) {
        let (app, admin) = setup(backend, TestConfig::new()).await;
        // One record, or DreamFactory's wrapper; the answer is always the wrapper of ids.
        let (status, body) = app.admin_call(&admin, Method::POST, "/api/v2/system/app",
            json!({ "name": "web", "description": "The web app", "url": "https://web.example" })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let web = body["resource"][0]["id"].as_i64().unwrap();
        assert_eq!(body, json!({ "resource": [{ "id": web }] }));
        let (status, body) = app.admin_call(&admin, Method::POST, "/api/v2/system/app",
            json!({ "resource": [{ "name": "ios" }, { "name": "android", "is_active": false }] })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ids: Vec<i64> = body["resource"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(ids.len(), 2);

        let (status, list) = app.admin_call(&admin, Method::GET, "/api/v2/system/app", Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let records = list["resource"].as_array().unwrap();
        assert_eq!(records.len(), 3);
        let keys: Vec<&str> = records.iter().map(|r| r["api_key"].as_str().unwrap()).collect();
        assert!(keys.iter().all(|k| is_api_key(k)), "{keys:?}");
        assert!(keys[0] != keys[1] && keys[1] != keys[2] && keys[0] != keys[2]);
        assert_eq!(records[0]["name"], "web");
        assert_eq!(records[0]["description"], "The web app");
        assert_eq!(records[0]["url"], "https://web.example");
        assert_eq!(records[0]["is_active"], true);
        assert_eq!(records[0]["role_id"], Value::Null);
        assert_eq!(records[2]["is_active"], false);

        let (status, one) = app.admin_call(&admin, Method::GET, &format!("/api/v2/system/app/{web}"), Value::Null).await;
        assert_eq!((status, &one), (StatusCode::OK, &records[0]));

        // A change keeps what it does not name; null clears.
        let changed = app.patch_app(&admin, web, "", json!({ "description": null, "url": "https://new.example" })).await;
        assert_eq!(changed["description"], Value::Null);
        assert_eq!(changed["url"], "https://new.example");
        assert_eq!(changed["name"], "web");
        assert_eq!(changed["api_key"], records[0]["api_key"], "the key changes only on request");

        // Validation: a missing or taken name, an unknown role.
        for (body, field) in [
            (json!({ "description": "no name" }), "name"),
            (json!({ "name": "  " }), "name"),
            (json!({ "name": "web" }), "name"),
            (json!({ "name": "new", "role_id": 999 }), "role_id"),
        ] {
            let (status, answer) = app.admin_call(&admin, Method::POST, "/api/v2/system/app", body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
            assert_eq!(answer["error"]["message"], "Validation failed", "{answer}");
            assert!(answer["error"]["context"][field].is_array(), "{answer}");
        }
        let (status, answer) = app.admin_call(&admin, Method::PATCH, &format!("/api/v2/system/app/{web}"), json!({ "name": "ios" })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

        // Unknown records.
        for (path, id) in [("/api/v2/system/app/999", "999"), ("/api/v2/system/app/abc", "abc")] {
            let (status, body) = app.admin_call(&admin, Method::GET, path, Value::Null).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(body["error"]["message"], format!("Record with identifier '{id}' not found."));
        }
        let (status, body) = app.admin_call(&admin, Method::DELETE, &format!("/api/v2/system/app/{web}"), Value::Null).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "id": web })));
        let (status, _) = app.admin_call(&admin, Method::DELETE, &format!("/api/v2/system/app/{web}"), Value::Null).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Methods tenure does not serve there answer as DreamFactory's unserved resources.
        let (status, body) = app.admin_call(&admin, Method::PUT, "/api/v2/system/app", json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["message"], "PUT requests for resource 'app' are not currently supported by the 'system' service.");
    }

    async fn only_administrators_manage_apps_as_dreamfactorys_access_check_says(backend) {
        let (app, admin) = setup(backend, TestConfig::new()).await;
        let web = app.create_app(&admin, "web", json!({})).await;
        let user = app.login_token(EMAIL, true).await;
        // A user without a key: no API key; with an app's key: no role; no credentials at all.
        let response = app.request(Method::GET, "/api/v2/system/app").bearer_auth(&user).send().await.unwrap();
        let (message, reason) = assert_error(response, StatusCode::BAD_REQUEST).await;
        assert_eq!((message.as_str(), reason.as_str()), (NO_API_KEY, "api_key_required"));
        let response = app.request(Method::GET, "/api/v2/system/app").bearer_auth(&user)
            .header("X-DreamFactory-API-Key", &web.key).send().await.unwrap();
        let (_, reason) = assert_error(response, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "role_not_found");
        // An unknown key is no key.
        let response = app.request(Method::GET, "/api/v2/system/app").bearer_auth(&user)
            .header("X-DreamFactory-API-Key", "0".repeat(64)).send().await.unwrap();
        let (_, reason) = assert_error(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(reason, "api_key_required");
        let response = app.request(Method::POST, "/api/v2/system/app").json(&json!({ "name": "x" })).send().await.unwrap();
        let (_, reason) = assert_error(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(reason, "no_credentials");
        // Nothing was created.
        let (_, list) = app.admin_call(&admin, Method::GET, "/api/v2/system/app", Value::Null).await;
        assert_eq!(list["resource"].as_array().unwrap().len(), 1);
    }

    async fn a_session_remembers_the_app_whose_key_it_logged_in_with(backend) {
        let (app, admin) = setup(backend, TestConfig::new()).await;
        let web = app.create_app(&admin, "web", json!({})).await;
        let ios = app.create_app(&admin, "ios", json!({})).await;
        // The header.
        let body = app.login_body_with_key(EMAIL, &web.key).await;
        let token = body["session_token"].as_str().unwrap().to_owned();
        let device = this_device(&app, &token).await;
        assert_eq!((&device["app_id"], &device["app"]), (&json!(web.id), &json!("web")));
        // The query parameter comes first.
        let response = app.request(Method::POST, "/api/v2/user/session")
            .query(&[("api_key", ios.key.as_str())])
            .header("X-DreamFactory-API-Key", &web.key)
            .json(&json!({ "email": EMAIL, "password": PASSWORD }))
            .send().await.unwrap();
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let by_query = body["session_token"].as_str().unwrap().to_owned();
        assert_eq!(this_device(&app, &by_query).await["app"], "ios");
        // An unknown key is ignored, as DreamFactory ignores it: no app.
        for key in ["not-a-key", &"f".repeat(64)] {
            let body = app.login_body_with_key(EMAIL, key).await;
            let token = body["session_token"].as_str().unwrap();
            let device = this_device(&app, token).await;
            assert_eq!((&device["app_id"], &device["app"]), (&Value::Null, &Value::Null));
        }
        // The administrators' listing shows the app too.
        let (status, page) = app.admin_call(&admin, Method::GET, "/api/v2/system/sessions?email=jane@example.com", Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let apps: Vec<&Value> = page["resource"].as_array().unwrap().iter().map(|s| &s["app"]).collect();
        assert!(apps.contains(&&json!("web")) && apps.contains(&&json!("ios")), "{page}");
        // A refresh keeps the app.
        let refreshed = app.refresh_token(&token).await;
        assert_eq!(this_device(&app, &refreshed).await["app"], "web");
    }

    async fn an_inactive_apps_key_is_refused_on_login_and_on_session_checks(backend) {
        let (app, admin) = setup(backend, TestConfig::new()).await;
        let web = app.create_app(&admin, "web", json!({})).await;
        let off = app.create_app(&admin, "off", json!({ "is_active": false })).await;
        let (message, reason) = assert_error(app.login_with_key(EMAIL, &off.key).await, StatusCode::FORBIDDEN).await;
        assert_eq!((message.as_str(), reason.as_str()), ("App is not active.", "app_disabled"));
        // Even with a wrong password: the key is checked first, as in DreamFactory.
        let response = app.request(Method::POST, "/api/v2/user/session")
            .header("X-DreamFactory-API-Key", &off.key)
            .json(&json!({ "email": EMAIL, "password": "wrong" })).send().await.unwrap();
        assert_error(response, StatusCode::FORBIDDEN).await;
        // A session of another app, checked with the inactive app's key (header or query).
        let token = app.login_body_with_key(EMAIL, &web.key).await["session_token"].as_str().unwrap().to_owned();
        let response = app.request(Method::GET, "/api/v2/user/session").bearer_auth(&token)
            .header("X-DreamFactory-API-Key", &off.key).send().await.unwrap();
        assert_eq!(assert_error(response, StatusCode::FORBIDDEN).await.0, "App is not active.");
        let response = app.request(Method::PUT, "/api/v2/user/session").bearer_auth(&token)
            .query(&[("api_key", off.key.as_str())]).send().await.unwrap();
        assert_eq!(assert_error(response, StatusCode::FORBIDDEN).await.0, "App is not active.");
        // The session itself is fine.
        assert_eq!(app.get_session(&token).await.status(), StatusCode::OK);
        // Activated, the key works.
        app.patch_app(&admin, off.id, "", json!({ "is_active": true })).await;
        app.login_body_with_key(EMAIL, &off.key).await;
    }

    async fn deactivating_or_deleting_an_app_ends_its_sessions_on_every_replica(backend) {
        let (app, admin) = setup(backend, TestConfig::new()).await;
        let web = app.create_app(&admin, "web", json!({})).await;
        let ios = app.create_app(&admin, "ios", json!({})).await;
        let replica = app.replica().await;
        let jane_web = app.login_body_with_key(EMAIL, &web.key).await["session_token"].as_str().unwrap().to_owned();
        let john_web = app.login_body_with_key(OTHER, &web.key).await["session_token"].as_str().unwrap().to_owned();
        let jane_ios = app.login_body_with_key(EMAIL, &ios.key).await["session_token"].as_str().unwrap().to_owned();
        let jane_plain = app.login_token(EMAIL, true).await;
        for token in [&jane_web, &john_web] {
            assert_eq!(replica.get_session(token).await.status(), StatusCode::OK);
        }

        app.patch_app(&admin, web.id, "", json!({ "is_active": false })).await;
        for token in [&jane_web, &john_web] {
            let (message, reason) = assert_error(replica.get_session(token).await, StatusCode::FORBIDDEN).await;
            assert_eq!((message.as_str(), reason.as_str()), (BLACKLISTED, "app_disabled"));
            let (_, reason) = assert_error(replica.refresh(token).await, StatusCode::UNAUTHORIZED).await;
            assert_eq!(reason, "app_disabled");
        }
        for token in [&jane_ios, &jane_plain] {
            assert_eq!(replica.get_session(token).await.status(), StatusCode::OK, "other sessions stay");
        }
        // Reactivation brings nothing back; new logins work.
        app.patch_app(&admin, web.id, "", json!({ "is_active": true })).await;
        assert_eq!(replica.get_session(&jane_web).await.status(), StatusCode::FORBIDDEN);
        let again = replica.login_body_with_key(EMAIL, &web.key).await["session_token"].as_str().unwrap().to_owned();

        // Deletion ends them too, and the key is then unknown (ignored).
        let (status, _) = app.admin_call(&admin, Method::DELETE, &format!("/api/v2/system/app/{}", ios.id), Value::Null).await;
        assert_eq!(status, StatusCode::OK);
        let (_, reason) = assert_error(replica.get_session(&jane_ios).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "app_disabled");
        assert_eq!(replica.get_session(&again).await.status(), StatusCode::OK);
        let body = replica.login_body_with_key(EMAIL, &ios.key).await;
        let device = this_device(&replica, body["session_token"].as_str().unwrap()).await;
        assert_eq!(device["app_id"], Value::Null);
    }

    async fn a_regenerated_key_replaces_the_old_one_at_once(backend) {
        let (app, admin) = setup(backend, TestConfig::new()).await;
        let web = app.create_app(&admin, "web", json!({})).await;
        // Another server on the same database that requires a key.
        let replica = TestApp::start(
            app.db.clone(),
            TestConfig::new().var("REQUIRE_API_KEY", "true"),
            app.clock.clone(),
        ).await;
        let session = replica.login_body_with_key(EMAIL, &web.key).await["session_token"].as_str().unwrap().to_owned();

        let changed = app.request(Method::PATCH, &format!("/api/v2/system/app/{}", web.id))
            .query(&[("regenerate", "true")])
            .header("X-DreamFactory-API-Key", &web.key)
            .bearer_auth(&admin)
            .json(&json!({})).send().await.unwrap();
        let (status, changed) = status_json(changed).await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        let new_key = changed["api_key"].as_str().unwrap().to_owned();
        assert!(is_api_key(&new_key) && new_key != web.key);

        // The old key is unknown at once, on the other server too: ignored here (the session
        // has no app), refused where a key is required.
        let body = app.login_body_with_key(EMAIL, &web.key).await;
        assert_eq!(this_device(&app, body["session_token"].as_str().unwrap()).await["app_id"], Value::Null);
        let (message, reason) = assert_error(replica.login_with_key(EMAIL, &web.key).await, StatusCode::BAD_REQUEST).await;
        assert_eq!((message.as_str(), reason.as_str()), (NO_API_KEY, "api_key_unknown"));
        for server in [&app, &replica] {
            let body = server.login_body_with_key(EMAIL, &new_key).await;
            let token = body["session_token"].as_str().unwrap();
            let response = server.request(Method::GET, "/api/v2/user/sessions").bearer_auth(token)
                .header("X-DreamFactory-API-Key", &new_key).send().await.unwrap();
            let (_, list) = status_json(response).await;
            let current = list["resource"].as_array().unwrap().iter().find(|d| d["current"] == json!(true)).unwrap().clone();
            assert_eq!(current["app"], "web");
        }
        // Sessions made with the old key are the app's, and stay.
        let response = replica.request(Method::GET, "/api/v2/user/session").bearer_auth(&session)
            .header("X-DreamFactory-API-Key", &new_key).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    async fn require_api_key_makes_a_valid_key_mandatory_except_for_the_environment(backend) {
        let config = TestConfig::new().var("REQUIRE_API_KEY", "true");
        let app = spawn_app_with(backend, config).await;
        app.create_user(ADMIN, true).await;
        app.create_user(EMAIL, false).await;
        // Without a key even the administrator cannot log in to make one: the CLI can.
        let (_, reason) = assert_error(app.request(Method::POST, "/api/v2/system/admin/session")
            .json(&json!({ "email": ADMIN, "password": PASSWORD })).send().await.unwrap(), StatusCode::BAD_REQUEST).await;
        assert_eq!(reason, "api_key_required");
        let key = cli(&app, &["app", "create", "--name", "web"]).await;
        let key = key.lines().find_map(|l| l.strip_prefix("api key: ")).unwrap().to_owned();
        assert!(is_api_key(&key), "{key}");

        for (method, path) in [
            (Method::POST, "/api/v2/user/session"),
            (Method::GET, "/api/v2/user/session"),
            (Method::PUT, "/api/v2/user/session"),
            (Method::DELETE, "/api/v2/user/session"),
            (Method::GET, "/api/v2/user/sessions"),
            (Method::GET, "/api/v2/user/profile"),
            (Method::GET, "/api/v2/system/app"),
            (Method::POST, "/api/v2/system/introspect"),
            (Method::GET, "/api/v2/system/lookup"),
            (Method::GET, "/api/v2/openapi.json"),
        ] {
            let response = app.request(method.clone(), path).send().await.unwrap();
            let (message, reason) = assert_error(response, StatusCode::BAD_REQUEST).await;
            assert_eq!((message.as_str(), reason.as_str()), (NO_API_KEY, "api_key_required"), "{method} {path}");
            let response = app.request(method.clone(), path).header("X-DreamFactory-API-Key", "nope").send().await.unwrap();
            let (_, reason) = assert_error(response, StatusCode::BAD_REQUEST).await;
            assert_eq!(reason, "api_key_unknown", "{method} {path}");
        }
        let response = app.request(Method::GET, "/api/v2/system/environment").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        // Outside /api/v2: health, the JWKS.
        for path in ["/health/live", "/.well-known/jwks.json"] {
            assert_eq!(app.request(Method::GET, path).send().await.unwrap().status(), StatusCode::OK, "{path}");
        }
        // With the key, DreamFactory's flow works end to end.
        let token = app.login_body_with_key(EMAIL, &key).await["session_token"].as_str().unwrap().to_owned();
        for method in [Method::GET, Method::PUT] {
            let response = app.request(method.clone(), "/api/v2/user/session").bearer_auth(&token)
                .query(&[("api_key", key.as_str())]).send().await.unwrap();
            let (status, body) = status_json(response).await;
            assert_eq!(status, StatusCode::OK, "{method}: {body}");
            if method == Method::PUT {
                let token = body["session_token"].as_str().unwrap();
                let response = app.request(Method::DELETE, "/api/v2/user/session").bearer_auth(token)
                    .header("X-DreamFactory-API-Key", &key).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
            }
        }
    }

    async fn the_environment_lists_the_apps_a_launchpad_shows_and_never_a_key(backend) {
        let (app, admin) = setup(backend, TestConfig::new()).await;
        let users = app.create_role(&admin, "users", true).await;
        let staff = app.create_role(&admin, "staff", true).await;
        let public = app.create_app(&admin, "public", json!({ "role_id": users, "url": "https://p.example", "description": "Open" })).await;
        let internal = app.create_app(&admin, "internal", json!({})).await;
        app.create_app(&admin, "retired", json!({ "role_id": users, "is_active": false })).await;
        let jane = app.user_id(EMAIL).await;
        app.set_user_role(&admin, jane, internal.id, Some(staff)).await;

        let environment = async |token: Option<&str>| {
            let mut request = app.request(Method::GET, "/api/v2/system/environment");
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let (status, body) = status_json(request.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(!body.to_string().contains(&public.key), "a key leaked: {body}");
            body["apps"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        };
        let (_, body) = status_json(app.request(Method::GET, "/api/v2/system/environment").send().await.unwrap()).await;
        assert_eq!(body["apps"], json!([{
            "id": public.id, "name": "public", "description": "Open", "url": "https://p.example",
            "is_default": false, "allow_fullscreen_toggle": true, "requires_fullscreen": false,
            "toggle_location": "top"
        }]));
        assert_eq!(environment(None).await, ["public"]);
        let john = app.login_token(OTHER, true).await;
        assert_eq!(environment(Some(&john)).await, ["public"]);
        let jane = app.login_token(EMAIL, true).await;
        assert_eq!(environment(Some(&jane)).await, ["public", "internal"]);
        assert_eq!(environment(Some(&admin)).await, ["public", "internal"]);
        // A key sent to the environment is never an error, even an inactive app's.
        let response = app.request(Method::GET, "/api/v2/system/environment").header("X-DreamFactory-API-Key", "nope").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    async fn the_app_commands_create_list_deactivate_and_activate(backend) {
        let app = spawn_app(backend).await;
        app.create_user(EMAIL, false).await;
        let out = cli(&app, &["role", "create", "--name", "users"]).await;
        assert!(out.contains("created role"), "{out}");
        let out = cli(&app, &["app", "create", "--name", "web", "--role", "users"]).await;
        let key = out.lines().find_map(|l| l.strip_prefix("api key: ")).unwrap().to_owned();
        assert!(is_api_key(&key), "{out}");
        let list = cli(&app, &["app", "list"]).await;
        assert!(list.contains("web") && list.contains("users") && !list.contains(&key), "{list}");

        let body = app.login_body_with_key(EMAIL, &key).await;
        assert_eq!(body["role"], "users");
        let token = body["session_token"].as_str().unwrap().to_owned();
        cli(&app, &["app", "deactivate", "web"]).await;
        let (_, reason) = assert_error(app.get_session(&token).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "app_disabled");
        assert_error(app.login_with_key(EMAIL, &key).await, StatusCode::FORBIDDEN).await;
        cli(&app, &["app", "activate", "web"]).await;
        app.login_body_with_key(EMAIL, &key).await;

        // Mistakes are said, with a failing exit.
        for args in [
            &["app", "create", "--name", "web"][..],
            &["app", "create", "--name", "x", "--role", "nobody"][..],
            &["app", "deactivate", "nothing"][..],
            &["role", "create", "--name", "users"][..],
        ] {
            let output = cli_output(&app, args).await;
            assert!(!output.status.success(), "{args:?} succeeded");
            assert!(!output.stderr.is_empty(), "{args:?} said nothing");
        }
    }
}

/// Runs `tenure <args>` on the test server's database; panics unless it succeeds; answers its
/// standard output.
pub async fn cli(app: &TestApp, args: &[&str]) -> String {
    let output = cli_output(app, args).await;
    assert!(
        output.status.success(),
        "tenure {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn cli_output(app: &TestApp, args: &[&str]) -> std::process::Output {
    let url = app.db.url.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}
