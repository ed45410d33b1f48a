//! When each API key's `last_used_at` was last written, so a busy key costs one write a minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use uuid::Uuid;

/// How often a key's `last_used_at` is written at most.
const WRITE_EVERY: Duration = Duration::from_secs(60);

/// Remembers, per key, when its use was last written (in process; a node restart writes again).
#[derive(Clone, Default)]
pub struct UsageThrottle(Arc<DashMap<Uuid, Instant>>);

impl UsageThrottle {
    /// Whether key `id`'s use is due to be written now; if so, it counts as written.
    pub fn take_due(&self, id: Uuid) -> bool {
        let mut last = self.0.entry(id).or_insert_with(|| Instant::now() - WRITE_EVERY * 2);
        if last.elapsed() < WRITE_EVERY {
            return false;
        }
        *last = Instant::now();
        true
    }
}
