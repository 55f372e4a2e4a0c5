//! Two browser profiles are two devices: each sees the other in "Where you're signed in", one
//! signs the other out, and the other's next action lands on the sign-in form.

use crate::chrome::Chrome;
use crate::helpers::Backend;
use crate::page::*;

async fn one_device_signs_the_other_out(backend: Backend) {
    let app = account_app(backend).await;
    let chrome = Chrome::start().await;
    let laptop = chrome.profile(&app.base).await;
    let phone = chrome.profile(&app.base).await;

    laptop.sign_in(EMAIL, PASSWORD, true).await;
    phone.sign_in(EMAIL, PASSWORD, true).await;

    // The phone signed in second: it lists both, itself marked, with what a person needs to
    // tell them apart.
    let seen_by_phone = phone.wait_devices(2).await;
    let phone_row = seen_by_phone
        .iter()
        .find(|d| d.current)
        .expect("this device");
    let laptop_row = seen_by_phone
        .iter()
        .find(|d| !d.current)
        .expect("the other");
    assert!(!phone_row.can_end && laptop_row.can_end);
    for row in &seen_by_phone {
        assert!(!row.name.is_empty(), "{row:?}");
        assert!(row.details["Browser"].contains("Chrome"), "{row:?}");
        assert_eq!(row.details["IP address"], "127.0.0.1", "{row:?}");
        assert!(!row.details["Last seen"].is_empty(), "{row:?}");
    }
    assert_eq!(phone_row.details["Last seen"], "Now");

    // The laptop sees the phone after a reload (signed back in through its cookie).
    assert_eq!(
        laptop.reload().await,
        "signed-in",
        "{}",
        laptop.alert().await
    );
    let seen_by_laptop = laptop.wait_devices(2).await;
    let me = seen_by_laptop
        .iter()
        .find(|d| d.current)
        .expect("this device");
    assert_eq!(me.id, laptop_row.id, "each marks itself as this device");

    // The laptop signs the phone out.
    laptop.end_device(&phone_row.id).await;
    let left = laptop.wait_devices(1).await;
    assert_eq!(left[0].id, laptop_row.id);
    laptop.wait_message("Signed out").await;

    // The phone's next action lands on the sign-in form, saying why.
    phone.click("signout-others").await;
    phone.wait_state("signed-out").await;
    assert!(phone.is_visible("signin-form").await);
    assert_eq!(
        phone.status().await,
        "You have been signed out. Please sign in again."
    );
    // And a reload does not sign it back in.
    assert_eq!(phone.reload().await, "signed-out");
    // The laptop is untouched.
    assert_eq!(
        laptop.reload().await,
        "signed-in",
        "{}",
        laptop.alert().await
    );

    laptop.assert_no_console_errors().await;
    phone.assert_no_console_errors().await;
    laptop.close().await;
    phone.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_see_each_other_and_one_signs_the_other_out_sqlite() {
    one_device_signs_the_other_out(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_see_each_other_and_one_signs_the_other_out_postgres() {
    one_device_signs_the_other_out(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_all_other_devices_keeps_this_one() {
    let app = account_app(Backend::Sqlite).await;
    let chrome = Chrome::start().await;
    let laptop = chrome.profile(&app.base).await;
    let phone = chrome.profile(&app.base).await;
    laptop.sign_in(EMAIL, PASSWORD, true).await;
    phone.sign_in(EMAIL, PASSWORD, false).await;
    phone.wait_devices(2).await;

    phone.click("signout-others").await;
    phone.wait_message("Signed out 1 other device.").await;
    let left = phone.wait_devices(1).await;
    assert!(left[0].current);
    assert!(
        !phone.is_visible("signout-others").await,
        "nothing else to sign out"
    );

    assert_eq!(laptop.reload().await, "signed-out");
    // The phone's own session goes on, and so does its refresh cookie: `DELETE
    // ?scope=others` must not clear the cookie of the session that stays.
    assert_eq!(
        phone.reload().await,
        "signed-in",
        "signing out the other devices signed this one out at its next reload: {}",
        phone.alert().await
    );
    laptop.close().await;
    phone.close().await;
}
