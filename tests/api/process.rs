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
