//! Refresh credentials (issue 14, items 1, 2 and 5): body mode for native apps, the HttpOnly
//! cookie for browser apps, the CSRF checks of every request carrying the cookie, a credential
//! accepted only where a refresh or logout is, and a logout with a token the grace still covers.

use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const EMAIL: &str = "browser@example.com";
const SESSION: &str = "/api/v2/user/session";
const ADMIN_SESSION: &str = "/api/v2/system/admin/session";
const GRACE: i64 = 10;
const COOKIE: &str = "__Secure-tenure-refresh";
const FOREVER_MAX_AGE: &str = "Max-Age=34560000";

fn config() -> TestConfig {
    TestConfig::new().var("REFRESH_REUSE_GRACE", &format!("{GRACE}s"))
}

async fn app_with(backend: Backend, config: TestConfig) -> TestApp {
    let app = spawn_app_with(backend, config).await;
    app.create_user(EMAIL, false).await;
    app.create_user("root@example.com", true).await;
    app
}

/// Logs in asking for `mode`; answers the body and the `Set-Cookie` lines.
async fn login_with(
    app: &TestApp,
    path: &str,
    email: &str,
    mode: &str,
    remember_me: bool,
) -> (Value, Vec<String>) {
    let response = app
        .request(Method::POST, path)
        .header("X-Tenure-Refresh", mode)
        .header("X-Requested-With", "test")
        .json(&json!({ "email": email, "password": PASSWORD, "remember_me": remember_me }))
        .send()
        .await
        .expect("login");
    let cookies = set_cookies(response.headers());
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (body, cookies)
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

/// The value of `name` set by one of `cookies`.
fn cookie_value(cookies: &[String], name: &str) -> String {
    cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} in {cookies:?}"))
        .to_owned()
}

/// A request carrying the refresh cookie, with the CSRF header.
fn with_cookie(app: &TestApp, method: Method, path: &str, value: &str) -> reqwest::RequestBuilder {
    app.request(method, path)
        .header("Cookie", format!("{COOKIE}={value}"))
        .header("X-Requested-With", "test")
}

/// Refreshes with a body-mode credential in its header.
async fn refresh_with_header(app: &TestApp, credential: &str) -> (StatusCode, Value) {
    let response = app
        .request(Method::PUT, SESSION)
        .header("X-Tenure-Refresh-Token", credential)
        .send()
        .await
        .expect("refresh");
    status_json(response).await
}

both_backends! {
    async fn body_mode_rotates_the_credential_and_the_access_token_alone_no_longer_refreshes(backend) {
        let app = app_with(backend, config()).await;
        let (login, cookies) = login_with(&app, SESSION, EMAIL, "body", true).await;
        assert!(cookies.is_empty(), "body mode sets no cookie: {cookies:?}");
        let token = login["session_token"].as_str().unwrap().to_owned();
        let first = login["refresh_token"].as_str().expect("a refresh_token").to_owned();
        assert!(first.len() >= 43 + 32, "256 bits of secret and the session: {first}");
        assert!(!first.contains(&token) && first.matches('.').count() == 3, "not a JWT: {first}");

        // The access token alone, even expired, no longer refreshes this session.
        app.clock.advance(25 * 3600);
        let (_, reason) = assert_error(app.refresh(&token).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "refresh_credential_required");

        // The credential does, in the header or in the body; each rotation gives a new one.
        let (status, second) = refresh_with_header(&app, &first).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        let next = second["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(next, first);
        assert_eq!(claims(second["session_token"].as_str().unwrap())["gen"], 1);
        let response = app
            .request(Method::PUT, SESSION)
            .json(&json!({ "refresh_token": next }))
            .send()
            .await
            .unwrap();
        let (status, third) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{third}");
        assert_eq!(claims(third["session_token"].as_str().unwrap())["gen"], 2);
        let (status, _) = status_json(app.get_session(third["session_token"].as_str().unwrap()).await).await;
        assert_eq!(status, StatusCode::OK);

        // Garbage and forgeries are refused without touching anything.
        for bad in ["rt1.x", "nonsense", &first.replace('.', "-"), &format!("{}A", &third["refresh_token"].as_str().unwrap()[..60])] {
            let (status, body) = refresh_with_header(&app, bad).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}: {body}");
            assert_eq!(body["error"]["context"]["reason"], "invalid_token");
        }
        let response = app.request(Method::PUT, SESSION).json(&json!({ "refresh_token": 7 })).send().await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST).await;
    }

    async fn racing_credentials_get_the_identical_successor_and_a_replay_revokes(backend) {
        let app = app_with(backend, config()).await;
        let (login, _) = login_with(&app, SESSION, EMAIL, "body", true).await;
        let first = login["refresh_token"].as_str().unwrap().to_owned();
        let (_, a) = refresh_with_header(&app, &first).await;
        app.clock.advance(GRACE);
        let (status, b) = refresh_with_header(&app, &first).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert_eq!(a["refresh_token"], b["refresh_token"], "the identical successor credential");
        assert_eq!(a["session_token"], b["session_token"], "and the identical token");

        app.clock.advance(1);
        let (status, body) = refresh_with_header(&app, &first).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["context"]["reason"], "token_reuse");
        let (_, reason) = assert_error(
            app.get_session(a["session_token"].as_str().unwrap()).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        assert_eq!(reason, "token_reuse");
        let (status, _) = refresh_with_header(&app, a["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    async fn a_credential_anywhere_but_the_refresh_is_refused(backend) {
        let app = app_with(backend, config()).await;
        let (login, _) = login_with(&app, SESSION, EMAIL, "body", true).await;
        let token = login["session_token"].as_str().unwrap();
        let credential = login["refresh_token"].as_str().unwrap();
        for (method, path) in [
            (Method::GET, SESSION),
            (Method::GET, "/api/v2/user/sessions"),
            (Method::POST, "/api/v2/user/password"),
            (Method::GET, "/api/v2/system/environment"),
            (Method::GET, "/health/live"),
        ] {
            let response = app
                .request(method.clone(), path)
                .bearer_auth(token)
                .header("X-Tenure-Refresh-Token", credential)
                .send()
                .await
                .unwrap();
            let (_, reason) = assert_error(response, StatusCode::BAD_REQUEST).await;
            assert_eq!(reason, "refresh_token_not_allowed_here", "{method} {path}");
        }
        // Never in a URL, not even on the refresh itself.
        let response = app
            .request(Method::PUT, &format!("{SESSION}?refresh_token={credential}"))
            .send()
            .await
            .unwrap();
        let (_, reason) = assert_error(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(reason, "refresh_token_not_allowed_here");
        // Nothing was used up: the credential still refreshes.
        let (status, _) = refresh_with_header(&app, credential).await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn cookie_mode_sets_an_httponly_strict_cookie_that_refreshes_and_logs_out(backend) {
        let app = app_with(backend, config()).await;
        let (login, cookies) = login_with(&app, SESSION, EMAIL, "cookie", true).await;
        assert!(login.get("refresh_token").is_none(), "the body does not repeat it: {login}");
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        let set = &cookies[0];
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api/v2/user/session", FOREVER_MAX_AGE] {
            assert!(set.split("; ").any(|a| a == attribute), "{attribute} missing: {set}");
        }
        assert!(!set.to_ascii_lowercase().contains("domain"), "{set}");
        let first = cookie_value(&cookies, COOKIE);

        // GET ignores the cookie (the access token decides).
        let response = with_cookie(&app, Method::GET, SESSION, &first).send().await.unwrap();
        assert_error(response, StatusCode::UNAUTHORIZED).await;

        // PUT with only the cookie refreshes and rotates it.
        app.clock.advance(25 * 3600);
        let response = with_cookie(&app, Method::PUT, SESSION, &first).send().await.unwrap();
        let rotated = set_cookies(response.headers());
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none());
        let second = cookie_value(&rotated, COOKIE);
        assert_ne!(second, first);
        assert!(rotated[0].contains(FOREVER_MAX_AGE), "renewed: {rotated:?}");
        let token = body["session_token"].as_str().unwrap().to_owned();
        let (status, _) = status_json(app.get_session(&token).await).await;
        assert_eq!(status, StatusCode::OK);

        // DELETE with only the cookie logs out, and clears it.
        let response = with_cookie(&app, Method::DELETE, SESSION, &second).send().await.unwrap();
        let cleared = set_cookies(response.headers());
        let (status, body) = status_json(response).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
        assert!(cleared[0].starts_with(&format!("{COOKIE}=;")) && cleared[0].contains("Max-Age=0"), "{cleared:?}");
        assert!(cleared[0].contains("Path=/api/v2/user/session") && cleared[0].contains("HttpOnly"));
        let (_, reason) = assert_error(app.get_session(&token).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "logged_out");
        // An answer that finds the cookie no good clears it too.
        let response = with_cookie(&app, Method::PUT, SESSION, &second).send().await.unwrap();
        let cleared = set_cookies(response.headers());
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(cleared.iter().any(|c| c.contains("Max-Age=0")), "{cleared:?}");
    }

    async fn the_cookie_follows_the_login_its_window_and_the_configuration(backend) {
        let app = app_with(backend, config().var("DF_JWT_REFRESH_TTL", "60m")).await;
        // An ordinary session: the cookie lives as long as its refresh window.
        let (_, cookies) = login_with(&app, SESSION, EMAIL, "cookie", false).await;
        assert!(cookies[0].contains("Max-Age=3600"), "{cookies:?}");
        // An administrator's cookie is scoped to the admin endpoint.
        let (_, cookies) = login_with(&app, ADMIN_SESSION, "root@example.com", "cookie", true).await;
        assert!(cookies[0].contains("Path=/api/v2/system/admin/session"), "{cookies:?}");
        let value = cookie_value(&cookies, COOKIE);
        let response = with_cookie(&app, Method::PUT, ADMIN_SESSION, &value).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        // An unknown mode is a clear 400.
        let response = app
            .request(Method::POST, SESSION)
            .header("X-Tenure-Refresh", "localStorage")
            .json(&json!({ "email": EMAIL, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST).await;

        // Plain-http development: no Secure, no prefix.
        let dev = app_with(backend, config().var("COOKIE_SECURE", "false")).await;
        let (_, cookies) = login_with(&dev, SESSION, EMAIL, "cookie", true).await;
        assert!(cookies[0].starts_with("tenure-refresh="), "{cookies:?}");
        assert!(!cookies[0].contains("Secure"), "{cookies:?}");
    }

    async fn every_csrf_refusal_changes_nothing(backend) {
        let allowed = "https://app.example.com";
        let app = app_with(backend, config().var("CORS_ALLOWED_ORIGINS", allowed)).await;
        let (_, cookies) = login_with(&app, SESSION, EMAIL, "cookie", true).await;
        let value = cookie_value(&cookies, COOKIE);
        let host = app.addr.to_string();

        let refused = [
            // No custom header: what a cross-site form could send.
            app.request(Method::PUT, SESSION).header("Cookie", format!("{COOKIE}={value}")),
            app.request(Method::DELETE, SESSION).header("Cookie", format!("{COOKIE}={value}")),
            with_cookie(&app, Method::PUT, SESSION, &value).header("Sec-Fetch-Site", "cross-site"),
            with_cookie(&app, Method::PUT, SESSION, &value).header("Sec-Fetch-Site", "none"),
            with_cookie(&app, Method::DELETE, SESSION, &value).header("Origin", "https://evil.example"),
            with_cookie(&app, Method::PUT, SESSION, &value).header("Origin", "null"),
        ];
        for request in refused {
            let response = request.send().await.unwrap();
            let (message, reason) = assert_error(response, StatusCode::FORBIDDEN).await;
            assert_eq!(reason, "csrf", "{message}");
        }
        // Nothing was rotated or ended: the same cookie refreshes, from the service's own
        // origin and from an allowed one.
        let response = with_cookie(&app, Method::PUT, SESSION, &value)
            .header("Origin", format!("http://{host}"))
            .header("Sec-Fetch-Site", "same-origin")
            .send()
            .await
            .unwrap();
        let rotated = set_cookies(response.headers());
        assert_eq!(response.status(), StatusCode::OK);
        let next = cookie_value(&rotated, COOKIE);
        let response = with_cookie(&app, Method::PUT, SESSION, &next)
            .header("Origin", allowed)
            .header("Sec-Fetch-Site", "same-site")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    async fn cors_lets_allowed_origins_send_the_new_headers_with_credentials(backend) {
        let allowed = "https://app.example.com";
        let app = app_with(backend, config().var("CORS_ALLOWED_ORIGINS", allowed)).await;
        let response = app
            .request(Method::OPTIONS, SESSION)
            .header("Origin", allowed)
            .header("Access-Control-Request-Method", "PUT")
            .header(
                "Access-Control-Request-Headers",
                "x-requested-with,x-tenure-refresh,x-tenure-refresh-token",
            )
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], allowed);
        assert_eq!(headers["access-control-allow-credentials"], "true");
        let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
        for name in ["x-requested-with", "x-tenure-refresh", "x-tenure-refresh-token"] {
            assert!(allowed_headers.contains(name), "{allowed_headers}");
        }
    }

    async fn a_logout_with_a_token_inside_the_grace_ends_the_session(backend) {
        let app = app_with(backend, config()).await;
        let old = app.login_token(EMAIL, true).await;
        let new = app.refresh_token(&old).await;
        // Another tab still holds the replaced token and logs out, within the grace.
        app.clock.advance(GRACE);
        let response = app.logout(&old).await;
        let (status, body) = status_json(response).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
        let (_, reason) = assert_error(app.get_session(&new).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "logged_out");

        // Outside the grace, a replaced token ends nothing.
        let old = app.login_token(EMAIL, true).await;
        let new = app.refresh_token(&old).await;
        app.clock.advance(GRACE + 1);
        assert_error(app.logout(&old).await, StatusCode::FORBIDDEN).await;
        let (status, _) = status_json(app.get_session(&new).await).await;
        assert_eq!(status, StatusCode::OK);

        // The same with a cookie one rotation behind.
        let (_, cookies) = login_with(&app, SESSION, EMAIL, "cookie", true).await;
        let first = cookie_value(&cookies, COOKIE);
        let response = with_cookie(&app, Method::PUT, SESSION, &first).send().await.unwrap();
        let (_, body) = status_json(response).await;
        let token = body["session_token"].as_str().unwrap().to_owned();
        let response = with_cookie(&app, Method::DELETE, SESSION, &first).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let (_, reason) = assert_error(app.get_session(&token).await, StatusCode::FORBIDDEN).await;
        assert_eq!(reason, "logged_out");
    }

    async fn signing_out_the_others_keeps_this_cookie(backend) {
        let app = app_with(backend, config()).await;
        let (_, other) = login_with(&app, SESSION, EMAIL, "cookie", true).await;
        let (login, cookies) = login_with(&app, SESSION, EMAIL, "cookie", true).await;
        let mine = cookie_value(&cookies, COOKIE);
        let response = with_cookie(&app, Method::DELETE, &format!("{SESSION}?scope=others"), &mine)
            .bearer_auth(login["session_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert!(set_cookies(response.headers()).is_empty(), "this device's cookie stays");
        let (status, body) = status_json(response).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "success": true, "ended": 1 })));
        let response = with_cookie(&app, Method::PUT, SESSION, &mine).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let other = cookie_value(&other, COOKIE);
        let response = with_cookie(&app, Method::PUT, SESSION, &other).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    async fn replicas_agree_on_credentials(backend) {
        let app = app_with(backend, config()).await;
        let other = app.replica().await;
        let (_, cookies) = login_with(&app, SESSION, EMAIL, "cookie", true).await;
        let first = cookie_value(&cookies, COOKIE);
        // Refreshed on the other replica, twice racing on both within the grace.
        let response = with_cookie(&other, Method::PUT, SESSION, &first).send().await.unwrap();
        let a = set_cookies(response.headers());
        assert_eq!(response.status(), StatusCode::OK);
        let response = with_cookie(&app, Method::PUT, SESSION, &first).send().await.unwrap();
        let b = set_cookies(response.headers());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(cookie_value(&a, COOKIE), cookie_value(&b, COOKIE));
        // Logged out on one, refused on the other.
        let second = cookie_value(&a, COOKIE);
        let response = with_cookie(&app, Method::DELETE, SESSION, &second).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let response = with_cookie(&other, Method::PUT, SESSION, &second).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    async fn logins_without_the_header_keep_dreamfactorys_flow(backend) {
        let app = app_with(backend, config()).await;
        let response = app
            .request(Method::POST, SESSION)
            .json(&json!({ "email": EMAIL, "password": PASSWORD, "remember_me": true }))
            .send()
            .await
            .unwrap();
        assert!(set_cookies(response.headers()).is_empty());
        let (_, body) = status_json(response).await;
        assert!(body.get("refresh_token").is_none(), "{body}");
        let token = body["session_token"].as_str().unwrap();
        app.clock.advance(25 * 3600);
        let (status, body) = status_json(app.refresh(token).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // A credential cannot be made up for such a session.
        let (status, _) = refresh_with_header(&app, &format!("rt1.{}.0.{}", "0".repeat(32), "A".repeat(43))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_usable_as_a_refresh_credential_is_stored() {
    let app = app_with(Backend::Sqlite, config()).await;
    let (login, _) = login_with(&app, SESSION, EMAIL, "body", true).await;
    let credential = login["refresh_token"].as_str().unwrap();
    let mac = credential.rsplit('.').next().unwrap();
    for table in ["sessions", "settings", "signing_keys"] {
        for row in app.db.dump(table).await {
            assert!(!row.contains(mac), "{table} holds the credential: {row}");
        }
    }
}
