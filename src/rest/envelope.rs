//! The REST envelope: `{success, data, message, timestamp, request_id}` and its error twin.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::context::RequestContext;
use crate::error::{AppError, Locale, success_message};

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn with_language(mut resp: Response, locale: Locale) -> Response {
    resp.headers_mut().insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(locale.tag()));
    resp
}

/// A success envelope; `pagination` is added beside `data` for lists.
pub fn success(rc: &RequestContext, status: StatusCode, data: Value, pagination: Option<Value>) -> Response {
    if status == StatusCode::NO_CONTENT {
        return with_language(status.into_response(), rc.locale);
    }
    let mut body = json!({
        "success": true,
        "data": data,
        "message": success_message(rc.locale),
        "timestamp": now(),
        "request_id": rc.request_id,
    });
    if let Some(p) = pagination {
        body["pagination"] = p;
    }
    with_language((status, axum::Json(body)).into_response(), rc.locale)
}

/// An error envelope with the status of its code; 5xx causes are logged, not shown.
pub fn error(request_id: &str, locale: Locale, e: &AppError) -> Response {
    e.log(request_id);
    let mut err = json!({"code": e.code.as_str(), "message": e.message(locale)});
    if let Some(d) = e.details_json(locale) {
        err["details"] = d;
    }
    let body = json!({
        "success": false,
        "error": err,
        "timestamp": now(),
        "request_id": request_id,
    });
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = with_language((status, axum::Json(body)).into_response(), locale);
    // Every 429 says when to come back (a service's limit as well as the request limit), and
    // so does a 503 of a database that is away (`details.retry_after`).
    if let Some(wait) = e.details.as_ref().and_then(|d| d["retry_after"].as_u64())
        && (status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE)
    {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    resp
}

/// [`error`] for a request context.
pub fn error_for(rc: &RequestContext, e: &AppError) -> Response {
    error(&rc.request_id, rc.locale, e)
}
