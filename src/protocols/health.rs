//! `/health` (liveness), `/ready` (dependencies answer), `/metrics`, `/api/v1/health/detailed`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::json;

use entities::outbox_event;

use crate::app::Services;
use crate::context::RequestContext;
use crate::error::{AppError, ErrorCode};
use crate::rest::envelope;
use crate::security::secrets::{constant_time_eq, sha256_hex};
use crate::services::{sessions, webhook_queue};

/// The process-wide Prometheus recorder (metrics are a process facility; installed once).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("janua_http_request_duration_seconds".into()),
                &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            )
            .expect("static bucket list is not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// Liveness: the process answers.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn database_check(svc: &Services) -> (bool, f64) {
    let start = Instant::now();
    let ok = svc.state.db.ping().await.is_ok();
    (ok, start.elapsed().as_secs_f64() * 1000.0)
}

/// `None` when no Redis is configured, else whether it answers and its latency (ms).
async fn redis_check(svc: &Services) -> Option<(bool, f64)> {
    match &svc.state.redis {
        Some(r) => Some(r.ping().await),
        None => None,
    }
}

fn redis_status(check: Option<(bool, f64)>) -> &'static str {
    match check {
        None => "not_configured",
        Some((true, _)) => "ok",
        Some((false, _)) => "down",
    }
}

/// Readiness: 200 only when the database (and the configured Redis) answer, else 503.
pub async fn ready(State(svc): State<Services>) -> Response {
    let (db_ok, _) = database_check(&svc).await;
    let redis = redis_check(&svc).await;
    let ok = db_ok && redis.is_none_or(|(up, _)| up);
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ok { "ready" } else { "unavailable" },
        "checks": {"database": if db_ok { "ok" } else { "down" }, "redis": redis_status(redis)},
    });
    (status, Json(body)).into_response()
}

/// Whether a request may read the operator endpoints: always when no `JANUA_METRICS_TOKEN` is
/// set, else only with that bearer (compared in constant time over its SHA-256, so neither the
/// content nor the length leaks).
fn operator_allowed(svc: &Services, headers: &HeaderMap) -> bool {
    let Some(expected) = svc.state.config.metrics_token.as_deref() else { return true };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    constant_time_eq(sha256_hex(presented).as_bytes(), sha256_hex(expected).as_bytes())
}

/// Prometheus metrics, with the active-session gauge refreshed at scrape time.
pub async fn metrics(State(svc): State<Services>, headers: HeaderMap) -> Response {
    if !operator_allowed(&svc, &headers) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "unauthorized\n")
            .into_response();
    }
    if let Ok(n) = sessions::count_active(&svc.state.db).await {
        metrics::gauge!("janua_active_sessions").set(n as f64);
    }
    metrics::gauge!("janua_event_subscribers").set(svc.state.bus.subscriber_count() as f64);
    if let Ok(n) = webhook_queue::backlog(&svc.state.db).await {
        metrics::gauge!("janua_webhook_backlog").set(n as f64);
    }
    if let Ok(Some(oldest)) = outbox_event::Entity::find()
        .filter(outbox_event::Column::PublishedAt.is_null())
        .order_by_asc(outbox_event::Column::Seq)
        .one(&svc.state.db)
        .await
    {
        let lag = (chrono::Utc::now() - oldest.created_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::gauge!("janua_outbox_lag_seconds").set(lag);
    } else {
        metrics::gauge!("janua_outbox_lag_seconds").set(0.0);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render()).into_response()
}

/// Each dependency's status and latency, the event backlog and the webhook backlog (pending
/// deliveries), inside the envelope.
pub async fn detailed(
    State(svc): State<Services>,
    Extension(rc): Extension<RequestContext>,
    headers: HeaderMap,
) -> Response {
    if !operator_allowed(&svc, &headers) {
        let mut r = envelope::error_for(&rc, &AppError::new(ErrorCode::AuthenticationRequired));
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let (db_ok, db_ms) = database_check(&svc).await;
    let redis = redis_check(&svc).await;
    let mut redis_json = json!({"status": redis_status(redis)});
    if let Some((_, ms)) = redis {
        redis_json["latency_ms"] = json!((ms * 1000.0).round() / 1000.0);
    }
    let backlog = outbox_event::Entity::find()
        .filter(outbox_event::Column::PublishedAt.is_null())
        .count(&svc.state.db)
        .await
        .ok();
    let webhook_backlog = webhook_queue::backlog(&svc.state.db).await.ok();
    let status = match (db_ok, redis) {
        (false, _) => "unhealthy",
        (true, Some((false, _))) => "degraded",
        _ => "healthy",
    };
    let data = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": svc.state.started_at.elapsed().as_secs(),
        "dependencies": {
            "database": {
                "status": if db_ok { "ok" } else { "down" },
                "backend": format!("{:?}", svc.state.db.get_database_backend()).to_lowercase(),
                "latency_ms": (db_ms * 1000.0).round() / 1000.0,
            },
            "redis": redis_json,
        },
        "event_backlog": backlog,
        "event_subscribers": svc.state.bus.subscriber_count(),
        "webhook_backlog": webhook_backlog,
    });
    let code = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    envelope::success(&rc, code, data, None)
}
