//! Every rule of the domain. Services take plain inputs and a [`RequestContext`]
//! and return domain values or an [`AppError`]; they import no transport.
//!
//! [`RequestContext`]: crate::context::RequestContext
//! [`AppError`]: crate::error::AppError

pub mod account_requests;
pub mod account_tokens;
pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod bootstrap;
pub mod email_verification;
pub mod health;
pub mod invitations;
pub mod lockout;
pub mod magic_links;
pub mod mail;
pub mod mfa;
pub mod mfa_token;
pub mod orgs;
pub mod passkeys;
pub mod passwords;
pub mod refresh_batch;
pub mod scim;
pub mod sessions;
pub mod sign_in;
pub mod sso;
pub mod subscriptions;
pub mod unit_of_work;
pub mod users;
pub mod webhook_deliveries;
pub mod webhook_queue;
pub mod webhooks;
