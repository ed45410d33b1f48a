//! What Users and Groups share as SCIM resources: ids, ETags, `meta`, and how a resource
//! changes (a whole new document or a PATCH body).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{AppResult, ErrorCode};

/// How a resource changes: a whole new document (PUT) or a PATCH body.
pub enum Edit<'a> {
    Replace(&'a Value),
    Patch(&'a Value),
}

/// The ETag of a version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Refuses a change when `If-Match` names other versions (`*` matches any).
pub fn check_if_match(if_match: Option<&str>, version: i64) -> AppResult<()> {
    let Some(h) = if_match else { return Ok(()) };
    let current = etag(version);
    let strong = format!("\"{version}\"");
    let ok = h.split(',').map(str::trim).any(|t| t == "*" || t == current || t == strong);
    if ok { Ok(()) } else { Err(ErrorCode::PreconditionFailed.into()) }
}

/// A resource's URL: `{base}/{endpoint}/{id}` (`endpoint` is `Users` or `Groups`).
pub fn location(base: &str, endpoint: &str, id: Uuid) -> String {
    format!("{base}/{endpoint}/{id}")
}

/// The resource id as a uuid (a malformed one is simply not found).
pub fn parse_id(id: &str) -> AppResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ErrorCode::NotFound.into())
}

/// The `meta` of a resource (RFC 7643 §3.1).
pub fn meta(
    resource_type: &str,
    location: String,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    version: i64,
) -> Value {
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    json!({
        "resourceType": resource_type,
        "created": ts(created),
        "lastModified": ts(modified),
        "location": location,
        "version": etag(version),
    })
}
