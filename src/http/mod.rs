//! HTTP plumbing: the per-request middleware, the GraphQL transport, and the bundled pages.

pub mod graphql;
pub mod graphql_ws;
pub mod middleware;
pub mod nesting;
pub mod pages;
pub mod ws_sessions;
pub mod ws_socket;
