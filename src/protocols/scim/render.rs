//! Writing a SCIM answer: `application/scim+json` bodies, `ListResponse`s, resources with their
//! `ETag` and `Location`, 304s, the service provider configuration, and SCIM `Error`s.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::request::Projection;
use crate::context::RequestContext;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::services::scim::{ListResult, MAX_RESULTS, ScimType};

pub(super) const SCIM_JSON: &str = "application/scim+json";
const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A page of resources, each projected, as a `ListResponse`.
pub(super) fn listed(r: ListResult, p: &Projection) -> AppResult<Response> {
    let resources = r.resources.iter().map(|d| p.apply(d)).collect::<Result<Vec<_>, _>>()?;
    Ok(scim_json(StatusCode::OK, list_response(r.total, r.start_index, resources)))
}

pub(super) fn list_response(total: u64, start: u64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_URN],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

pub(super) fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": format!("{}/docs", base.split("/api/v1").next().unwrap_or(base)),
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "The organization's SCIM token (POST /api/v1/organizations/{id}/scim/tokens), as Authorization: Bearer",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

pub(super) fn scim_json(status: StatusCode, v: Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    r
}

/// A resource answer, with its `Location` and `ETag` from `meta`.
pub(super) fn resource(status: StatusCode, doc: Value) -> Response {
    let loc = doc["meta"]["location"].as_str().map(str::to_owned);
    let tag = doc["meta"]["version"].as_str().map(str::to_owned);
    let mut r = scim_json(status, doc);
    if let Some(v) = tag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        r.headers_mut().insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Some(v) = loc.and_then(|l| HeaderValue::from_str(&l).ok())
    {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The resource, or 304 when `If-None-Match` names its version.
pub(super) fn not_modified_or(doc: Value, if_none_match: Option<String>) -> AppResult<Response> {
    let version = doc["meta"]["version"].as_str().unwrap_or_default().to_owned();
    if let Some(h) = if_none_match
        && !version.is_empty()
        && h.split(',').map(str::trim).any(|t| t == "*" || t == version)
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&version) {
            r.headers_mut().insert(header::ETAG, v);
        }
        return Ok(r);
    }
    Ok(resource(StatusCode::OK, doc))
}

/// An error with a `detail` beside its code's message.
pub(super) fn scim_error_status(code: ErrorCode, detail: &str) -> AppError {
    AppError::new(code).with_details(json!({"detail": detail}))
}

/// An error as a SCIM `Error` (RFC 7644 §3.12): the status, `scimType` when there is one, and
/// a `detail` in the caller's language (followed by the precise reason, when there is one).
pub(super) fn error(rc: &RequestContext, e: &AppError) -> Response {
    let details = e.details_json(rc.locale).unwrap_or(Value::Null);
    let status = details["status"].as_u64().map(|s| s as u16).unwrap_or(match e.code {
        // SCIM has no 422: a value that is refused is a 400 invalidValue.
        ErrorCode::ValidationError => 400,
        c => c.http_status(),
    });
    let mut detail = e.message(rc.locale);
    if let Some(d) = details["detail"].as_str() {
        detail = format!("{detail} ({d})");
    } else if let Some(fields) = details["fields"].as_object() {
        let list: Vec<String> =
            fields.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default())).collect();
        detail = format!("{detail} ({})", list.join("; "));
    }
    let mut body = json!({"schemas": [ERROR_URN], "status": status.to_string(), "detail": detail});
    let scim_type = details["scimType"].as_str().map(str::to_owned).or_else(|| match e.code {
        ErrorCode::ValidationError => Some(ScimType::InvalidValue.as_str().to_owned()),
        // A unique index refused a racing duplicate (the checks before it saw none yet); a
        // conflict with a `reason` (the last owner) is not about uniqueness.
        ErrorCode::Conflict if details["reason"].is_null() => Some(ScimType::Uniqueness.as_str().to_owned()),
        _ => None,
    });
    if let Some(t) = scim_type {
        body["scimType"] = t.into();
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = scim_json(status, body);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"Janua SCIM\""));
    }
    r
}
