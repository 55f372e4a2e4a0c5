//! Time as an input: policy code asks a [`Clock`] for "now", so expiry, grace and idle rules
//! can be tested without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in whole seconds, the unit of JWT claims and of every stored timestamp.
pub type UnixTime = i64;

/// Configured durations in [`UnixTime`]'s unit, for arithmetic with timestamps.
pub trait Seconds {
    fn seconds(&self) -> UnixTime;
}

impl Seconds for std::time::Duration {
    fn seconds(&self) -> UnixTime {
        UnixTime::try_from(self.as_secs()).unwrap_or(UnixTime::MAX)
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock the tests set and advance by hand. Clones share the same time.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// Starts at the current wall-clock time, so tokens look ordinary.
    pub fn new() -> Self {
        Self(Arc::new(AtomicI64::new(SystemClock.now())))
    }

    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Default for TestClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TestClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}
