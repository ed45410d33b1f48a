//! Which sessions are revoked, answered without a database query per request.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use futures::future::BoxFuture;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use entities::session;

use super::Redis;

/// Revoked sessions: a revocation recorded here is refused by every node sharing the store at
/// the next request.
pub trait RevocationStore: Send + Sync {
    /// Marks a session revoked until it would have expired anyway (after the database commit).
    fn revoke(&self, session_id: Uuid, expires_at: DateTime<Utc>) -> BoxFuture<'_, ()>;
    /// Whether tokens of this session must be refused. An error means nobody could tell
    /// (callers refuse the request).
    fn is_revoked(&self, session_id: Uuid) -> BoxFuture<'_, anyhow::Result<bool>>;
    /// Forgets revocations of sessions that have expired (their tokens are refused anyway).
    fn purge_expired(&self);
}

/// Every revoked, unexpired session in the database.
async fn revoked_in_db(db: &DatabaseConnection) -> anyhow::Result<Vec<session::Model>> {
    Ok(session::Entity::find()
        .filter(session::Column::RevokedAt.is_not_null())
        .filter(session::Column::ExpiresAt.gt(Utc::now()))
        .all(db)
        .await?)
}

/// Revoked sessions that have not yet expired, kept in process. It is loaded from the database
/// at start and updated by every revocation this node makes (one node, no Redis).
#[derive(Clone, Default)]
pub struct MemoryRevocationStore {
    revoked: Arc<DashMap<Uuid, DateTime<Utc>>>,
}

impl MemoryRevocationStore {
    /// Loads every revoked, unexpired session.
    pub async fn load(db: &DatabaseConnection) -> anyhow::Result<Self> {
        let store = Self::default();
        for s in revoked_in_db(db).await? {
            store.revoked.insert(s.id, s.expires_at);
        }
        Ok(store)
    }

    fn insert(&self, session_id: Uuid, expires_at: DateTime<Utc>) {
        self.revoked.insert(session_id, expires_at);
    }

    fn contains(&self, session_id: Uuid) -> bool {
        self.revoked.contains_key(&session_id)
    }
}

impl RevocationStore for MemoryRevocationStore {
    fn revoke(&self, session_id: Uuid, expires_at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        self.insert(session_id, expires_at);
        Box::pin(async {})
    }

    fn is_revoked(&self, session_id: Uuid) -> BoxFuture<'_, anyhow::Result<bool>> {
        let found = self.contains(session_id);
        Box::pin(async move { Ok(found) })
    }

    fn purge_expired(&self) {
        let now = Utc::now();
        self.revoked.retain(|_, exp| *exp > now);
    }
}

/// Revocations shared through Redis: `SET revoked:<sid> 1 EX <seconds left>`, checked with
/// `EXISTS` on every authenticated request. What this node revoked itself is also kept locally.
/// When Redis does not answer, the check reads `sessions.revoked_at` from the database instead
/// (slower, never wrong); revocations Redis missed are written again once it answers.
///
/// A marker key `revocations:synced` is set once every revocation of the database has been
/// written. A Redis that lost its data (restarted without persistence) has no marker: until a
/// node has written them all back, checks read the database.
#[derive(Clone)]
pub struct RedisRevocationStore {
    redis: Redis,
    db: DatabaseConnection,
    local: MemoryRevocationStore,
    /// Revocations not yet written to Redis (it did not answer).
    pending: Arc<DashMap<Uuid, DateTime<Utc>>>,
    /// A write-back is running on this node.
    syncing: Arc<std::sync::atomic::AtomicBool>,
}

impl RedisRevocationStore {
    /// A store over `redis`, with this node's local copy loaded from the database.
    pub async fn load(redis: Redis, db: DatabaseConnection) -> anyhow::Result<Self> {
        let local = MemoryRevocationStore::load(&db).await?;
        Ok(Self { redis, db, local, pending: Arc::default(), syncing: Arc::default() })
    }

    fn key(&self, session_id: Uuid) -> String {
        self.redis.key(&format!("revoked:{session_id}"))
    }

    async fn write(&self, session_id: Uuid, expires_at: DateTime<Utc>) -> redis::RedisResult<()> {
        let secs = (expires_at - Utc::now()).num_seconds().max(1);
        let mut conn = self.redis.conn();
        let key = self.key(session_id);
        self.redis
            .guard(redis::cmd("SET").arg(key).arg(1).arg("EX").arg(secs).query_async::<()>(&mut conn))
            .await
    }

    fn marker(&self) -> String {
        self.redis.key("revocations:synced")
    }

    /// Writes every revoked, unexpired session of the database to Redis, then the marker, unless
    /// the marker is there already (Redis kept its data). Returns how many were written.
    pub async fn resync(&self) -> anyhow::Result<usize> {
        use std::sync::atomic::Ordering;
        if self.syncing.swap(true, Ordering::AcqRel) {
            return Ok(0);
        }
        let result = async {
            let mut conn = self.redis.conn();
            if redis::cmd("EXISTS").arg(self.marker()).query_async::<bool>(&mut conn).await? {
                return Ok(0);
            }
            let rows = revoked_in_db(&self.db).await?;
            let n = rows.len();
            for s in rows {
                self.write(s.id, s.expires_at).await?;
            }
            redis::cmd("SET").arg(self.marker()).arg(1).query_async::<()>(&mut conn).await?;
            tracing::info!(revocations = n, "revocations written back to redis");
            Ok(n)
        }
        .await;
        self.syncing.store(false, Ordering::Release);
        self.flush_pending().await;
        result
    }

    async fn flush_pending(&self) {
        let pending: Vec<(Uuid, DateTime<Utc>)> =
            self.pending.iter().map(|e| (*e.key(), *e.value())).collect();
        for (id, exp) in pending {
            if self.write(id, exp).await.is_ok() {
                self.pending.remove(&id);
            }
        }
    }

    async fn in_database(&self, session_id: Uuid) -> anyhow::Result<bool> {
        let s = session::Entity::find_by_id(session_id).one(&self.db).await?;
        Ok(s.is_none_or(|s| s.revoked_at.is_some()))
    }
}

impl RevocationStore for RedisRevocationStore {
    fn revoke(&self, session_id: Uuid, expires_at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.local.insert(session_id, expires_at);
            if let Err(e) = self.write(session_id, expires_at).await {
                tracing::warn!(error = %e, "redis did not record a revocation; it will be written again");
                metrics::counter!("janua_redis_errors_total", "concern" => "revocations").increment(1);
                self.pending.insert(session_id, expires_at);
            }
        })
    }

    fn is_revoked(&self, session_id: Uuid) -> BoxFuture<'_, anyhow::Result<bool>> {
        Box::pin(async move {
            if self.local.contains(session_id) {
                return Ok(true);
            }
            let mut conn = self.redis.conn();
            let mut pipe = redis::pipe();
            pipe.cmd("EXISTS").arg(self.key(session_id)).cmd("EXISTS").arg(self.marker());
            let r = self.redis.guard(pipe.query_async::<(bool, bool)>(&mut conn)).await;
            match r {
                Ok((found, true)) => {
                    if !self.pending.is_empty() {
                        self.flush_pending().await;
                    }
                    Ok(found)
                }
                Ok((found, false)) => {
                    // Redis lost (or never had) the revocations: write them back, ask the database.
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.resync().await {
                            tracing::warn!(error = %e, "writing revocations back to redis failed");
                        }
                    });
                    Ok(found || self.in_database(session_id).await?)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "redis unavailable; revocation checked in the database");
                    metrics::counter!("janua_redis_errors_total", "concern" => "revocations").increment(1);
                    self.in_database(session_id).await
                }
            }
        })
    }

    fn purge_expired(&self) {
        self.local.purge_expired();
        let now = Utc::now();
        self.pending.retain(|_, exp| *exp > now);
    }
}
