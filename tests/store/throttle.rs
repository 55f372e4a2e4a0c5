//! The failed-login counters behind login throttling.

use std::sync::Arc;

use tenure::store::{LoginFailures, Store};

use crate::fixtures::*;

conformance!(
    failures_count_up_within_the_window_and_restart_after_it,
    login_failures_answers_the_counters_that_exist,
    clearing_removes_one_counter,
);

/// Window of the tests: 900 s.
const WINDOW: i64 = 900;

async fn record(store: &Arc<dyn Store>, key: &str, now: i64) {
    store
        .record_login_failure(key, now, now - WINDOW)
        .await
        .unwrap();
}

/// The counters of `keys`, as (key, failures, window_start, last_failure_at), by key.
async fn counters(store: &Arc<dyn Store>, keys: &[&str]) -> Vec<(String, i64, i64, i64)> {
    let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    let mut rows: Vec<_> = store
        .login_failures(&keys)
        .await
        .unwrap()
        .into_iter()
        .map(
            |LoginFailures {
                 key,
                 failures,
                 window_start,
                 last_failure_at,
             }| (key, failures, window_start, last_failure_at),
        )
        .collect();
    rows.sort();
    rows
}

async fn failures_count_up_within_the_window_and_restart_after_it(store: Arc<dyn Store>) {
    const KEY: &str = "account:jane@example.com";
    assert!(counters(&store, &[KEY]).await.is_empty());

    record(&store, KEY, T0).await;
    assert_eq!(
        counters(&store, &[KEY]).await,
        vec![(KEY.into(), 1, T0, T0)]
    );
    record(&store, KEY, T0 + 10).await;
    record(&store, KEY, T0 + 20).await;
    assert_eq!(
        counters(&store, &[KEY]).await,
        vec![(KEY.into(), 3, T0, T0 + 20)]
    );

    // A window that started exactly at the cutoff still counts on.
    record(&store, KEY, T0 + WINDOW).await;
    assert_eq!(
        counters(&store, &[KEY]).await,
        vec![(KEY.into(), 4, T0, T0 + WINDOW)]
    );
    // One that started before it starts again at 1, now.
    record(&store, KEY, T0 + WINDOW + 1).await;
    assert_eq!(
        counters(&store, &[KEY]).await,
        vec![(KEY.into(), 1, T0 + WINDOW + 1, T0 + WINDOW + 1)]
    );
}

async fn login_failures_answers_the_counters_that_exist(store: Arc<dyn Store>) {
    record(&store, "account:jane@example.com", T0).await;
    record(&store, "ip:192.0.2.7", T0 + 1).await;
    record(&store, "ip:192.0.2.7", T0 + 2).await;
    record(&store, "ip:2001:db8::1", T0 + 3).await;

    assert_eq!(
        counters(
            &store,
            &[
                "account:jane@example.com",
                "account:john@example.com",
                "ip:192.0.2.7"
            ]
        )
        .await,
        vec![
            ("account:jane@example.com".into(), 1, T0, T0),
            ("ip:192.0.2.7".into(), 2, T0 + 1, T0 + 2),
        ]
    );
    assert_eq!(
        counters(&store, &["ip:2001:db8::1"]).await,
        vec![("ip:2001:db8::1".into(), 1, T0 + 3, T0 + 3)]
    );
    assert!(counters(&store, &[]).await.is_empty());
    assert!(counters(&store, &["account:JANE@example.com"])
        .await
        .is_empty());
}

async fn clearing_removes_one_counter(store: Arc<dyn Store>) {
    record(&store, "account:jane@example.com", T0).await;
    record(&store, "ip:192.0.2.7", T0).await;
    store
        .clear_login_failures("account:jane@example.com")
        .await
        .unwrap();
    assert_eq!(
        counters(&store, &["account:jane@example.com", "ip:192.0.2.7"]).await,
        vec![("ip:192.0.2.7".into(), 1, T0, T0)]
    );
    // Clearing what is not there is no error; counting starts afresh after a clear.
    store
        .clear_login_failures("account:jane@example.com")
        .await
        .unwrap();
    record(&store, "account:jane@example.com", T0 + 5).await;
    assert_eq!(
        counters(&store, &["account:jane@example.com"]).await,
        vec![("account:jane@example.com".into(), 1, T0 + 5, T0 + 5)]
    );
}
