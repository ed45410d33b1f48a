//! Session checks a node keeps for a short lease, so an authenticated request with Redis needs
//! no round trip of its own — without weakening "a revoked session is refused at the next
//! request on every node".
//!
//! How a change reaches every node before the call that made it returns:
//!
//! - A node keeps what one look at Redis answered (the session's revocation, its user's stamp)
//!   for at most [`SessionLeases::lease`] after it sent that look, and only while it is
//!   *registered*: a member of the sorted set `session-lease-nodes`, scored by Redis's own clock
//!   with the time its registration ends. It renews the registration every quarter lease, only
//!   while its subscription to `session-leases` stands, and uses what it keeps only until a
//!   little before that end by its own clock (the renewal was sent before Redis received it).
//! - Whoever revokes a session or changes a user writes Redis as before, and in the same pipeline
//!   publishes the change on `session-leases` and reads the registered nodes. Every node that
//!   receives it forgets what it kept of that session (or user), then acknowledges on the
//!   publisher's own channel. The publisher returns once every registered node acknowledged, or
//!   once a whole lease has passed since Redis answered (whatever a node kept then has expired):
//!   a node that missed the message, a subscription lost without notice, a Redis that did not
//!   answer or lost its data cost the caller up to one lease, never the guarantee.
//! - A look that was in flight while a change was applied is not kept (a generation count, read
//!   before the look and compared under the lock that forgetting takes), and a node whose
//!   registration lapsed forgets everything before it registers again.
//!
//! Leases are off when [`SessionLeases::lease`] is zero (`JANUA_SESSION_LEASE_MS=0`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::StreamExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::Redis;

/// What one look answered that a node may keep: the revocation, and the user's stamp in Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kept {
    pub revoked: bool,
    /// `(epoch, shared version)` of the user's stamp; `None`: not vouched for, so not kept.
    pub stamp: (u64, u64),
}

#[derive(Clone, Copy)]
struct Entry {
    user_id: Uuid,
    kept: Kept,
    /// Until when (ms on this node's clock, see `Inner::epoch`) it may be used.
    until_ms: u64,
}

/// Taken before a look is sent: [`SessionLeases::keep`] keeps its answer only if nothing was
/// forgotten meanwhile and the node was registered when the look was sent.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    generation: u64,
    sent_ms: u64,
    registered: bool,
}

/// What a change asks of the other nodes: forget a session, or every session of a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Session(Uuid),
    User(Uuid),
}

impl Change {
    fn encode(self) -> String {
        match self {
            Self::Session(id) => format!("s {id}"),
            Self::User(id) => format!("u {id}"),
        }
    }

    fn decode(kind: &str, id: &str) -> Option<Self> {
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            "s" => Some(Self::Session(id)),
            "u" => Some(Self::User(id)),
            _ => None,
        }
    }
}

/// Registers (or renews) a node: scored with the end of its registration by Redis's clock; the
/// registrations that ended are dropped on the way.
const RENEW_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 4)
return 1
";

/// The nodes registered now, by Redis's clock.
const MEMBERS_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
";

/// The most sessions a node keeps (a bound on memory whatever the traffic).
const MAX_KEPT: usize = 100_000;

/// A node's kept session checks and its part in spreading changes; cheap to clone.
#[derive(Clone)]
pub struct SessionLeases(Arc<Inner>);

struct Inner {
    redis: Redis,
    node: String,
    lease: Duration,
    entries: DashMap<Uuid, Entry>,
    /// Keeping takes it shared, forgetting exclusively: a look's answer is compared with the
    /// generation and kept with no change applied in between.
    forgetting: RwLock<()>,
    generation: AtomicU64,
    /// The subscription to `session-leases` stands.
    live: AtomicBool,
    /// Until when (ms on this node's clock) this node counts as registered.
    registered_until_ms: AtomicU64,
    epoch: Instant,
    next_change: AtomicU64,
    /// The changes this node published that wait for acknowledgements, by number.
    waiting: Mutex<HashMap<u64, mpsc::UnboundedSender<String>>>,
    renewal: redis::Script,
}

impl SessionLeases {
    /// Leases of `lease` over `redis` (zero: keep nothing; changes are still published, so
    /// nodes that keep leases hear of them).
    pub fn new(redis: Redis, lease: Duration) -> Self {
        Self(Arc::new(Inner {
            redis,
            node: format!("{:016x}", rand::random::<u64>()),
            lease,
            entries: DashMap::new(),
            forgetting: RwLock::new(()),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            registered_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            next_change: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            renewal: redis::Script::new(RENEW_SCRIPT),
        }))
    }

    /// How long a node may use what it kept.
    pub fn lease(&self) -> Duration {
        self.0.lease
    }

    fn now_ms(&self) -> u64 {
        self.0.epoch.elapsed().as_millis() as u64
    }

    fn lease_ms(&self) -> u64 {
        self.0.lease.as_millis() as u64
    }

    /// Whether this node may keep and use checks at `now_ms`.
    fn usable(&self, now_ms: u64) -> bool {
        self.lease_ms() > 0
            && self.0.live.load(Ordering::Acquire)
            && now_ms < self.0.registered_until_ms.load(Ordering::Acquire)
    }

    /// What this node kept of `session_id`, if it may use it now for a token of `user_id`.
    pub fn get(&self, session_id: Uuid, user_id: Uuid) -> Option<Kept> {
        let now = self.now_ms();
        if !self.usable(now) {
            return None;
        }
        let e = *self.0.entries.get(&session_id)?;
        (e.user_id == user_id && now < e.until_ms).then_some(e.kept)
    }

    /// To be taken just before a look is sent.
    pub fn ticket(&self) -> Ticket {
        let sent_ms = self.now_ms();
        Ticket {
            generation: self.0.generation.load(Ordering::Acquire),
            sent_ms,
            registered: self.usable(sent_ms),
        }
    }

    /// Keeps a look's answer, unless a change was applied since its ticket or the node was not
    /// registered when it was sent.
    pub fn keep(&self, ticket: Ticket, session_id: Uuid, user_id: Uuid, kept: Kept) {
        if !ticket.registered || self.0.entries.len() >= MAX_KEPT {
            return;
        }
        let _shared = self.0.forgetting.read().unwrap_or_else(|e| e.into_inner());
        if self.0.generation.load(Ordering::Acquire) != ticket.generation {
            return;
        }
        let until_ms = ticket.sent_ms + self.lease_ms();
        self.0.entries.insert(session_id, Entry { user_id, kept, until_ms });
    }

    /// Applies a change on this node: what it kept of the session (or the user) is forgotten,
    /// and looks in flight are not kept.
    pub fn forget(&self, change: Change) {
        let _exclusive = self.0.forgetting.write().unwrap_or_else(|e| e.into_inner());
        self.0.generation.fetch_add(1, Ordering::AcqRel);
        match change {
            Change::Session(id) => {
                self.0.entries.remove(&id);
            }
            Change::User(id) => self.0.entries.retain(|_, e| e.user_id != id),
        }
    }

    fn forget_all(&self) {
        let _exclusive = self.0.forgetting.write().unwrap_or_else(|e| e.into_inner());
        self.0.generation.fetch_add(1, Ordering::AcqRel);
        self.0.entries.clear();
    }

    /// Drops what has expired.
    pub fn purge_expired(&self) {
        let now = self.now_ms();
        self.0.entries.retain(|_, e| e.until_ms > now);
    }

    fn channel(&self) -> String {
        self.0.redis.key("session-leases")
    }

    fn ack_channel(&self, node: &str) -> String {
        self.0.redis.key(&format!("session-lease-acks:{node}"))
    }

    fn nodes_key(&self) -> String {
        self.0.redis.key("session-lease-nodes")
    }

    /// Adds to `pipe` (after the commands that record `change` in Redis) the publication of the
    /// change and the read of the registered nodes; returns the announcement to [`Announcement::spread`].
    pub fn add_announce(&self, pipe: &mut redis::Pipeline, change: Change) -> Announcement {
        self.forget(change);
        let number = self.0.next_change.fetch_add(1, Ordering::AcqRel);
        let (tx, rx) = mpsc::unbounded_channel();
        self.0.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(number, tx);
        let message = format!("{} {} {number}", change.encode(), self.0.node);
        pipe.cmd("PUBLISH").arg(self.channel()).arg(message).ignore();
        pipe.cmd("EVAL").arg(MEMBERS_SCRIPT).arg(1).arg(self.nodes_key());
        Announcement { leases: self.clone(), number, acks: rx }
    }

    /// Runs the subscription and the registration of this node until the task is dropped:
    /// applies and acknowledges every change published, and forgets everything whenever the
    /// subscription ends.
    pub async fn serve(self) {
        let channel = self.channel();
        let acks = self.ack_channel(&self.0.node);
        loop {
            match self.0.redis.client().get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(&channel).await.is_ok() && pubsub.subscribe(&acks).await.is_ok() {
                        self.0.live.store(true, Ordering::Release);
                        self.listen(&mut pubsub, &acks).await;
                    }
                    self.0.live.store(false, Ordering::Release);
                    self.0.registered_until_ms.store(0, Ordering::Release);
                    self.forget_all();
                    tracing::warn!("session lease subscription ended; reconnecting");
                }
                Err(e) => tracing::debug!(error = %e, "redis pub/sub connection failed; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn listen(&self, pubsub: &mut redis::aio::PubSub, acks: &str) {
        let every = (self.0.lease / 4).max(Duration::from_millis(10));
        let mut renew = tokio::time::interval(every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else { return };
                    let Ok(payload) = msg.get_payload::<String>() else { continue };
                    if msg.get_channel_name() == acks {
                        self.acknowledged(&payload);
                    } else {
                        self.apply(&payload).await;
                    }
                }
                _ = renew.tick(), if self.lease_ms() > 0 => self.renew().await,
            }
        }
    }

    /// Renews this node's registration; after a lapse, forgets everything first (changes may
    /// have been spread without waiting for this node).
    async fn renew(&self) {
        let sent = self.now_ms();
        if sent >= self.0.registered_until_ms.load(Ordering::Acquire) {
            self.forget_all();
        }
        let mut conn = self.0.redis.conn();
        let mut renewal = self.0.renewal.key(self.nodes_key());
        renewal.arg(&self.0.node).arg(self.lease_ms());
        let r = self.0.redis.guard(renewal.invoke_async::<i64>(&mut conn)).await;
        if r.is_ok() {
            // A little short of Redis's end: the renewal reached Redis after it was sent.
            let until = sent + self.lease_ms() * 9 / 10;
            self.0.registered_until_ms.store(until, Ordering::Release);
        }
    }

    /// A change another node (or this one) published: forget, then acknowledge to its publisher.
    async fn apply(&self, payload: &str) {
        let mut parts = payload.split(' ');
        let (Some(kind), Some(id), Some(from), Some(number)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let Some(change) = Change::decode(kind, id) else { return };
        self.forget(change);
        let ack = format!("{} {number}", self.0.node);
        let mut conn = self.0.redis.conn();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.ack_channel(from)).arg(ack);
        if let Err(e) = self.0.redis.guard(publish.query_async::<i64>(&mut conn)).await {
            tracing::debug!(error = %e, "acknowledging a session lease change failed");
        }
    }

    fn acknowledged(&self, payload: &str) {
        let Some((node, number)) = payload.split_once(' ') else { return };
        let Ok(number) = number.parse::<u64>() else { return };
        let waiting = self.0.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = waiting.get(&number) {
            let _ = tx.send(node.to_owned());
        }
    }
}

/// A change published by this node, waiting for acknowledgements.
pub struct Announcement {
    leases: SessionLeases,
    number: u64,
    acks: mpsc::UnboundedReceiver<String>,
}

impl Announcement {
    /// Returns once every registered node applied the change, or a lease after `answered` (the
    /// moment Redis answered the pipeline, or failed to). `members` is the pipeline's answer to
    /// the read of the registered nodes; `None` when Redis did not answer or lost its data.
    pub async fn spread(mut self, members: Option<Vec<String>>, answered: Instant) {
        let deadline = answered + self.leases.0.lease;
        if let Some(members) = members {
            let mut left: HashSet<String> = members.into_iter().collect();
            while !left.is_empty() {
                match tokio::time::timeout_at(deadline.into(), self.acks.recv()).await {
                    Ok(Some(node)) => {
                        left.remove(&node);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            if left.is_empty() {
                return;
            }
            tracing::debug!(unacknowledged = left.len(), "session lease change waits out the lease");
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        self.leases.0.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leases over a Redis never asked (the handle connects lazily), marked subscribed and
    /// registered as `serve` would.
    fn registered(lease_ms: u64) -> SessionLeases {
        let redis = Redis::connect("redis://127.0.0.1:1/", "test:").unwrap();
        let leases = SessionLeases::new(redis, Duration::from_millis(lease_ms));
        leases.0.live.store(true, Ordering::Release);
        leases.0.registered_until_ms.store(leases.now_ms() + 60_000, Ordering::Release);
        leases
    }

    const KEPT: Kept = Kept { revoked: false, stamp: (7, 3) };

    #[tokio::test]
    async fn a_check_is_kept_for_its_session_and_user_only() {
        let leases = registered(60_000);
        let (s, u) = (Uuid::new_v4(), Uuid::new_v4());
        leases.keep(leases.ticket(), s, u, KEPT);
        assert_eq!(leases.get(s, u), Some(KEPT));
        assert_eq!(leases.get(s, Uuid::new_v4()), None, "a token of another user");
        assert_eq!(leases.get(Uuid::new_v4(), u), None);
    }

    #[tokio::test]
    async fn a_look_in_flight_while_a_change_is_applied_is_not_kept() {
        let leases = registered(60_000);
        let (s, u) = (Uuid::new_v4(), Uuid::new_v4());
        let ticket = leases.ticket();
        leases.forget(Change::Session(Uuid::new_v4()));
        leases.keep(ticket, s, u, KEPT);
        assert_eq!(leases.get(s, u), None);
    }

    #[tokio::test]
    async fn changes_forget_the_session_or_every_session_of_the_user() {
        let leases = registered(60_000);
        let u = Uuid::new_v4();
        let (s1, s2, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for (s, user) in [(s1, u), (s2, u), (other, Uuid::new_v4())] {
            leases.keep(leases.ticket(), s, user, KEPT);
        }
        leases.forget(Change::Session(s1));
        assert_eq!((leases.get(s1, u), leases.get(s2, u)), (None, Some(KEPT)));
        leases.forget(Change::User(u));
        assert_eq!(leases.get(s2, u), None);
        assert_eq!(leases.0.entries.len(), 1, "another user's check stays");
    }

    #[tokio::test]
    async fn nothing_is_used_unregistered_unsubscribed_or_past_its_lease() {
        let (s, u) = (Uuid::new_v4(), Uuid::new_v4());
        let leases = registered(60_000);
        leases.0.registered_until_ms.store(0, Ordering::Release);
        leases.keep(leases.ticket(), s, u, KEPT);
        assert!(leases.0.entries.is_empty(), "a look sent unregistered is not kept");

        let leases = registered(60_000);
        leases.keep(leases.ticket(), s, u, KEPT);
        leases.0.live.store(false, Ordering::Release);
        assert_eq!(leases.get(s, u), None, "subscription lost");
        leases.0.live.store(true, Ordering::Release);
        leases.0.registered_until_ms.store(0, Ordering::Release);
        assert_eq!(leases.get(s, u), None, "registration lapsed");

        let leases = registered(1);
        leases.keep(leases.ticket(), s, u, KEPT);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(leases.get(s, u), None, "past the lease");
        leases.purge_expired();
        assert!(leases.0.entries.is_empty());

        let leases = registered(0);
        leases.keep(leases.ticket(), s, u, KEPT);
        assert_eq!(leases.get(s, u), None, "leases off");
    }

    #[test]
    fn changes_travel_as_kind_and_id() {
        let id = Uuid::new_v4();
        for c in [Change::Session(id), Change::User(id)] {
            let text = c.encode();
            let (kind, rest) = text.split_once(' ').unwrap();
            assert_eq!(Change::decode(kind, rest), Some(c));
        }
        assert_eq!(Change::decode("x", &id.to_string()), None);
        assert_eq!(Change::decode("s", "not-a-uuid"), None);
    }
}
