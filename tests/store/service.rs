//! `SessionService` in process, on a SQLite file, with a `TestClock` that the tests advance
//! instead of sleeping: login, access checks, expiry, refresh (rotation, the grace for racers,
//! replay detection), logout, refresh windows, idle expiry and login throttling.
//!
//! The service is wired as `tenure::build_state` wires it: a migrated store, the key ring
//! loaded from it (an HS256 key generated on first use), and the policy taken from a `Config`.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;
use tenure::clock::{Clock, TestClock};
use tenure::config::Config;
use tenure::password::PasswordHasherPool;
use tenure::session::keys::KeyRing;
use tenure::session::{
    Audience, Authenticated, ClientInfo, LoginRequest, LogoutBy, LogoutScope, Reason, RefreshBy,
    RegisterRequest, SessionError, SessionService,
};
use tenure::store::Session;

use crate::db::TestDb;

const EMAIL: &str = "jane@example.com";
const PASSWORD: &str = "correct-horse-battery";
/// `DF_JWT_TTL` of these tests, in seconds.
const TTL: i64 = 600;
/// `DF_JWT_REFRESH_TTL`.
const REFRESH_TTL: i64 = 3600;
/// `REFRESH_REUSE_GRACE`.
const GRACE: i64 = 10;

/// A service on its own SQLite file, and the clock it reads.
struct Harness {
    service: SessionService,
    clock: TestClock,
    db: TestDb,
}

/// The configuration of these tests, with `overrides` on top.
async fn harness(overrides: &[(&str, &str)]) -> Harness {
    let db = TestDb::sqlite().await;
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", db.url.as_str()),
        ("DF_JWT_TTL", "10m"),
        ("DF_JWT_REFRESH_TTL", "60m"),
        ("DF_ALLOW_FOREVER_SESSIONS", "true"),
        ("REFRESH_REUSE_GRACE", "10s"),
    ]
    .into_iter()
    .chain(overrides.iter().copied())
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
    let clock = TestClock::new();
    let config = Arc::new(config);
    let keys = KeyRing::load(db.store.clone(), config.clone(), clock.now())
        .await
        .expect("key ring");
    let service = SessionService::new(
        db.store.clone(),
        Arc::new(keys),
        Arc::new(clock.clone()),
        PasswordHasherPool::new(1),
        config,
    );
    Harness { service, clock, db }
}

impl Harness {
    fn now(&self) -> i64 {
        self.clock.now()
    }

    async fn register(&self, email: &str, admin: bool) {
        self.service
            .create_user(RegisterRequest {
                email: Some(email.to_owned()),
                username: None,
                password: Some(SecretString::from(PASSWORD)),
                password_confirmation: None,
                name: Some("Jane Doe".into()),
                first_name: None,
                last_name: None,
                is_sys_admin: admin,
            })
            .await
            .expect("create user");
    }

    async fn login_as(
        &self,
        email: &str,
        password: &str,
        remember_me: bool,
        audience: Audience,
    ) -> Result<Authenticated, SessionError> {
        self.service
            .login(
                LoginRequest {
                    email: Some(email.to_owned()),
                    username: None,
                    password: Some(SecretString::from(password)),
                    remember_me,
                    client: ClientInfo {
                        ip: Some("192.0.2.7".into()),
                        ..ClientInfo::default()
                    },
                    refresh_mode: None,
                    app: None,
                },
                audience,
            )
            .await
    }

    /// Logs in as the test user; panics unless it succeeds.
    async fn login(&self, remember_me: bool) -> Authenticated {
        self.login_as(EMAIL, PASSWORD, remember_me, Audience::User)
            .await
            .expect("login")
    }

    async fn current(&self, token: &str) -> Result<Authenticated, SessionError> {
        self.service.current(Some(token), Audience::User).await
    }

    async fn refresh(&self, token: &str) -> Result<Authenticated, SessionError> {
        self.service
            .refresh(RefreshBy::Token(Some(token)), Audience::User)
            .await
    }

    async fn logout(&self, token: &str, scope: LogoutScope) -> Result<u64, SessionError> {
        self.service
            .logout(LogoutBy::Token(Some(token)), Audience::User, scope)
            .await
    }

    /// The stored row of the session `auth` stands for.
    async fn row(&self, auth: &Authenticated) -> Session {
        self.db
            .store
            .session_with_user(auth.claims.sid, None)
            .await
            .unwrap()
            .expect("session row")
            .session
    }
}

/// Why a refresh was refused; panics if it was not.
fn refused(result: Result<Authenticated, SessionError>) -> Reason {
    match result {
        Err(SessionError::RefreshRefused { reason, .. }) => reason,
        other => panic!("expected a refused refresh, got {other:?}"),
    }
}

/// Why a token was found terminated; panics if it was not.
fn terminated<T: std::fmt::Debug>(result: Result<T, SessionError>) -> Reason {
    match result {
        Err(SessionError::Terminated(reason)) => reason,
        other => panic!("expected a terminated session, got {other:?}"),
    }
}

#[tokio::test]
async fn login_issues_the_token_of_gen_zero() {
    let h = harness(&[]).await;
    h.register(EMAIL, false).await;
    let t0 = h.now();

    let a = h.login(true).await;
    let user_id = a.view.user.id;
    assert_eq!(a.claims.sid, a.view.session.id);
    assert_eq!(a.claims.gen, 0);
    assert_eq!(
        (a.claims.user_id, a.claims.sub.as_str()),
        (user_id, &*user_id.to_string())
    );
    assert_eq!(
        (a.claims.iat, a.claims.nbf, a.claims.exp),
        (t0, t0, t0 + TTL)
    );
    assert!(a.claims.forever);
    assert_eq!(a.view.session.refresh_until, None);
    assert_eq!(a.view.session.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(a.view.user.last_login_at, Some(t0));

    // The email is compared in its normalised form; without remember_me the session is ordinary.
    let b = h
        .login_as(" JANE@Example.COM ", PASSWORD, false, Audience::User)
        .await
        .unwrap();
    assert_ne!(b.claims.sid, a.claims.sid);
    assert_eq!(b.view.user.id, user_id);
    assert!(!b.claims.forever);
    assert_eq!(b.view.session.refresh_until, Some(t0 + REFRESH_TTL));

    for (email, password) in [(EMAIL, "wrong-password"), ("john@example.com", PASSWORD)] {
        let err = h
            .login_as(email, password, true, Audience::User)
            .await
            .unwrap_err();
        assert!(matches!(err, SessionError::InvalidCredentials), "{err:?}");
    }
    let err = h
        .login_as(EMAIL, "", true, Audience::User)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SessionError::MissingField("password")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_token_is_accepted_until_jwt_ttl() {
    let h = harness(&[]).await;
    h.register(EMAIL, false).await;
    let a = h.login(true).await;

    let seen = h.current(&a.token).await.unwrap();
    assert_eq!(seen.view.session.id, a.claims.sid);
    h.clock.advance(TTL - 1);
    h.current(&a.token).await.unwrap();
    h.clock.advance(1);
    let err = h.current(&a.token).await.unwrap_err();
    assert!(matches!(err, SessionError::Expired), "{err:?}");

    let err = h.service.current(None, Audience::User).await.unwrap_err();
    assert!(matches!(err, SessionError::NoSession), "{err:?}");
    let err = h.current("not.a.token").await.unwrap_err();
    assert!(matches!(err, SessionError::InvalidToken(_)), "{err:?}");
}

#[tokio::test]
async fn an_expired_forever_token_refreshes_long_after_any_window() {
    let h = harness(&[]).await;
    h.register(EMAIL, false).await;
    let a = h.login(true).await;

    // A hundred refresh windows later.
    h.clock.advance(100 * REFRESH_TTL);
    let now = h.now();
    let b = h.refresh(&a.token).await.unwrap();
    assert_eq!((b.claims.sid, b.claims.gen), (a.claims.sid, 1));
    assert_eq!((b.claims.iat, b.claims.exp), (now, now + TTL));
    assert!(b.claims.forever);
    assert_eq!(h.row(&b).await.rotated_at, now);

    h.current(&b.token).await.unwrap();
    assert_eq!(terminated(h.current(&a.token).await), Reason::Rotated);
}

#[tokio::test]
async fn refreshes_racing_within_the_grace_get_the_identical_successor() {
    let h = harness(&[]).await;
    h.register(EMAIL, false).await;
    let a = h.login(true).await;
    h.clock.advance(TTL + 5);

    let first = h.refresh(&a.token).await.unwrap();
    // The other tab, at the last second of the grace.
    h.clock.advance(GRACE);
    let second = h.refresh(&a.token).await.unwrap();
    assert_eq!(second.token, first.token, "byte-identical successor");
    assert_eq!(second.claims, first.claims);
    assert_eq!(second.claims.gen, 1);

    // Both tabs hold a working token; the session rotated once and nobody was accused.
    h.current(&first.token).await.unwrap();
    assert_eq!(h.row(&first).await.gen, 1);
    assert_eq!(h.row(&first).await.revoked_at, None);
    // And the successor rotates on.
    assert_eq!(h.refresh(&second.token).await.unwrap().claims.gen, 2);
}

#[tokio::test]
async fn a_replay_after_the_grace_revokes_the_session() {
    let h = harness(&[]).await;
    h.register(EMAIL, false).await;
    let a = h.login(true).await;
    let b = h.refresh(&a.token).await.unwrap();

    h.clock.advance(GRACE + 1);
    let now = h.now();
    assert_eq!(refused(h.refresh(&a.token).await), Reason::TokenReuse);
    let row = h.row(&b).await;
    assert_eq!(
        (row.revoked_at, row.revoke_reason.as_deref()),
        (Some(now), Some("token_reuse"))
    );

    // The legitimate holder is out too: two parties held the session.
    assert_eq!(terminated(h.current(&b.token).await), Reason::TokenReuse);
    assert_eq!(refused(h.refresh(&b.token).await), Reason::TokenReuse);
}

#[tokio::test]
async fn a_token_two_gens_behind_is_a_replay_even_within_the_grace() {
    let h = harness(&[]).await;
    h.register(EMAIL, false).await;
    let a = h.login(true).await;
    let b = h.refresh(&a.token).await.unwrap();
    let c = h.refresh(&b.token).await.unwrap();
    assert_eq!(c.claims.gen, 2);

    assert_eq!(refused(h.refresh(&a.token).await), Reason::TokenReuse);
    assert_eq!(terminated(h.current(&c.token).await), Reason::TokenReuse);
    assert_eq!(
        h.row(&c).await.revoke_reason.as_deref(),
        Some("token_reuse")
    );
}

#[tokio::test]
async fn logout_ends_the_session_for_access_and_refresh() {
    let h = harness(&[]).await;
    h.register(EMAIL, false).await;
    let a = h.login(true).await;

    assert_eq!(h.logout(&a.token, LogoutScope::Local).await.unwrap(), 1);
    assert_eq!(terminated(h.current(&a.token).await), Reason::LoggedOut);
    assert_eq!(refused(h.refresh(&a.token).await), Reason::LoggedOut);
    assert_eq!(
        terminated(h.logout(&a.token, LogoutScope::Local).await),
        Reason::LoggedOut
    );
    assert_eq!(h.row(&a).await.revoke_reason.as_deref(), Some("logged_out"));

    // An expired token of a live session still logs it out.
    let b = h.login(true).await;
    h.clock.advance(TTL + 1);
    assert_eq!(h.logout(&b.token, LogoutScope::Local).await.unwrap(), 1);
    assert_eq!(refused(h.refresh(&b.token).await), Reason::LoggedOut);

    // Scopes: every other session, then all of them.
    let mine = h.login(true).await;
    let others = [h.login(true).await, h.login(false).await];
    assert_eq!(h.logout(&mine.token, LogoutScope::Others).await.unwrap(), 2);
    h.current(&mine.token).await.unwrap();
    for other in &others {
        assert_eq!(terminated(h.current(&other.token).await), Reason::LoggedOut);
    }
    assert_eq!(h.logout(&mine.token, LogoutScope::Global).await.unwrap(), 1);
    assert_eq!(terminated(h.current(&mine.token).await), Reason::LoggedOut);

    // Without a token there is nothing to end.
    let none = h
        .service
        .logout(LogoutBy::Token(None), Audience::User, LogoutScope::Local)
        .await;
    assert_eq!(none.unwrap(), 0);
}

#[tokio::test]
async fn an_ordinary_session_refreshes_until_its_window_closes() {
    let h = harness(&[]).await;
    h.register(EMAIL, false).await;
    let t0 = h.now();
    let a = h.login(false).await;

    // The last second of the window.
    h.clock.advance(REFRESH_TTL);
    let b = h.refresh(&a.token).await.unwrap();
    assert!(!b.claims.forever);
    assert_eq!(b.claims.gen, 1);
    assert_eq!(
        b.view.session.refresh_until,
        Some(t0 + REFRESH_TTL),
        "refreshing never extends the window"
    );

    h.clock.advance(1);
    assert_eq!(
        refused(h.refresh(&b.token).await),
        Reason::RefreshWindowClosed
    );
    // The session is not revoked: its last token works until it expires.
    h.current(&b.token).await.unwrap();
    h.clock.advance(TTL - 1);
    let err = h.current(&b.token).await.unwrap_err();
    assert!(matches!(err, SessionError::Expired), "{err:?}");
}

#[tokio::test]
async fn remember_me_is_ordinary_while_forever_sessions_are_off() {
    let h = harness(&[("DF_ALLOW_FOREVER_SESSIONS", "false")]).await;
    h.register(EMAIL, false).await;
    let t0 = h.now();
    let a = h.login(true).await;
    assert!(!a.claims.forever);
    assert_eq!(a.view.session.refresh_until, Some(t0 + REFRESH_TTL));
    h.clock.advance(REFRESH_TTL + 1);
    assert_eq!(
        refused(h.refresh(&a.token).await),
        Reason::RefreshWindowClosed
    );
}

#[tokio::test]
async fn an_unused_forever_session_expires_after_the_idle_ttl() {
    let h = harness(&[("SESSION_IDLE_TTL", "1h")]).await;
    h.register(EMAIL, false).await;
    let a = h.login(true).await;
    let b = h.login(true).await;

    // Unused for exactly the idle TTL: still refreshable.
    h.clock.advance(3600);
    let a2 = h.refresh(&a.token).await.unwrap();
    // A second more: not any more, and it stays that way.
    h.clock.advance(1);
    assert_eq!(refused(h.refresh(&b.token).await), Reason::IdleTimeout);
    h.clock.advance(60);
    assert_eq!(refused(h.refresh(&b.token).await), Reason::IdleTimeout);
    // The session refreshed at the edge counts from its refresh.
    assert_eq!(h.refresh(&a2.token).await.unwrap().claims.gen, 2);
}

#[tokio::test]
async fn use_keeps_a_session_alive_past_the_idle_ttl() {
    let h = harness(&[("SESSION_IDLE_TTL", "1h")]).await;
    h.register(EMAIL, false).await;
    let a = h.login(true).await;

    // A check five minutes in marks the session seen then.
    h.clock.advance(300);
    h.current(&a.token).await.unwrap();
    assert_eq!(h.row(&a).await.last_seen_at, h.now());

    // An hour after that use (65 minutes after the login) the token still refreshes.
    h.clock.advance(3600);
    assert_eq!(h.refresh(&a.token).await.unwrap().claims.gen, 1);
}

#[tokio::test]
async fn an_idle_expired_session_stays_over_while_its_token_is_unexpired() {
    // The idle TTL shorter than the token's: the token outlives the session's idle limit.
    let h = harness(&[("SESSION_IDLE_TTL", "5m"), ("DF_JWT_TTL", "10m")]).await;
    h.register(EMAIL, false).await;
    let a = h.login(true).await;

    h.clock.advance(301);
    // The unexpired token no longer answers, and checking it does not mark the session seen.
    assert_eq!(terminated(h.current(&a.token).await), Reason::IdleTimeout);
    assert_eq!(h.row(&a).await.last_seen_at, a.claims.iat);
    // So the session cannot be brought back: the refresh stays refused.
    assert_eq!(refused(h.refresh(&a.token).await), Reason::IdleTimeout);
    assert_eq!(terminated(h.current(&a.token).await), Reason::IdleTimeout);
}

#[tokio::test]
async fn repeated_failures_throttle_logins_for_a_while() {
    let h = harness(&[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_BACKOFF_BASE", "30s")]).await;
    h.register(EMAIL, false).await;
    for _ in 0..3 {
        let err = h
            .login_as(EMAIL, "wrong-password", true, Audience::User)
            .await
            .unwrap_err();
        assert!(matches!(err, SessionError::InvalidCredentials), "{err:?}");
    }
    // Even the right password waits out the backoff.
    let err = h
        .login_as(EMAIL, PASSWORD, true, Audience::User)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SessionError::Throttled { retry_after: 30 }),
        "{err:?}"
    );
    h.clock.advance(29);
    let err = h
        .login_as(EMAIL, PASSWORD, true, Audience::User)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SessionError::Throttled { retry_after: 1 }),
        "{err:?}"
    );
    h.clock.advance(1);
    h.login(true).await;

    // The success cleared the account's counter: one more failure does not throttle.
    let err = h
        .login_as(EMAIL, "wrong-password", true, Audience::User)
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::InvalidCredentials), "{err:?}");
    h.login(true).await;
}

#[tokio::test]
async fn the_admin_audience_accepts_only_administrators() {
    let h = harness(&[]).await;
    h.register(EMAIL, false).await;
    h.register("boss@example.com", true).await;

    let err = h
        .login_as(EMAIL, PASSWORD, true, Audience::Admin)
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::InvalidCredentials), "{err:?}");
    let jane = h.login(true).await;
    let err = h
        .service
        .refresh(RefreshBy::Token(Some(&jane.token)), Audience::Admin)
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::NotAdmin), "{err:?}");
    assert_eq!(
        h.row(&jane).await.gen,
        0,
        "the refused refresh did not rotate"
    );

    let boss = h
        .login_as("boss@example.com", PASSWORD, true, Audience::Admin)
        .await
        .unwrap();
    let next = h
        .service
        .refresh(RefreshBy::Token(Some(&boss.token)), Audience::Admin)
        .await
        .unwrap();
    assert_eq!(next.claims.gen, 1);
}
