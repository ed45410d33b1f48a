//! The webhook queue: fan-out from the outbox, claiming due deliveries (one node per attempt,
//! each delivery on its own, a bounded number in flight per endpoint), recording every attempt
//! with its retry decision (also those cut short), disabling endpoints that keep failing.
//!
//! State lives in the database only, so a crash loses nothing: an outbox row is fanned out in
//! the transaction that marks it; a claimed delivery carries a lease (`locked_until`) that
//! expires if its node dies before recording the attempt.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ExprTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use uuid::Uuid;

use entities::{outbox_event, webhook_attempt, webhook_delivery, webhook_endpoint};

use crate::domain::EventType;
use crate::domain::webhooks::filter_matches;
use crate::error::{AppResult, ErrorCode};
use crate::security::secrets::Secret;
use crate::services::audit::Change;
use crate::services::unit_of_work::Write;
use crate::services::webhook_deliveries::{FAILED, PENDING, SUCCEEDED, TEST_EVENT, lease, new_delivery};
use crate::services::webhooks::open_secret;
use crate::state::AppState;

/// The request id the webhook worker's writes are audited under.
const WORKER: &str = "webhook-worker";

/// Serialises fan-out across PostgreSQL nodes, so deliveries are created in outbox order.
const FAN_OUT_LOCK: i64 = 0x6a61_6e75_6177_6801;

/// Turns one batch of published, not yet fanned-out outbox events into deliveries for the
/// matching active endpoints (the subject user's, created before the event), marking the events
/// in the same transaction. Returns how many events it handled (0: nothing left).
pub async fn fan_out_once(state: &AppState) -> AppResult<usize> {
    let db = &state.db;
    let unfanned = || {
        outbox_event::Entity::find()
            .filter(outbox_event::Column::PublishedAt.is_not_null())
            .filter(outbox_event::Column::WebhooksFannedAt.is_null())
    };
    // A plain read first: an idle node does not take the write lock.
    if unfanned().limit(1).count(db).await? == 0 {
        return Ok(0);
    }
    let w = Write::begin_worker(state, WORKER).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        w.tx()
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [FAN_OUT_LOCK.into()],
            ))
            .await?;
    }
    let events = unfanned().order_by_asc(outbox_event::Column::Seq).limit(500).all(w.tx()).await?;
    if events.is_empty() {
        w.commit().await?;
        return Ok(0);
    }
    // Test events go only to the endpoint under test, which `queue_test` already did.
    let subjects: HashSet<Uuid> =
        events.iter().filter(|e| e.event_type != TEST_EVENT).filter_map(|e| e.subject_user_id).collect();
    let orgs: HashSet<Uuid> =
        events.iter().filter(|e| e.event_type != TEST_EVENT).filter_map(|e| e.organization_id).collect();
    let endpoints = if subjects.is_empty() && orgs.is_empty() {
        Vec::new()
    } else {
        webhook_endpoint::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(webhook_endpoint::Column::UserId.is_in(subjects))
                    .add(webhook_endpoint::Column::OrganizationId.is_in(orgs)),
            )
            .filter(webhook_endpoint::Column::Active.eq(true))
            .all(w.tx())
            .await?
    };
    let now = Utc::now();
    let mut rows = Vec::new();
    for e in events.iter().filter(|e| e.event_type != TEST_EVENT) {
        for ep in &endpoints {
            // A user's endpoint gets the events about that user; an organization's, its events.
            let owns = (ep.user_id.is_some() && ep.user_id == e.subject_user_id)
                || (ep.organization_id.is_some() && ep.organization_id == e.organization_id);
            if owns && ep.created_at <= e.created_at && filter_matches(&ep.events, &e.event_type) {
                rows.push(new_delivery(Uuid::now_v7(), ep.id, e, now));
            }
        }
    }
    let created = rows.len();
    for chunk in chunks(rows, 200) {
        webhook_delivery::Entity::insert_many(chunk).exec_without_returning(w.tx()).await?;
    }
    outbox_event::Entity::update_many()
        .col_expr(outbox_event::Column::WebhooksFannedAt, Expr::value(now))
        .filter(outbox_event::Column::Seq.is_in(events.iter().map(|e| e.seq)))
        .exec(w.tx())
        .await?;
    w.commit().await?;
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

/// Due, unleased deliveries of active endpoints, each endpoint's oldest first and at most `$3`
/// of each (`rn`), the longest due first overall.
const CLAIM_SQL: &str = "SELECT * FROM (SELECT d.*, ROW_NUMBER() OVER \
       (PARTITION BY d.endpoint_id ORDER BY d.event_seq, d.id) AS rn \
     FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
     WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND d.locked_until IS NULL \
       AND e.active = $2) t \
     WHERE t.rn <= $3 ORDER BY t.next_attempt_at, t.event_seq LIMIT $4";

/// Serialises claims across PostgreSQL nodes, so the per-endpoint bound holds for them all.
const CLAIM_LOCK: i64 = 0x6a61_6e75_6177_6802;

/// The error of an attempt whose node stopped (crashed, or was killed) before recording it.
pub const CUT_SHORT: &str = "cut short: the node sending it stopped before recording the outcome";
/// The error of an attempt a stopping node handed back when its shutdown grace ran out.
pub const HANDED_BACK: &str = "cut short: handed back by a node shutting down";

/// Claims up to `limit` due deliveries by setting their lease, each independent of the others:
/// a delivery waiting for its retry holds up no later event. At most
/// `JANUA_WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT` deliveries of one endpoint are leased at once,
/// counting every node's (claims are serialised: the write lock on SQLite, an advisory lock on
/// PostgreSQL). A lease that expired belongs to an attempt cut short by a crash: the attempt is
/// recorded first (`interrupted`, [`CUT_SHORT`]) and the delivery is due again at once.
pub async fn claim_due(state: &AppState, limit: usize) -> AppResult<Vec<Claimed>> {
    let db = &state.db;
    let backend = db.get_database_backend();
    let now = Utc::now();
    let sql = match backend {
        DbBackend::Postgres => CLAIM_SQL.to_owned(),
        _ => CLAIM_SQL.replace("$1", "?1").replace("$2", "?2").replace("$3", "?3").replace("$4", "?4"),
    };
    let due = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
        .filter(
            webhook_delivery::Column::LockedUntil
                .is_null()
                .or(webhook_delivery::Column::LockedUntil.lte(now)),
        );
    if limit == 0 || due.limit(1).count(db).await? == 0 {
        return Ok(Vec::new());
    }
    let w = Write::begin_worker(state, WORKER).await?;
    if backend == DbBackend::Postgres {
        w.tx()
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [CLAIM_LOCK.into()],
            ))
            .await?;
    }
    let expired = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .filter(webhook_delivery::Column::LockedUntil.lte(now))
        .limit(500)
        .all(w.tx())
        .await?;
    if !expired.is_empty() {
        let lease = lease(state);
        let cut: Vec<_> = expired
            .into_iter()
            .map(|d| {
                let started = d.locked_until.map_or(now, |t| t - lease);
                (d, started, 0, CUT_SHORT)
            })
            .collect();
        record_interrupted(state, &w, cut, now).await?;
    }
    let per_endpoint = state.config.webhook_max_in_flight_per_endpoint.max(1);
    let in_flight: HashMap<Uuid, i64> = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::EndpointId)
        .column_as(webhook_delivery::Column::Id.count(), "n")
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .filter(webhook_delivery::Column::LockedUntil.gt(now))
        .group_by(webhook_delivery::Column::EndpointId)
        .into_tuple::<(Uuid, i64)>()
        .all(w.tx())
        .await?
        .into_iter()
        .collect();
    let candidates = webhook_delivery::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend,
            sql,
            [now.into(), true.into(), (per_endpoint as i64).into(), (limit as i64).into()],
        ))
        .all(w.tx())
        .await?;
    let mut taken: HashMap<Uuid, i64> = HashMap::new();
    let rows: Vec<webhook_delivery::Model> = candidates
        .into_iter()
        .filter(|d| {
            let n = taken.entry(d.endpoint_id).or_insert(in_flight.get(&d.endpoint_id).copied().unwrap_or(0));
            if *n >= per_endpoint as i64 {
                return false;
            }
            *n += 1;
            true
        })
        .collect();
    if rows.is_empty() {
        w.commit().await?;
        return Ok(Vec::new());
    }
    webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::LockedUntil, Expr::value(now + lease(state)))
        .filter(webhook_delivery::Column::Id.is_in(rows.iter().map(|r| r.id)))
        .exec(w.tx())
        .await?;
    w.commit().await?;
    with_endpoints(state, rows).await
}

/// Records attempts that were cut short (`interrupted`, with `error`) and makes each delivery
/// due again at once, or failed when its schedule has no retry left. Each is
/// `(delivery as leased, started_at, duration_ms, error)`; one already recorded meanwhile (by
/// another node) is left alone.
async fn record_interrupted(
    state: &AppState,
    w: &Write<'_>,
    cut: Vec<(webhook_delivery::Model, DateTime<Utc>, i64, &'static str)>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let schedule = &state.config.webhook_retry_schedule;
    let mut attempts = Vec::with_capacity(cut.len());
    for (d, started_at, duration_ms, error) in cut {
        let number = d.attempts + 1;
        let retry =
            d.event_type != TEST_EVENT && usize::try_from(number - 1).is_ok_and(|s| s < schedule.len());
        let (status, next) = if retry { (PENDING, Some(now)) } else { (FAILED, None) };
        let done = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::Status, Expr::value(status))
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(number))
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(next))
            .col_expr(webhook_delivery::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(webhook_delivery::Column::LastAttemptAt, Expr::value(started_at))
            .col_expr(webhook_delivery::Column::LastStatusCode, Expr::value(Option::<i32>::None))
            .col_expr(webhook_delivery::Column::LastError, Expr::value(error))
            .col_expr(webhook_delivery::Column::LastDurationMs, Expr::value(duration_ms))
            .filter(webhook_delivery::Column::Id.eq(d.id))
            .filter(webhook_delivery::Column::Status.eq(PENDING))
            .filter(webhook_delivery::Column::Attempts.eq(d.attempts))
            .exec(w.tx())
            .await?;
        if done.rows_affected == 0 {
            continue;
        }
        metrics::counter!("janua_webhook_attempts_total", "outcome" => "interrupted").increment(1);
        attempts.push(webhook_attempt::ActiveModel {
            id: Set(Uuid::now_v7()),
            delivery_id: Set(d.id),
            number: Set(number),
            started_at: Set(started_at),
            duration_ms: Set(duration_ms),
            status_code: Set(None),
            error: Set(Some(error.into())),
            outcome: Set(INTERRUPTED.into()),
            next_attempt_at: Set(next),
        });
    }
    for chunk in chunks(attempts, 200) {
        webhook_attempt::Entity::insert_many(chunk).exec_without_returning(w.tx()).await?;
    }
    Ok(())
}

/// The outcome of an attempt cut short (a crash, or a shutdown handing it back).
pub const INTERRUPTED: &str = "interrupted";

/// Hands back deliveries a stopping node was still sending when its grace ran out: each attempt
/// is recorded as `interrupted` ([`HANDED_BACK`]) and the lease released, so another node (or
/// the next start) sends the delivery again at once. `(delivery as claimed, started_at)`.
pub async fn hand_back(
    state: &AppState,
    cut: Vec<(webhook_delivery::Model, DateTime<Utc>)>,
) -> AppResult<()> {
    if cut.is_empty() {
        return Ok(());
    }
    let w = Write::begin_worker(state, WORKER).await?;
    let now = Utc::now();
    let cut = cut
        .into_iter()
        .map(|(d, started)| {
            let ms = std::cmp::max((now - started).num_milliseconds(), 0);
            (d, started, ms, HANDED_BACK)
        })
        .collect();
    record_interrupted(state, &w, cut, now).await?;
    w.commit().await?;
    Ok(())
}

/// The delivery `queue_test` leased to this request.
pub async fn claim_leased(state: &AppState, id: Uuid) -> AppResult<Claimed> {
    let d = webhook_delivery::Entity::find_by_id(id).one(&state.db).await?.ok_or(ErrorCode::NotFound)?;
    with_endpoints(state, vec![d]).await?.pop().ok_or_else(|| ErrorCode::NotFound.into())
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
            out.push(Claimed { url: e.url.clone(), secret: open_secret(&state.master_key, e)?, delivery: d });
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
    let mut w = Write::begin_worker(state, WORKER).await?;
    let now = Utc::now();
    let mut endpoint_ok: HashMap<Uuid, (bool, DateTime<Utc>)> = HashMap::new();
    let mut attempts = Vec::with_capacity(results.len());
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
        let attempt = webhook_attempt::ActiveModel {
            id: Set(Uuid::now_v7()),
            delivery_id: Set(d.id),
            number: Set(number),
            started_at: Set(o.started_at),
            duration_ms: Set(o.duration_ms),
            status_code: Set(code),
            error: Set(o.error.clone()),
            outcome: Set(outcome.into()),
            next_attempt_at: Set(next),
        };
        let updated = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::Status, Expr::value(status))
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(number))
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(next))
            .col_expr(webhook_delivery::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(webhook_delivery::Column::LastAttemptAt, Expr::value(o.started_at))
            .col_expr(webhook_delivery::Column::LastStatusCode, Expr::value(code))
            .col_expr(webhook_delivery::Column::LastError, Expr::value(o.error.clone()))
            .col_expr(webhook_delivery::Column::LastDurationMs, Expr::value(o.duration_ms))
            .col_expr(
                webhook_delivery::Column::DeliveredAt,
                Expr::value(ok.then_some(now).or(d.delivered_at)),
            )
            .filter(webhook_delivery::Column::Id.eq(d.id))
            // Still as claimed: not deleted with its endpoint meanwhile, nor recorded as cut
            // short by another node after the lease ran out.
            .filter(webhook_delivery::Column::Attempts.eq(d.attempts))
            .filter(webhook_delivery::Column::Status.eq(PENDING))
            .exec(w.tx())
            .await?;
        if updated.rows_affected == 0 {
            continue;
        }
        attempts.push(attempt);
        // The endpoint's latest outcome in this batch wins.
        let entry = endpoint_ok.entry(d.endpoint_id).or_insert((ok, o.started_at));
        if o.started_at >= entry.1 {
            *entry = (ok, o.started_at);
        }
    }
    for chunk in chunks(attempts, 200) {
        webhook_attempt::Entity::insert_many(chunk).exec_without_returning(w.tx()).await?;
    }
    let endpoints = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(endpoint_ok.keys().copied()))
        .all(w.tx())
        .await?;
    for ep in endpoints {
        let (ok, at) = endpoint_ok[&ep.id];
        match (ok, ep.failing_since) {
            (true, Some(_)) => {
                let mut am: webhook_endpoint::ActiveModel = ep.into();
                am.failing_since = Set(None);
                am.update(w.tx()).await?;
            }
            (false, None) => {
                let mut am: webhook_endpoint::ActiveModel = ep.into();
                am.failing_since = Set(Some(at));
                am.update(w.tx()).await?;
            }
            (false, Some(since)) if ep.active && now - since >= disable_after => {
                disable(&mut w, ep, since).await?;
            }
            _ => {}
        }
    }
    // Commit wakes the workers when an endpoint was disabled (its change is an event).
    w.commit().await?;
    Ok(())
}

async fn disable(w: &mut Write<'_>, ep: webhook_endpoint::Model, since: DateTime<Utc>) -> AppResult<()> {
    let mut am: webhook_endpoint::ActiveModel = ep.clone().into();
    am.active = Set(false);
    am.disabled_reason = Set(Some("failing".into()));
    am.updated_at = Set(Utc::now());
    am.update(w.tx()).await?;
    tracing::warn!(webhook_id = %ep.id, failing_since = %since, "webhook endpoint disabled after failing without a success");
    w.record(Change {
        event: EventType::WebhookUpdated,
        target: Some(("webhook", ep.id.to_string())),
        subject_user: ep.user_id,
        acting_user: None,
        organization: None,
        data: serde_json::json!({
            "webhook_id": ep.id,
            "active": false,
            "reason": "failing",
            "failing_since": since,
        }),
    })
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
