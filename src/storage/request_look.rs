//! What an authenticated request asks of Redis before it runs — a unit of its client's rate
//! limit, its session's revocation and its user's stamp — in one round trip instead of two.

use std::net::IpAddr;

use uuid::Uuid;

use super::rate_limits::{RateDecision, RateLimit, RedisRateLimiter};
use super::revocations::{RedisRevocationStore, SessionCheck};

/// The request rate limiter and the revocation store, both in the same Redis.
#[derive(Clone)]
pub struct RequestLook {
    limiter: RedisRateLimiter,
    revocations: RedisRevocationStore,
}

impl RequestLook {
    /// Looks through `limiter` and `revocations` (which share one Redis) at once.
    pub fn new(limiter: RedisRateLimiter, revocations: RedisRevocationStore) -> Self {
        Self { limiter, revocations }
    }

    /// The rate-limit decision for `ip`, and what `revocations.check(session_id, user_id)`
    /// answers when Redis alone can tell, in one round trip. The ids may come from a token not
    /// verified yet: the look only reads, its answer is for the caller to use only once a token
    /// with these very claims has verified, and whatever needs the database (Redis lost its
    /// data, or did not answer) is left to that check, after the verification (`None`).
    pub async fn limit_and_check(
        &self,
        ip: IpAddr,
        session_id: Uuid,
        user_id: Uuid,
    ) -> (RateDecision, Option<SessionCheck>) {
        if self.revocations.revoked_here(session_id) {
            let revoked = SessionCheck { revoked: true, user: None };
            return (self.limiter.check(ip).await, Some(revoked));
        }
        let mut pipe = redis::pipe();
        self.limiter.add_unit(&mut pipe, ip);
        self.revocations.add_look(&mut pipe, session_id, Some(user_id));
        let redis = self.revocations.redis();
        let mut conn = redis.conn();
        type Answers = ((i64, i64), bool, Option<String>, Option<u64>);
        match redis.guard(pipe.query_async::<Answers>(&mut conn)).await {
            Ok((unit, found, Some(epoch), version)) => {
                let check = self.revocations.vouched(Some(user_id), found, &epoch, version).await;
                (self.limiter.decide(ip, Some(unit)).await, Some(check))
            }
            Ok((unit, _, None, _)) => (self.limiter.decide(ip, Some(unit)).await, None),
            Err(e) => {
                tracing::debug!(error = %e, "redis unavailable; rate limit counted on this node");
                (self.limiter.decide(ip, None).await, None)
            }
        }
    }
}
