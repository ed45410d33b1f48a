//! Webhook deliveries: fan-out from the outbox, claiming due deliveries (one node per attempt),
//! recording every attempt with its retry decision, listing and redelivering.
//!
//! State lives in the database only, so a crash loses nothing: an outbox row is fanned out in
//! the transaction that marks it; a claimed delivery carries a lease (`locked_until`) that
//! expires if its node dies before recording the attempt.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set, Statement,
};
use uuid::Uuid;

use entities::{outbox_event, webhook_attempt, webhook_delivery, webhook_endpoint};

use crate::context::RequestContext;
use crate::domain::EventType;
use crate::domain::page::{Page, PageRequest, encode_cursor};
use crate::domain::webhooks::filter_matches;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::security::secrets::Secret;
use crate::services::audit::{self, Change};
use crate::services::webhooks::{open_secret, own_endpoint};
use crate::state::AppState;
use crate::storage::begin_write;

/// Delivery states.
pub const PENDING: &str = "pending";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
const TEST_EVENT: &str = "webhook.test";
/// Serialises fan-out across PostgreSQL nodes, so deliveries are created in outbox order.
const FAN_OUT_LOCK: i64 = 0x6a61_6e75_6177_6801;

/// One attempt as recorded.
#[derive(Clone, Debug)]
pub struct AttemptView {
    pub number: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// `succeeded`, `retrying` or `failed`.
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
            next_attempt_at: if m.status == PENDING {
                m.next_attempt_at
            } else {
                None
            },
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
    let q = if page.backward {
        q.order_by_asc(id)
    } else {
        q.order_by_desc(id)
    };
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
    let m = webhook_delivery::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
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
    let txn = begin_write(&state.db).await?;
    let d = webhook_delivery::Entity::find_by_id(delivery_id)
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint.id))
        .one(&txn)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    let mut am: webhook_delivery::ActiveModel = d.into();
    am.status = Set(PENDING.into());
    am.next_attempt_at = Set(Some(Utc::now()));
    am.locked_until = Set(None);
    am.update(&txn).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            event: EventType::WebhookUpdated,
            target: Some(("webhook", endpoint.id.to_string())),
            subject_user: endpoint.user_id,
            acting_user: None,
            data: serde_json::json!({"webhook_id": endpoint.id, "redelivered": delivery_id}),
        },
    )
    .await?;
    txn.commit().await?;
    state.events_committed();
    state.webhook_wake.notify_one();
    delivery_view(&state.db, delivery_id).await
}

fn lease(state: &AppState) -> chrono::Duration {
    chrono::Duration::from_std(state.config.webhook_timeout + Duration::from_secs(5))
        .unwrap_or(chrono::Duration::seconds(20))
}

/// Records a `webhook.test` event for one of the caller's endpoints and its delivery, already
/// leased to this request (no other worker sends it); returns the delivery id.
pub async fn queue_test(state: &AppState, ctx: &RequestContext, webhook_id: Uuid) -> AppResult<Uuid> {
    let endpoint = own_endpoint(state, ctx, webhook_id).await?;
    let txn = begin_write(&state.db).await?;
    let event_id = audit::record(
        &txn,
        ctx,
        Change {
            event: EventType::WebhookTest,
            target: Some(("webhook", endpoint.id.to_string())),
            subject_user: endpoint.user_id,
            acting_user: None,
            data: serde_json::json!({"webhook_id": endpoint.id, "test": true}),
        },
    )
    .await?;
    let event = outbox_event::Entity::find()
        .filter(outbox_event::Column::EventId.eq(event_id))
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::internal("the test event was not written"))?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let mut delivery = new_delivery(id, endpoint.id, &event, now);
    delivery.locked_until = Set(Some(now + lease(state)));
    delivery.insert(&txn).await?;
    txn.commit().await?;
    state.events_committed();
    Ok(id)
}

fn new_delivery(
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

/// Turns one batch of published, not yet fanned-out outbox events into deliveries for the
/// matching active endpoints (the subject user's, created before the event), marking the events
/// in the same transaction. Returns how many events it handled (0: nothing left).
pub async fn fan_out_once(state: &AppState) -> AppResult<usize> {
    let db = &state.db;
    let txn = begin_write(db).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [FAN_OUT_LOCK.into()],
        ))
        .await?;
    }
    let events = outbox_event::Entity::find()
        .filter(outbox_event::Column::PublishedAt.is_not_null())
        .filter(outbox_event::Column::WebhooksFannedAt.is_null())
        .order_by_asc(outbox_event::Column::Seq)
        .limit(500)
        .all(&txn)
        .await?;
    if events.is_empty() {
        txn.commit().await?;
        return Ok(0);
    }
    // Test events go only to the endpoint under test, which `queue_test` already did.
    let subjects: HashSet<Uuid> = events
        .iter()
        .filter(|e| e.event_type != TEST_EVENT)
        .filter_map(|e| e.subject_user_id)
        .collect();
    let endpoints = if subjects.is_empty() {
        Vec::new()
    } else {
        webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::UserId.is_in(subjects))
            .filter(webhook_endpoint::Column::Active.eq(true))
            .all(&txn)
            .await?
    };
    let now = Utc::now();
    let mut rows = Vec::new();
    for e in events.iter().filter(|e| e.event_type != TEST_EVENT) {
        for ep in &endpoints {
            if ep.user_id.is_some()
                && ep.user_id == e.subject_user_id
                && ep.created_at <= e.created_at
                && filter_matches(&ep.events, &e.event_type)
            {
                rows.push(new_delivery(Uuid::now_v7(), ep.id, e, now));
            }
        }
    }
    let created = rows.len();
    for chunk in chunks(rows, 200) {
        webhook_delivery::Entity::insert_many(chunk)
            .exec_without_returning(&txn)
            .await?;
    }
    outbox_event::Entity::update_many()
        .col_expr(outbox_event::Column::WebhooksFannedAt, Expr::value(now))
        .filter(outbox_event::Column::Seq.is_in(events.iter().map(|e| e.seq)))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    metrics::counter!("janua_webhook_deliveries_created_total").increment(created as u64);
    Ok(events.len())
}

fn chunks<T>(mut v: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    while !v.is_empty() {
        let rest = v.split_off(v.len().min(n));
        out.push(std::mem::replace(&mut v, rest));
    }
    out
}

/// A delivery this node holds the lease of, with what sending it needs.
pub struct Claimed {
    pub delivery: webhook_delivery::Model,
    pub url: String,
    pub secret: Secret,
}

/// What one HTTP attempt gave.
#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    /// The receiver's status, when it answered.
    pub status_code: Option<u16>,
    /// Why it failed, when it did (never a secret).
    pub error: Option<String>,
    /// 5xx, 408, 429, timeouts and connection errors are worth retrying; other 4xx are not.
    pub retryable: bool,
}

impl AttemptOutcome {
    /// Whether the receiver accepted the delivery (2xx).
    pub fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

const CLAIM_SQL: &str = "SELECT d.* FROM webhook_deliveries d \
     JOIN webhook_endpoints e ON e.id = d.endpoint_id \
     WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
       AND (d.locked_until IS NULL OR d.locked_until <= $1) \
       AND e.active = $2 \
       AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
           WHERE p.endpoint_id = d.endpoint_id AND p.status = 'pending' \
             AND p.event_seq < d.event_seq AND p.event_type <> 'webhook.test') \
     ORDER BY d.event_seq LIMIT $3";

/// Claims up to `limit` due deliveries, at most one per endpoint and each endpoint's oldest
/// pending event first, by setting their lease. Rows are claimed in one write transaction
/// (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock on SQLite), so no two nodes send
/// the same attempt.
pub async fn claim_due(state: &AppState, limit: usize) -> AppResult<Vec<Claimed>> {
    let db = &state.db;
    let backend = db.get_database_backend();
    let now = Utc::now();
    let sql = match backend {
        DbBackend::Postgres => format!("{CLAIM_SQL} FOR UPDATE OF d SKIP LOCKED"),
        _ => CLAIM_SQL
            .replace("$1", "?1")
            .replace("$2", "?2")
            .replace("$3", "?3"),
    };
    let txn = begin_write(db).await?;
    let rows = webhook_delivery::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend,
            sql,
            [now.into(), true.into(), (limit as i64).into()],
        ))
        .all(&txn)
        .await?;
    if rows.is_empty() {
        txn.commit().await?;
        return Ok(Vec::new());
    }
    webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::LockedUntil,
            Expr::value(now + lease(state)),
        )
        .filter(webhook_delivery::Column::Id.is_in(rows.iter().map(|r| r.id)))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    with_endpoints(state, rows).await
}

/// The delivery `queue_test` leased to this request.
pub async fn claim_leased(state: &AppState, id: Uuid) -> AppResult<Claimed> {
    let d = webhook_delivery::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    with_endpoints(state, vec![d])
        .await?
        .pop()
        .ok_or_else(|| ErrorCode::NotFound.into())
}

async fn with_endpoints(state: &AppState, rows: Vec<webhook_delivery::Model>) -> AppResult<Vec<Claimed>> {
    let ids: HashSet<Uuid> = rows.iter().map(|r| r.endpoint_id).collect();
    let endpoints: HashMap<Uuid, webhook_endpoint::Model> = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for d in rows {
        // An endpoint deleted meanwhile took its deliveries with it.
        if let Some(e) = endpoints.get(&d.endpoint_id) {
            out.push(Claimed {
                url: e.url.clone(),
                secret: open_secret(&state.master_key, e)?,
                delivery: d,
            });
        }
    }
    Ok(out)
}

/// Records attempts and decides what follows each: done, retry at the next step of the
/// schedule, or failed. A failure starts (or continues) the endpoint's failing run; an
/// endpoint failing for `webhook_disable_after` without a success is disabled and audited.
pub async fn record_attempts(state: &AppState, results: Vec<(Claimed, AttemptOutcome)>) -> AppResult<()> {
    if results.is_empty() {
        return Ok(());
    }
    let schedule = &state.config.webhook_retry_schedule;
    let disable_after =
        chrono::Duration::from_std(state.config.webhook_disable_after).unwrap_or(chrono::Duration::days(5));
    let txn = begin_write(&state.db).await?;
    let now = Utc::now();
    let mut endpoint_ok: HashMap<Uuid, (bool, DateTime<Utc>)> = HashMap::new();
    for (c, o) in &results {
        let d = &c.delivery;
        let number = d.attempts + 1;
        let ok = o.succeeded();
        // A test is sent once; redeliver it to try again.
        let step = usize::try_from(number - 1).unwrap_or(usize::MAX);
        let retry_in = (!ok && o.retryable && d.event_type != TEST_EVENT)
            .then(|| schedule.get(step))
            .flatten()
            .and_then(|s| chrono::Duration::from_std(*s).ok());
        let next = retry_in.map(|r| now + r);
        let (status, outcome) = match (ok, next) {
            (true, _) => (SUCCEEDED, "succeeded"),
            (false, Some(_)) => (PENDING, "retrying"),
            (false, None) => (FAILED, "failed"),
        };
        metrics::counter!("janua_webhook_attempts_total", "outcome" => outcome).increment(1);
        if !ok {
            metrics::counter!("janua_webhook_failures_total").increment(1);
        }
        metrics::histogram!("janua_webhook_attempt_duration_seconds").record(o.duration_ms as f64 / 1000.0);
        let code = o.status_code.map(i32::from);
        webhook_attempt::ActiveModel {
            id: Set(Uuid::now_v7()),
            delivery_id: Set(d.id),
            number: Set(number),
            started_at: Set(o.started_at),
            duration_ms: Set(o.duration_ms),
            status_code: Set(code),
            error: Set(o.error.clone()),
            outcome: Set(outcome.into()),
            next_attempt_at: Set(next),
        }
        .insert(&txn)
        .await?;
        webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::Status, Expr::value(status))
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(number))
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(next))
            .col_expr(
                webhook_delivery::Column::LockedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(webhook_delivery::Column::LastAttemptAt, Expr::value(o.started_at))
            .col_expr(webhook_delivery::Column::LastStatusCode, Expr::value(code))
            .col_expr(webhook_delivery::Column::LastError, Expr::value(o.error.clone()))
            .col_expr(
                webhook_delivery::Column::LastDurationMs,
                Expr::value(o.duration_ms),
            )
            .col_expr(
                webhook_delivery::Column::DeliveredAt,
                Expr::value(ok.then_some(now).or(d.delivered_at)),
            )
            .filter(webhook_delivery::Column::Id.eq(d.id))
            .exec(&txn)
            .await?;
        // The endpoint's latest outcome in this batch wins.
        let entry = endpoint_ok.entry(d.endpoint_id).or_insert((ok, o.started_at));
        if o.started_at >= entry.1 {
            *entry = (ok, o.started_at);
        }
    }
    let endpoints = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(endpoint_ok.keys().copied()))
        .all(&txn)
        .await?;
    let mut disabled = false;
    for ep in endpoints {
        let (ok, at) = endpoint_ok[&ep.id];
        match (ok, ep.failing_since) {
            (true, Some(_)) => {
                let mut am: webhook_endpoint::ActiveModel = ep.into();
                am.failing_since = Set(None);
                am.update(&txn).await?;
            }
            (false, None) => {
                let mut am: webhook_endpoint::ActiveModel = ep.into();
                am.failing_since = Set(Some(at));
                am.update(&txn).await?;
            }
            (false, Some(since)) if ep.active && now - since >= disable_after => {
                disable(&txn, ep, since).await?;
                disabled = true;
            }
            _ => {}
        }
    }
    txn.commit().await?;
    if disabled {
        state.events_committed();
    }
    Ok(())
}

async fn disable(
    txn: &impl ConnectionTrait,
    ep: webhook_endpoint::Model,
    since: DateTime<Utc>,
) -> AppResult<()> {
    let mut am: webhook_endpoint::ActiveModel = ep.clone().into();
    am.active = Set(false);
    am.disabled_reason = Set(Some("failing".into()));
    am.updated_at = Set(Utc::now());
    am.update(txn).await?;
    tracing::warn!(webhook_id = %ep.id, failing_since = %since, "webhook endpoint disabled after failing without a success");
    let ctx = RequestContext {
        request_id: "webhook-worker".into(),
        ..RequestContext::default()
    };
    audit::record(
        txn,
        &ctx,
        Change {
            event: EventType::WebhookUpdated,
            target: Some(("webhook", ep.id.to_string())),
            subject_user: ep.user_id,
            acting_user: None,
            data: serde_json::json!({
                "webhook_id": ep.id,
                "active": false,
                "reason": "failing",
                "failing_since": since,
            }),
        },
    )
    .await?;
    Ok(())
}

/// Pending deliveries, on every node (the webhook backlog).
pub async fn backlog(db: &impl ConnectionTrait) -> AppResult<u64> {
    Ok(webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .count(db)
        .await?)
}
