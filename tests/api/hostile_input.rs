//! Hostile input: forged and malformed tokens on every verb, broken and oversized bodies,
//! injection strings. Always a 4xx in DreamFactory's error shape, never a 500, never a change
//! to what is stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const USER_SESSION: &str = "/api/v2/user/session";
const ADMIN_SESSION: &str = "/api/v2/system/admin/session";
const ENVIRONMENT: &str = "/api/v2/system/environment";
const REGISTER: &str = "/api/v2/user/register";

/// Every endpoint that reads a session token, with each verb it answers.
const TOKEN_CALLS: &[(&str, &str)] = &[
    ("GET", USER_SESSION),
    ("PUT", USER_SESSION),
    ("DELETE", USER_SESSION),
    ("GET", ADMIN_SESSION),
    ("PUT", ADMIN_SESSION),
    ("DELETE", ADMIN_SESSION),
    ("GET", ENVIRONMENT),
];

/// Where a token rides.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    Bearer,
    Header,
    Query,
}

pub const SOURCES: [Source; 3] = [Source::Bearer, Source::Header, Source::Query];

/// A request carrying `token` from `source`.
pub fn with_token(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    source: Source,
) -> RequestBuilder {
    let request = app.request(method, path);
    match source {
        Source::Bearer => request.header(AUTHORIZATION, format!("Bearer {token}")),
        Source::Header => request.header("X-DreamFactory-Session-Token", token),
        Source::Query => request.query(&[("session_token", token)]),
    }
}

/// Everything stored, for before/after comparisons.
async fn snapshot(app: &TestApp) -> Vec<Vec<String>> {
    let mut tables = Vec::new();
    for table in ["users", "sessions", "settings"] {
        tables.push(app.db.dump(table).await);
    }
    tables
}

/// A reading of `response` as a DreamFactory error of any client status (never 2xx, never 5xx).
async fn client_error(response: Response, what: &str) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{what}: status {status}, body is not JSON: {text:?}"));
    assert!(
        status.is_client_error(),
        "{what}: status {status}, body {body}"
    );
    let code = json!(status.as_u16());
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert_eq!(body["error"]["status_code"], code, "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
    assert!(body["error"].get("context").is_some(), "{what}: {body}");
    (status, body)
}

/// A 401 saying the token is invalid (`Invalid token: …`, or `Token refresh failed. …` on a
/// refresh), with reason `invalid_token`.
async fn assert_invalid_token(response: Response, what: &str) {
    let (status, body) = client_error(response, what).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(
        body["error"]["context"]["reason"], "invalid_token",
        "{what}: {body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Invalid token: ") || message.starts_with("Token refresh failed. "),
        "{what}: {body}"
    );
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sign(alg: Algorithm, claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
        .expect("sign")
}

/// Tokens derived from the valid `token` that must all be refused, with a name for each.
/// `secret` is the server's real signing secret.
fn forgeries(token: &str, secret: &[u8]) -> Vec<(String, String)> {
    let parts: Vec<&str> = token.split('.').collect();
    let (header, payload, signature) = (parts[0], parts[1], parts[2]);
    let original = claims(token);
    let mut out = Vec::new();

    // One claim changed, the payload re-encoded, the signature kept.
    let user_id = original["user_id"].as_i64().expect("user_id");
    let changes: Vec<(&str, Value)> = vec![
        (
            "user_id",
            json!({ "user_id": user_id + 1, "sub": (user_id + 1).to_string() }),
        ),
        (
            "gen",
            json!({ "gen": original["gen"].as_i64().expect("gen") + 1 }),
        ),
        (
            "exp",
            json!({ "exp": original["exp"].as_i64().expect("exp") + 10 * 365 * 86_400 }),
        ),
        (
            "forever",
            json!({ "forever": !original["forever"].as_bool().expect("forever") }),
        ),
        ("sid", json!({ "sid": uuid::Uuid::new_v4().to_string() })),
        ("iss", json!({ "iss": "dreamfactory" })),
    ];
    for (name, change) in changes {
        let mut forged = original.clone();
        for (k, v) in change.as_object().expect("object") {
            forged[k] = v.clone();
        }
        let body = b64(&serde_json::to_vec(&forged).expect("json"));
        out.push((
            format!("claim {name} changed"),
            format!("{header}.{body}.{signature}"),
        ));
    }

    // alg: none, with an empty signature and with the original one.
    let none = b64(br#"{"alg":"none","typ":"JWT"}"#);
    out.push(("alg none".into(), format!("{none}.{payload}.")));
    out.push((
        "alg none, signature kept".into(),
        format!("{none}.{payload}.{signature}"),
    ));
    // The right payload, signed with a wrong HS256 secret.
    out.push((
        "wrong HS256 secret".into(),
        sign(
            Algorithm::HS256,
            &original,
            b"not-the-server-secret-not-the-server-secret",
        ),
    ));
    // Other algorithms: the header swapped, and really signed with the server's own secret.
    for alg in ["HS512", "RS256", "ES256", "EdDSA"] {
        let swapped = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        out.push((
            format!("{alg} header"),
            format!("{swapped}.{payload}.{signature}"),
        ));
    }
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        out.push((
            format!("{alg:?} signed with the server secret"),
            sign(alg, &original, secret),
        ));
    }
    // Structure broken.
    out.push(("no signature".into(), format!("{header}.{payload}")));
    out.push((
        "four segments".into(),
        format!("{header}.{payload}.{signature}.{signature}"),
    ));
    out.push((
        "payload not an object".into(),
        format!("{header}.{}.{signature}", b64(b"[1,2,3]")),
    ));
    out.push((
        "payload not base64".into(),
        format!("{header}.!!!!.{signature}"),
    ));
    // Garbage.
    for garbage in ["garbage", "a.b.c", "...", "ключ.токен.подпись", "🔑.🔑.🔑"]
    {
        out.push((format!("garbage {garbage:?}"), garbage.to_owned()));
    }
    // 6 KB: a token shaped like ours with a padded payload.
    let padded = format!("{header}.{payload}{}.{signature}", "A".repeat(6 * 1024));
    out.push(("6 KB token".into(), padded));
    out.push(("6 KB of x".into(), "x".repeat(6 * 1024)));
    out
}

/// An app with a user and an administrator, each logged in once (forever).
async fn app_with_tokens(backend: Backend, config: TestConfig) -> (TestApp, String, String) {
    let app = spawn_app_with(backend, config).await;
    app.create_user("jane@example.com", false).await;
    app.create_user("admin@example.com", true).await;
    let user = app.login_token("jane@example.com", true).await;
    let response = app
        .request(Method::POST, ADMIN_SESSION)
        .json(&json!({ "email": "admin@example.com", "password": PASSWORD, "remember_me": true }))
        .send()
        .await
        .expect("admin login");
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admin = body["session_token"].as_str().expect("token").to_owned();
    (app, user, admin)
}

async fn signing_secret(app: &TestApp) -> Vec<u8> {
    app.db.hmac_key().await
}

/// Sends a JSON-ish raw body to `path`.
async fn post_raw(app: &TestApp, path: &str, body: impl Into<reqwest::Body>) -> Response {
    app.request(Method::POST, path)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request")
}

both_backends! {
    async fn forged_tokens_are_refused_on_every_verb_and_source(backend) {
        let (app, user, admin) = app_with_tokens(backend, TestConfig::new()).await;
        let secret = signing_secret(&app).await;
        let before = snapshot(&app).await;

        for (owner, token) in [("user", &user), ("admin", &admin)] {
            for (name, forged) in forgeries(token, &secret) {
                for (verb, path) in TOKEN_CALLS {
                    let method = Method::from_bytes(verb.as_bytes()).expect("method");
                    for source in SOURCES {
                        let response = with_token(&app, method.clone(), path, &forged, source)
                            .send()
                            .await
                            .expect("request");
                        let what = format!("{owner} token, {name}, {verb} {path} via {source:?}");
                        assert_invalid_token(response, &what).await;
                    }
                }
            }
        }

        assert_eq!(snapshot(&app).await, before, "a forged token changed what is stored");
        // The real tokens are untouched.
        assert_eq!(app.get_session(&user).await.status(), StatusCode::OK);
        assert_eq!(
            app.session_call(Method::GET, ADMIN_SESSION, &admin).await.status(),
            StatusCode::OK
        );
    }

    async fn a_forged_bearer_wins_over_a_valid_token_in_another_source(backend) {
        // The first source present is the one used: a valid token elsewhere does not rescue
        // a forged one (and a forged one never borrows the valid one's identity).
        let (app, user, _) = app_with_tokens(backend, TestConfig::new()).await;
        let response = app
            .request(Method::GET, &format!("{USER_SESSION}?session_token={user}"))
            .header("X-DreamFactory-Session-Token", &user)
            .header(AUTHORIZATION, "Bearer garbage")
            .send()
            .await
            .expect("request");
        assert_invalid_token(response, "forged bearer, valid header and query").await;
    }

    async fn unreadable_token_headers_are_a_401(backend) {
        let (app, user, _) = app_with_tokens(backend, TestConfig::new()).await;
        let before = snapshot(&app).await;
        let invalid_utf8 = HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("header value");
        let latin1 = HeaderValue::from_bytes(b"\xe9t\xe9").expect("header value");
        for (verb, path) in TOKEN_CALLS {
            let method = Method::from_bytes(verb.as_bytes()).expect("method");
            let response = app
                .request(method.clone(), path)
                .header(AUTHORIZATION, invalid_utf8.clone())
                .send()
                .await
                .expect("request");
            let (status, _) = client_error(response, &format!("{verb} {path} bearer")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{verb} {path}");
            let response = app
                .request(method, path)
                .header("X-DreamFactory-Session-Token", latin1.clone())
                .send()
                .await
                .expect("request");
            let (status, _) = client_error(response, &format!("{verb} {path} header")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{verb} {path}");
        }
        // A malformed query string is a 400, not a crash.
        let response = app
            .request(Method::GET, &format!("{USER_SESSION}?session_token=%ff%fe"))
            .send()
            .await
            .expect("request");
        client_error(response, "invalid percent-encoding in the query").await;
        assert_eq!(snapshot(&app).await, before);
        assert_eq!(app.get_session(&user).await.status(), StatusCode::OK);
    }

    async fn broken_bodies_are_a_400_or_422(backend) {
        let config = TestConfig::new().var("DF_ALLOW_OPEN_REGISTRATION", "true");
        let (app, user, _) = app_with_tokens(backend, config).await;
        let before = snapshot(&app).await;

        let deep_arrays = "[".repeat(10_000);
        let deep_objects = r#"{"a":"#.repeat(10_000);
        let deep_closed = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let bodies: Vec<(&str, Vec<u8>)> = vec![
            ("broken syntax", b"{bad".to_vec()),
            ("truncated", br#"{"email": "jane@example.com", "password": "#.to_vec()),
            ("trailing garbage", br#"{"email": "jane@example.com"} x"#.to_vec()),
            ("wrong types", br#"{"email": 5, "password": true}"#.to_vec()),
            ("object as email", br#"{"email": {"$ne": null}, "password": {"$ne": null}}"#.to_vec()),
            ("array as password", br#"{"email": "jane@example.com", "password": ["a", "b"]}"#.to_vec()),
            (
                "remember_me maybe",
                format!(r#"{{"email": "jane@example.com", "password": "{PASSWORD}", "remember_me": "maybe"}}"#).into_bytes(),
            ),
            (
                "remember_me object",
                format!(r#"{{"email": "jane@example.com", "password": "{PASSWORD}", "remember_me": {{}}}}"#).into_bytes(),
            ),
            (
                "duplicate keys",
                format!(r#"{{"email": "jane@example.com", "email": "x@example.com", "password": "{PASSWORD}"}}"#).into_bytes(),
            ),
            ("empty array", b"[]".to_vec()),
            ("array of numbers", b"[1, 2, 3]".to_vec()),
            ("array of objects", br#"[{"email": "jane@example.com"}]"#.to_vec()),
            ("string", br#""jane@example.com""#.to_vec()),
            ("number", b"42".to_vec()),
            ("null", b"null".to_vec()),
            ("true", b"true".to_vec()),
            ("invalid UTF-8", b"{\"email\": \"\xff\xfe\", \"password\": \"x\"}".to_vec()),
            ("lone surrogate", br#"{"email": "\ud800@example.com", "password": "x"}"#.to_vec()),
            ("deeply nested arrays", deep_arrays.into_bytes()),
            ("deeply nested objects", deep_objects.into_bytes()),
            ("deeply nested, balanced", deep_closed.into_bytes()),
        ];
        for path in [USER_SESSION, ADMIN_SESSION, REGISTER] {
            for (name, body) in &bodies {
                let response = post_raw(&app, path, body.clone()).await;
                let what = format!("POST {path} with {name}");
                let (status, _) = client_error(response, &what).await;
                assert!(
                    status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
                    "{what}: {status}"
                );
            }
        }
        // A form body with a bad boolean is refused the same way.
        let response = app
            .request(Method::POST, USER_SESSION)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("email=jane%40example.com&password={PASSWORD}&remember_me=maybe"))
            .send()
            .await
            .expect("request");
        let (status, _) = client_error(response, "form with remember_me=maybe").await;
        assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY);

        assert_eq!(snapshot(&app).await, before, "a broken body changed what is stored");
        assert_eq!(app.get_session(&user).await.status(), StatusCode::OK);
    }

    async fn a_positional_array_is_not_a_login_body(backend) {
        // serde would accept `[email, username, password, remember_me]` as the login struct;
        // an array is not the documented body and must not log anyone in or create anyone.
        let config = TestConfig::new().var("DF_ALLOW_OPEN_REGISTRATION", "true");
        let (app, _, _) = app_with_tokens(backend, config).await;
        let before = snapshot(&app).await;
        let login = json!(["jane@example.com", null, PASSWORD, true]);
        for path in [USER_SESSION, ADMIN_SESSION] {
            let response = post_raw(&app, path, login.to_string()).await;
            let (status, body) = client_error(response, &format!("POST {path} positional")).await;
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
                "{path}: {status} {body}"
            );
        }
        let register = json!(["new@example.com", null, PASSWORD, PASSWORD, "New", "New", "User"]);
        let response = post_raw(&app, REGISTER, register.to_string()).await;
        let (status, body) = client_error(response, "POST register positional").await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{status} {body}"
        );
        assert_eq!(snapshot(&app).await, before);
    }

    async fn oversized_bodies_are_a_413(backend) {
        // Sent over a raw connection: the server answers 413 and closes without reading the
        // whole body, which an HTTP client still busy sending reports as a broken connection.
        let config = TestConfig::new().var("DF_ALLOW_OPEN_REGISTRATION", "true");
        let (app, _, _) = app_with_tokens(backend, config).await;
        let before = snapshot(&app).await;
        let padding = "x".repeat(1024 * 1024);
        let body = json!({ "email": "big@example.com", "password": PASSWORD, "name": padding })
            .to_string();
        for path in [USER_SESSION, ADMIN_SESSION, REGISTER] {
            for framing in [Framing::Length, Framing::Chunked] {
                let (status, text) = raw_post(&app, path, &body, framing).await;
                let what = format!("POST {path}, 1 MiB, {framing:?}");
                assert_eq!(status, 413, "{what}: {text}");
                let error: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{what}: not JSON: {text:?}"));
                assert_eq!(error["error"]["code"], 413, "{what}");
                assert_eq!(error["error"]["status_code"], 413, "{what}");
                assert_eq!(error["error"]["message"], "The request body is too large.", "{what}");
            }
        }
        assert_eq!(snapshot(&app).await, before);
    }

    async fn unknown_routes_and_methods_are_json(backend) {
        let app = spawn_app(backend).await;
        for path in ["/", "/api/v2/nope", "/api/v2/user/session/extra", "/api/v2/user/sessionz",
                     "/api/v2/../../etc/passwd", "/api/v2/user/%00"] {
            let response = app.request(Method::GET, path).send().await.expect("request");
            let (message, _) = assert_error(response, StatusCode::NOT_FOUND).await;
            assert_eq!(message, "Resource not found.", "{path}");
        }
        for (verb, path) in [("PATCH", USER_SESSION), ("PATCH", ADMIN_SESSION),
                             ("POST", ENVIRONMENT), ("GET", REGISTER), ("OPTIONS", USER_SESSION)] {
            let method = Method::from_bytes(verb.as_bytes()).expect("method");
            let response = app.request(method, path).send().await.expect("request");
            assert!(response.headers().get("allow").is_some(), "{verb} {path}: no Allow header");
            let (message, _) = assert_error(response, StatusCode::METHOD_NOT_ALLOWED).await;
            assert_eq!(message, "This method is not supported on this resource.", "{verb} {path}");
        }
    }

    async fn injection_strings_are_just_wrong_credentials(backend) {
        // Dozens of failed logins: keep the throttle out of the way of what is tested here.
        let config = TestConfig::new()
            .var("LOGIN_MAX_FAILURES", "100000")
            .var("LOGIN_MAX_FAILURES_PER_IP", "100000");
        let (app, user, _) = app_with_tokens(backend, config).await;
        let before = snapshot(&app).await;
        let injections = [
            "' OR '1'='1",
            "\"; DROP TABLE users; --",
            "jane@example.com' --",
            "jane@example.com'; DELETE FROM sessions; --",
            "' UNION SELECT * FROM settings --",
            "%",
            "_%@example.com",
        ];
        for injection in injections {
            for path in [USER_SESSION, ADMIN_SESSION] {
                for (email, password) in [(injection, PASSWORD), ("jane@example.com", injection),
                                          ("admin@example.com", injection), (injection, injection)] {
                    let response = app.request(Method::POST, path)
                        .json(&json!({ "email": email, "password": password, "remember_me": true }))
                        .send().await.expect("request");
                    let what = format!("POST {path} email {email:?} password {password:?}");
                    let (status, body) = client_error(response, &what).await;
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
                    assert_eq!(body["error"]["message"], "Invalid credentials supplied.", "{what}");
                }
            }
        }
        // A very long identifier is just as wrong, and is not sent to the database.
        let long = format!("{}@example.com", "a".repeat(10_000));
        let response = app.login(&long, PASSWORD, false).await;
        let (status, _) = client_error(response, "long email").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        assert_eq!(snapshot(&app).await, before, "a failed login changed what is stored");
        assert_eq!(app.get_session(&user).await.status(), StatusCode::OK);
    }

    async fn nul_bytes_are_refused_not_a_500(backend) {
        // PostgreSQL text cannot hold U+0000: it must be turned away before the database.
        let config = TestConfig::new().var("DF_ALLOW_OPEN_REGISTRATION", "true");
        let (app, user, _) = app_with_tokens(backend, config).await;
        let before = snapshot(&app).await;
        for email in ["jane@example.com\u{0}", "\u{0}", "ja\u{0}ne@example.com"] {
            for path in [USER_SESSION, ADMIN_SESSION] {
                let response = app.request(Method::POST, path)
                    .json(&json!({ "email": email, "password": PASSWORD }))
                    .send().await.expect("request");
                let what = format!("POST {path} email {email:?}");
                let (status, body) = client_error(response, &what).await;
                assert!(
                    status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST,
                    "{what}: {body}"
                );
            }
        }
        assert_eq!(snapshot(&app).await, before, "a refused login changed what is stored");

        // In registration a NUL is refused (400), or else stored faithfully: never a 500.
        for (i, (field, value)) in [("email", "nul\u{0}@example.com"), ("name", "Nul\u{0}Name"),
                                    ("first_name", "Nul\u{0}"), ("last_name", "\u{0}"),
                                    ("username", "nul\u{0}user"), ("password", "password\u{0}nul")]
            .into_iter()
            .enumerate()
        {
            let email = format!("nul{i}@example.com");
            let mut body = json!({ "email": email, "password": PASSWORD });
            body[field] = json!(value);
            let response = app.request(Method::POST, REGISTER).json(&body).send().await.expect("request");
            let status = response.status();
            let text = response.text().await.expect("body");
            let what = format!("register with a NUL in {field}");
            assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST, "{what}: {status} {text}");
            if status == StatusCode::OK {
                let email = body["email"].as_str().expect("email").to_owned();
                let password = body["password"].as_str().expect("password").to_owned();
                let response = app.login(&email, &password, false).await;
                let (status, answer) = status_json(response).await;
                assert_eq!(status, StatusCode::OK, "{what}: accepted but cannot log in: {answer}");
                if field != "password" && field != "username" {
                    assert_eq!(answer[field], json!(value.trim()), "{what}: stored differently");
                }
            }
        }
        assert_eq!(app.get_session(&user).await.status(), StatusCode::OK);
    }

    async fn remember_me_is_read_loosely_but_false_means_false(backend) {
        let app = spawn_app(backend).await;
        app.create_user("jane@example.com", false).await;
        for (remember_me, forever) in [
            (json!("false"), false),
            (json!("0"), false),
            (json!("no"), false),
            (json!(""), false),
            (json!(0), false),
            (json!(false), false),
            (Value::Null, false),
            (json!("true"), true),
            (json!("TRUE"), true),
            (json!("1"), true),
            (json!(1), true),
            (json!(true), true),
        ] {
            let response = app.request(Method::POST, USER_SESSION)
                .json(&json!({ "email": "jane@example.com", "password": PASSWORD, "remember_me": remember_me }))
                .send().await.expect("request");
            let (status, body) = status_json(response).await;
            assert_eq!(status, StatusCode::OK, "remember_me {remember_me}: {body}");
            let token = body["session_token"].as_str().expect("token");
            assert_eq!(claims(token)["forever"], json!(forever), "remember_me {remember_me}");
        }
        // Absent is false too, and so is the form string "false".
        let response = app.request(Method::POST, USER_SESSION)
            .json(&json!({ "email": "jane@example.com", "password": PASSWORD }))
            .send().await.expect("request");
        let (_, body) = status_json(response).await;
        assert_eq!(claims(body["session_token"].as_str().expect("token"))["forever"], json!(false));
        let response = app.request(Method::POST, USER_SESSION)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("email=jane%40example.com&password={PASSWORD}&remember_me=false"))
            .send().await.expect("request");
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(claims(body["session_token"].as_str().expect("token"))["forever"], json!(false));
    }
}

/// How a raw request body is framed.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// `Content-Length`: the server can refuse before reading anything.
    Length,
    /// `Transfer-Encoding: chunked` in 64 KiB chunks: the server must count as it reads.
    Chunked,
}

/// POSTs `body` over a raw connection, writing while reading (the server may answer and stop
/// reading early); answers the status and the (de-chunked) response body.
async fn raw_post(app: &TestApp, path: &str, body: &str, framing: Framing) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let framing_header = match framing {
        Framing::Length => format!("Content-Length: {}", body.len()),
        Framing::Chunked => "Transfer-Encoding: chunked".to_owned(),
    };
    let mut wire = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         {framing_header}\r\nConnection: close\r\n\r\n",
        app.addr
    )
    .into_bytes();
    match framing {
        Framing::Length => wire.extend_from_slice(body.as_bytes()),
        Framing::Chunked => {
            for chunk in body.as_bytes().chunks(64 * 1024) {
                wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        }
    }
    let write = tokio::spawn(async move {
        writer.write_all(&wire).await?;
        writer.flush().await
    });
    let mut raw = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        reader.read_to_end(&mut raw),
    )
    .await
    .expect("a response within 30 s");
    write.abort();
    if let Err(e) = read {
        assert!(
            !raw.is_empty(),
            "no response before the connection failed: {e}"
        );
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        // One data chunk is enough for an error body.
        rest.split("\r\n").nth(1).unwrap_or_default()
    } else {
        rest
    };
    (status, body.to_owned())
}
