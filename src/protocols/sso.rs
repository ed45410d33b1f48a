//! The browser side of SSO, outside the REST table because it is not JSON: the SP metadata XML,
//! the IdP's form POST to the ACS and the OIDC redirect back (both answered with a 303 to the
//! provider's return URL carrying a one-time code, or with that code as JSON when the provider
//! has no return URL).

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::context::RequestContext;
use crate::domain::parse_id;
use crate::error::{AppError, AppResult, FieldIssue};
use crate::http::HttpState;
use crate::rest::envelope;
use crate::services::sso::flow::{self, Caller, Completed};
use crate::services::sso::providers;

/// The largest form an IdP may post (a signed Response with certificates is a few KiB).
const MAX_FORM_BYTES: usize = 512 * 1024;

fn context_of(req: &Request) -> RequestContext {
    req.extensions().get::<RequestContext>().cloned().unwrap_or_default()
}

/// Whether a request to the ACS is the IdP's HTML form POST (a browser), not JSON.
pub fn is_form_post(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// `GET /api/v1/sso/saml/metadata/{provider_id}`: this SP's metadata for one provider.
pub async fn metadata(State(svc): State<HttpState>, Path(id): Path<String>, req: Request) -> Response {
    let rc = context_of(&req);
    let result = async {
        let id =
            parse_id("provider_id", &id).map_err(|_| AppError::new(crate::error::ErrorCode::NotFound))?;
        providers::sp_metadata(&svc.state, id).await
    };
    match result.await {
        Ok(xml) => ([(header::CONTENT_TYPE, "application/samlmetadata+xml")], xml).into_response(),
        Err(e) => envelope::error_for(&rc, &e),
    }
}

fn answer(rc: &RequestContext, c: AppResult<Completed>) -> Response {
    match c {
        Ok(Completed::Code { redirect: Some(url), .. }) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Ok(Completed::Code { code, redirect: None }) => {
            let data = json!({"code": code, "expires_in": flow::CODE_TTL.as_secs()});
            envelope::success(rc, StatusCode::OK, data, None)
        }
        Ok(Completed::SignedIn(_)) => {
            envelope::error_for(rc, &AppError::internal("a browser sign-in ended in tokens"))
        }
        Err(e) => envelope::error_for(rc, &e),
    }
}

#[derive(Deserialize)]
struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// The IdP's HTTP-POST binding at the ACS (`SAMLResponse`, `RelayState`).
pub async fn acs_form(svc: HttpState, req: Request) -> Response {
    let rc = context_of(&req);
    let body = match crate::rest::body::read(req.into_body(), MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(e) => return envelope::error_for(&rc, &e),
    };
    let form: AcsForm = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => {
            return envelope::error_for(&rc, &AppError::field("SAMLResponse", FieldIssue::InvalidFormat));
        }
    };
    let Some(response) = form.saml_response else {
        return envelope::error_for(&rc, &AppError::field("SAMLResponse", FieldIssue::Required));
    };
    let done =
        flow::complete_saml(&svc.state, &rc, &response, form.relay_state.as_deref(), Caller::Browser).await;
    answer(&rc, done)
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /api/v1/sso/oidc/callback?code&state`: the IdP sends the browser back here.
pub async fn oidc_callback(
    State(svc): State<HttpState>,
    Query(q): Query<Callback>,
    req: Request,
) -> Response {
    let rc = context_of(&req);
    if let Some(error) = q.error {
        tracing::info!(error = %error.chars().take(100).collect::<String>(), "the IdP refused an OIDC sign-in");
        return envelope::error_for(&rc, &crate::domain::sso::SsoReason::IdpError.into());
    }
    let done = flow::complete_oidc(
        &svc.state,
        &rc,
        q.code.as_deref().unwrap_or_default(),
        q.state.as_deref().unwrap_or_default(),
        Caller::Browser,
    )
    .await;
    answer(&rc, done)
}
