//! Signing keys: EdDSA and `kid` headers, the JWKS a downstream service verifies with, rotation
//! that logs nobody out (not even a forever session idle across rotations), forged keys and
//! algorithms, encrypted key storage, and a fixed `JWT_SECRET`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::header::CACHE_CONTROL;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tenure::clock::{Clock, SystemClock, TestClock};
use tenure::config::Config;

use crate::both_backends;
use crate::helpers::*;

const EMAIL: &str = "jane@example.com";
const JWKS: &str = "/.well-known/jwks.json";
const SESSION: &str = "/api/v2/user/session";
const EDDSA: &[(&str, &str)] = &[("JWT_ALGORITHM", "EdDSA")];
const ENCRYPTION_SECRET: &str = "the-right-key-encryption-secret";
const WRONG_ENCRYPTION_SECRET: &str = "not-the-key-encryption-secret!!";
const JWT_SECRET: &str = "a-fixed-hs256-secret-of-at-least-32-bytes";
/// How long a condition that depends on a background reload (1 s here) may take to hold.
const POLL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a `tenure` command may take (it connects and migrates first).
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Configuration and servers

/// A test server's variables: the harness defaults (forever sessions on) plus `vars`.
fn test_config(vars: &[(&str, &str)]) -> TestConfig {
    vars.iter()
        .fold(TestConfig::new(), |config, (name, value)| {
            config.var(name, value)
        })
}

/// The same variables parsed for `db`, for an in-process key ring beside the servers.
fn parsed_config(db: &TestDb, vars: &[(&str, &str)]) -> Config {
    let mut map: HashMap<String, String> = HashMap::new();
    map.insert("DF_ALLOW_FOREVER_SESSIONS".into(), "true".into());
    for (name, value) in vars {
        map.insert((*name).into(), (*value).into());
    }
    map.insert("DATABASE_URL".into(), db.url.clone());
    Config::from_lookup(|name| map.get(name).cloned()).expect("config")
}

async fn app_with_user(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
    let app = spawn_app_with(backend, test_config(vars)).await;
    app.create_user(EMAIL, false).await;
    app
}

/// What `tenure keys rotate` does, but at the test clock's time instead of the wall clock's: a
/// separate key ring on the same database. The servers learn of the key on their own reload.
async fn rotate_at(
    db: &TestDb,
    vars: &[(&str, &str)],
    clock: &TestClock,
) -> Result<String, String> {
    let state = tenure::build_state(&parsed_config(db, vars), Arc::new(clock.clone()))
        .await
        .expect("state");
    let rotated = state.service.keys().rotate(clock.now()).await;
    rotated.map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// A token's header, decoded without verification.
fn header(token: &str) -> Value {
    let part = token.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64")).expect("header json")
}

fn kid(token: &str) -> String {
    let header = header(token);
    header["kid"]
        .as_str()
        .unwrap_or_else(|| panic!("no kid in the token header {header}"))
        .to_owned()
}

/// A token over `claims` with header `alg` and `kid`, signed with `key`.
fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

/// A token over `claims` with an arbitrary header, signed with HMAC-SHA256 keyed by `secret`
/// (whatever the header claims).
fn hmac_token(header: &Value, claims: &Value, secret: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("hmac key");
    mac.update(signing_input.as_bytes());
    let signature = mac.finalize().into_bytes();
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_slice())
    )
}

/// A fresh Ed25519 key pair as PKCS#8 (DER).
fn new_ed25519() -> Vec<u8> {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("randomness");
    ed25519_dalek::SigningKey::from_bytes(&seed)
        .to_pkcs8_der()
        .expect("pkcs8")
        .as_bytes()
        .to_vec()
}

/// The 32-byte private seed inside an Ed25519 PKCS#8 document (`04 22 04 20 <seed>`).
fn ed25519_seed(pkcs8: &[u8]) -> Vec<u8> {
    let at = pkcs8
        .windows(4)
        .position(|w| w == [0x04, 0x22, 0x04, 0x20])
        .expect("an Ed25519 PKCS#8 document");
    pkcs8[at + 4..at + 36].to_vec()
}

/// What a downstream service does with nothing but the JWKS: pick the key the token's `kid`
/// names and verify EdDSA, issuer `tenure` (and `exp`, against the real clock).
fn verify_with(set: &JwkSet, token: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("the token names no kid")?;
    let jwk = set
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["tenure"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// The JWKS

struct Jwks {
    body: Value,
    text: String,
    cache_control: String,
}

impl Jwks {
    fn kids(&self) -> Vec<String> {
        self.body["keys"]
            .as_array()
            .unwrap_or_else(|| panic!("no keys array: {}", self.body))
            .iter()
            .map(|k| k["kid"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn set(&self) -> JwkSet {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("the JWKS does not parse as a JWK set ({e}): {}", self.text))
    }
}

/// GETs the JWKS over HTTP with a client of its own, as a downstream service would.
async fn fetch_jwks(base: &str) -> Jwks {
    let response = reqwest::get(format!("{base}{JWKS}")).await.expect("jwks");
    let status = response.status();
    let cache_control = response
        .headers()
        .get(CACHE_CONTROL)
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let text = response.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{text}");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    Jwks {
        body,
        text,
        cache_control,
    }
}

/// Polls `app`'s JWKS until `ok` holds for its kids (bounded).
async fn wait_for_jwks(app: &TestApp, what: &str, ok: impl Fn(&[String]) -> bool) -> Jwks {
    poll_until(what, POLL_TIMEOUT, async || {
        let jwks = fetch_jwks(&app.base).await;
        if ok(&jwks.kids()) {
            Ok(jwks)
        } else {
            Err(format!("the JWKS is {}", jwks.body))
        }
    })
    .await
}

/// Refreshes a probe session until its token is signed by `want` (the server learns of a
/// rotation on its background reload); answers the last token.
async fn refresh_until_signed_by(app: &TestApp, mut token: String, want: &str) -> String {
    let what = format!("tokens signed by {want}");
    poll_until(&what, POLL_TIMEOUT, async || {
        token = app.refresh_token(&token).await;
        if kid(&token) == want {
            Ok(token.clone())
        } else {
            Err(format!("signed by {}", kid(&token)))
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The stored keys

#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredKey {
    kid: String,
    algorithm: String,
    secret: String,
    public_key: Option<String>,
    activates_at: i64,
}

/// The rows of `signing_keys`, oldest activation first.
async fn stored_keys(db: &TestDb) -> Vec<StoredKey> {
    use sqlx::{Connection, Row};
    const SQL: &str = "SELECT kid, algorithm, secret, public_key, activates_at FROM signing_keys \
                       ORDER BY activates_at, kid";
    macro_rules! rows {
        ($conn:ty) => {{
            let mut c = <$conn>::connect(&db.url).await.expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(SQL))
                .fetch_all(&mut c)
                .await
                .expect("signing keys")
                .iter()
                .map(|r| StoredKey {
                    kid: r.get(0),
                    algorithm: r.get(1),
                    secret: r.get(2),
                    public_key: r.get(3),
                    activates_at: r.get(4),
                })
                .collect()
        }};
    }
    match db.backend {
        Backend::Sqlite => rows!(sqlx::SqliteConnection),
        Backend::Postgres => rows!(sqlx::PgConnection),
    }
}

fn stored<'a>(keys: &'a [StoredKey], kid: &str) -> &'a StoredKey {
    keys.iter()
        .find(|k| k.kid == kid)
        .unwrap_or_else(|| panic!("no stored key {kid} in {keys:?}"))
}

fn of_algorithm<'a>(keys: &'a [StoredKey], algorithm: &str) -> &'a StoredKey {
    keys.iter()
        .find(|k| k.algorithm == algorithm)
        .unwrap_or_else(|| panic!("no stored {algorithm} key in {keys:?}"))
}

// ---------------------------------------------------------------------------------------------
// The binary

struct CliOutput {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `tenure ARGS` on `database_url` with only `env` (and PATH) set; bounded: a process
/// still running after `CLI_TIMEOUT` is killed and the test fails.
async fn tenure(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> CliOutput {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path: PathBuf = dir.path().join("stdout");
    let err_path: PathBuf = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn tenure");
    let what = format!("tenure {args:?} to exit");
    let exited = try_poll_until(&what, CLI_TIMEOUT, async || {
        child.try_wait().expect("try_wait")
    })
    .await;
    let status = match exited {
        Ok((status, _)) => status,
        Err(why) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{why}; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
    };
    CliOutput {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// `tenure keys list`: (kid, algorithm, state) per key.
async fn keys_list(database_url: &str, env: &[(&str, &str)]) -> Vec<(String, String, String)> {
    let out = tenure(database_url, &["keys", "list"], env).await;
    assert!(out.status.success(), "keys list failed: {}", out.stderr);
    let mut lines = out.stdout.lines();
    let head = lines.next().unwrap_or_default();
    assert!(
        head.starts_with("kid") && head.contains("state"),
        "{}",
        out.stdout
    );
    lines
        .map(|line| {
            let mut columns = line.split_whitespace().map(str::to_owned);
            let mut next = || columns.next().unwrap_or_default();
            (next(), next(), next())
        })
        .collect()
}

/// Starting `tenure` (serve) with `env` fails before it listens; answers its standard error.
async fn start_fails(database_url: &str, env: &[(&str, &str)]) -> String {
    let out = tenure(database_url, &[], env).await;
    assert!(
        !out.status.success(),
        "tenure started with {env:?}; stderr:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("tenure listening"),
        "tenure listened with {env:?}: {}",
        out.stderr
    );
    out.stderr
}

// ---------------------------------------------------------------------------------------------
// Clients refreshing without pause while keys rotate

/// Sessions refreshed back to back, each refresh followed by a GET with the new token, until
/// stopped; every non-200 is a failure.
struct Load {
    stop: Arc<AtomicBool>,
    cycles: Vec<Arc<AtomicU64>>,
    last_kids: Vec<Arc<Mutex<String>>>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// One client per (servers, token): it refreshes on `servers[i]` and GETs on `servers[i+1]`,
    /// round robin.
    fn start(clients: Vec<(Vec<String>, String)>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut load = Load {
            stop: stop.clone(),
            cycles: Vec::new(),
            last_kids: Vec::new(),
            failures: failures.clone(),
            tasks: Vec::new(),
        };
        for (n, (servers, token)) in clients.into_iter().enumerate() {
            let cycles = Arc::new(AtomicU64::new(0));
            let last_kid = Arc::new(Mutex::new(kid(&token)));
            load.cycles.push(cycles.clone());
            load.last_kids.push(last_kid.clone());
            let (stop, failures) = (stop.clone(), failures.clone());
            load.tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut token = token;
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let refresh_on = &servers[i % servers.len()];
                    let get_on = &servers[(i + 1) % servers.len()];
                    i += 1;
                    let fail = |what: String| failures.lock().unwrap().push(what);
                    let response = http
                        .put(format!("{refresh_on}{SESSION}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("refresh request");
                    let (status, body) = status_json(response).await;
                    if status != StatusCode::OK {
                        fail(format!(
                            "client {n}: refresh on {refresh_on} of a token signed by {}: {status} {body}",
                            kid(&token)
                        ));
                        return;
                    }
                    token = body["session_token"].as_str().expect("token").to_owned();
                    let response = http
                        .get(format!("{get_on}{SESSION}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("get request");
                    let (status, body) = status_json(response).await;
                    if status != StatusCode::OK {
                        fail(format!(
                            "client {n}: GET on {get_on} with a token signed by {}: {status} {body}",
                            kid(&token)
                        ));
                        return;
                    }
                    *last_kid.lock().unwrap() = kid(&token);
                    cycles.fetch_add(1, Ordering::SeqCst);
                    // Pacing, not waiting for anything.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }));
        }
        load
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }

    /// Waits until every client has completed two more refresh-and-GET cycles (so at least one
    /// began after whatever the test just did); fails at once on any failure.
    async fn settle(&self) {
        let start: Vec<u64> = self
            .cycles
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect();
        poll_until(
            "every client to complete two more cycles",
            POLL_TIMEOUT,
            async || {
                let failures = self.failures();
                assert!(failures.is_empty(), "failed requests: {failures:#?}");
                let done: Vec<u64> = self
                    .cycles
                    .iter()
                    .zip(&start)
                    .map(|(c, s)| c.load(Ordering::SeqCst) - s)
                    .collect();
                if done.iter().all(|&n| n >= 2) {
                    Ok(())
                } else {
                    Err(format!("cycles completed since: {done:?}"))
                }
            },
        )
        .await;
    }

    fn last_kids(&self) -> Vec<String> {
        self.last_kids
            .iter()
            .map(|k| k.lock().unwrap().clone())
            .collect()
    }

    /// Stops the clients; answers (total cycles, failures).
    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("client task");
        }
        let total = self.cycles.iter().map(|c| c.load(Ordering::SeqCst)).sum();
        let failures = self.failures.lock().unwrap().clone();
        (total, failures)
    }
}

/// Advances the shared clock to `target` in steps of at most 5 s (well inside DF_JWT_TTL), with
/// every client refreshing after each step.
async fn advance_to(app: &TestApp, load: &Load, target: i64) {
    while app.clock.now() < target {
        app.clock.advance((target - app.clock.now()).min(5));
        load.settle().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

both_backends! {
    async fn eddsa_tokens_verify_downstream_with_nothing_but_the_jwks(backend) {
        // An HS256 key in the same database first: its secret must never be published.
        let db = TestDb::new(backend).await;
        let mut hs = TestApp::start(db.clone(), TestConfig::new(), TestClock::new()).await;
        hs.create_user(EMAIL, false).await;
        let hs_token = hs.login_token(EMAIL, true).await;
        assert_eq!(header(&hs_token)["alg"], "HS256");
        hs.stop().await;

        let app = TestApp::start(db.clone(), test_config(EDDSA), hs.clock.clone()).await;
        let token = app.login_token(EMAIL, true).await;
        assert_eq!(header(&token)["alg"], "EdDSA", "{}", header(&token));
        let kid = kid(&token);

        let jwks = fetch_jwks(&app.base).await;
        assert!(jwks.cache_control.contains("public"), "{}", jwks.cache_control);
        assert!(jwks.cache_control.contains("max-age=300"), "JWKS_CACHE_TTL is 5m: {}", jwks.cache_control);
        let keys = stored_keys(&db).await;
        let ed = stored(&keys, &kid);
        assert_eq!(ed.algorithm, "EdDSA");
        let listed = jwks.body["keys"].as_array().unwrap();
        let entry = listed
            .iter()
            .find(|k| k["kid"] == json!(kid))
            .unwrap_or_else(|| panic!("the token's kid {kid} is not in the JWKS {}", jwks.body));
        assert_eq!(
            entry,
            &json!({ "kty": "OKP", "crv": "Ed25519", "x": ed.public_key.clone().unwrap(),
                     "kid": kid, "alg": "EdDSA", "use": "sig" }),
        );

        // No private material, no HMAC secret, no HS256 key at all.
        let hs_key = of_algorithm(&keys, "HS256");
        assert!(!jwks.kids().contains(&hs_key.kid), "{}", jwks.body);
        for key in listed {
            assert_eq!(key["kty"], "OKP", "{key}");
            assert_eq!(key["alg"], "EdDSA", "{key}");
            for private in ["d", "k", "p", "q", "dp", "dq", "qi"] {
                assert!(key.get(private).is_none(), "{private} published: {key}");
            }
        }
        for key in &keys {
            assert!(!jwks.text.contains(&key.secret), "the stored secret of {} is in the JWKS", key.kid);
            let raw = URL_SAFE_NO_PAD.decode(&key.secret).unwrap();
            let material = if key.algorithm == "EdDSA" { ed25519_seed(&raw) } else { raw };
            for encoded in [URL_SAFE_NO_PAD.encode(&material), STANDARD.encode(&material)] {
                assert!(!jwks.text.contains(&encoded), "private material of {} in the JWKS", key.kid);
            }
        }

        // An independent verifier with only the JWKS: accepts the real tokens...
        let set = jwks.set();
        let verified = verify_with(&set, &token)
            .unwrap_or_else(|e| panic!("downstream rejects a fresh token: {e}"));
        assert_eq!(verified, claims(&token));
        let refreshed = app.refresh_token(&token).await;
        let next_gen = claims(&token)["gen"].as_i64().unwrap() + 1;
        assert_eq!(verify_with(&set, &refreshed).unwrap()["gen"], next_gen);

        // ...and rejects tampered ones (and so does the server).
        let parts: Vec<&str> = refreshed.split('.').collect();
        let mut forged = claims(&refreshed);
        forged["user_id"] = json!(forged["user_id"].as_i64().unwrap() + 1);
        forged["sub"] = json!(forged["user_id"].to_string());
        let payload = URL_SAFE_NO_PAD.encode(forged.to_string());
        let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature[0] ^= 1;
        let tampered = [
            ("payload", format!("{}.{payload}.{}", parts[0], parts[2])),
            ("signature", format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&signature))),
        ];
        for (what, bad) in tampered {
            assert!(verify_with(&set, &bad).is_err(), "downstream accepts a tampered {what}");
            assert_error(app.get_session(&bad).await, StatusCode::UNAUTHORIZED).await;
        }
        // The HS256 token cannot be verified from the JWKS at all.
        assert!(verify_with(&set, &hs_token).is_err());
        assert_eq!(app.get_session(&refreshed).await.status(), StatusCode::OK);
    }

    async fn hs256_tokens_name_their_key_and_publish_nothing(backend) {
        let app = app_with_user(backend, &[]).await;
        let forever = app.login_token(EMAIL, true).await;
        let plain = app.login_token(EMAIL, false).await;
        let refreshed = app.refresh_token(&forever).await;
        for token in [&forever, &plain, &refreshed] {
            assert_eq!(header(token)["alg"], "HS256");
            assert!(!kid(token).is_empty());
        }
        assert_eq!(kid(&refreshed), kid(&forever));
        assert_eq!(kid(&plain), kid(&forever));

        let jwks = fetch_jwks(&app.base).await;
        assert_eq!(jwks.body, json!({ "keys": [] }));
        assert!(jwks.cache_control.contains("max-age="), "{}", jwks.cache_control);
        for secret in app.db.stored_key_secrets().await {
            assert!(!jwks.text.contains(&secret));
        }
    }

    async fn replicas_without_configured_keys_agree(backend) {
        for algorithm in ["HS256", "EdDSA"] {
            let vars = [("JWT_ALGORITHM", algorithm)];
            let a = app_with_user(backend, &vars).await;
            let b = a.replica().await;

            let first = a.login_token(EMAIL, true).await;
            assert_eq!(b.get_session(&first).await.status(), StatusCode::OK, "{algorithm}");
            let second = b.refresh_token(&first).await;
            assert_eq!(kid(&second), kid(&first), "{algorithm}");
            assert_eq!(a.get_session(&second).await.status(), StatusCode::OK, "{algorithm}");
            let third = a.refresh_token(&second).await;
            assert_eq!(b.get_session(&third).await.status(), StatusCode::OK, "{algorithm}");

            let other = b.login_token(EMAIL, false).await;
            assert_eq!(kid(&other), kid(&first), "{algorithm}");
            assert_eq!(a.get_session(&other).await.status(), StatusCode::OK, "{algorithm}");
            assert_eq!(fetch_jwks(&a.base).await.body, fetch_jwks(&b.base).await.body, "{algorithm}");
            assert_eq!(stored_keys(&a.db).await.len(), 1, "{algorithm}");
        }
    }

    async fn replicas_starting_together_agree_on_the_first_key(backend) {
        for algorithm in ["HS256", "EdDSA"] {
            let db = TestDb::new(backend).await;
            let migrated = tenure(&db.url, &["migrate"], &[]).await;
            assert!(migrated.status.success(), "{}", migrated.stderr);
            let config = test_config(&[("JWT_ALGORITHM", algorithm)]);
            let clock = TestClock::new();
            // Both generate a first key at once; one row wins and both must use it.
            let (a, b) = tokio::join!(
                TestApp::start(db.clone(), config.clone(), clock.clone()),
                TestApp::start(db.clone(), config.clone(), clock.clone()),
            );
            a.create_user(EMAIL, false).await;
            let from_a = a.login_token(EMAIL, true).await;
            let from_b = b.login_token(EMAIL, true).await;
            assert_eq!(kid(&from_a), kid(&from_b), "{algorithm}");
            assert_eq!(b.get_session(&from_a).await.status(), StatusCode::OK, "{algorithm}");
            assert_eq!(a.get_session(&from_b).await.status(), StatusCode::OK, "{algorithm}");
            b.refresh_token(&from_a).await;
            a.refresh_token(&from_b).await;
            assert_eq!(stored_keys(&db).await.len(), 1, "{algorithm}");
        }
    }

    async fn rotation_while_clients_keep_refreshing_fails_nothing(backend) {
        const TTL: i64 = 30;
        let vars = [("JWT_ALGORITHM", "EdDSA"), ("JWKS_CACHE_TTL", "4s"), ("DF_JWT_TTL", "30s")];
        let a = app_with_user(backend, &vars).await;
        let b = a.replica().await;
        let old_kid = stored_keys(&a.db).await[0].kid.clone();

        let mut clients = Vec::new();
        for servers in [vec![a.base.clone()], vec![b.base.clone()], vec![a.base.clone(), b.base.clone()]] {
            clients.push((servers, a.login_token(EMAIL, true).await));
        }
        let load = Load::start(clients);
        load.settle().await;

        // tenure keys rotate: a separate process, the wall clock.
        let out = tenure(&a.db.url, &["keys", "rotate"], &vars).await;
        assert!(out.status.success(), "keys rotate failed: {}", out.stderr);
        let new_kid = out
            .stdout
            .strip_prefix("new key ")
            .and_then(|rest| rest.split(':').next())
            .unwrap_or_else(|| panic!("no new key in {}", out.stdout))
            .to_owned();
        assert_ne!(new_kid, old_kid);
        let activation = stored(&stored_keys(&a.db).await, &new_kid).activates_at;
        assert!(a.clock.now() < activation, "the test took JWKS_CACHE_TTL before rotating");

        // Published by every replica before it signs; tokens still come from the old key.
        let mut cached = None;
        for app in [&a, &b] {
            let jwks = wait_for_jwks(app, "the next key is published", |kids| {
                kids.contains(&new_kid) && kids.contains(&old_kid)
            })
            .await;
            cached.get_or_insert(jwks.set());
        }
        // What a downstream service caches now (for up to JWKS_CACHE_TTL).
        let cached = cached.unwrap();
        load.settle().await;
        assert_eq!(load.last_kids(), vec![old_kid.clone(); 3]);
        assert_eq!(kid(&b.login_token(EMAIL, true).await), old_kid);

        // A token signed by the old key, presented right after the new one activates.
        let held = a.login_token(EMAIL, true).await;
        assert_eq!(kid(&held), old_kid);
        advance_to(&a, &load, activation - 1).await;
        assert_eq!(kid(&a.login_token(EMAIL, false).await), old_kid);
        advance_to(&a, &load, activation).await;
        assert_eq!(b.get_session(&held).await.status(), StatusCode::OK);
        let successor = a.refresh_token(&held).await;
        assert_eq!(kid(&successor), new_kid);
        assert_eq!(b.get_session(&successor).await.status(), StatusCode::OK);
        // The downstream cache from before the activation already knows the new key.
        verify_with(&cached, &successor).unwrap_or_else(|e| panic!("a cached JWKS misses the new key: {e}"));

        advance_to(&a, &load, activation + 5).await;
        load.settle().await;
        assert_eq!(load.last_kids(), vec![new_kid.clone(); 3]);
        assert_eq!(kid(&b.login_token(EMAIL, true).await), new_kid);

        // The old key stays published until its last token has expired, then goes.
        advance_to(&a, &load, activation + TTL - 1).await;
        for app in [&a, &b] {
            let kids = fetch_jwks(&app.base).await.kids();
            assert!(kids.contains(&old_kid) && kids.contains(&new_kid), "{kids:?}");
        }
        advance_to(&a, &load, activation + TTL).await;
        for app in [&a, &b] {
            assert_eq!(fetch_jwks(&app.base).await.kids(), vec![new_kid.clone()]);
        }
        advance_to(&a, &load, activation + TTL + 10).await;

        let (cycles, failures) = load.finish().await;
        assert!(failures.is_empty(), "failed requests: {failures:#?}");
        assert!(cycles > 30, "only {cycles} refresh cycles");
        // Retired, not deleted: a forever session may still present a token it signed.
        assert_eq!(stored_keys(&a.db).await.len(), 2);
    }

    async fn a_forever_session_signed_two_rotations_ago_still_refreshes(backend) {
        for algorithm in ["EdDSA", "HS256"] {
            let eddsa = algorithm == "EdDSA";
            let vars = [("JWT_ALGORITHM", algorithm), ("JWKS_CACHE_TTL", "4s"), ("DF_JWT_TTL", "1h")];
            // The whole story happens in the past, so that `tenure keys list` (wall clock)
            // sees the same states as the server at its end.
            let db = TestDb::new(backend).await;
            let clock = TestClock::new();
            clock.advance(-20_000);
            let app = TestApp::start(db.clone(), test_config(&vars), clock.clone()).await;
            app.create_user(EMAIL, false).await;
            let ancient = app.login_token(EMAIL, true).await;
            let ancient_after_restart = app.login_token(EMAIL, true).await;
            let probe = app.login_token(EMAIL, true).await;
            let k0 = kid(&ancient);

            // First rotation; a second one is refused while it waits to sign.
            let k1 = rotate_at(&db, &vars, &clock).await.expect("rotate");
            let refused = rotate_at(&db, &vars, &clock).await.unwrap_err();
            assert!(refused.contains("already waiting"), "{refused}");
            if eddsa {
                wait_for_jwks(&app, "k1 is published", |kids| kids.contains(&k1)).await;
            }
            clock.advance(5);
            let probe = refresh_until_signed_by(&app, probe, &k1).await;

            // Much later, the second rotation.
            clock.advance(SystemClock.now() - 1_000 - clock.now());
            let k2 = rotate_at(&db, &vars, &clock).await.expect("rotate");
            if eddsa {
                wait_for_jwks(&app, "k2 is published", |kids| kids.contains(&k2)).await;
            }
            clock.advance(5);
            refresh_until_signed_by(&app, probe, &k2).await;

            // The token signed by k0: no access (expired), but it refreshes.
            let (_, reason) = assert_error(app.get_session(&ancient).await, StatusCode::UNAUTHORIZED).await;
            assert_eq!(reason, "expired", "{algorithm}");
            if eddsa {
                let kids = fetch_jwks(&app.base).await.kids();
                assert!(!kids.contains(&k0), "retired key published: {kids:?}");
                assert!(kids.contains(&k1) && kids.contains(&k2), "{kids:?}");
            }
            let renewed = app.refresh_token(&ancient).await;
            assert_eq!(kid(&renewed), k2, "{algorithm}");
            assert_eq!(app.get_session(&renewed).await.status(), StatusCode::OK);

            // The retired key survives a restart (it is kept, only unpublished).
            let app = app.restart().await;
            let renewed = app.refresh_token(&ancient_after_restart).await;
            assert_eq!(kid(&renewed), k2, "{algorithm}");
            assert_eq!(app.get_session(&renewed).await.status(), StatusCode::OK);

            let listed = keys_list(&db.url, &vars).await;
            let state = |kid: &str| {
                listed
                    .iter()
                    .find(|(k, _, _)| k == kid)
                    .map(|(_, alg, state)| {
                        assert_eq!(alg, algorithm);
                        state.clone()
                    })
                    .unwrap_or_else(|| panic!("{kid} not listed: {listed:?}"))
            };
            assert_eq!(
                (state(&k0), state(&k1), state(&k2)),
                ("retired".into(), "retiring".into(), "current".into()),
                "{algorithm}: {listed:?}"
            );
        }
    }

    async fn forged_keys_and_algorithms_are_refused(backend) {
        // An HS256 key and an EdDSA key in one database, the server signing EdDSA.
        let db = TestDb::new(backend).await;
        let mut first = TestApp::start(db.clone(), TestConfig::new(), TestClock::new()).await;
        first.create_user(EMAIL, false).await;
        first.stop().await;
        let app = TestApp::start(db.clone(), test_config(EDDSA), first.clock.clone()).await;
        let token = app.login_token(EMAIL, true).await;
        let claims = claims(&token);

        let keys = stored_keys(&db).await;
        let ed = of_algorithm(&keys, "EdDSA");
        let hs = of_algorithm(&keys, "HS256");
        assert_eq!(kid(&token), ed.kid);
        let ed_pkcs8 = URL_SAFE_NO_PAD.decode(&ed.secret).unwrap();
        let x = ed.public_key.clone().unwrap();
        let public = URL_SAFE_NO_PAD.decode(&x).unwrap();
        let hs_secret = URL_SAFE_NO_PAD.decode(&hs.secret).unwrap();
        let real_ed = EncodingKey::from_ed_der(&ed_pkcs8);
        let real_hs = EncodingKey::from_secret(&hs_secret).unwrap();

        // Controls: the same claims signed by each real key under its own kid are accepted,
        // so each forgery below fails for its key or algorithm, not for its claims.
        for control in [
            sign(Algorithm::EdDSA, Some(&ed.kid), &claims, &real_ed),
            sign(Algorithm::HS256, Some(&hs.kid), &claims, &real_hs),
        ] {
            assert_eq!(app.get_session(&control).await.status(), StatusCode::OK, "{}", header(&control));
        }

        let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        spki.extend_from_slice(&public);
        let public_pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&spki)
        );
        let confused = |secret: &[u8]| {
            hmac_token(&json!({ "typ": "JWT", "alg": "HS256", "kid": ed.kid }), &claims, secret)
        };
        let none_header = json!({ "typ": "JWT", "alg": "none", "kid": ed.kid }).to_string();
        let none_header = URL_SAFE_NO_PAD.encode(none_header);
        let stranger = EncodingKey::from_ed_der(&new_ed25519());
        let forgeries = [
            ("unknown kid, a stranger's Ed25519 key",
             sign(Algorithm::EdDSA, Some("eddsa-0123456789ab"), &claims, &stranger)),
            ("unknown kid, the real Ed25519 key",
             sign(Algorithm::EdDSA, Some("eddsa-unknown"), &claims, &real_ed)),
            ("no kid, the real Ed25519 key", sign(Algorithm::EdDSA, None, &claims, &real_ed)),
            ("the EdDSA kid, a stranger's Ed25519 key",
             sign(Algorithm::EdDSA, Some(&ed.kid), &claims, &stranger)),
            ("HS256 naming the EdDSA kid, keyed with the raw public key", confused(&public)),
            ("HS256 naming the EdDSA kid, keyed with x", confused(x.as_bytes())),
            ("HS256 naming the EdDSA kid, keyed with the public key PEM", confused(public_pem.as_bytes())),
            ("HS256 naming the EdDSA kid, keyed with the right HMAC secret",
             sign(Algorithm::HS256, Some(&ed.kid), &claims, &real_hs)),
            ("EdDSA naming the HS256 kid, signed by the real Ed25519 key",
             sign(Algorithm::EdDSA, Some(&hs.kid), &claims, &real_ed)),
            ("HS512 naming the HS256 kid, keyed with its secret",
             sign(Algorithm::HS512, Some(&hs.kid), &claims, &real_hs)),
            ("HS256 naming the HS256 kid, keyed with the Ed25519 public key",
             hmac_token(&json!({ "typ": "JWT", "alg": "HS256", "kid": hs.kid }), &claims, &public)),
            ("alg none naming the EdDSA kid",
             format!("{none_header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))),
        ];
        for (what, forged) in &forgeries {
            for method in [Method::GET, Method::PUT, Method::DELETE] {
                let response = app.session_call(method.clone(), SESSION, forged).await;
                let (status, body) = status_json(response).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}, {method}: {body}");
                assert_eq!(body["error"]["context"]["reason"], "invalid_token", "{what}, {method}: {body}");
            }
        }
        // Nothing a forgery did touched the session.
        assert_eq!(app.get_session(&token).await.status(), StatusCode::OK);
        assert_eq!(kid(&app.refresh_token(&token).await), ed.kid);
    }

    async fn stored_keys_are_encrypted_and_a_wrong_secret_stops_the_start(backend) {
        let secret = [("KEY_ENCRYPTION_SECRET", ENCRYPTION_SECRET)];
        let vars = [("JWT_ALGORITHM", "EdDSA"), ("KEY_ENCRYPTION_SECRET", ENCRYPTION_SECRET)];
        // Both kinds of key: an HS256 secret, then an Ed25519 key.
        let db = TestDb::new(backend).await;
        let mut first = TestApp::start(db.clone(), test_config(&secret), TestClock::new()).await;
        first.create_user(EMAIL, false).await;
        let hs_token = first.login_token(EMAIL, true).await;
        first.stop().await;
        let app = TestApp::start(db.clone(), test_config(&vars), first.clock.clone()).await;
        let token = app.login_token(EMAIL, true).await;

        let secrets = db.stored_key_secrets().await;
        assert_eq!(secrets.len(), 2, "{secrets:?}");
        for stored in &secrets {
            assert!(stored.starts_with("enc:v1:"), "a plaintext key is stored: {stored}");
        }
        let keys = stored_keys(&db).await;
        let ed = of_algorithm(&keys, "EdDSA");
        let public = URL_SAFE_NO_PAD.decode(ed.public_key.clone().unwrap()).unwrap();
        for key in &keys {
            // No form of a stored value is usable key material.
            let body = key.secret.trim_start_matches("enc:v1:");
            let decoded = URL_SAFE_NO_PAD.decode(body).unwrap_or_default();
            for candidate in [key.secret.as_bytes(), body.as_bytes(), &decoded] {
                assert!(
                    {
                        use ed25519_dalek::pkcs8::DecodePrivateKey;
                        ed25519_dalek::SigningKey::from_pkcs8_der(candidate).is_err()
                    },
                    "{} stores a usable Ed25519 key", key.kid
                );
                assert!(
                    !candidate.windows(public.len()).any(|w| w == public),
                    "{} stores its key pair in the clear", key.kid
                );
                let mut validation = Validation::new(Algorithm::HS256);
                validation.set_issuer(&["tenure"]);
                assert!(
                    DecodingKey::from_secret(candidate).map_or(true, |key| {
                        jsonwebtoken::decode::<Value>(&hs_token, &key, &validation).is_err()
                    }),
                    "{} stores the HMAC secret in a usable form", key.kid
                );
            }
        }

        // Logins, refreshes and downstream verification work as without encryption.
        assert_eq!(app.get_session(&hs_token).await.status(), StatusCode::OK);
        let refreshed = app.refresh_token(&token).await;
        assert_eq!(kid(&refreshed), ed.kid);
        assert_eq!(app.get_session(&refreshed).await.status(), StatusCode::OK);
        verify_with(&fetch_jwks(&app.base).await.set(), &refreshed).unwrap();

        // The wrong secret, or none, stops the start with a message naming the variable.
        let before = stored_keys(&db).await;
        let wrong = [("JWT_ALGORITHM", "EdDSA"), ("KEY_ENCRYPTION_SECRET", WRONG_ENCRYPTION_SECRET)];
        let stderr = start_fails(&db.url, &wrong).await;
        assert!(stderr.contains("KEY_ENCRYPTION_SECRET"), "{stderr}");
        let stderr = start_fails(&db.url, EDDSA).await;
        assert!(stderr.contains("KEY_ENCRYPTION_SECRET"), "{stderr}");
        let short = [("JWT_ALGORITHM", "EdDSA"), ("KEY_ENCRYPTION_SECRET", "short")];
        let stderr = start_fails(&db.url, &short).await;
        assert!(stderr.contains("KEY_ENCRYPTION_SECRET"), "{stderr}");
        let listed = tenure(&db.url, &["keys", "list"], &wrong).await;
        assert!(!listed.status.success(), "{}", listed.stdout);
        assert!(listed.stderr.contains("KEY_ENCRYPTION_SECRET"), "{}", listed.stderr);
        assert_eq!(stored_keys(&db).await, before, "a failed start changed the stored keys");

        // The right secret still starts, and the sessions carry on.
        let app = app.restart().await;
        assert_eq!(app.get_session(&refreshed).await.status(), StatusCode::OK);
        app.refresh_token(&refreshed).await;
    }

    async fn a_failed_start_with_the_wrong_secret_leaves_the_keys_usable(backend) {
        // The database holds an encrypted HS256 key; a process configured for EdDSA (so it
        // would generate its first Ed25519 key) starts with the wrong secret and fails.
        let secret = [("KEY_ENCRYPTION_SECRET", ENCRYPTION_SECRET)];
        let app = app_with_user(backend, &secret).await;
        let token = app.login_token(EMAIL, true).await;
        let before = stored_keys(&app.db).await;

        let wrong = [("JWT_ALGORITHM", "EdDSA"), ("KEY_ENCRYPTION_SECRET", WRONG_ENCRYPTION_SECRET)];
        let stderr = start_fails(&app.db.url, &wrong).await;
        assert!(stderr.contains("KEY_ENCRYPTION_SECRET"), "{stderr}");

        // The right secret must still start, as before the mistake.
        let listed = tenure(&app.db.url, &["keys", "list"], &secret).await;
        assert!(
            listed.status.success(),
            "after one failed start with the wrong secret, the right secret no longer loads the keys:\n{}",
            listed.stderr
        );
        assert_eq!(stored_keys(&app.db).await, before, "a start that failed stored a key");
        let vars = [("JWT_ALGORITHM", "EdDSA"), ("KEY_ENCRYPTION_SECRET", ENCRYPTION_SECRET)];
        let eddsa = TestApp::start(app.db.clone(), test_config(&vars), app.clock.clone()).await;
        assert_eq!(eddsa.get_session(&token).await.status(), StatusCode::OK);
        assert_eq!(header(&eddsa.login_token(EMAIL, true).await)["alg"], "EdDSA");
    }

    async fn a_failed_start_without_the_secret_stores_no_plaintext_key(backend) {
        let secret = [("KEY_ENCRYPTION_SECRET", ENCRYPTION_SECRET)];
        let app = app_with_user(backend, &secret).await;
        let before = stored_keys(&app.db).await;

        // Configured for EdDSA without the secret: refused, and nothing written.
        let stderr = start_fails(&app.db.url, EDDSA).await;
        assert!(stderr.contains("KEY_ENCRYPTION_SECRET"), "{stderr}");
        for stored in app.db.stored_key_secrets().await {
            assert!(stored.starts_with("enc:v1:"), "a plaintext key was stored by a start that failed");
        }
        assert_eq!(stored_keys(&app.db).await, before, "a start that failed stored a key");
    }

    async fn setting_the_secret_later_encrypts_the_stored_keys(backend) {
        // Created without encryption: an HS256 key, then an Ed25519 key, in plaintext.
        let db = TestDb::new(backend).await;
        let mut first = TestApp::start(db.clone(), TestConfig::new(), TestClock::new()).await;
        first.create_user(EMAIL, false).await;
        let hs_token = first.login_token(EMAIL, true).await;
        first.stop().await;
        let mut plain = TestApp::start(db.clone(), test_config(EDDSA), first.clock.clone()).await;
        let token = plain.login_token(EMAIL, true).await;
        let jwks_before = fetch_jwks(&plain.base).await.body;
        plain.stop().await;
        let plaintext = stored_keys(&db).await;
        assert_eq!(plaintext.len(), 2);
        for key in &plaintext {
            assert!(!key.secret.starts_with("enc:v1:"));
        }

        let vars = [("JWT_ALGORITHM", "EdDSA"), ("KEY_ENCRYPTION_SECRET", ENCRYPTION_SECRET)];
        let app = TestApp::start(db.clone(), test_config(&vars), first.clock.clone()).await;
        let encrypted = stored_keys(&db).await;
        assert_eq!(encrypted.len(), 2);
        for (old, new) in plaintext.iter().zip(&encrypted) {
            assert_eq!(old.kid, new.kid);
            assert!(new.secret.starts_with("enc:v1:"), "{} still in plaintext", new.kid);
            assert!(!new.secret.contains(&old.secret), "{} still holds its plaintext", new.kid);
        }
        // Same keys: the old tokens work, the JWKS is unchanged.
        assert_eq!(fetch_jwks(&app.base).await.body, jwks_before);
        assert_eq!(app.get_session(&hs_token).await.status(), StatusCode::OK);
        assert_eq!(app.get_session(&token).await.status(), StatusCode::OK);
        assert_eq!(kid(&app.refresh_token(&token).await), kid(&token));

        // From now on the secret is needed.
        let stderr = start_fails(&db.url, EDDSA).await;
        assert!(stderr.contains("KEY_ENCRYPTION_SECRET"), "{stderr}");
    }

    async fn jwt_secret_is_a_fixed_hs256_key(backend) {
        let vars = [("JWT_SECRET", JWT_SECRET)];
        let app = app_with_user(backend, &vars).await;
        let token = app.login_token(EMAIL, true).await;
        assert_eq!(header(&token)["alg"], "HS256");
        assert!(!kid(&token).is_empty());
        // Any service holding the secret verifies the token, as with DreamFactory.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&["tenure"]);
        let shared = DecodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap();
        jsonwebtoken::decode::<Value>(&token, &shared, &validation).expect("verifies with JWT_SECRET");
        assert_eq!(fetch_jwks(&app.base).await.body, json!({ "keys": [] }));
        for stored in app.db.stored_key_secrets().await {
            assert!(!stored.contains(JWT_SECRET) && !stored.contains(&URL_SAFE_NO_PAD.encode(JWT_SECRET)));
        }

        // Across a restart the same key verifies and signs.
        let app = app.restart().await;
        assert_eq!(app.get_session(&token).await.status(), StatusCode::OK);
        let refreshed = app.refresh_token(&token).await;
        assert_eq!(kid(&refreshed), kid(&token));
        jsonwebtoken::decode::<Value>(&refreshed, &shared, &validation).expect("verifies with JWT_SECRET");

        // Rotation is the operator's business there.
        let out = tenure(&app.db.url, &["keys", "rotate"], &vars).await;
        assert!(!out.status.success(), "keys rotate with JWT_SECRET succeeded: {}", out.stdout);
        assert!(out.stderr.contains("JWT_SECRET"), "{}", out.stderr);
        assert_eq!(app.get_session(&refreshed).await.status(), StatusCode::OK);
    }

    async fn tokens_from_before_kid_headers_still_work_with_jwt_secret(backend) {
        // The previous version signed with JWT_SECRET and no `kid`; DreamFactory does the
        // same. Such a token for a live session must keep working after the upgrade.
        let app = app_with_user(backend, &[("JWT_SECRET", JWT_SECRET)]).await;
        let token = app.login_token(EMAIL, true).await;
        let shared = EncodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap();
        let legacy = sign(Algorithm::HS256, None, &claims(&token), &shared);
        assert!(header(&legacy).get("kid").is_none());
        let (status, body) = status_json(app.get_session(&legacy).await).await;
        assert_eq!(status, StatusCode::OK, "a kid-less JWT_SECRET token is refused: {body}");
        let (status, body) = status_json(app.refresh(&legacy).await).await;
        assert_eq!(status, StatusCode::OK, "a kid-less JWT_SECRET token does not refresh: {body}");
    }

    async fn tokens_from_before_kid_headers_still_work_with_the_generated_secret(backend) {
        // The previous version kept a generated secret in `settings` and signed without `kid`.
        let mut app = app_with_user(backend, &[]).await;
        let token = app.login_token(EMAIL, true).await;
        app.stop().await;
        let legacy_secret = "bGVnYWN5LWdlbmVyYXRlZC1zZWNyZXQtZm9yLXRlc3Rz";
        app.db.execute("DELETE FROM signing_keys").await;
        app.db
            .execute(&format!(
                "INSERT INTO settings (key, value) VALUES ('jwt_hs256_secret', '{legacy_secret}')"
            ))
            .await;
        let generated = EncodingKey::from_secret(legacy_secret.as_bytes()).unwrap();
        let legacy = sign(Algorithm::HS256, None, &claims(&token), &generated);

        let app = TestApp::start(app.db.clone(), TestConfig::new(), app.clock.clone()).await;
        assert_eq!(app.get_session(&legacy).await.status(), StatusCode::OK);
        let refreshed = app.refresh_token(&legacy).await;
        assert_eq!(kid(&refreshed), "legacy");
        assert_eq!(app.get_session(&refreshed).await.status(), StatusCode::OK);
    }

    async fn jwt_private_key_file_is_a_fixed_ed25519_key(backend) {
        let pkcs8 = new_ed25519();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.clone()))).unwrap();
        let path = path.to_str().unwrap().to_owned();
        let vars = [("JWT_ALGORITHM", "EdDSA"), ("JWT_PRIVATE_KEY_FILE", path.as_str())];
        let app = app_with_user(backend, &vars).await;
        let token = app.login_token(EMAIL, true).await;
        let pair = {
            use ed25519_dalek::pkcs8::DecodePrivateKey;
            let pair = ed25519_dalek::SigningKey::from_pkcs8_der(&pkcs8).unwrap();
            URL_SAFE_NO_PAD.encode(pair.verifying_key().as_bytes())
        };
        let jwks = fetch_jwks(&app.base).await;
        let listed = jwks.body["keys"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{}", jwks.body);
        assert_eq!(listed[0]["x"], json!(pair));
        assert_eq!(listed[0]["kid"], json!(kid(&token)));
        verify_with(&jwks.set(), &token).unwrap();

        let app = app.restart().await;
        assert_eq!(kid(&app.refresh_token(&token).await), kid(&token));
        let out = tenure(&app.db.url, &["keys", "rotate"], &vars).await;
        assert!(!out.status.success(), "{}", out.stdout);
        assert!(out.stderr.contains("JWT_PRIVATE_KEY_FILE"), "{}", out.stderr);
    }

    async fn scheduled_rotation_gives_replicas_one_new_key(backend) {
        let vars = [("JWT_ALGORITHM", "EdDSA"), ("JWKS_CACHE_TTL", "4s"), ("KEY_ROTATION_INTERVAL", "1h")];
        let a = app_with_user(backend, &vars).await;
        let b = a.replica().await;
        let first = kid(&a.login_token(EMAIL, true).await);
        a.clock.advance(3_600);
        // Both replicas tick every second; one key results, published before it signs.
        let jwks = wait_for_jwks(&a, "the scheduled key is published", |kids| kids.len() == 2).await;
        let next = jwks.kids().into_iter().find(|k| *k != first).unwrap();
        wait_for_jwks(&b, "the replica publishes it", |kids| kids.contains(&next)).await;
        let probe = b.login_token(EMAIL, true).await;
        assert_eq!(kid(&probe), first);
        a.clock.advance(5);
        let probe = refresh_until_signed_by(&a, probe, &next).await;
        assert_eq!(kid(&b.refresh_token(&probe).await), next);
        assert_eq!(fetch_jwks(&a.base).await.body, fetch_jwks(&b.base).await.body);
        let keys = stored_keys(&a.db).await;
        assert_eq!(keys.len(), 2, "{keys:?}");
    }
}
