//! Signing in, with and without "keep me signed in"; staying signed in across reloads after
//! the access token expired (through the refresh cookie); the cookie out of scripts' reach;
//! signing out this device.

use crate::chrome::Chrome;
use crate::helpers::Backend;
use crate::page::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_on_the_form() {
    let app = account_app(Backend::Sqlite).await;
    let chrome = Chrome::start().await;
    let browser = chrome.profile(&app.base).await;

    browser.open().await;
    browser
        .submit_sign_in(EMAIL, "not-the-password", false)
        .await;
    browser
        .wait_message("That email and password do not match an account.")
        .await;
    assert_eq!(browser.state().await, "signed-out");
    browser.assert_no_console_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_me_signed_in_survives_reloads_after_the_access_token_expired() {
    let app = account_app(Backend::Sqlite).await;
    let chrome = Chrome::start().await;
    let browser = chrome.profile(&app.base).await;

    browser.sign_in(EMAIL, PASSWORD, true).await;
    assert_eq!(browser.status().await, "You are signed in.");
    let devices = browser.wait_devices(1).await;
    assert!(devices[0].current);
    assert_eq!(devices[0].details["Stays signed in"], "Yes");

    // A reload: the in-memory token is gone, the cookie signs the page back in.
    assert_eq!(
        browser.reload().await,
        "signed-in",
        "{}",
        browser.alert().await
    );

    // The access token expired: the reload still signs in, through the cookie.
    expire_access_tokens(&app);
    assert_eq!(
        browser.reload().await,
        "signed-in",
        "{}",
        browser.alert().await
    );
    browser.wait_devices(1).await;

    // Long past an ordinary session's refresh window: a forever session is still there.
    app.clock.advance(30 * 24 * 3600);
    assert_eq!(
        browser.reload().await,
        "signed-in",
        "{}",
        browser.alert().await
    );
    let devices = browser.wait_devices(1).await;
    assert_eq!(devices[0].details["Stays signed in"], "Yes");
    browser.assert_no_console_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keep_me_signed_in_a_reload_signs_in_until_the_refresh_window_closes() {
    let app = account_app(Backend::Sqlite).await;
    let chrome = Chrome::start().await;
    let browser = chrome.profile(&app.base).await;

    browser.sign_in(EMAIL, PASSWORD, false).await;
    let devices = browser.wait_devices(1).await;
    assert_eq!(devices[0].details["Stays signed in"], "No");

    // Inside the refresh window, an expired access token is renewed on reload.
    expire_access_tokens(&app);
    assert_eq!(
        browser.reload().await,
        "signed-in",
        "{}",
        browser.alert().await
    );

    // Past it, the reload lands on the sign-in form.
    app.clock.advance(REFRESH_WINDOW_SECS + 60);
    assert_eq!(browser.reload().await, "signed-out");
    assert!(browser.is_visible("signin-form").await);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_renewed_on_the_next_action() {
    let app = account_app(Backend::Sqlite).await;
    // Another device, so the page has something to do.
    app.login_token(EMAIL, true).await;
    let chrome = Chrome::start().await;
    let browser = chrome.profile(&app.base).await;
    browser.sign_in(EMAIL, PASSWORD, true).await;
    let devices = browser.wait_devices(2).await;
    let other = devices
        .iter()
        .find(|d| !d.current)
        .expect("the other device");

    // The page's token expires while it is open; its next call is answered "expired", the
    // page refreshes through the cookie and makes the call again.
    expire_access_tokens(&app);
    browser.end_device(&other.id).await;
    browser.wait_devices(1).await;
    assert_eq!(browser.state().await, "signed-in");
    assert!(browser.status().await.starts_with("Signed out"));
    browser.assert_no_console_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_cookie_is_not_readable_from_scripts() {
    let app = account_app(Backend::Sqlite).await;
    let chrome = Chrome::start().await;
    let browser = chrome.profile(&app.base).await;
    browser.sign_in(EMAIL, PASSWORD, true).await;

    // Nothing the page keeps is readable by a script: no cookie, nothing in storage.
    let storage = browser.script_visible_storage().await;
    assert_eq!(storage["cookie"], "", "{storage}");
    assert_eq!(storage["local"], 0, "{storage}");
    assert_eq!(storage["session"], 0, "{storage}");

    // On a page at the cookie's own path, the browser holds it, HttpOnly, and scripts there
    // cannot read it either.
    browser
        .client
        .goto(&browser.url("/api/v2/user/session"))
        .await
        .expect("open the session path");
    let cookies = browser.client.get_all_cookies().await.expect("cookies");
    let refresh = cookies
        .iter()
        .find(|c| c.name().ends_with("tenure-refresh"))
        .unwrap_or_else(|| panic!("no refresh cookie in {cookies:?}"));
    assert_eq!(refresh.http_only(), Some(true), "{refresh:?}");
    assert_eq!(refresh.path(), Some("/api/v2/user/session"), "{refresh:?}");
    assert_eq!(
        format!("{:?}", refresh.same_site()),
        "Some(Strict)",
        "{refresh:?}"
    );
    let storage = browser.script_visible_storage().await;
    let seen = storage["cookie"].as_str().unwrap_or_default();
    assert!(!seen.contains("tenure-refresh"), "a script read {seen:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_this_device_shows_the_sign_in_form_for_good() {
    let app = account_app(Backend::Sqlite).await;
    let chrome = Chrome::start().await;
    let browser = chrome.profile(&app.base).await;
    browser.sign_in(EMAIL, PASSWORD, true).await;

    browser.click("signout").await;
    browser.wait_state("signed-out").await;
    assert_eq!(browser.status().await, "You are signed out.");
    // The cookie no longer signs in: a reload stays on the form.
    assert_eq!(browser.reload().await, "signed-out");
    browser.assert_no_console_errors().await;
    browser.close().await;
}
