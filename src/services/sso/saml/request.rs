//! `authn_request`: a fresh AuthnRequest for the HTTP-Redirect binding (SAML bindings §3.4).

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use flate2::Compression;
use flate2::write::DeflateEncoder;
use samael::metadata::HTTP_POST_BINDING;
use samael::schema::{AuthnRequest as SamlAuthnRequest, Issuer};
use samael::traits::ToXml;

use super::{AuthnRequest, IdpSettings, SpSettings};
use crate::error::{AppError, AppResult, FieldIssue};

/// See [`super::authn_request`].
pub fn authn_request(idp: &IdpSettings, sp: &SpSettings, relay_state: &str) -> AppResult<AuthnRequest> {
    let mut url = url::Url::parse(&idp.sso_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http"))
        .ok_or_else(|| AppError::field("saml_sso_url", FieldIssue::InvalidFormat))?;
    // 128 random bits; an xs:ID must not start with a digit.
    let id = format!("_{:032x}", rand::random::<u128>());
    let request = SamlAuthnRequest {
        id: id.clone(),
        version: "2.0".to_owned(),
        // The one clock read of this module: a request is made now, by definition.
        issue_instant: Utc::now(),
        destination: Some(idp.sso_url.clone()),
        assertion_consumer_service_url: Some(sp.acs_url.clone()),
        protocol_binding: Some(HTTP_POST_BINDING.to_owned()),
        issuer: Some(Issuer {
            // samael writes an Issuer's text as given: escape it here.
            value: Some(escape_text(&sp.entity_id)),
            ..Issuer::default()
        }),
        ..SamlAuthnRequest::default()
    };
    let xml = request.to_string().map_err(|e| AppError::internal(format!("AuthnRequest: {e}")))?;

    // The redirect binding carries raw DEFLATE (RFC 1951), then base64.
    let mut deflater = DeflateEncoder::new(Vec::new(), Compression::default());
    deflater.write_all(xml.as_bytes()).map_err(AppError::internal)?;
    let saml_request = STANDARD.encode(deflater.finish().map_err(AppError::internal)?);

    // The IdP's own query (e.g. Entra's `?whr=`) stays; ours is appended, form-encoded.
    url.query_pairs_mut().append_pair("SAMLRequest", &saml_request);
    if !relay_state.is_empty() {
        url.query_pairs_mut().append_pair("RelayState", relay_state);
    }
    Ok(AuthnRequest { id, redirect_url: url.into(), saml_request })
}

/// XML text escaping of `&`, `<`, `>` (and quotes, harmless in text).
fn escape_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
