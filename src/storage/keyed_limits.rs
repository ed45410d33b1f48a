//! Units per named key (an organization, an email address, a client) in a fixed window of any
//! length, with the limit given at each check: what no per-IP limiter can express, such as
//! "five invitation mails an hour to one address". In process on one node, or counted in Redis
//! across every node (falling back to this node's count when Redis does not answer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::future::BoxFuture;

use super::Redis;
use super::rate_limits::{RateDecision, WINDOW_SCRIPT};

/// Counts units per key in fixed windows and decides.
pub trait KeyedLimit: Send + Sync {
    /// Counts one unit of `key` in its current `window`; refused past `limit` units.
    fn check<'a>(&'a self, key: &'a str, limit: u32, window: Duration) -> BoxFuture<'a, RateDecision>;
    /// Forgets keys whose window is over (bounded memory).
    fn purge(&self);
}

fn decision(count: u64, limit: u32, remaining_window: Duration) -> RateDecision {
    let reset = remaining_window.as_secs_f64().ceil().max(1.0) as u64;
    let allowed = count <= u64::from(limit);
    RateDecision {
        allowed,
        limit,
        remaining: u64::from(limit).saturating_sub(count) as u32,
        reset_secs: reset,
        retry_after_secs: if allowed { 0 } else { reset },
    }
}

/// Windows per key, in process.
#[derive(Clone, Default)]
pub struct MemoryKeyedLimiter {
    windows: Arc<DashMap<String, (Instant, Duration, u64)>>,
}

impl MemoryKeyedLimiter {
    /// Counts one unit of `key` (atomically: concurrent checks never allow more than `limit`).
    pub fn check(&self, key: &str, limit: u32, window: Duration) -> RateDecision {
        let now = Instant::now();
        let mut w = self.windows.entry(key.to_owned()).or_insert((now, window, 0));
        if now.duration_since(w.0) >= w.1 {
            *w = (now, window, 0);
        }
        w.2 = w.2.saturating_add(1);
        decision(w.2, limit, w.1.saturating_sub(now.duration_since(w.0)))
    }
}

impl KeyedLimit for MemoryKeyedLimiter {
    fn check<'a>(&'a self, key: &'a str, limit: u32, window: Duration) -> BoxFuture<'a, RateDecision> {
        let d = MemoryKeyedLimiter::check(self, key, limit, window);
        Box::pin(async move { d })
    }

    fn purge(&self) {
        let now = Instant::now();
        self.windows.retain(|_, (start, window, _)| now.duration_since(*start) < *window);
    }
}

/// Windows per key counted in Redis (`INCR` and a `PEXPIRE` set by the window's first unit),
/// shared by every node.
#[derive(Clone)]
pub struct RedisKeyedLimiter {
    redis: Redis,
    script: Arc<redis::Script>,
    fallback: MemoryKeyedLimiter,
}

impl RedisKeyedLimiter {
    /// A limiter over `redis`.
    pub fn new(redis: Redis) -> Self {
        Self { redis, script: Arc::new(redis::Script::new(WINDOW_SCRIPT)), fallback: Default::default() }
    }
}

impl KeyedLimit for RedisKeyedLimiter {
    fn check<'a>(&'a self, key: &'a str, limit: u32, window: Duration) -> BoxFuture<'a, RateDecision> {
        Box::pin(async move {
            let mut conn = self.redis.conn();
            let mut invocation = self.script.key(self.redis.key(&format!("keylimit:{key}")));
            invocation.arg(window.as_millis().max(1) as u64);
            match self.redis.guard(invocation.invoke_async::<(i64, i64)>(&mut conn)).await {
                Ok((count, ttl_ms)) => decision(
                    count.max(0) as u64,
                    limit,
                    Duration::from_millis(ttl_ms.max(0) as u64),
                ),
                Err(e) => {
                    tracing::debug!(error = %e, "redis unavailable; keyed limit counted on this node");
                    metrics::counter!("janua_redis_errors_total", "concern" => "rate_limit").increment(1);
                    self.fallback.check(key, limit, window)
                }
            }
        })
    }

    fn purge(&self) {
        KeyedLimit::purge(&self.fallback);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_window() {
        let l = MemoryKeyedLimiter::default();
        let hour = Duration::from_secs(3600);
        let a: Vec<bool> = (0..3).map(|_| l.check("a", 2, hour).allowed).collect();
        assert_eq!(a, [true, true, false]);
        let refused = l.check("a", 2, hour);
        assert!(refused.retry_after_secs > 3500 && refused.remaining == 0);
        assert!(l.check("b", 2, hour).allowed, "another key has its own allowance");
        assert!(l.check("c", 1, Duration::from_millis(1)).allowed);
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.check("c", 1, Duration::from_millis(1)).allowed, "a new window starts whole");
    }
}
