//! Hostile input: forged and malformed tokens on every verb, algorithm confusion on an EdDSA
//! deployment, broken and oversized bodies, injection strings, and emails spelt with Unicode
//! look-alikes, compatibility forms and invisible characters. Always a 4xx in DreamFactory's
//! error shape, never a 500, never a change to what is stored beyond what a successful login or
//! registration legitimately adds.

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
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
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
    // Other algorithms: the header swapped, and really signed with the server's own secret,
    // both without a kid and naming the real key's kid (so the key is found and only the
    // algorithm is wrong).
    let kid = jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid");
    for alg in ["HS512", "RS256", "ES256", "EdDSA"] {
        let swapped = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        out.push((
            format!("{alg} header"),
            format!("{swapped}.{payload}.{signature}"),
        ));
        let swapped = b64(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#).as_bytes());
        out.push((
            format!("{alg} header with the real kid"),
            format!("{swapped}.{payload}.{signature}"),
        ));
    }
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        out.push((
            format!("{alg:?} signed with the server secret"),
            sign(alg, &original, secret),
        ));
        let mut header = Header::new(alg);
        header.kid = Some(kid.clone());
        out.push((
            format!("{alg:?} signed with the server secret, naming the real kid"),
            jsonwebtoken::encode(
                &header,
                &original,
                &EncodingKey::from_secret(secret).unwrap(),
            )
            .expect("sign"),
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

/// Every forgery `forge` derives from the user's and the admin's token is refused on every
/// token-taking call and through every token source; nothing stored changes, and the real
/// tokens still work afterwards.
async fn assert_all_refused(
    app: &TestApp,
    user: &str,
    admin: &str,
    forge: impl Fn(&str) -> Vec<(String, String)>,
) {
    let before = snapshot(app).await;
    for (owner, token) in [("user", user), ("admin", admin)] {
        for (name, forged) in forge(token) {
            for (verb, path) in TOKEN_CALLS {
                let method = Method::from_bytes(verb.as_bytes()).expect("method");
                for source in SOURCES {
                    let response = with_token(app, method.clone(), path, &forged, source)
                        .send()
                        .await
                        .expect("request");
                    let what = format!("{owner} token, {name}, {verb} {path} via {source:?}");
                    assert_invalid_token(response, &what).await;
                }
            }
        }
    }
    assert_eq!(
        snapshot(app).await,
        before,
        "a forged token changed what is stored"
    );
    // The real tokens are untouched.
    assert_eq!(app.get_session(user).await.status(), StatusCode::OK);
    assert_eq!(
        app.session_call(Method::GET, ADMIN_SESSION, admin)
            .await
            .status(),
        StatusCode::OK
    );
}

both_backends! {
    async fn forged_tokens_are_refused_on_every_verb_and_source(backend) {
        let (app, user, admin) = app_with_tokens(backend, TestConfig::new()).await;
        let secret = signing_secret(&app).await;
        assert_all_refused(&app, &user, &admin, |token| forgeries(token, &secret)).await;
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

// ---------------------------------------------------------------------------------------------
// Unicode in emails. Emails are stored and compared in one folded form (NFKC, trimmed,
// lower-cased), so other spellings of an address are that address; look-alikes from other
// scripts are other addresses; invisible and control characters are refused at registration
// and are simply wrong credentials at login. See "Email addresses" in the README.

const JANE: &str = "jane@example.com";
const JANE_ACUTE: &str = "jan\u{e9}@example.com";
const KATE: &str = "kate@example.com";
const JILL: &str = "jill@example.com";
const ADMIN: &str = "admin@example.com";
/// The password of whoever registers a look-alike (every created user has `PASSWORD`).
const OTHER_PASSWORD: &str = "look-alike-password-42";

const TAKEN: &str = "The email has already been taken.";
const INVALID: &str = "The email must be a valid email address.";
const FORBIDDEN: &str =
    "The email may not contain invisible, control, private-use or unassigned characters.";
const FORBIDDEN_USERNAME: &str =
    "The username may not contain invisible, control, private-use or unassigned characters.";

/// Other spellings of a stored address, and that address: they fold to it and log into it.
const SAME_ADDRESS: &[(&str, &str, &str)] = &[
    ("fullwidth local part", "ｊａｎｅ@example.com", JANE),
    (
        "fullwidth everything",
        "ＪＡＮＥ＠ＥＸＡＭＰＬＥ．ＣＯＭ",
        JANE,
    ),
    ("mathematical bold", "𝐣𝐚𝐧𝐞@example.com", JANE),
    (
        "ideographic spaces around",
        "\u{3000}jane@example.com\u{3000}",
        JANE,
    ),
    ("Kelvin sign", "\u{212a}ATE@example.com", KATE),
    (
        "e and a combining acute",
        "jane\u{301}@example.com",
        JANE_ACUTE,
    ),
    ("precomposed capital É", "JAN\u{c9}@EXAMPLE.COM", JANE_ACUTE),
];

/// Genuinely different addresses that look like a stored one, and the form each is stored in.
const LOOK_ALIKES: &[(&str, &str, &str)] = &[
    (
        "Cyrillic а",
        "j\u{430}ne@example.com",
        "j\u{430}ne@example.com",
    ),
    (
        "Cyrillic А and Е",
        "J\u{410}N\u{415}@example.com",
        "j\u{430}n\u{435}@example.com",
    ),
    (
        "Cyrillic е in the domain",
        "jane@\u{435}xample.com",
        "jane@\u{435}xample.com",
    ),
    (
        "Greek ο in the domain",
        "jane@example.c\u{3bf}m",
        "jane@example.c\u{3bf}m",
    ),
    (
        "Cyrillic і",
        "j\u{456}ll@example.com",
        "j\u{456}ll@example.com",
    ),
    (
        "dotless ı",
        "j\u{131}ll@example.com",
        "j\u{131}ll@example.com",
    ),
    (
        "dotted İ",
        "J\u{130}LL@example.com",
        "ji\u{307}ll@example.com",
    ),
];

/// Look-alikes of the administrator.
const ADMIN_LOOK_ALIKES: &[(&str, &str)] = &[
    ("Cyrillic а", "\u{430}dmin@example.com"),
    ("dotless ı", "adm\u{131}n@example.com"),
    ("zero-width space", "admin\u{200b}@example.com"),
    ("right-to-left override", "\u{202e}nimda@example.com"),
];

/// Addresses holding a character registration refuses; each displays as, or nearly as,
/// jane@example.com.
const INVISIBLE: &[(&str, &str)] = &[
    ("zero-width space", "ja\u{200b}ne@example.com"),
    ("zero-width non-joiner", "ja\u{200c}ne@example.com"),
    ("zero-width joiner", "jane\u{200d}@example.com"),
    ("word joiner", "ja\u{2060}ne@example.com"),
    ("byte-order mark in front", "\u{feff}jane@example.com"),
    ("byte-order mark at the end", "jane@example.com\u{feff}"),
    ("soft hyphen", "ja\u{ad}ne@example.com"),
    ("left-to-right mark", "jane\u{200e}@example.com"),
    (
        "right-to-left override in the domain",
        "jane@\u{202e}moc.elpmaxe",
    ),
    (
        "right-to-left override in the local part",
        "\u{202e}enaj@example.com",
    ),
    ("pop directional formatting", "jane\u{202c}@example.com"),
    ("tag characters", "jane\u{e0041}\u{e007f}@example.com"),
    ("bell", "ja\u{7}ne@example.com"),
    ("escape sequence", "jane\u{1b}[8m@example.com"),
    ("private use", "jane\u{e000}@example.com"),
    ("unassigned", "jane\u{50000}@example.com"),
];

/// Not addresses, though they name jane's domain.
const MALFORMED: &[(&str, &str)] = &[
    ("trailing dot in the domain", "jane@example.com."),
    ("leading dot in the domain", "jane@.example.com"),
    ("empty domain label", "jane@example..com"),
];

/// POSTs a login to `path`; answers (status, body).
async fn login_at(app: &TestApp, path: &str, email: &str, password: &str) -> (StatusCode, Value) {
    let response = app
        .request(Method::POST, path)
        .json(&json!({ "email": email, "password": password, "remember_me": true }))
        .send()
        .await
        .expect("login");
    status_json(response).await
}

/// Logs in at `path` and answers the user id; panics unless 200.
async fn login_id(app: &TestApp, path: &str, email: &str, password: &str) -> i64 {
    let (status, body) = login_at(app, path, email, password).await;
    assert_eq!(status, StatusCode::OK, "{path} {email:?}: {body}");
    body["id"].as_i64().expect("id")
}

/// POSTs a registration (`?login=true` when `login`); answers (status, body).
async fn register(app: &TestApp, body: Value, login: bool) -> (StatusCode, Value) {
    let path = if login {
        "/api/v2/user/register?login=true"
    } else {
        REGISTER
    };
    let response = app
        .request(Method::POST, path)
        .json(&body)
        .send()
        .await
        .expect("register");
    status_json(response).await
}

/// Asserts a 400 whose first message for `field` is `message`.
fn assert_refused(status: StatusCode, body: &Value, field: &str, message: &str, what: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(
        body["error"]["context"][field][0], message,
        "{what}: {body}"
    );
}

/// Rows of `before` missing from `after` (rows changed or deleted), and rows of `after` that
/// are new.
fn row_changes(before: &[String], after: &[String]) -> (Vec<String>, Vec<String>) {
    let gone = before
        .iter()
        .filter(|r| !after.contains(r))
        .cloned()
        .collect();
    let new = after
        .iter()
        .filter(|r| !before.contains(r))
        .cloned()
        .collect();
    (gone, new)
}

/// `tenure` with `args` on `app`'s database, `stdin` on standard input.
fn tenure_cli(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.db.url)
        .env("LOG_FORMAT", "json")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tenure");
    writeln!(child.stdin.take().expect("stdin"), "{stdin}").expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// The session ids `GET /api/v2/system/sessions?email=` lists, sorted.
async fn sessions_of(app: &TestApp, admin: &str, email: &str) -> Vec<String> {
    let response = app
        .request(Method::GET, "/api/v2/system/sessions")
        .bearer_auth(admin)
        .query(&[("email", email)])
        .send()
        .await
        .expect("list");
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "email {email:?}: {body}");
    let mut ids: Vec<String> = body["resource"]
        .as_array()
        .expect("resource")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

fn sid(token: &str) -> String {
    claims(token)["sid"].as_str().expect("sid").to_owned()
}

both_backends! {
    async fn look_alike_and_invisible_emails_never_log_into_anyone(backend) {
        let config = TestConfig::new()
            .var("LOGIN_MAX_FAILURES", "100000")
            .var("LOGIN_MAX_FAILURES_PER_IP", "100000");
        let app = spawn_app_with(backend, config).await;
        for (email, admin) in [(JANE, false), (JANE_ACUTE, false), (KATE, false), (JILL, false),
                               (ADMIN, true)] {
            app.create_user(email, admin).await;
        }
        let mut ids = std::collections::HashMap::new();
        for email in [JANE, JANE_ACUTE, KATE, JILL] {
            ids.insert(email, login_id(&app, USER_SESSION, email, PASSWORD).await);
        }
        let admin_id = login_id(&app, ADMIN_SESSION, ADMIN, PASSWORD).await;
        // What a wrong password gets, at each endpoint: every refusal below must be identical,
        // so a refused email tells nothing about which accounts exist.
        let mut wrong_password = std::collections::HashMap::new();
        for path in [USER_SESSION, ADMIN_SESSION] {
            let email = if path == USER_SESSION { JANE } else { ADMIN };
            let (status, body) = login_at(&app, path, email, "not-the-password").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["error"]["message"], "Invalid credentials supplied.", "{body}");
            wrong_password.insert(path, body);
        }

        // Look-alikes, invisible characters and malformed addresses, with the password every
        // stored user has: the wrong-password answer, and nothing stored changes.
        let before = snapshot(&app).await;
        let refused = LOOK_ALIKES.iter().map(|(name, email, _)| (*name, *email))
            .chain(ADMIN_LOOK_ALIKES.iter().map(|(name, email)| (*name, *email)))
            .chain(INVISIBLE.iter().copied())
            .chain(MALFORMED.iter().copied());
        for (name, email) in refused {
            for path in [USER_SESSION, ADMIN_SESSION] {
                let (status, body) = login_at(&app, path, email, PASSWORD).await;
                let what = format!("POST {path}, {name} {email:?}");
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
                assert_eq!(body, wrong_password[path], "{what}: not the wrong-password answer");
            }
        }
        assert_eq!(snapshot(&app).await, before, "a refused login changed what is stored");

        // Other spellings of a stored address are that address: they log into it, and only
        // with its password.
        for (name, email, canonical) in SAME_ADDRESS {
            let (status, body) = login_at(&app, USER_SESSION, email, PASSWORD).await;
            assert_eq!(status, StatusCode::OK, "{name} {email:?}: {body}");
            assert_eq!(body["id"], json!(ids[canonical]), "{name} {email:?}: {body}");
            assert_eq!(body["email"], *canonical, "{name} {email:?}: {body}");
            let (status, body) = login_at(&app, USER_SESSION, email, "not-the-password").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} {email:?}: {body}");
            assert_eq!(body, wrong_password[USER_SESSION], "{name} {email:?}");
        }
        for email in ["ａｄｍｉｎ@example.com", "ADMIN＠EXAMPLE.COM"] {
            let (status, body) = login_at(&app, ADMIN_SESSION, email, PASSWORD).await;
            assert_eq!(status, StatusCode::OK, "{email:?}: {body}");
            assert_eq!(body["id"], json!(admin_id), "{email:?}: {body}");
            assert_eq!(body["is_sys_admin"], true, "{email:?}: {body}");
        }
        // Logging in added sessions and login dates; no user was added, removed or renamed.
        let users = app.db.dump("users").await;
        assert_eq!(users.len(), before[0].len(), "{users:?}");
        for (_, email, canonical) in SAME_ADDRESS {
            assert!(users.iter().any(|row| row.contains(canonical)), "{canonical} gone: {users:?}");
            if !email.trim().is_ascii() {
                assert!(!users.iter().any(|row| row.contains(email)), "{email:?} stored: {users:?}");
            }
        }
        let (gone, _) = row_changes(&before[1], &app.db.dump("sessions").await);
        assert!(gone.is_empty(), "a login changed another session: {gone:?}");
        assert_eq!(app.db.dump("settings").await, before[2]);
    }

    async fn registration_folds_other_spellings_and_refuses_invisible_characters(backend) {
        let config = TestConfig::new()
            .var("DF_ALLOW_OPEN_REGISTRATION", "true")
            .var("LOGIN_MAX_FAILURES", "100000")
            .var("LOGIN_MAX_FAILURES_PER_IP", "100000");
        let app = spawn_app_with(backend, config).await;
        for email in [JANE, JANE_ACUTE, KATE, JILL] {
            app.create_user(email, false).await;
        }
        let jane_id = login_id(&app, USER_SESSION, JANE, PASSWORD).await;
        let (_, wrong_password) = login_at(&app, USER_SESSION, JANE, "not-the-password").await;
        let before = snapshot(&app).await;

        // Other spellings of a stored address are taken; invisible and control characters are
        // refused by name; malformed domains are not addresses. With or without ?login=true.
        for login in [false, true] {
            for (name, email, _) in SAME_ADDRESS {
                let (status, body) =
                    register(&app, json!({ "email": email, "password": OTHER_PASSWORD }), login).await;
                assert_refused(status, &body, "email", TAKEN, &format!("{name} {email:?}"));
            }
            for (name, email) in INVISIBLE {
                let (status, body) =
                    register(&app, json!({ "email": email, "password": OTHER_PASSWORD }), login).await;
                assert_refused(status, &body, "email", FORBIDDEN, &format!("{name} {email:?}"));
                // The same characters in a username are refused the same way.
                let (status, body) = register(&app, json!({
                    "email": "fresh@example.com", "username": email, "password": OTHER_PASSWORD,
                }), login).await;
                assert_refused(status, &body, "username", FORBIDDEN_USERNAME,
                               &format!("username, {name} {email:?}"));
            }
            for (name, email) in MALFORMED {
                let (status, body) =
                    register(&app, json!({ "email": email, "password": OTHER_PASSWORD }), login).await;
                assert_refused(status, &body, "email", INVALID, &format!("{name} {email:?}"));
            }
        }
        assert_eq!(snapshot(&app).await, before, "a refused registration changed what is stored");

        // Look-alikes are other addresses: each registers a new user, stored in its folded
        // form, and touches no one else's row or session.
        let mut registered = Vec::new();
        for (name, email, stored) in LOOK_ALIKES {
            let (status, body) =
                register(&app, json!({ "email": email, "password": OTHER_PASSWORD }), true).await;
            assert_eq!(status, StatusCode::OK, "{name} {email:?}: {body}");
            let token = body["session_token"].as_str().expect("token").to_owned();
            let (status, me) = status_json(app.get_session(&token).await).await;
            assert_eq!(status, StatusCode::OK, "{name}: {me}");
            assert_eq!(me["email"], *stored, "{name} {email:?}: {me}");
            assert_ne!(me["id"], json!(jane_id), "{name}: registered as jane");
            registered.push((name, email, me["id"].as_i64().expect("id")));
        }
        let after = snapshot(&app).await;
        for (table, (old, new)) in ["users", "sessions"].iter().zip(before.iter().zip(&after)) {
            let (gone, added) = row_changes(old, new);
            assert!(gone.is_empty(), "registration changed {table} rows: {gone:?}");
            assert_eq!(added.len(), LOOK_ALIKES.len(), "{table}: {added:?}");
        }
        assert_eq!(after[2], before[2], "registration changed the settings");

        // jane's password does not open a look-alike (the wrong-password answer); its own
        // does, and jane is still jane.
        for (name, email, id) in &registered {
            let (status, body) = login_at(&app, USER_SESSION, email, PASSWORD).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
            assert_eq!(body, wrong_password, "{name}");
            assert_eq!(login_id(&app, USER_SESSION, email, OTHER_PASSWORD).await, *id, "{name}");
        }
        assert_eq!(login_id(&app, USER_SESSION, JANE, PASSWORD).await, jane_id);
        let (status, _) = login_at(&app, USER_SESSION, JANE, OTHER_PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    async fn unicode_spellings_of_one_login_count_as_one_account(backend) {
        // The login throttle's account key is the folded email: other spellings cannot dodge
        // it, and look-alikes do not lock the real account.
        let app = spawn_app_with(backend, TestConfig::new().var("LOGIN_MAX_FAILURES", "10")).await;
        app.create_user(KATE, false).await;
        app.create_user(JANE, false).await;
        for email in ["\u{212a}ATE@example.com", "ｋａｔｅ@example.com", "KATE＠example.com",
                      "\u{3000}kate@example.com", "kate@example.com"] {
            for _ in 0..2 {
                let (status, body) = login_at(&app, USER_SESSION, email, "not-the-password").await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{email:?}: {body}");
            }
        }
        let (status, body) = login_at(&app, USER_SESSION, KATE, PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        for email in ["j\u{430}ne@example.com", "ja\u{200b}ne@example.com"] {
            for _ in 0..6 {
                login_at(&app, USER_SESSION, email, "not-the-password").await;
            }
        }
        login_id(&app, USER_SESSION, JANE, PASSWORD).await;
    }

    async fn the_admin_filter_and_the_cli_fold_emails_as_login_does(backend) {
        let (app, user, admin) = app_with_tokens(backend, TestConfig::new()).await;
        let cyrillic = LOOK_ALIKES[0].2;
        app.create_user(cyrillic, false).await;
        let look_alike = app.login_token(cyrillic, true).await;
        let jane_sessions = sessions_of(&app, &admin, JANE).await;
        assert_eq!(jane_sessions, vec![sid(&user)]);
        let before = snapshot(&app).await;

        for (name, email, canonical) in SAME_ADDRESS {
            if *canonical == JANE {
                assert_eq!(sessions_of(&app, &admin, email).await, jane_sessions, "{name}");
            }
        }
        assert_eq!(sessions_of(&app, &admin, cyrillic).await, vec![sid(&look_alike)]);
        let nobody = LOOK_ALIKES[1..].iter().map(|(name, email, _)| (*name, *email))
            .chain(INVISIBLE.iter().copied())
            .chain(MALFORMED.iter().copied());
        for (name, email) in nobody {
            assert!(sessions_of(&app, &admin, email).await.is_empty(), "{name} {email:?}");
        }
        assert_eq!(snapshot(&app).await, before, "a listing changed what is stored");

        // `tenure user create` folds and refuses exactly as registration does.
        for (email, message) in [
            ("ＪＡＮＥ@example.com", TAKEN),
            ("ja\u{200b}ne@example.com", FORBIDDEN),
            ("jane@example.com\u{202e}", FORBIDDEN),
            ("jane@example.com.", INVALID),
        ] {
            let output = tenure_cli(&app, &["user", "create", "--email", email, "--password-stdin"],
                                    OTHER_PASSWORD);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{email:?} was created");
            assert!(stderr.contains(&format!("email: {message}")), "{email:?}: {stderr}");
        }
        assert_eq!(snapshot(&app).await, before, "a refused user create changed what is stored");
        let output = tenure_cli(&app, &["user", "create", "--email", "\u{212a}ATE@example.com",
                                        "--password-stdin"], OTHER_PASSWORD);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains(&format!("<{KATE}>")), "{stdout}");
        let (gone, added) = row_changes(&before[0], &app.db.dump("users").await);
        assert!(gone.is_empty(), "{gone:?}");
        assert_eq!(added.len(), 1, "{added:?}");
        login_id(&app, USER_SESSION, KATE, OTHER_PASSWORD).await;

        // `tenure session list --email` finds jane by another spelling, and not the look-alike.
        let output = tenure_cli(&app, &["session", "list", "--email", "ＪＡＮＥ@example.com"], "");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let listed = String::from_utf8_lossy(&output.stdout);
        assert!(listed.contains(&sid(&user)), "{listed}");
        assert!(!listed.contains(&sid(&look_alike)), "{listed}");
    }
}

// ---------------------------------------------------------------------------------------------
// Algorithm confusion on an EdDSA deployment

/// An HS256 signature over `header` and `claims` keyed with `secret`, whatever `header` says.
fn hmac_token(header: &Value, claims: &Value, secret: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("hmac key");
    mac.update(signing_input.as_bytes());
    let signature = mac.finalize().into_bytes();
    format!("{signing_input}.{}", b64(signature.as_slice()))
}

/// The decoded JOSE header of a token.
fn jose_header(token: &str) -> Value {
    let first = token.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first).expect("base64")).expect("json")
}

/// Tokens carrying `token`'s claims that an EdDSA verifier must refuse, built from nothing but
/// the published JWKS: HS256 keyed with every encoding of each public key (the classic RS/HS
/// confusion), with and without the key's `kid`, and `alg: none` in several spellings.
fn public_key_forgeries(token: &str, jwks: &Value) -> Vec<(String, String)> {
    use base64::engine::general_purpose::STANDARD;
    let claims = claims(token);
    let mut out = Vec::new();
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(!keys.is_empty(), "{jwks}");
    for key in keys {
        let kid = key["kid"].as_str().expect("kid");
        let x = key["x"].as_str().expect("x");
        let raw = URL_SAFE_NO_PAD.decode(x).expect("x is base64url");
        // SubjectPublicKeyInfo for Ed25519 (RFC 8410), as DER and as PEM.
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(&raw);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&spki)
        );
        let materials: Vec<(&str, Vec<u8>)> = vec![
            ("the raw public key", raw.clone()),
            ("x as published", x.as_bytes().to_vec()),
            ("x in standard base64", STANDARD.encode(&raw).into_bytes()),
            ("the SPKI DER", spki),
            ("the PEM", pem.clone().into_bytes()),
            ("the PEM, trimmed", pem.trim().as_bytes().to_vec()),
            ("the JWK", key.to_string().into_bytes()),
            ("the JWKS", jwks.to_string().into_bytes()),
        ];
        for (name, material) in materials {
            for header in [
                json!({ "alg": "HS256", "typ": "JWT", "kid": kid }),
                json!({ "alg": "HS256", "typ": "JWT" }),
            ] {
                let with_kid = if header.get("kid").is_some() {
                    "with"
                } else {
                    "without"
                };
                out.push((
                    format!("HS256 keyed with {name} of {kid}, {with_kid} kid"),
                    hmac_token(&header, &claims, &material),
                ));
            }
        }
    }
    let real = token.split('.').collect::<Vec<_>>();
    let kid = jose_header(token)["kid"].clone();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for header in [
            json!({ "alg": alg, "typ": "JWT", "kid": kid }),
            json!({ "alg": alg }),
        ] {
            let encoded = b64(header.to_string().as_bytes());
            out.push((
                format!("alg {header}, no signature"),
                format!("{encoded}.{}.", real[1]),
            ));
            out.push((
                format!("alg {header}, the real signature kept"),
                format!("{encoded}.{}.{}", real[1], real[2]),
            ));
        }
    }
    out
}

both_backends! {
    async fn an_eddsa_deployment_refuses_hs256_keyed_with_its_public_key_and_alg_none(backend) {
        let config = TestConfig::new().var("JWT_ALGORITHM", "EdDSA");
        let (app, user, admin) = app_with_tokens(backend, config).await;
        assert_eq!(jose_header(&user)["alg"], "EdDSA", "{}", jose_header(&user));
        // All an attacker has: the published keys.
        let (status, jwks) = status_json(app.request(Method::GET, "/.well-known/jwks.json")
            .send().await.expect("jwks")).await;
        assert_eq!(status, StatusCode::OK, "{jwks}");
        assert_all_refused(&app, &user, &admin, |token| public_key_forgeries(token, &jwks)).await;
    }
}
