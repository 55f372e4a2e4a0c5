//! Signing key storage, and the settings rows that remain readable.

use std::sync::Arc;

use tenure::store::{KeyRow, Store};

use crate::fixtures::*;

conformance!(
    signing_keys_are_stored_once_and_listed_by_activation,
    a_key_secret_can_be_replaced,
    settings_read_as_none_until_stored,
);

fn key(kid: &str, activates_at: i64) -> KeyRow {
    KeyRow {
        kid: kid.to_owned(),
        algorithm: "HS256".into(),
        secret: format!("secret-of-{kid}"),
        public_key: None,
        created_at: T0,
        activates_at,
    }
}

/// (kid, algorithm, secret, public_key, created_at, activates_at) of every stored key.
async fn stored(store: &Arc<dyn Store>) -> Vec<(String, String, String, Option<String>, i64, i64)> {
    store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| {
            (
                k.kid,
                k.algorithm,
                k.secret,
                k.public_key,
                k.created_at,
                k.activates_at,
            )
        })
        .collect()
}

async fn signing_keys_are_stored_once_and_listed_by_activation(store: Arc<dyn Store>) {
    assert!(stored(&store).await.is_empty(), "migrations store no key");

    let later = key("hs256-later", T0 + 300);
    let initial = key("hs256-initial", T0);
    let ed = KeyRow {
        kid: "eddsa-next".into(),
        algorithm: "EdDSA".into(),
        secret: "enc:v1:c2VjcmV0".into(),
        public_key: Some("cHVibGlj".into()),
        created_at: T0 + 1,
        activates_at: T0 + 300,
    };
    for k in [&later, &initial, &ed] {
        assert!(store.insert_signing_key(k).await.unwrap(), "{}", k.kid);
    }
    // A kid is stored once: a second insert (another replica's) changes nothing.
    let mut again = key("hs256-initial", T0 + 999);
    again.secret = "another-secret".into();
    assert!(!store.insert_signing_key(&again).await.unwrap());

    assert_eq!(
        stored(&store).await,
        vec![
            (
                "hs256-initial".into(),
                "HS256".into(),
                "secret-of-hs256-initial".into(),
                None,
                T0,
                T0
            ),
            (
                "eddsa-next".into(),
                "EdDSA".into(),
                "enc:v1:c2VjcmV0".into(),
                Some("cHVibGlj".into()),
                T0 + 1,
                T0 + 300
            ),
            (
                "hs256-later".into(),
                "HS256".into(),
                "secret-of-hs256-later".into(),
                None,
                T0,
                T0 + 300
            ),
        ]
    );
}

async fn a_key_secret_can_be_replaced(store: Arc<dyn Store>) {
    assert!(store.insert_signing_key(&key("hs256-a", T0)).await.unwrap());
    assert!(store
        .insert_signing_key(&key("hs256-b", T0 + 1))
        .await
        .unwrap());
    store
        .update_signing_key_secret("hs256-a", "enc:v1:bmV3")
        .await
        .unwrap();
    // An unknown kid is no error and changes nothing.
    store
        .update_signing_key_secret("hs256-missing", "enc:v1:eA")
        .await
        .unwrap();
    let secrets: Vec<(String, String)> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.secret))
        .collect();
    assert_eq!(
        secrets,
        vec![
            ("hs256-a".into(), "enc:v1:bmV3".into()),
            ("hs256-b".into(), "secret-of-hs256-b".into()),
        ]
    );
}

async fn settings_read_as_none_until_stored(store: Arc<dyn Store>) {
    assert_eq!(store.setting("jwt_hs256_secret").await.unwrap(), None);
    store.delete_setting("jwt_hs256_secret").await.unwrap();
    assert_eq!(store.setting("jwt_hs256_secret").await.unwrap(), None);
}
