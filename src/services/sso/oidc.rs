//! The OpenID Connect relying party, with openidconnect: discovery, the authorization URL
//! (authorization code + PKCE S256, state, nonce) and the code exchange with id_token
//! verification against the IdP's JWKS. No storage: the caller keeps [`Pending`] single-use.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::AppResult;
use crate::storage::documents::DocumentCache;

/// What Janua knows of one OIDC provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OidcSettings {
    pub issuer: String,
    /// Default: issuer + `/.well-known/openid-configuration`.
    pub discovery_url: Option<String>,
    pub client_id: String,
    /// Opened from its sealed form just for the request.
    pub client_secret: String,
    pub scopes: Vec<String>,
}

/// A started authorization: kept by the caller under `state`, taken once at the callback.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub redirect_uri: String,
}

/// The verified identity: the id_token's claims, completed from userinfo when it lacks email.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    /// Every claim (id_token, then userinfo), for attribute mapping.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Checks that the provider's discovery document can be read and names `issuer` (used when a
/// provider is created or changed).
pub async fn discover(_http: &reqwest::Client, _cache: &DocumentCache, _s: &OidcSettings) -> AppResult<()> {
    unimplemented!("OIDC: discover")
}

/// The authorization URL for `redirect_uri`, and what the callback needs.
pub async fn authorization_url(
    _http: &reqwest::Client,
    _cache: &DocumentCache,
    _s: &OidcSettings,
    _redirect_uri: &str,
) -> AppResult<(String, Pending)> {
    unimplemented!("OIDC: authorization_url")
}

/// Exchanges `code` and verifies the id_token (signature, `iss`, `aud`, `exp`, `iat`, `nonce`).
pub async fn complete(
    _http: &reqwest::Client,
    _cache: &DocumentCache,
    _s: &OidcSettings,
    _pending: &Pending,
    _code: &str,
    _now: DateTime<Utc>,
) -> AppResult<Identity> {
    unimplemented!("OIDC: complete")
}
