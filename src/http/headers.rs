//! Security headers on every response, the Content-Security-Policy of the HTML pages, and CORS.
//!
//! - Every response: `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//!   strict-origin-when-cross-origin` (unless the page chose its own, as the mailed links' pages
//!   choose `no-referrer`), and `Strict-Transport-Security` when `JANUA_PUBLIC_URL` (or the
//!   issuer) is `https://` — a plain-HTTP deployment must not pin browsers to HTTPS.
//! - Every HTML page ([`html`]): a CSP computed from the page itself — scripts and styles only
//!   from this origin (the vendored assets), plus the SHA-256 of each inline `<script>` and
//!   `<style>` the page holds; no `eval`, no plugins, no framing, no `<base>`. GraphiQL and the
//!   API docs allow inline styles (their libraries insert `<style>` elements and style
//!   attributes at run time); their scripts are held to the same rule as every page's.
//! - CORS ([`cors`]): only for the origins of `JANUA_CORS_ORIGINS`; none by default, and then no
//!   CORS header is sent at all (a browser on another origin cannot read an answer). Bearer tokens
//!   and API keys are headers, not cookies, so credentials are not allowed.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;
use crate::http::HttpState;

/// The `Strict-Transport-Security` value sent on an https deployment (two years).
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

/// `'sha256-…'` of `text`.
fn hash(text: &str) -> String {
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes())))
}

/// The contents of each inline `<tag>…</tag>` of `html` that a browser runs or applies: for
/// `script`, those without `src` whose `type` (if any) is JavaScript.
pub fn inline_blocks<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end_attrs) = after.find('>') else { break };
        let attrs = after[..end_attrs].to_ascii_lowercase();
        let body_start = &after[end_attrs + 1..];
        let Some(end) = body_start.find(&close) else { break };
        let runs = tag != "script"
            || (!attrs.contains("src=")
                && attrs.split_once("type=").is_none_or(|(_, t)| {
                    t.trim_start_matches(['"', '\'']).starts_with("text/javascript")
                        || t.trim_start_matches(['"', '\'']).starts_with("module")
                }));
        if runs {
            out.push(&body_start[..end]);
        }
        rest = &body_start[end + close.len()..];
    }
    out
}

/// The Content-Security-Policy of `html`: its inline scripts (and, unless `inline_styles`, its
/// inline styles) allowed by hash, everything else from this origin only.
pub fn csp_for(html: &str, inline_styles: bool) -> String {
    let scripts: Vec<String> = inline_blocks(html, "script").into_iter().map(hash).collect();
    let styles = if inline_styles {
        "'unsafe-inline'".to_owned()
    } else {
        inline_blocks(html, "style").into_iter().map(hash).collect::<Vec<_>>().join(" ")
    };
    format!(
        "default-src 'self'; script-src 'self' {}; style-src 'self' {styles}; img-src 'self' data:; \
         font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
        scripts.join(" ")
    )
}

/// An HTML page with its Content-Security-Policy ([`csp_for`]).
pub fn html(page: String, inline_styles: bool) -> Response {
    let csp = csp_for(&page, inline_styles);
    let mut resp = Html(page).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// Whether the deployment is served over https (then HSTS is sent).
pub fn is_https(config: &Config) -> bool {
    config.public_base().get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// Adds the headers every response carries.
pub async fn security_headers(State(svc): State<HttpState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !h.contains_key(header::REFERRER_POLICY) {
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
    }
    if is_https(&svc.state.config) {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    resp
}

/// The CORS layer for `JANUA_CORS_ORIGINS`, or none when it names no origin.
pub fn cors(config: &Config) -> anyhow::Result<Option<CorsLayer>> {
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| !o.is_empty())
        .map(|o| {
            let ok = (o.starts_with("https://") || o.starts_with("http://"))
                && o.split_once("://").is_some_and(|(_, host)| !host.is_empty() && !host.contains('/'));
            anyhow::ensure!(ok, "JANUA_CORS_ORIGINS: `{o}` is not an origin like https://app.example.com");
            Ok(HeaderValue::from_str(o)?)
        })
        .collect::<anyhow::Result<_>>()?;
    if origins.is_empty() {
        return Ok(None);
    }
    let names = |l: &[&'static str]| l.iter().map(|n| HeaderName::from_static(n)).collect::<Vec<_>>();
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers(names(&[
                "authorization",
                "content-type",
                "accept",
                "accept-language",
                "x-api-key",
                "x-request-id",
                "if-match",
                "if-none-match",
            ]))
            .expose_headers(names(&[
                "x-request-id",
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
                "retry-after",
                "content-language",
                "etag",
            ]))
            .max_age(Duration::from_secs(600)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_and_styles_are_hashed_and_others_are_not() {
        let page = "<style>a{}</style><script src=\"/x.js\"></script><script type=\"text/plain\">#</script>\
                    <script>go()</script>";
        assert_eq!(inline_blocks(page, "script"), ["go()"]);
        let csp = csp_for(page, false);
        assert!(csp.contains(&hash("go()")) && csp.contains(&hash("a{}")), "{csp}");
        assert!(!csp.contains(&hash("#")) && !csp.contains("unsafe"), "{csp}");
        assert!(csp_for(page, true).contains("style-src 'self' 'unsafe-inline'"));
    }
}
