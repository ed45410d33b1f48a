//! Every rule of the domain. Services take plain inputs and a [`RequestContext`]
//! and return domain values or an [`AppError`]; they import no transport.
//!
//! [`RequestContext`]: crate::context::RequestContext
//! [`AppError`]: crate::error::AppError

pub mod audit;
pub mod auth;
pub mod lockout;
pub mod mfa;
pub mod mfa_token;
pub mod passkeys;
pub mod sessions;
pub mod subscriptions;
pub mod users;
