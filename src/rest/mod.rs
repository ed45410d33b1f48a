//! The REST compatibility layer: a table of `/api/v1` routes, each running a GraphQL operation.

mod account_routes;
pub mod adapter;
pub mod body;
pub mod casing;
pub mod envelope;
mod invitation_routes;
pub mod openapi;
pub mod routes;
pub mod shapes;
mod sso_routes;

pub use adapter::RestApi;
