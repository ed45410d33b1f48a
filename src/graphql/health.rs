//! `health`.

use async_graphql::{Context, Object, SimpleObject};

use super::parts;

/// Liveness as GraphQL sees it.
#[derive(SimpleObject)]
pub struct Health {
    pub status: String,
    pub version: String,
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
}
