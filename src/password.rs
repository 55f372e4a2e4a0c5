//! Argon2id password hashing on a bounded blocking pool.
//!
//! Hashing and verifying cost ~19 MiB and tens of milliseconds each, so they run on
//! `spawn_blocking` behind a semaphore sized to the cores: a login flood queues here instead of
//! stalling the async workers that serve refreshes.

use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Argon2id parameters from the OWASP recommendation: m=19456 KiB, t=2, p=1.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// A hash of a random password with the same parameters, verified when the user does not exist
/// so that an unknown user costs the same time as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$6yb5gC2Fw5CKy0vN7a7ox3LqWN0cTSQb9aWnL8Zlq0Y";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password worker pool stopped")]
    PoolClosed,
}

/// Hashes and verifies passwords off the async workers, at most `permits` at a time.
#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
}

impl PasswordHasherPool {
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }

    /// One permit per core: more parallel hashes than cores only adds memory and latency.
    pub fn sized_to_cores() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| PasswordError::Hash(e.to_string()))
        })
        .await?
    }

    /// Verifies `password` against `phc`, or against the dummy hash when `phc` is `None`
    /// (the caller then treats the answer as a failure whatever it is).
    pub async fn verify(
        &self,
        password: SecretString,
        phc: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = phc.is_some();
        let matched = self
            .run(move || {
                let phc = phc.as_deref().unwrap_or(DUMMY_HASH);
                let Ok(parsed) = PasswordHash::new(phc) else {
                    return false;
                };
                argon2()
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok()
            })
            .await?;
        Ok(known && matched)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        // Queue depth: hashes waiting for a core.
        let queue = metrics::gauge!("tenure_password_hash_queue");
        queue.increment(1.0);
        let permit = self.permits.acquire().await;
        queue.decrement(1.0);
        let _permit = permit.map_err(|_| PasswordError::PoolClosed)?;
        let started = std::time::Instant::now();
        let span = tracing::Span::current();
        let result = tokio::task::spawn_blocking(move || span.in_scope(work))
            .instrument(tracing::Span::current())
            .await
            .map_err(|_| PasswordError::PoolClosed);
        metrics::histogram!("tenure_password_hash_seconds").record(started.elapsed().as_secs_f64());
        result
    }
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants known to be valid.
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verifies_and_uses_the_configured_parameters() {
        let pool = PasswordHasherPool::new(1);
        let phc = pool
            .hash(SecretString::from("correct horse"))
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(pool
            .verify(SecretString::from("correct horse"), Some(phc.clone()))
            .await
            .unwrap());
        assert!(!pool
            .verify(SecretString::from("wrong"), Some(phc))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn unknown_user_never_matches_and_the_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        let pool = PasswordHasherPool::new(1);
        assert!(!pool.verify(SecretString::from("x"), None).await.unwrap());
    }
}
