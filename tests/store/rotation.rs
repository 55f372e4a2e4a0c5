//! Rotation: one conditional increment of `gen`. The first rotation from a gen wins; every
//! later one from the same gen gets `None`, and the row (its `gen` and `rotated_at`) is what
//! the service reads to tell a racer inside the grace from a replay.

use std::sync::Arc;

use tenure::store::{Rotation, Store};
use uuid::Uuid;

use crate::fixtures::*;

conformance!(
    the_first_rotation_from_a_gen_wins,
    rotation_holds_every_condition,
    concurrent_rotations_from_one_gen_have_one_winner,
    concurrent_rotations_of_many_sessions_each_answer_their_own,
);

async fn the_first_rotation_from_a_gen_wins(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let id = login(&store, &ordinary(&jane, T0, T0 + 1000)).await;

    let first = rotate(&store, &rotation(id, 0, T0 + 30)).await.unwrap();
    let s = &first.session;
    assert_eq!((s.id, s.gen), (id, 1));
    assert_eq!((s.rotated_at, s.last_seen_at), (T0 + 30, T0 + 30));
    assert_eq!(s.created_at, T0, "the login time stays");
    assert_eq!(
        s.refresh_until,
        Some(T0 + 1000),
        "rotation never extends the window"
    );
    assert_eq!(first.user.id, jane.id);

    // The same gen again: nothing changes, and the row says when the winner rotated.
    assert!(rotate(&store, &rotation(id, 0, T0 + 31)).await.is_none());
    let now = row(&store, id).await;
    assert_eq!(
        (now.gen, now.rotated_at, now.last_seen_at, now.revoked_at),
        (1, T0 + 30, T0 + 30, None)
    );

    // The current gen rotates on; a gen the session never had does not.
    let second = rotate(&store, &rotation(id, 1, T0 + 40)).await.unwrap();
    assert_eq!(
        (second.session.gen, second.session.rotated_at),
        (2, T0 + 40)
    );
    assert!(rotate(&store, &rotation(id, 5, T0 + 41)).await.is_none());
    assert!(rotate(&store, &rotation(id, -1, T0 + 41)).await.is_none());
    assert_eq!(row(&store, id).await.gen, 2);

    assert!(rotate(&store, &rotation(Uuid::new_v4(), 0, T0 + 50))
        .await
        .is_none());
}

async fn rotation_holds_every_condition(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let boss = admin(&store, "boss@example.com").await;

    // Revoked.
    let revoked = login(&store, &forever(&jane, T0)).await;
    assert!(store
        .revoke_session(revoked, None, T0 + 1, "logged_out")
        .await
        .unwrap());
    assert!(rotate(&store, &rotation(revoked, 0, T0 + 2))
        .await
        .is_none());
    assert_eq!(row(&store, revoked).await.gen, 0);

    // The refresh window: open up to and including `refresh_until`.
    let window = login(&store, &ordinary(&jane, T0, T0 + 100)).await;
    assert!(rotate(&store, &rotation(window, 0, T0 + 101))
        .await
        .is_none());
    assert_eq!(row(&store, window).await.gen, 0);
    let edge = rotate(&store, &rotation(window, 0, T0 + 100))
        .await
        .unwrap();
    assert_eq!(edge.session.gen, 1);

    // Idle expiry: seen at or after the cutoff.
    let idle = login(&store, &forever(&jane, T0 + 10)).await;
    let idle_after = |cutoff| Rotation {
        idle_cutoff: Some(cutoff),
        ..rotation(idle, 0, T0 + 500)
    };
    assert!(rotate(&store, &idle_after(T0 + 11)).await.is_none());
    assert_eq!(row(&store, idle).await.gen, 0);
    assert_eq!(
        rotate(&store, &idle_after(T0 + 10))
            .await
            .unwrap()
            .session
            .gen,
        1
    );

    // The admin endpoints rotate only administrators' sessions.
    let admin_only = |id| Rotation {
        require_admin: true,
        ..rotation(id, 0, T0 + 600)
    };
    let janes = login(&store, &forever(&jane, T0 + 20)).await;
    assert!(rotate(&store, &admin_only(janes)).await.is_none());
    assert_eq!(row(&store, janes).await.gen, 0);
    let boss_session = login(&store, &forever(&boss, T0 + 20)).await;
    let rotated = rotate(&store, &admin_only(boss_session)).await.unwrap();
    assert_eq!(rotated.session.gen, 1);
    assert!(rotated.user.is_sys_admin);

    // A deactivated user's sessions are revoked with it and stop rotating, also after the
    // user is active again.
    let inactive = login(&store, &forever(&jane, T0 + 30)).await;
    store
        .set_user_active(jane.id, false, T0 + 31, "user_inactive")
        .await
        .unwrap();
    assert!(rotate(&store, &rotation(inactive, 0, T0 + 32))
        .await
        .is_none());
    store
        .set_user_active(jane.id, true, T0 + 33, "user_inactive")
        .await
        .unwrap();
    assert!(rotate(&store, &rotation(inactive, 0, T0 + 34))
        .await
        .is_none());
    assert_eq!(row(&store, inactive).await.gen, 0);
}

async fn concurrent_rotations_from_one_gen_have_one_winner(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let id = login(&store, &forever(&jane, T0)).await;
    for gen in 0..3 {
        let mut racers = tokio::task::JoinSet::new();
        for i in 0..8 {
            let store = store.clone();
            racers.spawn(async move {
                store
                    .rotate_session(&rotation(id, gen, T0 + 100 * (gen + 1) + i))
                    .await
                    .unwrap()
            });
        }
        let winners: Vec<_> = racers.join_all().await.into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "gen {gen}: exactly one rotation wins");
        let winner = &winners[0].session;
        assert_eq!(winner.gen, gen + 1);
        let stored = row(&store, id).await;
        assert_eq!(
            (stored.gen, stored.rotated_at),
            (gen + 1, winner.rotated_at)
        );
    }
}

async fn concurrent_rotations_of_many_sessions_each_answer_their_own(store: Arc<dyn Store>) {
    let jane = user(&store, "jane@example.com").await;
    let john = user(&store, "john@example.com").await;
    let mut sessions = Vec::new();
    for i in 0..24 {
        let who = if i % 2 == 0 { &jane } else { &john };
        sessions.push((login(&store, &forever(who, T0 + i)).await, who.id));
    }
    // Half rotate from their gen; the other half present a gen they do not have.
    let mut calls = tokio::task::JoinSet::new();
    for (i, &(id, user_id)) in sessions.iter().enumerate() {
        let store = store.clone();
        let gen = if i % 3 == 0 { 1 } else { 0 };
        let now = T0 + 1000 + i as i64;
        calls.spawn(async move {
            let answer = store.rotate_session(&rotation(id, gen, now)).await.unwrap();
            (id, user_id, gen, now, answer)
        });
    }
    for (id, user_id, gen, now, answer) in calls.join_all().await {
        match gen {
            0 => {
                let view = answer.expect("a current gen rotates");
                assert_eq!(view.session.id, id, "each caller gets its own session");
                assert_eq!(view.user.id, user_id);
                assert_eq!((view.session.gen, view.session.rotated_at), (1, now));
            }
            _ => assert!(answer.is_none(), "a wrong gen never rotates"),
        }
        let stored = row(&store, id).await;
        assert_eq!(stored.gen, 1 - gen);
    }
}
