//! Operating the real binary: one JSON log line per request (request id, route, status,
//! latency), the environment an administrator sees (effective settings, never a secret),
//! `tenure config check`, and a graceful stop under load.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::helpers::*;

const START: Duration = Duration::from_secs(30);
const JWT_SECRET: &str = "ops-test-jwt-secret-0123456789-abcdefghij";
const DB_PASSWORD: &str = "Ops-Db-Password-4711";
const ADMIN: &str = "ops.admin@example.com";
const USER: &str = "ops.user@example.com";

/// `tenure user create` (optionally `--admin`), the password on standard input.
fn cli_create_user(database_url: &str, email: &str, admin: bool) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenure"));
    command
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("LOG_FORMAT", "json")
        .args(["user", "create", "--email", email, "--password-stdin"]);
    if admin {
        command.arg("--admin");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tenure user create");
    writeln!(child.stdin.take().expect("stdin"), "{PASSWORD}").expect("write password");
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "user create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `url` with `password` in its userinfo when it is a PostgreSQL URL without one (the test
/// clusters trust every connection, so any password works; the point is to see it masked).
/// Answers the URL and the password it carries, if any.
fn with_password(url: &str, password: &str) -> (String, Option<String>) {
    let Some(rest) = url.strip_prefix("postgres://") else {
        return (url.to_owned(), None);
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return (url.to_owned(), None);
    };
    match userinfo.split_once(':') {
        Some((_, existing)) => (url.to_owned(), Some(existing.to_owned())),
        None => (
            format!("postgres://{userinfo}:{password}@{host}"),
            Some(password.to_owned()),
        ),
    }
}

async fn login(client: &reqwest::Client, base: &str, path: &str, email: &str) -> String {
    let response = client
        .post(format!("{base}{path}"))
        .json(&json!({ "email": email, "password": PASSWORD, "remember_me": true }))
        .send()
        .await
        .expect("login");
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["session_token"].as_str().expect("token").to_owned()
}

/// The request log line(s) (`finished processing request`) of `request_id`.
fn request_lines(server: &TenureProcess, request_id: &str) -> Vec<Value> {
    server
        .log_entries()
        .into_iter()
        .filter(|e| {
            e["fields"]["message"] == "finished processing request"
                && e["span"]["request_id"] == request_id
        })
        .collect()
}

/// A latency such as `3 ms` (tower-http's rendering) or a plain number.
fn is_latency(value: &Value) -> bool {
    match value {
        Value::Number(_) => true,
        Value::String(s) => s.split_once(' ').is_some_and(|(n, unit)| {
            n.parse::<f64>().is_ok() && ["ns", "µs", "us", "ms", "s"].contains(&unit)
        }),
        _ => false,
    }
}

both_backends! {
    async fn each_request_logs_one_json_line_with_its_id_route_status_and_latency(backend) {
        let db = TestDb::new(backend).await;
        cli_create_user(&db.url, USER, false);
        let mut server = TenureProcess::spawn(&db.url, &[
            ("DF_ALLOW_FOREVER_SESSIONS", "true"),
            ("JWT_SECRET", JWT_SECRET),
        ]);
        let base = server.wait_listening(START).await;
        let client = reqwest::Client::new();

        // (method, path as sent, sent request id, expected route, expected status)
        let token = login(&client, &base, "/api/v2/user/session", USER).await;
        let other = login(&client, &base, "/api/v2/user/session", USER).await;
        let session = format!("{base}/api/v2/user/session");
        let unknown_session = uuid::Uuid::new_v4();
        let requests: Vec<(&str, reqwest::RequestBuilder, Option<&str>, String, StatusCode)> = vec![
            ("live, id sent", client.get(format!("{base}/health/live")),
                Some("ops-request-0001"), "/health/live".into(), StatusCode::OK),
            ("session by query", client.get(&session).query(&[("session_token", &token)]),
                None, "/api/v2/user/session".into(), StatusCode::OK),
            ("refresh", client.put(&session).bearer_auth(&token),
                None, "/api/v2/user/session".into(), StatusCode::OK),
            ("wrong password", client.post(&session)
                .json(&json!({ "email": USER, "password": "Wrong-Password-1" })),
                Some("ops-request-0002"), "/api/v2/user/session".into(), StatusCode::UNAUTHORIZED),
            ("session id in the path", client.delete(format!("{base}/api/v2/user/sessions/{unknown_session}"))
                .bearer_auth(&other),
                None, "/api/v2/user/sessions/{id}".into(), StatusCode::NOT_FOUND),
            ("unknown route", client.get(format!("{base}/api/v2/nowhere/{token}")),
                None, "unmatched".into(), StatusCode::NOT_FOUND),
        ];
        let mut seen = Vec::new();
        for (what, request, sent_id, route, expected) in requests {
            let request = match sent_id {
                Some(id) => request.header("X-Request-Id", id),
                None => request,
            };
            let response = request.send().await.expect(what);
            let status = response.status();
            assert_eq!(status, expected, "{what}");
            let id = response.headers().get("x-request-id")
                .unwrap_or_else(|| panic!("{what}: no x-request-id"))
                .to_str().unwrap().to_owned();
            if let Some(sent) = sent_id {
                assert_eq!(id, sent, "{what}: the sent request id is not echoed");
            }
            let _ = response.bytes().await;
            seen.push((what, id, route, status));
        }

        for (what, id, route, status) in &seen {
            // The line is written as the response leaves: poll briefly.
            let waited = try_poll_until(&format!("{what}: a log line for request {id}"),
                Duration::from_secs(5), async || !request_lines(&server, id).is_empty()).await;
            if let Err(why) = waited {
                panic!("{why}; the log:\n{}", server.log_text());
            }
            let lines = request_lines(&server, id);
            assert_eq!(lines.len(), 1, "{what}: not one line for request {id}: {lines:?}");
            let line = &lines[0];
            assert_eq!(line["level"], "INFO", "{line}");
            assert_eq!(line["span"]["route"], json!(route), "{what}: {line}");
            assert_eq!(line["fields"]["status"], json!(status.as_u16()), "{what}: {line}");
            assert!(is_latency(&line["fields"]["latency"]), "{what}: no latency: {line}");
            assert!(line["span"]["method"].is_string(), "{what}: {line}");
            assert!(line["timestamp"].is_string(), "{what}: {line}");
        }
        // Every request has its own id.
        let mut ids: Vec<&String> = seen.iter().map(|(_, id, _, _)| id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), seen.len(), "request ids repeat: {seen:?}");

        server.sigterm();
        let status = server.wait_exit(START).await;
        assert!(status.success(), "exit status {status:?}");
        let log = server.log_text();
        for line in log.lines() {
            assert!(serde_json::from_str::<Value>(line).is_ok(), "not a JSON log line: {line}");
        }
        for (name, secret) in [("token payload", token.split('.').nth(1).unwrap()),
                               ("token signature", token.split('.').nth(2).unwrap()),
                               ("other token's signature", other.split('.').nth(2).unwrap()),
                               ("password", PASSWORD), ("wrong password", "Wrong-Password-1"),
                               ("JWT_SECRET", JWT_SECRET)] {
            assert!(!log.contains(secret), "the {name} is in the log:\n{log}");
        }
    }

    async fn an_administrator_sees_effective_settings_and_no_secret(backend) {
        let db = TestDb::new(backend).await;
        let (url, db_password) = with_password(&db.url, DB_PASSWORD);
        cli_create_user(&url, ADMIN, true);
        cli_create_user(&url, USER, false);
        let mut server = TenureProcess::spawn(&url, &[
            ("JWT_SECRET", JWT_SECRET),
            ("REFRESH_REUSE_GRACE", "15s"),
            ("SESSION_IDLE_TTL", "2h"),
            ("LOGIN_FAILURE_WINDOW", "15m"),
            ("DATABASE_ACQUIRE_TIMEOUT", "3s"),
            ("DF_JWT_TTL", "90"),
        ]);
        let base = server.wait_listening(START).await;
        let client = reqwest::Client::new();
        let token = login(&client, &base, "/api/v2/system/admin/session", ADMIN).await;
        let response = client.get(format!("{base}/api/v2/system/environment"))
            .bearer_auth(&token).send().await.expect("environment");
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.expect("body");
        let body: Value = serde_json::from_str(&text).expect("JSON");
        let platform = &body["platform"];

        // Version, git revision, backend, uptime.
        assert_eq!(platform["version"], env!("CARGO_PKG_VERSION"), "{platform}");
        let revision = platform["git_revision"].as_str().unwrap_or_default();
        assert!(!revision.is_empty(), "no git_revision: {platform}");
        let expected = match backend { Backend::Sqlite => "sqlite", Backend::Postgres => "postgres" };
        assert_eq!(platform["db_driver"], expected, "{platform}");
        assert!(platform["uptime_seconds"].is_u64(), "{platform}");

        // Effective settings, durations as whole seconds.
        let settings = platform["settings"].as_object()
            .unwrap_or_else(|| panic!("no platform.settings: {platform}"));
        for (key, seconds) in [
            ("refresh_reuse_grace_seconds", 15), ("session_idle_ttl_seconds", 7200),
            ("login_failure_window_seconds", 900), ("database_acquire_timeout_seconds", 3),
            ("jwt_ttl_seconds", 5400), ("request_timeout_seconds", 30),
        ] {
            assert_eq!(settings.get(key), Some(&json!(seconds)), "{key}: {platform}");
        }
        for (key, value) in settings {
            if key.ends_with("_seconds") {
                assert!(value.is_u64() || value.is_null(), "{key} is not seconds: {value}");
            }
            if let Some(s) = value.as_str() {
                // No duration left as text ("15s", "2h").
                let looks_like_duration = s.len() > 1
                    && s[..s.len() - 1].chars().all(|c| c.is_ascii_digit())
                    && s.ends_with(['s', 'm', 'h', 'd']);
                assert!(!looks_like_duration, "{key} is a text duration: {s}");
            }
        }
        assert_eq!(settings.get("database_backend"), Some(&json!(expected)), "{platform}");

        // No secret: not the JWT secret, not the database password, not the signing key.
        assert!(!text.contains(JWT_SECRET), "JWT_SECRET is exposed: {text}");
        if let Some(password) = &db_password {
            assert!(!text.contains(password.as_str()), "the database password is exposed: {text}");
            let shown = settings["database_url"].as_str().unwrap_or_default();
            assert!(shown.contains("[redacted]") || !shown.contains(':'), "{shown}");
            assert!(!server.log_text().contains(password.as_str()), "the database password is logged");
        }
        for secret in db.stored_key_secrets().await {
            assert!(!text.contains(&secret), "a stored key is exposed: {text}");
        }
        assert!(!text.contains(&token), "the token is echoed");

        // A non-administrator sees none of it.
        let token = login(&client, &base, "/api/v2/user/session", USER).await;
        let body: Value = client.get(format!("{base}/api/v2/system/environment"))
            .bearer_auth(&token).send().await.expect("environment").json().await.expect("JSON");
        assert!(body["platform"].get("settings").is_none(), "{body}");
        assert!(body["platform"].get("git_revision").is_none(), "{body}");

        server.sigterm();
        let status = server.wait_exit(START).await;
        assert!(status.success(), "exit status {status:?}");
        assert!(!server.log_text().contains(JWT_SECRET), "JWT_SECRET is logged");
    }

    async fn an_administrator_sees_the_key_algorithm(backend) {
        // Issue 5, item 7: the environment for an admin adds "… key algorithm".
        let app = spawn_app_with(backend, TestConfig::new().var("JWT_ALGORITHM", "EdDSA")).await;
        app.create_user(ADMIN, true).await;
        let token = app.login_token(ADMIN, true).await;
        let response = app.session_call(Method::GET, "/api/v2/system/environment", &token).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let platform = body["platform"].to_string();
        assert!(platform.to_ascii_lowercase().contains("eddsa"),
            "the key algorithm (EdDSA) is not in platform: {platform}");
    }
}

/// Runs `tenure config check` with a clean environment plus `env`.
fn config_check(env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["config", "check"])
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run tenure config check")
}

#[test]
fn config_check_prints_the_settings_with_secrets_masked() {
    const ENCRYPTION: &str = "ops-key-encryption-secret-0123";
    // The database does not exist: the check must not need it.
    let url = format!("postgres://tenure:{DB_PASSWORD}@db.invalid:5432/tenure");
    let started = Instant::now();
    let output = config_check(&[
        ("DATABASE_URL", &url),
        ("JWT_SECRET", JWT_SECRET),
        ("KEY_ENCRYPTION_SECRET", ENCRYPTION),
        ("DF_JWT_TTL", "90"),
        ("REFRESH_REUSE_GRACE", "20s"),
        ("CORS_ALLOWED_ORIGINS", "https://app.example.com"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "config check waited for something"
    );

    // The settings, as JSON, then the verdict.
    let json_end = stdout.rfind('}').expect("JSON settings") + 1;
    let settings: Value = serde_json::from_str(&stdout[..json_end])
        .unwrap_or_else(|e| panic!("settings are not JSON ({e}): {stdout}"));
    assert!(stdout[json_end..].contains("valid"), "{stdout}");
    assert_eq!(settings["jwt_ttl_seconds"], json!(5400), "{settings}");
    assert_eq!(
        settings["refresh_reuse_grace_seconds"],
        json!(20),
        "{settings}"
    );
    assert_eq!(settings["database_backend"], "postgres", "{settings}");
    assert_eq!(
        settings["cors_allowed_origins"],
        json!(["https://app.example.com"]),
        "{settings}"
    );
    let shown_url = settings["database_url"].as_str().expect("database_url");
    assert!(shown_url.contains("db.invalid"), "{shown_url}");
    assert!(shown_url.contains("[redacted]"), "{shown_url}");
    // The secrets are not settings shown: only where the signing key comes from, and
    // whether stored keys are encrypted.
    assert_eq!(settings["jwt_key_source"], "configured", "{settings}");
    assert_eq!(settings["stored_keys_encrypted"], json!(true), "{settings}");
    for key in ["jwt_secret", "key_encryption_secret"] {
        assert!(settings.get(key).is_none(), "{key} is shown: {settings}");
    }
    for (name, secret) in [
        ("JWT_SECRET", JWT_SECRET),
        ("the database password", DB_PASSWORD),
        ("KEY_ENCRYPTION_SECRET", ENCRYPTION),
    ] {
        assert!(!stdout.contains(secret), "{name} is printed: {stdout}");
        assert!(!stderr.contains(secret), "{name} is logged: {stderr}");
    }
}

#[test]
fn config_check_exits_1_naming_the_bad_variable() {
    let short_secret = "too-short-secret-value";
    for (var, value) in [
        ("DF_JWT_TTL", "soon"),
        ("REFRESH_REUSE_GRACE", "a while"),
        ("DATABASE_ACQUIRE_TIMEOUT", "0s"),
        ("CORS_ALLOWED_ORIGINS", "*"),
        ("METRICS_ADDR", "not-an-address"),
        ("DATABASE_URL", "mysql://localhost/tenure"),
        ("JWT_SECRET", short_secret),
    ] {
        let mut env = vec![("DATABASE_URL", "sqlite::memory:")];
        env.retain(|(k, _)| *k != var);
        env.push((var, value));
        let output = config_check(&env);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{var}={value}: {stdout}\n{stderr}"
        );
        assert!(
            stderr.contains(var),
            "{var}={value}: the error does not name it: {stderr}"
        );
        assert!(!stdout.contains("valid"), "{var}={value}: {stdout}");
    }
    let output = config_check(&[
        ("DATABASE_URL", "sqlite::memory:"),
        ("JWT_SECRET", short_secret),
    ]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !all.contains(short_secret),
        "a rejected secret is echoed: {all}"
    );
}

// ---------------------------------------------------------------------------------------------
// SIGTERM under load

/// One HTTP/1.1 request on its own connection, written in full before anything is read.
async fn send_raw(addr: &str, request_id: &str, body: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST /api/v2/user/session HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nX-Request-Id: {request_id}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    stream.flush().await.expect("flush");
    stream
}

/// Reads a whole response (the server closes the connection after it).
async fn read_raw(mut stream: tokio::net::TcpStream) -> Result<String, String> {
    let mut bytes = Vec::new();
    match tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut bytes)).await {
        Err(_) => Err("no complete response within 30 s".into()),
        Ok(Err(e)) => Err(format!("{e} after {} bytes", bytes.len())),
        Ok(Ok(_)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// An outcome of the background stream: when the request started (relative to SIGTERM, in
/// ms, negative before it) and what came of it.
#[derive(Debug)]
struct Outcome {
    at_ms: i128,
    result: Result<u16, String>,
    connect_error: bool,
}

both_backends! {
    async fn sigterm_under_load_drains_in_flight_requests_and_exits_0(backend) {
        let db = TestDb::new(backend).await;
        cli_create_user(&db.url, USER, false);
        let mut server = TenureProcess::spawn(&db.url, &[
            ("DF_ALLOW_FOREVER_SESSIONS", "true"),
            ("RUST_LOG", "info,tower_http=debug,sqlx=warn"),
            ("LOGIN_MAX_FAILURES_PER_IP", "1000000"),
        ]);
        let base = server.wait_listening(START).await;
        let addr = base.trim_start_matches("http://").to_owned();

        // A background stream of requests on fresh connections.
        let stop = Arc::new(AtomicBool::new(false));
        let sigterm_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::new()));
        let origin = Instant::now();
        let mut stream = Vec::new();
        for worker in 0..4 {
            let (stop, sigterm_at, outcomes, base) =
                (stop.clone(), sigterm_at.clone(), outcomes.clone(), base.clone());
            stream.push(tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let path = if worker % 2 == 0 { "/health/live" } else { "/health/ready" };
                    let result = client.get(format!("{base}{path}")).send().await;
                    let at_ms = match *sigterm_at.lock().unwrap() {
                        Some(t) if started >= t => (started - t).as_millis() as i128,
                        Some(t) => -((t - started).as_millis() as i128),
                        None => -((started - origin).as_millis() as i128) - 1_000_000,
                    };
                    let connect_error = result.as_ref().err().is_some_and(|e| e.is_connect());
                    let result = match result {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            response.bytes().await.map(|_| status).map_err(|e| format!("{e:?}"))
                        }
                        Err(e) => Err(format!("{e:?}")),
                    };
                    let failed = result.is_err();
                    outcomes.lock().unwrap().push(Outcome { at_ms, result, connect_error });
                    if failed {
                        // Pacing, not waiting for anything: a refused connection is retried
                        // at a gentle rate instead of in a busy loop.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        // The stream runs: every worker has had answers before anything else happens.
        poll_until("a few answers to the background stream", Duration::from_secs(15), async || {
            let answered = outcomes.lock().unwrap().iter().filter(|o| o.result.is_ok()).count();
            if answered >= 8 { Ok(()) } else { Err(format!("{answered} answered")) }
        }).await;

        // Slow requests (password hashing) written in full, each on its own connection; the
        // server has started processing every one of them before SIGTERM.
        const IN_FLIGHT: usize = 24;
        let body = json!({ "email": USER, "password": PASSWORD, "remember_me": true }).to_string();
        let mut connections = Vec::new();
        for i in 0..IN_FLIGHT {
            connections.push(send_raw(&addr, &format!("in-flight-{i:03}"), &body).await);
        }
        let started = try_poll_until("the server to start every request", Duration::from_secs(15),
            async || {
                let entries = server.log_entries();
                (0..IN_FLIGHT).all(|i| {
                    let id = format!("in-flight-{i:03}");
                    entries.iter().any(|e| e["span"]["request_id"] == id.as_str()
                        && e["fields"]["message"] == "started processing request")
                })
            }).await;
        if let Err(why) = started {
            panic!("{why}; the log:\n{}", server.log_text());
        }
        *sigterm_at.lock().unwrap() = Some(Instant::now());
        server.sigterm();

        // New connections are refused soon after the signal, while in-flight ones drain.
        let refused = try_poll_until("new connections to be refused", Duration::from_secs(5),
            async || tokio::net::TcpStream::connect(&addr).await.is_err()).await;

        // Every in-flight request completes with its answer.
        let mut problems = Vec::new();
        for (i, connection) in connections.into_iter().enumerate() {
            match read_raw(connection).await {
                Ok(response) if response.starts_with("HTTP/1.1 200") => {
                    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
                    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                    if !parsed["session_token"].is_string() {
                        problems.push(format!("in-flight-{i:03}: incomplete body {body:?}"));
                    }
                }
                Ok(response) => problems.push(format!("in-flight-{i:03}: {}",
                    response.lines().next().unwrap_or("empty response"))),
                Err(e) => problems.push(format!("in-flight-{i:03}: {e}")),
            }
        }

        let status = server.wait_exit(Duration::from_secs(30)).await;
        stop.store(true, Ordering::SeqCst);
        for worker in stream {
            worker.await.expect("stream worker");
        }
        assert!(problems.is_empty(), "in-flight requests were cut off:\n{}\nlog:\n{}",
            problems.join("\n"), server.log_text());
        assert!(status.success(), "exit status {status:?}:\n{}", server.log_text());
        assert_eq!(status.code(), Some(0));
        if let Err(why) = refused {
            panic!("new connections were still accepted after SIGTERM: {why}");
        }
        assert!(tokio::net::TcpStream::connect(&addr).await.is_err(),
            "something still listens on {addr} after the exit");

        // The drain was real: some of those requests finished after the signal was received.
        let entries = server.log_entries();
        let signal = entries.iter()
            .position(|e| e["fields"]["message"] == "shutdown signal received, draining")
            .unwrap_or_else(|| panic!("no shutdown line:\n{}", server.log_text()));
        let finished_after = entries[signal..].iter()
            .filter(|e| e["fields"]["message"] == "finished processing request"
                && e["span"]["request_id"].as_str().is_some_and(|id| id.starts_with("in-flight-")))
            .count();
        let messages: Vec<&str> = entries.iter().filter_map(|e| e["fields"]["message"].as_str()).collect();
        assert!(messages.contains(&"stopped"), "{messages:?}");

        assert!(finished_after >= 1,
            "every in-flight request finished before the signal: the drain was not exercised");

        // The stream: every answer was a success, and every request begun before the signal was
        // answered. Requests begun after it may find the port closed, or (when they connect in
        // the instant before the listener closes) a reset: they were not yet in flight.
        let outcomes = outcomes.lock().unwrap();
        let mut summary: HashMap<String, usize> = HashMap::new();
        for outcome in outcomes.iter() {
            let key = match &outcome.result {
                Ok(status) => format!("{status}"),
                Err(_) if outcome.connect_error => "connect error".to_owned(),
                Err(e) => format!("error: {}", e.chars().take(160).collect::<String>()),
            };
            *summary.entry(key).or_default() += 1;
        }
        eprintln!("in-flight requests finished after the signal: {finished_after}/{IN_FLIGHT}; \
                   stream: {summary:?}");
        assert!(outcomes.iter().any(|o| o.result.is_ok() && o.at_ms < 0), "{summary:?}");
        for outcome in outcomes.iter() {
            match &outcome.result {
                Ok(status) => assert_eq!(*status, 200, "{outcome:?}"),
                Err(_) => assert!(outcome.at_ms >= -20,
                    "a request begun before SIGTERM failed: {outcome:?}"),
            }
        }
    }
}
