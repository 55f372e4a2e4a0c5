//! The account page as a person uses it (fill, tick, click, reload) and as the tests read it,
//! plus the tenure that serves it. Every wait polls the page with a deadline.

use std::collections::HashMap;
use std::time::Duration;

use fantoccini::Locator;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::chrome::Browser;
use crate::helpers::{poll_until, spawn_app_with, Backend, TestApp, TestConfig};

pub use crate::helpers::PASSWORD;

pub const EMAIL: &str = "jane@example.com";

/// How long any one thing may take to show in the browser.
pub const WAIT: Duration = Duration::from_secs(20);

/// `DF_JWT_TTL` of the test server (5 minutes), in seconds.
pub const TOKEN_TTL_SECS: i64 = 5 * 60;
/// `DF_JWT_REFRESH_TTL` of the test server (60 minutes), in seconds.
pub const REFRESH_WINDOW_SECS: i64 = 60 * 60;

/// The configuration of the tenure the browsers use: plain http (`COOKIE_SECURE=false`),
/// forever sessions allowed, short token lifetimes.
pub const SERVER_VARS: &[(&str, &str)] = &[
    ("COOKIE_SECURE", "false"),
    ("DF_ALLOW_FOREVER_SESSIONS", "true"),
    ("DF_JWT_TTL", "5"),
    ("DF_JWT_REFRESH_TTL", "60"),
];

/// A tenure configured with `SERVER_VARS`, with the user `EMAIL` / `PASSWORD`.
pub async fn account_app(backend: Backend) -> TestApp {
    let config = SERVER_VARS
        .iter()
        .fold(TestConfig::new(), |config, (name, value)| {
            config.var(name, value)
        });
    let app = spawn_app_with(backend, config).await;
    app.create_user(EMAIL, false).await;
    app
}

/// Moves the server's clock past the access token's lifetime (the browser's clock stays).
pub fn expire_access_tokens(app: &TestApp) {
    app.clock.advance(TOKEN_TTL_SECS + 60);
}

/// One row of "Where you're signed in".
#[derive(Debug, Deserialize)]
pub struct Device {
    pub id: String,
    pub current: bool,
    pub name: String,
    /// Term → value: "Browser", "IP address", "Last seen", "Signed in", "Stays signed in".
    pub details: HashMap<String, String>,
    /// The row has a "Sign out" button (every row but this device's).
    pub can_end: bool,
}

const READ_DEVICES: &str = r#"
    return [...document.querySelectorAll('#devices > li')].map((li) => {
        const details = {};
        const terms = li.querySelectorAll('dt');
        terms.forEach((dt) => { details[dt.textContent] = dt.nextElementSibling.textContent; });
        const title = li.querySelector('h3');
        return {
            id: li.dataset.sessionId,
            current: li.dataset.current === 'true',
            name: title.firstChild ? title.firstChild.textContent : '',
            details,
            can_end: li.querySelector('button.end-session') !== null,
        };
    });
"#;

impl Browser {
    /// Opens `/account` and answers the state it settles in ("signed-in" or "signed-out").
    pub async fn open(&self) -> String {
        self.client
            .goto(&self.url("/account"))
            .await
            .expect("open /account");
        self.settled().await
    }

    /// Reloads the page, as a person pressing F5, and answers the state it settles in.
    pub async fn reload(&self) -> String {
        self.client.refresh().await.expect("reload");
        self.settled().await
    }

    /// `document.body.dataset.state` once it is no longer "loading".
    pub async fn settled(&self) -> String {
        poll_until("the page to finish loading", WAIT, async || {
            Some(self.state().await).filter(|s| s != "loading")
        })
        .await
    }

    pub async fn state(&self) -> String {
        self.js(
            "return document.body ? (document.body.dataset.state || '') : '';",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits until the page is in `state`.
    pub async fn wait_state(&self, state: &str) {
        let want = state.to_owned();
        poll_until(&format!("the page to be {state}"), WAIT, async || {
            let seen = self.state().await;
            if seen == want {
                Ok(())
            } else {
                Err(format!(
                    "{seen:?} (status {:?}, alert {:?})",
                    self.status().await,
                    self.alert().await
                ))
            }
        })
        .await;
    }

    /// Waits until `script` (a function body) returns true.
    pub async fn wait_until(&self, what: &str, script: &str) {
        poll_until(what, WAIT, async || self.js(script, vec![]).await == true).await;
    }

    pub async fn fill(&self, id: &str, text: &str) {
        let input = self.client.find(Locator::Id(id)).await.expect(id);
        input.clear().await.expect("clear");
        input.send_keys(text).await.expect("type");
    }

    pub async fn click(&self, id: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click #{id}: {e}"));
    }

    pub async fn is_visible(&self, id: &str) -> bool {
        match self.client.find(Locator::Id(id)).await {
            Ok(element) => element.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Fills in and sends the sign-in form; does not wait for the answer.
    pub async fn submit_sign_in(&self, email: &str, password: &str, keep_signed_in: bool) {
        self.wait_state("signed-out").await;
        self.fill("signin-email", email).await;
        self.fill("signin-password", password).await;
        let checkbox = self
            .client
            .find(Locator::Id("signin-remember"))
            .await
            .expect("keep me signed in");
        if checkbox.is_selected().await.expect("checked?") != keep_signed_in {
            self.click("signin-remember").await;
        }
        self.click("signin-submit").await;
    }

    /// Opens the page, signs in, and waits for the account view and its device list.
    pub async fn sign_in(&self, email: &str, password: &str, keep_signed_in: bool) {
        if self.open().await != "signed-out" {
            panic!("expected the sign-in form on a fresh profile");
        }
        self.submit_sign_in(email, password, keep_signed_in).await;
        self.wait_state("signed-in").await;
        self.wait_devices_where("the device list", |d| !d.is_empty())
            .await;
    }

    pub async fn devices(&self) -> Vec<Device> {
        serde_json::from_value(self.js(READ_DEVICES, vec![]).await).expect("device rows")
    }

    /// Waits until the device list satisfies `check`, and answers it.
    pub async fn wait_devices_where(
        &self,
        what: &str,
        check: impl Fn(&[Device]) -> bool,
    ) -> Vec<Device> {
        poll_until(what, WAIT, async || {
            let devices = self.devices().await;
            if check(&devices) {
                Ok(devices)
            } else {
                Err(format!("{devices:?}"))
            }
        })
        .await
    }

    /// Waits until the device list has `n` rows.
    pub async fn wait_devices(&self, n: usize) -> Vec<Device> {
        self.wait_devices_where(&format!("{n} devices in the list"), |d| d.len() == n)
            .await
    }

    /// Clicks "Sign out" on the row of session `id`.
    pub async fn end_device(&self, id: &str) {
        let button = self
            .client
            .find(Locator::Css(&format!(
                "#devices > li[data-session-id=\"{id}\"] button.end-session"
            )))
            .await
            .unwrap_or_else(|e| panic!("no sign-out button for {id}: {e}"));
        button.click().await.expect("click sign out");
    }

    /// The polite status line ("You are signed in.", …).
    pub async fn status(&self) -> String {
        self.text_of("status").await
    }

    /// The alert line (errors).
    pub async fn alert(&self) -> String {
        self.text_of("alert").await
    }

    async fn text_of(&self, id: &str) -> String {
        self.js(
            "const e = document.getElementById(arguments[0]); return e ? e.textContent : '';",
            vec![json!(id)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits until the status or alert line contains `text`.
    pub async fn wait_message(&self, text: &str) {
        poll_until(&format!("the message {text:?}"), WAIT, async || {
            let status = self.status().await;
            let alert = self.alert().await;
            if status.contains(text) || alert.contains(text) {
                Ok(())
            } else {
                Err(format!("status {status:?}, alert {alert:?}"))
            }
        })
        .await;
    }

    /// What a script in the current page can read of cookies and storage.
    pub async fn script_visible_storage(&self) -> Value {
        self.js(
            "return { cookie: document.cookie, local: localStorage.length, \
             session: sessionStorage.length };",
            vec![],
        )
        .await
    }

    /// Asserts the console shows no error (CSP violation, script exception).
    pub async fn assert_no_console_errors(&self) {
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    }
}
