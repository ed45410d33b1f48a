//! Per-client-IP request limits (GCRA, via governor), with the figures for `X-RateLimit-*`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use futures::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::storage::Redis;

type Limiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock, StateInformationMiddleware>;

/// The verdict on one request and the numbers for the response headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the allowance is whole again.
    pub reset_secs: u64,
    /// Seconds to wait before the next request is allowed (0 when allowed).
    pub retry_after_secs: u64,
}

/// Counts requests per client IP and decides.
pub trait RateLimit: Send + Sync {
    /// Counts one request from `ip`.
    fn check(&self, ip: IpAddr) -> BoxFuture<'_, RateDecision>;
    /// Forgets clients whose allowance is whole again (bounded memory).
    fn purge(&self);
}

/// Requests per minute per client IP, in process.
#[derive(Clone)]
pub struct IpRateLimiter {
    limiter: Arc<Limiter>,
    limit: u32,
    clock: DefaultClock,
}

impl IpRateLimiter {
    /// `per_minute` requests a minute per IP, as a burst that refills evenly.
    pub fn new(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).expect("max(1) is non-zero");
        let limiter =
            RateLimiter::dashmap(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>();
        Self { limiter: Arc::new(limiter), limit: n.get(), clock: DefaultClock::default() }
    }

    /// Counts one request from `ip`.
    pub fn check(&self, ip: IpAddr) -> RateDecision {
        let per_token = 60.0 / f64::from(self.limit);
        match self.limiter.check_key(&ip) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateDecision {
                    allowed: true,
                    limit: self.limit,
                    remaining,
                    reset_secs: (f64::from(self.limit - remaining) * per_token).ceil() as u64,
                    retry_after_secs: 0,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now()).as_secs_f64().ceil().max(1.0) as u64;
                RateDecision {
                    allowed: false,
                    limit: self.limit,
                    remaining: 0,
                    reset_secs: (f64::from(self.limit) * per_token).ceil() as u64,
                    retry_after_secs: wait,
                }
            }
        }
    }

    /// Forgets clients whose allowance is whole again (bounded memory).
    pub fn purge(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

impl RateLimit for IpRateLimiter {
    fn check(&self, ip: IpAddr) -> BoxFuture<'_, RateDecision> {
        let d = IpRateLimiter::check(self, ip);
        Box::pin(async move { d })
    }

    fn purge(&self) {
        IpRateLimiter::purge(self);
    }
}

/// A fixed one-minute window per IP: `INCR`, with `PEXPIRE` set by the first request. Returns
/// the count and the window's remaining milliseconds.
const WINDOW_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
local t = redis.call('PTTL', KEYS[1])
if t < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  t = tonumber(ARGV[1])
end
return {n, t}
";

/// Requests per minute per client IP counted in Redis, across every node (a fixed window of
/// 60 s). When Redis does not answer, this node limits alone with the in-process limiter.
#[derive(Clone)]
pub struct RedisRateLimiter {
    redis: Redis,
    limit: u32,
    script: Arc<redis::Script>,
    fallback: IpRateLimiter,
}

impl RedisRateLimiter {
    /// `per_minute` requests a minute per IP, cluster-wide.
    pub fn new(redis: Redis, per_minute: u32) -> Self {
        Self {
            redis,
            limit: per_minute.max(1),
            script: Arc::new(redis::Script::new(WINDOW_SCRIPT)),
            fallback: IpRateLimiter::new(per_minute),
        }
    }
}

impl RateLimit for RedisRateLimiter {
    fn check(&self, ip: IpAddr) -> BoxFuture<'_, RateDecision> {
        Box::pin(async move {
            let mut conn = self.redis.conn();
            let mut invocation = self.script.key(self.redis.key(&format!("ratelimit:{ip}")));
            invocation.arg(60_000);
            let r = self.redis.guard(invocation.invoke_async::<(i64, i64)>(&mut conn)).await;
            match r {
                Ok((count, ttl_ms)) => {
                    let reset = ((ttl_ms.max(0) as f64) / 1000.0).ceil().max(1.0) as u64;
                    let allowed = count <= i64::from(self.limit);
                    RateDecision {
                        allowed,
                        limit: self.limit,
                        remaining: (i64::from(self.limit) - count).max(0) as u32,
                        reset_secs: reset,
                        retry_after_secs: if allowed { 0 } else { reset },
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "redis unavailable; rate limit counted on this node");
                    metrics::counter!("janua_redis_errors_total", "concern" => "rate_limit").increment(1);
                    self.fallback.check(ip)
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
    fn counts_down_then_refuses() {
        let l = IpRateLimiter::new(3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let r: Vec<_> = (0..4).map(|_| l.check(ip)).collect();
        assert_eq!(r.iter().map(|d| d.remaining).collect::<Vec<_>>(), [2, 1, 0, 0]);
        assert!(r[2].allowed && !r[3].allowed);
        assert!(r[3].retry_after_secs >= 1 && r[3].retry_after_secs <= 20);
        assert!(l.check("10.0.0.2".parse().unwrap()).allowed, "another IP has its own allowance");
    }
}
