//! The integration tests: one binary, real servers over HTTP, both backends.

// Tests fail loudly: unwrapping is how they say what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod proxy;

mod admin;
mod apps;
mod browser;
mod caps;
mod checks;
mod cli;
mod clocks;
mod crash;
mod devices;
mod environment;
mod faults;
mod floods;
mod health;
mod hostile_input;
mod idle;
mod import;
mod introspect;
mod keys;
mod limits;
mod login;
mod logout;
mod logs;
mod metrics;
mod model;
mod network;
mod openapi;
mod ops;
mod outage;
mod partition;
mod password;
mod process;
mod profile;
mod purge;
mod races;
mod reconnect;
mod refresh;
mod refresh_credential;
mod register;
mod roles;
mod system_routes;
mod throttle;
mod writer;
