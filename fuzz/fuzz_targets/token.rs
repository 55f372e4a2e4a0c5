//! Token parsing and verification never panic, and nothing but a genuine token verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure::session::token::{token_kid, SigningKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = token_kid(text);
    let Ok(key) = SigningKey::hs256("fuzz", b"fuzzing-secret-fuzzing-secret-32", 0, 0) else {
        panic!("a 32-byte HMAC secret is a usable key");
    };
    // Random input must never verify: that would take the HMAC of a secret it does not know.
    assert!(key.verify(text, 1_700_000_000, 5).is_err());
});
