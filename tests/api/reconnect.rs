//! A restarted database costs no request (issue 18, item 1): every pooled connection to the old
//! server is broken, and a statement that fails on one is run again on a fresh connection.
//! After a fast (`-m fast`) or an immediate (`-m immediate`) restart, once PostgreSQL accepts
//! connections again, requests sent through every pooled connection all succeed.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

const EMAIL: &str = "restart@example.com";
/// More than the pool's 16 connections, so every one of them is used.
const CONCURRENT: usize = 40;

async fn every_request_succeeds(app: &TestApp, tokens: &[String], round: &str) {
    let calls: Vec<_> = (0..CONCURRENT)
        .map(|i| {
            let token = &tokens[i % tokens.len()];
            match i % 3 {
                0 => spawn_call(app, Method::GET, "/api/v2/user/sessions", token),
                1 => spawn_call(app, Method::GET, "/api/v2/user/session", token),
                _ => spawn_call(app, Method::GET, "/api/v2/user/profile", token),
            }
        })
        .collect();
    for call in calls {
        let (status, body) = call.await.expect("request task");
        assert_eq!(status, StatusCode::OK, "{round}: {body}");
    }
}

async fn restart_costs_no_request(mode: StopMode) {
    let cluster = OwnedCluster::start().await;
    let db = cluster.database().await;
    // The owned cluster runs with synchronous_commit off for speed, so a crash could forget
    // committed logins; production keeps it on (RELIABILITY.md), and so does this database.
    db.execute(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = on', \
         current_database()); END $$",
    )
    .await;
    let app = TestApp::start(db, TestConfig::new(), tenure::clock::TestClock::new()).await;
    app.create_user(EMAIL, false).await;
    let tokens = login_tokens(&app, EMAIL, 4).await;
    // Fill the pool.
    every_request_succeeds(&app, &tokens, "before the restart").await;

    cluster.stop_with(mode).await;
    cluster.restart().await;

    every_request_succeeds(&app, &tokens, "right after the restart").await;
    // Refreshes go through the rotation task's connection too.
    let mut refreshed = Vec::new();
    for token in &tokens {
        refreshed.push(app.refresh_token(token).await);
    }
    every_request_succeeds(&app, &refreshed, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_restart_of_postgresql_costs_no_request() {
    restart_costs_no_request(StopMode::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_restart_of_postgresql_costs_no_request() {
    restart_costs_no_request(StopMode::Immediate).await;
}
