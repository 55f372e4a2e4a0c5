//! Session tokens: the claims, signing, and verification with the algorithm fixed by the
//! verifier (never read from the token).
//!
//! Signatures are deterministic (HS256 and Ed25519) and every claim of a token derives from the session row
//! (`sid`, `gen`, `rotated_at`, `forever`, `role_name`) and the configured TTL, so minting the token of one
//! rotation twice gives byte-identical tokens: that is what lets racing refreshes agree.

use std::collections::HashSet;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::UnixTime;
use crate::store::Session;

/// The `iss` of every token; tokens naming another issuer are rejected.
pub const ISSUER: &str = "tenure";

/// Tokens longer than this are rejected before any parsing (ours are ~400 bytes).
const MAX_TOKEN_BYTES: usize = 4096;

/// The claims of a session token (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user id as a string.
    pub sub: String,
    /// The user id as a number (DreamFactory's claim).
    pub user_id: i64,
    pub sid: Uuid,
    pub gen: i64,
    pub jti: String,
    pub iat: UnixTime,
    pub nbf: UnixTime,
    pub exp: UnixTime,
    pub forever: bool,
    /// The session's role (its name), when it has one: a login through an app's API key that
    /// resolved a role. Services that verify tokens through the JWKS authorise on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Claims {
    /// The claims of the token for `session` at its current `gen`: a pure function of the row.
    pub fn for_session(session: &Session, ttl_seconds: i64) -> Self {
        Self {
            iss: ISSUER.to_owned(),
            sub: session.user_id.to_string(),
            user_id: session.user_id,
            sid: session.id,
            gen: session.gen,
            jti: format!("{}.{}", session.id.simple(), session.gen),
            iat: session.rotated_at,
            nbf: session.rotated_at,
            exp: session.rotated_at.saturating_add(ttl_seconds),
            forever: session.forever,
            // Stored on the session at login, so every token of one rotation is the same.
            role: session.role_name.clone(),
        }
    }

    pub fn is_expired(&self, now: UnixTime) -> bool {
        now >= self.exp
    }
}

/// Why a token was rejected; the text follows DreamFactory's `Invalid token: …` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenDefect {
    Malformed,
    BadSignature,
    BadClaims,
    IssuedInFuture,
    NotYetValid,
    UserMismatch,
}

impl TokenDefect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "Wrong number of segments",
            Self::BadSignature => "Token Signature could not be verified.",
            Self::BadClaims => "JWT payload does not contain the required claims",
            Self::IssuedInFuture => "Issued At (iat) timestamp cannot be in the future",
            Self::NotYetValid => "Not Before (nbf) timestamp cannot be in the future",
            Self::UserMismatch => "User verification failed.",
        }
    }
}

/// The `kid` of a token's header (`None` for tokens minted before keys had ids), after the
/// cheap shape checks. The header's `alg` is never used to choose how to verify.
pub fn token_kid(token: &str) -> Result<Option<String>, TokenDefect> {
    if token.len() > MAX_TOKEN_BYTES || token.split('.').count() != 3 {
        return Err(TokenDefect::Malformed);
    }
    jsonwebtoken::decode_header(token)
        .map(|header| header.kid)
        .map_err(|_| TokenDefect::Malformed)
}

/// One key that signs (or once signed) session tokens: an HS256 secret or an Ed25519 key pair.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    /// The Ed25519 public key (base64url), published in the JWKS; `None` for HMAC secrets.
    pub public_x: Option<String>,
    pub created_at: UnixTime,
    /// When the key starts signing.
    pub activates_at: UnixTime,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// An HS256 key; the secret is used as literal bytes, as DreamFactory does with `JWT_SECRET`.
    pub fn hs256(
        kid: &str,
        secret: &[u8],
        created_at: UnixTime,
        activates_at: UnixTime,
    ) -> Result<Self, String> {
        let unusable = |e: jsonwebtoken::errors::Error| format!("unusable HMAC secret: {e}");
        Ok(Self::new(
            kid,
            Algorithm::HS256,
            None,
            EncodingKey::from_secret(secret).map_err(unusable)?,
            DecodingKey::from_secret(secret).map_err(unusable)?,
            created_at,
            activates_at,
        ))
    }

    /// An Ed25519 key from its PKCS#8 (DER) private key.
    pub fn ed25519(
        kid: &str,
        pkcs8: &[u8],
        created_at: UnixTime,
        activates_at: UnixTime,
    ) -> Result<Self, String> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let pair = ed25519_dalek::SigningKey::from_pkcs8_der(pkcs8)
            .map_err(|e| format!("not an Ed25519 PKCS#8 private key: {e}"))?;
        let x = URL_SAFE_NO_PAD.encode(pair.verifying_key().as_bytes());
        let decoding = DecodingKey::from_ed_components(&x)
            .map_err(|e| format!("unusable Ed25519 public key: {e}"))?;
        Ok(Self::new(
            kid,
            Algorithm::EdDSA,
            Some(x),
            EncodingKey::from_ed_der(pkcs8),
            decoding,
            created_at,
            activates_at,
        ))
    }

    fn new(
        kid: &str,
        algorithm: Algorithm,
        public_x: Option<String>,
        encoding: EncodingKey,
        decoding: DecodingKey,
        created_at: UnixTime,
        activates_at: UnixTime,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        // Only this key's algorithm is accepted: `alg: none`, or HS256 "signed" with an
        // Ed25519 public key as its secret, fails before the signature is even checked.
        validation.algorithms = vec![algorithm];
        // Time-based checks are ours (with the service's clock, and refresh must see expired
        // tokens); the library only checks the signature, the shape and the issuer.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        validation.set_issuer(&[ISSUER]);
        Self {
            kid: kid.to_owned(),
            algorithm,
            public_x,
            created_at,
            activates_at,
            encoding,
            decoding,
            validation,
        }
    }

    /// Signs `claims` with a header naming this key. Deterministic for both algorithms.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Checks the signature, the claims' shape, and that the token is not from the future
    /// (with `leeway` seconds for clock skew). Expiry is left to the caller.
    pub fn verify(&self, token: &str, now: UnixTime, leeway: i64) -> Result<Claims, TokenDefect> {
        if token.len() > MAX_TOKEN_BYTES || token.split('.').count() != 3 {
            return Err(TokenDefect::Malformed);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    TokenDefect::BadSignature
                }
                ErrorKind::Json(_)
                | ErrorKind::InvalidIssuer
                | ErrorKind::MissingRequiredClaim(_) => TokenDefect::BadClaims,
                _ => TokenDefect::Malformed,
            })?
            .claims;
        if claims.sub != claims.user_id.to_string() || claims.exp < claims.iat {
            return Err(TokenDefect::BadClaims);
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(TokenDefect::IssuedInFuture);
        }
        if claims.nbf > now.saturating_add(leeway) {
            return Err(TokenDefect::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn session() -> Session {
        Session {
            id: Uuid::new_v4(),
            user_id: 7,
            forever: true,
            gen: 3,
            rotated_at: 1_700_000_000,
            created_at: 1_699_000_000,
            last_seen_at: 1_700_000_000,
            refresh_until: None,
            device: None,
            user_agent: None,
            ip: None,
            revoked_at: None,
            revoke_reason: None,
            refresh_mode: None,
            app_id: None,
            role_id: None,
            role_name: None,
        }
    }

    #[test]
    fn the_same_rotation_always_gives_the_same_token() {
        let keys = SigningKey::hs256("k1", SECRET, 0, 0).unwrap();
        let s = session();
        let a = keys.sign(&Claims::for_session(&s, 60)).unwrap();
        let b = keys.sign(&Claims::for_session(&s, 60)).unwrap();
        assert_eq!(a, b);
        let claims = keys.verify(&a, s.rotated_at, 0).unwrap();
        assert_eq!(claims.exp - claims.iat, 60);
        assert_eq!(claims.sub, "7");
        assert!(claims.forever);
        assert_eq!(claims.role, None);
        assert!(!claims_json(&a).contains("\"role\""), "no role, no claim");
    }

    fn claims_json(token: &str) -> String {
        let payload = token.split('.').nth(1).unwrap();
        String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn a_sessions_role_is_a_claim_and_stays_deterministic() {
        let keys = SigningKey::hs256("k1", SECRET, 0, 0).unwrap();
        let mut s = session();
        s.role_id = Some(3);
        s.role_name = Some("app-users".into());
        let a = keys.sign(&Claims::for_session(&s, 60)).unwrap();
        assert_eq!(a, keys.sign(&Claims::for_session(&s, 60)).unwrap());
        assert!(claims_json(&a).contains("\"role\":\"app-users\""));
        let claims = keys.verify(&a, s.rotated_at, 0).unwrap();
        assert_eq!(claims.role.as_deref(), Some("app-users"));
    }

    #[test]
    fn alg_none_other_algorithms_and_tampering_are_rejected() {
        let keys = SigningKey::hs256("k1", SECRET, 0, 0).unwrap();
        let s = session();
        let token = keys.sign(&Claims::for_session(&s, 60)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let forged = format!("{none_header}.{}.", parts[1]);
        assert!(keys.verify(&forged, s.rotated_at, 0).is_err());

        let hs512 = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
        let forged = format!("{hs512}.{}.{}", parts[1], parts[2]);
        assert!(keys.verify(&forged, s.rotated_at, 0).is_err());

        let mut claims = Claims::for_session(&s, 60);
        claims.user_id = 1;
        claims.sub = "1".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(
            keys.verify(&tampered, s.rotated_at, 0),
            Err(TokenDefect::BadSignature)
        );

        let other = SigningKey::hs256("k1", b"another-secret-another-secret-!!", 0, 0).unwrap();
        assert_eq!(
            other.verify(&token, s.rotated_at, 0),
            Err(TokenDefect::BadSignature)
        );
        assert_eq!(keys.verify("garbage", 0, 0), Err(TokenDefect::Malformed));
        assert_eq!(keys.verify("a.b.c", 0, 0), Err(TokenDefect::Malformed));
    }

    #[test]
    fn tokens_from_the_future_are_rejected_beyond_the_leeway() {
        let keys = SigningKey::hs256("k1", SECRET, 0, 0).unwrap();
        let s = session();
        let token = keys.sign(&Claims::for_session(&s, 60)).unwrap();
        assert_eq!(
            keys.verify(&token, s.rotated_at - 10, 5),
            Err(TokenDefect::IssuedInFuture)
        );
        assert!(keys.verify(&token, s.rotated_at - 3, 5).is_ok());
    }
}
