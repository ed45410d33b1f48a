//! Routes that speak their own format: health, readiness, metrics, JWKS, OpenID configuration.

pub mod health;
pub mod scim;
pub mod sso;
pub mod well_known;
