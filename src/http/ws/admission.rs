//! How many `/graphql/ws` connections one user holds on this node: a signed-in user by their
//! id, an anonymous client by its IP address. `JANUA_WS_MAX_CONNECTIONS_PER_USER` at once; the
//! connection past it is closed with 4429 (`Too many connections`) at its `connection_init`.

use std::sync::Arc;

use dashmap::DashMap;

/// The open connections of each user on this node.
pub struct ConnectionCounts {
    open: DashMap<String, usize>,
    max: usize,
}

/// One connection's place in the count, given back when it is dropped.
pub struct Slot {
    counts: Arc<ConnectionCounts>,
    key: String,
}

impl ConnectionCounts {
    /// At most `max` connections per user.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { open: DashMap::new(), max })
    }

    /// A place for one more connection of `key`, or `None` when it holds `max` already.
    pub fn take(self: &Arc<Self>, key: String) -> Option<Slot> {
        {
            let mut n = self.open.entry(key.clone()).or_insert(0);
            if *n >= self.max {
                return None;
            }
            *n += 1;
        }
        Some(Slot { counts: self.clone(), key })
    }

    /// The connections `key` holds.
    pub fn open(&self, key: &str) -> usize {
        self.open.get(key).map_or(0, |n| *n)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(mut n) = self.counts.open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
        self.counts.open.remove_if(&self.key, |_, n| *n == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_max_and_dropping_gives_back() {
        let c = ConnectionCounts::new(2);
        let a = c.take("u".into()).unwrap();
        let _b = c.take("u".into()).unwrap();
        assert!(c.take("u".into()).is_none());
        assert!(c.take("v".into()).is_some());
        drop(a);
        assert_eq!(c.open("u"), 1);
        assert!(c.take("u".into()).is_some());
    }
}
