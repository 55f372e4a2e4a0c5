//! The purge: which dead rows go, which stay, and the batch size.

use std::sync::Arc;

use tenure::store::{Purge, Store};

use crate::fixtures::*;

conformance!(
    purge_deletes_exactly_the_dead_rows,
    purge_deletes_at_most_one_batch_per_kind,
);

/// The purge of the tests at `now`: tokens live 100 s, revoked rows are kept 500 s, failure
/// counters 200 s; idle expiry off.
fn purge_at(now: i64) -> Purge {
    Purge {
        now,
        tokens_expired_before: now - 100,
        idle_cutoff: None,
        revoked_before: now - 500,
        failures_before: now - 200,
        batch: 1000,
    }
}

async fn purge_deletes_exactly_the_dead_rows(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let now = T0 + 1000;

    // Window closed, last token expired long ago: goes.
    let closed = login(&store, &ordinary(&jane, T0, T0 + 500)).await;
    // Window closed, but its last token (rotated at T0 + 950) is valid until T0 + 1050: stays.
    let closed_recent = login(&store, &ordinary(&jane, T0 + 1, T0 + 950)).await;
    rotate(&store, &rotation(closed_recent, 0, T0 + 950))
        .await
        .unwrap();
    // Window still open: stays.
    let open = login(&store, &ordinary(&jane, T0 + 20, T0 + 2000)).await;
    // Forever, not seen since T0: stays while idle expiry is off.
    let forever_idle = login(&store, &forever(&jane, T0)).await;
    // Revoked before the retention: goes; after it: stays.
    let revoked_old = login(&store, &forever(&jane, T0 + 2)).await;
    let revoked_recent = login(&store, &forever(&jane, T0 + 3)).await;
    for (id, at) in [(revoked_old, T0 + 499), (revoked_recent, T0 + 500)] {
        assert!(store
            .revoke_session(id, None, at, "logged_out")
            .await
            .unwrap());
    }
    // Failure counters: last failure before the cutoff goes; at it stays.
    store
        .record_login_failure("ip:192.0.2.1", T0 + 799, T0)
        .await
        .unwrap();
    store
        .record_login_failure("ip:192.0.2.2", T0 + 800, T0)
        .await
        .unwrap();

    assert_eq!(store.purge(&purge_at(now)).await.unwrap(), 3);
    for (id, kept) in [
        (closed, false),
        (closed_recent, true),
        (open, true),
        (forever_idle, true),
        (revoked_old, false),
        (revoked_recent, true),
    ] {
        assert_eq!(exists(&store, id).await, kept, "session {id}");
    }
    let keys = vec!["ip:192.0.2.1".to_owned(), "ip:192.0.2.2".to_owned()];
    let left: Vec<String> = store
        .login_failures(&keys)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.key)
        .collect();
    assert_eq!(left, vec!["ip:192.0.2.2".to_owned()]);

    // Nothing more to do.
    assert_eq!(store.purge(&purge_at(now)).await.unwrap(), 0);

    // With idle expiry: sessions unseen since the cutoff go once their last token expired.
    // The forever session (seen at T0) goes; the open one (seen at T0 + 20) and the one
    // rotated at T0 + 950 stay; revoked rows are the retention's business.
    let idle = Purge {
        idle_cutoff: Some(T0 + 10),
        ..purge_at(now)
    };
    assert_eq!(store.purge(&idle).await.unwrap(), 1);
    assert!(!exists(&store, forever_idle).await);
    assert!(exists(&store, open).await);
    assert!(exists(&store, closed_recent).await);
    assert!(exists(&store, revoked_recent).await);

    // Later, everything dead goes: the recent window's token has expired, the recent
    // revocation is past the retention, the last counter is past its cutoff.
    assert_eq!(store.purge(&purge_at(T0 + 1051)).await.unwrap(), 3);
    assert!(!exists(&store, closed_recent).await);
    assert!(!exists(&store, revoked_recent).await);
    assert!(store.login_failures(&keys).await.unwrap().is_empty());
    assert!(exists(&store, open).await);
    assert_eq!(
        store.count_live_sessions(&live(T0 + 1051)).await.unwrap(),
        1
    );
}

async fn purge_deletes_at_most_one_batch_per_kind(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let mut revoked = Vec::new();
    for i in 0..3 {
        let id = login(&store, &forever(&jane, T0 + i)).await;
        assert!(store
            .revoke_session(id, None, T0, "logged_out")
            .await
            .unwrap());
        revoked.push(id);
    }
    for i in 0..2 {
        login(&store, &ordinary(&jane, T0, T0 + 1)).await;
        store
            .record_login_failure(&format!("ip:192.0.2.{i}"), T0, T0)
            .await
            .unwrap();
    }
    let one_at_a_time = Purge {
        batch: 1,
        ..purge_at(T0 + 1000)
    };
    // Each pass: one revoked session, one closed session, one counter; then what is left.
    assert_eq!(store.purge(&one_at_a_time).await.unwrap(), 3);
    assert_eq!(store.purge(&one_at_a_time).await.unwrap(), 3);
    assert_eq!(store.purge(&one_at_a_time).await.unwrap(), 1);
    assert_eq!(store.purge(&one_at_a_time).await.unwrap(), 0);
    for id in revoked {
        assert!(!exists(&store, id).await);
    }
    assert!(store
        .user_sessions(jane.id, &live(T0))
        .await
        .unwrap()
        .is_empty());
}
