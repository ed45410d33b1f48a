//! Failed sign-ins counted per email address — known or not, so a lockout reveals nothing
//! about which accounts exist — and a temporary lock after too many in a row.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use dashmap::DashMap;
use futures::future::BoxFuture;

use crate::storage::Redis;

/// Failures counted per key (a lower-cased email, or `user:<id>` for second factors).
pub trait LockoutStore: Send + Sync {
    /// The end of the current lock, if the key is locked now.
    fn locked_until<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<DateTime<Utc>>>;
    /// Counts one failure.
    fn record_failure<'a>(&'a self, key: &'a str) -> BoxFuture<'a, FailureOutcome>;
    /// Clears the count after a success.
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

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    Counted,
    /// This failure locked the account until the given time.
    LockedUntil(DateTime<Utc>),
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

    /// Counts one failure.
    pub fn record_failure(&self, email: &str) -> FailureOutcome {
        let mut e = self.entries.entry(email.to_owned()).or_insert((0, None));
        if e.1.is_some_and(|t| t <= Utc::now()) {
            *e = (0, None);
        }
        e.0 += 1;
        if e.0 >= self.threshold {
            let until = Utc::now() + self.duration;
            *e = (0, Some(until));
            FailureOutcome::LockedUntil(until)
        } else {
            FailureOutcome::Counted
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

    fn record_failure<'a>(&'a self, key: &'a str) -> BoxFuture<'a, FailureOutcome> {
        let r = MemoryLockoutStore::record_failure(self, key);
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

/// One failure: `INCR` the counter (it expires `ARGV[2]` seconds after the last failure); at the
/// threshold `ARGV[1]`, drop it and set the lock key for `ARGV[2]` seconds. Returns the lock's
/// remaining milliseconds, or 0 when the failure was only counted.
const FAILURE_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if n >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
  return redis.call('PTTL', KEYS[2])
end
return 0
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
            script: Arc::new(redis::Script::new(FAILURE_SCRIPT)),
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

    fn record_failure<'a>(&'a self, key: &'a str) -> BoxFuture<'a, FailureOutcome> {
        Box::pin(async move {
            let (count, lock) = self.keys(key);
            let mut conn = self.redis.conn();
            let mut invocation = self.script.key(count);
            invocation.key(lock).arg(self.threshold).arg(self.seconds);
            let r = self.redis.guard(invocation.invoke_async::<i64>(&mut conn)).await;
            match r {
                Ok(0) => FailureOutcome::Counted,
                Ok(ms) => FailureOutcome::LockedUntil(Utc::now() + Duration::milliseconds(ms.max(1))),
                Err(e) => {
                    self.failed(&e);
                    self.fallback.record_failure(key)
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
        assert_eq!(s.record_failure("a@x.io"), FailureOutcome::Counted);
        assert_eq!(s.record_failure("a@x.io"), FailureOutcome::Counted);
        assert!(matches!(s.record_failure("a@x.io"), FailureOutcome::LockedUntil(_)));
        assert!(s.locked_until("a@x.io").is_some());
        assert!(s.locked_until("b@x.io").is_none());
        s.record_success("a@x.io");
        assert!(s.locked_until("a@x.io").is_none());
    }
}
