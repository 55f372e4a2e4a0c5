//! The page itself: served with a strict Content-Security-Policy, no inline script or style,
//! labels on every input, no console errors, readable on a phone-sized screen.

use reqwest::StatusCode;

use crate::chrome::Chrome;
use crate::helpers::Backend;
use crate::page::*;

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; \
    base-uri 'none'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_with_a_strict_policy() {
    let app = account_app(Backend::Sqlite).await;
    let mut html = String::new();
    for (path, kind) in [
        ("/account", "text/html"),
        ("/account/account.css", "text/css"),
        ("/account/account.js", "text/javascript"),
        ("/account/icon.svg", "image/svg+xml"),
    ] {
        let response = app.client.get(app.url(path)).send().await.expect(path);
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().expect("ASCII").to_owned())
                .unwrap_or_default()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        assert_eq!(header("content-security-policy"), POLICY, "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("cache-control"), "no-store", "{path}");
        if path == "/account" {
            html = response.text().await.expect("page");
        }
    }

    // No inline script or style: every <script> loads a file, no style elements or attributes,
    // no event-handler attributes.
    let lower = html.to_ascii_lowercase();
    for script in lower.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap_or_default();
        assert!(tag.contains(" src="), "an inline <script{tag}>");
    }
    assert!(!lower.contains("<style"), "a <style> element");
    assert!(!lower.contains(" style="), "a style attribute");
    assert!(!lower.contains(" onclick=") && !lower.contains(" onsubmit="));
    assert!(
        lower.contains(r#"<meta name="viewport""#),
        "no viewport meta"
    );
    assert!(lower.contains("aria-live="), "no live region for messages");
    // Every input has a <label for> naming it.
    for input in html.split("<input").skip(1) {
        let id = input
            .split("id=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("an input without an id: <input{input}"));
        assert!(
            html.contains(&format!("<label for=\"{id}\"")),
            "input #{id} has no label"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_browser_gets_the_sign_in_form_without_console_errors() {
    let app = account_app(Backend::Sqlite).await;
    let chrome = Chrome::start().await;
    let browser = chrome.profile(&app.base).await;

    assert_eq!(browser.open().await, "signed-out");
    assert!(browser.is_visible("signin-form").await);
    assert!(!browser.is_visible("account").await);
    assert!(!browser.is_visible("loading").await);
    // Every input has an accessible label, and the browser agrees.
    let unlabelled = browser
        .js(
            "return [...document.querySelectorAll('input')]
                .filter((i) => i.labels.length === 0).map((i) => i.id);",
            vec![],
        )
        .await;
    assert_eq!(unlabelled, serde_json::json!([]), "inputs without a label");
    // The policy blocked nothing: the stylesheet applied, the script ran, no violation logged.
    let styled = browser
        .js(
            "return getComputedStyle(document.querySelector('main')).maxWidth;",
            vec![],
        )
        .await;
    assert_ne!(styled, "none", "account.css did not apply");
    browser.assert_no_console_errors().await;
    browser.close().await;
}

/// Whether the page scrolls sideways, and the smallest visible button's height.
const LAYOUT: &str = r#"
    const visible = [...document.querySelectorAll('button, input')]
        .filter((e) => e.offsetParent !== null && e.type !== 'checkbox');
    return {
        overflow: document.documentElement.scrollWidth > window.innerWidth,
        width: window.innerWidth,
        smallest: Math.min(...visible.map((e) => e.getBoundingClientRect().height)),
    };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_fits_a_phone_screen() {
    let app = account_app(Backend::Sqlite).await;
    // A second session, so the signed-in view has another device and its buttons.
    app.login_token(EMAIL, true).await;
    let chrome = Chrome::start().await;
    let phone = chrome.phone(&app.base, 375, 740).await;

    assert_eq!(phone.open().await, "signed-out");
    let layout = phone.js(LAYOUT, vec![]).await;
    assert!(layout["width"].as_u64().expect("width") <= 400, "{layout}");
    assert_eq!(
        layout["overflow"], false,
        "the sign-in form scrolls sideways: {layout}"
    );
    assert!(
        layout["smallest"].as_f64().expect("height") >= 40.0,
        "{layout}"
    );

    phone.submit_sign_in(EMAIL, PASSWORD, true).await;
    phone.wait_state("signed-in").await;
    phone.wait_devices(2).await;
    let layout = phone.js(LAYOUT, vec![]).await;
    assert_eq!(
        layout["overflow"], false,
        "the account view scrolls sideways: {layout}"
    );
    assert!(
        layout["smallest"].as_f64().expect("height") >= 40.0,
        "{layout}"
    );
    phone.assert_no_console_errors().await;
    phone.close().await;
}
