//! Bounded tables: a background task deletes rows that can never be used again, in small
//! batches, so the sessions table never grows without bound and requests never wait on it.

use std::sync::Arc;
use std::time::Duration;

use super::{SessionError, SessionService};
use crate::clock::Seconds;
use crate::store::Purge;

/// Rows deleted per statement at most.
pub const PURGE_BATCH: u32 = 1_000;

impl SessionService {
    /// Deletes, batch after batch until none is left: ordinary sessions past their refresh
    /// window, idle-expired sessions (both only once their last token has expired), revoked
    /// sessions older than `REVOKED_RETENTION`, and failure counters that throttle no one.
    /// Answers how many rows went.
    pub async fn purge_once(&self) -> Result<u64, SessionError> {
        let mut total = 0;
        loop {
            let now = self.clock.now();
            let purge = Purge {
                now,
                tokens_expired_before: now - self.config.jwt_ttl.seconds(),
                idle_cutoff: self.idle_cutoff(now),
                revoked_before: now - self.config.revoked_retention.seconds(),
                failures_before: now
                    - self
                        .config
                        .login_failure_window
                        .max(self.config.login_backoff_max)
                        .seconds(),
                batch: PURGE_BATCH,
            };
            let deleted = self.store.purge(&purge).await?;
            total += deleted;
            if deleted == 0 {
                return Ok(total);
            }
            // Let requests run between batches.
            tokio::task::yield_now().await;
        }
    }
}

/// Runs [`SessionService::purge_once`] every `interval` until the task is aborted. Safe with
/// any number of replicas doing the same.
pub fn spawn_purger(
    service: Arc<SessionService>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match service.purge_once().await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "purged dead sessions and counters"),
                Err(err) => tracing::warn!(error = %err, "purge failed; will retry"),
            }
        }
    })
}
