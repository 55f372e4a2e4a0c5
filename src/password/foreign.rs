//! Stored password hashes in every format a login verifies: tenure's Argon2id, and what
//! DreamFactory (Laravel) and Django wrote, so imported users log in with the passwords they
//! have. Reading a hash ([`parse`]) does no hashing work; it is what the import calls, and the
//! hashing threads call it again before verifying (`../password.rs`).
//!
//! | stored as | written by | verified as |
//! |---|---|---|
//! | `$argon2id$v=19$…` (also `argon2i`, `argon2d`) | tenure, any PHC Argon2 | Argon2 |
//! | `$2y$`, `$2a$`, `$2b$` + cost + salt + hash | DreamFactory / Laravel, PHP `password_hash` | bcrypt (`bcrypt` crate) |
//! | `pbkdf2_sha256$<iterations>$<salt>$<base64>` | Django (its default) | PBKDF2-HMAC-SHA256 (`pbkdf2` crate) |
//! | `pbkdf2_sha1$<iterations>$<salt>$<base64>` | Django | PBKDF2-HMAC-SHA1 |
//! | `argon2$argon2id$v=19$…` | Django's `Argon2PasswordHasher` | Argon2 (the PHC string after `argon2`) |
//! | `bcrypt_sha256$$2b$…` | Django's `BCryptSHA256PasswordHasher` | bcrypt of the hex SHA-256 of the password |
//! | `bcrypt$$2b$…` | Django's `BCryptPasswordHasher` | bcrypt |
//!
//! Every comparison is constant-time (bcrypt's and Argon2's outputs compare with `subtle`
//! inside their crates; PBKDF2's here). A work factor over the caps below is refused, never
//! verified, so a crafted `$2y$31$` row cannot hold a hashing thread for days.
//!
//! A hash that no login can verify (an unknown scheme, a malformed string, a work factor over a
//! cap, Django's unusable `!…` passwords, a row exported without hashes) is stored as the
//! marker `!unusable:<reason>`: it never verifies (a login with it costs the unknown user's
//! dummy hash and fails), and the reason says why.

use argon2::password_hash::phc::PasswordHash;
use argon2::Params;
use base64::Engine;
use sha2::Digest;
use subtle::ConstantTimeEq;

/// bcrypt costs above this are refused. Cost 12 is 2^12 rounds, about a quarter of a second on
/// one core; each step doubles it (cost 31: weeks). Laravel and DreamFactory write 10, Django's
/// bcrypt hashers 12.
pub const MAX_BCRYPT_COST: u32 = 12;

/// PBKDF2 iterations above this are refused. Django 5.2 writes 1 000 000 for `pbkdf2_sha256`
/// and 6.0 writes 1 200 000; two million is their cost with room (0.35 s for OpenSSL on one core
/// of the CI machine).
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;

/// Argon2 memory above this (KiB, 256 MiB) is refused: each hashing thread would hold it.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 262_144;

/// Argon2 memory times passes (KiB) above this is refused: 256 MiB over 4 passes, or Django's
/// default 100 MiB over 10.
pub const MAX_ARGON2_WORK: u64 = 1_048_576;

/// Argon2 lanes above this are refused (the lanes run one after another here).
pub const MAX_ARGON2_LANES: u32 = 16;

/// What a hash that no login can verify is stored as: this prefix and the reason.
pub const UNUSABLE_PREFIX: &str = "!unusable:";

/// A stored hash, read: what to run to verify a password against it.
#[derive(Debug, PartialEq, Eq)]
pub enum Scheme<'a> {
    /// A PHC Argon2 string (tenure's own, any other, or Django's after its `argon2` prefix).
    Argon2 { phc: &'a str },
    /// A bcrypt string (`$2a$`/`$2b$`/`$2y$`); with `sha256_hex`, of the hex SHA-256 of the
    /// password (Django's `bcrypt_sha256`).
    Bcrypt { hash: &'a str, sha256_hex: bool },
    /// Django's PBKDF2: HMAC with `prf`, over the salt's UTF-8 bytes.
    Pbkdf2 {
        prf: Prf,
        iterations: u32,
        salt: &'a str,
        expected: Vec<u8>,
    },
}

/// The PBKDF2 pseudo-random function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prf {
    Sha256,
    Sha1,
}

/// Why a stored hash can never verify (it becomes `!unusable:<reason>` at import).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unverifiable(pub String);

fn refuse(reason: impl Into<String>) -> Unverifiable {
    Unverifiable(reason.into())
}

/// The marker stored for a hash no login can verify.
pub fn unusable(reason: &str) -> String {
    format!("{UNUSABLE_PREFIX}{reason}")
}

/// Reads `stored` without doing any hashing work: the scheme to verify with, or why no
/// password can ever match it.
pub fn parse(stored: &str) -> Result<Scheme<'_>, Unverifiable> {
    if let Some(reason) = stored.strip_prefix(UNUSABLE_PREFIX) {
        return Err(refuse(reason));
    }
    if stored.starts_with('!') {
        // Django's set_unusable_password(): "!" and random characters.
        return Err(refuse("an unusable password (Django)"));
    }
    if stored.starts_with("$argon2") {
        return argon2(stored);
    }
    if let Some(rest) = stored.strip_prefix("argon2$") {
        // Django writes "argon2" followed by the PHC string, which starts with "$argon2…".
        return argon2(&stored["argon2".len()..]).map_err(|e| {
            if rest.starts_with("argon2") {
                e
            } else {
                refuse("a malformed Django argon2 hash")
            }
        });
    }
    if stored.starts_with("$2") {
        return bcrypt(stored, false);
    }
    if let Some(rest) = stored.strip_prefix("bcrypt_sha256$") {
        return bcrypt(rest, true);
    }
    if let Some(rest) = stored.strip_prefix("bcrypt$") {
        return bcrypt(rest, false);
    }
    if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        return pbkdf2(rest, Prf::Sha256);
    }
    if let Some(rest) = stored.strip_prefix("pbkdf2_sha1$") {
        return pbkdf2(rest, Prf::Sha1);
    }
    if stored.is_empty() {
        return Err(refuse("no password hash"));
    }
    // Name Django's other hashers (unsalted or weak, or scrypt), never any of the hash itself.
    match stored.split_once('$') {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme.len() <= 32
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Err(refuse(format!("an unsupported hash scheme ({scheme})")))
        }
        _ => Err(refuse("an unknown hash format")),
    }
}

fn argon2(phc: &str) -> Result<Scheme<'_>, Unverifiable> {
    let malformed = || refuse("a malformed argon2 hash");
    let hash = PasswordHash::new(phc).map_err(|_| malformed())?;
    let params = Params::try_from(&hash).map_err(|_| malformed())?;
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(malformed());
    }
    let (memory, passes, lanes) = (params.m_cost(), params.t_cost(), params.p_cost());
    if memory > MAX_ARGON2_MEMORY_KIB {
        return Err(refuse(format!(
            "argon2 memory {memory} KiB is over the cap of {MAX_ARGON2_MEMORY_KIB}"
        )));
    }
    if u64::from(memory) * u64::from(passes) > MAX_ARGON2_WORK {
        return Err(refuse(format!(
            "argon2 memory {memory} KiB times {passes} passes is over the cap of \
             {MAX_ARGON2_WORK}"
        )));
    }
    if lanes > MAX_ARGON2_LANES {
        return Err(refuse(format!(
            "argon2 parallelism {lanes} is over the cap of {MAX_ARGON2_LANES}"
        )));
    }
    Ok(Scheme::Argon2 { phc })
}

fn bcrypt(hash: &str, sha256_hex: bool) -> Result<Scheme<'_>, Unverifiable> {
    // $2x$ is PHP's marker for hashes made by the old, broken implementation: not verified.
    if !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        return Err(refuse("an unsupported bcrypt variant"));
    }
    let parts = hash
        .parse::<bcrypt::HashParts>()
        .map_err(|_| refuse("a malformed bcrypt hash"))?;
    let cost = parts.get_cost();
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(refuse(format!(
            "bcrypt cost {cost} is outside 4..={MAX_BCRYPT_COST}"
        )));
    }
    Ok(Scheme::Bcrypt { hash, sha256_hex })
}

fn pbkdf2(rest: &str, prf: Prf) -> Result<Scheme<'_>, Unverifiable> {
    let malformed = || refuse("a malformed pbkdf2 hash");
    let mut fields = rest.split('$');
    let (Some(iterations), Some(salt), Some(encoded), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed());
    };
    let iterations: u32 = iterations.parse().map_err(|_| malformed())?;
    if iterations == 0 {
        return Err(malformed());
    }
    if iterations > MAX_PBKDF2_ITERATIONS {
        return Err(refuse(format!(
            "pbkdf2 iterations {iterations} are over the cap of {MAX_PBKDF2_ITERATIONS}"
        )));
    }
    let expected = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| malformed())?;
    // Django's key length is the digest's.
    let length = match prf {
        Prf::Sha256 => 32,
        Prf::Sha1 => 20,
    };
    if salt.is_empty() || expected.len() != length {
        return Err(malformed());
    }
    Ok(Scheme::Pbkdf2 {
        prf,
        iterations,
        salt,
        expected,
    })
}

/// Verifies `password` against a bcrypt or PBKDF2 scheme (Argon2 is verified by the hashing
/// thread, which keeps its memory); `false` for Argon2.
pub fn verify_other(scheme: &Scheme<'_>, password: &[u8]) -> bool {
    match scheme {
        Scheme::Argon2 { .. } => false,
        Scheme::Bcrypt {
            hash,
            sha256_hex: false,
        } => bcrypt::verify(password, hash).unwrap_or(false),
        Scheme::Bcrypt {
            hash,
            sha256_hex: true,
        } => bcrypt::verify(hex(&sha2::Sha256::digest(password)), hash).unwrap_or(false),
        Scheme::Pbkdf2 {
            prf,
            iterations,
            salt,
            expected,
        } => {
            let mut computed = vec![0u8; expected.len()];
            match prf {
                Prf::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                    password,
                    salt.as_bytes(),
                    *iterations,
                    &mut computed,
                ),
                Prf::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
                    password,
                    salt.as_bytes(),
                    *iterations,
                    &mut computed,
                ),
            }
            computed.ct_eq(expected).into()
        }
    }
}

/// Lower-case hex, as Python's `hexlify` writes it.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "foreign_tests.rs"]
mod tests;
