//! Moving in: users inserted with their ids and updated in one transaction, the id sequence
//! moved past them, and a login's hash upgrade written by the statement that records it.

use std::sync::Arc;

use tenure::store::{ImportedUser, Store, StoreError, UserImport};

use crate::fixtures::*;

conformance!(
    imported_users_keep_their_ids_and_later_users_follow,
    an_import_updates_all_but_creation_and_last_login,
    a_conflicting_import_writes_nothing,
    a_login_stores_the_upgraded_hash_only_over_the_hash_it_verified,
);

fn imported(id: i64, email: &str) -> ImportedUser {
    ImportedUser {
        id,
        email: email.to_owned(),
        username: None,
        password_hash: format!("$2y$10${email}"),
        name: "Imported".into(),
        first_name: None,
        last_name: None,
        is_sys_admin: false,
        is_active: true,
        created_at: T0 - 1_000,
        last_login_at: Some(T0 - 10),
        password_changed_at: T0,
        imported_hash: Some(format!("sha256:{id}")),
    }
}

fn import(users: Vec<ImportedUser>, deactivated: Vec<i64>) -> UserImport {
    UserImport {
        users,
        deactivated,
        now: T0 + 100,
        reason: "user_inactive",
    }
}

async fn imported_users_keep_their_ids_and_later_users_follow(store: Arc<dyn Store>) {
    let first = user(&store, "first@example.com").await;
    let users: Vec<ImportedUser> = (0..2_500)
        .map(|i| imported(1_000 + i, &format!("u{i}@example.com")))
        .collect();
    store.import_users(&import(users, vec![])).await.unwrap();
    let all = store.all_users().await.unwrap();
    assert_eq!(all.len(), 2_501);
    assert_eq!(all[0].user.id, first.id);
    let last = all.last().unwrap();
    assert_eq!(last.user.id, 3_499);
    assert_eq!(last.user.email, "u2499@example.com");
    assert_eq!(last.user.created_at, T0 - 1_000);
    assert_eq!(last.user.last_login_at, Some(T0 - 10));
    assert_eq!(last.imported_hash.as_deref(), Some("sha256:3499"));
    assert_eq!(
        store
            .create_user(&new_user("later@example.com"))
            .await
            .unwrap()
            .id,
        3_500
    );
    // An import of lower ids never moves the sequence back.
    store
        .import_users(&import(vec![imported(500, "low@example.com")], vec![]))
        .await
        .unwrap();
    assert_eq!(
        store
            .create_user(&new_user("later2@example.com"))
            .await
            .unwrap()
            .id,
        3_501
    );
}

async fn an_import_updates_all_but_creation_and_last_login(store: Arc<dyn Store>) {
    store
        .import_users(&import(vec![imported(7, "seven@example.com")], vec![]))
        .await
        .unwrap();
    let seven = store
        .user_by_email("seven@example.com")
        .await
        .unwrap()
        .unwrap();
    let session = login(&store, &forever(&seven, T0 + 50)).await;
    let changed = ImportedUser {
        email: "renamed@example.com".into(),
        username: Some("seven".into()),
        password_hash: "$2y$10$other".into(),
        name: "Renamed".into(),
        is_sys_admin: true,
        is_active: false,
        created_at: T0 + 999,
        last_login_at: None,
        password_changed_at: T0 + 100,
        imported_hash: Some("sha256:new".into()),
        ..imported(7, "")
    };
    store
        .import_users(&import(vec![changed], vec![7]))
        .await
        .unwrap();
    let all = store.all_users().await.unwrap();
    let [stored] = &all[..] else {
        panic!("{all:?}")
    };
    let u = &stored.user;
    assert_eq!(
        (
            u.email.as_str(),
            u.username.as_deref(),
            u.password_hash.as_str(),
            u.name.as_str()
        ),
        (
            "renamed@example.com",
            Some("seven"),
            "$2y$10$other",
            "Renamed"
        )
    );
    assert!(u.is_sys_admin && !u.is_active);
    assert_eq!(u.password_changed_at, T0 + 100);
    assert_eq!(stored.imported_hash.as_deref(), Some("sha256:new"));
    // Creation and the last login are the stored ones.
    assert_eq!(u.created_at, T0 - 1_000);
    assert_eq!(u.last_login_at, Some(T0 + 50));
    // The deactivated user's session ended with the import.
    let ended = row(&store, session).await;
    assert_eq!(ended.revoked_at, Some(T0 + 100));
    assert_eq!(ended.revoke_reason.as_deref(), Some("user_inactive"));
}

async fn a_conflicting_import_writes_nothing(store: Arc<dyn Store>) {
    user(&store, "taken@example.com").await;
    let result = store
        .import_users(&import(
            vec![
                imported(50, "fine@example.com"),
                imported(51, "taken@example.com"),
            ],
            vec![],
        ))
        .await;
    assert!(
        matches!(result, Err(StoreError::Conflict("users_email_key"))),
        "{result:?}"
    );
    assert_eq!(store.all_users().await.unwrap().len(), 1);
    assert!(store
        .user_by_email("fine@example.com")
        .await
        .unwrap()
        .is_none());
}

async fn a_login_stores_the_upgraded_hash_only_over_the_hash_it_verified(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let upgrade = "$argon2id$v=19$m=19456,t=2,p=1$new$hash".to_owned();
    // A login that verified a hash no longer stored writes nothing.
    let mut stale = forever(&jane, T0 + 1);
    stale.verified_hash = Some("$2y$10$gone".into());
    stale.upgraded_hash = Some(upgrade.clone());
    let refused = store.create_session(&stale, &NO_LIMIT, &live(T0 + 1)).await;
    assert!(
        matches!(refused, Err(StoreError::UserChanged)),
        "{refused:?}"
    );
    let unchanged = store
        .user_by_email("jane@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.password_hash, jane.password_hash);
    // Over the hash it verified, the upgrade is stored with the session.
    let mut first = forever(&jane, T0 + 2);
    first.upgraded_hash = Some(upgrade.clone());
    let view = store
        .create_session(&first, &NO_LIMIT, &live(T0 + 2))
        .await
        .unwrap();
    assert_eq!(view.user.password_hash, upgrade);
    assert_eq!(view.user.last_login_at, Some(T0 + 2));
    assert_eq!(view.user.password_changed_at, jane.password_changed_at);
    // A second login that verified the old hash meanwhile is told the user changed.
    let second = forever(&jane, T0 + 3);
    let raced = store
        .create_session(&second, &NO_LIMIT, &live(T0 + 3))
        .await;
    assert!(matches!(raced, Err(StoreError::UserChanged)), "{raced:?}");
}
