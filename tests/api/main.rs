//! The integration tests: one binary, real servers over HTTP, both backends.

mod helpers;

mod login;
