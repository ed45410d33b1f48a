//! The SAML 2.0 service provider, with samael. Pure functions: no storage, no clock of its own.
//! The caller checks `InResponseTo` against the requests it issued and the assertion id against
//! replay; everything about the XML itself is checked here.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::sso::SsoReason;
use crate::error::AppResult;

/// What Janua knows of an identity provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdpSettings {
    pub entity_id: String,
    /// The IdP's SSO endpoint (HTTP-Redirect binding).
    pub sso_url: String,
    pub slo_url: Option<String>,
    /// PEM certificates whose keys may sign (several during a rotation).
    pub certificates: Vec<String>,
    /// Require the Assertion itself to be signed (else a signed Response is enough).
    pub want_assertions_signed: bool,
    /// Accept Responses with no `InResponseTo` (IdP-initiated).
    pub allow_idp_initiated: bool,
}

/// This service provider as one provider's IdP sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpSettings {
    pub entity_id: String,
    /// The Assertion Consumer Service URL (`POST /api/v1/sso/saml`).
    pub acs_url: String,
}

/// The IdP fields read off its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    pub sso_url: String,
    pub slo_url: Option<String>,
    pub certificates: Vec<String>,
}

/// An AuthnRequest ready for the HTTP-Redirect binding.
#[derive(Clone, Debug)]
pub struct AuthnRequest {
    /// The request's `ID` (the Response's `InResponseTo`).
    pub id: String,
    /// The IdP's SSO URL with `SAMLRequest` and `RelayState`.
    pub redirect_url: String,
    /// The deflated, base64 `SAMLRequest`.
    pub saml_request: String,
}

/// What a verified Response asserts, read only from the signed element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assertion {
    pub assertion_id: String,
    /// The Response's `InResponseTo` (`None`: IdP-initiated).
    pub in_response_to: Option<String>,
    pub name_id: String,
    pub name_id_format: Option<String>,
    /// Until when the assertion may be used (its `NotOnOrAfter`): replay entries live this long.
    pub not_on_or_after: Option<DateTime<Utc>>,
    /// Attribute name → values.
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// Parses IdP metadata XML (an `EntityDescriptor` with an `IDPSSODescriptor`).
pub fn parse_idp_metadata(_xml: &str) -> AppResult<IdpMetadata> {
    unimplemented!("SAML: parse_idp_metadata")
}

/// The SHA-256 fingerprint (`AB:CD:…`) of a PEM certificate; a validation error on
/// `saml_certificate` when it is not one.
pub fn certificate_fingerprint(_pem: &str) -> AppResult<String> {
    unimplemented!("SAML: certificate_fingerprint")
}

/// The SP metadata XML (entity id, ACS URL with the HTTP-POST binding, NameID formats).
pub fn sp_metadata(_sp: &SpSettings) -> String {
    unimplemented!("SAML: sp_metadata")
}

/// A fresh AuthnRequest to `idp` with `relay_state`.
pub fn authn_request(_idp: &IdpSettings, _sp: &SpSettings, _relay_state: &str) -> AppResult<AuthnRequest> {
    unimplemented!("SAML: authn_request")
}

/// Verifies a base64 `SAMLResponse` and reads its assertion.
pub fn verify_response(
    _saml_response: &str,
    _idp: &IdpSettings,
    _sp: &SpSettings,
    _now: DateTime<Utc>,
    _skew: Duration,
) -> Result<Assertion, SsoReason> {
    unimplemented!("SAML: verify_response")
}
