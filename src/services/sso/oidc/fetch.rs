//! The HTTP side of the relying party: every request to an IdP goes through [`send`], which
//! reads at most [`MAX_BODY`] bytes and turns failures into [`FetchError`]s.

use std::future::Future;
use std::pin::Pin;

use openidconnect::url::Url;
use openidconnect::{AccessToken, AsyncHttpClient, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::refuse;
use crate::domain::sso::SsoReason;
use crate::error::{AppError, AppResult};
use crate::security::outbound::AddressNotAllowed;

/// The largest answer read from an IdP (discovery documents and JWKS are a few KiB).
const MAX_BODY: usize = 256 * 1024;

/// The userinfo claims for `token` (JSON; a signed userinfo answer is not supported).
pub(super) async fn userinfo(
    http: &reqwest::Client,
    url: &Url,
    token: &AccessToken,
) -> AppResult<Map<String, Value>> {
    let request = http
        .get(url.clone())
        .bearer_auth(token.secret())
        .header(reqwest::header::ACCEPT, "application/json")
        .build()
        .map_err(|e| fetch_failed(&FetchError::Unreachable(e.without_url().to_string())))?;
    let response = send(http, request).await.map_err(|e| fetch_failed(&e))?;
    if !response.status().is_success() {
        return Err(refuse(SsoReason::IdpError, &format!("userinfo answered HTTP {}", response.status())));
    }
    serde_json::from_slice(response.body())
        .map_err(|_| refuse(SsoReason::MalformedResponse, "userinfo is not a JSON object"))
}

/// GETs a JSON document; anything but a 2xx is an unreachable IdP.
pub(super) async fn get_json(http: &reqwest::Client, url: &Url) -> AppResult<Value> {
    let request = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .build()
        .map_err(|e| fetch_failed(&FetchError::Unreachable(e.without_url().to_string())))?;
    let response = send(http, request).await.map_err(|e| fetch_failed(&e))?;
    if !response.status().is_success() {
        return Err(fetch_failed(&FetchError::Status(response.status().as_u16())));
    }
    match serde_json::from_slice::<Value>(response.body()) {
        Ok(doc @ Value::Object(_)) => Ok(doc),
        _ => Err(refuse(SsoReason::MalformedResponse, &format!("{url} is not a JSON object"))),
    }
}

/// Why a request to the IdP got no usable answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    #[error("{0}")]
    Unreachable(String),
    #[error("the identity provider answered HTTP {0}")]
    Status(u16),
    #[error("the answer is larger than {MAX_BODY} bytes")]
    TooLarge,
}

/// The HTTP client openidconnect's token request runs on: [`send`], so the same limits apply.
/// (A struct, not a closure: a closure's future is not `Send` for every lifetime, which an
/// axum handler needs.)
pub(super) struct Sender<'a>(pub(super) &'a reqwest::Client);

impl<'c> AsyncHttpClient<'c> for Sender<'_> {
    type Error = FetchError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, FetchError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request =
                reqwest::Request::try_from(request).map_err(|e| FetchError::Unreachable(e.to_string()))?;
            send(self.0, request).await
        })
    }
}

/// Sends `request` and reads at most [`MAX_BODY`] bytes of the answer. A 5xx is an error (the
/// IdP is down, whatever its body says); other statuses are the caller's to judge.
async fn send(http: &reqwest::Client, request: reqwest::Request) -> Result<HttpResponse, FetchError> {
    let mut response = http.execute(request).await.map_err(|e| FetchError::Unreachable(describe(&e)))?;
    let status = response.status();
    if status.is_server_error() {
        return Err(FetchError::Status(status.as_u16()));
    }
    if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| FetchError::Unreachable(describe(&e)))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let mut out = HttpResponse::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = std::mem::take(response.headers_mut());
    Ok(out)
}

/// A reqwest error for the log: the innermost cause, without the URL.
fn describe(e: &reqwest::Error) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        if next.is::<AddressNotAllowed>() {
            return AddressNotAllowed.to_string();
        }
        cur = next;
    }
    if e.is_timeout() { "timed out".to_owned() } else { cur.to_string() }
}

/// The error an IdP request that got no usable answer becomes.
pub(super) fn fetch_failed(e: &FetchError) -> AppError {
    match e {
        FetchError::TooLarge => refuse(SsoReason::MalformedResponse, &e.to_string()),
        _ => refuse(SsoReason::IdpUnreachable, &e.to_string()),
    }
}
