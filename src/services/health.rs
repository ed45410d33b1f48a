//! What the operator endpoints report: each dependency's status and latency, the event backlog
//! and the webhook and mail backlogs (`/ready`, and the `healthDetailed` query behind
//! `/api/v1/health/detailed`).

use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use entities::outbox_event;

use crate::context::RequestContext;
use crate::error::AppResult;
use crate::services::authz::{self, Action};
use crate::services::webhook_queue;
use crate::state::AppState;

/// A dependency's state and how long its check took (milliseconds, `None` when not checked).
#[derive(Clone, Debug)]
pub struct Check {
    /// `ok`, `down` or `not_configured`.
    pub status: &'static str,
    pub latency_ms: Option<f64>,
}

/// The detailed health report.
#[derive(Clone, Debug)]
pub struct Detailed {
    /// `healthy`, `degraded` (Redis down) or `unhealthy` (database down).
    pub status: &'static str,
    pub uptime_seconds: u64,
    pub database: Check,
    /// `sqlite` or `postgres`.
    pub database_backend: String,
    pub redis: Check,
    /// Outbox events not yet published (`None` when the database does not answer).
    pub event_backlog: Option<u64>,
    pub event_subscribers: u64,
    /// Pending webhook deliveries (`None` when the database does not answer).
    pub webhook_backlog: Option<u64>,
    /// Mails waiting to be sent (`None` when the database does not answer).
    pub mail_backlog: Option<u64>,
}

fn ms(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Whether the database answers, and its latency.
pub async fn database(state: &AppState) -> Check {
    let start = Instant::now();
    // Bounded: a database that does not answer within 2 s is down for readiness (the pool
    // itself would wait for its full acquire timeout).
    let ok = matches!(tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await, Ok(Ok(())));
    Check { status: if ok { "ok" } else { "down" }, latency_ms: Some(ms(start)) }
}

/// Whether the configured Redis answers (`not_configured` without one), and its latency.
pub async fn redis(state: &AppState) -> Check {
    match &state.redis {
        Some(r) => {
            let (ok, latency) = r.ping().await;
            Check {
                status: if ok { "ok" } else { "down" },
                latency_ms: Some((latency * 1000.0).round() / 1000.0),
            }
        }
        None => Check { status: "not_configured", latency_ms: None },
    }
}

/// The detailed report. `operator` says the transport has checked the operator bearer
/// (`JANUA_METRICS_TOKEN`, or none configured); otherwise only administrators may read it.
pub async fn detailed(state: &AppState, ctx: &RequestContext, operator: bool) -> AppResult<Detailed> {
    if !operator {
        let p = authz::principal(state, ctx).await?;
        authz::authorize(&p, &Action::AdminRead)?;
    }
    let database = database(state).await;
    let redis = redis(state).await;
    let db_ok = database.status == "ok";
    let event_backlog = outbox_event::Entity::find()
        .filter(outbox_event::Column::PublishedAt.is_null())
        .count(&state.db)
        .await
        .ok();
    let status = match (db_ok, redis.status) {
        (false, _) => "unhealthy",
        (true, "down") => "degraded",
        _ => "healthy",
    };
    Ok(Detailed {
        status,
        uptime_seconds: state.started_at.elapsed().as_secs(),
        database_backend: format!("{:?}", state.db.get_database_backend()).to_lowercase(),
        database,
        redis,
        event_backlog,
        event_subscribers: state.bus.subscriber_count() as u64,
        webhook_backlog: webhook_queue::backlog(&state.db).await.ok(),
        mail_backlog: crate::services::mail::queue::backlog(&state.db).await.ok(),
    })
}
