//! The store conformance suite and the session service's in-process tests: no HTTP.
//!
//! Every store behaviour is written once, as an `async fn(Arc<dyn Store>)`, and
//! [`conformance!`] runs it against a fresh SQLite file (`…::sqlite::name`) and a fresh
//! PostgreSQL schema (`…::postgres::name`; `db.rs` says where PostgreSQL comes from). Times are
//! plain numbers: the store holds no clock. The `service` module drives `SessionService` on
//! SQLite with a `TestClock`, advanced instead of slept.

// Tests fail loudly: unwrapping is how they say what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod db;
mod fixtures;

/// `conformance!(a, b, …)` turns the module's `async fn a(store: Arc<dyn Store>)`, … into the
/// tests `sqlite::a` and `postgres::a`, each on its own empty, migrated database.
macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::db::TestDb::sqlite().await;
                    super::$name(db.store.clone()).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::db::TestDb::postgres().await;
                    super::$name(db.store.clone()).await;
                }
            )+
        }
    };
}

mod apps;
mod import;
mod keys;
mod limits;
mod purge;
mod revoke;
mod rotation;
mod sessions;
mod throttle;
mod users;

mod service;
