//! The SAML 2.0 service provider, with samael. Pure functions: no storage, no clock of its own
//! (the AuthnRequest's `IssueInstant` aside). The caller checks `InResponseTo` against the
//! requests it issued and the assertion id against replay; everything about the XML itself is
//! checked here.
//!
//! - [`input`]: base64, size cap, and the refusal of any DTD before a parser sees the XML.
//! - [`envelope`]: the strict first read of a Response's shape (wrapping, comments).
//! - [`verify`]: signatures (xmlsec through samael), then the content checks.
//! - [`metadata`]: IdP metadata in, SP metadata out, certificates.
//! - [`request`]: AuthnRequests for the redirect binding.

mod envelope;
mod input;
mod metadata;
mod request;
mod verify;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::sso::SsoReason;
use crate::error::AppResult;

pub use input::MAX_RESPONSE_BYTES;

const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

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
    /// The last instant [`verify_response`] would still accept this assertion: the earliest of
    /// its `NotOnOrAfter`s (Conditions, bearer confirmation) plus the skew. Replay entries must
    /// live this long. Always set for an assertion that verified (the confirmation's is required).
    pub not_on_or_after: Option<DateTime<Utc>>,
    /// Attribute name → values.
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// Parses IdP metadata XML (an `EntityDescriptor` with an `IDPSSODescriptor`, or an
/// `EntitiesDescriptor` holding exactly one): entity id, SSO URL (HTTP-Redirect, else HTTP-POST),
/// SLO URL, and every signing certificate as PEM. Any failure — a DTD, no IdP, no SSO endpoint,
/// no certificate, a certificate that is not one — is a validation error on `saml_metadata_xml`.
pub fn parse_idp_metadata(xml: &str) -> AppResult<IdpMetadata> {
    metadata::parse_idp_metadata(xml)
}

/// The SHA-256 fingerprint (`AB:CD:…`) of a PEM certificate; a validation error on
/// `saml_certificate` when it is not one.
pub fn certificate_fingerprint(pem: &str) -> AppResult<String> {
    metadata::certificate_fingerprint(pem)
}

/// The SP metadata XML (entity id, ACS URL with the HTTP-POST binding, NameID formats
/// emailAddress and persistent, `WantAssertionsSigned="true"`, requests unsigned).
pub fn sp_metadata(sp: &SpSettings) -> String {
    metadata::sp_metadata(sp)
}

/// A fresh AuthnRequest to `idp` with `relay_state` (omitted when empty): a random `ID`
/// (`_` + 32 hex digits), `Destination` the SSO URL, the ACS URL and HTTP-POST binding for the
/// answer, `Issuer` the SP entity id; deflated and base64-encoded onto the SSO URL, whose own query
/// is kept. A validation error on `saml_sso_url` when that is not an http(s) URL.
pub fn authn_request(idp: &IdpSettings, sp: &SpSettings, relay_state: &str) -> AppResult<AuthnRequest> {
    request::authn_request(idp, sp, relay_state)
}

/// Verifies a base64 `SAMLResponse` and reads its assertion, or says why it is refused:
///
/// - not base64, over [`MAX_RESPONSE_BYTES`], not UTF-8 XML 1.0, not one Response with exactly
///   one plain Assertion directly inside it, a signature elsewhere or not naming its parent,
///   comments (the NameID comment trick), an `EncryptedAssertion` → `MalformedResponse`;
/// - any DOCTYPE or entity declaration → `DoctypeForbidden` (before a parser sees the XML);
/// - status other than Success → `IdpError`;
/// - no signature on the Assertion when `want_assertions_signed`, or none at all → `Unsigned`;
/// - a signature not by one of `certificates`, altered content, SHA-1 → `SignatureInvalid`;
/// - Response or Assertion issuer not `entity_id` → `IssuerMismatch`;
/// - Response `Destination` not the ACS URL (or absent on a signed Response) → `DestinationMismatch`;
/// - no AudienceRestriction, or one without the SP entity id → `AudienceMismatch`;
/// - outside `NotBefore`/`NotOnOrAfter` (Conditions, bearer confirmation; `IssueInstant` in the
///   future), each widened by `skew` (at most an hour) → `NotYetValid` / `Expired`;
/// - no bearer confirmation for the ACS URL → `RecipientMismatch`;
/// - an unsigned Response `InResponseTo` the signed content does not back → `UnknownRequest`;
/// - no `InResponseTo` while IdP-initiated sign-in is off → `IdpInitiatedDisabled`.
///
/// Everything returned is read from XML a verified signature covers. The caller still checks
/// `in_response_to` against its issued requests (also when IdP-initiated sign-in is allowed and
/// one is present) and `assertion_id` against replay until `not_on_or_after`.
pub fn verify_response(
    saml_response: &str,
    idp: &IdpSettings,
    sp: &SpSettings,
    now: DateTime<Utc>,
    skew: Duration,
) -> Result<Assertion, SsoReason> {
    verify::verify_response(saml_response, idp, sp, now, skew)
}

/// The issuer a Response names (the Response's, else its Assertion's), read before any
/// signature is checked, under the same guards and shape checks as [`verify_response`]: it
/// only says whose certificates to verify the Response with. Nothing else may trust it.
pub fn issuer_of(saml_response: &str) -> Result<String, SsoReason> {
    let xml = input::decode_response(saml_response)?;
    let xml = input::guard_xml(&xml).map_err(SsoReason::from)?;
    let envelope = envelope::read_envelope(xml)?;
    let issuer = match envelope.issuer {
        Some(i) => Some(i),
        None => xml.parse::<samael::schema::Response>().ok().and_then(|r| r.assertion?.issuer.value),
    };
    issuer.map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()).ok_or(SsoReason::MalformedResponse)
}

#[cfg(test)]
mod tests;
