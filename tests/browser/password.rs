//! Changing the password on the page: checked before sending, the old password verified, and
//! every other device signed out.

use crate::chrome::Chrome;
use crate::helpers::Backend;
use crate::page::*;

const NEW_PASSWORD: &str = "a-much-better-passphrase";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_signs_out_the_other_devices() {
    let app = account_app(Backend::Sqlite).await;
    let chrome = Chrome::start().await;
    let laptop = chrome.profile(&app.base).await;
    let phone = chrome.profile(&app.base).await;
    phone.sign_in(EMAIL, PASSWORD, true).await;
    laptop.sign_in(EMAIL, PASSWORD, true).await;
    laptop.wait_devices(2).await;

    // Two different new passwords: said at once, nothing sent.
    phone.fill("password-old", PASSWORD).await;
    phone.fill("password-new", NEW_PASSWORD).await;
    phone
        .fill("password-confirm", "something-else-entirely")
        .await;
    phone.click("password-submit").await;
    phone
        .wait_message("The two new passwords are not the same.")
        .await;

    // A wrong current password: the server's reason is shown.
    phone.fill("password-old", "not-my-password").await;
    phone.fill("password-confirm", NEW_PASSWORD).await;
    phone.click("password-submit").await;
    phone.wait_message("The old password is not correct.").await;
    assert_eq!(phone.state().await, "signed-in");

    // The right one: changed, the laptop signed out, the phone still in.
    phone.fill("password-old", PASSWORD).await;
    phone.fill("password-new", NEW_PASSWORD).await;
    phone.fill("password-confirm", NEW_PASSWORD).await;
    phone.click("password-submit").await;
    phone
        .wait_message("Your password is changed, and 1 other session was signed out.")
        .await;
    phone.wait_devices(1).await;
    assert_eq!(phone.state().await, "signed-in");

    // The laptop's next action lands on the sign-in form.
    laptop.click("signout-others").await;
    laptop.wait_state("signed-out").await;
    // The old password no longer signs in; the new one does.
    laptop.submit_sign_in(EMAIL, PASSWORD, false).await;
    laptop
        .wait_message("That email and password do not match an account.")
        .await;
    laptop.submit_sign_in(EMAIL, NEW_PASSWORD, false).await;
    laptop.wait_state("signed-in").await;
    laptop.wait_devices(2).await;

    phone.assert_no_console_errors().await;
    laptop.close().await;
    phone.close().await;
}
