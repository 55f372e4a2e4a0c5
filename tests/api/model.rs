//! Model-based test: random sequences of login, refresh, replay, logout, admin revoke and clock
//! advances against a real server on each backend, checked op by op against a small reference
//! model of the rules of DESIGN §2:
//!
//! - a refresh with the current token rotates (`gen + 1`, `iat` = now, `exp` = now + TTL), for
//!   forever sessions at any age, for ordinary ones until `created_at + DF_JWT_REFRESH_TTL`;
//! - the token exactly one `gen` behind, within `REFRESH_REUSE_GRACE` of the rotation (whole
//!   seconds, inclusive), gets the identical current token back;
//! - any other stale token presented for refresh revokes the session (`token_reuse`, 401);
//! - GET: 403 when the session is terminated or the token's `gen` is not current (even when the
//!   token has also expired), else 401 when `now >= exp`, else 200;
//! - DELETE (logout) ends a live session with its current token, expired or not; stale or
//!   terminated tokens get 403;
//! - an administrator's revoke ends the session (`revoked`); a second revoke is a 404.
//!
//! Each case runs against a fresh server and database. After the ops, every token ever issued
//! is presented once more (GET) and must answer as the model says: no token survives a
//! revocation, no replaced token comes back to life.
//!
//! A mismatch fails with the op sequence, the trace of what the server answered so far, the
//! model's expectation and the server's answer; proptest then shrinks the sequence and reports
//! the smallest one it found. `PROPTEST_CASES=N` runs more cases (default 24 per backend).

use std::fmt;

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestError, TestRunner};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use tenure::clock::Clock;

use crate::helpers::*;

/// `DF_JWT_TTL`, `DF_JWT_REFRESH_TTL` and `REFRESH_REUSE_GRACE` of the server under test.
const TTL: i64 = 60;
const REFRESH_TTL: i64 = 180;
const GRACE: i64 = 10;

const USERS: usize = 2;
const SESSIONS_PER_USER: usize = 3;
const MAX_OPS: usize = 25;
const DEFAULT_CASES: u32 = 24;

/// Clock steps, mostly small: around the grace (9, 10, 11), the token TTL (59, 60, 61), and
/// now and then past the refresh window.
const SMALL_STEPS: [i64; 5] = [1, 5, 9, 10, 11];
const TTL_STEPS: [i64; 4] = [59, 60, 61, 90];
const LARGE_STEPS: [i64; 3] = [120, 600, 3600];
/// How long a client whose refresh answer was lost waits before retrying: inside the grace,
/// at its edge, and just past it.
const RETRY_AFTER: [i64; 6] = [0, 1, 5, 9, 10, 11];

const ADMIN: &str = "model-admin@example.com";

fn user_email(user: usize) -> String {
    format!("model-user{user}@example.com")
}

// ---------------------------------------------------------------------------------------------
// Operations

/// One step of a case. `session` picks among the sessions logged in so far (modulo their
/// number); `back` picks a token of that session: 0 the newest, 1 the one before, and so on
/// (clamped to the first).
#[derive(Debug, Clone, Copy)]
enum Op {
    Login {
        user: usize,
        forever: bool,
    },
    Refresh {
        session: usize,
        back: usize,
    },
    Get {
        session: usize,
        back: usize,
    },
    Logout {
        session: usize,
        back: usize,
    },
    AdminRevoke {
        session: usize,
    },
    Advance {
        seconds: i64,
    },
    /// A refresh whose answer is lost: the client waits `after` seconds and sends the same
    /// token again (the racer the grace is for), i.e. two refreshes with one token.
    Retry {
        session: usize,
        after: i64,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let which = |back: usize| match back {
            0 => "current".to_owned(),
            1 => "previous".to_owned(),
            k => format!("{k} back"),
        };
        match *self {
            Op::Login { user, forever } => write!(
                f,
                "login user{user} {}",
                if forever { "forever" } else { "ordinary" }
            ),
            Op::Refresh { session, back } => {
                write!(f, "refresh #{session} ({} token)", which(back))
            }
            Op::Get { session, back } => write!(f, "get #{session} ({} token)", which(back)),
            Op::Logout { session, back } => write!(f, "logout #{session} ({} token)", which(back)),
            Op::AdminRevoke { session } => write!(f, "admin revoke #{session}"),
            Op::Advance { seconds } => write!(f, "advance {seconds}s"),
            Op::Retry { session, after } => write!(
                f,
                "refresh #{session} (current token), answer lost, {after}s later again"
            ),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let session = 0..USERS * SESSIONS_PER_USER;
    let back = prop_oneof![6 => Just(0usize), 4 => Just(1usize), 3 => 2usize..5];
    let seconds = prop_oneof![
        6 => proptest::sample::select(&SMALL_STEPS[..]),
        3 => proptest::sample::select(&TTL_STEPS[..]),
        1 => proptest::sample::select(&LARGE_STEPS[..]),
    ];
    prop_oneof![
        3 => (0..USERS, any::<bool>()).prop_map(|(user, forever)| Op::Login { user, forever }),
        8 => (session.clone(), back.clone()).prop_map(|(session, back)| Op::Refresh { session, back }),
        3 => (session.clone(), back.clone()).prop_map(|(session, back)| Op::Get { session, back }),
        1 => (session.clone(), back).prop_map(|(session, back)| Op::Logout { session, back }),
        1 => session.clone().prop_map(|session| Op::AdminRevoke { session }),
        6 => seconds.prop_map(|seconds| Op::Advance { seconds }),
        3 => (session, proptest::sample::select(&RETRY_AFTER[..]))
            .prop_map(|(session, after)| Op::Retry { session, after }),
    ]
}

/// A case: a login (so that what follows has a session to act on), then up to
/// `MAX_OPS - 1` random ops.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    (
        0..USERS,
        any::<bool>(),
        proptest::collection::vec(op(), 0..MAX_OPS),
    )
        .prop_map(|(user, forever, rest)| {
            let mut ops = vec![Op::Login { user, forever }];
            ops.extend(rest);
            ops
        })
}

// ---------------------------------------------------------------------------------------------
// The reference model

/// A token the server issued.
#[derive(Debug, Clone)]
struct Issued {
    token: String,
    gen: i64,
    exp: i64,
}

/// What the model knows of one session.
#[derive(Debug)]
struct ModelSession {
    user: usize,
    sid: String,
    forever: bool,
    created_at: i64,
    gen: i64,
    rotated_at: i64,
    /// Why the session ended (`logged_out`, `revoked`, `token_reuse`), if it did.
    ended: Option<&'static str>,
    /// Every token issued for it, oldest first; `tokens[g]` is the token of gen `g`.
    tokens: Vec<Issued>,
}

/// The answer the model predicts.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// 200 with a session body for the presented token (GET).
    Session,
    /// 200 `{"success": true}` (logout, admin revoke).
    Success,
    /// 200 with a new token of this gen, issued now.
    Rotated { gen: i64, iat: i64, exp: i64 },
    /// 200 with exactly this (already issued) token: the grace for racers.
    Same(String),
    /// An error with this status and `context.reason`.
    Error { status: u16, reason: &'static str },
    /// 404: no such live session (admin revoke of an ended session).
    NotFound,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Session => write!(f, "200 with the session"),
            Expect::Success => write!(f, "200 success"),
            Expect::Rotated { gen, iat, exp } => {
                write!(f, "200 with a new token gen {gen} (iat {iat}, exp {exp})")
            }
            Expect::Same(token) => {
                write!(f, "200 with the identical current token {}", tail(token))
            }
            Expect::Error { status, reason } => write!(f, "{status} ({reason})"),
            Expect::NotFound => write!(f, "404"),
        }
    }
}

impl ModelSession {
    fn terminated(&self, presented_gen: i64) -> Option<&'static str> {
        match self.ended {
            Some(reason) => Some(reason),
            None if presented_gen != self.gen => Some("rotated"),
            None => None,
        }
    }

    fn expect_get(&self, token: &Issued, now: i64) -> Expect {
        if let Some(reason) = self.terminated(token.gen) {
            Expect::Error {
                status: 403,
                reason,
            }
        } else if now >= token.exp {
            Expect::Error {
                status: 401,
                reason: "expired",
            }
        } else {
            Expect::Session
        }
    }

    /// A logout ends a live session with its current token, or with the token its last
    /// rotation replaced within the grace (a logout racing another tab's refresh).
    fn expect_logout(&self, token: &Issued, now: i64) -> Expect {
        let in_grace =
            self.ended.is_none() && token.gen + 1 == self.gen && now - self.rotated_at <= GRACE;
        match self.terminated(token.gen) {
            Some(_) if in_grace => Expect::Success,
            Some(reason) => Expect::Error {
                status: 403,
                reason,
            },
            None => Expect::Success,
        }
    }

    fn expect_refresh(&self, token: &Issued, now: i64) -> Expect {
        if let Some(reason) = self.ended {
            return Expect::Error {
                status: 401,
                reason,
            };
        }
        if token.gen == self.gen {
            if !self.forever && now > self.created_at + REFRESH_TTL {
                return Expect::Error {
                    status: 401,
                    reason: "refresh_window_closed",
                };
            }
            return Expect::Rotated {
                gen: self.gen + 1,
                iat: now,
                exp: now + TTL,
            };
        }
        if token.gen + 1 == self.gen && now - self.rotated_at <= GRACE {
            return Expect::Same(self.tokens[self.gen as usize].token.clone());
        }
        Expect::Error {
            status: 401,
            reason: "token_reuse",
        }
    }

    fn expect_admin_revoke(&self) -> Expect {
        if self.ended.is_some() {
            Expect::NotFound
        } else {
            Expect::Success
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case

/// The answer of the server, read without panicking (a non-JSON body becomes a string).
struct Answer {
    status: StatusCode,
    body: Value,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = &self.body["error"]["context"]["reason"];
        match (reason.as_str(), self.body["session_token"].as_str()) {
            (Some(reason), _) => write!(f, "{} ({reason}) {}", self.status.as_u16(), self.body),
            (None, Some(token)) => {
                let c = claims(token);
                write!(
                    f,
                    "{} token {} gen {} iat {} exp {}",
                    self.status.as_u16(),
                    tail(token),
                    c["gen"],
                    c["iat"],
                    c["exp"]
                )
            }
            (None, None) => write!(f, "{} {}", self.status.as_u16(), self.body),
        }
    }
}

async fn answer(response: Response) -> Answer {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body }
}

/// The last characters of a token: enough to tell tokens apart in a trace.
fn tail(token: &str) -> String {
    format!("…{}", &token[token.len().saturating_sub(10)..])
}

/// Who a session-bound answer is about, for checking its body.
struct Target<'a> {
    /// The token sent (GET answers it back).
    presented: Option<&'a str>,
    /// The session id the answer's token must carry (unknown before a login).
    sid: Option<&'a str>,
    forever: bool,
    email: &'a str,
}

/// Whether `got` is what `expect` says; `Err` explains the difference.
fn check(expect: &Expect, got: &Answer, target: &Target<'_>) -> Result<(), String> {
    let body = &got.body;
    match expect {
        Expect::Error { status, reason } => {
            if got.status.as_u16() != *status {
                return Err("the status differs".into());
            }
            let error = &body["error"];
            if error["code"] != *status
                || error["status_code"] != *status
                || !error["message"].is_string()
            {
                return Err("not a DreamFactory error body".into());
            }
            if error["context"]["reason"] != *reason {
                return Err("context.reason differs".into());
            }
        }
        Expect::NotFound => {
            if got.status != StatusCode::NOT_FOUND {
                return Err("the status differs".into());
            }
        }
        Expect::Success => {
            if got.status != StatusCode::OK {
                return Err("the status differs".into());
            }
            if body["success"] != true {
                return Err("no \"success\": true".into());
            }
        }
        Expect::Session => {
            if got.status != StatusCode::OK {
                return Err("the status differs".into());
            }
            let presented = target.presented.unwrap_or_default();
            if body["session_token"] != presented || body["session_id"] != presented {
                return Err("session_token/session_id is not the presented token".into());
            }
            if body["email"] != target.email {
                return Err(format!("the session is not {}'s", target.email));
            }
        }
        Expect::Same(token) => {
            if got.status != StatusCode::OK {
                return Err("the status differs".into());
            }
            if body["session_token"] != token.as_str() || body["session_id"] != token.as_str() {
                return Err("not the identical current token".into());
            }
        }
        Expect::Rotated { gen, iat, exp } => {
            if got.status != StatusCode::OK {
                return Err("the status differs".into());
            }
            let Some(token) = body["session_token"].as_str() else {
                return Err("no session_token".into());
            };
            if body["session_id"] != token {
                return Err("session_id differs from session_token".into());
            }
            if body["email"] != target.email {
                return Err(format!("the session is not {}'s", target.email));
            }
            if Some(token) == target.presented {
                return Err("the presented token came back instead of a new one".into());
            }
            let c = claims(token);
            let claimed = (c["gen"].as_i64(), c["iat"].as_i64(), c["exp"].as_i64());
            if claimed != (Some(*gen), Some(*iat), Some(*exp)) {
                return Err(format!("claims gen/iat/exp differ: {claimed:?}"));
            }
            if c["nbf"] != *iat || c["forever"] != target.forever {
                return Err(format!("claims nbf/forever differ: {c}"));
            }
            if target.sid.is_some_and(|sid| c["sid"] != sid) {
                return Err(format!("the token is for another session: {c}"));
            }
        }
    }
    Ok(())
}

/// One case: the server, the model, and the trace of what happened.
struct Case<'a> {
    app: TestApp,
    ops: &'a [Op],
    /// The server clock at the start, and now (the model's time; the server's is the same).
    t0: i64,
    now: i64,
    sessions: Vec<ModelSession>,
    admin_token: Option<Issued>,
    trace: Vec<String>,
}

impl Case<'_> {
    /// A failure showing the sequence, the trace so far, the expectation and the answer.
    fn mismatch(&self, step: &str, expect: &Expect, got: &Answer, why: &str) -> TestCaseError {
        let sequence: Vec<String> = self
            .ops
            .iter()
            .enumerate()
            .map(|(i, op)| format!("  {i:>2}. {op}"))
            .collect();
        TestCaseError::fail(format!(
            "the server disagrees with the model of DESIGN §2 \
             (TTL {TTL}s, refresh window {REFRESH_TTL}s, grace {GRACE}s)\n\
             op sequence ({} ops):\n{}\n\
             trace (t = seconds since the start):\n{}\n\
             at:       {step}\n\
             expected: {expect}\n\
             got:      {got}\n\
             ({why})",
            self.ops.len(),
            sequence.join("\n"),
            self.trace.join("\n"),
        ))
    }

    fn t(&self) -> i64 {
        self.now - self.t0
    }

    fn describe(&self, idx: usize, gen: i64) -> String {
        let s = &self.sessions[idx];
        format!(
            "[#{idx}: user{} {}, created t={}, gen {}, rotated t={}{}; presented gen {gen}]",
            s.user,
            if s.forever { "forever" } else { "ordinary" },
            s.created_at - self.t0,
            s.gen,
            s.rotated_at - self.t0,
            s.ended.map(|r| format!(", ended: {r}")).unwrap_or_default(),
        )
    }

    async fn run(&mut self) -> Result<(), TestCaseError> {
        for (i, op) in self.ops.iter().copied().enumerate() {
            let step = format!("{i:>2}. t={} {op}", self.t());
            match op {
                Op::Advance { seconds } => {
                    self.app.clock.advance(seconds);
                    self.now += seconds;
                    self.trace.push(step);
                }
                Op::Login { user, forever } => self.login(step, user, forever).await?,
                Op::Refresh { session, back }
                | Op::Get { session, back }
                | Op::Logout { session, back } => {
                    if self.sessions.is_empty() {
                        self.trace.push(format!("{step}: skipped, no session yet"));
                        continue;
                    }
                    let idx = session % self.sessions.len();
                    let tokens = &self.sessions[idx].tokens;
                    let issued = tokens[tokens.len() - 1 - back.min(tokens.len() - 1)].clone();
                    let step = format!("{step} {}", self.describe(idx, issued.gen));
                    match op {
                        Op::Refresh { .. } => self.refresh(step, idx, issued).await?,
                        Op::Get { .. } => self.get(step, idx, issued).await?,
                        _ => self.logout(step, idx, issued).await?,
                    }
                }
                Op::AdminRevoke { session } => {
                    if self.sessions.is_empty() {
                        self.trace.push(format!("{step}: skipped, no session yet"));
                        continue;
                    }
                    let idx = session % self.sessions.len();
                    let gen = self.sessions[idx].gen;
                    let step = format!("{step} {}", self.describe(idx, gen));
                    self.admin_revoke(step, idx).await?;
                }
                Op::Retry { session, after } => {
                    if self.sessions.is_empty() {
                        self.trace.push(format!("{step}: skipped, no session yet"));
                        continue;
                    }
                    let idx = session % self.sessions.len();
                    let issued = self.sessions[idx].tokens.last().cloned().expect("a token");
                    let first = format!("{step}: first {}", self.describe(idx, issued.gen));
                    self.refresh(first, idx, issued.clone()).await?;
                    self.app.clock.advance(after);
                    self.now += after;
                    let again = format!(
                        "{i:>2}. t={} {op}: again {}",
                        self.t(),
                        self.describe(idx, issued.gen)
                    );
                    self.refresh(again, idx, issued).await?;
                }
            }
        }
        // Every token ever issued answers as the model says: nothing revoked or replaced
        // works again.
        for idx in 0..self.sessions.len() {
            for issued in self.sessions[idx].tokens.clone() {
                let step = format!(
                    "final sweep, t={}: get #{idx} {}",
                    self.t(),
                    self.describe(idx, issued.gen)
                );
                self.get(step, idx, issued).await?;
            }
        }
        Ok(())
    }

    async fn login(
        &mut self,
        step: String,
        user: usize,
        forever: bool,
    ) -> Result<(), TestCaseError> {
        let email = user_email(user);
        if self.sessions.iter().filter(|s| s.user == user).count() >= SESSIONS_PER_USER {
            self.trace.push(format!(
                "{step}: skipped, user{user} has {SESSIONS_PER_USER} sessions"
            ));
            return Ok(());
        }
        let got = answer(self.app.login(&email, PASSWORD, forever).await).await;
        let expect = Expect::Rotated {
            gen: 0,
            iat: self.now,
            exp: self.now + TTL,
        };
        let target = Target {
            presented: None,
            sid: None,
            forever,
            email: &email,
        };
        if let Err(why) = check(&expect, &got, &target) {
            return Err(self.mismatch(&step, &expect, &got, &why));
        }
        let token = got.body["session_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let sid = claims(&token)["sid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let idx = self.sessions.len();
        self.trace.push(format!("{step} → #{idx}: {got}"));
        self.sessions.push(ModelSession {
            user,
            sid,
            forever,
            created_at: self.now,
            gen: 0,
            rotated_at: self.now,
            ended: None,
            tokens: vec![Issued {
                token,
                gen: 0,
                exp: self.now + TTL,
            }],
        });
        Ok(())
    }

    /// Checks an answer about session `idx`; on a match, records it in the trace.
    fn judge(
        &mut self,
        step: &str,
        idx: usize,
        presented: &Issued,
        expect: &Expect,
        got: &Answer,
    ) -> Result<(), TestCaseError> {
        let s = &self.sessions[idx];
        let email = user_email(s.user);
        let target = Target {
            presented: Some(&presented.token),
            sid: Some(&s.sid),
            forever: s.forever,
            email: &email,
        };
        if let Err(why) = check(expect, got, &target) {
            return Err(self.mismatch(step, expect, got, &why));
        }
        self.trace.push(format!("{step} → {got}"));
        Ok(())
    }

    async fn get(&mut self, step: String, idx: usize, issued: Issued) -> Result<(), TestCaseError> {
        let expect = self.sessions[idx].expect_get(&issued, self.now);
        let got = answer(self.app.get_session(&issued.token).await).await;
        self.judge(&step, idx, &issued, &expect, &got)
    }

    async fn logout(
        &mut self,
        step: String,
        idx: usize,
        issued: Issued,
    ) -> Result<(), TestCaseError> {
        let expect = self.sessions[idx].expect_logout(&issued, self.now);
        let got = answer(self.app.logout(&issued.token).await).await;
        self.judge(&step, idx, &issued, &expect, &got)?;
        if expect == Expect::Success {
            self.sessions[idx].ended = Some("logged_out");
        }
        Ok(())
    }

    async fn refresh(
        &mut self,
        step: String,
        idx: usize,
        issued: Issued,
    ) -> Result<(), TestCaseError> {
        let expect = self.sessions[idx].expect_refresh(&issued, self.now);
        let got = answer(self.app.refresh(&issued.token).await).await;
        self.judge(&step, idx, &issued, &expect, &got)?;
        let s = &mut self.sessions[idx];
        match expect {
            Expect::Rotated { gen, exp, .. } => {
                let token = got.body["session_token"].as_str().unwrap_or_default();
                s.tokens.push(Issued {
                    token: token.to_owned(),
                    gen,
                    exp,
                });
                s.gen = gen;
                s.rotated_at = self.now;
            }
            Expect::Error {
                reason: "token_reuse",
                ..
            } if s.ended.is_none() => s.ended = Some("token_reuse"),
            _ => {}
        }
        Ok(())
    }

    async fn admin_revoke(&mut self, step: String, idx: usize) -> Result<(), TestCaseError> {
        let admin = self.admin_token().await;
        let expect = self.sessions[idx].expect_admin_revoke();
        let path = format!("/api/v2/system/sessions/{}", self.sessions[idx].sid);
        let response = self
            .app
            .request(Method::DELETE, &path)
            .bearer_auth(&admin)
            .send()
            .await
            .expect("admin revoke request");
        let got = answer(response).await;
        let current = self.sessions[idx].tokens.last().cloned().expect("a token");
        self.judge(&step, idx, &current, &expect, &got)?;
        if expect == Expect::Success {
            self.sessions[idx].ended = Some("revoked");
        }
        Ok(())
    }

    /// A live administrator's token (a forever session, refreshed when it has expired).
    async fn admin_token(&mut self) -> String {
        let token = match self.admin_token.take() {
            None => self.app.login_token(ADMIN, true).await,
            Some(issued) if self.now >= issued.exp => self.app.refresh_token(&issued.token).await,
            Some(issued) => issued.token,
        };
        let c = claims(&token);
        self.admin_token = Some(Issued {
            token: token.clone(),
            gen: c["gen"].as_i64().expect("gen"),
            exp: c["exp"].as_i64().expect("exp"),
        });
        token
    }
}

fn server_config() -> TestConfig {
    TestConfig::new()
        .var("DF_JWT_TTL", &format!("{TTL}s"))
        .var("DF_JWT_REFRESH_TTL", &format!("{REFRESH_TTL}s"))
        .var("REFRESH_REUSE_GRACE", &format!("{GRACE}s"))
        .var("LOGIN_MAX_FAILURES", "100000")
        .var("LOGIN_MAX_FAILURES_PER_IP", "100000")
        // The model has no purge: keep the background purge from deleting rows mid-case.
        .var("PURGE_INTERVAL", "3650d")
}

async fn run_case(backend: Backend, ops: &[Op]) -> Result<(), TestCaseError> {
    let app = spawn_app_with(backend, server_config()).await;
    app.create_user(ADMIN, true).await;
    for user in 0..USERS {
        app.create_user(&user_email(user), false).await;
    }
    let now = app.clock.now();
    let mut case = Case {
        app,
        ops,
        t0: now,
        now,
        sessions: Vec::new(),
        admin_token: None,
        trace: Vec::new(),
    };
    let result = case.run().await;
    case.app.stop().await;
    result
}

/// Runs the model test on one backend: `PROPTEST_CASES` cases (default 24), each a fresh server.
fn run_model(backend: Backend) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let config = ProptestConfig {
        cases,
        max_shrink_iters: 200,
        // Shrinking restarts a server per attempt: bound it (milliseconds).
        max_shrink_time: 180_000,
        // No regression files in the tree; a failure prints its (shrunk) sequence instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops(), |ops| runtime.block_on(run_case(backend, &ops)));
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => panic!(
            "{backend:?}: model mismatch; smallest failing sequence found ({} ops):\n{why}",
            ops.len()
        ),
        Err(TestError::Abort(why)) => panic!("{backend:?}: model test aborted: {why}"),
    }
}

#[test]
fn sqlite() {
    run_model(Backend::Sqlite);
}

#[test]
fn postgres() {
    run_model(Backend::Postgres);
}
