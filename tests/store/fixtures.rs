//! Rows to insert and shorthands for the calls every test makes.

#![allow(dead_code)]

use std::sync::Arc;

use tenure::clock::UnixTime;
use tenure::store::{
    Liveness, NewSession, NewUser, Rotation, Session, SessionLimit, SessionWithUser, Store, User,
};
use uuid::Uuid;

/// The time every store test starts at (any fixed number: the store holds no clock).
pub const T0: UnixTime = 1_700_000_000;

/// A cap no test reaches.
pub const NO_LIMIT: SessionLimit = SessionLimit {
    max: 10_000,
    reject: false,
    evict_reason: "session_limit",
    per_ip: None,
    total: None,
};

/// A user to insert, with `email` as given (the caller normalises) and no username.
pub fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.to_owned(),
        username: None,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt$hash-of-{email}"),
        name: "Jane Doe".into(),
        first_name: Some("Jane".into()),
        last_name: Some("Doe".into()),
        is_sys_admin: false,
        created_at: T0,
    }
}

pub async fn user(store: &Arc<dyn Store>, email: &str) -> User {
    store.create_user(&new_user(email)).await.expect("user")
}

pub async fn admin(store: &Arc<dyn Store>, email: &str) -> User {
    let mut new = new_user(email);
    new.is_sys_admin = true;
    store.create_user(&new).await.expect("admin")
}

/// A forever session of `user`, logged in at `at`.
pub fn forever(user: &User, at: UnixTime) -> NewSession {
    NewSession {
        id: Uuid::new_v4(),
        user_id: user.id,
        verified_hash: Some(user.password_hash.clone()),
        upgraded_hash: None,
        forever: true,
        created_at: at,
        refresh_until: None,
        device: Some("Firefox on Linux".into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0".into()),
        ip: Some("192.0.2.7".into()),
        refresh_mode: None,
        app_id: None,
    }
}

/// An ordinary session of `user`, logged in at `at`, refreshable until `until`.
pub fn ordinary(user: &User, at: UnixTime, until: UnixTime) -> NewSession {
    NewSession {
        forever: false,
        refresh_until: Some(until),
        ..forever(user, at)
    }
}

/// Every session live at `now`, idle expiry off.
pub fn live(now: UnixTime) -> Liveness {
    Liveness {
        now,
        idle_cutoff: None,
    }
}

/// Inserts `session` with no cap in the way; answers its id.
pub async fn login(store: &Arc<dyn Store>, session: &NewSession) -> Uuid {
    store
        .create_session(session, &NO_LIMIT, &live(session.created_at))
        .await
        .expect("create session")
        .session
        .id
}

/// The stored session `id` (panics if there is none), read without a touch.
pub async fn row(store: &Arc<dyn Store>, id: Uuid) -> Session {
    store
        .session_with_user(id, None)
        .await
        .expect("read session")
        .expect("the session exists")
        .session
}

/// Whether any row of session `id` is left.
pub async fn exists(store: &Arc<dyn Store>, id: Uuid) -> bool {
    store
        .session_with_user(id, None)
        .await
        .expect("read session")
        .is_some()
}

/// A rotation of `id` from `gen` at `now`, with no idle or admin condition.
pub fn rotation(id: Uuid, gen: i64, now: UnixTime) -> Rotation {
    Rotation {
        session_id: id,
        expected_gen: gen,
        now,
        idle_cutoff: None,
        require_admin: false,
        by_credential: false,
    }
}

pub async fn rotate(store: &Arc<dyn Store>, r: &Rotation) -> Option<SessionWithUser> {
    store.rotate_session(r).await.expect("rotate")
}

/// Ids of `sessions`, in their order.
pub fn ids(sessions: &[Session]) -> Vec<Uuid> {
    sessions.iter().map(|s| s.id).collect()
}
