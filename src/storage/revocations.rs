//! Which sessions are revoked, answered without a database query per request, and the stamp of
//! a user's record that tells whether a cached copy of it is still current.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use futures::future::BoxFuture;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use entities::session;

use super::Redis;
use super::session_leases::{Change, Kept, SessionLeases, Ticket};

/// The version of one user's record as a store last heard of it: equal stamps, read before and
/// after, mean no change to the user was committed in between (on any node sharing the store).
/// `epoch` changes when Redis lost its data, `shared` with every change made through Redis,
/// `local` with every change this node made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserStamp {
    epoch: u64,
    shared: u64,
    local: u64,
}

/// What one authenticated request learns in one look: whether its session is revoked, and the
/// stamp of its user (`None`: nobody can vouch for a cached copy; read the database).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionCheck {
    pub revoked: bool,
    pub user: Option<UserStamp>,
}

/// Revoked sessions: a revocation recorded here is refused by every node sharing the store at
/// the next request. It also versions user records, so a copy cached on any node is known stale
/// at the next request after a change (see `storage::user_cache`).
pub trait RevocationStore: Send + Sync {
    /// Marks a session revoked until it would have expired anyway (after the database commit).
    fn revoke(&self, session_id: Uuid, expires_at: DateTime<Utc>) -> BoxFuture<'_, ()>;
    /// Whether tokens of this session must be refused. An error means nobody could tell
    /// (callers refuse the request).
    fn is_revoked(&self, session_id: Uuid) -> BoxFuture<'_, anyhow::Result<bool>>;
    /// [`RevocationStore::is_revoked`] and the stamp of `user_id`, in the same single look (one
    /// round trip with Redis).
    fn check(&self, session_id: Uuid, user_id: Uuid) -> BoxFuture<'_, anyhow::Result<SessionCheck>>;
    /// Changes the stamp of a user whose record changed (after the database commit).
    fn user_changed(&self, user_id: Uuid) -> BoxFuture<'_, ()>;
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

/// Stripes of user versions kept in process: a change to a user bumps its stripe (a few other
/// users' cached copies are reloaded with it; the table stays small whatever the user count).
#[derive(Clone)]
struct LocalVersions(Arc<[AtomicU64; STRIPES]>);

const STRIPES: usize = 1024;

impl Default for LocalVersions {
    fn default() -> Self {
        Self(Arc::new(std::array::from_fn(|_| AtomicU64::new(0))))
    }
}

impl LocalVersions {
    fn stripe(&self, user_id: Uuid) -> &AtomicU64 {
        let (hi, lo) = user_id.as_u64_pair();
        &self.0[((hi ^ lo) % STRIPES as u64) as usize]
    }

    fn get(&self, user_id: Uuid) -> u64 {
        self.stripe(user_id).load(Ordering::Acquire)
    }

    fn bump(&self, user_id: Uuid) {
        self.stripe(user_id).fetch_add(1, Ordering::AcqRel);
    }
}

/// Revoked sessions that have not yet expired, kept in process. It is loaded from the database
/// at start and updated by every revocation this node makes (one node, no Redis).
#[derive(Clone, Default)]
pub struct MemoryRevocationStore {
    revoked: Arc<DashMap<Uuid, DateTime<Utc>>>,
    versions: LocalVersions,
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

    fn check(&self, session_id: Uuid, user_id: Uuid) -> BoxFuture<'_, anyhow::Result<SessionCheck>> {
        let stamp = UserStamp { epoch: 0, shared: 0, local: self.versions.get(user_id) };
        let check = SessionCheck { revoked: self.contains(session_id), user: Some(stamp) };
        Box::pin(async move { Ok(check) })
    }

    fn user_changed(&self, user_id: Uuid) -> BoxFuture<'_, ()> {
        self.versions.bump(user_id);
        Box::pin(async {})
    }

    fn purge_expired(&self) {
        let now = Utc::now();
        self.revoked.retain(|_, exp| *exp > now);
    }
}

/// A write-back running on this node: the flag is lowered when it ends, however it ends (a
/// task aborted mid-way, as at shutdown, must not leave every later write-back refused).
struct Running<'a>(&'a std::sync::atomic::AtomicBool);

impl<'a> Running<'a> {
    fn begin(flag: &'a std::sync::atomic::AtomicBool) -> Option<Self> {
        (!flag.swap(true, Ordering::AcqRel)).then_some(Self(flag))
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
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
///
/// User stamps: `INCR user-version:<id>` after each change to a user, read with `GET` in the same
/// pipeline as the revocation check; the marker's value (random, new at each write-back) is
/// their epoch, so versions lost with Redis's data cannot repeat an old stamp.
#[derive(Clone)]
pub struct RedisRevocationStore {
    redis: Redis,
    db: DatabaseConnection,
    local: MemoryRevocationStore,
    /// Revocations not yet written to Redis (it did not answer).
    pending: Arc<DashMap<Uuid, DateTime<Utc>>>,
    /// User changes not yet counted in Redis (it did not answer).
    pending_users: Arc<DashMap<Uuid, ()>>,
    /// A write-back is running on this node.
    syncing: Arc<std::sync::atomic::AtomicBool>,
    /// The checks this node keeps for a lease, and the spreading of changes to other nodes'.
    leases: SessionLeases,
}

impl RedisRevocationStore {
    /// A store over `redis`, with this node's local copy loaded from the database.
    pub async fn load(redis: Redis, db: DatabaseConnection) -> anyhow::Result<Self> {
        let local = MemoryRevocationStore::load(&db).await?;
        Ok(Self {
            leases: SessionLeases::new(redis.clone(), Duration::ZERO),
            redis,
            db,
            local,
            pending: Arc::default(),
            pending_users: Arc::default(),
            syncing: Arc::default(),
        })
    }

    /// Keeps session checks for `lease` (zero: keeps none; every node of a cluster must use the
    /// same lease). [`SessionLeases::serve`] must run for any to be kept.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.leases = SessionLeases::new(self.redis.clone(), lease);
        self
    }

    /// The checks this node keeps, and their subscription ([`SessionLeases::serve`]).
    pub fn leases(&self) -> &SessionLeases {
        &self.leases
    }

    /// Runs `record` (commands that write `change` to Redis, their answers ignored) with the
    /// change's publication to every node, and returns once every node that may keep a check it
    /// touches has forgotten it, or a lease later (see `storage::session_leases`).
    async fn record_and_spread(&self, change: Change, mut record: redis::Pipeline) -> redis::RedisResult<()> {
        record.cmd("GET").arg(self.marker());
        let announcement = self.leases.add_announce(&mut record, change);
        let mut conn = self.redis.conn();
        let r = self.redis.guard(record.query_async::<(Option<String>, Vec<String>)>(&mut conn)).await;
        // Without the marker Redis lost its data, the nodes' registrations with it.
        let members = match &r {
            Ok((Some(_), members)) => Some(members.clone()),
            _ => None,
        };
        announcement.spread(members, Instant::now()).await;
        r.map(|_| ())
    }

    /// What this node kept of the session's check, if it may use it for a token of `user_id`.
    pub(super) fn kept(&self, session_id: Uuid, user_id: Uuid) -> Option<SessionCheck> {
        if self.has_pending() {
            return None;
        }
        let k = self.leases.get(session_id, user_id)?;
        let (epoch, shared) = k.stamp;
        let user = UserStamp { epoch, shared, local: self.local.versions.get(user_id) };
        Some(SessionCheck { revoked: k.revoked, user: Some(user) })
    }

    /// Keeps a look's answer (one Redis vouched for) for the lease, unless `ticket` says not to.
    pub(super) fn keep(&self, ticket: Ticket, session_id: Uuid, user_id: Uuid, check: SessionCheck) {
        if let Some(u) = check.user {
            let kept = Kept { revoked: check.revoked, stamp: (u.epoch, u.shared) };
            self.leases.keep(ticket, session_id, user_id, kept);
        }
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

    fn user_key(&self, user_id: Uuid) -> String {
        self.redis.key(&format!("user-version:{user_id}"))
    }

    async fn count_user_change(&self, user_id: Uuid) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        let key = self.user_key(user_id);
        let mut pipe = redis::pipe();
        pipe.cmd("INCR").arg(&key).ignore().cmd("EXPIRE").arg(&key).arg(USER_VERSION_TTL_SECS).ignore();
        self.redis.guard(pipe.query_async::<()>(&mut conn)).await
    }

    /// Writes every revoked, unexpired session of the database to Redis, then the marker, unless
    /// the marker is there already (Redis kept its data). Returns how many were written.
    pub async fn resync(&self) -> anyhow::Result<usize> {
        let Some(running) = Running::begin(&self.syncing) else {
            return Ok(0);
        };
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
            // A new epoch: user stamps read before the loss can never match again.
            let epoch = rand::random::<u64>() >> 1;
            redis::cmd("SET").arg(self.marker()).arg(epoch).query_async::<()>(&mut conn).await?;
            tracing::info!(revocations = n, "revocations written back to redis");
            Ok(n)
        }
        .await;
        drop(running);
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
        let users: Vec<Uuid> = self.pending_users.iter().map(|e| *e.key()).collect();
        for id in users {
            if self.count_user_change(id).await.is_ok() {
                self.pending_users.remove(&id);
            }
        }
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.pending_users.is_empty()
    }

    async fn in_database(&self, session_id: Uuid) -> anyhow::Result<bool> {
        let s = session::Entity::find_by_id(session_id).one(&self.db).await?;
        Ok(s.is_none_or(|s| s.revoked_at.is_some()))
    }
}

/// How long a user's version outlives its last change in Redis (far longer than any cached copy).
const USER_VERSION_TTL_SECS: u64 = 24 * 3600;

impl RedisRevocationStore {
    /// The commands of one look: `EXISTS` of the session's revocation key, `GET` of the marker
    /// (its value is the epoch) and, when asked, `GET` of the user's version, answered in that
    /// order.
    pub(super) fn add_look(&self, pipe: &mut redis::Pipeline, session_id: Uuid, user_id: Option<Uuid>) {
        pipe.cmd("EXISTS").arg(self.key(session_id)).cmd("GET").arg(self.marker());
        if let Some(u) = user_id {
            pipe.cmd("GET").arg(self.user_key(u));
        }
    }

    /// One round trip: [`Self::add_look`] alone.
    async fn look(&self, session_id: Uuid, user_id: Option<Uuid>) -> anyhow::Result<SessionCheck> {
        let mut conn = self.redis.conn();
        let mut pipe = redis::pipe();
        self.add_look(&mut pipe, session_id, user_id);
        let r = match user_id {
            Some(_) => {
                self.redis.guard(pipe.query_async::<(bool, Option<String>, Option<u64>)>(&mut conn)).await
            }
            None => {
                let r = self.redis.guard(pipe.query_async::<(bool, Option<String>)>(&mut conn)).await;
                r.map(|(found, epoch)| (found, epoch, None))
            }
        };
        match r {
            Ok((found, Some(epoch), version)) => Ok(self.vouched(user_id, found, &epoch, version).await),
            Ok((found, None, _)) => {
                // Redis lost (or never had) the revocations: write them back, ask the database.
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.resync().await {
                        tracing::warn!(error = %e, "writing revocations back to redis failed");
                    }
                });
                Ok(SessionCheck { revoked: found || self.in_database(session_id).await?, user: None })
            }
            Err(e) => {
                tracing::debug!(error = %e, "redis unavailable; revocation checked in the database");
                metrics::counter!("janua_redis_errors_total", "concern" => "revocations").increment(1);
                Ok(SessionCheck { revoked: self.in_database(session_id).await?, user: None })
            }
        }
    }

    /// The answer of a look that found the marker (Redis holds every revocation): the session's
    /// revocation, and the user's stamp under the marker's epoch.
    pub(super) async fn vouched(
        &self,
        user_id: Option<Uuid>,
        found: bool,
        epoch: &str,
        version: Option<u64>,
    ) -> SessionCheck {
        // Changes this node could not count in Redis yet are counted first, so the stamp read
        // next time differs from any read before them.
        if self.has_pending() {
            self.flush_pending().await;
        }
        let user = user_id.filter(|_| !self.has_pending()).map(|u| UserStamp {
            epoch: epoch.parse().unwrap_or(u64::MAX),
            shared: version.unwrap_or(0),
            local: self.local.versions.get(u),
        });
        SessionCheck { revoked: found, user }
    }

    /// Whether this node revoked the session itself (no look needed).
    pub(super) fn revoked_here(&self, session_id: Uuid) -> bool {
        self.local.contains(session_id)
    }

    /// The connection and key naming shared with the other Redis stores.
    pub(super) fn redis(&self) -> &Redis {
        &self.redis
    }
}

impl RevocationStore for RedisRevocationStore {
    fn revoke(&self, session_id: Uuid, expires_at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.local.insert(session_id, expires_at);
            let secs = (expires_at - Utc::now()).num_seconds().max(1);
            let mut record = redis::pipe();
            record.cmd("SET").arg(self.key(session_id)).arg(1).arg("EX").arg(secs).ignore();
            if let Err(e) = self.record_and_spread(Change::Session(session_id), record).await {
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
            Ok(self.look(session_id, None).await?.revoked)
        })
    }

    fn check(&self, session_id: Uuid, user_id: Uuid) -> BoxFuture<'_, anyhow::Result<SessionCheck>> {
        Box::pin(async move {
            if self.revoked_here(session_id) {
                return Ok(SessionCheck { revoked: true, user: None });
            }
            if let Some(kept) = self.kept(session_id, user_id) {
                return Ok(kept);
            }
            let ticket = self.leases.ticket();
            let check = self.look(session_id, Some(user_id)).await?;
            self.keep(ticket, session_id, user_id, check);
            Ok(check)
        })
    }

    fn user_changed(&self, user_id: Uuid) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.local.versions.bump(user_id);
            let key = self.user_key(user_id);
            let mut record = redis::pipe();
            record.cmd("INCR").arg(&key).ignore().cmd("EXPIRE").arg(&key).arg(USER_VERSION_TTL_SECS).ignore();
            if let Err(e) = self.record_and_spread(Change::User(user_id), record).await {
                tracing::warn!(error = %e, "redis did not count a user change; it will be counted again");
                metrics::counter!("janua_redis_errors_total", "concern" => "revocations").increment(1);
                self.pending_users.insert(user_id, ());
            }
        })
    }

    fn purge_expired(&self) {
        self.local.purge_expired();
        self.leases.purge_expired();
        let now = Utc::now();
        self.pending.retain(|_, exp| *exp > now);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::Running;

    /// A write-back aborted while it runs (its task dropped) lets the next one run.
    #[tokio::test]
    async fn an_aborted_write_back_lowers_its_flag() {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let task = tokio::spawn(async move {
            let _running = Running::begin(&f).expect("the first write-back runs");
            std::future::pending::<()>().await;
        });
        while !flag.load(Ordering::Acquire) {
            tokio::task::yield_now().await;
        }
        assert!(Running::begin(&flag).is_none(), "one write-back at a time");
        task.abort();
        let _ = task.await;
        assert!(Running::begin(&flag).is_some(), "the aborted one no longer holds the flag");
    }
}
