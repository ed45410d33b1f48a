//! `health` and `healthDetailed`.

use async_graphql::{Context, Object, Result, SimpleObject};

use super::parts;
use crate::services::health;

/// Liveness as GraphQL sees it.
#[derive(SimpleObject)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// Put in a request's data by a transport that has checked the operator bearer
/// (`JANUA_METRICS_TOKEN`): `healthDetailed` is then answered without a user.
#[derive(Clone, Copy, Debug)]
pub struct OperatorGrant;

/// One dependency.
#[derive(SimpleObject)]
pub struct DependencyHealth {
    /// `ok`, `down` or `not_configured`.
    pub status: String,
    /// Only for the database: `sqlite` or `postgres`.
    pub backend: Option<String>,
    /// How long the check took, in milliseconds (null when not configured).
    pub latency_ms: Option<f64>,
}

/// The dependencies checked.
#[derive(SimpleObject)]
pub struct Dependencies {
    pub database: DependencyHealth,
    pub redis: DependencyHealth,
}

/// Each dependency's status and latency, the event backlog and the webhook and mail backlogs.
#[derive(SimpleObject)]
pub struct DetailedHealth {
    /// `healthy`, `degraded` (Redis down) or `unhealthy` (database down).
    pub status: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub dependencies: Dependencies,
    /// Outbox events not yet published (null when the database does not answer).
    pub event_backlog: Option<u64>,
    pub event_subscribers: u64,
    /// Pending webhook deliveries (null when the database does not answer).
    pub webhook_backlog: Option<u64>,
    /// Mails waiting to be sent (null when the database does not answer).
    pub mail_backlog: Option<u64>,
}

/// Health query.
#[derive(Default)]
pub struct HealthQuery;

#[Object]
impl HealthQuery {
    /// Whether the server is up, and its version.
    async fn health(&self, ctx: &Context<'_>) -> Health {
        let _ = parts(ctx);
        Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    /// Each dependency's status and latency and the backlogs: administrators, or the operator
    /// bearer (`JANUA_METRICS_TOKEN`) at `/api/v1/health/detailed`.
    async fn health_detailed(&self, ctx: &Context<'_>) -> Result<DetailedHealth> {
        let (state, rc) = parts(ctx);
        let d = health::detailed(state, rc, ctx.data_opt::<OperatorGrant>().is_some()).await?;
        let dep = |c: health::Check, backend: Option<String>| DependencyHealth {
            status: c.status.to_owned(),
            backend,
            latency_ms: c.latency_ms,
        };
        Ok(DetailedHealth {
            status: d.status.to_owned(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: d.uptime_seconds,
            dependencies: Dependencies {
                database: dep(d.database, Some(d.database_backend)),
                redis: dep(d.redis, None),
            },
            event_backlog: d.event_backlog,
            event_subscribers: d.event_subscribers,
            webhook_backlog: d.webhook_backlog,
            mail_backlog: d.mail_backlog,
        })
    }
}
