//! Enterprise single sign-on: an organization's SAML 2.0 or OpenID Connect identity provider.
//!
//! - [`saml`]: the SAML service provider (samael): SP metadata, AuthnRequests, and the checks
//!   on a Response (signature, audience, recipient, validity) — pure, no storage.
//! - [`oidc`]: the OpenID Connect relying party (openidconnect): discovery, the authorization
//!   URL (code + PKCE S256, state, nonce), the code exchange and id_token verification.
//!
//! Storage and sign-in live beside them: providers per organization, the single-use request
//! state, assertion replay, linking and just-in-time provisioning, the one-time browser code.

pub mod flow;
pub mod oidc;
pub mod providers;
pub mod saml;
mod settings;
