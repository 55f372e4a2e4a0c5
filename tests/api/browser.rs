//! Browser frontends: CORS for exactly the configured origins (credentials allowed), and the
//! security headers on every response, errors and unknown routes included.

use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

const ALLOWED: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example.com";
const SESSION: &str = "/api/v2/user/session";

async fn cors_app(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        TestConfig::new().var("CORS_ALLOWED_ORIGINS", ALLOWED),
    )
    .await
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII header"))
}

/// A header's comma-separated values, lower-cased.
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().expect("ASCII header").split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

async fn preflight(app: &TestApp, origin: &str) -> Response {
    app.request(Method::OPTIONS, SESSION)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "PUT")
        .header(
            "Access-Control-Request-Headers",
            "authorization,x-dreamfactory-session-token",
        )
        .send()
        .await
        .expect("preflight")
}

fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

/// What is missing from the headers every response carries.
fn security_header_problems(headers: &HeaderMap) -> Vec<String> {
    let mut problems = Vec::new();
    if header(headers, "x-content-type-options") != Some("nosniff") {
        problems.push("no X-Content-Type-Options: nosniff".to_owned());
    }
    let frame = header(headers, "x-frame-options").unwrap_or_default();
    if !(frame.eq_ignore_ascii_case("DENY") || frame.eq_ignore_ascii_case("SAMEORIGIN")) {
        problems.push(format!("X-Frame-Options {frame:?}"));
    }
    if header(headers, "referrer-policy").is_none_or(str::is_empty) {
        problems.push("no Referrer-Policy".to_owned());
    }
    if header(headers, "x-request-id")
        .unwrap_or_default()
        .is_empty()
    {
        problems.push("no X-Request-Id".to_owned());
    }
    problems
}

fn assert_security_headers(what: &str, headers: &HeaderMap) {
    let problems = security_header_problems(headers);
    assert!(problems.is_empty(), "{what}: {problems:?} in {headers:?}");
}

fn assert_no_store(what: &str, headers: &HeaderMap) {
    let cache = list(headers, "cache-control");
    assert!(
        cache.iter().any(|v| v == "no-store"),
        "{what}: Cache-Control {cache:?}"
    );
}

both_backends! {
    async fn a_preflight_from_an_allowed_origin_gets_cors_headers(backend) {
        let app = cors_app(backend).await;
        let response = preflight(&app, ALLOWED).await;
        assert!(response.status().is_success(), "preflight status {}", response.status());
        let headers = response.headers().clone();
        assert_eq!(header(&headers, "access-control-allow-origin"), Some(ALLOWED), "{headers:?}");
        assert_eq!(header(&headers, "access-control-allow-credentials"), Some("true"),
            "{headers:?}");
        let methods = list(&headers, "access-control-allow-methods");
        assert!(methods.iter().any(|m| m == "put"), "{methods:?}");
        let allowed = list(&headers, "access-control-allow-headers");
        for wanted in ["authorization", "x-dreamfactory-session-token"] {
            assert!(allowed.iter().any(|h| h == wanted), "{wanted} not allowed: {allowed:?}");
        }
        assert!(list(&headers, "vary").iter().any(|v| v == "origin"), "no Vary: Origin: {headers:?}");
        // Credentials are never combined with a wildcard: the one allowed origin is the only
        // Access-Control-Allow-Origin sent.
        assert_eq!(headers.get_all("access-control-allow-origin").iter().count(), 1,
            "{headers:?}");
        assert_security_headers("preflight", &headers);
    }

    async fn a_preflight_from_another_origin_gets_no_allow_origin(backend) {
        let app = cors_app(backend).await;
        for origin in [EVIL, "https://app.example.com.evil.example.com", "http://app.example.com",
                       "https://APP.example.com:443", "null"] {
            let response = preflight(&app, origin).await;
            let headers = response.headers().clone();
            assert!(header(&headers, "access-control-allow-origin").is_none(),
                "{origin} was allowed: {headers:?}");
            assert_security_headers("refused preflight", &headers);
        }
        // An ordinary request from another origin is answered (CORS is the browser's to
        // enforce) but carries no permission.
        let response = app.request(Method::GET, "/health/live")
            .header("Origin", EVIL).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(header(response.headers(), "access-control-allow-origin").is_none());
    }

    async fn a_preflight_from_another_origin_gets_no_cors_headers_at_all(backend) {
        // The issue: "A preflight from an allowed origin gets the CORS headers; from another
        // origin it does not", and credentials are allowed only for the configured origins.
        let app = cors_app(backend).await;
        let response = preflight(&app, EVIL).await;
        let headers = response.headers().clone();
        let cors = cors_headers(&headers);
        assert!(cors.is_empty(), "a preflight from {EVIL} got CORS headers {cors:?}: {headers:?}");
        let response = app.request(Method::GET, "/health/live")
            .header("Origin", EVIL).send().await.expect("get");
        let cors = cors_headers(response.headers());
        assert!(cors.is_empty(), "a GET from {EVIL} got CORS headers {cors:?}");
    }

    async fn a_request_from_the_allowed_origin_exposes_the_request_id(backend) {
        let app = cors_app(backend).await;
        app.create_user("jane@example.com", false).await;
        let token = app.login_token("jane@example.com", true).await;
        let response = app.request(Method::GET, SESSION)
            .header("Origin", ALLOWED)
            .bearer_auth(&token)
            .send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(header(headers, "access-control-allow-origin"), Some(ALLOWED));
        assert_eq!(header(headers, "access-control-allow-credentials"), Some("true"));
        let exposed = list(headers, "access-control-expose-headers");
        assert!(exposed.iter().any(|h| h == "x-request-id"), "{exposed:?}");
        // Errors, too, are readable by the allowed frontend (it must see a 401's body).
        let response = app.request(Method::GET, SESSION)
            .header("Origin", ALLOWED)
            .bearer_auth("not.a.token")
            .send().await.expect("get");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(response.headers(), "access-control-allow-origin"), Some(ALLOWED));
    }

    async fn without_allowed_origins_there_are_no_cors_headers(backend) {
        let app = spawn_app(backend).await;
        let response = preflight(&app, ALLOWED).await;
        let headers = response.headers().clone();
        assert!(cors_headers(&headers).is_empty(), "{headers:?}");
        let response = app.request(Method::GET, "/health/live")
            .header("Origin", ALLOWED).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(cors_headers(response.headers()).is_empty(), "{:?}", response.headers());
    }

    async fn every_response_carries_the_security_headers(backend) {
        // With CORS on and the allowed origin sent, so every answer must also stay readable by
        // the frontend (an error it cannot read is as bad as none).
        let app = cors_app(backend).await;
        app.create_user("jane@example.com", false).await;
        let token = app.login_token("jane@example.com", true).await;

        let oversized = "x".repeat(128 * 1024);
        let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode)> = vec![
            ("live", app.request(Method::GET, "/health/live"), StatusCode::OK),
            ("ready", app.request(Method::GET, "/health/ready"), StatusCode::OK),
            ("environment", app.request(Method::GET, "/api/v2/system/environment"), StatusCode::OK),
            ("session", app.request(Method::GET, SESSION).bearer_auth(&token), StatusCode::OK),
            ("no token", app.request(Method::GET, SESSION), StatusCode::UNAUTHORIZED),
            ("bad login", app.request(Method::POST, SESSION)
                .json(&json!({ "email": "jane@example.com", "password": "Wrong-Password-1" })),
                StatusCode::UNAUTHORIZED),
            ("bad JSON", app.request(Method::POST, SESSION)
                .header("Content-Type", "application/json").body("{"), StatusCode::BAD_REQUEST),
            ("unknown route", app.request(Method::GET, "/nowhere"), StatusCode::NOT_FOUND),
            ("not admin", app.request(Method::GET, "/api/v2/system/sessions").bearer_auth(&token),
                StatusCode::UNAUTHORIZED),
            ("jwks", app.request(Method::GET, "/.well-known/jwks.json"), StatusCode::OK),
            ("metrics", app.request(Method::GET, "/metrics"), StatusCode::OK),
            // Errors the framework makes (and the JSON-error layer rewrites).
            ("wrong method", app.request(Method::PATCH, SESSION), StatusCode::METHOD_NOT_ALLOWED),
            ("too large", app.request(Method::POST, SESSION)
                .header("Content-Type", "application/json").body(oversized),
                StatusCode::PAYLOAD_TOO_LARGE),
        ];
        let mut failures = Vec::new();
        for (what, request, expected) in cases {
            let response = request.header("Origin", ALLOWED).send().await.expect(what);
            let status = response.status();
            let headers = response.headers().clone();
            let mut problems = security_header_problems(&headers);
            if status != expected {
                problems.push(format!("status {status}, expected {expected}"));
            }
            if status.is_client_error() {
                // Errors are JSON even when the framework made them.
                let content_type = header(&headers, "content-type").unwrap_or_default();
                if !content_type.starts_with("application/json") {
                    problems.push(format!("Content-Type {content_type:?}"));
                }
            }
            if header(&headers, "access-control-allow-origin") != Some(ALLOWED) {
                problems.push("no Access-Control-Allow-Origin for the allowed origin".to_owned());
            }
            if !problems.is_empty() {
                failures.push(format!("{what} ({status}): {problems:?}\n    {headers:?}"));
            }
        }
        assert!(failures.is_empty(), "responses without the headers:\n{}", failures.join("\n"));
    }

    async fn token_responses_are_never_cached_and_the_jwks_is(backend) {
        let app = spawn_app(backend).await;
        app.create_user("jane@example.com", false).await;
        app.create_user("admin@example.com", true).await;

        let login = app.login("jane@example.com", PASSWORD, true).await;
        assert_eq!(login.status(), StatusCode::OK);
        assert_no_store("login", login.headers());
        let token = login.json::<serde_json::Value>().await.unwrap()["session_token"]
            .as_str().unwrap().to_owned();
        let refresh = app.refresh(&token).await;
        assert_eq!(refresh.status(), StatusCode::OK);
        assert_no_store("refresh", refresh.headers());
        let token = refresh.json::<serde_json::Value>().await.unwrap()["session_token"]
            .as_str().unwrap().to_owned();
        let get = app.get_session(&token).await;
        assert_no_store("session GET", get.headers());
        let admin = app.request(Method::POST, "/api/v2/system/admin/session")
            .json(&json!({ "email": "admin@example.com", "password": PASSWORD }))
            .send().await.expect("admin login");
        assert_eq!(admin.status(), StatusCode::OK);
        assert_no_store("admin login", admin.headers());
        let failed = app.login("jane@example.com", "Wrong-Password-1", true).await;
        assert_no_store("failed login", failed.headers());

        let jwks = app.request(Method::GET, "/.well-known/jwks.json").send().await.expect("jwks");
        let cache = list(jwks.headers(), "cache-control");
        assert!(!cache.iter().any(|v| v == "no-store"), "JWKS not cacheable: {cache:?}");
        assert!(cache.iter().any(|v| v.starts_with("max-age=")), "{cache:?}");
    }

    async fn a_sent_request_id_is_echoed_and_one_is_made_otherwise(backend) {
        let app = spawn_app(backend).await;
        let sent = "req-3f2b9c7e-browser-test";
        for path in ["/health/live", "/nowhere"] {
            let response = app.request(Method::GET, path)
                .header("X-Request-Id", sent).send().await.expect("get");
            assert_eq!(header(response.headers(), "x-request-id"), Some(sent), "{path}");
        }
        let mut seen = Vec::new();
        for path in ["/health/live", "/health/live", "/nowhere"] {
            let response = app.request(Method::GET, path).send().await.expect("get");
            let id = header(response.headers(), "x-request-id")
                .unwrap_or_else(|| panic!("{path}: no generated request id"))
                .to_owned();
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "not a UUID: {id}");
            assert!(!seen.contains(&id), "request id {id} reused");
            seen.push(id);
        }
    }
}
