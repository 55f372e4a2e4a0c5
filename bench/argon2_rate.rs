//! Baseline: the raw Argon2id verify rate at tenure's parameters (m=19456 KiB, t=2, p=1) on
//! every core, with nothing else in the way. `cargo run --release --example argon2_rate -- 10`
//! prints `verifies_per_second=<n>` after the given number of seconds.

#![allow(clippy::expect_used)] // a benchmark: a failure should stop it loudly

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};

fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let phc = argon2()
        .hash_password_with_salt(b"correct horse battery staple", b"benchmark-salt-16")
        .expect("hash")
        .to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, count, phc) = (stop.clone(), count.clone(), phc.clone());
            std::thread::spawn(move || {
                let parsed = PasswordHash::new(&phc).expect("PHC string");
                while !stop.load(Ordering::Relaxed) {
                    let ok = argon2()
                        .verify_password(b"correct horse battery staple", &parsed)
                        .is_ok();
                    assert!(ok, "the verify failed");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("a worker panicked");
    }
    let rate = count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("threads={threads} verifies_per_second={rate:.1}");
}
