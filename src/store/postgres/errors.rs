//! How PostgreSQL's errors are classified: conflicts by constraint, outages and retryable
//! rollbacks by SQLSTATE.

use super::super::error::{map_common, StoreError};

pub(super) fn map_error(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        match db.constraint() {
            Some("users_email_key") => return StoreError::Conflict("users_email_key"),
            Some("users_username_key") => return StoreError::Conflict("users_username_key"),
            Some("apps_name_key") => return StoreError::Conflict("apps_name_key"),
            Some("apps_api_key_hash_key") => return StoreError::Conflict("apps_api_key_hash_key"),
            Some("roles_name_key") => return StoreError::Conflict("roles_name_key"),
            _ => {}
        }
        if db.code().as_deref().is_some_and(is_terminated) {
            return StoreError::Broken(std::sync::Arc::new(err));
        }
        if db.is_foreign_key_violation() {
            return StoreError::Conflict("foreign_key");
        }
        if db.code().as_deref().is_some_and(is_transient) {
            return StoreError::unavailable(err);
        }
    }
    map_common(err)
}

/// SQLSTATEs with which the server says it is going away or cannot serve yet: a 503, like a
/// refused connection. Class 08 is a connection exception; 57P01, 57P02 and 57P03 are what a
/// fast shutdown, a crash of another backend and a starting or stopping server answer.
fn is_outage(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// The server ended this connection (an administrator's shutdown, a crash of another backend,
/// or a connection failure): the statement did not run, and a fresh connection may succeed.
fn is_terminated(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "08000" | "08003" | "08006")
}

/// Outages, and the two answers with which PostgreSQL rolls a transaction back for trying again
/// (40P01 deadlock detected, 40001 serialization failure): the client should retry, so a 503.
fn is_transient(code: &str) -> bool {
    is_outage(code) || matches!(code, "40P01" | "40001")
}

/// The statement lost a deadlock and was rolled back whole.
pub(super) fn is_deadlock(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("40P01"))
}
