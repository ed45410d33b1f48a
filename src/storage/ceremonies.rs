//! Short-lived, single-use server state between two requests: WebAuthn ceremony state and MFA
//! sign-in tokens. Behind a trait so a shared cache (Redis: `SET … EX` / `GETDEL`) can replace
//! the in-process map when several nodes serve.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::future::BoxFuture;

/// Which kind of state a key names (keys of different kinds never collide).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CeremonyKind {
    PasskeyRegistration,
    PasskeyAuthentication,
    MfaToken,
    /// A started SSO sign-in: a SAML request id (`InResponseTo`) or an OIDC `state`.
    SsoRequest,
    /// The one-time code a browser brings back from an SSO redirect (`POST /sso/exchange`).
    SsoCode,
    /// An SAML assertion id (or OIDC authorization code) already consumed: replay protection.
    SsoSeen,
}

impl CeremonyKind {
    /// The key prefix a shared cache would use.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::PasskeyRegistration => "webauthn:reg",
            Self::PasskeyAuthentication => "webauthn:auth",
            Self::MfaToken => "mfa:token",
            Self::SsoRequest => "sso:request",
            Self::SsoCode => "sso:code",
            Self::SsoSeen => "sso:seen",
        }
    }
}

/// Stores opaque values under a key with an expiry; `take` returns a value at most once.
pub trait CeremonyStore: Send + Sync {
    /// Stores `value` under `key` for `ttl`, replacing what was there.
    fn put(
        &self,
        kind: CeremonyKind,
        key: &str,
        value: String,
        ttl: Duration,
    ) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Removes and returns the value, if present and not expired. Atomic: of two concurrent
    /// callers, at most one gets it.
    fn take(&self, kind: CeremonyKind, key: &str) -> BoxFuture<'_, anyhow::Result<Option<String>>>;
    /// Records `key` for `ttl` if it is not already recorded; `true` when this call recorded
    /// it. Atomic across nodes: of two concurrent claims, one wins (replay protection).
    fn claim(&self, kind: CeremonyKind, key: &str, ttl: Duration) -> BoxFuture<'_, anyhow::Result<bool>>;
    /// Drops expired entries (a cache with native expiry does nothing).
    fn purge_expired(&self);
}

/// The in-process implementation.
#[derive(Clone, Default)]
pub struct MemoryCeremonyStore {
    entries: Arc<DashMap<(CeremonyKind, String), (String, Instant)>>,
}

impl MemoryCeremonyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CeremonyStore for MemoryCeremonyStore {
    fn put(
        &self,
        kind: CeremonyKind,
        key: &str,
        value: String,
        ttl: Duration,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        self.entries.insert((kind, key.to_owned()), (value, Instant::now() + ttl));
        Box::pin(async { Ok(()) })
    }

    fn take(&self, kind: CeremonyKind, key: &str) -> BoxFuture<'_, anyhow::Result<Option<String>>> {
        let found = self
            .entries
            .remove(&(kind, key.to_owned()))
            .and_then(|(_, (v, until))| (until > Instant::now()).then_some(v));
        Box::pin(async move { Ok(found) })
    }

    fn claim(&self, kind: CeremonyKind, key: &str, ttl: Duration) -> BoxFuture<'_, anyhow::Result<bool>> {
        let now = Instant::now();
        let won = match self.entries.entry((kind, key.to_owned())) {
            dashmap::Entry::Occupied(mut e) if e.get().1 <= now => {
                e.insert((String::new(), now + ttl));
                true
            }
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(e) => {
                e.insert((String::new(), now + ttl));
                true
            }
        };
        Box::pin(async move { Ok(won) })
    }

    fn purge_expired(&self) {
        let now = Instant::now();
        self.entries.retain(|_, (_, until)| *until > now);
    }
}

/// Ceremony state in Redis (`SET … PX`, `GETDEL`), so a ceremony begun on one node finishes on
/// any other. When Redis does not answer, ceremonies are refused (`SERVICE_UNAVAILABLE`): their
/// state cannot be kept elsewhere without breaking single use across nodes.
#[derive(Clone)]
pub struct RedisCeremonyStore {
    redis: super::Redis,
}

impl RedisCeremonyStore {
    /// A store over `redis`.
    pub fn new(redis: super::Redis) -> Self {
        Self { redis }
    }

    fn key(&self, kind: CeremonyKind, key: &str) -> String {
        self.redis.key(&format!("{}:{key}", kind.prefix()))
    }
}

impl CeremonyStore for RedisCeremonyStore {
    fn put(
        &self,
        kind: CeremonyKind,
        key: &str,
        value: String,
        ttl: Duration,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        let key = self.key(kind, key);
        Box::pin(async move {
            let mut conn = self.redis.conn();
            let ms = ttl.as_millis().max(1) as u64;
            let mut set = redis::cmd("SET");
            set.arg(key).arg(value).arg("PX").arg(ms);
            self.redis.guard(set.query_async::<()>(&mut conn)).await?;
            Ok(())
        })
    }

    fn take(&self, kind: CeremonyKind, key: &str) -> BoxFuture<'_, anyhow::Result<Option<String>>> {
        let key = self.key(kind, key);
        Box::pin(async move {
            let mut conn = self.redis.conn();
            let mut get = redis::cmd("GETDEL");
            get.arg(key);
            Ok(self.redis.guard(get.query_async::<Option<String>>(&mut conn)).await?)
        })
    }

    fn claim(&self, kind: CeremonyKind, key: &str, ttl: Duration) -> BoxFuture<'_, anyhow::Result<bool>> {
        let key = self.key(kind, key);
        Box::pin(async move {
            let mut conn = self.redis.conn();
            let mut set = redis::cmd("SET");
            set.arg(key).arg("1").arg("NX").arg("PX").arg(ttl.as_millis().max(1) as u64);
            let reply: Option<String> = self.redis.guard(set.query_async(&mut conn)).await?;
            Ok(reply.is_some())
        })
    }

    fn purge_expired(&self) {}
}

/// The error of a ceremony store that did not answer: the service is unavailable for now.
pub fn unavailable(e: anyhow::Error) -> crate::error::AppError {
    tracing::warn!(error = %e, "ceremony state unavailable");
    metrics::counter!("janua_redis_errors_total", "concern" => "ceremonies").increment(1);
    crate::error::AppError::new(crate::error::ErrorCode::ServiceUnavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_are_taken_once_and_expire() {
        let s = MemoryCeremonyStore::new();
        let k = CeremonyKind::MfaToken;
        s.put(k, "a", "1".into(), Duration::from_secs(60)).await.unwrap();
        assert_eq!(s.take(CeremonyKind::PasskeyRegistration, "a").await.unwrap(), None);
        assert_eq!(s.take(k, "a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(s.take(k, "a").await.unwrap(), None);
        s.put(k, "b", "2".into(), Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(s.take(k, "b").await.unwrap(), None);
        let seen = CeremonyKind::SsoSeen;
        assert!(s.claim(seen, "id-1", Duration::from_secs(60)).await.unwrap());
        assert!(!s.claim(seen, "id-1", Duration::from_secs(60)).await.unwrap());
        assert!(s.claim(seen, "id-2", Duration::from_millis(1)).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(s.claim(seen, "id-2", Duration::from_secs(60)).await.unwrap());
    }
}
