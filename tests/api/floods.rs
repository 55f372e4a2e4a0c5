//! Slow clients and connection floods (issue 18, item 7): a client holding thousands of
//! half-sent requests, against a server started with the common container soft limit of 1 024
//! open files, does not stop another client's session check from answering at once, and the
//! half-sent requests are closed once `HEADER_READ_TIMEOUT` has passed.
//!
//! What makes it hold: tenure raises its soft open-file limit to the hard limit at start, caps
//! its connections below that (so accepting never starves the database pool), and closes a
//! connection whose headers do not arrive in time.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const HALF_SENT: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_half_sent_requests_do_not_stop_other_clients() {
    // This process needs room for its own end of every connection.
    rlimit::increase_nofile_limit(u64::MAX).expect("raise this test's open-file limit");
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("limits");
    assert!(
        hard >= (HALF_SENT as u64) * 2 + 256,
        "the hard open-file limit ({hard}) is too low for this test"
    );
    let db = TestDb::new(Backend::Sqlite).await;
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args([
            "user",
            "create",
            "--email",
            "flood@example.com",
            "--password-stdin",
        ])
        .env("DATABASE_URL", &db.url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(PASSWORD.as_bytes())?;
            child.wait()
        })
        .expect("create the user");
    assert!(created.success());
    let nofile = format!("--nofile=1024:{hard}");
    let mut server = TenureProcess::spawn_via(
        &["prlimit", &nofile, "--"],
        &db.url,
        &[
            ("HEADER_READ_TIMEOUT", "3s"),
            ("DF_ALLOW_FOREVER_SESSIONS", "true"),
        ],
    );
    let base = server.wait_listening(Duration::from_secs(30)).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{base}/api/v2/user/session"))
        .json(&json!({ "email": "flood@example.com", "password": PASSWORD, "remember_me": true }))
        .send()
        .await
        .expect("login");
    let (status, body) = status_json(login).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["session_token"].as_str().expect("token").to_owned();

    // One client opens many connections and never finishes its request headers.
    let mut held = Vec::with_capacity(HALF_SENT);
    for _ in 0..HALF_SENT {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        stream
            .write_all(b"GET /api/v2/user/session HTTP/1.1\r\nHost: flood\r\nX-Slow: ")
            .await
            .expect("half a request");
        held.push(stream);
    }

    // Another client's session check still answers at once.
    let started = Instant::now();
    let check = client
        .get(format!("{base}/api/v2/user/session"))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("a session check while the flood holds");
    assert_eq!(check.status(), StatusCode::OK);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "the check took {took:?}");

    // The half-sent requests are closed once the header timeout has passed.
    poll_until(
        "the server to close every half-sent request",
        Duration::from_secs(20),
        async || {
            let mut open = 0;
            for stream in &mut held {
                let mut byte = [0u8; 512];
                match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {}
                    // A 408 or similar answer before closing counts as closed too.
                    Ok(Ok(_)) => {}
                    Err(_) => open += 1,
                }
            }
            if open == 0 {
                Ok(())
            } else {
                Err(format!("{open} still open"))
            }
        },
    )
    .await;
    let limits = server.log_entries();
    assert!(
        limits
            .iter()
            .any(|e| e["fields"]["message"] == "open-file limit"
                && e["fields"]["soft_before"].as_u64() == Some(1024)
                && e["fields"]["soft"].as_u64() == Some(hard)),
        "the raised limit is logged: {}",
        server.log_text()
    );
    server.sigterm();
}
