//! `/health` (liveness), `/ready` (dependencies answer), `/metrics`, and the operator check that
//! `/metrics` and `/api/v1/health/detailed` (a row of the REST table) share.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use entities::outbox_event;

use crate::http::HttpState;
use crate::security::operator::operator_allowed;
use crate::services::{health, sessions, webhook_queue};

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

/// Readiness: 200 only when the database (and the configured Redis) answer, else 503.
pub async fn ready(State(svc): State<HttpState>) -> Response {
    let database = health::database(&svc.state).await;
    let redis = health::redis(&svc.state).await;
    let ok = database.status == "ok" && redis.status != "down";
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ok { "ready" } else { "unavailable" },
        "checks": {"database": database.status, "redis": redis.status},
    });
    (status, Json(body)).into_response()
}

/// Prometheus metrics, with the active-session gauge refreshed at scrape time.
pub async fn metrics(State(svc): State<HttpState>, headers: HeaderMap) -> Response {
    if !operator_allowed(&svc.state.config, &headers) {
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
    if let Ok(n) = crate::services::mail::queue::backlog(&svc.state.db).await {
        metrics::gauge!("janua_mail_backlog").set(n as f64);
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
