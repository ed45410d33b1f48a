//! Failed sign-ins counted per email address — known or not, so a lockout reveals nothing
//! about which accounts exist — and a temporary lock after too many in a row.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use dashmap::DashMap;

/// Failures in a row, and the end of the lock once there is one.
type Entry = (i32, Option<DateTime<Utc>>);

/// Counts failures per lower-cased email, in process.
#[derive(Clone)]
pub struct LockoutStore {
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

impl LockoutStore {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_threshold_and_clears_on_success() {
        let s = LockoutStore::new(3, 60);
        assert_eq!(s.record_failure("a@x.io"), FailureOutcome::Counted);
        assert_eq!(s.record_failure("a@x.io"), FailureOutcome::Counted);
        assert!(matches!(s.record_failure("a@x.io"), FailureOutcome::LockedUntil(_)));
        assert!(s.locked_until("a@x.io").is_some());
        assert!(s.locked_until("b@x.io").is_none());
        s.record_success("a@x.io");
        assert!(s.locked_until("a@x.io").is_none());
    }
}
