//! The per-user session cap, enforced inside the login insert: evict the least recently seen
//! live sessions, or refuse the login.

use std::sync::Arc;

use tenure::store::{SessionLimit, Store, StoreError, Touch};

use crate::fixtures::*;

conformance!(
    at_the_cap_the_least_recently_seen_sessions_are_evicted,
    at_the_cap_a_rejecting_limit_refuses_the_login_and_changes_nothing,
    only_live_sessions_count_against_the_cap,
    concurrent_logins_never_exceed_the_cap,
);

const EVICT_TWO: SessionLimit = SessionLimit {
    max: 2,
    reject: false,
    evict_reason: "session_limit",
    per_ip: None,
    total: None,
};

const REJECT_TWO: SessionLimit = SessionLimit {
    max: 2,
    reject: true,
    evict_reason: "session_limit",
    per_ip: None,
    total: None,
};

async fn at_the_cap_the_least_recently_seen_sessions_are_evicted(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let older = login(&store, &forever(&jane, T0)).await;
    let newer = login(&store, &forever(&jane, T0 + 1)).await;
    let johns = login(&store, &forever(&john, T0 + 1)).await;
    // The older login was used since: the newer one is now the least recently seen.
    let touch = Touch {
        gen: 0,
        now: T0 + 5,
        older_than: T0 + 5,
        idle_cutoff: None,
    };
    store.session_with_user(older, Some(&touch)).await.unwrap();

    let third = forever(&jane, T0 + 10);
    let view = store
        .create_session(&third, &EVICT_TWO, &live(T0 + 10))
        .await
        .unwrap();
    assert_eq!(view.session.id, third.id);
    let evicted = row(&store, newer).await;
    assert_eq!(
        (evicted.revoked_at, evicted.revoke_reason.as_deref()),
        (Some(T0 + 10), Some("session_limit"))
    );
    let sessions = store.user_sessions(jane.id, &live(T0 + 10)).await.unwrap();
    assert_eq!(ids(&sessions), vec![third.id, older]);
    assert_eq!(
        row(&store, johns).await.revoked_at,
        None,
        "other users are untouched"
    );

    // A lower cap evicts as many as it takes, oldest seen first; equal last-seen times go by
    // login time.
    let one = SessionLimit {
        max: 1,
        ..EVICT_TWO
    };
    let fourth = forever(&jane, T0 + 20);
    store
        .create_session(&fourth, &one, &live(T0 + 20))
        .await
        .unwrap();
    let sessions = store.user_sessions(jane.id, &live(T0 + 20)).await.unwrap();
    assert_eq!(ids(&sessions), vec![fourth.id]);
    for id in [older, third.id] {
        assert_eq!(row(&store, id).await.revoked_at, Some(T0 + 20));
    }
}

async fn at_the_cap_a_rejecting_limit_refuses_the_login_and_changes_nothing(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let first = login(&store, &forever(&jane, T0)).await;
    let second = store
        .create_session(&forever(&jane, T0 + 1), &REJECT_TWO, &live(T0 + 1))
        .await
        .unwrap()
        .session
        .id;

    let third = forever(&jane, T0 + 2);
    let err = store
        .create_session(&third, &REJECT_TWO, &live(T0 + 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LimitReached), "{err:?}");
    assert!(!exists(&store, third.id).await);
    let sessions = store.user_sessions(jane.id, &live(T0 + 2)).await.unwrap();
    assert_eq!(ids(&sessions), vec![second, first]);
    let stored = store
        .user_by_email("jane@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.last_login_at,
        Some(T0 + 1),
        "the refused login is not recorded"
    );

    // Once a session ends there is room again.
    assert!(store
        .revoke_session(first, None, T0 + 3, "logged_out")
        .await
        .unwrap());
    store
        .create_session(&forever(&jane, T0 + 4), &REJECT_TWO, &live(T0 + 4))
        .await
        .unwrap();
}

async fn only_live_sessions_count_against_the_cap(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let closed = login(&store, &ordinary(&jane, T0, T0 + 10)).await;
    let revoked = login(&store, &forever(&jane, T0)).await;
    let idle = login(&store, &forever(&jane, T0 + 1)).await;
    assert!(store
        .revoke_session(revoked, None, T0 + 2, "logged_out")
        .await
        .unwrap());

    // At T0 + 11 the closed window no longer counts and, with idle expiry from T0 + 5, neither
    // does the idle session: one slot of one is free.
    let one = SessionLimit {
        max: 1,
        ..REJECT_TWO
    };
    let now = tenure::store::Liveness {
        now: T0 + 11,
        idle_cutoff: Some(T0 + 5),
    };
    let fresh = store
        .create_session(&forever(&jane, T0 + 11), &one, &now)
        .await
        .unwrap()
        .session
        .id;
    // Nothing was evicted to make room.
    assert_eq!(row(&store, closed).await.revoked_at, None);
    assert_eq!(row(&store, idle).await.revoked_at, None);
    let err = store
        .create_session(&forever(&jane, T0 + 12), &one, &now)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LimitReached), "{err:?}");

    // Evicting also leaves dead sessions alone: only the live one goes.
    let evict = SessionLimit {
        max: 1,
        ..EVICT_TWO
    };
    store
        .create_session(&forever(&jane, T0 + 13), &evict, &now)
        .await
        .unwrap();
    assert_eq!(row(&store, fresh).await.revoked_at, Some(T0 + 11));
    assert_eq!(row(&store, closed).await.revoked_at, None);
    assert_eq!(row(&store, idle).await.revoked_at, None);
}

async fn concurrent_logins_never_exceed_the_cap(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    for limit in [EVICT_TWO, REJECT_TWO] {
        let mut logins = tokio::task::JoinSet::new();
        for i in 0..8 {
            let store = store.clone();
            let new = forever(&jane, T0 + i);
            logins.spawn(async move { store.create_session(&new, &limit, &live(T0 + 10)).await });
        }
        let answers = logins.join_all().await;
        let refused = answers
            .iter()
            .filter(|a| matches!(a, Err(StoreError::LimitReached)))
            .count();
        let succeeded = answers.iter().filter(|a| a.is_ok()).count();
        assert_eq!(refused + succeeded, 8, "{answers:?}");
        let live_now = store.user_sessions(jane.id, &live(T0 + 10)).await.unwrap();
        assert_eq!(live_now.len(), 2, "reject {}", limit.reject);
        if limit.reject {
            assert_eq!(succeeded, 0, "the evicting round left the user at the cap");
        } else {
            assert_eq!(succeeded, 8);
        }
    }
}
