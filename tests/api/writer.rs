//! The SQLite writer (`src/store/sqlite/writer.rs`, issue 17 item 1): every write goes to one
//! task on one connection, which commits the writes waiting together. What must hold, seen over
//! HTTP: load answers no `database is locked` 503 and breaks no chain; a write that fails in a
//! shared transaction fails alone; a write whose caller stopped waiting is not committed; and
//! an answer is only given for a committed write.
//!
//! The load and the failing-write tests run on both backends (the promises are the same on
//! PostgreSQL); the ones that hold SQLite's write lock from the test are SQLite's own. Holding
//! the lock (`BEGIN IMMEDIATE` on a connection of the test) makes the writer wait in its own
//! `BEGIN IMMEDIATE`, so every write sent meanwhile queues behind it and the queue is committed
//! as one batch once the lock goes.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Row, SqliteConnection};

use crate::both_backends;
use crate::helpers::*;

const SESSION: &str = "/api/v2/user/session";
const ROLES: &str = "/api/v2/system/role";
const REGISTER: &str = "/api/v2/user/register";
const ADMIN: &str = "admin@example.com";

/// Clients each refreshing a chain of its own, and how many refreshes each makes.
const CHAINS: usize = 48;
const CHAIN_ROUNDS: i64 = 20;
/// Clients each logging in, checking, refreshing and logging out, and how many times.
const CHURNERS: usize = 16;
const CHURN_ROUNDS: usize = 3;

fn gen(token: &str) -> i64 {
    claims(token)["gen"].as_i64().expect("gen claim")
}

fn token_in(body: &Value) -> String {
    body["session_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no session_token in {body}"))
        .to_owned()
}

/// `method` on the session endpoint at `base` with `token`: (status, body).
async fn call(client: &Client, method: Method, base: &str, token: &str) -> (StatusCode, Value) {
    let response = client
        .request(method, format!("{base}{SESSION}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("session request");
    status_json(response).await
}

/// The one integer `sql` answers, read straight from the database.
async fn scalar(db: &TestDb, sql: &str) -> i64 {
    match db.backend {
        Backend::Sqlite => {
            let mut c = SqliteConnection::connect(&db.url).await.expect("connect");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut c)
                .await
                .expect("query");
            row.get::<i64, _>(0)
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut c)
                .await
                .expect("query");
            row.get::<i64, _>(0)
        }
    }
}

/// SQLite's write lock, taken by the test on the server's database file: the writer's next
/// `BEGIN IMMEDIATE` waits (up to its `busy_timeout`, 5 s) until [`release`].
async fn hold_write_lock(db: &TestDb) -> SqliteConnection {
    let mut conn = SqliteConnection::connect(&db.url).await.expect("connect");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .expect("take the write lock");
    conn
}

async fn release(mut conn: SqliteConnection) {
    sqlx::query("ROLLBACK")
        .execute(&mut conn)
        .await
        .expect("release the write lock");
}

/// Refreshes its own chain `CHAIN_ROUNDS` times; after each refresh the new token is checked at
/// once (a read on another connection: it sees the rotation only once it is committed).
async fn refresh_chain(client: Client, base: String, mut token: String) -> String {
    for round in 0..CHAIN_ROUNDS {
        let (status, body) = call(&client, Method::PUT, &base, &token).await;
        assert_eq!(status, StatusCode::OK, "refresh {round} of a chain: {body}");
        let next = token_in(&body);
        assert_eq!(gen(&next), gen(&token) + 1, "one rotation per refresh");
        let (status, body) = call(&client, Method::GET, &base, &next).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the token a refresh answered: {body}"
        );
        token = next;
    }
    token
}

/// Logs in, checks, refreshes, checks and logs out `CHURN_ROUNDS` times; answers the tokens it
/// logged out.
async fn churn(client: Client, base: String, email: String) -> Vec<String> {
    let mut ended = Vec::new();
    for round in 0..CHURN_ROUNDS {
        let response = client
            .post(format!("{base}{SESSION}"))
            .json(&json!({ "email": email, "password": PASSWORD, "remember_me": true }))
            .send()
            .await
            .expect("login request");
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "login {round}: {body}");
        let token = token_in(&body);
        let (status, body) = call(&client, Method::GET, &base, &token).await;
        assert_eq!(status, StatusCode::OK, "check after login {round}: {body}");
        let (status, body) = call(&client, Method::PUT, &base, &token).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "refresh after login {round}: {body}"
        );
        let token = token_in(&body);
        let (status, body) = call(&client, Method::DELETE, &base, &token).await;
        assert_eq!(status, StatusCode::OK, "logout {round}: {body}");
        let (status, body) = call(&client, Method::GET, &base, &token).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "check after logout {round}: {body}"
        );
        ended.push(token);
    }
    ended
}

/// The names of every role, as the admin API lists them, sorted.
async fn role_names(app: &TestApp, admin: &str) -> Vec<String> {
    let (status, list) = app.admin_call(admin, Method::GET, ROLES, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut names: Vec<String> = list["resource"]
        .as_array()
        .expect("role list")
        .iter()
        .map(|r| r["name"].as_str().expect("role name").to_owned())
        .collect();
    names.sort();
    names
}

fn post_role(app: &TestApp, admin: &str, name: &str) -> Call {
    start_request(
        app.request(Method::POST, ROLES)
            .bearer_auth(admin)
            .json(&json!({ "name": name })),
    )
}

fn post_register(app: &TestApp, email: &str) -> Call {
    start_request(
        app.request(Method::POST, REGISTER)
            .json(&json!({ "email": email, "password": PASSWORD })),
    )
}

fn post_login(app: &TestApp, email: &str) -> Call {
    start_request(
        app.request(Method::POST, SESSION)
            .json(&json!({ "email": email, "password": PASSWORD, "remember_me": true })),
    )
}

/// A 400 "Validation failed" naming `field` as taken.
fn assert_taken(answer: &(StatusCode, Value), field: &str, what: &str) {
    let (status, body) = answer;
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{what}: {body}");
    let said = body["error"]["context"][field][0]
        .as_str()
        .unwrap_or_default();
    assert!(said.contains("already been taken"), "{what}: {body}");
}

both_backends! {
    async fn sixty_four_clients_refreshing_logging_in_and_out_never_get_a_503(backend) {
        // 48 clients each refresh their own chain 20 times, checking every new token at once,
        // while 16 others log in, check, refresh and log out 3 times: every answer is the one
        // the rules give (on SQLite, before the writer, some were 503 "database is locked").
        let config = TestConfig::new().var("MAX_SESSIONS_PER_USER", "100000");
        let app = spawn_app_with(backend, config).await;
        app.create_user("chains@example.com", false).await;
        app.create_user("churn@example.com", false).await;
        let firsts = login_tokens(&app, "chains@example.com", CHAINS).await;

        let chains: Vec<_> = firsts
            .iter()
            .map(|t| tokio::spawn(refresh_chain(app.client.clone(), app.base.clone(), t.clone())))
            .collect();
        let churners: Vec<_> = (0..CHURNERS)
            .map(|_| {
                let email = "churn@example.com".to_owned();
                tokio::spawn(churn(app.client.clone(), app.base.clone(), email))
            })
            .collect();
        let mut lasts = Vec::new();
        for chain in chains {
            lasts.push(chain.await.expect("a chain's client"));
        }
        let mut ended = Vec::new();
        for churner in churners {
            ended.extend(churner.await.expect("a churning client"));
        }

        // Every chain's last token is its session's current one: it works and refreshes once
        // more; every session logged out stays so.
        for (first, last) in firsts.iter().zip(&lasts) {
            assert_eq!(gen(last), gen(first) + CHAIN_ROUNDS);
            assert_eq!(app.get_session(last).await.status(), StatusCode::OK);
            let next = app.refresh_token(last).await;
            assert_eq!(gen(&next), gen(last) + 1);
        }
        for token in &ended {
            let (_, reason) = assert_error(app.get_session(token).await, StatusCode::FORBIDDEN).await;
            assert_eq!(reason, "logged_out");
            let (_, reason) = assert_error(app.refresh(token).await, StatusCode::UNAUTHORIZED).await;
            assert_eq!(reason, "logged_out");
        }
        // What is stored is exactly what the clients were told.
        let churned = (CHURNERS * CHURN_ROUNDS) as i64;
        assert_eq!(scalar(&app.db, "SELECT count(*) FROM sessions").await, CHAINS as i64 + churned);
        assert_eq!(
            scalar(&app.db, "SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL").await,
            churned
        );
        assert_eq!(
            scalar(&app.db, "SELECT CAST(sum(gen) AS BIGINT) FROM sessions WHERE revoked_at IS NULL").await,
            CHAINS as i64 * (CHAIN_ROUNDS + 1)
        );
    }

    async fn writes_that_fail_beside_good_ones_fail_alone(backend) {
        // Role creations (taken names, and pairs racing for one name), registrations (a taken
        // email, a pair racing for one) and logins over a full cap (`reject`) fail inside their
        // write; good ones of each kind are sent at the same moment. On SQLite the write lock is
        // held while they are sent, so they queue and share a transaction. Every good write is
        // committed and answered 200; every failing one is refused and leaves nothing.
        let config = TestConfig::new()
            .var("DF_ALLOW_OPEN_REGISTRATION", "true")
            .var("MAX_SESSIONS_PER_USER", "3")
            .var("SESSION_LIMIT_POLICY", "reject");
        let app = spawn_app_with(backend, config).await;
        app.create_user(ADMIN, true).await;
        app.create_user("full@example.com", false).await;
        app.create_user("free@example.com", false).await;
        let admin = app.admin_login_token(ADMIN).await;
        let full = login_tokens(&app, "full@example.com", 3).await;
        for i in 0..4 {
            let (status, body) = app
                .admin_call(&admin, Method::POST, ROLES, json!({ "name": format!("taken-{i}") }))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let users_before = scalar(&app.db, "SELECT count(*) FROM users").await;

        let lock = match backend {
            Backend::Sqlite => Some(hold_write_lock(&app.db).await),
            Backend::Postgres => None,
        };
        let fresh: Vec<Call> = (0..8).map(|i| post_role(&app, &admin, &format!("fresh-{i}"))).collect();
        let taken: Vec<Call> = (0..4).map(|i| post_role(&app, &admin, &format!("taken-{i}"))).collect();
        let twins: Vec<Call> = (0..8).map(|i| post_role(&app, &admin, &format!("twin-{}", i / 2))).collect();
        let registered: Vec<Call> = (0..2).map(|i| post_register(&app, &format!("new-{i}@example.com"))).collect();
        let twin_registrations: Vec<Call> = (0..2).map(|_| post_register(&app, "twin@example.com")).collect();
        let taken_registration = post_register(&app, "full@example.com");
        let good_logins: Vec<Call> = (0..3).map(|_| post_login(&app, "free@example.com")).collect();
        let capped_logins: Vec<Call> = (0..3).map(|_| post_login(&app, "full@example.com")).collect();
        if let Some(lock) = lock {
            wait_started(&fresh).await;
            wait_started(&taken).await;
            wait_started(&twins).await;
            release(lock).await;
        }

        for call in fresh {
            let (status, body) = call.answer().await;
            assert_eq!(status, StatusCode::OK, "a fresh role: {body}");
        }
        for call in taken {
            assert_taken(&call.answer().await, "name", "a taken role name");
        }
        let mut twin_answers = Vec::new();
        for call in twins {
            twin_answers.push(call.answer().await);
        }
        for pair in twin_answers.chunks(2) {
            let created = pair.iter().filter(|(s, _)| *s == StatusCode::OK).count();
            assert_eq!(created, 1, "two creations of one role name: {pair:?}");
            let loser = pair.iter().find(|(s, _)| *s != StatusCode::OK).expect("the other");
            assert_taken(loser, "name", "the second of two creations of one name");
        }
        for call in registered {
            let (status, body) = call.answer().await;
            assert_eq!(status, StatusCode::OK, "a registration: {body}");
        }
        let mut twin_registered = Vec::new();
        for call in twin_registrations {
            twin_registered.push(call.answer().await);
        }
        let created = twin_registered.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        assert_eq!(created, 1, "two registrations of one email: {twin_registered:?}");
        let loser = twin_registered.iter().find(|(s, _)| *s != StatusCode::OK).expect("the other");
        assert_taken(loser, "email", "the second registration of one email");
        assert_taken(&taken_registration.answer().await, "email", "a taken email");
        let mut free = Vec::new();
        for call in good_logins {
            let (status, body) = call.answer().await;
            assert_eq!(status, StatusCode::OK, "a login under the cap: {body}");
            free.push(token_in(&body));
        }
        for call in capped_logins {
            let (status, body) = call.answer().await;
            assert_eq!(status, StatusCode::CONFLICT, "a login over the cap: {body}");
            assert_eq!(body["error"]["context"]["reason"], "session_limit", "{body}");
        }

        // What is stored: each good write once, nothing of a failed one.
        let mut expected: Vec<String> = (0..4).map(|i| format!("taken-{i}")).collect();
        expected.extend((0..8).map(|i| format!("fresh-{i}")));
        expected.extend((0..4).map(|i| format!("twin-{i}")));
        expected.sort();
        assert_eq!(role_names(&app, &admin).await, expected);
        assert_eq!(scalar(&app.db, "SELECT count(*) FROM users").await, users_before + 3);
        for email in ["new-0@example.com", "new-1@example.com", "twin@example.com"] {
            let sql = format!("SELECT count(*) FROM users WHERE email = '{email}'");
            assert_eq!(scalar(&app.db, &sql).await, 1, "{email}");
        }
        for token in free.iter().chain(&full) {
            assert_eq!(app.get_session(token).await.status(), StatusCode::OK);
        }
        let sql = "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id \
                   WHERE u.email = 'full@example.com'";
        assert_eq!(scalar(&app.db, sql).await, 3, "a rejected login left a session");
        let sql = "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id \
                   WHERE u.email = 'free@example.com' AND s.revoked_at IS NULL";
        assert_eq!(scalar(&app.db, sql).await, 3);
    }
}

/// A refresh that answered 503 (its request timed out while SQLite's write lock was held
/// elsewhere) must not rotate the session when the writer gets the lock: its client still holds
/// the old token, and would be judged a replay (`token_reuse`, the session revoked) once the
/// grace has passed. One refresh waits in the writer's `BEGIN IMMEDIATE` (rolled back when its
/// caller is found gone after running), another waits in the queue behind it (never run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_refresh_whose_caller_left_is_not_committed() {
    let config = TestConfig::new().var("REQUEST_TIMEOUT", "1s");
    let app = spawn_app_with(Backend::Sqlite, config).await;
    app.create_user("jane@example.com", false).await;
    let tokens = login_tokens(&app, "jane@example.com", 3).await;
    let (left, queued, later) = (&tokens[0], &tokens[1], &tokens[2]);

    let lock = hold_write_lock(&app.db).await;
    let first = start_call(&app, Method::PUT, SESSION, left);
    first.started().await;
    let second = start_call(&app, Method::PUT, SESSION, queued);
    for call in [first, second] {
        let (status, body) = call.answer().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    // Released well inside the writer's 5 s `busy_timeout`, so its `BEGIN IMMEDIATE` succeeds
    // and the first refresh runs (had it timed out, nothing would run and this test would prove
    // nothing).
    release(lock).await;

    // The writer has drained once a later write, queued behind both, is answered.
    let rotated = app.refresh_token(later).await;
    assert_eq!(gen(&rotated), gen(later) + 1);
    let sql = "SELECT count(*) FROM sessions WHERE gen <> 0";
    assert_eq!(
        scalar(&app.db, sql).await,
        1,
        "a refresh answered 503 was committed"
    );

    // Past the grace, a committed rotation would make the retries replays.
    app.clock.advance(11);
    for token in [left, queued] {
        let (status, body) = status_json(app.refresh(token).await).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the retry of a refresh answered 503: {body}"
        );
        let next = token_in(&body);
        assert_eq!(gen(&next), gen(token) + 1);
        assert_eq!(app.get_session(&next).await.status(), StatusCode::OK);
    }
}
