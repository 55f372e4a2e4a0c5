//! The key ring: which key signs now, which keys verify, what the JWKS publishes, and rotation
//! that never logs anyone out.
//!
//! Keys live in the database (generated on first start) unless `JWT_SECRET` or
//! `JWT_PRIVATE_KEY_FILE` supplies one. The signing key at time `t` is the newest key of the
//! configured algorithm whose `activates_at <= t`: a pure function of the rows, so replicas agree,
//! and a refresh racer re-signing a successor (whose `iat` is the rotation time) picks the same key.
//!
//! A rotation inserts a key that activates `JWKS_CACHE_TTL` later, so it is published before it
//! signs. A key stops being published once every token it signed has expired (`JWT_TTL` after its
//! successor activated), but it is kept: a forever session may present an expired token signed
//! years ago, and refresh must still verify it. Access with such a token fails on `exp` anyway.

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use hmac::Mac;
use jsonwebtoken::Algorithm;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::token::{token_kid, Claims, SigningKey, TokenDefect};
use crate::clock::{Seconds, UnixTime};
use crate::config::{Config, JwtAlgorithm};
use crate::store::{KeyRow, Store, StoreError};

/// The settings row where the first version of tenure kept its generated HS256 secret.
const LEGACY_SECRET_SETTING: &str = "jwt_hs256_secret";
/// The kid given to keys that signed tokens without a `kid` header.
const LEGACY_KID: &str = "legacy";
/// Prefix of an encrypted secret column.
const ENCRYPTED_PREFIX: &str = "enc:v1:";
/// The setting that holds the generated refresh credential key, and its id as associated data.
const REFRESH_KEY_SETTING: &str = "refresh_credential_key";
const REFRESH_KEY_ID: &str = "refresh-credential";
/// Every refresh credential starts with this (its version).
const REFRESH_PREFIX: &str = "rt1.";
/// ChaCha20-Poly1305's nonce, stored before the ciphertext.
const NONCE_LEN: usize = 12;
/// An unknown `kid` triggers a reload at most this often (another replica may have rotated).
const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("KEY_ENCRYPTION_SECRET does not decrypt the stored signing key {0}: wrong secret?")]
    WrongEncryptionSecret(String),
    #[error("the stored signing key {0} is encrypted: set KEY_ENCRYPTION_SECRET")]
    EncryptedWithoutSecret(String),
    #[error("signing key {kid}: {message}")]
    Invalid { kid: String, message: String },
    #[error("{0}")]
    Config(String),
    #[error("no signing key is loaded")]
    NoSigningKey,
    #[error("signing with key {kid} failed")]
    Sign {
        kid: String,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
}

/// A key fixed by configuration; no rotation.
pub enum FixedKey {
    Hs256(SecretString),
    Ed25519Pkcs8(Vec<u8>),
}

impl FixedKey {
    /// `JWT_SECRET` (HS256) or the key in `JWT_PRIVATE_KEY_FILE` (EdDSA), when set.
    pub fn from_config(config: &Config) -> Result<Option<Self>, KeyError> {
        match config.jwt_algorithm {
            JwtAlgorithm::Hs256 => Ok(config.jwt_secret.clone().map(Self::Hs256)),
            JwtAlgorithm::EdDsa => {
                let Some(path) = &config.jwt_private_key_file else {
                    return Ok(None);
                };
                let text = std::fs::read_to_string(path).map_err(|e| {
                    KeyError::Config(format!("JWT_PRIVATE_KEY_FILE {}: {e}", path.display()))
                })?;
                let pem = pem::parse(text).map_err(|e| {
                    KeyError::Config(format!("JWT_PRIVATE_KEY_FILE is not PEM: {e}"))
                })?;
                Ok(Some(Self::Ed25519Pkcs8(pem.into_contents())))
            }
        }
    }
}

/// A key's place in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing.
    Current,
    /// Replaced, still published while tokens it signed may be unexpired.
    Retiring,
    /// Unpublished; kept to verify expired tokens presented for refresh.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }
}

/// One line of `tenure keys list`.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub kid: String,
    pub algorithm: &'static str,
    pub state: KeyState,
    pub created_at: UnixTime,
    pub activates_at: UnixTime,
    /// When a successor took over signing.
    pub replaced_at: Option<UnixTime>,
    /// When its last token expires (and it leaves the JWKS).
    pub unpublished_at: Option<UnixTime>,
}

pub struct KeyRing {
    store: Arc<dyn Store>,
    /// `JWT_ALGORITHM`, `KEY_ENCRYPTION_SECRET`, `JWKS_CACHE_TTL`, `DF_JWT_TTL`,
    /// `KEY_ROTATION_INTERVAL`.
    config: Arc<Config>,
    /// The configured algorithm.
    algorithm: Algorithm,
    /// The key from the configuration, when there is one.
    fixed: Option<FixedKey>,
    cipher: Option<ChaCha20Poly1305>,
    /// All keys, oldest activation first.
    keys: ArcSwap<Vec<Arc<SigningKey>>>,
    last_reload: ArcSwap<Instant>,
    /// The key refresh credentials are derived with (see [`KeyRing::refresh_credential`]).
    refresh_key: [u8; 32],
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::EdDSA => "EdDSA",
        _ => "HS256",
    }
}

impl KeyRing {
    /// Loads the keys, creating the first one when the database has none for the configured
    /// algorithm (replicas starting together agree: the first key's kid is fixed).
    pub async fn load(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        now: UnixTime,
    ) -> Result<Self, KeyError> {
        let cipher = config
            .key_encryption_secret
            .as_ref()
            .map(cipher_from)
            .transpose()?;
        let ring = Self {
            store,
            algorithm: match config.jwt_algorithm {
                JwtAlgorithm::Hs256 => Algorithm::HS256,
                JwtAlgorithm::EdDsa => Algorithm::EdDSA,
            },
            fixed: FixedKey::from_config(&config)?,
            config,
            cipher,
            keys: ArcSwap::from_pointee(Vec::new()),
            last_reload: ArcSwap::from_pointee(Instant::now()),
            refresh_key: [0; 32],
        };
        let mut ring = ring;
        if ring.fixed.is_none() {
            // Every stored key must open with the configured secret before anything is
            // written: a start with a wrong or missing secret changes nothing.
            for row in ring.store.signing_keys().await? {
                ring.key_from_row(&row)?;
            }
            ring.import_legacy_secret().await?;
            let alg = algorithm_name(ring.algorithm);
            let rows = ring.store.signing_keys().await?;
            if !rows.iter().any(|r| r.algorithm == alg) {
                // Signs at once: nothing was published before it anyway.
                let kid = format!("{}-initial", alg.to_ascii_lowercase());
                ring.store
                    .insert_signing_key(&ring.generate(&kid, now, now)?)
                    .await?;
            }
            ring.encrypt_plaintext_rows().await?;
        }
        ring.refresh_key = ring.load_refresh_key().await?;
        ring.reload().await?;
        Ok(ring)
    }

    /// The refresh credential key. With a key fixed by configuration it is derived from that
    /// key, and nothing is stored. Otherwise it is generated once (replicas agree: the first
    /// stored value wins) and stored in `settings` beside the signing keys, encrypted like them
    /// when `KEY_ENCRYPTION_SECRET` is set: a credential is exactly as hard to forge as a token.
    async fn load_refresh_key(&self) -> Result<[u8; 32], KeyError> {
        let derive = |material: &[u8]| {
            let mut key = [0u8; 32];
            hkdf::Hkdf::<Sha256>::new(Some(b"tenure refresh credential v1"), material)
                .expand(b"refresh key", &mut key)
                .map(|()| key)
                .map_err(|_| KeyError::Config("cannot derive the refresh credential key".into()))
        };
        match &self.fixed {
            Some(FixedKey::Hs256(secret)) => derive(secret.expose_secret().as_bytes()),
            Some(FixedKey::Ed25519Pkcs8(der)) => derive(der),
            None => {
                let fresh: [u8; 32] = random_bytes()
                    .map_err(|_| KeyError::Config("no randomness for the refresh key".into()))?;
                let sealed = self.seal(REFRESH_KEY_ID, &URL_SAFE_NO_PAD.encode(fresh))?;
                let stored = self
                    .store
                    .setting_or_insert(REFRESH_KEY_SETTING, &sealed)
                    .await?;
                let bytes = URL_SAFE_NO_PAD
                    .decode(self.open(REFRESH_KEY_ID, &stored)?.expose_secret())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| KeyError::Invalid {
                        kid: REFRESH_KEY_ID.into(),
                        message: "the stored refresh credential key is not 32 bytes".into(),
                    })?;
                Ok(bytes)
            }
        }
    }

    /// The refresh credential of session `sid` at `gen`: opaque to clients, 256 bits of MAC
    /// under the refresh key, never stored. The same `(sid, gen)` always gives the same
    /// credential, so racers within the grace get the identical successor.
    pub fn refresh_credential(&self, sid: uuid::Uuid, gen: i64) -> String {
        let mac = self.refresh_mac(sid, gen).finalize().into_bytes();
        format!(
            "{REFRESH_PREFIX}{}.{gen}.{}",
            sid.simple(),
            URL_SAFE_NO_PAD.encode(mac.as_slice())
        )
    }

    /// The `(sid, gen)` a refresh credential stands for, if it is one of ours (its MAC is
    /// compared in constant time).
    pub fn verify_refresh_credential(&self, text: &str) -> Option<(uuid::Uuid, i64)> {
        let rest = text.strip_prefix(REFRESH_PREFIX)?;
        if rest.len() > 128 {
            return None;
        }
        let mut parts = rest.split('.');
        let (sid, gen, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || sid.len() != 32 {
            return None;
        }
        let sid = uuid::Uuid::try_parse(sid).ok()?;
        let gen: i64 = gen.parse().ok().filter(|g| *g >= 0)?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        self.refresh_mac(sid, gen)
            .verify_slice(&mac)
            .ok()
            .map(|()| (sid, gen))
    }

    fn refresh_mac(&self, sid: uuid::Uuid, gen: i64) -> hmac::Hmac<Sha256> {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.refresh_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"tenure refresh v1");
        mac.update(sid.as_bytes());
        mac.update(&gen.to_be_bytes());
        mac
    }

    /// Re-reads the keys from the database.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let mut keys = Vec::new();
        if let Some(fixed) = &self.fixed {
            keys.push(Arc::new(self.fixed_key(fixed)?));
        } else {
            for row in self.store.signing_keys().await? {
                keys.push(Arc::new(self.key_from_row(&row)?));
            }
        }
        keys.sort_by_key(|k| k.activates_at);
        self.keys.store(Arc::new(keys));
        self.last_reload.store(Arc::new(Instant::now()));
        Ok(())
    }

    fn snapshot(&self) -> Arc<Vec<Arc<SigningKey>>> {
        self.keys.load_full()
    }

    /// The key that signs tokens issued at `at`.
    fn signing_key(&self, at: UnixTime) -> Option<Arc<SigningKey>> {
        let keys = self.snapshot();
        let mine = keys.iter().filter(|k| k.algorithm == self.algorithm);
        mine.clone()
            .rfind(|k| k.activates_at <= at)
            .or_else(|| mine.clone().next())
            .cloned()
    }

    /// Signs `claims` with the key active at their `iat` (so a successor re-signed by a racer,
    /// whose `iat` is the rotation time, is byte-identical).
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let key = self.signing_key(claims.iat).ok_or(KeyError::NoSigningKey)?;
        key.sign(claims).map_err(|source| KeyError::Sign {
            kid: key.kid.clone(),
            source,
        })
    }

    /// Verifies with the key the token's `kid` names (re-reading the keys once if it is
    /// unknown: another replica may have rotated), with that key's algorithm only.
    pub async fn verify(
        &self,
        token: &str,
        now: UnixTime,
        leeway: i64,
    ) -> Result<Claims, TokenDefect> {
        // A token without a `kid` predates key ids: it was signed by `JWT_SECRET` when that is
        // set, else by the secret the first version generated.
        let kid = match token_kid(token)? {
            Some(kid) => kid,
            None => match &self.fixed {
                Some(_) => self
                    .snapshot()
                    .first()
                    .map(|k| k.kid.clone())
                    .unwrap_or_default(),
                None => LEGACY_KID.to_owned(),
            },
        };
        let key = match self.find(&kid) {
            Some(key) => key,
            None => {
                let due = self.last_reload.load().elapsed() >= MIN_RELOAD_INTERVAL;
                if due {
                    if let Err(err) = self.reload().await {
                        tracing::warn!(error = %err, "reloading signing keys failed");
                    }
                }
                self.find(&kid).ok_or(TokenDefect::BadSignature)?
            }
        };
        key.verify(token, now, leeway)
    }

    fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.snapshot().iter().find(|k| k.kid == kid).cloned()
    }

    /// Every key with its state at `now`, oldest first.
    pub fn statuses(&self, now: UnixTime) -> Vec<KeyStatus> {
        let keys = self.snapshot();
        let current = self.signing_key(now).map(|k| k.kid.clone());
        keys.iter()
            .map(|key| {
                let replaced_at = keys
                    .iter()
                    .filter(|k| k.algorithm == key.algorithm && k.activates_at > key.activates_at)
                    .map(|k| k.activates_at)
                    .min();
                let unpublished_at = replaced_at.map(|t| t + self.config.jwt_ttl.seconds());
                let state = if key.activates_at > now {
                    KeyState::Next
                } else if current.as_deref() == Some(key.kid.as_str()) {
                    KeyState::Current
                } else if unpublished_at.is_some_and(|t| t > now)
                    || (replaced_at.is_none() && key.algorithm == self.algorithm)
                {
                    KeyState::Retiring
                } else {
                    KeyState::Retired
                };
                KeyStatus {
                    kid: key.kid.clone(),
                    algorithm: algorithm_name(key.algorithm),
                    state,
                    created_at: key.created_at,
                    activates_at: key.activates_at,
                    replaced_at: replaced_at.filter(|t| *t <= now),
                    unpublished_at: unpublished_at.filter(|_| state != KeyState::Current),
                }
            })
            .collect()
    }

    /// The JWKS: the public keys of every Ed25519 key that is next, current or retiring. HMAC
    /// secrets and retired keys are never published.
    pub fn jwks(&self, now: UnixTime) -> Value {
        let keys = self.snapshot();
        let published: Vec<Value> = self
            .statuses(now)
            .into_iter()
            .filter(|s| s.state != KeyState::Retired)
            .filter_map(|s| keys.iter().find(|k| k.kid == s.kid))
            .filter_map(|k| {
                k.public_x.as_ref().map(|x| {
                    json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": k.kid,
                            "alg": "EdDSA", "use": "sig" })
                })
            })
            .collect();
        json!({ "keys": published })
    }

    /// Seconds downstream caches may keep the JWKS.
    pub fn jwks_cache_ttl(&self) -> i64 {
        self.config.jwks_cache_ttl.seconds()
    }

    /// Adds a key that is published now and signs from `now + JWKS_CACHE_TTL`. Refused while
    /// another key is still waiting to sign, or when the key is fixed by configuration.
    pub async fn rotate(&self, now: UnixTime) -> Result<String, KeyError> {
        self.reload().await?;
        if self.fixed.is_some() {
            return Err(KeyError::Config(
                "the signing key comes from JWT_SECRET or JWT_PRIVATE_KEY_FILE; change it there"
                    .into(),
            ));
        }
        if let Some(next) = self
            .statuses(now)
            .into_iter()
            .find(|s| s.state == KeyState::Next)
        {
            return Err(KeyError::Config(format!(
                "key {} is already waiting to sign (from {}); rotate after it activates",
                next.kid, next.activates_at
            )));
        }
        let kid = random_kid(self.algorithm);
        let row = self.generate(&kid, now, now + self.jwks_cache_ttl())?;
        self.store.insert_signing_key(&row).await?;
        self.reload().await?;
        tracing::info!(
            kid,
            activates_at = row.activates_at,
            "signing key rotation scheduled"
        );
        Ok(kid)
    }

    /// With `KEY_ROTATION_INTERVAL`, schedules the next key when the current one has signed
    /// for that long. Replicas doing this at once derive the same kid, so one key wins.
    pub async fn rotate_if_due(&self, now: UnixTime) -> Result<(), KeyError> {
        let Some(interval) = self.config.key_rotation_interval.map(|d| d.seconds()) else {
            return Ok(());
        };
        if self.fixed.is_some() {
            return Ok(());
        }
        self.reload().await?;
        let statuses = self.statuses(now);
        if statuses.iter().any(|s| s.state == KeyState::Next) {
            return Ok(());
        }
        let Some(current) = self.signing_key(now) else {
            return Ok(());
        };
        let due_at = current.activates_at.max(current.created_at) + interval;
        if now < due_at {
            return Ok(());
        }
        let alg = algorithm_name(self.algorithm).to_ascii_lowercase();
        let kid = format!("{alg}-{due_at}");
        let row = self.generate(&kid, now, now + self.jwks_cache_ttl())?;
        if self.store.insert_signing_key(&row).await? {
            tracing::info!(kid, "scheduled signing key rotation");
        }
        self.reload().await
    }

    /// A fresh key row of the configured algorithm, encrypted when a secret is configured.
    fn generate(
        &self,
        kid: &str,
        now: UnixTime,
        activates_at: UnixTime,
    ) -> Result<KeyRow, KeyError> {
        let fail = |message: &str| KeyError::Invalid {
            kid: kid.to_owned(),
            message: message.to_owned(),
        };
        let (secret, public_key) = match self.algorithm {
            Algorithm::EdDSA => {
                let seed: [u8; 32] =
                    random_bytes().map_err(|_| fail("no randomness for an Ed25519 key"))?;
                let pkcs8 = ed25519_dalek::SigningKey::from_bytes(&seed)
                    .to_pkcs8_der()
                    .map_err(|_| fail("cannot encode an Ed25519 key"))?;
                let key = SigningKey::ed25519(kid, pkcs8.as_bytes(), now, activates_at)
                    .map_err(|e| fail(&e))?;
                (URL_SAFE_NO_PAD.encode(pkcs8.as_bytes()), key.public_x)
            }
            _ => {
                let secret: [u8; 32] =
                    random_bytes().map_err(|_| fail("no randomness for an HMAC secret"))?;
                (URL_SAFE_NO_PAD.encode(secret), None)
            }
        };
        Ok(KeyRow {
            kid: kid.to_owned(),
            algorithm: algorithm_name(self.algorithm).to_owned(),
            secret: self.seal(kid, &secret)?,
            public_key,
            created_at: now,
            activates_at,
        })
    }

    /// Moves the first version's generated secret (kept in `settings`, signing tokens without
    /// a `kid`) into the key table, so its tokens keep refreshing.
    async fn import_legacy_secret(&self) -> Result<(), KeyError> {
        let Some(secret) = self.store.setting(LEGACY_SECRET_SETTING).await? else {
            return Ok(());
        };
        // The legacy secret was used as the literal bytes of its base64url text.
        let row = KeyRow {
            kid: LEGACY_KID.to_owned(),
            algorithm: "HS256".to_owned(),
            secret: self.seal(LEGACY_KID, &URL_SAFE_NO_PAD.encode(secret.as_bytes()))?,
            public_key: None,
            created_at: 0,
            activates_at: 0,
        };
        self.store.insert_signing_key(&row).await?;
        self.store.delete_setting(LEGACY_SECRET_SETTING).await?;
        Ok(())
    }

    /// With `KEY_ENCRYPTION_SECRET` newly set, encrypts the rows still in plaintext.
    async fn encrypt_plaintext_rows(&self) -> Result<(), KeyError> {
        if self.cipher.is_none() {
            return Ok(());
        }
        for row in self.store.signing_keys().await? {
            if !row.secret.starts_with(ENCRYPTED_PREFIX) {
                let sealed = self.seal(&row.kid, &row.secret)?;
                self.store
                    .update_signing_key_secret(&row.kid, &sealed)
                    .await?;
            }
        }
        Ok(())
    }

    fn key_from_row(&self, row: &KeyRow) -> Result<SigningKey, KeyError> {
        let material = self.open(&row.kid, &row.secret)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(material.expose_secret())
            .map_err(|_| KeyError::Invalid {
                kid: row.kid.clone(),
                message: "the stored secret is not base64url".into(),
            })?;
        match row.algorithm.as_str() {
            "EdDSA" => SigningKey::ed25519(&row.kid, &bytes, row.created_at, row.activates_at)
                .map_err(|message| KeyError::Invalid {
                    kid: row.kid.clone(),
                    message,
                }),
            "HS256" => SigningKey::hs256(&row.kid, &bytes, row.created_at, row.activates_at)
                .map_err(|message| KeyError::Invalid {
                    kid: row.kid.clone(),
                    message,
                }),
            other => Err(KeyError::Invalid {
                kid: row.kid.clone(),
                message: format!("unknown algorithm {other}"),
            }),
        }
    }

    fn fixed_key(&self, fixed: &FixedKey) -> Result<SigningKey, KeyError> {
        let digest = |bytes: &[u8]| {
            Sha256::digest(bytes)[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        match fixed {
            FixedKey::Hs256(secret) => {
                let bytes = secret.expose_secret().as_bytes();
                SigningKey::hs256(&format!("hs256-{}", digest(bytes)), bytes, 0, 0)
                    .map_err(KeyError::Config)
            }
            FixedKey::Ed25519Pkcs8(der) => {
                let probe = SigningKey::ed25519("probe", der, 0, 0).map_err(KeyError::Config)?;
                let x = probe.public_x.clone().unwrap_or_default();
                SigningKey::ed25519(&format!("ed25519-{}", digest(x.as_bytes())), der, 0, 0)
                    .map_err(KeyError::Config)
            }
        }
    }

    /// Encrypts `plain` for the row `kid` (the kid is bound as associated data), or passes it
    /// through when no encryption secret is configured.
    fn seal(&self, kid: &str, plain: &str) -> Result<String, KeyError> {
        let Some(cipher) = &self.cipher else {
            return Ok(plain.to_owned());
        };
        let nonce: [u8; NONCE_LEN] =
            random_bytes().map_err(|_| KeyError::Config("no randomness for a nonce".into()))?;
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Config("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{ENCRYPTED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    fn open(&self, kid: &str, stored: &str) -> Result<SecretString, KeyError> {
        let Some(sealed) = stored.strip_prefix(ENCRYPTED_PREFIX) else {
            return Ok(SecretString::from(stored.to_owned()));
        };
        let cipher = self
            .cipher
            .as_ref()
            .ok_or_else(|| KeyError::EncryptedWithoutSecret(kid.to_owned()))?;
        let wrong = || KeyError::WrongEncryptionSecret(kid.to_owned());
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| wrong())?;
        let (nonce, ciphertext) = bytes.split_at_checked(NONCE_LEN).ok_or_else(wrong)?;
        let nonce = Nonce::try_from(nonce).map_err(|_| wrong())?;
        let plain = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| wrong())
    }
}

/// A ChaCha20-Poly1305 key derived from `KEY_ENCRYPTION_SECRET` with HKDF-SHA256.
fn cipher_from(secret: &SecretString) -> Result<ChaCha20Poly1305, KeyError> {
    let hkdf = hkdf::Hkdf::<Sha256>::new(
        Some(b"tenure key encryption v1"),
        secret.expose_secret().as_bytes(),
    );
    let mut key = [0u8; 32];
    hkdf.expand(b"signing_keys.secret", &mut key)
        .map_err(|_| KeyError::Config("cannot derive a key from KEY_ENCRYPTION_SECRET".into()))?;
    ChaCha20Poly1305::new_from_slice(&key)
        .map_err(|_| KeyError::Config("cannot derive a key from KEY_ENCRYPTION_SECRET".into()))
}

/// `N` bytes from the operating system's CSPRNG.
fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

fn random_kid(algorithm: Algorithm) -> String {
    // A kid needs to be unlikely to collide, not secret: fall back to the time if the OS has
    // no randomness to give.
    let bytes: [u8; 6] = random_bytes().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut b = [0u8; 6];
        b.copy_from_slice(&nanos.to_le_bytes()[..6]);
        b
    });
    format!(
        "{}-{}",
        algorithm_name(algorithm).to_ascii_lowercase(),
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Re-reads keys (and rotates on schedule) every `interval` until aborted, so every replica
/// learns of a new key well before it starts signing.
pub fn spawn_key_refresher(
    ring: Arc<KeyRing>,
    clock: Arc<dyn crate::clock::Clock>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(err) = ring.rotate_if_due(clock.now()).await {
                tracing::warn!(error = %err, "scheduled key rotation failed");
            }
            if let Err(err) = ring.reload().await {
                tracing::warn!(error = %err, "reloading signing keys failed");
            }
        }
    })
}
