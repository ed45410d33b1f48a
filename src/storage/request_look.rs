//! What an authenticated request asks of Redis before it runs — a unit of its client's rate
//! limit, its session's revocation and its user's stamp — in one round trip instead of two, and
//! in none when this node holds leased units and a kept check (`unit_leases`, `session_leases`).

use std::net::IpAddr;

use uuid::Uuid;

use super::rate_limits::{RateDecision, RateLimit, RedisRateLimiter};
use super::revocations::{RedisRevocationStore, SessionCheck};
use super::unit_leases::Claim;

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
        // A unit leased before and a check kept for its lease need no look at all.
        let kept = self.revocations.kept(session_id, user_id);
        let leased = self.limiter.take_leased(ip, kept.is_some()).await;
        if let (Some(d), Some(check)) = (leased, kept) {
            return (d, Some(check));
        }
        let mut pipe = redis::pipe();
        let claim = leased.is_none().then(|| self.limiter.add_units(&mut pipe, ip));
        let ticket = kept.is_none().then(|| {
            self.revocations.add_look(&mut pipe, session_id, Some(user_id));
            self.revocations.leases().ticket()
        });
        let redis = self.revocations.redis();
        let mut conn = redis.conn();
        let answers = match redis.guard(pipe.query_async::<Vec<redis::Value>>(&mut conn)).await {
            Ok(answers) => Some(answers),
            Err(e) => {
                tracing::debug!(error = %e, "redis unavailable; rate limit counted on this node");
                None
            }
        };
        let mut answers = answers.map(Vec::into_iter);
        let mut next = || answers.as_mut().and_then(Iterator::next);
        let decision = match leased {
            Some(d) => d,
            None => {
                let unit = next().and_then(|v| redis::from_redis_value::<(i64, i64)>(v).ok());
                self.limiter.decide_units(ip, unit, claim.unwrap_or_else(Claim::single)).await
            }
        };
        let Some(ticket) = ticket else {
            return (decision, kept);
        };
        let found = next().and_then(|v| redis::from_redis_value::<bool>(v).ok());
        let epoch = next().and_then(|v| redis::from_redis_value::<Option<String>>(v).ok());
        let version = next().and_then(|v| redis::from_redis_value::<Option<u64>>(v).ok());
        let check = match (found, epoch, version) {
            (Some(found), Some(Some(epoch)), Some(version)) => {
                let check = self.revocations.vouched(Some(user_id), found, &epoch, version).await;
                self.revocations.keep(ticket, session_id, user_id, check);
                Some(check)
            }
            _ => None,
        };
        (decision, check)
    }
}
