//! Sessions: the login insert, reading a session with its user, the last-seen touch, and the
//! live-session queries (per user, counted, and the administrators' pages).

use std::sync::Arc;

use tenure::store::{Liveness, SessionFilter, Store, StoreError, Touch};
use uuid::Uuid;

use crate::fixtures::*;

conformance!(
    create_session_inserts_at_gen_zero_and_records_the_login,
    an_unknown_session_reads_as_none,
    create_session_refuses_a_user_who_changed,
    touch_writes_last_seen_only_when_due,
    live_queries_skip_revoked_closed_and_idle_sessions,
    list_sessions_pages_newest_first_with_filters,
);

async fn create_session_inserts_at_gen_zero_and_records_the_login(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let new = forever(&jane, T0 + 10);
    let view = store
        .create_session(&new, &NO_LIMIT, &live(T0 + 10))
        .await
        .unwrap();
    let s = &view.session;
    assert_eq!(s.id, new.id);
    assert_eq!(s.user_id, jane.id);
    assert!(s.forever);
    assert_eq!(s.gen, 0);
    assert_eq!(
        (s.rotated_at, s.created_at, s.last_seen_at),
        (T0 + 10, T0 + 10, T0 + 10)
    );
    assert_eq!(s.refresh_until, None);
    assert_eq!(s.device.as_deref(), Some("Firefox on Linux"));
    assert_eq!(s.user_agent, new.user_agent);
    assert_eq!(s.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!((s.revoked_at, s.revoke_reason.as_deref()), (None, None));
    assert_eq!(view.user.id, jane.id);
    assert_eq!(view.user.email, "jane@example.com");
    assert_eq!(
        view.user.last_login_at,
        Some(T0 + 10),
        "the login is recorded"
    );

    // Read back, the same row with the same user.
    let read = store
        .session_with_user(new.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.session.id, new.id);
    assert_eq!(read.session.gen, 0);
    assert_eq!(read.session.last_seen_at, T0 + 10);
    assert_eq!(read.user.id, jane.id);
    assert_eq!(read.user.last_login_at, Some(T0 + 10));

    // An ordinary session keeps its refresh window; one without client details stores none.
    let mut plain = ordinary(&jane, T0 + 20, T0 + 20 + 3600);
    plain.device = None;
    plain.user_agent = None;
    plain.ip = None;
    let view = store
        .create_session(&plain, &NO_LIMIT, &live(T0 + 20))
        .await
        .unwrap();
    assert!(!view.session.forever);
    assert_eq!(view.session.refresh_until, Some(T0 + 3620));
    assert_eq!(
        (
            view.session.device,
            view.session.user_agent,
            view.session.ip
        ),
        (None, None, None)
    );
    assert_eq!(view.user.last_login_at, Some(T0 + 20));
}

async fn an_unknown_session_reads_as_none(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    login(&store, &forever(&jane, T0)).await;
    assert!(store
        .session_with_user(Uuid::new_v4(), None)
        .await
        .unwrap()
        .is_none());
}

async fn create_session_refuses_a_user_who_changed(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;

    // The password hash the login verified is no longer the stored one.
    let mut stale = forever(&jane, T0 + 1);
    stale.verified_hash = Some("$argon2id$an-older-hash".into());
    let err = store
        .create_session(&stale, &NO_LIMIT, &live(T0 + 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UserChanged), "{err:?}");
    assert!(!exists(&store, stale.id).await, "nothing was inserted");
    let stored = store
        .user_by_email("jane@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_login_at, None, "the login was not recorded");

    // No user with that id.
    let mut nobody = forever(&jane, T0 + 2);
    nobody.user_id = jane.id + 1000;
    let err = store
        .create_session(&nobody, &NO_LIMIT, &live(T0 + 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UserChanged), "{err:?}");

    // Without a hash to compare (an operator's session), only the user's existence counts.
    let mut unchecked = forever(&jane, T0 + 3);
    unchecked.verified_hash = None;
    login(&store, &unchecked).await;

    // A deactivated user cannot get a session, whatever the hash.
    store
        .set_user_active(jane.id, false, T0 + 4, "user_inactive")
        .await
        .unwrap();
    for verified_hash in [Some(jane.password_hash.clone()), None] {
        let mut late = forever(&jane, T0 + 5);
        late.verified_hash = verified_hash;
        let err = store
            .create_session(&late, &NO_LIMIT, &live(T0 + 5))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UserChanged), "{err:?}");
        assert!(!exists(&store, late.id).await);
    }
}

async fn touch_writes_last_seen_only_when_due(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let id = login(&store, &forever(&jane, T0)).await;
    let touch = |gen, now, older_than| Touch {
        gen,
        now,
        older_than,
        idle_cutoff: None,
    };

    // Due: last seen (T0) before `older_than`.
    let seen = store
        .session_with_user(id, Some(&touch(0, T0 + 100, T0 + 40)))
        .await
        .unwrap();
    assert_eq!(seen.map(|v| v.session.id), Some(id));
    assert_eq!(row(&store, id).await.last_seen_at, T0 + 100);

    // Not due: seen at `older_than` exactly, or later.
    store
        .session_with_user(id, Some(&touch(0, T0 + 130, T0 + 100)))
        .await
        .unwrap();
    store
        .session_with_user(id, Some(&touch(0, T0 + 131, T0 + 50)))
        .await
        .unwrap();
    assert_eq!(row(&store, id).await.last_seen_at, T0 + 100);

    // A token of another gen does not count as use.
    store
        .session_with_user(id, Some(&touch(1, T0 + 200, T0 + 150)))
        .await
        .unwrap();
    assert_eq!(row(&store, id).await.last_seen_at, T0 + 100);

    // Nor does anything on a revoked session.
    assert!(store
        .revoke_session(id, None, T0 + 300, "logged_out")
        .await
        .unwrap());
    store
        .session_with_user(id, Some(&touch(0, T0 + 400, T0 + 350)))
        .await
        .unwrap();
    let after = row(&store, id).await;
    assert_eq!(after.last_seen_at, T0 + 100);
    assert_eq!(after.gen, 0, "a touch never rotates");

    // Touching an unknown session writes nothing and reads nothing.
    let none = store
        .session_with_user(Uuid::new_v4(), Some(&touch(0, T0 + 400, T0 + 350)))
        .await
        .unwrap();
    assert!(none.is_none());
}

async fn live_queries_skip_revoked_closed_and_idle_sessions(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let oldest = login(&store, &forever(&jane, T0)).await;
    let closing = login(&store, &ordinary(&jane, T0 + 1, T0 + 50)).await;
    let revoked = login(&store, &forever(&jane, T0 + 2)).await;
    let newest = login(&store, &forever(&jane, T0 + 3)).await;
    let johns = login(&store, &forever(&john, T0 + 4)).await;
    assert!(store
        .revoke_session(revoked, None, T0 + 5, "logged_out")
        .await
        .unwrap());

    // At the end of its refresh window a session is still live; newest first.
    let sessions = store.user_sessions(jane.id, &live(T0 + 50)).await.unwrap();
    assert_eq!(ids(&sessions), vec![newest, closing, oldest]);
    assert!(sessions.iter().all(|s| s.user_id == jane.id));
    assert_eq!(store.count_live_sessions(&live(T0 + 50)).await.unwrap(), 4);

    // A second later it is not.
    let sessions = store.user_sessions(jane.id, &live(T0 + 51)).await.unwrap();
    assert_eq!(ids(&sessions), vec![newest, oldest]);
    assert_eq!(store.count_live_sessions(&live(T0 + 51)).await.unwrap(), 3);

    // With idle expiry, only sessions seen at or after the cutoff.
    let idle = Liveness {
        now: T0 + 51,
        idle_cutoff: Some(T0 + 3),
    };
    let sessions = store.user_sessions(jane.id, &idle).await.unwrap();
    assert_eq!(ids(&sessions), vec![newest]);
    assert_eq!(store.count_live_sessions(&idle).await.unwrap(), 2);
    let sessions = store.user_sessions(john.id, &idle).await.unwrap();
    assert_eq!(ids(&sessions), vec![johns]);

    // A user without sessions has none.
    let nobody = user(&store, "nobody@example.com").await;
    assert!(store
        .user_sessions(nobody.id, &live(T0))
        .await
        .unwrap()
        .is_empty());
}

async fn list_sessions_pages_newest_first_with_filters(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let mut all = Vec::new();
    for (who, at) in [
        (&jane, T0),
        (&jane, T0 + 1),
        (&john, T0 + 1),
        (&jane, T0 + 2),
    ] {
        let id = login(&store, &forever(who, at)).await;
        all.push((at, id, who.id));
    }
    for _ in 0..3 {
        // Same creation time: the id breaks the tie.
        let id = login(&store, &forever(&john, T0 + 3)).await;
        all.push((T0 + 3, id, john.id));
    }
    let gone = login(&store, &forever(&jane, T0 + 4)).await;
    assert!(store
        .revoke_session(gone, None, T0 + 5, "revoked")
        .await
        .unwrap());
    // Newest first: created_at, then id, descending.
    all.sort_by_key(|r| std::cmp::Reverse((r.0, r.1)));

    let filter = |user_id, email: Option<&str>, after, limit| SessionFilter {
        user_id,
        email: email.map(str::to_owned),
        after,
        limit,
        live: live(T0 + 10),
    };
    let listed = |views: Vec<tenure::store::SessionWithUser>| -> Vec<(i64, Uuid, i64)> {
        views
            .into_iter()
            .map(|v| {
                assert_eq!(
                    v.user.id, v.session.user_id,
                    "each session with its own user"
                );
                (v.session.created_at, v.session.id, v.user.id)
            })
            .collect()
    };

    let everything = store
        .list_sessions(&filter(None, None, None, 100))
        .await
        .unwrap();
    assert_eq!(listed(everything), all);

    // Pages of 3, each continuing after the last row of the one before.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = listed(
            store
                .list_sessions(&filter(None, None, after, 3))
                .await
                .unwrap(),
        );
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().map(|&(at, id, _)| (at, id));
        pages.extend(page);
    }
    assert_eq!(pages, all);

    let johns: Vec<_> = all.iter().copied().filter(|r| r.2 == john.id).collect();
    let by_id = store
        .list_sessions(&filter(Some(john.id), None, None, 100))
        .await
        .unwrap();
    assert_eq!(listed(by_id), johns);
    let by_email = store
        .list_sessions(&filter(None, Some("john@example.com"), None, 100))
        .await
        .unwrap();
    assert_eq!(listed(by_email), johns);
    let both = store
        .list_sessions(&filter(Some(jane.id), Some("john@example.com"), None, 100))
        .await
        .unwrap();
    assert!(both.is_empty(), "the filters combine");
    let unknown = store
        .list_sessions(&filter(None, Some("nobody@example.com"), None, 100))
        .await
        .unwrap();
    assert!(unknown.is_empty());
}
