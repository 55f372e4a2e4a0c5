//! Apps, keys and roles in the store, and the wider session caps: the role a login resolves in
//! its transaction (none for an administrator, the user's role for the app, else the app's
//! default), an inactive app or role refusing the login, the changes that end the sessions
//! they affect, and the per-address and total caps under concurrent logins.

use std::sync::Arc;

use tenure::store::{
    App, AppChange, Cap, NewApp, NewRole, Role, RoleChange, SessionLimit, Store, StoreError, User,
};
use uuid::Uuid;

use crate::fixtures::*;

conformance!(
    apps_are_stored_and_found_by_the_hash_of_their_key,
    a_login_through_an_app_resolves_its_role_in_order,
    an_inactive_app_or_role_refuses_the_login_and_changes_nothing,
    deactivating_or_deleting_an_app_revokes_exactly_its_sessions,
    role_changes_revoke_exactly_the_sessions_whose_role_they_change,
    taken_names_and_missing_references_are_conflicts,
    the_per_address_cap_rejects_or_evicts_across_users,
    the_total_cap_rejects_or_evicts_anyone,
    concurrent_logins_from_one_address_never_exceed_its_cap,
);

fn new_app(name: &str, role: Option<&Role>) -> NewApp {
    NewApp {
        name: name.to_owned(),
        description: None,
        is_active: true,
        role_id: role.map(|r| r.id),
        url: None,
        api_key: format!("{name:0>64}"),
        api_key_hash: format!("hash-of-{name}"),
        created_at: T0,
    }
}

async fn app(store: &Arc<dyn Store>, name: &str, role: Option<&Role>) -> App {
    store.create_app(&new_app(name, role)).await.expect("app")
}

async fn role(store: &Arc<dyn Store>, name: &str, active: bool) -> Role {
    store
        .create_role(&NewRole {
            name: name.to_owned(),
            description: None,
            is_active: active,
            created_at: T0,
        })
        .await
        .expect("role")
}

const REASONS: AppChange = AppChange {
    name: None,
    description: None,
    is_active: None,
    role_id: None,
    url: None,
    api_key: None,
    disabled_reason: "app_disabled",
    role_changed_reason: "role_changed",
};

const ROLE_REASONS: RoleChange = RoleChange {
    name: None,
    description: None,
    is_active: None,
    disabled_reason: "role_disabled",
    renamed_reason: "role_changed",
};

/// A forever session of `user` through `app` at `at`; answers its id.
async fn login_through(store: &Arc<dyn Store>, user: &User, app: &App, at: i64) -> Uuid {
    let mut new = forever(user, at);
    new.app_id = Some(app.id);
    login(store, &new).await
}

/// The stored (role id, role name) of a session.
async fn role_of(store: &Arc<dyn Store>, id: Uuid) -> (Option<i64>, Option<String>) {
    let s = row(store, id).await;
    (s.role_id, s.role_name)
}

async fn revoked(store: &Arc<dyn Store>, id: Uuid) -> Option<String> {
    row(store, id).await.revoke_reason
}

async fn apps_are_stored_and_found_by_the_hash_of_their_key(store: Arc<dyn Store>) {
    let users = role(&store, "users", true).await;
    let web = app(&store, "web", Some(&users)).await;
    assert_eq!(
        (
            web.name.as_str(),
            web.role_id,
            web.is_active,
            web.created_at
        ),
        ("web", Some(users.id), true, T0)
    );
    assert_eq!(
        store.app_by_key_hash("hash-of-web").await.unwrap(),
        Some(web.clone())
    );
    assert_eq!(store.app_by_key_hash(&web.api_key).await.unwrap(), None);
    assert_eq!(store.app_by_name("web").await.unwrap(), Some(web.clone()));
    assert_eq!(store.app(web.id).await.unwrap(), Some(web.clone()));
    let ios = app(&store, "ios", None).await;
    assert_eq!(store.apps().await.unwrap(), vec![web.clone(), ios]);

    // A new key: the old hash finds nothing at once.
    let change = AppChange {
        api_key: Some(("b".repeat(64), "hash-of-new".into())),
        description: Some(Some("The web app".into())),
        url: Some(Some("https://web.example".into())),
        ..REASONS
    };
    let changed = store
        .update_app(web.id, &change, T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.api_key, "b".repeat(64));
    assert_eq!(store.app_by_key_hash("hash-of-web").await.unwrap(), None);
    assert_eq!(
        store.app_by_key_hash("hash-of-new").await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(changed.description.as_deref(), Some("The web app"));
    assert_eq!(changed.role_id, Some(users.id), "untouched");
    // `Some(None)` clears.
    let change = AppChange {
        description: Some(None),
        ..REASONS
    };
    let changed = store
        .update_app(web.id, &change, T0 + 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (changed.description, changed.url.as_deref()),
        (None, Some("https://web.example"))
    );
    assert_eq!(store.update_app(999, &REASONS, T0).await.unwrap(), None);
    assert!(!store.delete_app(999, T0, "app_disabled").await.unwrap());
}

async fn a_login_through_an_app_resolves_its_role_in_order(store: Arc<dyn Store>) {
    let users = role(&store, "users", true).await;
    let staff = role(&store, "staff", true).await;
    let web = app(&store, "web", Some(&users)).await;
    let tools = app(&store, "tools", None).await;
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let root = admin(&store, "root@example.com").await;
    let assigned = store
        .set_user_app_roles(
            jane.id,
            &[(web.id, Some(staff.id)), (tools.id, Some(staff.id))],
            T0,
            "role_changed",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(assigned.len(), 2);
    assert_eq!(store.user_app_roles(jane.id).await.unwrap(), assigned);

    let staff_held = (Some(staff.id), Some("staff".to_owned()));
    let s = login_through(&store, &jane, &web, T0).await;
    assert_eq!(
        role_of(&store, s).await,
        staff_held,
        "the user's own role first"
    );
    let s = login_through(&store, &john, &web, T0).await;
    assert_eq!(
        role_of(&store, s).await,
        (Some(users.id), Some("users".into())),
        "else the app's"
    );
    let s = login_through(&store, &jane, &tools, T0).await;
    assert_eq!(role_of(&store, s).await, staff_held);
    let s = login_through(&store, &john, &tools, T0).await;
    assert_eq!(role_of(&store, s).await, (None, None), "no role at all");
    let s = login_through(&store, &root, &web, T0).await;
    assert_eq!(
        role_of(&store, s).await,
        (None, None),
        "administrators need none"
    );
    let s = login(&store, &forever(&jane, T0)).await;
    let session = row(&store, s).await;
    assert_eq!((session.app_id, session.role_id), (None, None));
    let s = login_through(&store, &jane, &web, T0).await;
    assert_eq!(row(&store, s).await.app_id, Some(web.id));
}

async fn an_inactive_app_or_role_refuses_the_login_and_changes_nothing(store: Arc<dyn Store>) {
    let off = role(&store, "off", false).await;
    let users = role(&store, "users", true).await;
    let web = app(&store, "web", Some(&off)).await;
    let jane = user(&store, "jane@example.com").await;
    let root = admin(&store, "root@example.com").await;
    let mut new = forever(&jane, T0);
    new.app_id = Some(web.id);
    let err = store
        .create_session(&new, &NO_LIMIT, &live(T0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RoleInactive), "{err:?}");
    assert!(!exists(&store, new.id).await);
    let stored = store
        .user_by_email("jane@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.last_login_at, None,
        "the refused login is not recorded"
    );
    // An administrator holds no role, so none refuses them.
    login_through(&store, &root, &web, T0).await;

    store
        .update_app(
            web.id,
            &AppChange {
                role_id: Some(Some(users.id)),
                ..REASONS
            },
            T0,
        )
        .await
        .unwrap();
    login_through(&store, &jane, &web, T0).await;
    store
        .update_app(
            web.id,
            &AppChange {
                is_active: Some(false),
                ..REASONS
            },
            T0,
        )
        .await
        .unwrap();
    let mut new = forever(&jane, T0 + 1);
    new.app_id = Some(web.id);
    let err = store
        .create_session(&new, &NO_LIMIT, &live(T0 + 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AppInactive), "{err:?}");
    assert!(!exists(&store, new.id).await);
    // A deleted app is as inactive.
    store
        .delete_app(web.id, T0 + 2, "app_disabled")
        .await
        .unwrap();
    let err = store
        .create_session(&new, &NO_LIMIT, &live(T0 + 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AppInactive), "{err:?}");
}

async fn deactivating_or_deleting_an_app_revokes_exactly_its_sessions(store: Arc<dyn Store>) {
    let web = app(&store, "web", None).await;
    let ios = app(&store, "ios", None).await;
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let jane_web = login_through(&store, &jane, &web, T0).await;
    let john_web = login_through(&store, &john, &web, T0).await;
    let jane_ios = login_through(&store, &jane, &ios, T0).await;
    let plain = login(&store, &forever(&jane, T0)).await;

    let off = store
        .update_app(
            web.id,
            &AppChange {
                is_active: Some(false),
                ..REASONS
            },
            T0 + 5,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!off.is_active);
    for id in [jane_web, john_web] {
        let s = row(&store, id).await;
        assert_eq!(
            (s.revoked_at, s.revoke_reason.as_deref()),
            (Some(T0 + 5), Some("app_disabled"))
        );
    }
    for id in [jane_ios, plain] {
        assert_eq!(row(&store, id).await.revoked_at, None);
    }
    // Deleting: its sessions end, the app goes, other sessions stay.
    assert!(store
        .delete_app(ios.id, T0 + 6, "app_disabled")
        .await
        .unwrap());
    assert_eq!(
        revoked(&store, jane_ios).await.as_deref(),
        Some("app_disabled")
    );
    assert_eq!(row(&store, plain).await.revoked_at, None);
    assert_eq!(store.app(ios.id).await.unwrap(), None);
}

async fn role_changes_revoke_exactly_the_sessions_whose_role_they_change(store: Arc<dyn Store>) {
    let users = role(&store, "users", true).await;
    let staff = role(&store, "staff", true).await;
    let web = app(&store, "web", Some(&users)).await;
    let ios = app(&store, "ios", Some(&users)).await;
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let root = admin(&store, "root@example.com").await;

    // A user's role for one app: only their sessions of that app whose role changes.
    let jane_web = login_through(&store, &jane, &web, T0).await;
    let jane_ios = login_through(&store, &jane, &ios, T0).await;
    let john_web = login_through(&store, &john, &web, T0).await;
    let root_web = login_through(&store, &root, &web, T0).await;
    store
        .set_user_app_roles(jane.id, &[(web.id, Some(users.id))], T0 + 1, "role_changed")
        .await
        .unwrap();
    assert_eq!(
        revoked(&store, jane_web).await,
        None,
        "the same role as before"
    );
    store
        .set_user_app_roles(jane.id, &[(web.id, Some(staff.id))], T0 + 2, "role_changed")
        .await
        .unwrap();
    assert_eq!(
        revoked(&store, jane_web).await.as_deref(),
        Some("role_changed")
    );
    for id in [jane_ios, john_web, root_web] {
        assert_eq!(revoked(&store, id).await, None);
    }
    assert_eq!(
        store
            .set_user_app_roles(999, &[], T0, "role_changed")
            .await
            .unwrap(),
        None
    );

    // The app's default role: the sessions that held the default, not the user's own, not an
    // administrator's.
    let jane_web = login_through(&store, &jane, &web, T0 + 3).await;
    store
        .update_app(
            web.id,
            &AppChange {
                role_id: Some(Some(staff.id)),
                ..REASONS
            },
            T0 + 4,
        )
        .await
        .unwrap();
    assert_eq!(
        revoked(&store, john_web).await.as_deref(),
        Some("role_changed")
    );
    for id in [jane_web, jane_ios, root_web] {
        assert_eq!(revoked(&store, id).await, None);
    }
    // Removing the user's own: back to the app's default (staff, the same): nothing ends.
    store
        .set_user_app_roles(jane.id, &[(web.id, None)], T0 + 5, "role_changed")
        .await
        .unwrap();
    assert_eq!(revoked(&store, jane_web).await, None);
    assert_eq!(store.user_app_roles(jane.id).await.unwrap(), vec![]);

    // Renaming a role ends the sessions holding it; another change does not.
    let change = RoleChange {
        description: Some(Some("x".into())),
        ..ROLE_REASONS
    };
    store.update_role(users.id, &change, T0 + 6).await.unwrap();
    assert_eq!(revoked(&store, jane_ios).await, None);
    let change = RoleChange {
        name: Some("members".into()),
        ..ROLE_REASONS
    };
    let renamed = store
        .update_role(users.id, &change, T0 + 7)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name, "members");
    assert_eq!(
        revoked(&store, jane_ios).await.as_deref(),
        Some("role_changed")
    );
    assert_eq!(revoked(&store, jane_web).await, None);
    // Deactivating one: role_disabled.
    let change = RoleChange {
        is_active: Some(false),
        ..ROLE_REASONS
    };
    store.update_role(staff.id, &change, T0 + 8).await.unwrap();
    assert_eq!(
        revoked(&store, jane_web).await.as_deref(),
        Some("role_disabled")
    );
    assert_eq!(
        store.update_role(999, &ROLE_REASONS, T0).await.unwrap(),
        None
    );
    // Deleting one: its holders end, apps lose it as their default.
    let jane_ios = login_through(&store, &jane, &ios, T0 + 9).await;
    assert_eq!(
        role_of(&store, jane_ios).await.1.as_deref(),
        Some("members")
    );
    assert!(store
        .delete_role(users.id, T0 + 10, "role_disabled")
        .await
        .unwrap());
    assert_eq!(
        revoked(&store, jane_ios).await.as_deref(),
        Some("role_disabled")
    );
    assert_eq!(store.app(ios.id).await.unwrap().unwrap().role_id, None);
    assert!(!store
        .delete_role(users.id, T0, "role_disabled")
        .await
        .unwrap());
}

async fn taken_names_and_missing_references_are_conflicts(store: Arc<dyn Store>) {
    let users = role(&store, "users", true).await;
    let web = app(&store, "web", None).await;
    let jane = user(&store, "jane@example.com").await;
    let mut again = new_app("web", None);
    again.api_key_hash = "another".into();
    let conflict = |r: Result<_, StoreError>| match r {
        Err(StoreError::Conflict(name)) => name,
        other => panic!("expected a conflict, got {:?}", other.map(|_| ())),
    };
    assert_eq!(
        conflict(store.create_app(&again).await.map(|_| ())),
        "apps_name_key"
    );
    let mut dangling = new_app("new", None);
    dangling.role_id = Some(999);
    assert_eq!(
        conflict(store.create_app(&dangling).await.map(|_| ())),
        "foreign_key"
    );
    let same = NewRole {
        name: "users".into(),
        description: None,
        is_active: true,
        created_at: T0,
    };
    assert_eq!(
        conflict(store.create_role(&same).await.map(|_| ())),
        "roles_name_key"
    );
    let rename = RoleChange {
        name: Some("users".into()),
        ..ROLE_REASONS
    };
    let other = role(&store, "other", true).await;
    assert_eq!(
        conflict(store.update_role(other.id, &rename, T0).await.map(|_| ())),
        "roles_name_key"
    );
    for assignment in [(999, Some(users.id)), (web.id, Some(999))] {
        let result = store
            .set_user_app_roles(jane.id, &[assignment], T0, "role_changed")
            .await;
        assert_eq!(conflict(result.map(|_| ())), "foreign_key");
    }
    assert_eq!(
        store.user_app_roles(jane.id).await.unwrap(),
        vec![],
        "nothing half-done"
    );
}

fn capped(per_ip: Option<u32>, total: Option<u32>, reject: bool) -> SessionLimit {
    SessionLimit {
        reject,
        per_ip: per_ip.map(|max| Cap {
            max,
            evict_reason: "ip_session_limit",
        }),
        total: total.map(|max| Cap {
            max,
            evict_reason: "total_session_limit",
        }),
        ..NO_LIMIT
    }
}

fn from(user: &User, ip: &str, at: i64) -> tenure::store::NewSession {
    let mut new = forever(user, at);
    new.ip = Some(ip.to_owned());
    new
}

async fn the_per_address_cap_rejects_or_evicts_across_users(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let reject = capped(Some(2), None, true);
    let a = store
        .create_session(&from(&jane, "203.0.113.1", T0), &reject, &live(T0))
        .await
        .unwrap()
        .session
        .id;
    let b = store
        .create_session(&from(&john, "203.0.113.1", T0 + 1), &reject, &live(T0 + 1))
        .await
        .unwrap()
        .session
        .id;
    let third = from(&john, "203.0.113.1", T0 + 2);
    let err = store
        .create_session(&third, &reject, &live(T0 + 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IpLimitReached), "{err:?}");
    assert!(!exists(&store, third.id).await);
    // Another address, or no known address, is not counted here.
    store
        .create_session(&from(&john, "203.0.113.2", T0 + 2), &reject, &live(T0 + 2))
        .await
        .unwrap();
    let mut unknown = forever(&john, T0 + 2);
    unknown.ip = None;
    store
        .create_session(&unknown, &reject, &live(T0 + 2))
        .await
        .unwrap();

    // Evicting: the least recently seen session from that address, whoever's it is.
    let evict = capped(Some(2), None, false);
    let c = store
        .create_session(&from(&john, "203.0.113.1", T0 + 3), &evict, &live(T0 + 3))
        .await
        .unwrap()
        .session
        .id;
    assert_eq!(
        revoked(&store, a).await.as_deref(),
        Some("ip_session_limit")
    );
    for id in [b, c] {
        assert_eq!(revoked(&store, id).await, None);
    }
}

async fn the_total_cap_rejects_or_evicts_anyone(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let reject = capped(None, Some(2), true);
    let a = store
        .create_session(&from(&jane, "203.0.113.1", T0), &reject, &live(T0))
        .await
        .unwrap()
        .session
        .id;
    store
        .create_session(&from(&john, "203.0.113.2", T0 + 1), &reject, &live(T0 + 1))
        .await
        .unwrap();
    let err = store
        .create_session(&from(&john, "203.0.113.3", T0 + 2), &reject, &live(T0 + 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TotalLimitReached), "{err:?}");
    let evict = capped(None, Some(2), false);
    store
        .create_session(&from(&john, "203.0.113.3", T0 + 3), &evict, &live(T0 + 3))
        .await
        .unwrap();
    assert_eq!(
        revoked(&store, a).await.as_deref(),
        Some("total_session_limit")
    );
    assert_eq!(store.count_live_sessions(&live(T0 + 3)).await.unwrap(), 2);
}

async fn concurrent_logins_from_one_address_never_exceed_its_cap(store: Arc<dyn Store>) {
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(user(&store, &format!("user{i}@example.com")).await);
    }
    for (round, reject) in [(0, true), (1, false)] {
        let ip = format!("203.0.113.{round}");
        let limit = capped(Some(3), Some(100), reject);
        let mut logins = tokio::task::JoinSet::new();
        for u in &users {
            let store = store.clone();
            let new = from(u, &ip, T0 + 10);
            logins.spawn(async move { store.create_session(&new, &limit, &live(T0 + 10)).await });
        }
        let answers = logins.join_all().await;
        let succeeded = answers.iter().filter(|a| a.is_ok()).count();
        let refused = answers
            .iter()
            .filter(|a| matches!(a, Err(StoreError::IpLimitReached)))
            .count();
        assert_eq!(succeeded + refused, 8, "{answers:?}");
        assert_eq!(succeeded, if reject { 3 } else { 8 }, "reject {reject}");
        let live_from_ip: usize = {
            let mut n = 0;
            for u in &users {
                n += store
                    .user_sessions(u.id, &live(T0 + 10))
                    .await
                    .unwrap()
                    .iter()
                    .filter(|s| s.ip.as_deref() == Some(ip.as_str()))
                    .count();
            }
            n
        };
        assert_eq!(live_from_ip, 3, "reject {reject}");
    }
}
