//! The real binary's logs, at debug level, through a whole session's life: they say what
//! happened (logins, failures, refreshes, logouts) and never carry a password, a token, a
//! token's signature, a full session id, or the signing secret.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

/// How long the process may take to start listening (it runs migrations first) or to stop.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

const EMAIL: &str = "log.watcher@example.com";

/// `tenure` with a clean environment (and no `.env`: it runs in an empty directory).
fn tenure(dir: &Path, database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenure"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "debug")
        .env("LOG_FORMAT", "json");
    command
}

/// Creates the user with `tenure user create --password-stdin`; its stderr goes to `log`.
fn create_user(dir: &Path, database_url: &str, log: &Path) {
    let mut child = tenure(dir, database_url)
        .args(["user", "create", "--email", EMAIL, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(File::create(log).expect("cli log"))
        .spawn()
        .expect("spawn tenure user create");
    writeln!(child.stdin.take().expect("stdin"), "{PASSWORD}").expect("write password");
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "user create failed: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Kills the server if a test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Polls `log` for the "tenure listening" line and answers its `addr`.
async fn wait_for_listening(server: &mut Server, log: &Path) -> String {
    let outcome = try_poll_until("tenure to listen", PROCESS_TIMEOUT, async || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let listening = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|entry| entry["fields"]["message"] == "tenure listening");
        if let Some(entry) = listening {
            return Ok(Ok(entry["fields"]["addr"]
                .as_str()
                .expect("addr")
                .to_owned()));
        }
        match server.0.try_wait().expect("try_wait") {
            Some(status) => Ok(Err(status)),
            None => Err("not listening yet".to_owned()),
        }
    })
    .await;
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    match outcome {
        Ok((Ok(addr), _)) => addr,
        Ok((Err(status), _)) => {
            panic!(
                "tenure exited ({status}) before listening; its log:\n{}",
                log()
            )
        }
        Err(why) => panic!("{why}; its log:\n{}", log()),
    }
}

/// SIGTERM, then a bounded wait for the exit.
async fn terminate(server: &mut Server) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM failed");
    poll_until(
        "tenure to stop after SIGTERM",
        PROCESS_TIMEOUT,
        async || server.0.try_wait().expect("try_wait"),
    )
    .await
}

/// The log's JSON lines' messages.
fn messages(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|entry| entry["fields"]["message"].as_str().map(str::to_owned))
        .collect()
}

both_backends! {
    async fn a_whole_session_life_leaves_no_secret_in_the_logs(backend) {
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let cli_log = dir.path().join("cli.log");
        let log = dir.path().join("server.log");
        create_user(dir.path(), &db.url, &cli_log);

        let child = tenure(dir.path(), &db.url)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("DF_ALLOW_FOREVER_SESSIONS", "true")
            .env("DF_JWT_TTL", "2s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("server log"))
            .spawn()
            .expect("spawn tenure");
        let mut server = Server(child);
        let addr = wait_for_listening(&mut server, &log).await;
        let base = format!("http://{addr}");
        let client = reqwest::Client::new();
        let session = format!("{base}/api/v2/user/session");

        // Log in (forever).
        let response = client.post(&session)
            .header("User-Agent", "log-test/1.0")
            .json(&json!({ "email": EMAIL, "password": PASSWORD, "remember_me": true }))
            .send().await.expect("login");
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let first = body["session_token"].as_str().expect("token").to_owned();
        assert_eq!(claims(&first)["forever"], json!(true));

        // The token from all three sources.
        let by_bearer = client.get(&session).bearer_auth(&first).send().await.expect("get");
        assert_eq!(by_bearer.status(), StatusCode::OK);
        let by_header = client.get(&session)
            .header("X-DreamFactory-Session-Token", &first)
            .send().await.expect("get");
        assert_eq!(by_header.status(), StatusCode::OK);
        let by_query = client.get(&session).query(&[("session_token", &first)])
            .send().await.expect("get");
        assert_eq!(by_query.status(), StatusCode::OK);

        // A wrong password, and a password sent in the query string.
        let response = client.post(&session)
            .json(&json!({ "email": EMAIL, "password": "Wrong-Password-42", "remember_me": true }))
            .send().await.expect("login");
        assert_error(response, StatusCode::UNAUTHORIZED).await;
        let response = client.post(&session)
            .query(&[("password", PASSWORD)])
            .json(&json!({ "email": EMAIL }))
            .send().await.expect("login");
        assert_error(response, StatusCode::BAD_REQUEST).await;

        // Real time passes (a separate process: no test clock): the token expires, and is
        // refreshed.
        let expired = poll_until("the first token to expire", PROCESS_TIMEOUT, async || {
            let response = client.get(&session).bearer_auth(&first).send().await.expect("get");
            match response.status() {
                StatusCode::OK => None,
                _ => Some(response),
            }
        }).await;
        let (_, reason) = assert_error(expired, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "expired");
        let response = client.put(&session).bearer_auth(&first).send().await.expect("refresh");
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let second = body["session_token"].as_str().expect("token").to_owned();
        assert_ne!(second, first);

        // The replaced token is dead for access (within the grace a refresh would still be
        // answered; the grace is not waited out here).
        let stale = client.get(&session).bearer_auth(&first).send().await.expect("get");
        assert_error(stale, StatusCode::FORBIDDEN).await;

        // The new token in the query string, then a logout with it.
        let by_query = client.request(Method::GET, &session).query(&[("session_token", &second)])
            .send().await.expect("get");
        assert_eq!(by_query.status(), StatusCode::OK);
        let response = client.delete(&session).query(&[("session_token", &second)])
            .send().await.expect("logout");
        let (status, body) = status_json(response).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
        let dead = client.get(&session).bearer_auth(&second).send().await.expect("get");
        assert_error(dead, StatusCode::FORBIDDEN).await;

        // Forged and garbage tokens are logged without their text either.
        let forged = format!("{}.{}", &second[..second.rfind('.').expect("dot")], "forgedsignature");
        let response = client.get(&session).bearer_auth(&forged).send().await.expect("get");
        assert_error(response, StatusCode::UNAUTHORIZED).await;

        let status = terminate(&mut server).await;
        assert!(status.success(), "exit status {status:?}");

        let server_text = std::fs::read_to_string(&log).expect("server log");
        let cli_text = std::fs::read_to_string(&cli_log).expect("cli log");
        assert!(!server_text.trim().is_empty(), "the server logged nothing");
        for line in server_text.lines() {
            assert!(serde_json::from_str::<Value>(line).is_ok(), "not a JSON log line: {line}");
        }

        // What happened is there.
        let said = messages(&server_text);
        for expected in ["tenure listening", "login", "login failed", "refresh", "logout",
                         "shutdown signal received, draining", "stopped"] {
            assert!(said.iter().any(|m| m == expected), "no {expected:?} event among {said:?}");
        }
        let cli_said = messages(&cli_text);
        assert!(cli_said.iter().any(|m| m == "user created"), "{cli_said:?}");

        // What must never be there is not.
        let secrets = db.stored_key_secrets().await;
        assert_eq!(secrets.len(), 1, "{secrets:?}");
        let mut forbidden: Vec<(String, String)> = vec![
            ("the password".into(), PASSWORD.into()),
            ("the wrong password".into(), "Wrong-Password-42".into()),
            ("the signing secret".into(), secrets[0].clone()),
        ];
        for (name, token) in [("first token", &first), ("second token", &second), ("forged token", &forged)] {
            let parts: Vec<&str> = token.split('.').collect();
            forbidden.push((name.to_owned(), token.to_string()));
            forbidden.push((format!("{name}'s payload"), parts[1].to_owned()));
            forbidden.push((format!("{name}'s signature"), parts[2].to_owned()));
            let sid = claims(token)["sid"].as_str().expect("sid").to_owned();
            forbidden.push((format!("{name}'s full session id"), sid.clone()));
            forbidden.push((format!("{name}'s full session id (simple)"), sid.replace('-', "")));
        }
        for (name, value) in &forbidden {
            for (log_name, text) in [("server", &server_text), ("CLI", &cli_text)] {
                let leaks: Vec<&str> = text.lines().filter(|l| l.contains(value.as_str())).collect();
                assert!(leaks.is_empty(), "{name} is in the {log_name} log:\n{}", leaks.join("\n"));
            }
        }
    }
}
