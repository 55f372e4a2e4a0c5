//! Ending sessions: one (conditional on gen), one of a user's own, all of a user's, on
//! deactivation, and on a password change.

use std::sync::Arc;

use tenure::store::{Liveness, Store, StoreError};
use uuid::Uuid;

use crate::fixtures::*;

conformance!(
    revoke_session_ends_a_live_session_once,
    revoke_user_session_ends_only_a_live_session_of_that_user,
    revoke_user_sessions_spares_the_exception_and_other_users,
    deactivation_revokes_every_session,
    a_password_change_revokes_the_other_sessions,
);

async fn revoke_session_ends_a_live_session_once(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let id = login(&store, &forever(&jane, T0)).await;

    // Not at the gen given: untouched.
    assert!(!store
        .revoke_session(id, Some(1), T0 + 1, "logged_out")
        .await
        .unwrap());
    assert_eq!(row(&store, id).await.revoked_at, None);

    assert!(store
        .revoke_session(id, Some(0), T0 + 2, "logged_out")
        .await
        .unwrap());
    let s = row(&store, id).await;
    assert_eq!(
        (s.revoked_at, s.revoke_reason.as_deref()),
        (Some(T0 + 2), Some("logged_out"))
    );

    // Once only: the first revocation's time and reason stay.
    assert!(!store
        .revoke_session(id, None, T0 + 3, "token_reuse")
        .await
        .unwrap());
    let s = row(&store, id).await;
    assert_eq!(
        (s.revoked_at, s.revoke_reason.as_deref()),
        (Some(T0 + 2), Some("logged_out"))
    );

    // Without a gen, any gen; after a rotation the old gen no longer matches.
    let other = login(&store, &forever(&jane, T0)).await;
    rotate(&store, &rotation(other, 0, T0 + 5)).await.unwrap();
    assert!(!store
        .revoke_session(other, Some(0), T0 + 6, "logged_out")
        .await
        .unwrap());
    assert!(store
        .revoke_session(other, None, T0 + 6, "token_reuse")
        .await
        .unwrap());
    let s = row(&store, other).await;
    assert_eq!(
        (s.gen, s.revoked_at, s.revoke_reason.as_deref()),
        (1, Some(T0 + 6), Some("token_reuse"))
    );

    assert!(!store
        .revoke_session(Uuid::new_v4(), None, T0, "revoked")
        .await
        .unwrap());
}

async fn revoke_user_session_ends_only_a_live_session_of_that_user(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let janes = login(&store, &forever(&jane, T0)).await;
    let johns = login(&store, &forever(&john, T0)).await;
    let now = live(T0 + 10);

    assert!(!store
        .revoke_user_session(johns, jane.id, &now, "logged_out")
        .await
        .unwrap());
    assert!(!store
        .revoke_user_session(janes, john.id, &now, "logged_out")
        .await
        .unwrap());
    assert_eq!(row(&store, janes).await.revoked_at, None);
    assert_eq!(row(&store, johns).await.revoked_at, None);

    assert!(store
        .revoke_user_session(janes, jane.id, &now, "logged_out")
        .await
        .unwrap());
    let s = row(&store, janes).await;
    assert_eq!(
        (s.revoked_at, s.revoke_reason.as_deref()),
        (Some(T0 + 10), Some("logged_out"))
    );
    assert!(!store
        .revoke_user_session(janes, jane.id, &live(T0 + 11), "revoked")
        .await
        .unwrap());
    assert_eq!(
        row(&store, janes).await.revoke_reason.as_deref(),
        Some("logged_out")
    );

    // Sessions that are no longer live are not found: a closed refresh window, idle expiry.
    let closed = login(&store, &ordinary(&jane, T0, T0 + 5)).await;
    assert!(!store
        .revoke_user_session(closed, jane.id, &live(T0 + 6), "logged_out")
        .await
        .unwrap());
    let idle = login(&store, &forever(&jane, T0)).await;
    let idle_now = Liveness {
        now: T0 + 100,
        idle_cutoff: Some(T0 + 1),
    };
    assert!(!store
        .revoke_user_session(idle, jane.id, &idle_now, "logged_out")
        .await
        .unwrap());
    assert_eq!(row(&store, closed).await.revoked_at, None);
    assert_eq!(row(&store, idle).await.revoked_at, None);

    assert!(!store
        .revoke_user_session(Uuid::new_v4(), jane.id, &now, "logged_out")
        .await
        .unwrap());
}

async fn revoke_user_sessions_spares_the_exception_and_other_users(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let mine = login(&store, &forever(&jane, T0)).await;
    let other = login(&store, &forever(&jane, T0)).await;
    let closed = login(&store, &ordinary(&jane, T0, T0 + 1)).await;
    let earlier = login(&store, &forever(&jane, T0)).await;
    let johns = login(&store, &forever(&john, T0)).await;
    assert!(store
        .revoke_session(earlier, None, T0 + 1, "revoked")
        .await
        .unwrap());

    // Every unrevoked session but the exception: live or not.
    let ended = store
        .revoke_user_sessions(jane.id, Some(mine), T0 + 5, "logged_out")
        .await
        .unwrap();
    assert_eq!(ended, 2);
    for id in [other, closed] {
        let s = row(&store, id).await;
        assert_eq!(
            (s.revoked_at, s.revoke_reason.as_deref()),
            (Some(T0 + 5), Some("logged_out"))
        );
    }
    let s = row(&store, earlier).await;
    assert_eq!(
        (s.revoked_at, s.revoke_reason.as_deref()),
        (Some(T0 + 1), Some("revoked"))
    );
    assert_eq!(row(&store, mine).await.revoked_at, None);
    assert_eq!(row(&store, johns).await.revoked_at, None);

    let ended = store
        .revoke_user_sessions(jane.id, None, T0 + 6, "logged_out")
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert_eq!(row(&store, mine).await.revoked_at, Some(T0 + 6));
    let ended = store
        .revoke_user_sessions(jane.id, None, T0 + 7, "logged_out")
        .await
        .unwrap();
    assert_eq!(ended, 0);
    assert_eq!(row(&store, johns).await.revoked_at, None);
}

async fn deactivation_revokes_every_session(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let first = login(&store, &forever(&jane, T0)).await;
    let second = login(&store, &ordinary(&jane, T0, T0 + 100)).await;
    let earlier = login(&store, &forever(&jane, T0)).await;
    let johns = login(&store, &forever(&john, T0)).await;
    assert!(store
        .revoke_session(earlier, None, T0 + 1, "logged_out")
        .await
        .unwrap());

    let updated = store
        .set_user_active(jane.id, false, T0 + 10, "user_inactive")
        .await
        .unwrap()
        .expect("jane exists");
    assert_eq!(updated.id, jane.id);
    assert!(!updated.is_active);
    for id in [first, second] {
        let s = row(&store, id).await;
        assert_eq!(
            (s.revoked_at, s.revoke_reason.as_deref()),
            (Some(T0 + 10), Some("user_inactive"))
        );
    }
    assert_eq!(
        row(&store, earlier).await.revoke_reason.as_deref(),
        Some("logged_out")
    );
    assert_eq!(row(&store, johns).await.revoked_at, None);
    let stored = store
        .user_by_email("jane@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.is_active);

    // Reactivation restores the user, not the sessions.
    let back = store
        .set_user_active(jane.id, true, T0 + 20, "user_inactive")
        .await
        .unwrap()
        .expect("jane exists");
    assert!(back.is_active);
    assert_eq!(row(&store, first).await.revoked_at, Some(T0 + 10));
    assert!(store
        .user_sessions(jane.id, &live(T0 + 20))
        .await
        .unwrap()
        .is_empty());

    assert!(store
        .set_user_active(jane.id + john.id + 1000, false, T0, "user_inactive")
        .await
        .unwrap()
        .is_none());
}

async fn a_password_change_revokes_the_other_sessions(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let mine = login(&store, &forever(&jane, T0)).await;
    let others = [
        login(&store, &forever(&jane, T0)).await,
        login(&store, &ordinary(&jane, T0, T0 + 100)).await,
    ];
    let johns = login(&store, &forever(&john, T0)).await;

    let ended = store
        .change_password(jane.id, "$argon2id$new", mine, T0 + 9, "password_changed")
        .await
        .unwrap();
    assert_eq!(ended, 2);
    let stored = store
        .user_by_email("jane@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.password_hash, "$argon2id$new");
    assert_eq!(stored.password_changed_at, T0 + 9);
    assert_eq!(stored.created_at, T0);
    assert_eq!(row(&store, mine).await.revoked_at, None);
    for id in others {
        let s = row(&store, id).await;
        assert_eq!(
            (s.revoked_at, s.revoke_reason.as_deref()),
            (Some(T0 + 9), Some("password_changed"))
        );
    }
    assert_eq!(row(&store, johns).await.revoked_at, None);

    // A login that verified the old hash cannot start a session any more; the new one can.
    let err = store
        .create_session(&forever(&jane, T0 + 10), &NO_LIMIT, &live(T0 + 10))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UserChanged), "{err:?}");
    let mut fresh = forever(&jane, T0 + 11);
    fresh.verified_hash = Some("$argon2id$new".into());
    login(&store, &fresh).await;
}
