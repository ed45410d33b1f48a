//! Users of recent requests, kept in process for a few seconds so an authenticated request needs
//! no database query for its caller.
//!
//! A copy is served only to a request whose [`UserStamp`] — read from the revocation store in the
//! same look as the session's revocation, before the copy was loaded — equals the stamp the copy
//! was loaded under. A change committed to the user on any node changes the stamp first (see
//! [`super::RevocationStore::user_changed`]), so the next request after it reads the database.
//! The time limit only bounds what no stamp can see: a change written by a process that shares
//! no Redis with this one (`janua admin create` beside a server without Redis).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use entities::user;
use uuid::Uuid;

use super::revocations::UserStamp;

/// How long a copy may be served at most.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(2);

/// Copies at most kept; past it, expired ones are dropped at the next insert.
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    user: Arc<user::Model>,
    stamp: UserStamp,
    loaded: Instant,
}

/// The cache (cheap to clone; clones share it).
#[derive(Clone, Default)]
pub struct UserCache {
    entries: Arc<DashMap<Uuid, Entry>>,
}

impl UserCache {
    /// The copy of `id` loaded under `stamp`, if it is younger than [`USER_CACHE_TTL`].
    pub fn get(&self, id: Uuid, stamp: UserStamp) -> Option<Arc<user::Model>> {
        let e = self.entries.get(&id)?;
        (e.stamp == stamp && e.loaded.elapsed() < USER_CACHE_TTL).then(|| e.user.clone())
    }

    /// Keeps `user`, loaded from the database after `stamp` was read.
    pub fn put(&self, user: Arc<user::Model>, stamp: UserStamp) {
        if self.entries.len() >= MAX_ENTRIES {
            self.purge_expired();
        }
        self.entries.insert(user.id, Entry { user, stamp, loaded: Instant::now() });
    }

    /// Drops copies older than [`USER_CACHE_TTL`].
    pub fn purge_expired(&self) {
        self.entries.retain(|_, e| e.loaded.elapsed() < USER_CACHE_TTL);
    }
}
