//! The account page (`/account`) in a real browser: headless Chromium, driven through
//! chromedriver (WebDriver), against a tenure served in-process on a test clock.
//!
//! Needs Debian's `chromium` and `chromium-driver` (or `CHROMIUM` and `CHROMEDRIVER` naming the
//! binaries): without them every test fails saying how to install them. `.ci/run` installs
//! them when missing.

// Tests fail loudly: unwrapping is how they say what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The API suite's harness: servers on port 0, SQLite files and PostgreSQL databases per test,
// users, the test clock. This binary uses part of it.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod chrome;
mod page;

mod devices;
mod loads;
mod password;
mod signin;
mod tabs;
