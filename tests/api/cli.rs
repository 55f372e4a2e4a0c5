//! The admin command line as an operator uses it: the real binary against a real database,
//! its exit status, what it prints, and what it does to sessions logged in over HTTP.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tenure::cli::NO_USER_HINT;

use crate::both_backends;
use crate::helpers::*;

const JANE: &str = "jane@example.com";
const BOB: &str = "bob@example.com";
const NEW_PASSWORD: &str = "a-brand-new-passphrase";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What one `tenure` command did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts exit status `code` and answers the run, for chaining.
    fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit status\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `tenure args…` on `database_url` with a clean environment (JSON logs), `stdin` as its
/// standard input.
fn tenure(database_url: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tenure");
    // A command that does not read its input may exit before this write: ignore the error.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    Run::from(child.wait_with_output().expect("wait for tenure"))
}

fn create(database_url: &str, email: &str, admin: bool) {
    let mut args = vec!["user", "create", "--email", email, "--password-stdin"];
    if admin {
        args.push("--admin");
    }
    tenure(database_url, &args, &format!("{PASSWORD}\n")).expect(0);
}

/// `tenure user list --json`, parsed; `email` narrows it to one user.
fn list_json(database_url: &str, email: Option<&str>) -> Vec<Value> {
    let mut args = vec!["user", "list", "--json"];
    if let Some(email) = email {
        args.extend(["--email", email]);
    }
    let run = tenure(database_url, &args, "").expect(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// A `tenure` server on `db` and an HTTP client for it.
struct Server {
    process: TenureProcess,
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn start(db: &TestDb) -> Server {
        let mut process = TenureProcess::spawn(&db.url, &[]);
        let base = process.wait_listening(START_TIMEOUT).await;
        Server {
            process,
            base,
            client: reqwest::Client::new(),
        }
    }

    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v2/user/session", self.base))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login")
    }

    async fn token(&self, email: &str) -> String {
        let (status, body) = status_json(self.login(email, PASSWORD).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["session_token"].as_str().expect("token").to_owned()
    }

    async fn get_session(&self, token: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/api/v2/user/session", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("get session")
    }

    async fn refresh(&self, token: &str) -> reqwest::Response {
        self.client
            .put(format!("{}/api/v2/user/session", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("refresh")
    }

    async fn assert_alive(&self, token: &str) {
        let (status, body) = status_json(self.get_session(token).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// The token's session is over: 403 with `reason` on GET, 401 on refresh.
    async fn assert_ended(&self, token: &str, reason: &str) {
        let (_, got) = assert_error(self.get_session(token).await, StatusCode::FORBIDDEN).await;
        assert_eq!(got, reason);
        assert_error(self.refresh(token).await, StatusCode::UNAUTHORIZED).await;
    }
}

both_backends! {
    async fn user_list_shows_every_user_and_one_by_email(backend) {
        let db = TestDb::new(backend).await;
        let empty = tenure(&db.url, &["user", "list"], "").expect(0);
        assert!(empty.stdout.contains("no users yet"), "{}", empty.stdout);
        assert_eq!(list_json(&db.url, None), Vec::<Value>::new());

        create(&db.url, JANE, false);
        create(&db.url, "admin@example.com", true);

        let table = tenure(&db.url, &["user", "list"], "").expect(0);
        let lines: Vec<&str> = table.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{}", table.stdout);
        for column in ["id", "email", "admin", "active", "sessions", "last login"] {
            assert!(lines[0].contains(column), "no {column:?} column: {}", lines[0]);
        }
        assert!(lines[1].contains(JANE) && lines[1].contains(" no "), "{}", lines[1]);
        assert!(lines[2].contains("admin@example.com") && lines[2].contains(" yes "), "{}", lines[2]);

        let users = list_json(&db.url, None);
        assert_eq!(users.len(), 2, "{users:?}");
        assert_eq!(users[0]["email"], JANE);
        assert_eq!(users[0]["is_sys_admin"], false);
        assert_eq!(users[0]["is_active"], true);
        assert_eq!(users[0]["live_sessions"], 0);
        assert_eq!(users[0]["last_login_date"], Value::Null);
        assert_eq!(users[1]["is_sys_admin"], true);
        let all = tenure(&db.url, &["user", "list", "--json"], "").expect(0);
        assert!(!all.stdout.contains("password_hash") && !all.stdout.contains("$argon2"),
            "the listing shows password hashes: {}", all.stdout);

        // The email is matched as logins match it (case-folded).
        let one = list_json(&db.url, Some("JANE@Example.com"));
        assert_eq!(one.len(), 1, "{one:?}");
        assert_eq!(one[0]["email"], JANE);

        let missing = tenure(&db.url, &["user", "list", "--email", "nobody@example.com"], "").expect(3);
        assert!(missing.stdout.is_empty(), "{}", missing.stdout);
        assert!(missing.stderr.contains("no user with email nobody@example.com"), "{}", missing.stderr);
    }

    async fn set_password_ends_every_session_and_only_the_new_password_logs_in(backend) {
        let db = TestDb::new(backend).await;
        create(&db.url, JANE, false);
        let server = Server::start(&db).await;
        let first = server.token(JANE).await;
        let second = server.token(JANE).await;
        assert_eq!(list_json(&db.url, Some(JANE))[0]["live_sessions"], 2);

        // Refused input changes nothing: exit 2, sessions alive, old password still good.
        let short = tenure(&db.url, &["user", "set-password", "--email", JANE, "--password-stdin"], "short\n")
            .expect(2);
        assert!(short.stderr.contains("password: The password must be at least"), "{}", short.stderr);
        let empty = tenure(&db.url, &["user", "set-password", "--email", JANE, "--password-stdin"], "\n")
            .expect(2);
        assert!(empty.stderr.contains("no password on standard input"), "{}", empty.stderr);
        let usage = tenure(&db.url, &["user", "set-password", "--email", JANE], "").expect(2);
        assert!(usage.stderr.contains("--password-stdin"), "{}", usage.stderr);
        server.assert_alive(&first).await;

        let unknown = tenure(&db.url, &["user", "set-password", "--email", BOB, "--password-stdin"],
            &format!("{NEW_PASSWORD}\n")).expect(3);
        assert!(unknown.stderr.contains(&format!("no user with email {BOB}")), "{}", unknown.stderr);

        let done = tenure(&db.url, &["user", "set-password", "--email", JANE, "--password-stdin"],
            &format!("{NEW_PASSWORD}\n")).expect(0);
        assert!(done.stdout.contains(&format!("password set for user 1 <{JANE}>; ended 2 session(s)")),
            "{}", done.stdout);
        assert!(!done.stdout.contains(NEW_PASSWORD) && !done.stderr.contains(NEW_PASSWORD));
        server.assert_ended(&first, "password_changed").await;
        server.assert_ended(&second, "password_changed").await;
        assert_eq!(list_json(&db.url, Some(JANE))[0]["live_sessions"], 0);

        assert_error(server.login(JANE, PASSWORD).await, StatusCode::UNAUTHORIZED).await;
        let (status, body) = status_json(server.login(JANE, NEW_PASSWORD).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn deactivate_ends_sessions_until_activate_lets_the_user_back(backend) {
        let db = TestDb::new(backend).await;
        create(&db.url, JANE, false);
        let server = Server::start(&db).await;
        let token = server.token(JANE).await;

        let done = tenure(&db.url, &["user", "deactivate", "--email", JANE], "").expect(0);
        assert!(done.stdout.contains(&format!("deactivated user 1 <{JANE}>")), "{}", done.stdout);
        server.assert_ended(&token, "user_inactive").await;
        assert_error(server.login(JANE, PASSWORD).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(list_json(&db.url, Some(JANE))[0]["is_active"], false);
        let again = tenure(&db.url, &["user", "deactivate", "--email", JANE], "").expect(0);
        assert!(again.stdout.contains("was already inactive"), "{}", again.stdout);

        let back = tenure(&db.url, &["user", "activate", "--email", JANE], "").expect(0);
        assert!(back.stdout.contains(&format!("activated user 1 <{JANE}>")), "{}", back.stdout);
        let again = tenure(&db.url, &["user", "activate", "--email", JANE], "").expect(0);
        assert!(again.stdout.contains("was already active"), "{}", again.stdout);
        let fresh = server.token(JANE).await;
        server.assert_alive(&fresh).await;
        // Reactivation starts over: the sessions it ended stay ended.
        server.assert_ended(&token, "user_inactive").await;

        for command in ["deactivate", "activate"] {
            let unknown = tenure(&db.url, &["user", command, "--email", BOB], "").expect(3);
            assert!(unknown.stderr.contains(&format!("no user with email {BOB}")), "{}", unknown.stderr);
        }
    }

    async fn delete_removes_the_user_and_ends_their_sessions(backend) {
        let db = TestDb::new(backend).await;
        create(&db.url, JANE, false);
        create(&db.url, BOB, false);
        let server = Server::start(&db).await;
        let first = server.token(JANE).await;
        let second = server.token(JANE).await;
        let bobs = server.token(BOB).await;

        let done = tenure(&db.url, &["user", "delete", "--email", JANE], "").expect(0);
        assert!(done.stdout.contains(&format!("deleted user 1 <{JANE}>; ended 2 session(s)")),
            "{}", done.stdout);
        server.assert_ended(&first, "revoked").await;
        server.assert_ended(&second, "revoked").await;
        assert_error(server.login(JANE, PASSWORD).await, StatusCode::UNAUTHORIZED).await;
        server.assert_alive(&bobs).await;
        // Her rows are gone, Bob's session stays.
        assert_eq!(db.dump("sessions").await.len(), 1);
        let users = list_json(&db.url, None);
        assert_eq!(users.len(), 1, "{users:?}");
        assert_eq!(users[0]["email"], BOB);

        tenure(&db.url, &["user", "list", "--email", JANE], "").expect(3);
        let again = tenure(&db.url, &["user", "delete", "--email", JANE], "").expect(3);
        assert!(again.stderr.contains(&format!("no user with email {JANE}")), "{}", again.stderr);

        // The email is free again; the new account is a new user, and the old tokens stay dead.
        create(&db.url, JANE, false);
        assert_eq!(list_json(&db.url, Some(JANE))[0]["id"], 3);
        server.assert_ended(&first, "revoked").await;
        let (status, body) = status_json(server.login(JANE, PASSWORD).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn the_first_start_without_a_user_says_how_to_create_an_admin(backend) {
        let db = TestDb::new(backend).await;
        let mut server = Server::start(&db).await;
        server.process.wait_for_message(NO_USER_HINT, START_TIMEOUT).await;
        let hints = server
            .process
            .log_entries()
            .into_iter()
            .filter(|e| e["fields"]["message"] == NO_USER_HINT)
            .count();
        assert_eq!(hints, 1, "{}", server.process.log_text());
        drop(server);

        // Once a user exists, no more hint. The check runs before the server accepts, so a
        // request answered means the hint would be logged by now.
        create(&db.url, "admin@example.com", true);
        let server = Server::start(&db).await;
        let live = server.client.get(format!("{}/health/live", server.base)).send().await.expect("live");
        assert_eq!(live.status(), StatusCode::OK);
        assert!(!server.process.log_text().contains(NO_USER_HINT), "{}", server.process.log_text());
    }
}

#[test]
fn version_names_the_git_revision() {
    // No configuration at all: --version needs none.
    let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--version")
        .env_clear()
        .output()
        .expect("run tenure --version");
    let run = Run::from(output).expect(0);
    let revision = env!("TENURE_GIT_REVISION");
    assert!(!revision.is_empty());
    assert_eq!(
        run.stdout.trim(),
        format!("tenure {} ({revision})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_with_clap_s_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["user", "delete"])
        .env_clear()
        .output()
        .expect("run tenure");
    let run = Run::from(output).expect(2);
    assert!(run.stderr.contains("--email"), "{}", run.stderr);
}

/// Starts `tenure` (serve) on a fresh SQLite database with no `LOG_FORMAT`, its standard error
/// a pipe, or a terminal when `terminal` (through util-linux `script`, which runs a command on
/// a pseudo-terminal); answers the first line that mentions the no-user hint.
fn first_hint_line(terminal: bool) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("tenure.db").display());
    let binary = env!("CARGO_BIN_EXE_tenure");
    let mut command = if terminal {
        let mut c = Command::new("script");
        c.args(["-qefc", binary, "/dev/null"]);
        c
    } else {
        Command::new(binary)
    };
    let mut child = command
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &url)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start tenure (terminal: {terminal}; needs util-linux `script`): {e}")
        });
    // On a terminal, everything arrives on script's standard output; otherwise the logs are on
    // standard error.
    let stream: Box<dyn std::io::Read + Send> = if terminal {
        Box::new(child.stdout.take().expect("stdout"))
    } else {
        Box::new(child.stderr.take().expect("stderr"))
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) if line.contains("no user exists yet") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    found.unwrap_or_else(|| {
        panic!(
            "no hint within {START_TIMEOUT:?}; output:\n{}",
            seen.join("\n")
        )
    })
}

#[test]
fn logs_are_readable_on_a_terminal_and_json_otherwise() {
    let piped = first_hint_line(false);
    let entry: Value = serde_json::from_str(&piped)
        .unwrap_or_else(|e| panic!("not a JSON log line on a pipe ({e}): {piped}"));
    assert_eq!(entry["fields"]["message"], NO_USER_HINT);
    assert_eq!(entry["level"], "WARN");

    let shown = first_hint_line(true);
    assert!(
        serde_json::from_str::<Value>(&shown).is_err(),
        "JSON on a terminal: {shown}"
    );
    assert!(
        shown.contains("WARN") && shown.contains(NO_USER_HINT),
        "{shown}"
    );
}
