//! Rate-limit units a node takes from Redis several at a time, so most requests of a busy client
//! are counted without a round trip. Units are taken from the shared count when they are leased,
//! so the cluster never allows more than the limit; a client may be refused a little early when
//! another node holds units it has not spent yet (at most a lease's worth per node a window).
//! Limits of fewer than [`PER_UNIT`] × 2 a minute take one unit at a time: exact, as before.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::rate_limits::{RateDecision, client_key, window_decision};

/// One unit leased per this many units of the minute's limit (a node holds at most 1/256 of it).
const PER_UNIT: u32 = 256;
/// The most units one lease takes (enough that 64 requests at once mostly find units held).
const MAX_LEASE: u32 = 256;

#[derive(Default)]
struct Lease {
    state: Mutex<Held>,
    /// One look at a time takes a lease for a client (others wait for it, or take one unit).
    taking: AtomicBool,
    /// Told when a look that took (or failed to take) a lease is over.
    taken: tokio::sync::Notify,
}

#[derive(Default, Clone, Copy)]
struct Held {
    /// The count of the next unit to spend, and of the last held (`next > last`: none left).
    next: i64,
    last: i64,
    ends: Option<Instant>,
}

/// The units each client's lease holds on this node.
pub(super) struct UnitLeases {
    size: u32,
    leases: DashMap<IpAddr, Arc<Lease>>,
}

/// The units a look asks for: a lease (and the right to store it), or a single unit.
pub(super) struct Claim {
    pub units: u32,
    taking: Option<Taking>,
}

/// Lowers a client's `taking` flag however the look ends (a request dropped mid-way too).
struct Taking(Arc<Lease>);

impl Drop for Taking {
    fn drop(&mut self) {
        self.0.taking.store(false, Ordering::Release);
        self.0.taken.notify_waiters();
    }
}

/// How long a request waits for another's lease before it takes a unit of its own.
const WAIT_FOR_LEASE: Duration = Duration::from_millis(50);

impl Claim {
    /// One unit, for a limiter without leases.
    pub(super) fn single() -> Self {
        Self { units: 1, taking: None }
    }
}

impl UnitLeases {
    /// Leases for a limit of `per_minute`, or `None` when units are best taken one at a time.
    pub(super) fn for_limit(per_minute: u32) -> Option<Self> {
        let size = (per_minute / PER_UNIT).min(MAX_LEASE);
        (size > 1).then(|| Self { size, leases: DashMap::new() })
    }

    /// One unit of `ip`'s lease, if it holds one in the current window.
    pub(super) fn take(&self, ip: IpAddr, limit: u32) -> Option<RateDecision> {
        let lease = self.leases.get(&client_key(ip))?.clone();
        let mut held = lease.state.lock().unwrap_or_else(|e| e.into_inner());
        let ends = held.ends?;
        let now = Instant::now();
        if held.next > held.last || now >= ends {
            return None;
        }
        let count = held.next;
        held.next += 1;
        let left_ms = ends.duration_since(now).as_millis() as i64;
        Some(window_decision(count, left_ms, limit))
    }

    /// [`Self::take`], or when another look is taking a lease for `ip`, a unit of that lease
    /// once it is there (at most [`WAIT_FOR_LEASE`] later).
    pub(super) async fn take_waiting(&self, ip: IpAddr, limit: u32) -> Option<RateDecision> {
        if let Some(d) = self.take(ip, limit) {
            return Some(d);
        }
        let lease = self.leases.get(&client_key(ip))?.clone();
        let taken = lease.taken.notified();
        tokio::pin!(taken);
        taken.as_mut().enable();
        if !lease.taking.load(Ordering::Acquire) {
            return None;
        }
        let _ = tokio::time::timeout(WAIT_FOR_LEASE, taken).await;
        self.take(ip, limit)
    }

    /// What the next look asks for `ip`: a lease, unless another look is taking one.
    pub(super) fn claim(&self, ip: IpAddr) -> Claim {
        let lease = self.leases.entry(client_key(ip)).or_default().clone();
        if lease.taking.swap(true, Ordering::AcqRel) {
            return Claim { units: 1, taking: None };
        }
        Claim { units: self.size, taking: Some(Taking(lease)) }
    }

    /// The decision for the first unit of a look's answer (`count` is the last unit it took,
    /// `ttl_ms` the window left); a lease's other units are held for the next requests.
    pub(super) fn settle(&self, claim: Claim, count: i64, ttl_ms: i64, limit: u32) -> RateDecision {
        let first = count - i64::from(claim.units) + 1;
        if let Some(Taking(lease)) = &claim.taking {
            let ends = Instant::now() + Duration::from_millis(ttl_ms.max(0) as u64);
            let held = Held { next: first + 1, last: count.min(i64::from(limit)), ends: Some(ends) };
            *lease.state.lock().unwrap_or_else(|e| e.into_inner()) = held;
        }
        window_decision(first, ttl_ms, limit)
    }

    /// Forgets leases whose window has ended.
    pub(super) fn purge(&self) {
        let now = Instant::now();
        self.leases.retain(|_, l| {
            l.taking.load(Ordering::Acquire)
                || l.state.lock().unwrap_or_else(|e| e.into_inner()).ends.is_some_and(|e| e > now)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        "192.0.2.7".parse().unwrap()
    }

    #[test]
    fn small_limits_take_single_units() {
        assert!(UnitLeases::for_limit(60).is_none());
        assert!(UnitLeases::for_limit(511).is_none());
        assert_eq!(UnitLeases::for_limit(1_000_000).unwrap().size, MAX_LEASE);
    }

    #[test]
    fn a_lease_is_spent_in_order_then_refused_past_the_limit() {
        let leases = UnitLeases::for_limit(2048).unwrap();
        assert_eq!(leases.size, 8);
        assert!(leases.take(ip(), 2048).is_none(), "nothing held before a look");
        let claim = leases.claim(ip());
        assert_eq!(claim.units, 8);
        assert_eq!(leases.claim(ip()).units, 1, "one lease taken at a time");
        // The window already held 2,040 units: this lease took 2,041..=2,048.
        let d = leases.settle(claim, 2048, 30_000, 2048);
        assert!(d.allowed);
        assert_eq!(d.remaining, 7);
        for left in (0..7).rev() {
            let d = leases.take(ip(), 2048).expect("held");
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        assert!(leases.take(ip(), 2048).is_none(), "spent");
        // A lease past the limit holds nothing and refuses.
        let claim = leases.claim(ip());
        assert_eq!(claim.units, 8, "the flag was lowered when the last claim settled");
        let d = leases.settle(claim, 2056, 30_000, 2048);
        assert!(!d.allowed);
        assert!(leases.take(ip(), 2048).is_none());
    }

    #[tokio::test]
    async fn a_request_waits_for_the_lease_another_is_taking() {
        let leases = Arc::new(UnitLeases::for_limit(4096).unwrap());
        let claim = leases.claim(ip());
        let waiting = tokio::spawn({
            let leases = leases.clone();
            async move { leases.take_waiting(ip(), 4096).await }
        });
        tokio::task::yield_now().await;
        leases.settle(claim, 16, 30_000, 4096);
        let d = waiting.await.unwrap().expect("a unit of the lease taken meanwhile");
        assert_eq!(d.remaining, 4096 - 2);
        // No look taking a lease: nothing to wait for.
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(leases.take_waiting(other, 4096).await.is_none());
    }

    #[test]
    fn a_dropped_claim_lets_the_next_look_take_a_lease() {
        let leases = UnitLeases::for_limit(4096).unwrap();
        drop(leases.claim(ip()));
        assert_eq!(leases.claim(ip()).units, 16);
    }

    #[test]
    fn a_lease_ends_with_its_window() {
        let leases = UnitLeases::for_limit(4096).unwrap();
        let claim = leases.claim(ip());
        leases.settle(claim, 16, 0, 4096);
        assert!(leases.take(ip(), 4096).is_none(), "the window is over");
        leases.purge();
        assert!(leases.leases.is_empty());
    }
}
