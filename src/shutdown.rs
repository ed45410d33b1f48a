//! Graceful shutdown (SIGTERM, Ctrl-C): one signal every part of a server watches.
//!
//! When it fires, the listener closes (new connections are refused), requests in flight finish,
//! WebSocket connections end with a close frame (1001, going away), the webhook and mail workers
//! claim nothing more and let their attempts in flight finish; whatever is still running at the
//! deadline (`JANUA_SHUTDOWN_GRACE` after the signal) is handed back (its lease released, so
//! another node, or the next start, takes it at once) and the process exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The shutdown signal of one server: unset while it serves, then the drain's deadline.
#[derive(Clone)]
pub struct Shutdown {
    deadline: watch::Sender<Option<Instant>>,
    /// Live WebSocket connections, which the drain waits for.
    live: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self { deadline: watch::Sender::new(None), live: Arc::default(), idle: Arc::default() }
    }
}

impl Shutdown {
    /// Starts the drain, to end at `deadline` at the latest (a second call keeps the first).
    pub fn begin(&self, deadline: Instant) {
        self.deadline.send_if_modified(|d| {
            if d.is_some() {
                return false;
            }
            *d = Some(deadline);
            true
        });
    }

    /// The drain's deadline, once it began.
    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline.borrow()
    }

    /// Completes when the drain begins, with its deadline.
    pub async fn begun(&self) -> Instant {
        let mut rx = self.deadline.subscribe();
        // The sender lives in `self`: it cannot be gone while we wait.
        let at = rx.wait_for(Option::is_some).await.ok().and_then(|d| *d);
        at.unwrap_or_else(Instant::now)
    }

    /// Completes at the drain's deadline (never while serving).
    pub async fn overdue(&self) {
        let at = self.begun().await;
        tokio::time::sleep_until(at).await;
    }

    /// Counts a live connection until the guard is dropped.
    pub fn hold(&self) -> Held {
        self.live.fetch_add(1, Ordering::SeqCst);
        Held(self.clone())
    }

    /// Waits until no connection is held, or `until`; whether they all ended.
    pub async fn connections_ended(&self, until: Instant) -> bool {
        loop {
            let idle = self.idle.notified();
            if self.live.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(until, idle).await.is_err() {
                return self.live.load(Ordering::SeqCst) == 0;
            }
        }
    }
}

/// A live connection, counted by [`Shutdown`].
pub struct Held(Shutdown);

impl Drop for Held {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_drain_waits_for_held_connections_until_its_deadline() {
        let s = Shutdown::default();
        assert_eq!(s.deadline(), None);
        let held = s.hold();
        let at = Instant::now() + Duration::from_secs(5);
        s.begin(at);
        s.begin(at + Duration::from_secs(5));
        assert_eq!(s.begun().await, at, "the first deadline stays");
        assert!(!s.connections_ended(Instant::now() + Duration::from_millis(20)).await);
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.connections_ended(Instant::now() + Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert!(waiter.await.unwrap());
    }
}
