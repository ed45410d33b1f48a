//! Per-client-IP request limits (GCRA, via governor), with the figures for `X-RateLimit-*`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

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

/// Requests per minute per client IP.
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
