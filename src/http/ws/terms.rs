//! The terms of a `/graphql/ws` connection: what `connection_init` grants it ([`Granted`]) or why
//! it is refused ([`Refusal`]), the bounds it runs within ([`Limits`], enforced by a [`Bucket`])
//! and the close codes it ends with.

use std::time::Duration;

use async_graphql::Data;
use chrono::{DateTime, Utc};
use tokio::time::Instant;
use uuid::Uuid;

use crate::context::RequestContext;

/// Close codes of graphql-transport-ws.
pub(super) mod close {
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
    /// RFC 6455: a data type the endpoint does not accept (binary frames).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// RFC 6455: a text message that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// RFC 6455: a message over the limit (`JANUA_BODY_LIMIT`).
    pub const TOO_BIG: u16 = 1009;
}

/// What `connection_init` grants a connection.
pub struct Granted {
    /// What its operations run with.
    pub data: Data,
    /// Who asks, in which language: for the errors the connection answers with itself.
    pub context: RequestContext,
    /// The session of a signed-in user, which the connection lives no longer than.
    pub session: Option<SessionGrant>,
    /// The connection's place in its user's count, held as long as it is open.
    pub slot: Option<super::admission::Slot>,
}

/// Why `connection_init` was refused: the close code and its reason.
#[derive(Debug)]
pub struct Refusal {
    pub code: u16,
    pub reason: String,
}

impl Refusal {
    /// A refused credential: 4403 with the error code as reason.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self { code: close::FORBIDDEN, reason: reason.into() }
    }

    /// One connection more than the user may hold: 4429.
    pub fn too_many_connections() -> Self {
        Self { code: close::TOO_MANY_INITS, reason: "Too many connections".into() }
    }
}

/// The session a connection was authenticated by, and when its access token expires.
#[derive(Clone, Copy, Debug)]
pub struct SessionGrant {
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// How long a connection may wait and how much it may ask.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long the client may take to send `connection_init` (graphql-transport-ws closes the
    /// connection with 4408 after it; a legacy client gets `connection_error`).
    pub init_timeout: Duration,
    /// Operations per second on average (the token bucket's refill).
    pub operations_per_second: u32,
    /// Operations at once (the token bucket's size).
    pub operations_burst: u32,
    /// Operations running at once; one more is answered with an `error` (`RATE_LIMITED`).
    pub max_operations: usize,
}

/// A token bucket: `burst` operations at once, refilled at `rate` per second.
pub(super) struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    pub(super) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self { tokens: burst, rate: f64::from(rate), burst, at: now }
    }

    /// Takes one operation's token, if there is one at `now`.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2, 3, t0);
        assert_eq!((0..4).map(|_| b.take(t0)).collect::<Vec<_>>(), [true, true, true, false]);
        // Half a second refills one of two per second; never more than the burst.
        assert!(b.take(t0 + Duration::from_millis(500)));
        assert!(!b.take(t0 + Duration::from_millis(500)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..4).map(|_| b.take(later)).collect::<Vec<_>>(), [true, true, true, false]);
    }
}
