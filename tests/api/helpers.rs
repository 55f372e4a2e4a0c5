//! Test harness: a real tenure server on an ephemeral port, backed by a fresh SQLite file or a
//! fresh PostgreSQL database per test, and a real HTTP client with one method per endpoint.
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (a server URL; each test creates and drops its own
//! database there), or else from a throwaway cluster started once per test run with the
//! `initdb`/`pg_ctl` found on the machine. When neither is possible the PostgreSQL tests fail
//! with a message saying how to provide one: they are never skipped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use tenure::clock::TestClock;
use tenure::config::Config;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct-horse-battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs one async test body against each backend: `both_backends! { async fn name(backend) {..} }`
/// expands to `mod name { fn sqlite(); fn postgres(); }`.
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($backend:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { body($crate::helpers::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { body($crate::helpers::Backend::Postgres).await }
            async fn body($backend: $crate::helpers::Backend) $body
        }
    )*};
}

// ---------------------------------------------------------------------------------------------
// Databases

/// One test's database; dropped (PostgreSQL) or deleted (SQLite) when the last user of it goes.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pg_admin_url: Option<String>,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Arc<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite:{}", dir.path().join("tenure.db").display());
                Arc::new(Self {
                    backend,
                    url,
                    pg_admin_url: None,
                    pg_name: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => Self::postgres_on(&postgres_admin_url()).await,
        }
    }

    /// A fresh database on the PostgreSQL server at `admin` (a server URL whose role may
    /// CREATE DATABASE), dropped when the last user of it goes.
    pub async fn postgres_on(admin: &str) -> Arc<Self> {
        let name = format!("tenure_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test PostgreSQL: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = with_database(admin, &name);
        Arc::new(Self {
            backend: Backend::Postgres,
            url,
            pg_admin_url: Some(admin.to_owned()),
            pg_name: Some(name),
            _dir: None,
        })
    }

    /// Runs one SQL statement directly (to set up states the API cannot reach yet, or to
    /// inspect what is stored).
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .expect("execute");
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .expect("execute");
            }
        }
    }

    /// Every text-convertible value of every row of `table`, for "nothing changed" and
    /// "nothing secret stored" checks.
    pub async fn dump(&self, table: &str) -> Vec<String> {
        use sqlx::Row;
        let sql = match self.backend {
            Backend::Sqlite => format!("SELECT * FROM {table} ORDER BY 1"),
            Backend::Postgres => format!("SELECT t::text FROM {table} t ORDER BY 1"),
        };
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect");
                let rows = sqlx::query(sqlx::AssertSqlSafe(&*sql))
                    .fetch_all(&mut c)
                    .await
                    .expect("dump");
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| {
                                r.try_get::<String, _>(i)
                                    .or_else(|_| r.try_get::<i64, _>(i).map(|v| v.to_string()))
                                    .unwrap_or_else(|_| "NULL".into())
                            })
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                let rows = sqlx::query(sqlx::AssertSqlSafe(&*sql))
                    .fetch_all(&mut c)
                    .await
                    .expect("dump");
                rows.iter().map(|r| r.get::<String, _>(0)).collect()
            }
        }
    }
}

impl TestDb {
    /// The `secret` column of every stored signing key, as stored (plaintext base64url of the
    /// key material, or `enc:v1:…` when encrypted).
    pub async fn stored_key_secrets(&self) -> Vec<String> {
        use sqlx::Row;
        let sql = "SELECT secret FROM signing_keys ORDER BY activates_at";
        let rows = match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut c)
                    .await
                    .expect("keys")
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut c)
                    .await
                    .expect("keys")
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect()
            }
        };
        rows
    }

    /// The raw bytes of the newest plaintext HS256 key (what the server signs with).
    pub async fn hmac_key(&self) -> Vec<u8> {
        use base64::Engine;
        let secrets = self.stored_key_secrets().await;
        let newest = secrets.last().expect("a signing key is stored");
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(newest)
            .expect("a plaintext base64url key")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (Some(admin), Some(name)) = (self.pg_admin_url.clone(), self.pg_name.clone()) else {
            return;
        };
        // Drop runs outside async context: use a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server_url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// The PostgreSQL server URL for this test run: `TEST_DATABASE_URL`, or a throwaway cluster.
pub fn postgres_admin_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => start_throwaway_cluster(),
    })
    .clone()
    .unwrap_or_else(|why| {
        panic!(
            "PostgreSQL is needed for the tests and none could be started: {why}\n\
             Provide one with TEST_DATABASE_URL=postgres://user:password@host:port/postgres \
             (a role allowed to CREATE DATABASE), or install PostgreSQL so that initdb and \
             pg_ctl exist (Debian/Ubuntu: apt-get install -y postgresql)."
        )
    })
}

fn find_pg_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("pg_ctl").is_file() && dir.join("initdb").is_file() {
                return Some(dir);
            }
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").is_file())
        .collect();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the `postgres` OS user when we are root (initdb refuses root).
fn pg_command(bin: &Path, program: &str, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

fn start_throwaway_cluster() -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("tenure-test-pg-{}", std::process::id()));
    let cluster = ClusterSpec::init(dir)?;
    cluster.start()?;
    // Stop and remove the cluster when this test process exits, whatever way it exits.
    cluster.spawn_watchdog()?;
    Ok(cluster.admin_url())
}

/// A PostgreSQL cluster made with `initdb` in its own directory: where it lives, how to run
/// its tools, and the options it is started with (kept, so it can be started again on the
/// same port).
#[derive(Clone)]
struct ClusterSpec {
    bin: PathBuf,
    as_postgres: bool,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    options: String,
}

impl ClusterSpec {
    /// `initdb` in `dir` (created afresh) with trust authentication, on a free port.
    fn init(dir: PathBuf) -> Result<Self, String> {
        let bin = find_pg_bin().ok_or("no initdb/pg_ctl on PATH or under /usr/lib/postgresql")?;
        let as_postgres = is_root();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&dir)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                return Err(
                    "running as root but cannot chown the cluster directory to the postgres user"
                        .into(),
                );
            }
        }
        let data = dir.join("data");
        let out = pg_command(&bin, "initdb", as_postgres)
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        // Prepared transactions let a test hold row locks that no backend owns (a fault test
        // catches requests mid-statement with them).
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=400 -c max_prepared_transactions=8",
            dir.display()
        );
        Ok(Self {
            bin,
            as_postgres,
            dir,
            data,
            port,
            options,
        })
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start`, waiting until the cluster accepts connections.
    fn start(&self) -> Result<(), String> {
        let out = pg_command(&self.bin, "pg_ctl", self.as_postgres)
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &self.options, "-w", "-l"])
            .arg(self.dir.join("server.log"))
            .arg("start")
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pg_ctl start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// `pg_ctl stop -m <mode>`, waiting until the cluster is down.
    fn stop(&self, mode: &str) -> Result<(), String> {
        let out = pg_command(&self.bin, "pg_ctl", self.as_postgres)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "stop"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// A shell that stops and removes the cluster once this test process has exited.
    fn spawn_watchdog(&self) -> Result<(), String> {
        // The shell's `sleep 1` paces its check that the test process still runs; no test
        // waits on it.
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser} {pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runuser = if self.as_postgres { "runuser -u postgres --" } else { "" },
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data.display(),
            dir = self.dir.display(),
        );
        Command::new("sh")
            .args(["-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the cluster watchdog: {e}"))?;
        Ok(())
    }
}

/// How `pg_ctl stop` brings an owned cluster down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// `-m fast`: sessions are terminated (SQLSTATE 57P01), a shutdown checkpoint is written.
    Fast,
    /// `-m immediate`: every server process is killed at once, no checkpoint; the next start
    /// runs crash recovery. What a power cut or an OOM kill of the postmaster looks like.
    Immediate,
}

impl StopMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A throwaway PostgreSQL cluster that one test owns and may stop and start again (an outage),
/// separate from the cluster the other tests share. Always made with `initdb`/`pg_ctl`, even when
/// `TEST_DATABASE_URL` is set, since the test must control the server. Stopped and removed when
/// dropped (and by a watchdog if the test process dies first).
pub struct OwnedCluster {
    spec: ClusterSpec,
    /// The server URL (the `postgres` database, as the `postgres` role).
    pub admin_url: String,
}

impl OwnedCluster {
    /// initdb and start; panics saying how to get PostgreSQL when that is not possible.
    pub async fn start() -> OwnedCluster {
        let dir = std::env::temp_dir().join(format!(
            "tenure-test-pg-{}-owned-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let spec = tokio::task::spawn_blocking(move || -> Result<ClusterSpec, String> {
            let spec = ClusterSpec::init(dir)?;
            spec.spawn_watchdog()?;
            spec.start()?;
            Ok(spec)
        })
        .await
        .expect("cluster start task")
        .unwrap_or_else(|why| {
            panic!(
                "this test needs its own PostgreSQL cluster and none could be started: {why}\n\
                 Install PostgreSQL so that initdb and pg_ctl exist (Debian/Ubuntu: \
                 apt-get install -y postgresql), or point PG_BIN at their directory."
            )
        });
        let admin_url = spec.admin_url();
        OwnedCluster { spec, admin_url }
    }

    /// A fresh database on this cluster.
    pub async fn database(&self) -> Arc<TestDb> {
        TestDb::postgres_on(&self.admin_url).await
    }

    /// `pg_ctl stop -m fast`: clients are disconnected, the port closes.
    pub async fn stop(&self) {
        self.stop_with(StopMode::Fast).await;
    }

    /// `pg_ctl stop -m <mode>`, waiting until the cluster is down.
    pub async fn stop_with(&self, mode: StopMode) {
        let spec = self.spec.clone();
        tokio::task::spawn_blocking(move || spec.stop(mode.as_str()))
            .await
            .expect("cluster stop task")
            .unwrap_or_else(|why| panic!("cannot stop ({mode:?}) the owned cluster: {why}"));
    }

    /// `pg_ctl start` again, same data and port; answers once it accepts connections.
    pub async fn restart(&self) {
        let spec = self.spec.clone();
        tokio::task::spawn_blocking(move || spec.start())
            .await
            .expect("cluster start task")
            .unwrap_or_else(|why| panic!("cannot start the owned cluster again: {why}"));
    }
}

impl Drop for OwnedCluster {
    fn drop(&mut self) {
        let _ = self.spec.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.spec.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Servers

/// Configuration for a test server; forever sessions are on unless a test turns them off.
#[derive(Clone)]
pub struct TestConfig {
    vars: HashMap<String, String>,
}

impl TestConfig {
    pub fn new() -> Self {
        let mut vars = HashMap::new();
        vars.insert("DF_ALLOW_FOREVER_SESSIONS".into(), "true".into());
        Self { vars }
    }

    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }
}

impl Default for TestConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A running server.
pub struct TestApp {
    pub base: String,
    pub addr: SocketAddr,
    pub db: Arc<TestDb>,
    pub clock: TestClock,
    pub client: reqwest::Client,
    pub config: TestConfig,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, TestConfig::new()).await
}

pub async fn spawn_app_with(backend: Backend, config: TestConfig) -> TestApp {
    let db = TestDb::new(backend).await;
    TestApp::start(db, config, TestClock::new()).await
}

impl TestApp {
    /// Starts a server on `db`: bind first (port 0), then serve; no sleeps.
    pub async fn start(db: Arc<TestDb>, config: TestConfig, clock: TestClock) -> TestApp {
        record_request_starts();
        let mut vars = config.vars.clone();
        // A test may route the server through a proxy (`proxy.rs`) with its own DATABASE_URL.
        vars.entry("DATABASE_URL".into())
            .or_insert_with(|| db.url.clone());
        let parsed = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        let state = tenure::build_state(&parsed, Arc::new(clock.clone()))
            .await
            .expect("server state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tenure::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestApp {
            base: format!("http://{addr}"),
            addr,
            db,
            clock,
            client: reqwest::Client::new(),
            config,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Another server (replica) on the same database with the same configuration and clock.
    pub async fn replica(&self) -> TestApp {
        TestApp::start(self.db.clone(), self.config.clone(), self.clock.clone()).await
    }

    /// Stops this server (graceful) and starts a new one on the same database.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        TestApp::start(self.db.clone(), self.config.clone(), self.clock.clone()).await
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Creates a user directly through the service rules (as `tenure user create` does).
    pub async fn create_user(&self, email: &str, admin: bool) {
        let body = json!({ "email": email, "password": PASSWORD, "name": "Test User" });
        // Registration may be off; go through the store-level path the CLI uses.
        let mut vars = self.config.vars.clone();
        vars.insert("DATABASE_URL".into(), self.db.url.clone());
        let parsed = Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
        let state = tenure::build_state(&parsed, Arc::new(self.clock.clone()))
            .await
            .expect("state");
        state
            .service
            .create_user(tenure::session::RegisterRequest {
                email: Some(body["email"].as_str().unwrap_or_default().to_owned()),
                username: None,
                password: Some(PASSWORD.to_owned().into()),
                password_confirmation: None,
                name: Some("Test User".into()),
                first_name: Some("Test".into()),
                last_name: Some("User".into()),
                is_sys_admin: admin,
            })
            .await
            .expect("create user");
    }

    /// POST /api/v2/user/session.
    pub async fn login(&self, email: &str, password: &str, remember_me: bool) -> Response {
        self.request(Method::POST, "/api/v2/user/session")
            .json(&json!({ "email": email, "password": password, "remember_me": remember_me }))
            .send()
            .await
            .expect("login request")
    }

    /// Logs in and answers the session token; panics unless 200.
    pub async fn login_token(&self, email: &str, remember_me: bool) -> String {
        let response = self.login(email, PASSWORD, remember_me).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "login failed: {body}");
        body["session_token"].as_str().expect("token").to_owned()
    }

    pub async fn get_session(&self, token: &str) -> Response {
        self.session_call(Method::GET, "/api/v2/user/session", token)
            .await
    }

    pub async fn refresh(&self, token: &str) -> Response {
        self.session_call(Method::PUT, "/api/v2/user/session", token)
            .await
    }

    pub async fn logout(&self, token: &str) -> Response {
        self.session_call(Method::DELETE, "/api/v2/user/session", token)
            .await
    }

    /// Refreshes and answers the new token; panics unless 200.
    pub async fn refresh_token(&self, token: &str) -> String {
        let response = self.refresh(token).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "refresh failed: {body}");
        body["session_token"].as_str().expect("token").to_owned()
    }

    /// A session-endpoint call with the token as a Bearer header.
    pub async fn session_call(&self, method: Method, path: &str, token: &str) -> Response {
        self.request(method, path)
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// `n` forever sessions of `email`, by logging in `n` times.
pub async fn login_tokens(app: &TestApp, email: &str, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for _ in 0..n {
        tokens.push(app.login_token(email, true).await);
    }
    tokens
}

/// A request started in the background: its `X-Request-Id`, and its answer (status, body).
pub struct Call {
    pub request_id: String,
    pub answer: tokio::task::JoinHandle<(StatusCode, Value)>,
}

impl Call {
    /// Waits (bounded) until the server has begun handling this request: what comes next in
    /// the handler (verifying the token, queueing for the database) runs without waiting.
    pub async fn started(&self) {
        wait_started(std::slice::from_ref(self)).await;
    }

    pub async fn answer(self) -> (StatusCode, Value) {
        self.answer.await.expect("call task")
    }
}

/// Waits (bounded) until the server has begun handling every one of `calls`.
pub async fn wait_started(calls: &[Call]) {
    let what = format!("the server to start handling {} requests", calls.len());
    poll_until(&what, std::time::Duration::from_secs(20), async || {
        let pending = calls
            .iter()
            .filter(|c| !request_started(&c.request_id))
            .count();
        if pending == 0 {
            Ok(())
        } else {
            Err(format!("{pending} not started"))
        }
    })
    .await;
}

/// Starts `method path` with `token` as a bearer and a fresh request id, to race with others.
/// A request that gets no answer in 30 s fails the test instead of hanging it.
pub fn start_call(app: &TestApp, method: Method, path: &str, token: &str) -> Call {
    start_request(app.request(method, path).bearer_auth(token))
}

/// [`start_call`] for any request (a body, no token): sent with a fresh request id, watched.
pub fn start_request(request: RequestBuilder) -> Call {
    let request_id = format!("test-{}", uuid::Uuid::new_v4().simple());
    watch_request(&request_id);
    let request = request
        .header("X-Request-Id", &request_id)
        .timeout(std::time::Duration::from_secs(30));
    let answer =
        tokio::spawn(async move { status_json(request.send().await.expect("request")).await });
    Call { request_id, answer }
}

/// [`start_call`] for callers that only want the answer.
pub fn spawn_call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    start_call(app, method, path, token).answer
}

// ---------------------------------------------------------------------------------------------
// What the in-process servers log

/// Whether a server of this test process has begun handling the request with `X-Request-Id`
/// `request_id` (its "started processing request" event was emitted). Only requests being
/// watched (see [`watch_request`]) are recorded.
pub fn request_started(request_id: &str) -> bool {
    watched_requests()
        .lock()
        .expect("watched requests")
        .get(request_id)
        .copied()
        .unwrap_or(false)
}

/// Starts recording whether the request with `X-Request-Id` `request_id` has started.
fn watch_request(request_id: &str) {
    watched_requests()
        .lock()
        .expect("watched requests")
        .insert(request_id.to_owned(), false);
}

/// The watched request ids, each with whether it has started.
fn watched_requests() -> &'static std::sync::Mutex<HashMap<String, bool>> {
    static WATCHED: OnceLock<std::sync::Mutex<HashMap<String, bool>>> = OnceLock::new();
    WATCHED.get_or_init(Default::default)
}

/// Installs, once per test process, a tracing subscriber that records which watched requests
/// the in-process servers have begun to handle (tower-http's "started processing
/// request" event, inside the server's `request` span). Nothing is printed.
fn record_request_starts() {
    use tracing_subscriber::layer::SubscriberExt;
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let targets = tracing_subscriber::filter::Targets::new()
            .with_target("tenure::http", tracing::Level::INFO)
            .with_target("tower_http::trace::on_request", tracing::Level::DEBUG);
        let subscriber = tracing_subscriber::registry()
            .with(targets)
            .with(RequestStarts);
        // A test process has no other subscriber; should one exist, waits on request starts
        // fail with their own message.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// The layer of [`record_request_starts`].
struct RequestStarts;

/// A request span's `request_id`, kept in the span's extensions.
struct RequestId(String);

/// Reads one field of a span or event as text.
struct FieldText {
    name: &'static str,
    value: Option<String>,
}

impl tracing::field::Visit for FieldText {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == self.name {
            self.value = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == self.name {
            self.value = Some(format!("{value:?}"));
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for RequestStarts
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() != "request" {
            return;
        }
        let mut field = FieldText {
            name: "request_id",
            value: None,
        };
        attrs.record(&mut field);
        if let (Some(value), Some(span)) = (field.value, ctx.span(id)) {
            span.extensions_mut().insert(RequestId(value));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut message = FieldText {
            name: "message",
            value: None,
        };
        event.record(&mut message);
        if message.value.as_deref() != Some("started processing request") {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(RequestId(id)) = span.extensions().get::<RequestId>() {
                if let Some(started) = watched_requests()
                    .lock()
                    .expect("watched requests")
                    .get_mut(id)
                {
                    *started = true;
                }
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Assertions

/// Reads a response as (status, JSON body), asserting the body is JSON.
pub async fn status_json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, body)
}

/// Asserts a DreamFactory error body with `status` and answers `context.reason` (or "").
pub async fn assert_error(response: Response, status: StatusCode) -> (String, String) {
    let (got, body) = status_json(response).await;
    assert_eq!(got, status, "unexpected status, body: {body}");
    let error = &body["error"];
    assert_eq!(error["code"], json!(status.as_u16()), "{body}");
    assert_eq!(error["status_code"], json!(status.as_u16()), "{body}");
    assert!(error["message"].is_string(), "{body}");
    assert!(error.get("context").is_some(), "{body}");
    (
        error["message"].as_str().unwrap_or_default().to_owned(),
        error["context"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The claims of a token, decoded without verification (for inspecting what was issued).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("claims json")
}

// ---------------------------------------------------------------------------------------------
// The real binary

/// A `tenure serve` process with JSON logs, started without waiting for anything: tests poll
/// its log (collected from standard error, one parsed line at a time) for what they expect.
pub struct TenureProcess {
    child: std::process::Child,
    logs: Arc<std::sync::Mutex<Vec<String>>>,
    /// Set once standard error has closed and every line of it is in `logs`.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl TenureProcess {
    /// Spawns `tenure` with a clean environment: `DATABASE_URL`, JSON logs, a random port,
    /// then `env`.
    pub fn spawn(database_url: &str, env: &[(&str, &str)]) -> TenureProcess {
        Self::spawn_via(&[], database_url, env)
    }

    /// The same, started through `wrapper` (such as `prlimit --nofile=…:… --`).
    pub fn spawn_via(wrapper: &[&str], database_url: &str, env: &[(&str, &str)]) -> TenureProcess {
        use std::io::BufRead;
        let binary = env!("CARGO_BIN_EXE_tenure");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tenure");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sink, done) = (logs.clone(), closed.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().expect("logs").push(line);
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        TenureProcess {
            child,
            logs,
            closed,
        }
    }

    /// Every line logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    pub fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    /// Every JSON log entry so far (lines that are not JSON are skipped).
    pub fn log_entries(&self) -> Vec<Value> {
        self.log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Polls the log until an entry whose `fields.message` is `message` appears; answers it.
    /// Panics (with the log) when the process exits first or `timeout` passes.
    pub async fn wait_for_message(&mut self, message: &str, timeout: std::time::Duration) -> Value {
        let what = format!("tenure to log {message:?}");
        let outcome = try_poll_until(&what, timeout, async || {
            if let Some(entry) = self
                .log_entries()
                .into_iter()
                .find(|e| e["fields"]["message"] == message)
            {
                return Ok(Ok(entry));
            }
            match self.exited() {
                Some(status) => Ok(Err(status)),
                None => Err("not logged yet".to_owned()),
            }
        })
        .await;
        match outcome {
            Ok((Ok(entry), _)) => entry,
            Ok((Err(status), _)) => {
                // The reader thread may still be draining the pipe: wait for it to see the end.
                self.wait_log_closed().await;
                panic!(
                    "tenure exited ({status}) before logging {message:?}; its log:\n{}",
                    self.log_text()
                )
            }
            Err(why) => panic!("{why}; its log:\n{}", self.log_text()),
        }
    }

    /// Waits for "tenure listening" and answers the base URL (`http://addr`).
    pub async fn wait_listening(&mut self, timeout: std::time::Duration) -> String {
        let entry = self.wait_for_message("tenure listening", timeout).await;
        let addr = entry["fields"]["addr"].as_str().expect("addr");
        format!("http://{addr}")
    }

    /// Kills the process at once (SIGKILL, as `kill -9`: nothing runs on its way out) and
    /// reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self, timeout: std::time::Duration) -> std::process::ExitStatus {
        let what = "tenure to exit";
        match try_poll_until(what, timeout, async || self.exited()).await {
            Ok((status, _)) => status,
            Err(why) => panic!("{why}; its log:\n{}", self.log_text()),
        }
    }

    /// Waits (bounded) until the thread reading standard error has seen it close.
    async fn wait_log_closed(&self) {
        let closed = self.closed.clone();
        let waited = std::time::Duration::from_secs(5);
        let _ = try_poll_until("the log to close", waited, async || {
            closed.load(std::sync::atomic::Ordering::SeqCst)
        })
        .await;
    }
}

impl Drop for TenureProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a probe of [`poll_until`] answers: the condition's value once it holds, or what was
/// seen instead (said in the failure message when the deadline passes).
pub trait Reached {
    type Value;
    fn reached(self) -> Result<Self::Value, String>;
}

impl Reached for bool {
    type Value = ();
    fn reached(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("not yet".into())
        }
    }
}

impl<T> Reached for Option<T> {
    type Value = T;
    fn reached(self) -> Result<T, String> {
        self.ok_or_else(|| "nothing yet".into())
    }
}

/// `Err` carries what was seen instead, for the failure message.
impl<T> Reached for Result<T, String> {
    type Value = T;
    fn reached(self) -> Result<T, String> {
        self
    }
}

/// The one way the tests wait: polls `probe` (at once, then every few milliseconds, backing
/// off to 50 ms) until the condition it observes holds, and answers its value. Panics when
/// `timeout` passes first, naming `what` was awaited and what the probe saw last.
pub async fn poll_until<R: Reached>(
    what: &str,
    timeout: std::time::Duration,
    probe: impl AsyncFnMut() -> R,
) -> R::Value {
    match try_poll_until(what, timeout, probe).await {
        Ok((value, _)) => value,
        Err(why) => panic!("{why}"),
    }
}

/// [`poll_until`] for callers that must clean up or gather more before failing: answers the
/// value and how long it took, or the failure message.
pub async fn try_poll_until<R: Reached>(
    what: &str,
    timeout: std::time::Duration,
    mut probe: impl AsyncFnMut() -> R,
) -> Result<(R::Value, std::time::Duration), String> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        let seen = match probe().await.reached() {
            Ok(value) => return Ok((value, started.elapsed())),
            Err(seen) => seen,
        };
        if started.elapsed() >= timeout {
            return Err(format!("waited {timeout:?} for {what}; last seen: {seen}"));
        }
        // The pause between two looks at the condition: the one sleep that waits for
        // anything, bounded by `timeout`.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

/// A port that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ---------------------------------------------------------------------------------------------
// Apps, API keys and roles

/// An app as `POST /api/v2/system/app` made it: its id and API key.
#[derive(Debug, Clone)]
pub struct TestAppKey {
    pub id: i64,
    pub key: String,
}

impl TestApp {
    /// Logs `email` in as an administrator (the user must exist and be one); answers the token.
    pub async fn admin_login_token(&self, email: &str) -> String {
        let response = self
            .request(Method::POST, "/api/v2/system/admin/session")
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("admin login");
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "admin login failed: {body}");
        body["session_token"].as_str().expect("token").to_owned()
    }

    /// An administrator's call with a JSON body (none for `Value::Null`).
    pub async fn admin_call(
        &self,
        admin: &str,
        method: Method,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path).bearer_auth(admin);
        if !body.is_null() {
            request = request.json(&body);
        }
        status_json(request.send().await.expect("request")).await
    }

    /// Creates an app through the admin API (`fields` besides `name`); answers its id and key.
    pub async fn create_app(&self, admin: &str, name: &str, fields: Value) -> TestAppKey {
        let mut record = json!({ "name": name });
        if let (Some(record), Some(fields)) = (record.as_object_mut(), fields.as_object()) {
            record.extend(fields.clone());
        }
        let (status, body) = self
            .admin_call(admin, Method::POST, "/api/v2/system/app", record)
            .await;
        assert_eq!(status, StatusCode::OK, "create app: {body}");
        let id = body["resource"][0]["id"].as_i64().expect("app id");
        let (status, body) = self
            .admin_call(
                admin,
                Method::GET,
                &format!("/api/v2/system/app/{id}"),
                Value::Null,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "read app: {body}");
        let key = body["api_key"].as_str().expect("api_key").to_owned();
        TestAppKey { id, key }
    }

    /// Creates a role through the admin API; answers its id.
    pub async fn create_role(&self, admin: &str, name: &str, active: bool) -> i64 {
        let (status, body) = self
            .admin_call(
                admin,
                Method::POST,
                "/api/v2/system/role",
                json!({ "name": name, "is_active": active }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "create role: {body}");
        body["resource"][0]["id"].as_i64().expect("role id")
    }

    /// PATCH /api/v2/system/app/{id}; panics unless 200; answers the app record.
    pub async fn patch_app(&self, admin: &str, id: i64, query: &str, body: Value) -> Value {
        let (status, body) = self
            .admin_call(
                admin,
                Method::PATCH,
                &format!("/api/v2/system/app/{id}{query}"),
                body,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "patch app: {body}");
        body
    }

    /// Sets `user_id`'s role for `app_id` (none removes it); panics unless 200.
    pub async fn set_user_role(
        &self,
        admin: &str,
        user_id: i64,
        app_id: i64,
        role_id: Option<i64>,
    ) {
        let (status, body) = self
            .admin_call(
                admin,
                Method::PATCH,
                &format!("/api/v2/system/user/{user_id}"),
                json!({ "user_to_app_to_role_by_user_id": [{ "app_id": app_id, "role_id": role_id }] }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "set user role: {body}");
    }

    /// POST /api/v2/user/session with an API key in `X-DreamFactory-API-Key`.
    pub async fn login_with_key(&self, email: &str, key: &str) -> Response {
        self.request(Method::POST, "/api/v2/user/session")
            .header("X-DreamFactory-API-Key", key)
            .json(&json!({ "email": email, "password": PASSWORD, "remember_me": true }))
            .send()
            .await
            .expect("login request")
    }

    /// Logs in with an API key; panics unless 200; answers the session answer.
    pub async fn login_body_with_key(&self, email: &str, key: &str) -> Value {
        let (status, body) = status_json(self.login_with_key(email, key).await).await;
        assert_eq!(status, StatusCode::OK, "login with key failed: {body}");
        body
    }

    /// The id of the user with `email`, as the session answer gives it.
    pub async fn user_id(&self, email: &str) -> i64 {
        let response = self.login(email, PASSWORD, false).await;
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["session_token"].as_str().expect("token").to_owned();
        assert_eq!(self.logout(&token).await.status(), StatusCode::OK);
        body["id"].as_i64().expect("id")
    }
}
