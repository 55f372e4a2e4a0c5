//! Users: insertion, look-ups, uniqueness; and the store's own housekeeping calls.

use std::sync::Arc;

use tenure::store::{NewUser, ProfileChange, Store, StoreError};

use crate::fixtures::*;

conformance!(
    migrations_are_idempotent_and_ready,
    create_user_answers_the_stored_row,
    look_ups_match_the_stored_form_exactly,
    email_and_username_are_unique,
    a_profile_change_writes_only_what_it_names,
);

async fn migrations_are_idempotent_and_ready(store: Arc<dyn Store>) {
    assert!(matches!(store.backend(), "sqlite" | "postgres"));
    assert!(store.ready().await.unwrap(), "every migration is applied");
    store
        .migrate()
        .await
        .expect("a second migrate changes nothing");
    assert!(store.ready().await.unwrap());
    let (open, idle) = store.pool_stats();
    assert!(open >= 1 && idle <= open, "open {open}, idle {idle}");
}

async fn create_user_answers_the_stored_row(store: Arc<dyn Store>) {
    let new = NewUser {
        email: "jane@example.com".into(),
        username: Some("jane".into()),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        name: "Jane Doe".into(),
        first_name: Some("Jane".into()),
        last_name: None,
        is_sys_admin: true,
        created_at: T0 + 5,
    };
    let jane = store.create_user(&new).await.unwrap();
    assert!(jane.id > 0);
    assert_eq!(jane.email, "jane@example.com");
    assert_eq!(jane.username.as_deref(), Some("jane"));
    assert_eq!(jane.password_hash, new.password_hash);
    assert_eq!(jane.name, "Jane Doe");
    assert_eq!(jane.first_name.as_deref(), Some("Jane"));
    assert_eq!(jane.last_name, None);
    assert!(jane.is_sys_admin);
    assert!(jane.is_active, "a new user is active");
    assert_eq!(jane.created_at, T0 + 5);
    assert_eq!(jane.last_login_at, None, "nobody logged in yet");
    assert_eq!(
        jane.password_changed_at,
        T0 + 5,
        "the password dates from creation"
    );

    let john = user(&store, "john@example.com").await;
    assert_ne!(john.id, jane.id);
    assert!(!john.is_sys_admin);
    assert_eq!(john.username, None);
}

async fn look_ups_match_the_stored_form_exactly(store: Arc<dyn Store>) {
    let mut new = new_user("jane@example.com");
    new.username = Some("jane".into());
    let jane = store.create_user(&new).await.unwrap();
    let other = user(&store, "john@example.com").await;

    let by_email = store.user_by_email("jane@example.com").await.unwrap();
    assert_eq!(by_email.map(|u| u.id), Some(jane.id));
    let by_email = store.user_by_email("john@example.com").await.unwrap();
    assert_eq!(by_email.map(|u| u.id), Some(other.id));
    let by_username = store.user_by_username("jane").await.unwrap();
    assert_eq!(by_username.map(|u| u.id), Some(jane.id));

    // Normalising is the caller's job: the store compares the stored form as it is, on both
    // backends alike.
    assert!(store
        .user_by_email("Jane@example.com")
        .await
        .unwrap()
        .is_none());
    assert!(store
        .user_by_email("jane@example.co")
        .await
        .unwrap()
        .is_none());
    assert!(store.user_by_username("JANE").await.unwrap().is_none());
    assert!(store.user_by_username("john").await.unwrap().is_none());
    assert!(store.user_by_username("").await.unwrap().is_none());
}

async fn email_and_username_are_unique(store: Arc<dyn Store>) {
    let mut first = new_user("jane@example.com");
    first.username = Some("jane".into());
    let jane = store.create_user(&first).await.unwrap();

    let mut same_email = new_user("jane@example.com");
    same_email.username = Some("other".into());
    same_email.name = "Impostor".into();
    let err = store.create_user(&same_email).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict("users_email_key")),
        "{err:?}"
    );

    let mut same_username = new_user("other@example.com");
    same_username.username = Some("jane".into());
    let err = store.create_user(&same_username).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict("users_username_key")),
        "{err:?}"
    );

    // Any number of users without a username.
    user(&store, "a@example.com").await;
    user(&store, "b@example.com").await;

    // The refused inserts changed nothing.
    let stored = store
        .user_by_email("jane@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.id, stored.name.as_str()), (jane.id, "Jane Doe"));
    assert!(store
        .user_by_email("other@example.com")
        .await
        .unwrap()
        .is_none());
    assert!(store.user_by_username("other").await.unwrap().is_none());
}

async fn a_profile_change_writes_only_what_it_names(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    assert_eq!(jane.phone, None, "a new user has no phone");

    // Names and phone; the rest stays.
    let change = ProfileChange {
        name: Some("Jane Q. Doe".into()),
        phone: Some(Some("+1 555 0100".into())),
        last_name: Some(None),
        ..ProfileChange::default()
    };
    let updated = store
        .update_profile(jane.id, &change)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.name, "Jane Q. Doe");
    assert_eq!(updated.phone.as_deref(), Some("+1 555 0100"));
    assert_eq!(
        updated.first_name.as_deref(),
        Some("Jane"),
        "not named: kept"
    );
    assert_eq!(updated.last_name, None, "Some(None) clears");
    assert_eq!(updated.email, "jane@example.com");
    assert_eq!(updated.password_hash, jane.password_hash);
    // Read back through both paths that read users: by email, and joined with a session.
    let stored = store
        .user_by_email("jane@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.phone.as_deref(), Some("+1 555 0100"));
    let sid = login(&store, &forever(&stored, T0 + 1)).await;
    let view = store.session_with_user(sid, None).await.unwrap().unwrap();
    assert_eq!(view.user.phone.as_deref(), Some("+1 555 0100"));
    assert_eq!(view.user.last_name, None);

    // An empty change writes nothing.
    let same = store
        .update_profile(jane.id, &ProfileChange::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (same.name.as_str(), same.phone.as_deref()),
        ("Jane Q. Doe", Some("+1 555 0100"))
    );

    // An email change needs the hash it was authorised against to be the stored one.
    let stale = ProfileChange {
        email: Some("jane.doe@example.com".into()),
        verified_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$salt$an-older-hash".into()),
        name: Some("Not Written".into()),
        ..ProfileChange::default()
    };
    assert!(store
        .update_profile(jane.id, &stale)
        .await
        .unwrap()
        .is_none());
    let stored = store
        .user_by_email("jane@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.name, "Jane Q. Doe",
        "a refused change writes nothing"
    );
    let moved = ProfileChange {
        email: Some("jane.doe@example.com".into()),
        verified_hash: Some(jane.password_hash.clone()),
        ..ProfileChange::default()
    };
    let updated = store
        .update_profile(jane.id, &moved)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.email, "jane.doe@example.com");
    assert!(store
        .user_by_email("jane@example.com")
        .await
        .unwrap()
        .is_none());

    // Another user's address is taken, by constraint name, and nothing changes.
    let taken = ProfileChange {
        email: Some("jane.doe@example.com".into()),
        verified_hash: Some(john.password_hash.clone()),
        phone: Some(Some("+1 555 0199".into())),
        ..ProfileChange::default()
    };
    let err = store.update_profile(john.id, &taken).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict("users_email_key")),
        "{err:?}"
    );
    let stored = store
        .user_by_email("john@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.phone, None);

    // No such user.
    assert!(store
        .update_profile(jane.id + john.id + 100, &change)
        .await
        .unwrap()
        .is_none());
}
