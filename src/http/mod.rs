//! HTTP plumbing: the per-request middleware, the GraphQL transports, and the bundled pages.

pub mod graphql;
pub mod middleware;
pub mod nesting;
pub mod pages;
pub mod ws;
