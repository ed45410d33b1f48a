//! Failed sign-ins counted per key (an email address — known or not, so a lockout reveals
//! nothing about which accounts exist — or a user's second factor or passkeys), and a temporary
//! lock after too many in a row; in process, or in Redis across every node.
//!
//! Every credential check takes a slot *before* it verifies ([`LockoutStore::reserve`]): the
//! slot counts as a failure unless the check succeeds, so however many attempts run at once, at
//! most `threshold` of them are verified before the key is locked.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use dashmap::DashMap;
use futures::future::BoxFuture;

use super::Redis;

/// Failures counted per key (a lower-cased email, `user:<id>` for second factors, `passkey:<id>`
/// for a user's passkey assertions).
pub trait LockoutStore: Send + Sync {
    /// The end of the current lock, if the key is locked now.
    fn locked_until<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<DateTime<Utc>>>;
    /// Takes one attempt's slot before its credential is verified, atomically: the slot counts
    /// as a failure unless [`LockoutStore::record_success`] follows.
    fn reserve<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Slot>;
    /// Clears the count (and a lock the attempt's own slot set) after a success.
    fn record_success<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;
    /// Forgets expired locks and stale counters (a store with native expiry only its fallback).
    fn purge(&self);
}

/// Failures in a row, and the end of the lock once there is one.
type Entry = (i32, Option<DateTime<Utc>>);

/// Counts failures per key, in process.
#[derive(Clone)]
pub struct MemoryLockoutStore {
    entries: Arc<DashMap<String, Entry>>,
    threshold: i32,
    duration: Duration,
}

/// What [`LockoutStore::reserve`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Verify; a failure is already counted.
    Granted,
    /// The last slot: the key is locked until the given time unless this attempt succeeds (a
    /// failure answers `ACCOUNT_LOCKED`).
    Last(DateTime<Utc>),
    /// No slot: the key is locked until the given time; do not verify.
    Locked(DateTime<Utc>),
}

impl MemoryLockoutStore {
    /// Locks after `threshold` failures in a row, for `seconds`.
    pub fn new(threshold: i32, seconds: i64) -> Self {
        Self {
            entries: Arc::new(DashMap::new()),
            threshold: threshold.max(1),
            duration: Duration::seconds(seconds),
        }
    }

    /// The end of the current lock, if the email is locked now.
    pub fn locked_until(&self, email: &str) -> Option<DateTime<Utc>> {
        let until = self.entries.get(email)?.1?;
        (until > Utc::now()).then_some(until)
    }

    /// Takes one attempt's slot (the entry is locked meanwhile, so concurrent calls take turns).
    pub fn reserve(&self, key: &str) -> Slot {
        let now = Utc::now();
        let mut e = self.entries.entry(key.to_owned()).or_insert((0, None));
        match e.1 {
            Some(t) if t > now => return Slot::Locked(t),
            Some(_) => *e = (0, None),
            None => {}
        }
        e.0 += 1;
        if e.0 >= self.threshold {
            let until = now + self.duration;
            *e = (0, Some(until));
            Slot::Last(until)
        } else {
            Slot::Granted
        }
    }

    /// Clears the count after a successful sign-in.
    pub fn record_success(&self, email: &str) {
        self.entries.remove(email);
    }

    /// Forgets expired locks and stale counters.
    pub fn purge(&self) {
        let now = Utc::now();
        self.entries.retain(|_, (n, until)| until.is_some_and(|t| t > now) || *n > 0);
    }
}

impl LockoutStore for MemoryLockoutStore {
    fn locked_until<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<DateTime<Utc>>> {
        let r = MemoryLockoutStore::locked_until(self, key);
        Box::pin(async move { r })
    }

    fn reserve<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Slot> {
        let r = MemoryLockoutStore::reserve(self, key);
        Box::pin(async move { r })
    }

    fn record_success<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        MemoryLockoutStore::record_success(self, key);
        Box::pin(async {})
    }

    fn purge(&self) {
        MemoryLockoutStore::purge(self);
    }
}

/// One slot, atomically: while the lock key lives, `{2, its remaining ms}`; else `INCR` the
/// counter (it expires `ARGV[2]` seconds after the last attempt) and, at the threshold `ARGV[1]`,
/// drop it and set the lock key for `ARGV[2]` seconds: `{1, the lock's ms}`; else `{0, 0}`.
const RESERVE_SCRIPT: &str = r"
local t = redis.call('PTTL', KEYS[2])
if t > 0 then
  return {2, t}
end
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if n >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
  return {1, redis.call('PTTL', KEYS[2])}
end
return {0, 0}
";

/// Failures counted in Redis, so a lock holds on every node. Keys hold a SHA-256 of the
/// email, not the address. When Redis does not answer, this node counts in process (a lock
/// then holds on this node only) until Redis is back.
#[derive(Clone)]
pub struct RedisLockoutStore {
    redis: Redis,
    /// `lockout` or `mfa_lockout`: keeps the two counters apart.
    name: &'static str,
    threshold: i32,
    seconds: i64,
    script: Arc<redis::Script>,
    fallback: MemoryLockoutStore,
}

impl RedisLockoutStore {
    /// Locks after `threshold` failures in a row, for `seconds`, across every node.
    pub fn new(redis: Redis, name: &'static str, threshold: i32, seconds: i64) -> Self {
        Self {
            redis,
            name,
            threshold: threshold.max(1),
            seconds: seconds.max(1),
            script: Arc::new(redis::Script::new(RESERVE_SCRIPT)),
            fallback: MemoryLockoutStore::new(threshold, seconds),
        }
    }

    fn keys(&self, key: &str) -> (String, String) {
        let h = crate::security::secrets::sha256_hex(key);
        (
            self.redis.key(&format!("{}:count:{h}", self.name)),
            self.redis.key(&format!("{}:lock:{h}", self.name)),
        )
    }

    fn failed(&self, e: &redis::RedisError) {
        tracing::debug!(error = %e, "redis unavailable; lockout counted on this node");
        metrics::counter!("janua_redis_errors_total", "concern" => "lockout").increment(1);
    }
}

impl LockoutStore for RedisLockoutStore {
    fn locked_until<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<DateTime<Utc>>> {
        Box::pin(async move {
            let (_, lock) = self.keys(key);
            let mut conn = self.redis.conn();
            match self.redis.guard(redis::cmd("PTTL").arg(lock).query_async::<i64>(&mut conn)).await {
                Ok(ms) if ms > 0 => Some(Utc::now() + Duration::milliseconds(ms)),
                Ok(_) => self.fallback.locked_until(key),
                Err(e) => {
                    self.failed(&e);
                    self.fallback.locked_until(key)
                }
            }
        })
    }

    fn reserve<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Slot> {
        Box::pin(async move {
            // A lock counted on this node while Redis was away still holds.
            if let Some(until) = self.fallback.locked_until(key) {
                return Slot::Locked(until);
            }
            let (count, lock) = self.keys(key);
            let mut conn = self.redis.conn();
            let mut invocation = self.script.key(count);
            invocation.key(lock).arg(self.threshold).arg(self.seconds);
            let r = self.redis.guard(invocation.invoke_async::<(i64, i64)>(&mut conn)).await;
            let until = |ms: i64| Utc::now() + Duration::milliseconds(ms.max(1));
            match r {
                Ok((0, _)) => Slot::Granted,
                Ok((1, ms)) => Slot::Last(until(ms)),
                Ok((_, ms)) => Slot::Locked(until(ms)),
                Err(e) => {
                    self.failed(&e);
                    self.fallback.reserve(key)
                }
            }
        })
    }

    fn record_success<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.fallback.record_success(key);
            let (count, lock) = self.keys(key);
            let mut conn = self.redis.conn();
            let mut del = redis::cmd("DEL");
            del.arg(count).arg(lock);
            if let Err(e) = self.redis.guard(del.query_async::<()>(&mut conn)).await {
                self.failed(&e);
            }
        })
    }

    fn purge(&self) {
        self.fallback.purge();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_threshold_and_clears_on_success() {
        let s = MemoryLockoutStore::new(3, 60);
        assert_eq!(s.reserve("a@x.io"), Slot::Granted);
        assert_eq!(s.reserve("a@x.io"), Slot::Granted);
        assert!(matches!(s.reserve("a@x.io"), Slot::Last(_)));
        assert!(matches!(s.reserve("a@x.io"), Slot::Locked(_)));
        assert!(s.locked_until("a@x.io").is_some());
        assert!(s.locked_until("b@x.io").is_none());
        s.record_success("a@x.io");
        assert!(s.locked_until("a@x.io").is_none());
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_threshold() {
        let s = MemoryLockoutStore::new(5, 60);
        let slots: Vec<Slot> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..64).map(|_| sc.spawn(|| s.reserve("k"))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(slots.iter().filter(|s| !matches!(s, Slot::Locked(_))).count(), 5);
        assert_eq!(slots.iter().filter(|s| matches!(s, Slot::Last(_))).count(), 1);
    }
}
