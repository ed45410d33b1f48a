//! The GraphQL schema: per-area objects merged into the roots; a thin layer over services.

mod auth;
pub mod errors;
mod health;
mod mfa;
mod passkeys;
mod sessions;
mod subscription;
mod types;

use async_graphql::{Context, MergedObject, Schema};

use crate::context::RequestContext;
use crate::state::AppState;

pub use errors::decorate_response;

/// Query root.
#[derive(MergedObject, Default)]
pub struct Query(
    auth::AuthQuery,
    sessions::SessionsQuery,
    health::HealthQuery,
    mfa::MfaQuery,
    passkeys::PasskeysQuery,
);

/// Mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(
    auth::AuthMutation,
    sessions::SessionsMutation,
    mfa::MfaMutation,
    passkeys::PasskeysMutation,
);

/// Subscription root.
pub type Subscription = subscription::SessionSubscription;

/// The schema type every transport mounts.
pub type JanuaSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema over `state`, with depth and complexity limits.
pub fn build_schema(state: AppState) -> JanuaSchema {
    let (depth, complexity) = (
        state.config.graphql_max_depth,
        state.config.graphql_max_complexity,
    );
    Schema::build(Query::default(), Mutation::default(), Subscription::default())
        .data(state)
        .extension(errors::ErrorCodes)
        .limit_depth(depth)
        .limit_complexity(complexity)
        .finish()
}

/// The schema without data or limits: for SDL export and for reading the types at start.
pub fn bare_schema() -> JanuaSchema {
    Schema::build(Query::default(), Mutation::default(), Subscription::default()).finish()
}

/// The application state and the request context of a resolver.
pub(crate) fn parts<'a>(ctx: &Context<'a>) -> (&'a AppState, &'a RequestContext) {
    (
        ctx.data_unchecked::<AppState>(),
        ctx.data_unchecked::<RequestContext>(),
    )
}
