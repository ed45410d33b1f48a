//! The GraphQL schema: per-area objects merged into the roots; a thin layer over services.

mod account;
mod admin;
mod api_keys;
mod auth;
pub mod errors;
pub mod health;
mod invitations;
pub mod limits;
pub mod loaders;
mod mfa;
mod orgs;
mod passkeys;
pub mod render;
pub mod scim;
mod sessions;
mod sso;
mod subscription;
mod types;
mod users;
mod webhooks;

use async_graphql::{Context, MergedObject, Schema};

use crate::context::RequestContext;
use crate::state::AppState;

pub use errors::{decorate_response, error_response, is_request_error};

/// Sign-in, sessions, health.
#[derive(MergedObject, Default)]
pub struct IdentityQuery(
    auth::AuthQuery,
    sessions::SessionsQuery,
    health::HealthQuery,
    mfa::MfaQuery,
    passkeys::PasskeysQuery,
);

/// Users, organizations and invitations, administration, API keys.
#[derive(MergedObject, Default)]
pub struct DirectoryQuery(
    users::UsersQuery,
    orgs::OrgsQuery,
    invitations::InvitationsQuery,
    admin::AdminQuery,
    api_keys::ApiKeysQuery,
);

/// Webhooks, enterprise SSO, SCIM tokens.
#[derive(MergedObject, Default)]
pub struct IntegrationsQuery(webhooks::WebhooksQuery, sso::SsoQuery, scim::ScimQuery);

/// Query root (merged objects nested in groups of at most eight).
#[derive(MergedObject, Default)]
pub struct Query(IdentityQuery, DirectoryQuery, IntegrationsQuery);

/// Sign-in, account mail, sessions, MFA, passkeys.
#[derive(MergedObject, Default)]
pub struct IdentityMutation(
    auth::AuthMutation,
    account::AccountMutation,
    sessions::SessionsMutation,
    mfa::MfaMutation,
    passkeys::PasskeysMutation,
);

/// Users, organizations and invitations, API keys.
#[derive(MergedObject, Default)]
pub struct DirectoryMutation(
    users::UsersMutation,
    orgs::OrgsMutation,
    invitations::InvitationsMutation,
    api_keys::ApiKeysMutation,
);

/// Webhooks, enterprise SSO, SCIM tokens.
#[derive(MergedObject, Default)]
pub struct IntegrationsMutation(webhooks::WebhooksMutation, sso::SsoMutation, scim::ScimMutation);

/// Mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(IdentityMutation, DirectoryMutation, IntegrationsMutation);

/// Subscription root.
pub type Subscription = subscription::SessionSubscription;

/// The schema type every transport mounts.
pub type JanuaSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema over `state`, with depth, complexity and alias limits, introspection as
/// configured.
pub fn build_schema(state: AppState) -> JanuaSchema {
    let (depth, complexity) = (state.config.graphql_max_depth, state.config.graphql_max_complexity);
    let (max_aliases, introspection) = (state.config.graphql_max_aliases, state.config.graphql_introspection);
    let builder = Schema::build(Query::default(), Mutation::default(), Subscription::default())
        .data(state)
        .extension(limits::DocumentLimits { max_aliases, introspection })
        .extension(errors::ErrorCodes)
        .limit_depth(depth)
        .limit_complexity(complexity);
    // Off, `__schema` and `__type` are refused before running (`limits`); `__typename` stays.
    if introspection { builder.finish() } else { builder.disable_introspection().finish() }
}

/// The schema without data or limits: for SDL export and for reading the types at start.
pub fn bare_schema() -> JanuaSchema {
    Schema::build(Query::default(), Mutation::default(), Subscription::default()).finish()
}

/// The application state and the request context of a resolver.
pub(crate) fn parts<'a>(ctx: &Context<'a>) -> (&'a AppState, &'a RequestContext) {
    (ctx.data_unchecked::<AppState>(), ctx.data_unchecked::<RequestContext>())
}
