//! Each format made here with the crates the systems that wrote them use (bcrypt, PBKDF2 and
//! Argon2 as Django and Laravel compute them), never pasted.

use base64::Engine;

use super::*;

const PASSWORD: &[u8] = "correct horse ✓".as_bytes();

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A bcrypt hash with the `$2y$` (PHP), `$2a$` or `$2b$` prefix.
fn bcrypt_hash(password: &[u8], cost: u32, version: bcrypt::Version) -> String {
    bcrypt::hash_with_result(password, cost)
        .unwrap()
        .format_for_version(version)
}

/// Django's `pbkdf2_sha256$…` / `pbkdf2_sha1$…`.
fn django_pbkdf2(password: &[u8], prf: Prf, iterations: u32, salt: &str) -> String {
    match prf {
        Prf::Sha256 => {
            let out = pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(
                password,
                salt.as_bytes(),
                iterations,
            );
            format!("pbkdf2_sha256${iterations}${salt}${}", b64(&out))
        }
        Prf::Sha1 => {
            let out =
                pbkdf2::pbkdf2_hmac_array::<sha1::Sha1, 20>(password, salt.as_bytes(), iterations);
            format!("pbkdf2_sha1${iterations}${salt}${}", b64(&out))
        }
    }
}

/// Django's `argon2$argon2id$…`: "argon2" and the PHC string argon2-cffi writes.
fn django_argon2(password: &[u8], m: u32, t: u32, p: u32) -> String {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(m, t, p, None).unwrap();
    let phc = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_with_salt(password, b"DjangoSaltOf22Chars012")
        .unwrap()
        .to_string();
    format!("argon2{phc}")
}

/// Django's `bcrypt_sha256$$2b$…`: bcrypt over the hex SHA-256 of the password.
fn django_bcrypt_sha256(password: &[u8], cost: u32) -> String {
    let hex = hex(&sha2::Sha256::digest(password));
    format!(
        "bcrypt_sha256${}",
        bcrypt_hash(hex.as_bytes(), cost, bcrypt::Version::TwoB)
    )
}

fn verifies(stored: &str, password: &[u8]) -> bool {
    let scheme = parse(stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
    match scheme {
        Scheme::Argon2 { phc } => {
            use argon2::password_hash::PasswordVerifier;
            let parsed = PasswordHash::new(phc).unwrap();
            argon2::Argon2::default()
                .verify_password(password, &parsed)
                .is_ok()
        }
        other => verify_other(&other, password),
    }
}

#[test]
fn every_supported_format_verifies_its_password_and_no_other() {
    let hashes = [
        bcrypt_hash(PASSWORD, 4, bcrypt::Version::TwoY),
        bcrypt_hash(PASSWORD, 5, bcrypt::Version::TwoA),
        bcrypt_hash(PASSWORD, 4, bcrypt::Version::TwoB),
        format!("bcrypt${}", bcrypt_hash(PASSWORD, 4, bcrypt::Version::TwoB)),
        django_bcrypt_sha256(PASSWORD, 4),
        django_pbkdf2(PASSWORD, Prf::Sha256, 1_000, "aSaltFromDjango"),
        django_pbkdf2(PASSWORD, Prf::Sha1, 1_000, "anotherSalt"),
        django_argon2(PASSWORD, 1_024, 2, 2),
    ];
    for stored in &hashes {
        assert!(verifies(stored, PASSWORD), "{stored}");
        assert!(!verifies(stored, b"correct horse"), "{stored}");
        assert!(!verifies(stored, b""), "{stored}");
    }
}

#[test]
fn bcrypt_sha256_is_not_plain_bcrypt() {
    // The same bcrypt string under the two Django prefixes means two different passwords.
    let inner = bcrypt_hash(PASSWORD, 4, bcrypt::Version::TwoB);
    assert!(verifies(&format!("bcrypt${inner}"), PASSWORD));
    assert!(!verifies(&format!("bcrypt_sha256${inner}"), PASSWORD));
    // Passwords past bcrypt's 72 bytes still count under bcrypt_sha256.
    let long = [b'x'; 100];
    let mut other = long;
    other[99] = b'y';
    let stored = django_bcrypt_sha256(&long, 4);
    assert!(verifies(&stored, &long));
    assert!(!verifies(&stored, &other));
}

#[test]
fn work_factors_over_the_caps_are_refused_without_hashing() {
    let at_cap = bcrypt_hash(PASSWORD, MAX_BCRYPT_COST, bcrypt::Version::TwoY);
    assert!(parse(&at_cap).is_ok());
    // A crafted cost: the real string of a cost-4 hash with the cost field rewritten.
    let cheap = bcrypt_hash(PASSWORD, 4, bcrypt::Version::TwoY);
    for cost in ["13", "31", "03"] {
        let crafted = format!("$2y${cost}{}", &cheap[6..]);
        let err = parse(&crafted).unwrap_err();
        assert!(err.0.contains("bcrypt cost"), "{crafted}: {err}");
    }
    let many = format!(
        "pbkdf2_sha256${}$salt${}",
        MAX_PBKDF2_ITERATIONS + 1,
        b64(&[0; 32])
    );
    assert!(parse(&many).unwrap_err().0.contains("over the cap"));
    let at_cap = format!(
        "pbkdf2_sha256${MAX_PBKDF2_ITERATIONS}$salt${}",
        b64(&[0; 32])
    );
    assert!(parse(&at_cap).is_ok());
    // Argon2: memory, memory × passes, lanes (strings only: nothing is hashed).
    for params in [
        format!("m={},t=1,p=1", MAX_ARGON2_MEMORY_KIB + 8),
        "m=262144,t=5,p=1".to_owned(),
        "m=65536,t=2,p=64".to_owned(),
    ] {
        let stored = format!("$argon2id$v=19${params}$c29tZXNhbHRzb21lc2FsdA$6yb5gC2Fw5CKy0vN7a7ox3LqWN0cTSQb9aWnL8Zlq0Y");
        assert!(
            parse(&stored).unwrap_err().0.contains("over the cap"),
            "{stored}"
        );
        assert!(parse(&format!("argon2{stored}")).is_err());
    }
    // Django's default parameters are inside the caps.
    assert!(parse("argon2$argon2id$v=19$m=102400,t=2,p=8$c29tZXNhbHRzb21lc2FsdA$6yb5gC2Fw5CKy0vN7a7ox3LqWN0cTSQb9aWnL8Zlq0Y").is_ok());
}

#[test]
fn unknown_malformed_and_unusable_hashes_say_why() {
    let cheap = bcrypt_hash(PASSWORD, 4, bcrypt::Version::TwoB);
    for (stored, reason) in [
        ("", "no password hash"),
        (
            "!Qx8Rv2mK9oNs0dPfLw1EyZtU3cJbA5hG7iT4kXa",
            "unusable password (Django)",
        ),
        (
            "!unusable:no password in the export",
            "no password in the export",
        ),
        ("md5$salt$0123456789abcdef", "unsupported hash scheme (md5)"),
        ("sha1$salt$0123", "unsupported hash scheme (sha1)"),
        (
            "scrypt$16384$salt$8$1$abc",
            "unsupported hash scheme (scrypt)",
        ),
        ("5f4dcc3b5aa765d61d8327deb882cf99", "unknown hash format"),
        ("plain text password", "unknown hash format"),
        (
            "$2x$10$abcdefghijklmnopqrstuu5Hqn7lqbI2Q3Q6ZzVqTgT3ZpT9xTQ8e",
            "bcrypt variant",
        ),
        ("$2y$10$short", "malformed bcrypt"),
        ("pbkdf2_sha256$abc$salt$AAAA", "malformed pbkdf2"),
        ("pbkdf2_sha256$1000$salt$AAAA", "malformed pbkdf2"),
        (
            "pbkdf2_sha256$0$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "malformed pbkdf2",
        ),
        ("pbkdf2_sha256$1000$salt", "malformed pbkdf2"),
        ("argon2$$argon2id$junk", "malformed Django argon2"),
        (
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ",
            "malformed argon2",
        ),
    ] {
        let err = parse(stored).unwrap_err();
        assert!(
            err.0.contains(reason),
            "{stored:?}: {err} (expected {reason:?})"
        );
    }
    // The bcrypt hash itself never appears in a reason.
    let crafted = format!("$2b$31{}", &cheap[6..]);
    assert!(!parse(&crafted).unwrap_err().0.contains(&cheap[7..]));
    // A marker reads back as its reason, so an export re-imports it unchanged.
    assert_eq!(
        parse(&unusable("bcrypt cost 31 is outside 4..=12"))
            .unwrap_err()
            .0,
        "bcrypt cost 31 is outside 4..=12"
    );
}

#[test]
fn pbkdf2_compares_the_whole_key() {
    let stored = django_pbkdf2(PASSWORD, Prf::Sha256, 10, "salt");
    let Scheme::Pbkdf2 { expected, .. } = parse(&stored).unwrap() else {
        panic!("pbkdf2");
    };
    // One bit flipped in the last byte of the expected key: refused.
    let mut flipped = expected.clone();
    flipped[31] ^= 1;
    let tampered = format!("pbkdf2_sha256$10$salt${}", b64(&flipped));
    assert!(!verifies(&tampered, PASSWORD));
    assert!(verifies(&stored, PASSWORD));
}
