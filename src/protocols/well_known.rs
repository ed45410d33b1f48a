//! `/.well-known/jwks.json` and `/.well-known/openid-configuration`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::http::HttpState;

/// The public signing keys, for resource servers verifying Janua's tokens.
pub async fn jwks(State(svc): State<HttpState>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(svc.state.keys.jwks()))
}

/// Where the keys are, and how tokens are signed.
pub async fn openid_configuration(State(svc): State<HttpState>) -> impl IntoResponse {
    let issuer = svc.state.keys.issuer().trim_end_matches('/').to_owned();
    Json(serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": format!("{issuer}/api/v1/auth/signin"),
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["none"],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "aud", "sub", "sid", "iat", "exp", "jti", "email"],
    }))
}
