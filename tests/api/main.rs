//! The integration tests: one binary, real servers over HTTP, both backends.

// Tests fail loudly: unwrapping is how they say what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod admin;
mod devices;
mod environment;
mod hostile_input;
mod idle;
mod keys;
mod limits;
mod login;
mod logout;
mod logs;
mod openapi;
mod password;
mod process;
mod purge;
mod refresh;
mod register;
mod throttle;
