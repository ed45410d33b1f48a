//! The sessions `/graphql/ws` connections run under, so that a revoked session closes its
//! sockets even when no subscription is running on them.
//!
//! A connection registers its session here after `connection_init` and holds a [`Watch`]. One
//! task per node reads the event bus (the node's single extra receiver, not one per connection)
//! and, for every `session.revoked` event, wakes the connections of that session. Revocations
//! made on another node reach this node's bus through Redis, and so its sockets, the same way.
//! Each operation also asks [`SocketSessions::is_revoked`] before it runs (the check HTTP makes),
//! which covers the moment between a revocation and its event.

use std::sync::{Arc, Weak};

use dashmap::DashMap;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::events::EventBus;
use crate::storage::RevocationStore;

/// The node's open WebSocket sessions: session id → the notifiers of its connections.
pub struct SocketSessions {
    revocations: Arc<dyn RevocationStore>,
    open: DashMap<Uuid, Vec<Arc<Notify>>>,
}

impl SocketSessions {
    /// An empty registry, with its task reading `bus` (spawned on the current runtime; it ends
    /// with the bus).
    pub fn new(revocations: Arc<dyn RevocationStore>, bus: &EventBus) -> Arc<Self> {
        let sessions = Arc::new(Self { revocations, open: DashMap::new() });
        tokio::spawn(watch_revocations(Arc::downgrade(&sessions), bus.subscribe_node_task()));
        sessions
    }

    /// Registers a connection of `session`: the returned watch is woken when it is revoked, and
    /// unregisters the connection when dropped.
    pub fn watch(self: &Arc<Self>, session: Uuid) -> Watch {
        let notify = Arc::new(Notify::new());
        self.open.entry(session).or_default().push(notify.clone());
        Watch { sessions: self.clone(), session, notify }
    }

    /// Whether tokens of `session` must be refused: the same cluster-wide check as HTTP's
    /// (a local lookup, then Redis when configured). An error means nobody could tell.
    pub async fn is_revoked(&self, session: Uuid) -> anyhow::Result<bool> {
        self.revocations.is_revoked(session).await
    }

    /// How many connections are registered (for tests and metrics).
    pub fn connections(&self) -> usize {
        self.open.iter().map(|e| e.value().len()).sum()
    }

    /// Wakes every connection of `session`.
    fn revoked(&self, session: Uuid) {
        if let Some(list) = self.open.get(&session) {
            for n in list.iter() {
                n.notify_one();
            }
        }
    }

    /// After the task missed events (it lagged): asks the store about every open session.
    async fn recheck_all(&self) {
        let ids: Vec<Uuid> = self.open.iter().map(|e| *e.key()).collect();
        for id in ids {
            // A store that cannot answer leaves the connection to its next operation's check.
            if self.revocations.is_revoked(id).await.unwrap_or(false) {
                self.revoked(id);
            }
        }
    }
}

/// A connection's registration under its session.
pub struct Watch {
    sessions: Arc<SocketSessions>,
    session: Uuid,
    notify: Arc<Notify>,
}

impl Watch {
    /// The session the connection runs under.
    pub fn session(&self) -> Uuid {
        self.session
    }

    /// Completes once the session has been revoked (also when that happened before this call).
    pub async fn revoked(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut list) = self.sessions.open.get_mut(&self.session) {
            list.retain(|n| !Arc::ptr_eq(n, &self.notify));
        }
        self.sessions.open.remove_if(&self.session, |_, list| list.is_empty());
    }
}

/// The node's one reader of session revocations on the bus.
async fn watch_revocations(
    sessions: Weak<SocketSessions>,
    mut rx: tokio::sync::broadcast::Receiver<Arc<crate::events::BusEvent>>,
) {
    loop {
        let received = rx.recv().await;
        let Some(sessions) = sessions.upgrade() else { return };
        match received {
            Ok(e) => {
                if let Some(id) = e.facts().revoked_session.as_deref().and_then(|s| s.parse().ok()) {
                    sessions.revoked(id);
                }
            }
            Err(RecvError::Lagged(_)) => sessions.recheck_all().await,
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryRevocationStore;

    #[tokio::test]
    async fn a_revocation_wakes_the_connections_of_its_session_and_a_dropped_watch_unregisters() {
        let bus = EventBus::new(16);
        let sessions = SocketSessions::new(Arc::new(MemoryRevocationStore::default()), &bus);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (wa1, wa2, wb) = (sessions.watch(a), sessions.watch(a), sessions.watch(b));
        assert_eq!(sessions.connections(), 3);
        sessions.revoked(a);
        // A wake-up before anyone waits is kept.
        wa1.revoked().await;
        wa2.revoked().await;
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), wb.revoked()).await;
        assert!(pending.is_err(), "another session's connection is not woken");
        drop((wa1, wa2));
        assert_eq!(sessions.connections(), 1);
        assert!(!sessions.open.contains_key(&a));
        drop(wb);
        assert!(sessions.open.is_empty());
    }
}
