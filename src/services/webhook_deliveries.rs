//! Webhook deliveries as their owner sees them: listing with every attempt, redelivering, and
//! queueing a `webhook.test`. The queue itself (fan-out, claims, attempts) is `webhook_queue`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Select, Set,
};
use uuid::Uuid;

use entities::{outbox_event, webhook_attempt, webhook_delivery};

use crate::context::RequestContext;
use crate::domain::EventType;
use crate::domain::page::{Page, PageRequest, encode_cursor};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::services::audit::Change;
use crate::services::unit_of_work::Write;
use crate::services::webhooks::own_endpoint;
use crate::state::AppState;

/// Delivery states.
pub const PENDING: &str = "pending";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
pub(crate) const TEST_EVENT: &str = "webhook.test";

/// One attempt as recorded.
#[derive(Clone, Debug)]
pub struct AttemptView {
    pub number: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// `succeeded`, `retrying`, `failed` or `interrupted` (cut short: a crash, or a shutdown handing it back).
    pub outcome: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<webhook_attempt::Model> for AttemptView {
    fn from(m: webhook_attempt::Model) -> Self {
        Self {
            number: m.number,
            started_at: m.started_at,
            duration_ms: m.duration_ms,
            status_code: m.status_code,
            error: m.error,
            outcome: m.outcome,
            next_attempt_at: m.next_attempt_at,
        }
    }
}

/// A delivery with every attempt so far.
#[derive(Clone, Debug)]
pub struct DeliveryView {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub attempt_log: Vec<AttemptView>,
}

impl DeliveryView {
    fn new(m: webhook_delivery::Model, attempt_log: Vec<AttemptView>) -> Self {
        Self {
            id: m.id,
            webhook_id: m.endpoint_id,
            event_id: m.event_id,
            event_type: m.event_type,
            next_attempt_at: if m.status == PENDING { m.next_attempt_at } else { None },
            status: m.status,
            attempts: m.attempts,
            last_attempt_at: m.last_attempt_at,
            last_status_code: m.last_status_code,
            last_error: m.last_error,
            last_duration_ms: m.last_duration_ms,
            delivered_at: m.delivered_at,
            created_at: m.created_at,
            attempt_log,
        }
    }
}

/// Reads one keyset page of `base`, newest id first: `(rows, has_next, has_previous)`.
pub(crate) async fn keyset<E, C>(
    db: &DatabaseConnection,
    base: Select<E>,
    id: C,
    page: &PageRequest,
) -> AppResult<(Vec<E::Model>, bool, bool)>
where
    E: EntityTrait,
    E::Model: Send + Sync,
    C: ColumnTrait + Copy,
{
    let mut q = base.clone();
    if let Some(a) = page.after {
        q = q.filter(id.lt(a));
    }
    if let Some(b) = page.before {
        q = q.filter(id.gt(b));
    }
    let q = if page.backward { q.order_by_asc(id) } else { q.order_by_desc(id) };
    let mut rows = q.limit(page.limit + 1).all(db).await?;
    let more = rows.len() as u64 > page.limit;
    rows.truncate(page.limit as usize);
    if page.backward {
        rows.reverse();
    }
    let exists = |q: Select<E>| async move { Ok::<bool, sea_orm::DbErr>(q.limit(1).count(db).await? > 0) };
    Ok(if page.backward {
        let next = match page.before {
            Some(b) => exists(base.clone().filter(id.lte(b))).await?,
            None => false,
        };
        (rows, next, more)
    } else {
        let prev = match page.after {
            Some(a) => exists(base.clone().filter(id.gte(a))).await?,
            None => false,
        };
        (rows, more, prev)
    })
}

async fn attempts_of(
    db: &impl ConnectionTrait,
    delivery_ids: Vec<Uuid>,
) -> AppResult<HashMap<Uuid, Vec<AttemptView>>> {
    let mut out: HashMap<Uuid, Vec<AttemptView>> = HashMap::new();
    if delivery_ids.is_empty() {
        return Ok(out);
    }
    let rows = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.is_in(delivery_ids))
        .order_by_asc(webhook_attempt::Column::Number)
        .all(db)
        .await?;
    for r in rows {
        out.entry(r.delivery_id).or_default().push(r.into());
    }
    Ok(out)
}

/// The deliveries of one of the caller's endpoints, newest first, each with its attempts.
pub async fn list_deliveries(
    state: &AppState,
    ctx: &RequestContext,
    webhook_id: Uuid,
    page: PageRequest,
) -> AppResult<Page<DeliveryView>> {
    let endpoint = own_endpoint(state, ctx, webhook_id).await?;
    let base = webhook_delivery::Entity::find().filter(webhook_delivery::Column::EndpointId.eq(endpoint.id));
    let total_count = base.clone().count(&state.db).await?;
    let (rows, has_next, has_previous) = keyset(&state.db, base, webhook_delivery::Column::Id, &page).await?;
    let mut attempts = attempts_of(&state.db, rows.iter().map(|r| r.id).collect()).await?;
    Ok(Page {
        items: rows
            .into_iter()
            .map(|m| {
                let log = attempts.remove(&m.id).unwrap_or_default();
                (encode_cursor(m.id), DeliveryView::new(m, log))
            })
            .collect(),
        has_next,
        has_previous,
        total_count,
    })
}

/// One delivery with its attempts (no ownership check: for callers that already hold it).
pub(crate) async fn delivery_view(db: &impl ConnectionTrait, id: Uuid) -> AppResult<DeliveryView> {
    let m = webhook_delivery::Entity::find_by_id(id).one(db).await?.ok_or(ErrorCode::NotFound)?;
    let log = attempts_of(db, vec![id]).await?.remove(&id).unwrap_or_default();
    Ok(DeliveryView::new(m, log))
}

/// Schedules one delivery of one of the caller's endpoints to be sent again now (whatever its
/// state), keeping its attempts; audited as a change of the endpoint.
pub async fn redeliver(
    state: &AppState,
    ctx: &RequestContext,
    webhook_id: Uuid,
    delivery_id: Uuid,
) -> AppResult<DeliveryView> {
    let endpoint = own_endpoint(state, ctx, webhook_id).await?;
    let mut w = Write::begin(state, ctx).await?;
    let d = webhook_delivery::Entity::find_by_id(delivery_id)
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint.id))
        .one(w.tx())
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let mut am: webhook_delivery::ActiveModel = d.into();
    am.status = Set(PENDING.into());
    am.next_attempt_at = Set(Some(Utc::now()));
    am.locked_until = Set(None);
    am.update(w.tx()).await?;
    w.record(Change {
        event: EventType::WebhookUpdated,
        target: Some(("webhook", endpoint.id.to_string())),
        subject_user: endpoint.user_id,
        acting_user: None,
        organization: None,
        data: serde_json::json!({"webhook_id": endpoint.id, "redelivered": delivery_id}),
    })
    .await?;
    w.commit().await?;
    delivery_view(&state.db, delivery_id).await
}

pub(crate) fn lease(state: &AppState) -> chrono::Duration {
    chrono::Duration::from_std(state.config.webhook_timeout + Duration::from_secs(5))
        .unwrap_or(chrono::Duration::seconds(20))
}

/// Records a `webhook.test` event for one of the caller's endpoints and its delivery, already
/// leased to this request (no other worker sends it); returns the delivery id.
pub async fn queue_test(state: &AppState, ctx: &RequestContext, webhook_id: Uuid) -> AppResult<Uuid> {
    let endpoint = own_endpoint(state, ctx, webhook_id).await?;
    let mut w = Write::begin(state, ctx).await?;
    let event_id = w
        .record(Change {
            event: EventType::WebhookTest,
            target: Some(("webhook", endpoint.id.to_string())),
            subject_user: endpoint.user_id,
            acting_user: None,
            organization: None,
            data: serde_json::json!({"webhook_id": endpoint.id, "test": true}),
        })
        .await?;
    w.flush().await?;
    let event = outbox_event::Entity::find()
        .filter(outbox_event::Column::EventId.eq(event_id))
        .one(w.tx())
        .await?
        .ok_or_else(|| AppError::internal("the test event was not written"))?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let mut delivery = new_delivery(id, endpoint.id, &event, now);
    delivery.locked_until = Set(Some(now + lease(state)));
    delivery.insert(w.tx()).await?;
    w.commit().await?;
    Ok(id)
}

pub(crate) fn new_delivery(
    id: Uuid,
    endpoint_id: Uuid,
    e: &outbox_event::Model,
    now: DateTime<Utc>,
) -> webhook_delivery::ActiveModel {
    webhook_delivery::ActiveModel {
        id: Set(id),
        endpoint_id: Set(endpoint_id),
        event_seq: Set(e.seq),
        event_id: Set(e.event_id),
        event_type: Set(e.event_type.clone()),
        payload: Set(e.payload.clone()),
        status: Set(PENDING.into()),
        attempts: Set(0),
        next_attempt_at: Set(Some(now)),
        locked_until: Set(None),
        last_attempt_at: Set(None),
        last_status_code: Set(None),
        last_error: Set(None),
        last_duration_ms: Set(None),
        delivered_at: Set(None),
        created_at: Set(now),
    }
}
