-- Signing keys: every key that signs, or once signed, session tokens. Replicas read the same
-- rows, so they agree on which key signs at any moment (the newest activated one).
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,      -- 'HS256' or 'EdDSA'
    secret       TEXT NOT NULL,      -- HMAC secret or Ed25519 PKCS#8, base64url; 'enc:v1:…' when encrypted
    public_key   TEXT,               -- Ed25519 public key (base64url); NULL for HMAC
    created_at   BIGINT NOT NULL,
    activates_at BIGINT NOT NULL     -- when the key starts signing
);
