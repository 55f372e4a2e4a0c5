//! Two tabs of one browser share the refresh cookie. Reloaded at the same moment after their
//! tokens expired, both present the same cookie at once: one rotates it, the other is inside
//! the grace and gets the identical successor, so both stay signed in.

use crate::chrome::Chrome;
use crate::helpers::Backend;
use crate::page::*;

/// Reloads the page when any tab posts on the "reload-now" channel. A BroadcastChannel message
/// reaches every tab at once; a timer in a background tab may be held back.
const ARM: &str = r#"
    window.__armed = true;
    new BroadcastChannel('reload-now').onmessage = () => location.reload();
"#;

/// The page reloaded since `ARM` and finished signing in (or out).
const RELOADED: &str =
    "return window.__armed !== true && ['signed-in', 'signed-out'].includes(document.body.dataset.state);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_refreshing_at_the_same_moment_both_stay_signed_in() {
    let app = account_app(Backend::Sqlite).await;
    let chrome = Chrome::start().await;
    let browser = chrome.profile(&app.base).await;
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
    expire_access_tokens(&app);
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

    // Both are signed in, and stay so: an action in each works.
    for tab in [second.handle, first] {
        browser.client.switch_to_window(tab).await.expect("switch");
        assert_eq!(
            browser.state().await,
            "signed-in",
            "{}",
            browser.alert().await
        );
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
    // One session for the two tabs, never revoked as a reuse.
    let sessions = app.db.dump("sessions").await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(
        !sessions[0].contains("token_reuse"),
        "the race was taken for theft: {sessions:?}"
    );
    browser.close().await;
}
