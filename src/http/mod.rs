//! HTTP plumbing: the per-request middleware, the GraphQL transports, and the bundled pages.

pub mod account_pages;
pub mod dashboard;
pub mod graphql;
pub mod headers;
pub mod invitation_page;
pub mod middleware;
pub mod pages;
pub mod request_metrics;
pub mod serve;
pub mod ws;

use std::sync::Arc;

use crate::graphql::JanuaSchema;
use crate::rest::RestApi;
use crate::state::AppState;
use ws::{Fanout, SocketSessions};

/// What every HTTP handler gets: the state, the schema, the WebSocket fan-out and the REST table.
#[derive(Clone)]
pub struct HttpState {
    pub state: AppState,
    pub schema: JanuaSchema,
    /// The schema as `/graphql/ws` runs it: each event resolved once per selection.
    pub ws: Arc<Fanout>,
    /// The sessions `/graphql/ws` connections run under (closed when one is revoked).
    pub ws_sessions: Arc<SocketSessions>,
    /// The `/graphql/ws` connections each user holds on this node.
    pub ws_connections: Arc<ws::admission::ConnectionCounts>,
    pub rest: Arc<RestApi>,
    pub openapi: Arc<String>,
    /// The protocols' own error formats for a request HTTP refuses before routing it (a body
    /// over the limit): `Some` when a protocol claims the path. Given by `app.rs`, so HTTP
    /// does not import the protocols (they import HTTP).
    pub protocol_error: fn(
        &str,
        &crate::context::RequestContext,
        &crate::error::AppError,
    ) -> Option<axum::response::Response>,
}
