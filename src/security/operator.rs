//! The operator endpoints' bearer (`JANUA_METRICS_TOKEN`): `/metrics` and the detailed health.

use axum::http::{HeaderMap, header};

use crate::config::Config;
use crate::security::secrets::{constant_time_eq, sha256_hex};

/// Whether a request may read the operator endpoints: always when no `JANUA_METRICS_TOKEN` is
/// set, else only with that bearer (compared in constant time over its SHA-256, so neither the
/// content nor the length leaks).
pub fn operator_allowed(config: &Config, headers: &HeaderMap) -> bool {
    let Some(expected) = config.metrics_token.as_deref() else { return true };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    constant_time_eq(sha256_hex(presented).as_bytes(), sha256_hex(expected).as_bytes())
}
