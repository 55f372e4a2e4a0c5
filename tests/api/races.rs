//! Races: many clients refreshing one session at once (some losing their answers), refreshes
//! racing every way a session ends, logins racing the session cap, and two replicas racing on
//! one database. What must hold: no spurious logout, every racer converges on one token, and
//! no token of an ended session ever works again, including successors minted concurrently
//! with the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Row};
use tokio::sync::watch;

use crate::both_backends;
use crate::helpers::*;

const ADMIN: &str = "admin@example.com";
const JANE: &str = "jane@example.com";
const SESSION: &str = "/api/v2/user/session";

/// Seconds between convergence rounds: more than `REFRESH_REUSE_GRACE` (10 s), so each round's
/// token is refreshed for real (rotated), not answered from the grace.
const PAST_THE_GRACE: i64 = 11;

/// A tiny deterministic generator (Knuth's MMIX LCG): the same seed, the same test.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn gen(token: &str) -> i64 {
    claims(token)["gen"].as_i64().expect("gen claim")
}

fn sid(token: &str) -> String {
    claims(token)["sid"].as_str().expect("sid claim").to_owned()
}

fn token_in(body: &Value) -> String {
    body["session_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no session_token in {body}"))
        .to_owned()
}

/// `PUT /api/v2/user/session` with `token` on the server at `base`: (status, body).
async fn put(client: &Client, base: &str, token: &str) -> (StatusCode, Value) {
    let response = client
        .put(format!("{base}{SESSION}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("refresh request");
    status_json(response).await
}

/// A forever login with `password`; answers the token.
async fn login_with(app: &TestApp, email: &str, password: &str) -> String {
    let (status, body) = status_json(app.login(email, password, true).await).await;
    assert_eq!(status, StatusCode::OK, "login failed: {body}");
    token_in(&body)
}

/// An administrator's token from `/api/v2/system/admin/session`.
async fn admin_token(app: &TestApp) -> String {
    let response = app
        .request(Method::POST, "/api/v2/system/admin/session")
        .json(&json!({ "email": ADMIN, "password": PASSWORD, "remember_me": true }))
        .send()
        .await
        .expect("admin login");
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "admin login failed: {body}");
    token_in(&body)
}

/// The first column of every row of `sql`, as text.
async fn query_strings(db: &TestDb, sql: &str) -> Vec<String> {
    match db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut c)
                .await
                .unwrap();
            rows.iter().map(|r| r.get::<String, _>(0)).collect()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut c)
                .await
                .unwrap();
            rows.iter().map(|r| r.get::<String, _>(0)).collect()
        }
    }
}

/// The stored revoke reason of session `sid` ("live" when it is not revoked).
async fn stored_end(db: &TestDb, sid: &str) -> String {
    let rows = query_strings(
        db,
        &format!(
            "SELECT CASE WHEN revoked_at IS NULL THEN 'live' ELSE revoke_reason END \
             FROM sessions WHERE CAST(id AS TEXT) = '{sid}'"
        ),
    )
    .await;
    assert_eq!(rows.len(), 1, "session {sid} is not stored");
    rows[0].clone()
}

/// Every stored session: its id and its revoke reason, or "live".
async fn session_ends(db: &TestDb) -> BTreeMap<String, String> {
    query_strings(
        db,
        "SELECT CAST(id AS TEXT) || ' ' || \
         CASE WHEN revoked_at IS NULL THEN 'live' ELSE revoke_reason END FROM sessions",
    )
    .await
    .into_iter()
    .map(|row| {
        let (session, end) = row.split_once(' ').expect("id and end");
        (session.to_owned(), end.to_owned())
    })
    .collect()
}

/// How each token is expected to be refused: GET and PUT statuses and reasons.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// The session row is there and revoked: GET 403, PUT 401, both with the revoke reason.
    Revoked,
    /// The row was purged and the token has expired: GET 401 `expired`, PUT 401 `revoked`.
    Purged,
}

/// Asserts that none of `tokens` works for GET or PUT on any of `servers`, each refused as
/// `refusal` says, with `reason` the stored revoke reason. Checks run 32 at a time.
async fn assert_all_dead(
    servers: &[&TestApp],
    tokens: &[(String, &'static str)],
    refusal: Refusal,
) {
    for (batch_no, batch) in tokens.chunks(32).enumerate() {
        let tasks: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(i, (token, reason))| {
                let client = servers[0].client.clone();
                let base = servers[(batch_no + i) % servers.len()].base.clone();
                let (token, reason) = (token.clone(), *reason);
                tokio::spawn(async move {
                    let get = client
                        .get(format!("{base}{SESSION}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("GET");
                    let (get_status, get_reason) = match refusal {
                        Refusal::Revoked => (StatusCode::FORBIDDEN, reason),
                        Refusal::Purged => (StatusCode::UNAUTHORIZED, "expired"),
                    };
                    let (status, body) = status_json(get).await;
                    assert_eq!(
                        (status, body["error"]["context"]["reason"].as_str()),
                        (get_status, Some(get_reason)),
                        "GET with a token of an ended session (gen {}): {body}",
                        gen(&token)
                    );
                    let put_reason = match refusal {
                        Refusal::Revoked => reason,
                        Refusal::Purged => "revoked",
                    };
                    let (status, body) = put(&client, &base, &token).await;
                    assert_eq!(
                        (status, body["error"]["context"]["reason"].as_str()),
                        (StatusCode::UNAUTHORIZED, Some(put_reason)),
                        "PUT with a token of an ended session (gen {}): {body}",
                        gen(&token)
                    );
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("dead-token check");
        }
    }
}

/// The last word on ended sessions: still dead once every token has expired (user active
/// again, if it was deactivated), and still dead once the revoked rows are purged.
async fn assert_dead_forever(servers: &[&TestApp], dead: &[(String, &'static str)]) {
    let app = servers[0];
    app.clock.advance(2 * 3600);
    assert_all_dead(servers, dead, Refusal::Revoked).await;
    // What the purge does once REVOKED_RETENTION has passed.
    app.db
        .execute("DELETE FROM sessions WHERE revoked_at IS NOT NULL")
        .await;
    assert_all_dead(servers, dead, Refusal::Purged).await;
}

// ---------------------------------------------------------------------------------------------
// 1. Many clients, one session, lost answers

/// `rounds` rounds of `clients` clients refreshing one forever session at once, all holding the
/// round's token; about one client in five loses its answer (and maybe the retry's too) and
/// retries with the token it still holds. Client `i` talks to `servers[i % n]`, a retry to the
/// next server. Every PUT must answer 200, every answer of a round must carry the same token,
/// one generation on.
async fn converge(servers: &[&TestApp], clients: usize, rounds: usize, seed: u64) {
    let app = servers[0];
    app.create_user(JANE, false).await;
    let first = app.login_token(JANE, true).await;
    let mut token = first.clone();
    let mut rng = Lcg(seed);
    let mut lost = 0;
    for round in 0..rounds {
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                let mut losses = 0;
                while losses < 3 && rng.chance(20) {
                    losses += 1;
                }
                lost += losses;
                let client = app.client.clone();
                let bases: Vec<String> = (0..=losses)
                    .map(|attempt| servers[(i + attempt) % servers.len()].base.clone())
                    .collect();
                let token = token.clone();
                tokio::spawn(async move {
                    let mut answers = Vec::with_capacity(bases.len());
                    // A lost answer leaves the client holding the old token: it sends it again.
                    for base in &bases {
                        answers.push(put(&client, base, &token).await);
                    }
                    answers
                })
            })
            .collect();
        let mut successor: Option<String> = None;
        for (client, task) in tasks.into_iter().enumerate() {
            for (attempt, (status, body)) in task.await.expect("client").into_iter().enumerate() {
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "round {round}, client {client}, attempt {attempt}: spurious logout: {body}"
                );
                let got = token_in(&body);
                match &successor {
                    None => successor = Some(got),
                    Some(agreed) => assert_eq!(
                        &got, agreed,
                        "round {round}, client {client}, attempt {attempt}: racers disagree"
                    ),
                }
            }
        }
        let next = successor.expect("answers");
        assert_eq!(
            gen(&next),
            gen(&token) + 1,
            "round {round}: one rotation per round"
        );
        assert_eq!(sid(&next), sid(&token));
        token = next;
        app.clock.advance(PAST_THE_GRACE);
    }
    assert!(lost > rounds * clients / 10, "too few lost answers: {lost}");
    assert_eq!(gen(&token), gen(&first) + rounds as i64);
    for server in servers {
        let (status, body) = status_json(server.get_session(&token).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(stored_end(&app.db, &sid(&token)).await, "live");
}

// ---------------------------------------------------------------------------------------------
// 2. Refreshes racing the end of the session

/// How the session ends while it is being refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// `DELETE /api/v2/user/session` by the session's own (newest) token.
    Logout,
    /// `DELETE /api/v2/system/sessions/{id}` by an administrator.
    AdminRevoke,
    /// `POST /api/v2/user/password` from another session of the same user.
    PasswordChange,
    /// `PATCH /api/v2/system/user/{id}` with `is_active: false` by an administrator.
    Deactivation,
}

impl Ending {
    /// The stored revoke reason, which every refusal names.
    fn reason(self) -> &'static str {
        match self {
            Ending::Logout => "logged_out",
            Ending::AdminRevoke => "revoked",
            Ending::PasswordChange => "password_changed",
            Ending::Deactivation => "user_inactive",
        }
    }
}

/// Lost logouts after which the refreshers pause for one step to let the logout land.
const LOGOUT_RACE_STEPS: usize = 6;
/// Refreshing clients per race step.
const REFRESHERS: usize = 3;
/// A race that has not ended the session after this many steps is a failure.
const MAX_STEPS: usize = 2_000;

/// Everything a race round needs besides the servers.
struct Stage {
    client: Client,
    admin: String,
    jane_id: i64,
    /// Jane's password now (a password change race changes it).
    password: String,
    /// Another session of Jane's, which changes the password and must survive it.
    bystander: String,
}

/// The request that ends the session (for every ending but a logout, which races inside the
/// refresh steps).
fn ending_request(
    ending: Ending,
    end_on: &TestApp,
    stage: &Stage,
    session: &str,
    new_password: &str,
) -> reqwest::RequestBuilder {
    let client = &stage.client;
    let base = &end_on.base;
    match ending {
        Ending::Logout => unreachable!("a logout is sent with the refreshes"),
        Ending::AdminRevoke => client
            .delete(format!("{base}/api/v2/system/sessions/{session}"))
            .bearer_auth(&stage.admin),
        Ending::PasswordChange => client
            .post(format!("{base}/api/v2/user/password"))
            .bearer_auth(&stage.bystander)
            .json(&json!({ "old_password": stage.password, "new_password": new_password })),
        Ending::Deactivation => client
            .patch(format!("{base}/api/v2/system/user/{}", stage.jane_id))
            .bearer_auth(&stage.admin)
            .json(&json!({ "is_active": false })),
    }
}

/// What one race round saw.
struct RaceOutcome {
    /// Every token any response handed out for the session.
    minted: Vec<String>,
    /// Logouts refused because a refresh rotated the token first (403 `rotated`).
    lost_logouts: usize,
    /// Whether the ending landed while a step of refreshes was in flight.
    mid_step: bool,
}

/// One race: a fresh forever session of Jane's is refreshed in lock-step by `REFRESHERS`
/// clients on `refresh_on` (each step all present the current token; some lose the answer and
/// send it again to the next server). From a pseudo-random step on, `ending` is sent to
/// `end_on`: an administrator's request or a password change is sent once, at the start of
/// that step; a logout is sent with the step's token at the start of every step until it
/// takes (after `LOGOUT_RACE_STEPS` lost attempts, once without refreshers). Checks that the
/// ending took, that no refresh sent after it had answered succeeded, that racers never
/// disagree, and that every token any response handed out for the session is dead.
async fn race_once(
    refresh_on: &[&TestApp],
    end_on: &TestApp,
    ending: Ending,
    stage: &mut Stage,
    rng: &mut Lcg,
    round: usize,
) -> RaceOutcome {
    let first = login_with(refresh_on[0], JANE, &stage.password).await;
    let session = sid(&first);
    let mut minted = BTreeSet::from([first.clone()]);
    let fire_at = rng.below(4) as usize;
    let new_password = format!("race-passphrase-{round}");
    let (step_tx, mut step_rx) = watch::channel(0usize);
    let mut ender = (ending != Ending::Logout).then(|| {
        let request = ending_request(ending, end_on, stage, &session, &new_password);
        tokio::spawn(async move {
            step_rx
                .wait_for(|s| *s >= fire_at)
                .await
                .expect("race steps");
            status_json(request.send().await.expect("ending request")).await
        })
    });
    let mut ended: Option<(StatusCode, Value)> = None;
    let mut lost_logouts = 0;

    let mut current = first;
    let mut step = 0;
    let mid_step = loop {
        // Whatever starts after the ending has answered must be refused.
        let ended_before = ended.is_some() || ender.as_ref().is_some_and(|e| e.is_finished());
        step_tx.send_replace(step);
        let logout = (ending == Ending::Logout && ended.is_none() && step >= fire_at).then(|| {
            let request = stage
                .client
                .delete(format!("{}{SESSION}", end_on.base))
                .bearer_auth(&current);
            tokio::spawn(async move { status_json(request.send().await.expect("logout")).await })
        });
        // While a logout is being sent, one other tab refreshes (none once the logout has lost
        // too often); otherwise `REFRESHERS` clients do.
        let refreshers = match &logout {
            Some(_) if lost_logouts >= LOGOUT_RACE_STEPS => 0,
            Some(_) => 1,
            None => REFRESHERS,
        };
        let tasks: Vec<_> = (0..refreshers)
            .map(|i| {
                let client = stage.client.clone();
                let base = refresh_on[(i + step) % refresh_on.len()].base.clone();
                let retry = refresh_on[(i + step + 1) % refresh_on.len()].base.clone();
                let lost_answer = rng.chance(20);
                let token = current.clone();
                tokio::spawn(async move {
                    let mut answers = vec![put(&client, &base, &token).await];
                    if lost_answer {
                        answers.push(put(&client, &retry, &token).await);
                    }
                    answers
                })
            })
            .collect();
        let mut successor: Option<String> = None;
        let mut refused = false;
        for task in tasks {
            for (status, body) in task.await.expect("refresher") {
                if status == StatusCode::OK {
                    let got = token_in(&body);
                    assert_eq!(sid(&got), session);
                    if let Some(agreed) = &successor {
                        assert_eq!(&got, agreed, "round {round}, step {step}: racers disagree");
                    }
                    minted.insert(got.clone());
                    successor = Some(got);
                } else {
                    assert_eq!(
                        (status, body["error"]["context"]["reason"].as_str()),
                        (StatusCode::UNAUTHORIZED, Some(ending.reason())),
                        "round {round}, step {step}: {body}"
                    );
                    refused = true;
                }
            }
        }
        if let Some(logout) = logout {
            let (status, body) = logout.await.expect("logout");
            if status == StatusCode::FORBIDDEN {
                // A refresh of the same token won and the grace no longer covered the
                // logout's token: the session lives on with the successor.
                assert_eq!(body["error"]["context"]["reason"], "rotated", "{body}");
                assert!(successor.is_some(), "round {round}, step {step}: {body}");
                lost_logouts += 1;
            } else {
                // Both may win: the refresh rotated, and the logout, with the token the grace
                // still covers, ended the session, successor included (checked below: every
                // minted token is dead).
                ended = Some((status, body));
            }
        }
        if let Some(next) = successor {
            assert!(
                !ended_before,
                "round {round}, step {step}: a refresh sent after the {ending:?} had answered \
                 was granted: {next}"
            );
            assert_eq!(gen(&next), gen(&current) + 1);
            current = next;
        }
        if refused {
            break !ended_before;
        }
        step += 1;
        assert!(step < MAX_STEPS, "round {round}: the {ending:?} never took");
    };
    let (status, body) = match (ended, ender.take()) {
        (Some(ended), _) => ended,
        (None, Some(ender)) => ender.await.expect("ending"),
        (None, None) => unreachable!("a refusal without an ending"),
    };
    assert_eq!(
        status,
        StatusCode::OK,
        "round {round}: the {ending:?} failed: {body}"
    );
    assert_eq!(stored_end(&end_on.db, &session).await, ending.reason());
    if ending == Ending::PasswordChange {
        stage.password = new_password;
    }

    let minted: Vec<String> = minted.into_iter().collect();
    let dead: Vec<(String, &'static str)> = minted
        .iter()
        .map(|t| (t.clone(), ending.reason()))
        .collect();
    let mut servers = refresh_on.to_vec();
    servers.push(end_on);
    assert_all_dead(&servers, &dead, Refusal::Revoked).await;
    RaceOutcome {
        minted,
        lost_logouts,
        mid_step,
    }
}

/// `rounds` races of refreshes (on `refresh_on`) against `ending` (on `end_on`); then every
/// token of every ended session is checked again, past expiry and after the purge.
async fn race_endings(
    refresh_on: &[&TestApp],
    end_on: &TestApp,
    ending: Ending,
    rounds: usize,
    seed: u64,
) {
    let app = refresh_on[0];
    app.create_user(ADMIN, true).await;
    app.create_user(JANE, false).await;
    let bystander = app.login_token(JANE, true).await;
    let mut stage = Stage {
        client: app.client.clone(),
        admin: admin_token(app).await,
        jane_id: claims(&bystander)["user_id"].as_i64().expect("user_id"),
        password: PASSWORD.to_owned(),
        bystander: bystander.clone(),
    };
    let mut rng = Lcg(seed);
    let mut dead = Vec::new();
    let mut lost_logouts = 0;
    let mut landed_mid_step = 0;
    for round in 0..rounds {
        if ending == Ending::Deactivation && round > 0 {
            reactivate(app, &stage).await;
        }
        let outcome = race_once(refresh_on, end_on, ending, &mut stage, &mut rng, round).await;
        lost_logouts += outcome.lost_logouts;
        landed_mid_step += usize::from(outcome.mid_step);
        let minted = outcome.minted;
        dead.extend(minted.into_iter().map(|t| (t, ending.reason())));
    }
    eprintln!(
        "{:?} {ending:?}: {rounds} rounds, {landed_mid_step} ended mid-step, {} tokens of ended \
         sessions, {lost_logouts} logouts lost to a rotation",
        app.db.backend,
        dead.len()
    );
    match ending {
        // Every other session of Jane's ended; the one that changed the password did not.
        Ending::PasswordChange => {
            let (status, body) = status_json(app.get_session(&stage.bystander).await).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        // Reactivation brings back logins, not the ended sessions.
        Ending::Deactivation => reactivate(app, &stage).await,
        _ => {}
    }
    let mut servers = refresh_on.to_vec();
    servers.push(end_on);
    assert_dead_forever(&servers, &dead).await;
}

async fn reactivate(app: &TestApp, stage: &Stage) {
    let response = app
        .request(
            Method::PATCH,
            &format!("/api/v2/system/user/{}", stage.jane_id),
        )
        .bearer_auth(&stage.admin)
        .json(&json!({ "is_active": true }))
        .send()
        .await
        .expect("reactivate");
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn race_config() -> TestConfig {
    TestConfig::new().var("DF_JWT_TTL", "5m")
}

// ---------------------------------------------------------------------------------------------
// Logins racing the session cap

/// One session's refresh chain, racing logins: steps until refused, until `logins_done` was
/// set before a step, or `limit` steps; sometimes an answer is lost and the token sent again.
/// Answers every (status, token-or-body) it got.
async fn refresh_chain(
    client: Client,
    bases: Vec<String>,
    mut token: String,
    logins_done: Arc<AtomicBool>,
    mut rng: Lcg,
    limit: usize,
) -> Vec<(StatusCode, Value)> {
    let mut answers = Vec::new();
    for step in 0..limit {
        let done = logins_done.load(Ordering::SeqCst);
        let base = &bases[step % bases.len()];
        let mut got = vec![put(&client, base, &token).await];
        if rng.chance(20) {
            got.push(put(&client, &bases[(step + 1) % bases.len()], &token).await);
        }
        let mut refused = false;
        for (status, body) in got {
            if status == StatusCode::OK {
                token = token_in(&body);
            } else {
                refused = true;
            }
            answers.push((status, body));
        }
        if refused || done {
            break;
        }
    }
    answers
}

/// Rounds of 20 concurrent logins of one user (spread over `app` and a replica) under
/// `MAX_SESSIONS_PER_USER=3`, while the user's live sessions refresh. After each round: three
/// sessions live, the latest token of each works, and every token of an evicted session (the
/// logins' own and every successor a refresh handed out) is dead.
async fn logins_race_the_cap(backend: Backend, rounds: usize, seed: u64) {
    let app = spawn_app_with(
        backend,
        race_config()
            .var("MAX_SESSIONS_PER_USER", "3")
            .var("SESSION_LIMIT_POLICY", "evict_idle"),
    )
    .await;
    app.create_user(JANE, false).await;
    let replica = app.replica().await;
    let servers = [&app, &replica];
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let mut rng = Lcg(seed);
    // Every token handed out for each session not yet ended, and the newest of each.
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    let mut dead: Vec<(String, &'static str)> = Vec::new();
    let mut evicted = 0;
    for round in 0..rounds {
        let logins_done = Arc::new(AtomicBool::new(false));
        let chains: Vec<_> = latest
            .values()
            .map(|token| {
                tokio::spawn(refresh_chain(
                    app.client.clone(),
                    bases.clone(),
                    token.clone(),
                    logins_done.clone(),
                    Lcg(rng.next()),
                    20,
                ))
            })
            .collect();
        let logins: Vec<_> = (0..20)
            .map(|i| {
                let client = app.client.clone();
                let base = bases[i % bases.len()].clone();
                tokio::spawn(async move {
                    let response = client
                        .post(format!("{base}{SESSION}"))
                        .json(&json!({ "email": JANE, "password": PASSWORD, "remember_me": true }))
                        .send()
                        .await
                        .expect("login request");
                    status_json(response).await
                })
            })
            .collect();
        let mut handed_out = Vec::new();
        for login in logins {
            let (status, body) = login.await.expect("login");
            assert_eq!(status, StatusCode::OK, "round {round}: {body}");
            handed_out.push(token_in(&body));
        }
        logins_done.store(true, Ordering::SeqCst);
        for chain in chains {
            for (status, body) in chain.await.expect("chain") {
                if status == StatusCode::OK {
                    handed_out.push(token_in(&body));
                } else {
                    assert_eq!(
                        (status, body["error"]["context"]["reason"].as_str()),
                        (StatusCode::UNAUTHORIZED, Some("session_limit")),
                        "round {round}: {body}"
                    );
                }
            }
        }
        for token in handed_out {
            held.entry(sid(&token)).or_default().push(token);
        }

        let ends = session_ends(&app.db).await;
        let live: BTreeSet<&String> = ends
            .iter()
            .filter(|(_, end)| end.as_str() == "live")
            .map(|(session, _)| session)
            .collect();
        assert_eq!(
            live.len(),
            3,
            "round {round}: the cap does not hold: {ends:?}"
        );
        let mut ended_now = Vec::new();
        for (session, tokens) in std::mem::take(&mut held) {
            if live.contains(&session) {
                held.insert(session, tokens);
            } else {
                assert_eq!(ends[&session], "session_limit", "round {round}");
                evicted += 1;
                ended_now.extend(tokens.into_iter().map(|t| (t, "session_limit")));
            }
        }
        assert_eq!(held.len(), 3, "round {round}: a live session nobody holds");
        latest = held
            .iter()
            .map(|(session, tokens)| {
                let newest = tokens.iter().max_by_key(|t| gen(t)).expect("a token");
                (session.clone(), newest.clone())
            })
            .collect();
        for token in latest.values() {
            let (status, body) = status_json(app.get_session(token).await).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "round {round}: a live session refused: {body}"
            );
        }
        assert_all_dead(&servers, &ended_now, Refusal::Revoked).await;
        dead.extend(ended_now);
    }
    eprintln!(
        "{backend:?} session cap: {rounds} rounds, {evicted} sessions evicted, {} of their tokens",
        dead.len()
    );
    assert_dead_forever(&servers, &dead).await;
}

both_backends! {
    async fn twenty_clients_with_lost_answers_converge_every_round(backend) {
        let app = spawn_app(backend).await;
        converge(&[&app], 20, 200, 7).await;
    }

    async fn refresh_racing_logout_leaves_no_usable_token(backend) {
        let app = spawn_app_with(backend, race_config()).await;
        race_endings(&[&app], &app, Ending::Logout, 30, 11).await;
    }

    async fn refresh_racing_admin_revoke_leaves_no_usable_token(backend) {
        let app = spawn_app_with(backend, race_config()).await;
        race_endings(&[&app], &app, Ending::AdminRevoke, 30, 12).await;
    }

    async fn refresh_racing_password_change_leaves_no_usable_token(backend) {
        let app = spawn_app_with(backend, race_config()).await;
        race_endings(&[&app], &app, Ending::PasswordChange, 30, 13).await;
    }

    async fn refresh_racing_deactivation_leaves_no_usable_token(backend) {
        let app = spawn_app_with(backend, race_config()).await;
        race_endings(&[&app], &app, Ending::Deactivation, 30, 14).await;
    }

    async fn logins_racing_the_session_cap_leave_no_usable_token(backend) {
        logins_race_the_cap(backend, 10, 15).await;
    }

    async fn two_replicas_twenty_clients_converge_every_round(backend) {
        let app = spawn_app(backend).await;
        let replica = app.replica().await;
        converge(&[&app, &replica], 20, 200, 21).await;
    }

    async fn refresh_on_one_replica_racing_logout_on_the_other(backend) {
        let app = spawn_app_with(backend, race_config()).await;
        let replica = app.replica().await;
        race_endings(&[&app], &replica, Ending::Logout, 30, 22).await;
    }

    async fn refresh_on_one_replica_racing_admin_revoke_on_the_other(backend) {
        let app = spawn_app_with(backend, race_config()).await;
        let replica = app.replica().await;
        race_endings(&[&replica], &app, Ending::AdminRevoke, 30, 23).await;
    }
}
