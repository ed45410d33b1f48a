//! The live security dashboard at `/dashboard`: the page built from `dashboard/` (npm, esbuild,
//! uPlot) and checked in under `assets/dashboard/`, embedded in the binary. Its script and style
//! are served under their content hash with a year's immutable cache; the page itself is
//! `no-cache`; every answer carries a Content-Security-Policy without inline script or style.
//! The page speaks only the public GraphQL schema (`/graphql`, `/graphql/ws`).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The page's path.
pub const PATH: &str = "/dashboard";
/// Where its hashed assets are served (`/dashboard/assets/app.<hash>.js|css`).
pub const ASSETS: &str = "/dashboard/assets/{file}";

/// The built page, naming its assets by hash (written by `dashboard/build.mjs`).
pub const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
/// The bundled script.
pub const APP_JS: &[u8] = include_bytes!("../../assets/dashboard/app.js");
/// The bundled style sheet.
pub const APP_CSS: &[u8] = include_bytes!("../../assets/dashboard/app.css");

/// The `Cache-Control` of the hashed assets: their name changes with their content.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The first 16 hex digits of SHA-256, as `build.mjs` names the files.
pub fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The served names of the script and the style sheet (`app.<hash>.js`, `app.<hash>.css`).
pub fn asset_names() -> &'static (String, String) {
    static NAMES: OnceLock<(String, String)> = OnceLock::new();
    NAMES.get_or_init(|| {
        (format!("app.{}.js", content_hash(APP_JS)), format!("app.{}.css", content_hash(APP_CSS)))
    })
}

/// The Content-Security-Policy: scripts, styles and fetches from this origin only (plus its
/// WebSocket, named explicitly for browsers that do not count `ws:` as `'self'`), no frames,
/// no plugins, no inline code.
pub fn content_security_policy(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)));
    let sockets = host.map(|h| format!(" ws://{h} wss://{h}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{sockets}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

fn respond(headers: &HeaderMap, mime: &'static str, cache: &'static str, body: &'static [u8]) -> Response {
    let csp = HeaderValue::from_str(&content_security_policy(headers))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        body,
    )
        .into_response()
}

/// `GET /dashboard`: the page (always revalidated, so a new build is picked up at once).
pub async fn page(headers: HeaderMap) -> Response {
    respond(&headers, "text/html; charset=utf-8", "no-cache", INDEX_HTML.as_bytes())
}

/// `GET /dashboard/assets/{file}`: the script or style sheet under its current hash; any other
/// name (an older build's, say) is a 404.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let (js, css) = asset_names();
    if file == *js {
        respond(&headers, "text/javascript; charset=utf-8", IMMUTABLE, APP_JS)
    } else if file == *css {
        respond(&headers, "text/css; charset=utf-8", IMMUTABLE, APP_CSS)
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
