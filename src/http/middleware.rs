//! One middleware builds the [`RequestContext`] (request id, language, client IP, actor), counts
//! the request against the per-IP limit, and records metrics.

use std::net::IpAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::context::{Actor, RequestContext, new_request_id, sane_request_id};
use crate::error::{AppError, ErrorCode, Locale};
use crate::http::HttpState;
use crate::http::ws::socket::Peer;
use crate::rest::{body, envelope};
use crate::security::tokens;
use crate::services::{api_keys, auth};
use crate::storage::rate_limits::RateDecision;

/// The client's IP: the socket peer, or — only when the peer is a trusted proxy — the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()).unwrap_or_default();
    forwarded
        .split(',')
        .rev()
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .find(|ip| !trusted.contains(ip))
        .or(Some(peer))
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Paths outside the request limit: probes, and SCIM (limited by its own, in `protocols::scim`).
fn exempt_from_limit(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
        || path.starts_with("/api/v1/scim/") && !path.starts_with("/api/v1/scim/tokens")
}

pub(crate) fn rate_headers(h: &mut HeaderMap, d: &RateDecision) {
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(d.reset_secs));
}

/// The bytes of a request's line and headers, as sent.
fn head_size(req: &Request) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    line + req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>()
}

/// Whether a request announces a body (`Content-Length` above 0, or chunked).
fn may_have_body(h: &HeaderMap) -> bool {
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0")
}

/// 413 `PAYLOAD_TOO_LARGE` in the format of the route asked (GraphQL's, SCIM's, else the envelope).
fn too_large(svc: &HttpState, rc: &RequestContext, path: &str) -> Response {
    let e = AppError::new(ErrorCode::PayloadTooLarge);
    if path == "/graphql" {
        crate::http::graphql::request_error(rc, ErrorCode::PayloadTooLarge)
    } else {
        (svc.protocol_error)(path, rc, &e).unwrap_or_else(|| envelope::error_for(rc, &e))
    }
}

/// Builds the request context and applies the rate limit; refuses a body whose
/// `Content-Length` is over the limit at once, and gives every body its read deadline.
pub async fn request_context(State(svc): State<HttpState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let headers = req.headers();
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| sane_request_id(s))
        .map_or_else(new_request_id, str::to_owned);
    let locale = Locale::negotiate(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let peer = req.extensions().get::<ConnectInfo<Peer>>().map(|c| c.0.addr.ip());
    let ip = client_ip(peer, headers, &svc.state.config.trusted_proxies);
    let user_agent =
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect());
    let route = super::request_metrics::route(
        req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()),
    );
    let method = req.method().clone();

    // A SCIM token is the SCIM endpoints' own credential (`protocols::scim` checks it).
    let token = bearer(req.headers()).filter(|t| !t.starts_with("jscim_"));
    // With Redis, a bearer token's revocation check travels with the rate-limit unit (one
    // round trip); the token is verified after, and the check used only for its own claims.
    let look = svc.state.request_look.as_ref().and_then(|l| Some((l, tokens::unverified_ids(token?)?)));
    let (decision, pre) = match ip {
        Some(ip) if !exempt_from_limit(req.uri().path()) => match look {
            Some((look, (session_id, user_id))) => {
                let (d, check) = look.limit_and_check(ip, session_id, user_id).await;
                (Some(d), check.map(|check| auth::Prechecked { session_id, user_id, check }))
            }
            _ => (Some(svc.state.rate_limiter.check(ip).await), None),
        },
        _ => (None, None),
    };
    let mut rc = RequestContext {
        request_id: request_id.clone(),
        actor: Actor::Anonymous,
        auth_error: None,
        client_ip: ip,
        user_agent,
        locale,
    };
    let mut resp = if let Some(d) = decision.filter(|d| !d.allowed) {
        let e = AppError::new(ErrorCode::RateLimited).with_details(serde_json::json!({
            "limit": d.limit, "window_seconds": 60, "retry_after": d.retry_after_secs,
        }));
        let mut r = envelope::error(&request_id, locale, &e);
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_secs));
        r
    } else {
        if let Some(token) = token {
            match auth::authenticate_prechecked(&svc.state, token, pre).await {
                Ok(user) => rc.actor = Actor::User(user),
                Err(e) => rc.auth_error = Some(e.code),
            }
        } else if let Some(key) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
            match api_keys::authenticate_api_key(&svc.state, ip, key.trim()).await {
                Ok(k) => rc.actor = Actor::ApiKey(k),
                Err(e) => rc.auth_error = Some(e.code),
            }
        }
        let limit = svc.state.config.body_limit;
        if head_size(&req) > svc.state.config.header_limit {
            // hyper refuses a head that overflows its read buffer by itself (a 431 without a
            // body); one that arrived in fewer, larger reads is measured here.
            envelope::error_for(&rc, &AppError::new(ErrorCode::HeadersTooLarge))
        } else if body::declared_too_large(req.headers(), limit) {
            // Answered before a byte of the body is read (the connection then closes).
            too_large(&svc, &rc, req.uri().path())
        } else {
            if may_have_body(req.headers()) {
                let (parts, b) = req.into_parts();
                let b = Body::new(body::Deadline::new(b, svc.state.config.body_read_timeout));
                req = Request::from_parts(parts, b);
            }
            req.extensions_mut().insert(rc);
            next.run(req).await
        }
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-request-id", v);
    }
    if let Some(d) = &decision {
        rate_headers(h, d);
    }
    route.record(&method, resp.status().as_u16(), start.elapsed());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1, 10.0.0.9"));
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(client_ip(Some(peer), &h, &[]), Some(peer));
        assert_eq!(client_ip(Some(peer), &h, &[peer, proxy]), Some("1.1.1.1".parse().unwrap()));
    }
}
