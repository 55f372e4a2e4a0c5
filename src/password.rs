//! Argon2id password hashing on a small pool of dedicated, low-priority threads.
//!
//! Hashing and verifying cost ~19 MiB and tens of milliseconds each. They run on one thread
//! per core, never on the async workers, so a login flood queues here instead of stalling the
//! workers that serve refreshes. Three choices keep that cheap (see BENCHMARKS.md):
//!
//! - each thread owns its Argon2 memory and reuses it for every hash, so the server's memory is
//!   one 19 MiB block per core, not one per thread the allocator ever handed a hash to;
//! - the threads run at a lower scheduling priority (nice 10), so when the cores are busy a
//!   session check is not queued behind a password hash; with nothing else to do, hashing
//!   still gets the whole machine;
//! - while requests other than logins are being served (session checks, refreshes), one core is
//!   kept free of hashing: the last thread (the spare) takes a hash only after
//!   [`SPARE_QUIET`] without such a request. Even at the lowest priority, a busy loop on every
//!   core multiplies a check's p99 by five to ten on a two-core machine, and one core left free
//!   of it keeps the p99 of checks under a login flood within a few milliseconds
//!   (BENCHMARKS.md). Logins alone still get every core; on a one-core machine the one thread
//!   always hashes;
//! - a hash whose caller gave up (a client that hung up, a request that timed out) is skipped,
//!   not computed for nobody.
//!
//! Logins also verify the hashes of imported users (bcrypt, Django's PBKDF2, Argon2 and
//! bcrypt-SHA256; `password/foreign.rs`), on the same threads, and replace them with tenure's
//! Argon2id once they matched ([`PasswordHasherPool::verify_for_login`]).

mod foreign;

pub use foreign::{
    parse as inspect, unusable, Unverifiable, MAX_ARGON2_LANES, MAX_ARGON2_MEMORY_KIB,
    MAX_ARGON2_WORK, MAX_BCRYPT_COST, MAX_PBKDF2_ITERATIONS, UNUSABLE_PREFIX,
};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

/// Argon2id parameters from the OWASP recommendation: m=19456 KiB, t=2, p=1.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// The hashing threads' niceness: below the async workers (0), above nothing that matters.
/// Nice 10 weighs a tenth of nice 0 on Linux's scheduler: hashes yield to request handling
/// when both want a core, and are never starved outright.
const HASHER_NICENESS_PRIORITY: u8 = 22; // thread-priority's 0..=99 scale; 22 maps to nice 10

/// How long after the last request other than a login the spare hashing thread stays off the
/// cores.
const SPARE_QUIET: Duration = Duration::from_millis(100);
/// How often an idle spare thread looks again whether requests came (a hash it has taken is
/// run even if one arrives meanwhile).
const SPARE_POLL: Duration = Duration::from_millis(20);

/// A hash of a random password with the same parameters, verified when the user does not exist
/// so that an unknown user costs the same time as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$6yb5gC2Fw5CKy0vN7a7ox3LqWN0cTSQb9aWnL8Zlq0Y";

/// How every hash tenure writes now begins: a stored hash that does not is replaced at the
/// user's next successful login.
const CURRENT_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

/// Whether `stored` is not in tenure's current form (an imported hash, or Argon2 with other
/// parameters): a login that verified it writes a fresh hash in its place.
pub fn needs_upgrade(stored: &str) -> bool {
    !stored.starts_with(CURRENT_PREFIX)
}

/// What a login's verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub matched: bool,
    /// When the password matched a hash that [`needs_upgrade`]: tenure's hash of it, to store
    /// in its place.
    pub upgraded: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password worker pool stopped")]
    PoolClosed,
}

/// A job for a hashing thread: it gets the thread's reusable Argon2 memory.
type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

/// Hashes and verifies passwords on `threads` dedicated threads. Cloning shares the threads;
/// they stop when the last clone is dropped.
#[derive(Clone)]
pub struct PasswordHasherPool {
    jobs: flume::Sender<Job>,
    requests: Arc<RequestClock>,
}

impl PasswordHasherPool {
    pub fn new(threads: usize) -> Self {
        let (jobs, queue) = flume::unbounded::<Job>();
        let requests = Arc::new(RequestClock::new());
        let threads = threads.max(1);
        for i in 0..threads {
            let queue = queue.clone();
            // The spare can hand a job back (weakly: it must not keep the pool alive).
            let spare =
                (threads > 1 && i == threads - 1).then(|| (requests.clone(), jobs.downgrade()));
            let spawned = std::thread::Builder::new()
                .name(format!("tenure-argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    let mut scratch = Scratch::default();
                    match spare {
                        None => {
                            while let Ok(job) = queue.recv() {
                                job(&mut scratch);
                            }
                        }
                        Some((requests, back)) => run_spare(&queue, &back, &requests, &mut scratch),
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "could not start a password hashing thread");
            }
        }
        Self { jobs, requests }
    }

    /// Says that a request other than a login is being served: the spare hashing thread keeps
    /// off the cores until [`SPARE_QUIET`] passes without another.
    pub fn note_request(&self) {
        self.requests.note();
    }

    /// One thread per core: more parallel hashes than cores only adds memory and latency.
    pub fn sized_to_cores() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        self.run(move |scratch| scratch.hash(password.expose_secret().as_bytes()))
            .await?
    }

    /// Verifies `password` against the stored hash `phc` (any format [`inspect`] reads), or
    /// against the dummy hash when `phc` is `None` (the caller then treats the answer as a
    /// failure whatever it is). A hash no login can verify costs the dummy hash too.
    pub async fn verify(
        &self,
        password: SecretString,
        phc: Option<String>,
    ) -> Result<bool, PasswordError> {
        Ok(self.check(password, phc, false).await?.matched)
    }

    /// [`verify`](Self::verify), and when the password matched a hash that [`needs_upgrade`],
    /// also tenure's hash of it, made on the same thread in the same job.
    pub async fn verify_for_login(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verified, PasswordError> {
        self.check(password, stored, true).await
    }

    async fn check(
        &self,
        password: SecretString,
        stored: Option<String>,
        upgrade: bool,
    ) -> Result<Verified, PasswordError> {
        let known = stored.is_some();
        let verified = self
            .run(move |scratch| {
                let password = password.expose_secret().as_bytes();
                let Some(stored) = stored else {
                    scratch.verify(password, DUMMY_HASH);
                    return Ok(Verified {
                        matched: false,
                        upgraded: None,
                    });
                };
                let matched = scratch.verify_stored(password, &stored);
                let upgraded = if matched && upgrade && needs_upgrade(&stored) {
                    Some(scratch.hash(password)?)
                } else {
                    None
                };
                Ok(Verified { matched, upgraded })
            })
            .await??;
        Ok(Verified {
            matched: known && verified.matched,
            ..verified
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        // Queue depth: hashes waiting for a thread.
        let queue = metrics::gauge!("tenure_password_hash_queue");
        queue.increment(1.0);
        let (answer, answered) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |scratch| {
            queue.decrement(1.0);
            if answer.is_closed() {
                return; // the caller is gone: no work for nobody
            }
            let started = Instant::now();
            let result = span.in_scope(|| work(scratch));
            metrics::histogram!("tenure_password_hash_seconds")
                .record(started.elapsed().as_secs_f64());
            let _ = answer.send(result);
        });
        if self.jobs.send(job).is_err() {
            metrics::gauge!("tenure_password_hash_queue").decrement(1.0);
            return Err(PasswordError::PoolClosed);
        }
        answered.await.map_err(|_| PasswordError::PoolClosed)
    }
}

/// The spare thread: hashes only while no request other than a login has come for
/// [`SPARE_QUIET`].
fn run_spare(
    queue: &flume::Receiver<Job>,
    back: &flume::WeakSender<Job>,
    requests: &RequestClock,
    scratch: &mut Scratch,
) {
    loop {
        let busy = requests.busy_for(SPARE_QUIET);
        if !busy.is_zero() {
            std::thread::sleep(busy);
            continue;
        }
        match queue.recv_timeout(SPARE_POLL) {
            // A request came while this thread waited for the job: hand it back to the other
            // threads and keep off.
            Ok(job) if !requests.busy_for(SPARE_QUIET).is_zero() => {
                match back.upgrade().map(|sender| sender.send(job)) {
                    Some(Ok(())) => {}
                    Some(Err(flume::SendError(job))) => job(scratch),
                    // The pool is gone: nobody waits for this job.
                    None => {}
                }
            }
            Ok(job) => job(scratch),
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// When a request other than a login last came, in milliseconds since the pool started.
struct RequestClock {
    started: Instant,
    /// Milliseconds since `started`, plus one; zero means never.
    last: AtomicU64,
}

impl RequestClock {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn note(&self) {
        self.last
            .store(self.now_ms().saturating_add(1), Ordering::Relaxed);
    }

    /// How much longer the last request keeps the spare thread off: zero when `quiet` has
    /// passed since (or no request ever came).
    fn busy_for(&self, quiet: Duration) -> Duration {
        let last = self.last.load(Ordering::Relaxed);
        if last == 0 {
            return Duration::ZERO;
        }
        let until = (last - 1).saturating_add(u64::try_from(quiet.as_millis()).unwrap_or(0));
        Duration::from_millis(until.saturating_sub(self.now_ms()))
    }
}

/// Lowers the calling thread's priority; a failure (a platform without niceness) only means
/// hashes compete with requests as equals.
fn lower_priority() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    let lowered = ThreadPriorityValue::try_from(HASHER_NICENESS_PRIORITY)
        .map_err(|e| e.to_string())
        .and_then(|value| {
            thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(value))
                .map_err(|e| e.to_string())
        });
    if let Err(err) = lowered {
        tracing::debug!(error = %err, "password hashing threads keep the normal priority");
    }
}

/// A hashing thread's Argon2 memory, allocated on first use and reused for every hash.
#[derive(Default)]
struct Scratch {
    blocks: Vec<Block>,
}

impl Scratch {
    fn memory(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks = vec![Block::default(); needed];
        }
        &mut self.blocks[..needed]
    }

    fn hash(&mut self, password: &[u8]) -> Result<String, PasswordError> {
        let failed = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
        let params = params();
        let mut salt_bytes = [0u8; Salt::RECOMMENDED_LENGTH];
        getrandom::fill(&mut salt_bytes).map_err(|e| failed(&e))?;
        let salt = Salt::new(&salt_bytes).map_err(|e| failed(&e))?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon2(params.clone())
            .hash_password_into_with_memory(password, &salt, &mut out, self.memory(&params))
            .map_err(|e| failed(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
            salt: Some(salt),
            hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
        };
        Ok(phc.to_string())
    }

    /// Verifies a stored hash of any format [`inspect`] reads; one it refuses costs the dummy
    /// hash and never matches.
    fn verify_stored(&mut self, password: &[u8], stored: &str) -> bool {
        match foreign::parse(stored) {
            Ok(foreign::Scheme::Argon2 { phc }) => self.verify(password, phc),
            Ok(other) => foreign::verify_other(&other, password),
            Err(_) => {
                self.verify(password, DUMMY_HASH);
                false
            }
        }
    }

    /// Any Argon2 PHC string verifies; ours (and any that fits our memory) without allocating.
    fn verify(&mut self, password: &[u8], phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return false;
        };
        let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
            Algorithm::try_from(hash.algorithm.as_str()),
            Params::try_from(&hash),
            hash.salt,
            hash.hash,
        ) else {
            return false;
        };
        // No version field means 0x10, as in the reference implementation (old Django hashes).
        let Ok(version) = hash.version.map_or(Ok(Version::V0x10), Version::try_from) else {
            return false;
        };
        let mut out = [0u8; Output::MAX_LENGTH];
        let Some(out) = out.get_mut(..expected.len()) else {
            return false;
        };
        let mut once;
        let memory = if params.block_count() > MEMORY_KIB as usize {
            // Stronger than ours (an imported hash, within the caps `inspect` enforces): memory
            // for this verification only, not kept by the thread.
            once = vec![Block::default(); params.block_count()];
            &mut once[..]
        } else {
            self.memory(&params)
        };
        let hasher = Argon2::new(algorithm, version, params.clone());
        hasher
            .hash_password_into_with_memory(password, &salt, out, memory)
            .is_ok()
            // Output's equality is constant-time.
            && Output::new(out).is_ok_and(|computed| computed == expected)
    }
}

fn params() -> Params {
    // The parameters are constants known to be valid.
    Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap_or_default()
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

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

    #[test]
    fn hashes_from_the_reference_hasher_verify_whatever_their_parameters() {
        use argon2::password_hash::PasswordHasher;
        for (m, t, p) in [
            (MEMORY_KIB, ITERATIONS, PARALLELISM),
            (8_192, 3, 2),
            (32_768, 1, 1),
        ] {
            let params = Params::new(m, t, p, None).unwrap();
            let phc = argon2(params)
                .hash_password_with_salt(b"correct horse", b"sixteen byte salt")
                .unwrap()
                .to_string();
            let mut scratch = Scratch::default();
            assert!(scratch.verify(b"correct horse", &phc), "{phc}");
            assert!(!scratch.verify(b"correct horsf", &phc), "{phc}");
        }
    }

    #[test]
    fn our_hashes_verify_with_the_reference_verifier() {
        let phc = Scratch::default().hash(b"correct horse").unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(argon2(params())
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(argon2(params()).verify_password(b"wrong", &parsed).is_err());
    }

    #[test]
    fn garbage_hashes_never_match() {
        let mut scratch = Scratch::default();
        for phc in ["", "$argon2id$", "plain", "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$",
                    "$argon2id$v=99$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$6yb5gC2Fw5CKy0vN7a7ox3LqWN0cTSQb9aWnL8Zlq0Y",
                    "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E"] {
            assert!(!scratch.verify(b"x", phc), "{phc}");
        }
    }

    #[tokio::test]
    async fn a_hash_whose_caller_gave_up_is_skipped() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let pool = PasswordHasherPool::new(1);
        // The one thread is held busy while five jobs are queued and their callers give up
        // (a zero timeout polls each once, which queues it, then drops it).
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move |_| {
                    let _ = started.send(());
                    held.recv().is_ok()
                })
                .await
            }
        });
        running.await.unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let ran = Arc::clone(&ran);
            let job = pool.run(move |_| ran.fetch_add(1, Ordering::SeqCst));
            drop(tokio::time::timeout(std::time::Duration::ZERO, job).await);
        }
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        // A job queued after them runs after them: by then every abandoned one was skipped.
        assert!(!pool.verify(SecretString::from("x"), None).await.unwrap());
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "abandoned jobs were computed"
        );
    }

    /// Runs `jobs` jobs of 30 ms at once on `pool` and answers the names of the threads that
    /// ran them, while `requests` says whether requests keep coming meanwhile (every 5 ms).
    async fn threads_used(pool: &PasswordHasherPool, jobs: usize, requests: bool) -> Vec<String> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let noter = {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || {
                while requests && !stop.load(Ordering::Relaxed) {
                    pool.note_request();
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        if requests {
            // The first request has come before any job is queued (noted here, not left to the
            // noter thread's first turn, which a loaded machine may delay).
            pool.note_request();
        }
        // Spawned, so that every job is queued at once. While requests keep coming, each job
        // also notes one as it starts, so a noter thread starved by a loaded machine cannot
        // make the requests look stopped.
        let runs: Vec<_> = (0..jobs)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let noting = requests.then(|| pool.clone());
                    pool.run(move |_| {
                        if let Some(pool) = &noting {
                            pool.note_request();
                        }
                        std::thread::sleep(Duration::from_millis(30));
                        std::thread::current().name().unwrap_or_default().to_owned()
                    })
                    .await
                })
            })
            .collect();
        let mut names = Vec::new();
        for run in runs {
            let name = tokio::time::timeout(Duration::from_secs(20), run)
                .await
                .expect("the job finished");
            names.push(name.unwrap().unwrap());
        }
        stop.store(true, Ordering::Relaxed);
        noter.join().unwrap();
        names.sort();
        names.dedup();
        names
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_spare_thread_hashes_only_when_no_request_is_coming() {
        let pool = PasswordHasherPool::new(2);
        // Logins alone: both threads hash.
        assert_eq!(
            threads_used(&pool, 8, false).await,
            ["tenure-argon2-0", "tenure-argon2-1"]
        );
        // Requests keep coming: the spare keeps off, one core stays free of hashing.
        assert_eq!(threads_used(&pool, 8, true).await, ["tenure-argon2-0"]);
        // Once they stop, the spare takes hashes again.
        std::thread::sleep(SPARE_QUIET);
        assert_eq!(
            threads_used(&pool, 8, false).await,
            ["tenure-argon2-0", "tenure-argon2-1"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_thread_hashes_whatever_requests_come() {
        let pool = PasswordHasherPool::new(1);
        assert_eq!(threads_used(&pool, 3, true).await, ["tenure-argon2-0"]);
    }

    #[tokio::test]
    async fn a_matched_foreign_hash_is_upgraded_on_the_same_job_and_ours_is_not() {
        let pool = PasswordHasherPool::new(1);
        let bcrypt = bcrypt::hash("correct horse", 4).unwrap();
        let verified = pool
            .verify_for_login(SecretString::from("correct horse"), Some(bcrypt.clone()))
            .await
            .unwrap();
        assert!(verified.matched);
        let upgraded = verified.upgraded.expect("an upgraded hash");
        assert!(upgraded.starts_with(CURRENT_PREFIX), "{upgraded}");
        assert!(!needs_upgrade(&upgraded));
        assert!(pool
            .verify(SecretString::from("correct horse"), Some(upgraded.clone()))
            .await
            .unwrap());
        // Wrong passwords and tenure's own hashes get no new hash.
        let wrong = pool
            .verify_for_login(SecretString::from("wrong"), Some(bcrypt))
            .await
            .unwrap();
        assert_eq!(
            wrong,
            Verified {
                matched: false,
                upgraded: None
            }
        );
        let ours = pool
            .verify_for_login(SecretString::from("correct horse"), Some(upgraded))
            .await
            .unwrap();
        assert_eq!(
            ours,
            Verified {
                matched: true,
                upgraded: None
            }
        );
        // Argon2 with other parameters is replaced by ours too.
        let params = Params::new(8_192, 3, 2, None).unwrap();
        let other = {
            use argon2::password_hash::PasswordHasher;
            argon2(params)
                .hash_password_with_salt(b"correct horse", b"sixteen byte salt")
                .unwrap()
                .to_string()
        };
        assert!(needs_upgrade(&other));
        let verified = pool
            .verify_for_login(SecretString::from("correct horse"), Some(other))
            .await
            .unwrap();
        assert!(verified.matched && verified.upgraded.is_some());
    }

    #[tokio::test]
    async fn unusable_and_over_the_cap_hashes_never_match() {
        let pool = PasswordHasherPool::new(1);
        let cheap = bcrypt::hash("correct horse", 4).unwrap();
        let crafted = format!("$2b$31{}", &cheap[6..]);
        let started = Instant::now();
        for stored in [
            unusable("no password in the export"),
            crafted,
            "md5$salt$abc".to_owned(),
            String::new(),
        ] {
            let verified = pool
                .verify_for_login(SecretString::from("correct horse"), Some(stored.clone()))
                .await
                .unwrap();
            assert!(!verified.matched, "{stored}");
            assert!(verified.upgraded.is_none(), "{stored}");
        }
        // Only the dummy hash's work was done (a cost-31 bcrypt would take days).
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn our_hashes_have_the_current_prefix() {
        let phc = Scratch::default().hash(b"x").unwrap();
        assert!(phc.starts_with(CURRENT_PREFIX), "{phc}");
        assert!(!needs_upgrade(&phc));
        assert!(!needs_upgrade(DUMMY_HASH));
    }

    #[tokio::test]
    async fn unknown_user_never_matches_and_the_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        let pool = PasswordHasherPool::new(1);
        assert!(!pool.verify(SecretString::from("x"), None).await.unwrap());
    }
}
