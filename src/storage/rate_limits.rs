//! Per-client limits: requests (GCRA, via governor, with the figures for `X-RateLimit-*`) and
//! credential attempts (a fixed window that gives back the units of credentials that proved good).
//! A client is an IPv4 address or an IPv6 /64 (one subscriber's prefix, as ISPs hand them out).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use futures::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::Redis;
use super::unit_leases::{Claim, UnitLeases};

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

/// The key a client is limited by: an IPv4 address as it is, an IPv6 address by its /64 prefix
/// (an IPv4-mapped IPv6 address as the IPv4 address it maps).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & (u128::MAX << 64))),
        },
    }
}

/// Counts units per client (see [`client_key`]) and decides.
pub trait RateLimit: Send + Sync {
    /// Counts one unit from `ip`.
    fn check(&self, ip: IpAddr) -> BoxFuture<'_, RateDecision>;
    /// Gives back one unit `check` counted and allowed for `ip` (a credential that proved good).
    /// A limiter that cannot give back (the request limiter) keeps it.
    fn release(&self, _ip: IpAddr) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
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
        match self.limiter.check_key(&client_key(ip)) {
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

/// Units per minute per client in a fixed one-minute window, in process; a unit given back
/// ([`RateLimit::release`]) may be taken again. The credential-attempt limiter of one node.
#[derive(Clone)]
pub struct WindowRateLimiter {
    windows: Arc<DashMap<IpAddr, (Instant, u32)>>,
    limit: u32,
}

const WINDOW: Duration = Duration::from_secs(60);

impl WindowRateLimiter {
    /// `per_minute` units a minute per client.
    pub fn new(per_minute: u32) -> Self {
        Self { windows: Arc::new(DashMap::new()), limit: per_minute.max(1) }
    }

    /// Counts one unit from `ip` (atomically: concurrent checks never allow more than the limit).
    pub fn check(&self, ip: IpAddr) -> RateDecision {
        let now = Instant::now();
        let mut w = self.windows.entry(client_key(ip)).or_insert((now, 0));
        if now.duration_since(w.0) >= WINDOW {
            *w = (now, 0);
        }
        w.1 = w.1.saturating_add(1);
        let reset = WINDOW.saturating_sub(now.duration_since(w.0)).as_secs_f64().ceil().max(1.0) as u64;
        let allowed = w.1 <= self.limit;
        RateDecision {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(w.1),
            reset_secs: reset,
            retry_after_secs: if allowed { 0 } else { reset },
        }
    }

    /// Gives back one unit of `ip`'s current window.
    pub fn release(&self, ip: IpAddr) {
        if let Some(mut w) = self.windows.get_mut(&client_key(ip))
            && Instant::now().duration_since(w.0) < WINDOW
        {
            w.1 = w.1.saturating_sub(1);
        }
    }

    /// Forgets windows that are over.
    pub fn purge(&self) {
        let now = Instant::now();
        self.windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
    }
}

impl RateLimit for WindowRateLimiter {
    fn check(&self, ip: IpAddr) -> BoxFuture<'_, RateDecision> {
        let d = WindowRateLimiter::check(self, ip);
        Box::pin(async move { d })
    }

    fn release(&self, ip: IpAddr) -> BoxFuture<'_, ()> {
        WindowRateLimiter::release(self, ip);
        Box::pin(async {})
    }

    fn purge(&self) {
        WindowRateLimiter::purge(self);
    }
}

/// A fixed window per key: `INCRBY` of `ARGV[2]` units (one when absent), with `PEXPIRE` of
/// `ARGV[1]` ms set by the window's first. Returns the count of the last unit taken and the
/// window's remaining milliseconds.
pub(super) const WINDOW_SCRIPT: &str = r"
local n = redis.call('INCRBY', KEYS[1], tonumber(ARGV[2] or '1'))
local t = redis.call('PTTL', KEYS[1])
if t < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  t = tonumber(ARGV[1])
end
return {n, t}
";

/// The decision of [`WINDOW_SCRIPT`]'s answer: `count` units in a window with `ttl_ms` left.
pub(super) fn window_decision(count: i64, ttl_ms: i64, limit: u32) -> RateDecision {
    let reset = ((ttl_ms.max(0) as f64) / 1000.0).ceil().max(1.0) as u64;
    let allowed = count <= i64::from(limit);
    RateDecision {
        allowed,
        limit,
        remaining: (i64::from(limit) - count).max(0) as u32,
        reset_secs: reset,
        retry_after_secs: if allowed { 0 } else { reset },
    }
}

/// Gives back one unit of the current window, if it still holds one.
const RELEASE_SCRIPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('DECR', KEYS[1])
end
return n
";

/// Units per minute per client counted in Redis, across every node (a fixed window of 60 s).
/// When Redis does not answer, this node limits alone with an in-process limiter.
#[derive(Clone)]
pub struct RedisRateLimiter {
    redis: Redis,
    /// `ratelimit` (requests) or `credlimit` (credential attempts): keeps the counters apart.
    name: &'static str,
    limit: u32,
    release: Arc<redis::Script>,
    fallback: Arc<dyn RateLimit>,
    /// Units leased several at a time (the request limiter, when its limit is high enough).
    units: Option<Arc<UnitLeases>>,
}

impl RedisRateLimiter {
    /// `per_minute` requests a minute per client, cluster-wide.
    pub fn new(redis: Redis, per_minute: u32) -> Self {
        let mut limiter =
            Self::named(redis, "ratelimit", per_minute, Arc::new(IpRateLimiter::new(per_minute)));
        limiter.units = UnitLeases::for_limit(per_minute).map(Arc::new);
        limiter
    }

    /// `per_minute` SCIM requests a minute per client, cluster-wide.
    pub fn scim(redis: Redis, per_minute: u32) -> Self {
        Self::named(redis, "scimlimit", per_minute, Arc::new(IpRateLimiter::new(per_minute)))
    }

    /// `per_minute` credential attempts a minute per client, cluster-wide; units of attempts
    /// that succeeded are given back.
    pub fn credentials(redis: Redis, per_minute: u32) -> Self {
        Self::named(redis, "credlimit", per_minute, Arc::new(WindowRateLimiter::new(per_minute)))
    }

    fn named(redis: Redis, name: &'static str, per_minute: u32, fallback: Arc<dyn RateLimit>) -> Self {
        Self {
            redis,
            name,
            limit: per_minute.max(1),
            release: Arc::new(redis::Script::new(RELEASE_SCRIPT)),
            fallback,
            units: None,
        }
    }

    fn key(&self, ip: IpAddr) -> String {
        self.redis.key(&format!("{}:{}", self.name, client_key(ip)))
    }

    /// A unit of `ip`'s lease on this node, if it holds one (no round trip); with `wait`, also
    /// one of a lease another request is taking for `ip` (when this one has no look to make).
    pub(super) async fn take_leased(&self, ip: IpAddr, wait: bool) -> Option<RateDecision> {
        let units = self.units.as_ref()?;
        if wait { units.take_waiting(ip, self.limit).await } else { units.take(ip, self.limit) }
    }

    /// Adds the command that takes units for `ip` ([`WINDOW_SCRIPT`], sent whole: in a pipeline
    /// there is no retry after `NOSCRIPT`; Redis finds the compiled script by its digest): a
    /// lease's worth, or one. Its answer goes to [`Self::decide_units`] with the claim.
    pub(super) fn add_units(&self, pipe: &mut redis::Pipeline, ip: IpAddr) -> Claim {
        let claim = self.units.as_ref().map_or_else(Claim::single, |u| u.claim(ip));
        pipe.cmd("EVAL").arg(WINDOW_SCRIPT).arg(1).arg(self.key(ip)).arg(60_000).arg(claim.units);
        claim
    }

    /// The decision of the units' answer: the last unit's count and the window left, or `None`
    /// when Redis did not answer (then this node limits alone).
    pub(super) async fn decide_units(
        &self,
        ip: IpAddr,
        answer: Option<(i64, i64)>,
        claim: Claim,
    ) -> RateDecision {
        match (answer, &self.units) {
            (Some((count, ttl_ms)), Some(units)) => units.settle(claim, count, ttl_ms, self.limit),
            (Some((count, ttl_ms)), None) => window_decision(count, ttl_ms, self.limit),
            (None, _) => {
                metrics::counter!("janua_redis_errors_total", "concern" => "rate_limit").increment(1);
                self.fallback.check(ip).await
            }
        }
    }
}

impl RateLimit for RedisRateLimiter {
    fn check(&self, ip: IpAddr) -> BoxFuture<'_, RateDecision> {
        Box::pin(async move {
            if let Some(d) = self.take_leased(ip, true).await {
                return d;
            }
            let mut conn = self.redis.conn();
            let mut pipe = redis::pipe();
            let claim = self.add_units(&mut pipe, ip);
            let r = self.redis.guard(pipe.query_async::<((i64, i64),)>(&mut conn)).await;
            if let Err(e) = &r {
                tracing::debug!(error = %e, "redis unavailable; rate limit counted on this node");
            }
            self.decide_units(ip, r.ok().map(|(unit,)| unit), claim).await
        })
    }

    fn release(&self, ip: IpAddr) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.redis.conn();
            let invocation = self.release.key(self.key(ip));
            if let Err(e) = self.redis.guard(invocation.invoke_async::<i64>(&mut conn)).await {
                tracing::debug!(error = %e, "redis unavailable; unit given back on this node");
                metrics::counter!("janua_redis_errors_total", "concern" => "rate_limit").increment(1);
                self.fallback.release(ip).await;
            }
        })
    }

    fn purge(&self) {
        self.fallback.purge();
        if let Some(units) = &self.units {
            units.purge();
        }
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

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), ip("2001:db8:1:2::"));
        assert_ne!(client_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("10.1.2.3")), ip("10.1.2.3"), "IPv4 stays per address");
        assert_eq!(client_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));

        // One /64 shares one allowance, in both limiters; the next /64 has its own.
        let l = IpRateLimiter::new(2);
        assert!(l.check(ip("2001:db8:1:2::1")).allowed && l.check(ip("2001:db8:1:2::2")).allowed);
        assert!(!l.check(ip("2001:db8:1:2:dead:beef::3")).allowed);
        assert!(l.check(ip("2001:db8:1:3::1")).allowed);
        let w = WindowRateLimiter::new(2);
        assert!(w.check(ip("2001:db8::1")).allowed && w.check(ip("2001:db8::2")).allowed);
        assert!(!w.check(ip("2001:db8::3")).allowed);
        assert!(w.check(ip("10.0.0.1")).allowed && w.check(ip("10.0.0.2")).allowed);
    }

    #[test]
    fn a_released_unit_can_be_taken_again() {
        let w = WindowRateLimiter::new(2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(w.check(ip).allowed);
        w.release(ip);
        assert!(w.check(ip).allowed && w.check(ip).allowed);
        let refused = w.check(ip);
        assert!(!refused.allowed && refused.retry_after_secs >= 1);
    }
}
