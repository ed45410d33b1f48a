//! The pool of a node's live subscribers, which the event lanes share.

use std::sync::Mutex;

use tokio::sync::Notify;

/// The live subscribers of a node, in chunks that the event lanes (one task per core) take in
/// turn. After every published event each chunk is served once, by whichever lane takes it: the
/// pass ends when the lanes together are through, however the cores were shared out among them
/// and everything else the node runs.
pub(super) struct Pool<T> {
    state: Mutex<PoolState<T>>,
    /// Rings when subscribers arrive.
    pub(super) wake: Notify,
}

struct PoolState<T> {
    /// Newly live subscribers, not yet in a chunk.
    inbox: Vec<T>,
    /// Chunks to serve: not yet served since the last published event a lane has seen.
    todo: Vec<Chunk<T>>,
    /// Chunks served since then.
    done: Vec<Chunk<T>>,
    /// The last published position a lane has seen.
    seen: i64,
}

/// Subscribers a lane serves between two looks at the pool (and yields to the runtime).
const CHUNK: usize = 64;

/// Live subscribers a lane serves in one go.
pub(super) struct Chunk<T> {
    pub(super) entries: Vec<T>,
    /// `seen` when a lane took it: served again if an event was published since.
    taken_at: i64,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        let state = PoolState { inbox: Vec::new(), todo: Vec::new(), done: Vec::new(), seen: i64::MIN };
        Self { state: Mutex::new(state), wake: Notify::new() }
    }
}

impl<T> Pool<T> {
    /// Adds a newly live subscriber: served at once, then after every published event.
    pub(super) fn adopt(&self, entry: T) {
        self.lock().inbox.push(entry);
        self.wake.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands back the chunk a lane `served` (if any), notes that it has `seen` the bus up to
    /// there (if it looked), and gives it the next chunk to serve; `None` when the pass is over.
    pub(super) fn next(&self, seen: Option<i64>, served: Option<Chunk<T>>) -> Option<Chunk<T>> {
        let mut s = self.lock();
        let s = &mut *s;
        if let Some(seen) = seen
            && seen > s.seen
        {
            s.seen = seen;
            s.todo.append(&mut s.done);
        }
        if let Some(c) = served
            && !c.entries.is_empty()
        {
            if c.taken_at < s.seen { s.todo.push(c) } else { s.done.push(c) }
        }
        while !s.inbox.is_empty() {
            let entries = s.inbox.split_off(s.inbox.len().saturating_sub(CHUNK));
            s.todo.push(Chunk { entries, taken_at: i64::MIN });
        }
        let mut c = s.todo.pop()?;
        c.taken_at = s.seen;
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item, served in one pass to the end (a lane's loop, without the serving).
    fn pass(pool: &Pool<u32>, seen: Option<i64>) -> Vec<u32> {
        let mut served = Vec::new();
        let mut chunk = pool.next(seen, None);
        while let Some(c) = chunk {
            served.extend(&c.entries);
            chunk = pool.next(None, Some(c));
        }
        served.sort();
        served
    }

    #[test]
    fn every_subscriber_is_served_once_per_published_event() {
        let pool = Pool::<u32>::default();
        (0..150).for_each(|i| pool.adopt(i));
        // New subscribers are served at once, in chunks, then not again until an event.
        assert_eq!(pass(&pool, None), (0..150).collect::<Vec<_>>());
        let chunks = |pool: &Pool<u32>| {
            let s = pool.lock();
            s.todo.len() + s.done.len()
        };
        assert_eq!(chunks(&pool), 3);
        assert!(pass(&pool, None).is_empty());
        assert_eq!(pass(&pool, Some(1)), (0..150).collect::<Vec<_>>());
        // Another lane that wakes for the same event finds the pass done.
        assert!(pass(&pool, Some(1)).is_empty());
    }

    #[test]
    fn a_chunk_taken_before_an_event_is_served_again() {
        let pool = Pool::<u32>::default();
        (0..100).for_each(|i| pool.adopt(i));
        assert_eq!(pass(&pool, Some(1)).len(), 100);
        // Lane A takes a chunk; event 2 is published and lane B serves the rest.
        let held = pool.next(Some(2), None).expect("a chunk");
        let rest = pass(&pool, Some(3));
        assert_eq!(held.entries.len() + rest.len(), 100);
        // A hands its chunk back after event 3 was seen: it may have missed it, so it is served again.
        let again = pool.next(None, Some(held)).expect("served again");
        let mut again_entries = again.entries.clone();
        assert!(pool.next(None, Some(again)).is_none());
        again_entries.sort();
        assert!(again_entries.iter().all(|e| !rest.contains(e)));
    }

    #[test]
    fn a_served_chunk_left_empty_is_let_go() {
        let pool = Pool::<u32>::default();
        pool.adopt(7);
        let mut c = pool.next(None, None).expect("a chunk");
        c.entries.clear();
        assert!(pool.next(Some(1), Some(c)).is_none());
        let s = pool.lock();
        assert!(s.todo.is_empty() && s.done.is_empty());
    }
}
