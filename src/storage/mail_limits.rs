//! Limits on mail the account routes send: per recipient address and per client IP, in fixed
//! windows (an hour by default). In process on one node, or counted in Redis across every node
//! (the same window script as the request limits; a node limits alone while Redis is away).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::future::BoxFuture;

use super::Redis;
use super::rate_limits::{RateDecision, WINDOW_SCRIPT, client_key, window_decision};
use crate::security::secrets::sha256_hex;

/// Counts units per key in a fixed window and decides.
pub trait KeyedLimit: Send + Sync {
    /// Counts one unit of `key`.
    fn check<'a>(&'a self, key: &'a str) -> BoxFuture<'a, RateDecision>;
    /// Forgets windows that are over (bounded memory).
    fn purge(&self);
}

/// The key of a recipient address: its hash (no address is kept in Redis or in memory).
pub fn address_key(email: &str) -> String {
    format!("addr:{}", sha256_hex(&email.to_lowercase()))
}

/// The key of a client (an IPv4 address, an IPv6 /64).
pub fn ip_key(ip: IpAddr) -> String {
    format!("ip:{}", client_key(ip))
}

/// `limit` units per `window` per key, in process.
pub struct MemoryKeyedLimiter {
    windows: DashMap<String, (Instant, u32)>,
    limit: u32,
    window: Duration,
}

impl MemoryKeyedLimiter {
    /// A limiter of `limit` units per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { windows: DashMap::new(), limit: limit.max(1), window }
    }

    fn decide(&self, key: &str) -> RateDecision {
        let now = Instant::now();
        let mut w = self.windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(w.0) >= self.window {
            *w = (now, 0);
        }
        w.1 = w.1.saturating_add(1);
        let reset = self.window.saturating_sub(now.duration_since(w.0)).as_secs_f64().ceil().max(1.0) as u64;
        let allowed = w.1 <= self.limit;
        RateDecision {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(w.1),
            reset_secs: reset,
            retry_after_secs: if allowed { 0 } else { reset },
        }
    }
}

impl KeyedLimit for MemoryKeyedLimiter {
    fn check<'a>(&'a self, key: &'a str) -> BoxFuture<'a, RateDecision> {
        let d = self.decide(key);
        Box::pin(async move { d })
    }

    fn purge(&self) {
        let now = Instant::now();
        self.windows.retain(|_, (start, _)| now.duration_since(*start) < self.window);
    }
}

/// `limit` units per `window` per key, counted in Redis across every node.
pub struct RedisKeyedLimiter {
    redis: Redis,
    name: &'static str,
    limit: u32,
    window: Duration,
    script: redis::Script,
    fallback: Arc<MemoryKeyedLimiter>,
}

impl RedisKeyedLimiter {
    /// A limiter named `name` (its keys' prefix) of `limit` units per `window`.
    pub fn new(redis: Redis, name: &'static str, limit: u32, window: Duration) -> Self {
        Self {
            redis,
            name,
            limit: limit.max(1),
            window,
            script: redis::Script::new(WINDOW_SCRIPT),
            fallback: Arc::new(MemoryKeyedLimiter::new(limit, window)),
        }
    }
}

impl KeyedLimit for RedisKeyedLimiter {
    fn check<'a>(&'a self, key: &'a str) -> BoxFuture<'a, RateDecision> {
        Box::pin(async move {
            let mut conn = self.redis.conn();
            let mut invocation = self.script.key(self.redis.key(&format!("{}:{key}", self.name)));
            invocation.arg(self.window.as_millis() as u64);
            match self.redis.guard(invocation.invoke_async::<(i64, i64)>(&mut conn)).await {
                Ok((count, ttl_ms)) => window_decision(count, ttl_ms, self.limit),
                Err(e) => {
                    tracing::debug!(error = %e, "redis unavailable; mail limit counted on this node");
                    metrics::counter!("janua_redis_errors_total", "concern" => "mail_limit").increment(1);
                    self.fallback.check(key).await
                }
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
    fn counts_per_key_within_the_window() {
        let l = MemoryKeyedLimiter::new(2, Duration::from_secs(3600));
        let a = address_key("Ann@Example.com");
        assert_eq!(a, address_key("ann@example.com"));
        assert!(l.decide(&a).allowed && l.decide(&a).allowed);
        let refused = l.decide(&a);
        assert!(!refused.allowed && refused.retry_after_secs > 3500);
        assert!(l.decide(&address_key("bob@example.com")).allowed);
        assert_eq!(ip_key("2001:db8:1:2::9".parse().unwrap()), "ip:2001:db8:1:2::");
    }
}
