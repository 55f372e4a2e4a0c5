//! Two tabs of one browser share the refresh cookie. Reloaded at the same moment after their
//! tokens expired, both present the same cookie at once: one rotates it, the other is inside
//! the grace and gets the identical successor, so both stay signed in.
//!
//! Two page loads rarely overlap by themselves (each refresh takes a millisecond), so this
//! tenure holds `PUT /api/v2/user/session` at its door, while armed, until both tabs' refreshes
//! have arrived, and lets them in together: sent before either was answered, both carry the
//! same cookie, and they reach the service at the same moment.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::{self, Next};
use sqlx::Connection;
use tenure::clock::TestClock;
use tenure::config::Config;
use tokio::sync::Barrier;

use crate::chrome::Chrome;
use crate::helpers::{Backend, TestDb};
use crate::page::*;

/// Reloads the page when any tab posts on the "reload-now" channel (a message reaches every
/// tab at once, where a timer in a background tab may be held back).
const ARM: &str = r#"
    window.__armed = true;
    new BroadcastChannel('reload-now').onmessage = () => location.reload();
"#;

/// The page reloaded since `ARM` and finished signing in (or out).
const RELOADED: &str = "return window.__armed !== true \
    && ['signed-in', 'signed-out'].includes(document.body.dataset.state);";

/// While armed, holds refreshes until `n` have arrived, then lets them all through.
#[derive(Clone, Default)]
struct RefreshGate {
    armed: Arc<Mutex<Option<Arc<Barrier>>>>,
    /// How many times a full set of refreshes went through together.
    released: Arc<AtomicUsize>,
}

impl RefreshGate {
    fn arm(&self, n: usize) {
        *self.armed.lock().unwrap() = Some(Arc::new(Barrier::new(n)));
    }

    async fn pass(&self) {
        let barrier = self.armed.lock().unwrap().clone();
        let Some(barrier) = barrier else { return };
        // A refresh alone is let through after WAIT; the test then fails on `released`.
        if let Ok(done) = tokio::time::timeout(WAIT, barrier.wait()).await {
            if done.is_leader() {
                *self.armed.lock().unwrap() = None;
                self.released.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// tenure (configured as `account_app`'s, on SQLite) behind a `RefreshGate`.
struct GatedTenure {
    base: String,
    clock: TestClock,
    db: Arc<TestDb>,
    gate: RefreshGate,
    server: tokio::task::JoinHandle<()>,
}

impl GatedTenure {
    async fn start() -> GatedTenure {
        let db = TestDb::new(Backend::Sqlite).await;
        let clock = TestClock::new();
        let config = Config::from_lookup(|name| match name {
            "DATABASE_URL" => Some(db.url.clone()),
            _ => SERVER_VARS
                .iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| value.to_string()),
        })
        .expect("config");
        let state = tenure::build_state(&config, Arc::new(clock.clone()))
            .await
            .expect("server state");
        state
            .service
            .create_user(tenure::session::RegisterRequest {
                email: Some(EMAIL.into()),
                username: None,
                password: Some(PASSWORD.to_owned().into()),
                password_confirmation: None,
                name: Some("Test User".into()),
                first_name: None,
                last_name: None,
                is_sys_admin: false,
            })
            .await
            .expect("create user");
        let gate = RefreshGate::default();
        let door = gate.clone();
        let app =
            tenure::app(state).layer(middleware::from_fn(move |request: Request, next: Next| {
                let door = door.clone();
                async move {
                    if request.method() == Method::PUT
                        && request.uri().path() == "/api/v2/user/session"
                    {
                        door.pass().await;
                    }
                    next.run(request).await
                }
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serve");
        });
        GatedTenure {
            base: format!("http://{addr}"),
            clock,
            db,
            gate,
            server,
        }
    }

    /// The session's rotation counter (one session in these tests).
    async fn rotations(&self) -> i64 {
        let mut db = sqlx::SqliteConnection::connect(&self.db.url)
            .await
            .expect("connect");
        sqlx::query_scalar("SELECT gen FROM sessions")
            .fetch_one(&mut db)
            .await
            .expect("gen")
    }

    /// Every session's `revoke_reason` (null while live).
    async fn revoke_reasons(&self) -> Vec<Option<String>> {
        let mut db = sqlx::SqliteConnection::connect(&self.db.url)
            .await
            .expect("connect");
        sqlx::query_scalar("SELECT revoke_reason FROM sessions")
            .fetch_all(&mut db)
            .await
            .expect("sessions")
    }
}

impl Drop for GatedTenure {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_refreshing_at_the_same_moment_both_stay_signed_in() {
    let tenure = GatedTenure::start().await;
    let chrome = Chrome::start().await;
    let browser = chrome.profile(&tenure.base).await;
    browser.sign_in(EMAIL, PASSWORD, true).await;
    let first = browser.client.window().await.expect("first tab");

    let second = browser.client.new_window(true).await.expect("second tab");
    browser
        .client
        .switch_to_window(second.handle.clone())
        .await
        .expect("switch");
    assert_eq!(
        browser.open().await,
        "signed-in",
        "{}",
        browser.alert().await
    );
    browser.wait_devices(1).await;
    browser.js(ARM, vec![]).await;
    browser
        .client
        .switch_to_window(first.clone())
        .await
        .expect("switch");
    browser.js(ARM, vec![]).await;

    // Both tabs' access tokens expire; both reload at once, each refreshing through the cookie.
    let before = tenure.rotations().await;
    tenure.gate.arm(2);
    tenure.clock.advance(TOKEN_TTL_SECS + 60);
    browser
        .js(
            "new BroadcastChannel('reload-now').postMessage('go');",
            vec![],
        )
        .await;
    browser
        .wait_until("the first tab to reload", RELOADED)
        .await;
    browser
        .client
        .switch_to_window(second.handle.clone())
        .await
        .expect("switch");
    browser
        .wait_until("the second tab to reload", RELOADED)
        .await;

    // The two refreshes raced, and the race made one rotation: the slower one was answered
    // with the identical successor, inside the grace.
    assert_eq!(
        tenure.gate.released.load(Ordering::SeqCst),
        1,
        "the two tabs' refreshes did not arrive together"
    );
    assert_eq!(tenure.rotations().await - before, 1);

    // Both are signed in, and stay so: a reload and the device list work in each.
    for tab in [second.handle, first] {
        browser.client.switch_to_window(tab).await.expect("switch");
        assert_eq!(
            browser.state().await,
            "signed-in",
            "{}",
            browser.alert().await
        );
        browser.wait_devices(1).await;
        assert_eq!(
            browser.reload().await,
            "signed-in",
            "{}",
            browser.alert().await
        );
        let devices = browser.wait_devices(1).await;
        assert!(devices[0].current);
        browser.assert_no_console_errors().await;
    }
    // One session for the two tabs, never taken for a theft.
    assert_eq!(tenure.revoke_reasons().await, vec![None]);
    browser.close().await;
}
