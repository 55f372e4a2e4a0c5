//! The integration tests: one binary, real servers over HTTP, both backends.

// Tests fail loudly: unwrapping is how they say what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod environment;
mod hostile_input;
mod keys;
mod login;
mod logout;
mod logs;
mod process;
mod refresh;
mod register;
