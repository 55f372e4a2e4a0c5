//! The real binary as operators run it: separate `tenure` processes on one database.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

/// How long a process may take to start listening (it runs migrations first).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A `tenure` process; its standard error (the logs) is collected in `logs`.
pub struct BinaryServer {
    pub base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    child: Child,
}

impl BinaryServer {
    /// Starts `tenure` (serve) with `DATABASE_URL`, JSON logs on a random port, and `env`.
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> BinaryServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tenure"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn tenure");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                    if entry["fields"]["message"] == "tenure listening" {
                        let addr = entry["fields"]["addr"].as_str().unwrap_or_default();
                        let _ = addr_tx.send(addr.to_owned());
                    }
                }
                sink.lock().expect("logs").push(line);
            }
        });
        let addr = addr_rx.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
            panic!(
                "tenure did not start listening; its log:\n{}",
                logs.lock().expect("logs").join("\n")
            )
        });
        BinaryServer {
            base: format!("http://{addr}"),
            logs,
            child,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }

    /// Sends SIGTERM and waits for a graceful exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait")
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tenure user create --email E --password-stdin`, as the README shows.
pub fn create_user_with_cli(database_url: &str, email: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args([
            "user",
            "create",
            "--email",
            email,
            "--password-stdin",
            "--name",
            "Jane Doe",
        ])
        .env("DATABASE_URL", database_url)
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tenure user create");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write password");
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "user create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains(password));
}

async fn call(method: Method, url: String, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

both_backends! {
    async fn two_processes_share_sessions_and_logouts(backend) {
        let db = TestDb::new(backend).await;
        create_user_with_cli(&db.url, "jane@example.com", PASSWORD);
        // No JWT_SECRET: both processes must agree on the generated one.
        let env = [("DF_ALLOW_FOREVER_SESSIONS", "true")];
        let a = BinaryServer::start(&db.url, &env);
        let b = BinaryServer::start(&db.url, &env);

        let response = reqwest::Client::new()
            .post(a.url("/api/v2/user/session"))
            .json(&json!({ "email": "jane@example.com", "password": PASSWORD, "remember_me": true }))
            .send()
            .await
            .expect("login");
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let first = body["session_token"].as_str().unwrap().to_owned();

        // A token from A works and refreshes on B.
        assert_eq!(call(Method::GET, b.url("/api/v2/user/session"), &first).await.status(), StatusCode::OK);
        let (status, body) = status_json(call(Method::PUT, b.url("/api/v2/user/session"), &first).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let second = body["session_token"].as_str().unwrap().to_owned();
        // The replaced token is dead on A at once.
        assert_eq!(call(Method::GET, a.url("/api/v2/user/session"), &first).await.status(), StatusCode::FORBIDDEN);

        // A logout on A is enforced by B immediately.
        let (status, body) = status_json(call(Method::DELETE, a.url("/api/v2/user/session"), &second).await).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
        assert_error(call(Method::GET, b.url("/api/v2/user/session"), &second).await, StatusCode::FORBIDDEN).await;
        assert_error(call(Method::PUT, b.url("/api/v2/user/session"), &second).await, StatusCode::UNAUTHORIZED).await;
    }

    async fn sigterm_stops_the_server_gracefully(backend) {
        let db = TestDb::new(backend).await;
        let mut server = BinaryServer::start(&db.url, &[]);
        let response = reqwest::get(server.url("/api/v2/system/environment")).await.expect("get");
        assert_eq!(response.status(), StatusCode::OK);
        let status = server.terminate();
        assert!(status.success(), "exit status {status:?}");
        assert!(server.log_text().contains("shutdown signal received"));
    }
}

#[test]
fn an_invalid_setting_stops_the_start_naming_the_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .env("DF_JWT_TTL", "soon")
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .expect("run tenure");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DF_JWT_TTL"), "{stderr}");
}

/// The PUT answer's token, or the status and body.
async fn refresh_on(base: &str, token: &str) -> Result<String, (StatusCode, Value)> {
    let url = format!("{base}/api/v2/user/session");
    let (status, body) = status_json(call(Method::PUT, url, token).await).await;
    match body["session_token"].as_str() {
        Some(next) if status == StatusCode::OK => Ok(next.to_owned()),
        _ => Err((status, body)),
    }
}

/// Two processes on one SQLite file (issue 18, item 6) keep every rule of the race tests:
/// racing refreshes on both get the identical successor, a lost answer retried on the other
/// process gets it too, a replayed token revokes, a logout on one is seen on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_sqlite_file_keep_the_race_rules() {
    const ROUNDS: usize = 25;
    const RACERS: usize = 6;
    let db = TestDb::new(Backend::Sqlite).await;
    create_user_with_cli(&db.url, "race@example.com", PASSWORD);
    let env = [("DF_ALLOW_FOREVER_SESSIONS", "true")];
    let a = BinaryServer::start(&db.url, &env);
    let b = BinaryServer::start(&db.url, &env);
    let servers = [&a, &b];
    let login = |server: &BinaryServer| {
        reqwest::Client::new()
            .post(server.url("/api/v2/user/session"))
            .json(
                &json!({ "email": "race@example.com", "password": PASSWORD, "remember_me": true }),
            )
            .send()
    };
    let (status, body) = status_json(login(&a).await.expect("login")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut history = vec![body["session_token"].as_str().unwrap().to_owned()];

    for round in 0..ROUNDS {
        let token = history.last().unwrap().clone();
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let token = token.clone();
                let here = servers[i % 2].base.clone();
                let there = servers[(i + 1) % 2].base.clone();
                tokio::spawn(async move {
                    let first = refresh_on(&here, &token).await;
                    // Every third racer loses its answer and retries on the other process.
                    if i % 3 == 0 {
                        refresh_on(&there, &token).await
                    } else {
                        first
                    }
                })
            })
            .collect();
        let mut successors = Vec::new();
        for racer in racers {
            successors.push(racer.await.expect("racer"));
        }
        let first = successors[0]
            .clone()
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        for (i, s) in successors.iter().enumerate() {
            assert_eq!(
                s.as_ref(),
                Ok(&first),
                "round {round}, racer {i}: not the identical successor"
            );
        }
        for server in servers {
            let get = call(Method::GET, server.url("/api/v2/user/session"), &first).await;
            assert_eq!(get.status(), StatusCode::OK, "round {round}: the successor");
            let old = call(Method::GET, server.url("/api/v2/user/session"), &token).await;
            assert_eq!(
                old.status(),
                StatusCode::FORBIDDEN,
                "round {round}: the replaced token"
            );
        }
        history.push(first);
    }

    // A token two generations behind is reuse: the session ends on both processes.
    let (status, body) = refresh_on(&b.base, &history[history.len() - 3])
        .await
        .unwrap_err();
    assert_eq!(
        (status, body["error"]["context"]["reason"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_reuse")),
        "{body}"
    );
    for server in servers {
        let get = call(
            Method::GET,
            server.url("/api/v2/user/session"),
            history.last().unwrap(),
        )
        .await;
        assert_eq!(get.status(), StatusCode::FORBIDDEN);
    }

    // A logout on one process holds on the other.
    let (status, body) = status_json(login(&b).await.expect("login")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["session_token"].as_str().unwrap().to_owned();
    assert_eq!(
        call(Method::DELETE, b.url("/api/v2/user/session"), &token)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(Method::GET, a.url("/api/v2/user/session"), &token)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert!(refresh_on(&a.base, &token).await.is_err());
}
