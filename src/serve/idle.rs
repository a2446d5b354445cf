//! The idle-connection timeout (`--idle-timeout`): a connection with no statement running and no
//! message from its client for that long is closed, as PostgreSQL's `idle_session_timeout` does.
//! A statement counts as running until its last row has been sent, however long it takes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One connection's activity: statements running, and when it last did anything.
#[derive(Debug)]
pub(super) struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last activity.
    last: AtomicU64,
    running: AtomicUsize,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            last: AtomicU64::new(0),
            running: AtomicUsize::new(0),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::SeqCst);
    }

    /// A statement starts; it runs until the returned guard drops.
    pub(super) fn begin(self: &Arc<Self>) -> Busy {
        self.running.fetch_add(1, Ordering::SeqCst);
        self.touch();
        Busy(self.clone())
    }

    /// Whether a statement is running (or its rows are being sent).
    pub(super) fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst) > 0
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.is_running() {
            return None;
        }
        let last = Duration::from_millis(self.last.load(Ordering::SeqCst));
        Some(self.started.elapsed().saturating_sub(last))
    }

    /// Resolves once the connection has been idle for `limit`.
    pub(super) async fn idle(&self, limit: Duration) {
        let check = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        loop {
            tokio::time::sleep(check).await;
            if self.idle_for().is_some_and(|idle| idle >= limit) {
                return;
            }
        }
    }
}

/// A running statement's hold on its connection's [`Activity`].
#[derive(Debug)]
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_is_idle_only_with_no_statement_running() {
        let activity = Arc::new(Activity::default());
        let busy = activity.begin();
        let waited = tokio::time::timeout(
            Duration::from_millis(400),
            activity.idle(Duration::from_millis(100)),
        )
        .await;
        assert!(waited.is_err(), "a running statement is not idleness");
        drop(busy);
        let waited = tokio::time::timeout(
            Duration::from_secs(5),
            activity.idle(Duration::from_millis(100)),
        )
        .await;
        assert!(waited.is_ok(), "idle once the statement ended");
    }
}
