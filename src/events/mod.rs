//! Committed outbox rows → the event bus → subscribers.

mod dispatcher;
mod redis_bus;

pub use dispatcher::Dispatcher;
pub use redis_bus::{forward_from_redis, newest_published};

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use entities::outbox_event;

use crate::domain::{EventType, SessionEventKind};

/// One committed event, as carried by the bus and replayed from the outbox.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BusEvent {
    /// Position in the outbox; replay resumes after it.
    pub seq: i64,
    /// The event id, equal to its audit record's id.
    pub id: Uuid,
    pub event_type: String,
    pub subject_user_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    /// `{id, type, api_version, created_at, data}`.
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// What every subscriber's cursor asks of the event, read off it once (not per subscriber).
    #[serde(skip)]
    facts: std::sync::OnceLock<Facts>,
}

/// What subscribers' cursors look at in an event, beyond its plain fields.
#[derive(Clone, Debug)]
pub struct Facts {
    /// Its kind for `sessionEvents`, if it is a session event.
    pub session_kind: Option<SessionEventKind>,
    /// The session it revokes, if it is `session.revoked`.
    pub revoked_session: Option<String>,
    /// It may change what its subject, or the admins of its organization, may see (a membership
    /// or role changed, an organization or user deleted, a user updated).
    pub changes_rights: bool,
}

impl BusEvent {
    pub fn facts(&self) -> &Facts {
        self.facts.get_or_init(|| {
            let kind = EventType::parse(&self.event_type);
            Facts {
                session_kind: kind.and_then(EventType::session_kind),
                revoked_session: (kind == Some(EventType::SessionRevoked))
                    .then(|| self.payload["data"]["attributes"]["session_id"].as_str().map(str::to_owned))
                    .flatten(),
                changes_rights: kind.is_some_and(|k| {
                    matches!(
                        k,
                        EventType::OrganizationMemberAdded
                            | EventType::OrganizationMemberRemoved
                            | EventType::OrganizationMemberRoleChanged
                            | EventType::OrganizationDeleted
                            | EventType::UserUpdated
                            | EventType::UserDeleted
                    )
                }),
            }
        })
    }
}

impl From<outbox_event::Model> for BusEvent {
    fn from(m: outbox_event::Model) -> Self {
        Self {
            seq: m.seq,
            id: m.event_id,
            event_type: m.event_type,
            subject_user_id: m.subject_user_id,
            organization_id: m.organization_id,
            payload: m.payload,
            created_at: m.created_at,
            facts: Default::default(),
        }
    }
}

/// The in-process bus: a bounded broadcast. A subscriber that lags re-reads the outbox.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<BusEvent>>,
    /// The outbox position of the last event published (wakes the event lanes).
    last: Arc<watch::Sender<i64>>,
    /// Receivers of the node's own tasks ([`EventBus::subscribe_node_task`]), not subscribers.
    node_tasks: Arc<std::sync::atomic::AtomicUsize>,
}

impl EventBus {
    /// A bus that buffers `capacity` events per slow subscriber before it lags.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
            last: Arc::new(watch::channel(0).0),
            node_tasks: Arc::default(),
        }
    }

    /// Sends an event to every current subscriber of this node.
    pub fn publish(&self, e: Arc<BusEvent>) {
        let seq = e.seq;
        let sent = self.tx.send(e).is_ok_and(|receivers| receivers > self.node_tasks());
        self.last.send_replace(seq);
        if sent {
            metrics::counter!("janua_events_delivered_total").increment(1);
        }
    }

    /// A new receiver of events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.tx.subscribe()
    }

    /// Changes with every event published (its outbox position), without counting as a
    /// subscriber.
    pub fn published(&self) -> watch::Receiver<i64> {
        self.last.subscribe()
    }

    /// A receiver for a task of the node itself that lives as long as the bus (it is not
    /// counted as a subscriber).
    pub fn subscribe_node_task(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.node_tasks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.tx.subscribe()
    }

    fn node_tasks(&self) -> usize {
        self.node_tasks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many subscribers are connected (receivers of the node's own tasks left out).
    pub fn subscriber_count(&self) -> usize {
        self.tx.receiver_count().saturating_sub(self.node_tasks())
    }
}

/// Outbox rows after `after_seq` about `subject_user` (or all when `None`), oldest first.
pub async fn replay(
    db: &impl ConnectionTrait,
    after_seq: i64,
    subject_user: Option<Uuid>,
    limit: u64,
) -> Result<Vec<BusEvent>, sea_orm::DbErr> {
    let mut q = outbox_event::Entity::find()
        .filter(outbox_event::Column::Seq.gt(after_seq))
        .order_by_asc(outbox_event::Column::Seq)
        .limit(limit);
    if let Some(u) = subject_user {
        q = q.filter(outbox_event::Column::SubjectUserId.eq(u));
    }
    Ok(q.all(db).await?.into_iter().map(BusEvent::from).collect())
}

/// The outbox position of an event id, if it exists.
pub async fn seq_of(db: &impl ConnectionTrait, event_id: Uuid) -> Result<Option<i64>, sea_orm::DbErr> {
    Ok(outbox_event::Entity::find()
        .filter(outbox_event::Column::EventId.eq(event_id))
        .one(db)
        .await?
        .map(|m| m.seq))
}

/// The newest outbox position (0 when empty).
pub async fn replay_tail_seq(db: &impl ConnectionTrait) -> Result<i64, sea_orm::DbErr> {
    Ok(outbox_event::Entity::find()
        .order_by_desc(outbox_event::Column::Seq)
        .one(db)
        .await?
        .map_or(0, |m| m.seq))
}
