//! Fault injection under load: the PostgreSQL cluster under a running server is stopped
//! (`pg_ctl stop -m fast`) or killed (`pg_ctl stop -m immediate`) while several clients keep
//! reading their sessions, walking refresh chains and logging in, and is then started again.
//!
//! What must hold:
//! - every answer, before, during and after the outage, is a success or a 503 in DreamFactory's
//!   error shape with `Retry-After`: never a 500, never a hang (the clients have timeouts), never
//!   a dropped connection (what a panicking handler leaves), and the process stays up;
//! - no spurious logout: a token that was valid is never refused (401/403). A client whose
//!   refresh got a 503 keeps its old token and retries it (the refresh may have rotated the
//!   session with its answer lost: the grace of DESIGN §2 hands back the identical successor);
//!   once the database is back every client's chain continues, one generation per refresh;
//! - afterwards every session that existed before the fault is intact (compared row by row
//!   with a direct connection: sessions nobody used are unchanged in every column, the ones under
//!   load in everything but `gen`, `rotated_at` and `last_seen_at`), so are the users and the
//!   signing keys, every acknowledged refresh and login is stored, and every pre-existing session
//!   refreshes normally once its token has expired.
//!
//! Besides the load, the fault always catches a refresh and a login inside their statements
//! (they wait on rows a prepared transaction holds): both must answer 503 and leave no trace.
//! Requests sent in the last seconds of the outage may wait for a connection until the
//! database is back and succeed: a 200 is fine whenever it comes.
//!
//! The test clock stands still during the load, so a retried refresh is always within
//! `REFRESH_REUSE_GRACE` of a rotation whose answer was lost; the sessions' tokens expire (the
//! clock jumps a day) only for the last check.
//!
//! PostgreSQL only: SQLite runs inside the server process and has no server to stop or kill.
//! The test owns its cluster (`OwnedCluster`), so it never disturbs the one the other tests share.
//!
//! The owned cluster runs with `synchronous_commit=off` for speed, which lets a crash
//! (`-m immediate`) lose commits PostgreSQL had already acknowledged. Production runs with it on,
//! and no application can keep a session whose rotation its database forgot, so the test's
//! database turns it back on (`ALTER DATABASE … SET synchronous_commit = on`): what is tested is
//! tenure, not a durability setting. (With it off, a kill loses the last rotations, and the
//! clients holding their tokens are refused: "The token does not belong to this session.")

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Row};
use tenure::clock::TestClock;
use tokio::task::JoinHandle;

use crate::helpers::*;

const SESSION: &str = "/api/v2/user/session";

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
/// The user the clients' occasional logins are for: only its sessions are new afterwards.
const NEWCOMER: &str = "newcomer@example.com";
/// The user whose login the fault catches mid-statement.
const DAVE: &str = "dave@example.com";

/// Concurrent clients, each walking the refresh chain of its own pre-existing session.
const CLIENTS: usize = 6;
/// Every answer must come within this long; the outage costs at most the pool's acquire
/// timeout (2 s).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// The clients' timeout: past this, a request is a hang.
const HANG: Duration = Duration::from_secs(10);
/// The database stays down at least this long, under load.
const OUTAGE: Duration = Duration::from_secs(3);
/// Bound on each wait for the load to reach a state (warmed up, outage seen, recovered).
const PHASE_LIMIT: Duration = Duration::from_secs(20);
/// Successful operations per client before the fault.
const WARM_UP_OPS: usize = 3;
/// Successful refreshes per client after the database is back before the load stops.
const RECOVERED_REFRESHES: usize = 3;
/// Pause between a client's operations (two cores run the server, the clients and PostgreSQL).
const PACE: Duration = Duration::from_millis(5);
/// A token lifetime and then some (`DF_JWT_TTL` is 24 h by default).
const PAST_TOKEN_EXPIRY: i64 = 25 * 3600;

// ---------------------------------------------------------------------------------------------
// The load

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// The database is up (at first, and while it is being stopped).
    Up = 0,
    /// `pg_ctl stop` has returned: the database is down.
    Down = 1,
    /// `pg_ctl start` has returned: the database is back.
    Back = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Get,
    Put,
    Login,
}

/// What the controller and the clients share.
struct Board {
    phase: AtomicU8,
    stop: AtomicBool,
    /// Set with `stop` when the test has already failed: no refresh is drained then.
    abort: AtomicBool,
    /// Per client: answers 200.
    ok: Vec<AtomicUsize>,
    /// Per client: 503s to requests sent while the database was down.
    down_503: Vec<AtomicUsize>,
    /// Per operation (GET, PUT, POST): 503s to requests sent while the database was down.
    down_503_by_op: [AtomicUsize; 3],
    /// Per client: refreshes answered 200 that were sent after the database was back.
    back_refreshes: Vec<AtomicUsize>,
}

impl Board {
    fn new() -> Self {
        let counters = || (0..CLIENTS).map(|_| AtomicUsize::new(0)).collect();
        Self {
            phase: AtomicU8::new(Phase::Up as u8),
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            ok: counters(),
            down_503: counters(),
            down_503_by_op: Default::default(),
            back_refreshes: counters(),
        }
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Up,
            1 => Phase::Down,
            _ => Phase::Back,
        }
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    fn all(counters: &[AtomicUsize], at_least: usize) -> bool {
        counters
            .iter()
            .all(|c| c.load(Ordering::SeqCst) >= at_least)
    }

    fn counts(counters: &[AtomicUsize]) -> Vec<usize> {
        counters.iter().map(|c| c.load(Ordering::SeqCst)).collect()
    }
}

/// What one client saw.
#[derive(Default)]
struct Report {
    /// Everything that must not happen, described.
    violations: Vec<String>,
    /// The client's token at the end (its refresh chain's newest link).
    token: String,
    /// Answers by (phase the request was sent in, operation, status).
    answers: BTreeMap<(Phase, Op, u16), usize>,
    /// Tokens of the logins answered 200.
    logins: Vec<String>,
    /// Refreshes answered 200 with a token whose refresh had been answered 503 before (the
    /// retry; a request sent while the database was down may succeed once it is back).
    retried_after_503: usize,
    slowest: Duration,
}

/// A tiny deterministic generator (Knuth's MMIX LCG): the same seed, the same operations.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn gen(token: &str) -> i64 {
    claims(token)["gen"].as_i64().expect("gen claim")
}

fn sid(token: &str) -> String {
    claims(token)["sid"].as_str().expect("sid claim").to_owned()
}

/// Checks a 503: DreamFactory's error shape and a `Retry-After` of whole seconds.
fn check_503(body: &Value, retry_after: Option<&str>) -> Result<(), String> {
    let error = &body["error"];
    let shaped = error["code"] == json!(503)
        && error["status_code"] == json!(503)
        && error["message"].is_string()
        && error.get("context").is_some();
    if !shaped {
        return Err(format!("503 not in DreamFactory's error shape: {body}"));
    }
    match retry_after.map(str::parse::<u64>) {
        Some(Ok(seconds)) if seconds >= 1 => Ok(()),
        other => Err(format!("503 with Retry-After {other:?}: {body}")),
    }
}

/// One client: from `token` (its session's current token) on, until told to stop, reads its
/// session (GET), refreshes it (PUT) and now and then logs the newcomer in (POST), in a
/// pseudo-random mix. A refresh answered 503 is retried, with the same token, before the token
/// is used for anything else (its rotation may have happened with the answer lost: only the
/// retry can tell). The first request sent while the database is down is a GET, a POST or a PUT
/// by the client's number, so each kind meets the outage; client 0 only reads (and logs in)
/// until then, so that one client is sure to hold a token whose refresh is not pending when
/// the database goes away, and its GET meets the outage.
async fn client(i: usize, base: String, board: Arc<Board>, mut token: String) -> Report {
    let http = Client::builder().timeout(HANG).build().expect("client");
    let url = format!("{base}{SESSION}");
    let mut rng = Lcg(0x5eed + i as u64);
    let mut report = Report::default();
    // The phase in which the refresh of the token held now first got a 503.
    let mut refresh_failed_in: Option<Phase> = None;
    let mut met_the_outage = false;
    let mut stop_deadline: Option<Instant> = None;
    loop {
        if board.stop.load(Ordering::SeqCst) {
            // Stop, but never with a refresh left hanging: the chain must end on a known token.
            if refresh_failed_in.is_none() || board.abort.load(Ordering::SeqCst) {
                break;
            }
            let deadline = *stop_deadline.get_or_insert_with(|| Instant::now() + PHASE_LIMIT);
            if Instant::now() > deadline {
                report
                    .violations
                    .push(format!("client {i}: its refresh still fails at the end"));
                break;
            }
        }
        let phase = board.phase();
        let op = if phase == Phase::Down && !met_the_outage {
            met_the_outage = true;
            match [Op::Get, Op::Login, Op::Put][i % 3] {
                Op::Get if refresh_failed_in.is_some() => Op::Put,
                forced => forced,
            }
        } else if refresh_failed_in.is_some() {
            Op::Put
        } else {
            match (i, phase, rng.below(100)) {
                (0, Phase::Up, 0..=96) => Op::Get,
                (_, _, 0..=59) => Op::Get,
                (_, _, 60..=96) => Op::Put,
                _ => Op::Login,
            }
        };
        let what = format!("client {i}: {op:?} sent while the database was {phase:?}");
        let request = match op {
            Op::Get => http.get(&url).bearer_auth(&token),
            Op::Put => http.put(&url).bearer_auth(&token),
            Op::Login => http.post(&url).json(
                &json!({ "email": NEWCOMER, "password": PASSWORD, "remember_me": i.is_multiple_of(2) }),
            ),
        };
        let started = Instant::now();
        let sent = request.send().await;
        let took = started.elapsed();
        report.slowest = report.slowest.max(took);
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                // A timeout is a hang; a closed connection is what a panicking handler leaves.
                report
                    .violations
                    .push(format!("{what}: no answer after {took:?}: {e}"));
                break;
            }
        };
        if took > ANSWER_WITHIN {
            report
                .violations
                .push(format!("{what}: answered after {took:?}"));
        }
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => {
                report
                    .violations
                    .push(format!("{what}: {status}, body lost: {e}"));
                break;
            }
        };
        *report
            .answers
            .entry((phase, op, status.as_u16()))
            .or_default() += 1;
        let Ok(body) = serde_json::from_str::<Value>(&text) else {
            report
                .violations
                .push(format!("{what}: {status}, body is not JSON: {text:?}"));
            continue;
        };
        match status {
            StatusCode::OK => {
                board.ok[i].fetch_add(1, Ordering::SeqCst);
                let answered = body["session_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                match op {
                    Op::Get if answered != token => report
                        .violations
                        .push(format!("{what}: answered for another token: {body}")),
                    Op::Get => {}
                    Op::Put => {
                        if answered.is_empty()
                            || sid(&answered) != sid(&token)
                            || gen(&answered) != gen(&token) + 1
                        {
                            report.violations.push(format!(
                                "{what}: the chain broke: gen {} of session {} answered {body}",
                                gen(&token),
                                sid(&token)
                            ));
                            break;
                        }
                        if phase == Phase::Back {
                            board.back_refreshes[i].fetch_add(1, Ordering::SeqCst);
                        }
                        if refresh_failed_in.is_some() {
                            report.retried_after_503 += 1;
                        }
                        token = answered;
                        refresh_failed_in = None;
                    }
                    Op::Login if answered.is_empty() => report
                        .violations
                        .push(format!("{what}: a login without a token: {body}")),
                    Op::Login => report.logins.push(answered),
                }
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                if let Err(why) = check_503(&body, retry_after.as_deref()) {
                    report.violations.push(format!("{what}: {why}"));
                }
                if phase == Phase::Down {
                    board.down_503[i].fetch_add(1, Ordering::SeqCst);
                    board.down_503_by_op[op as usize].fetch_add(1, Ordering::SeqCst);
                }
                if op == Op::Put {
                    refresh_failed_in.get_or_insert(phase);
                }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if op != Op::Login => {
                report.violations.push(format!(
                    "{what}: spurious logout of session {} (gen {}): {status} {body}",
                    sid(&token),
                    gen(&token)
                ));
                break;
            }
            _ => {
                report.violations.push(format!(
                    "{what}: {status} (only 200 or 503 may answer): {body}"
                ));
            }
        }
        // Pacing, not waiting for anything: the load leaves room on two cores.
        tokio::time::sleep(PACE).await;
    }
    report.token = token;
    report
}

/// Waits (bounded by `PHASE_LIMIT`) until `reached` holds; gives up early when a client has
/// stopped (a client stops early only after a violation).
async fn wait_for(
    what: &str,
    board: &Board,
    clients: &[JoinHandle<Report>],
    reached: impl Fn(&Board) -> bool,
) -> Result<Duration, String> {
    let outcome = try_poll_until(what, PHASE_LIMIT, async || {
        if reached(board) {
            Ok(Ok(()))
        } else if clients.iter().any(JoinHandle::is_finished) {
            Ok(Err(format!("{what}: a client stopped early")))
        } else {
            Err(format!(
                "answered 200: {:?}, 503 while down: {:?} (GET, PUT, POST: {:?}), refreshed \
                 after: {:?}",
                Board::counts(&board.ok),
                Board::counts(&board.down_503),
                Board::counts(&board.down_503_by_op),
                Board::counts(&board.back_refreshes)
            ))
        }
    })
    .await;
    let (reached, took) = outcome?;
    reached.map(|()| took)
}

// ---------------------------------------------------------------------------------------------
// What is stored

/// A stored session: its whole row, and the row without what a refresh or a read may change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredSession {
    row: String,
    identity: String,
    gen: i64,
    user_id: i64,
    revoked: bool,
}

/// Every stored session by id, read over a connection of the test's own.
async fn stored_sessions(db: &TestDb) -> BTreeMap<String, StoredSession> {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let rows = sqlx::query(
        "SELECT id::text, to_jsonb(t)::text, \
         (to_jsonb(t) - 'gen' - 'rotated_at' - 'last_seen_at')::text, \
         gen, user_id, revoked_at IS NOT NULL FROM sessions t",
    )
    .fetch_all(&mut conn)
    .await
    .expect("read sessions");
    rows.iter()
        .map(|r| {
            let session = StoredSession {
                row: r.get(1),
                identity: r.get(2),
                gen: r.get(3),
                user_id: r.get(4),
                revoked: r.get(5),
            };
            (r.get(0), session)
        })
        .collect()
}

/// Every stored user by email: (id, whole row, row without `last_login_at`).
async fn stored_users(db: &TestDb) -> BTreeMap<String, (i64, String, String)> {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let rows = sqlx::query(
        "SELECT email, id, to_jsonb(t)::text, (to_jsonb(t) - 'last_login_at')::text FROM users t",
    )
    .fetch_all(&mut conn)
    .await
    .expect("read users");
    rows.iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect()
}

/// Turns durable commits back on for the test's database (see the module comment), and checks
/// that a new connection gets them.
async fn durable_commits(db: &TestDb) {
    db.execute(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = on', \
         current_database()); END $$",
    )
    .await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&mut conn)
        .await
        .expect("show");
    assert_eq!(setting, "on");
}

// ---------------------------------------------------------------------------------------------
// Requests caught mid-statement

/// A request in flight when the database goes: what it is, its answer (status, Retry-After,
/// body) and when the answer came.
type InFlight = JoinHandle<(
    String,
    Result<(StatusCode, Option<String>, String), String>,
    Instant,
)>;

fn in_flight(what: &str, request: reqwest::RequestBuilder) -> InFlight {
    let what = what.to_owned();
    tokio::spawn(async move {
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                response
                    .text()
                    .await
                    .map(|text| (status, retry_after, text))
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        (what, answer, Instant::now())
    })
}

/// The prepared transaction that holds the rows the caught requests wait on.
const HOLD: &str = "tenure-faults-hold";

/// Makes the fault catch requests mid-statement, every time rather than when the timing
/// happens to: a prepared transaction locks the row of `token`'s session and the user row of
/// `DAVE`, then a refresh of `token` and a login of Dave's are sent, and both wait on the locks
/// inside their statements. A prepared transaction belongs to no backend, so stopping or
/// killing the server cannot release the locks before it ends the waiting statements: they
/// cannot slip through. The transaction survives the restart; `release` ends it.
async fn catch_mid_statement(
    app: &TestApp,
    http: &Client,
    token: &str,
) -> Result<Vec<InFlight>, String> {
    let fail = |e: sqlx::Error| format!("holding rows: {e}");
    let mut conn = sqlx::PgConnection::connect(&app.db.url)
        .await
        .map_err(fail)?;
    sqlx::query("BEGIN")
        .execute(&mut conn)
        .await
        .map_err(fail)?;
    sqlx::query("SELECT 1 FROM sessions WHERE id = $1::uuid FOR UPDATE")
        .bind(sid(token))
        .execute(&mut conn)
        .await
        .map_err(fail)?;
    sqlx::query("SELECT 1 FROM users WHERE email = $1 FOR UPDATE")
        .bind(DAVE)
        .execute(&mut conn)
        .await
        .map_err(fail)?;
    sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE TRANSACTION '{HOLD}'")))
        .execute(&mut conn)
        .await
        .map_err(fail)?;
    let url = app.url(SESSION);
    let requests = vec![
        in_flight("a refresh", http.put(&url).bearer_auth(token)),
        in_flight(
            "a login",
            http.post(&url)
                .json(&json!({ "email": DAVE, "password": PASSWORD, "remember_me": true })),
        ),
    ];
    let what = "the refresh and the login to wait on the held rows";
    let waited = try_poll_until(what, ANSWER_WITHIN, async || {
        let waiting: Result<i64, _> = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut conn)
        .await;
        match waiting {
            Ok(waiting) if waiting >= 2 => Ok(Ok(())),
            Ok(waiting) => Err(format!("{waiting} waiting")),
            Err(e) => Ok(Err(fail(e))),
        }
    })
    .await;
    let (waited, _) = waited?;
    waited.map(|()| requests)
}

/// Ends the prepared transaction of `catch_mid_statement`, which the restart (or the crash
/// recovery) must have kept.
async fn release(db: &TestDb) -> Result<(), String> {
    let mut conn = sqlx::PgConnection::connect(&db.url)
        .await
        .map_err(|e| format!("releasing the held rows: {e}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("ROLLBACK PREPARED '{HOLD}'")))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("releasing the held rows: {e}"))?;
    Ok(())
}

/// Every request caught mid-statement answers 503 (shape, Retry-After), within
/// `ANSWER_WITHIN` of `fault` (when the database started to go).
async fn assert_caught_answer_503(requests: Vec<InFlight>, fault: Instant) -> Result<(), String> {
    for request in requests {
        let (what, answer, answered) = request.await.map_err(|e| e.to_string())?;
        let (status, retry_after, text) =
            answer.map_err(|e| format!("{what} caught mid-statement: no answer: {e}"))?;
        if status != StatusCode::SERVICE_UNAVAILABLE {
            return Err(format!(
                "{what} caught mid-statement: {status} (only 503 may answer): {text}"
            ));
        }
        let body: Value = serde_json::from_str(&text)
            .map_err(|_| format!("{what} caught mid-statement: not JSON: {text:?}"))?;
        check_503(&body, retry_after.as_deref())
            .map_err(|why| format!("{what} caught mid-statement: {why}"))?;
        let took = answered.saturating_duration_since(fault);
        if took > ANSWER_WITHIN {
            return Err(format!(
                "{what} caught mid-statement: answered {took:?} after the fault"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The test

/// A session that exists before the fault, and what the test holds of it.
struct Held {
    label: String,
    token: String,
}

async fn login_as(app: &TestApp, email: &str, remember_me: bool, refreshes: usize) -> String {
    let mut token = app.login_token(email, remember_me).await;
    for _ in 0..refreshes {
        token = app.refresh_token(&token).await;
    }
    token
}

async fn get_status(app: &TestApp, token: &str) -> (StatusCode, Value) {
    status_json(app.get_session(token).await).await
}

async fn rides_out(mode: StopMode) {
    let started = Instant::now();
    let cluster = OwnedCluster::start().await;
    let db = cluster.database().await;
    durable_commits(&db).await;
    // The newcomer logs in a few hundred times at most: no eviction under the session cap.
    let config = TestConfig::new().var("MAX_SESSIONS_PER_USER", "100000");
    let app = TestApp::start(db.clone(), config, TestClock::new()).await;
    for email in [ALICE, BOB, CAROL, DAVE, NEWCOMER] {
        app.create_user(email, false).await;
    }

    // Before the fault: a session per client (forever and ordinary, at various generations),
    // sessions nobody touches during the load, and one that was logged out.
    let mut chains = Vec::new();
    for i in 0..CLIENTS {
        let email = [ALICE, BOB][i % 2];
        chains.push(login_as(&app, email, i % 3 != 2, i).await);
    }
    let idle = vec![
        Held {
            label: "alice, forever, never refreshed".into(),
            token: login_as(&app, ALICE, true, 0).await,
        },
        Held {
            label: "bob, ordinary, never refreshed".into(),
            token: login_as(&app, BOB, false, 0).await,
        },
        Held {
            label: "carol, forever, refreshed twice".into(),
            token: login_as(&app, CAROL, true, 2).await,
        },
        Held {
            label: "carol, ordinary, refreshed once".into(),
            token: login_as(&app, CAROL, false, 1).await,
        },
        // Its refresh is caught mid-statement by the fault and rolled back: unchanged too.
        Held {
            label: "alice, forever, refresh caught by the fault".into(),
            token: login_as(&app, ALICE, true, 1).await,
        },
    ];
    let caught = idle.last().expect("held").token.clone();
    let logged_out = login_as(&app, CAROL, true, 0).await;
    let (status, body) = status_json(app.logout(&logged_out).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let sessions_before = stored_sessions(&db).await;
    let users_before = stored_users(&db).await;
    let keys_before = db.dump("signing_keys").await;
    assert_eq!(sessions_before.len(), CLIENTS + idle.len() + 1);
    let under_load: BTreeSet<String> = chains.iter().map(|t| sid(t)).collect();

    // The load.
    let board = Arc::new(Board::new());
    let clients: Vec<JoinHandle<Report>> = chains
        .iter()
        .enumerate()
        .map(|(i, token)| tokio::spawn(client(i, app.base.clone(), board.clone(), token.clone())))
        .collect();
    let http = Client::builder().timeout(HANG).build().expect("client");
    let mut timeline = Vec::new();
    let outcome: Result<(), String> = async {
        let took = wait_for("warm-up", &board, &clients, |b| {
            Board::all(&b.ok, WARM_UP_OPS)
        })
        .await?;
        timeline.push(format!("warm-up {took:?}"));

        // The fault, with a refresh and a login inside their statements.
        let requests = catch_mid_statement(&app, &http, &caught).await?;
        let stopping = Instant::now();
        cluster.stop_with(mode).await;
        board.set_phase(Phase::Down);
        let down = Instant::now();
        timeline.push(format!(
            "pg_ctl stop -m {} {:?}",
            mode.as_str(),
            stopping.elapsed()
        ));
        assert_caught_answer_503(requests, stopping).await?;
        // The process is up, and knows it is not ready.
        let live = http
            .get(app.url("/health/live"))
            .send()
            .await
            .map_err(|e| format!("/health/live during the outage: {e}"))?;
        if live.status() != StatusCode::OK {
            return Err(format!("/health/live during the outage: {}", live.status()));
        }
        let ready = http
            .get(app.url("/health/ready"))
            .send()
            .await
            .map_err(|e| format!("/health/ready during the outage: {e}"))?;
        if ready.status() != StatusCode::SERVICE_UNAVAILABLE {
            return Err(format!(
                "/health/ready during the outage: {}",
                ready.status()
            ));
        }
        wait_for(
            "every client and operation meets the outage",
            &board,
            &clients,
            |b| {
                Board::all(&b.down_503, 1)
                    && Board::all(&b.down_503_by_op, 1)
                    && down.elapsed() >= OUTAGE
            },
        )
        .await?;
        timeline.push(format!("down {:?}", down.elapsed()));

        // The recovery.
        let starting = Instant::now();
        cluster.restart().await;
        release(&db).await?;
        board.set_phase(Phase::Back);
        timeline.push(format!("pg_ctl start {:?}", starting.elapsed()));
        let took = wait_for("every chain continues", &board, &clients, |b| {
            Board::all(&b.back_refreshes, RECOVERED_REFRESHES)
        })
        .await?;
        timeline.push(format!("recovered {took:?}"));
        Ok(())
    }
    .await;
    board.abort.store(outcome.is_err(), Ordering::SeqCst);
    board.stop.store(true, Ordering::SeqCst);
    let mut reports = Vec::new();
    for task in clients {
        reports.push(task.await.expect("a client task panicked"));
    }

    // What the clients saw.
    let problems: Vec<&String> = outcome
        .as_ref()
        .err()
        .into_iter()
        .chain(reports.iter().flat_map(|r| &r.violations))
        .collect();
    let mut answers: BTreeMap<(Phase, Op, u16), usize> = BTreeMap::new();
    for report in &reports {
        for (key, n) in &report.answers {
            *answers.entry(*key).or_default() += n;
        }
    }
    let slowest = reports.iter().map(|r| r.slowest).max().unwrap_or_default();
    eprintln!(
        "{mode:?}: {}; slowest answer {slowest:?}",
        timeline.join(", ")
    );
    eprintln!("{mode:?}: answers by (phase, op, status): {answers:?}");
    assert!(
        problems.is_empty(),
        "{mode:?}: {} problems (first 20):\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for op in [Op::Get, Op::Put, Op::Login] {
        assert!(
            answers.get(&(Phase::Down, op, 503)).is_some_and(|n| *n > 0),
            "{mode:?}: no {op:?} met the outage: {answers:?}"
        );
    }
    let retried: usize = reports.iter().map(|r| r.retried_after_503).sum();
    assert!(
        retried > 0,
        "{mode:?}: no refresh answered 503 was retried with success"
    );

    // What is stored: every session from before is intact, every acknowledged write is there.
    let sessions_after = stored_sessions(&db).await;
    for (id, before) in &sessions_before {
        let after = sessions_after
            .get(id)
            .unwrap_or_else(|| panic!("{mode:?}: session {id} is gone"));
        if under_load.contains(id) {
            assert_eq!(
                after.identity, before.identity,
                "{mode:?}: session {id} (under load) changed beyond its generation"
            );
            assert!(after.gen >= before.gen, "{mode:?}: session {id} went back");
        } else {
            assert_eq!(
                after.row, before.row,
                "{mode:?}: session {id} (untouched) changed"
            );
        }
    }
    for report in &reports {
        let stored = &sessions_after[&sid(&report.token)];
        assert_eq!(
            stored.gen,
            gen(&report.token),
            "{mode:?}: session {}: the stored generation is not the last one answered",
            sid(&report.token)
        );
        assert!(!stored.revoked);
    }
    let newcomer_id = users_before[NEWCOMER].0;
    let logins: Vec<&String> = reports.iter().flat_map(|r| &r.logins).collect();
    assert!(!logins.is_empty(), "{mode:?}: no login succeeded");
    let new_sessions: BTreeSet<&String> = sessions_after
        .keys()
        .filter(|id| !sessions_before.contains_key(*id))
        .collect();
    for id in &new_sessions {
        assert_eq!(
            sessions_after[*id].user_id, newcomer_id,
            "{mode:?}: session {id} appeared for someone who did not log in"
        );
    }
    for token in &logins {
        assert!(
            new_sessions.contains(&sid(token)),
            "{mode:?}: an acknowledged login is not stored"
        );
    }
    let users_after = stored_users(&db).await;
    assert_eq!(
        users_after.keys().collect::<Vec<_>>(),
        users_before.keys().collect::<Vec<_>>(),
        "{mode:?}: users"
    );
    for (email, (_, row, without_login)) in &users_before {
        if email == NEWCOMER {
            assert_eq!(&users_after[email].2, without_login, "{mode:?}: {email}");
        } else {
            assert_eq!(&users_after[email].1, row, "{mode:?}: {email}");
        }
    }
    assert_eq!(
        db.dump("signing_keys").await,
        keys_before,
        "{mode:?}: signing keys"
    );

    // Every live session answers: the ones from before, and every acknowledged login.
    let mut live: Vec<Held> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| Held {
            label: format!("client {i}'s chain"),
            token: r.token.clone(),
        })
        .collect();
    live.extend(idle);
    for held in &live {
        let (status, body) = get_status(&app, &held.token).await;
        assert_eq!(status, StatusCode::OK, "{mode:?}: {}: {body}", held.label);
    }
    for token in &logins {
        let (status, body) = get_status(&app, token).await;
        assert_eq!(status, StatusCode::OK, "{mode:?}: a login's token: {body}");
    }
    // The logged-out session stays logged out.
    let (_, reason) = assert_error(app.get_session(&logged_out).await, StatusCode::FORBIDDEN).await;
    assert_eq!(reason, "logged_out");

    // Once their tokens have expired, every session from before refreshes normally.
    app.clock.advance(PAST_TOKEN_EXPIRY);
    for held in &live {
        let (_, reason) =
            assert_error(app.get_session(&held.token).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "expired", "{mode:?}: {}", held.label);
        let (status, body) = status_json(app.refresh(&held.token).await).await;
        assert_eq!(status, StatusCode::OK, "{mode:?}: {}: {body}", held.label);
        let refreshed = body["session_token"].as_str().expect("token");
        assert_eq!(sid(refreshed), sid(&held.token), "{mode:?}: {}", held.label);
        assert_eq!(
            gen(refreshed),
            gen(&held.token) + 1,
            "{mode:?}: {}",
            held.label
        );
        let (status, body) = get_status(&app, refreshed).await;
        assert_eq!(status, StatusCode::OK, "{mode:?}: {}: {body}", held.label);
    }
    let ready = http
        .get(app.url("/health/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), StatusCode::OK);
    eprintln!("{mode:?}: {:?} in all", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_shutdown_under_load_logs_nobody_out() {
    rides_out(StopMode::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_database_under_load_logs_nobody_out() {
    rides_out(StopMode::Immediate).await;
}
