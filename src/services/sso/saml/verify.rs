//! `verify_response`: the checks on a posted `SAMLResponse`, in the order a refusal is reported.
//!
//! 1. Input: base64 within the size cap, UTF-8, no DTD ([`super::input`]).
//! 2. Shape, before any signature ([`super::envelope`]): one Response, status Success (else
//!    `IdpError`), exactly one plain Assertion directly inside it, signatures only as children of
//!    those two naming their parent's `ID`, no comments.
//! 3. Signatures: xmlsec verifies every `ds:Signature` against the provider's certificates with
//!    SHA-2 RSA/ECDSA only, and samael reduces the document to what they cover. The assertion is
//!    read from that reduced XML only — an element beside or around the signed one cannot be.
//! 4. Content: issuer, destination, audience, validity window, bearer confirmation (recipient,
//!    `NotOnOrAfter`), `InResponseTo`, NameID.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use samael::crypto::{AllowedSignatureAlgorithm as Alg, Crypto, CryptoProvider, ReduceMode};
use samael::schema::{Assertion as SamlAssertion, Response as SamlResponse, SubjectConfirmationData};
use samael::signature::Signature;

use super::envelope::{Envelope, read_envelope};
use super::input::{decode_response, guard_xml, parse_strict};
use super::metadata::certificate_der;
use super::{Assertion, IdpSettings, NS_ASSERTION, NS_PROTOCOL, SpSettings};
use crate::domain::sso::SsoReason;

/// Signature algorithms accepted; their digests (SHA-256/384/512) are the only digests accepted.
/// SHA-1 is refused.
const ALLOWED: &[Alg] =
    &[Alg::RsaSha256, Alg::RsaSha384, Alg::RsaSha512, Alg::EcdsaSha256, Alg::EcdsaSha384, Alg::EcdsaSha512];

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// A skew larger than this is taken as this (a misconfiguration must not open the window wide).
const MAX_SKEW: TimeDelta = TimeDelta::hours(1);

/// See [`super::verify_response`].
pub fn verify_response(
    encoded: &str,
    idp: &IdpSettings,
    sp: &SpSettings,
    now: DateTime<Utc>,
    skew: Duration,
) -> Result<Assertion, SsoReason> {
    let xml = decode_response(encoded)?;
    let xml = guard_xml(&xml)?;
    let envelope = read_envelope(xml)?;
    if !envelope.assertion_signed && (idp.want_assertions_signed || !envelope.response_signed) {
        return Err(SsoReason::Unsigned);
    }
    let signed = verified(xml, &envelope, &idp.certificates)?;
    if idp.want_assertions_signed && !signed.assertion_signed {
        return Err(SsoReason::Unsigned);
    }
    let skew = TimeDelta::from_std(skew).unwrap_or(MAX_SKEW).min(MAX_SKEW);
    conclude(&envelope, &signed, idp, sp, now, skew)
}

/// The assertion as the verified signatures cover it.
struct Signed {
    /// The Response's signature verified (it then covers the assertion too).
    response_signed: bool,
    /// The Assertion's own signature verified.
    assertion_signed: bool,
    assertion: SamlAssertion,
}

/// Verifies every signature and reads the assertion from the XML they cover.
fn verified(xml: &str, envelope: &Envelope, certificates: &[String]) -> Result<Signed, SsoReason> {
    // Certificates were validated when the provider was saved; one that no longer parses counts
    // as absent (and none at all verifies nothing).
    let certs: Vec<_> = certificates.iter().filter_map(|pem| certificate_der(pem).ok()).collect();
    if certs.is_empty() {
        return Err(SsoReason::SignatureInvalid);
    }
    let reduced = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &certs,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(ALLOWED),
    )
    .map_err(|_| SsoReason::SignatureInvalid)?;

    // The reduced document's root is the element a verified reference covers whole.
    let doc = parse_strict(&reduced).ok_or(SsoReason::SignatureInvalid)?;
    let root = doc.get_root_element().ok_or(SsoReason::SignatureInvalid)?;
    let (name, ns) = (root.get_name(), root.get_namespace().map(|n| n.get_href()));
    let id = root.get_attribute("ID");
    match (name.as_str(), ns.as_deref()) {
        ("Response", Some(NS_PROTOCOL)) if envelope.response_signed && id.as_ref() == Some(&envelope.id) => {
            let response: SamlResponse = reduced.parse().map_err(|_| SsoReason::MalformedResponse)?;
            let assertion = response.assertion.ok_or(SsoReason::MalformedResponse)?;
            if assertion.id != envelope.assertion_id {
                return Err(SsoReason::MalformedResponse);
            }
            // Every signature in the document verified; this one also has to name its assertion.
            let assertion_signed = envelope.assertion_signed
                && assertion.signature.as_ref().is_some_and(|s| references(s, &assertion.id));
            Ok(Signed { response_signed: true, assertion_signed, assertion })
        }
        ("Assertion", Some(NS_ASSERTION))
            if envelope.assertion_signed
                && !envelope.response_signed
                && id.as_ref() == Some(&envelope.assertion_id) =>
        {
            let assertion: SamlAssertion = reduced.parse().map_err(|_| SsoReason::MalformedResponse)?;
            if assertion.id != envelope.assertion_id {
                return Err(SsoReason::MalformedResponse);
            }
            Ok(Signed { response_signed: false, assertion_signed: true, assertion })
        }
        _ => Err(SsoReason::SignatureInvalid),
    }
}

/// `signature` has exactly one Reference, naming `#id`.
fn references(signature: &Signature, id: &str) -> bool {
    match signature.signed_info.reference.as_slice() {
        [only] => only.uri.as_deref() == Some(format!("#{id}").as_str()),
        _ => false,
    }
}

/// The content checks, on the verified assertion (and on the Response's attributes, which are
/// trusted only when the Response is signed: unsigned, they can only cause a refusal).
fn conclude(
    envelope: &Envelope,
    signed: &Signed,
    idp: &IdpSettings,
    sp: &SpSettings,
    now: DateTime<Utc>,
    skew: TimeDelta,
) -> Result<Assertion, SsoReason> {
    let a = &signed.assertion;
    let (early, late) = (now - skew, now + skew);

    let assertion_issuer = a.issuer.value.as_deref().map(str::trim);
    if assertion_issuer != Some(idp.entity_id.as_str())
        || envelope.issuer.as_ref().is_some_and(|i| *i != idp.entity_id)
    {
        return Err(SsoReason::IssuerMismatch);
    }
    // SAML bindings §3.5.5.2: a signed Response names where it was sent.
    match &envelope.destination {
        Some(d) if *d != sp.acs_url => return Err(SsoReason::DestinationMismatch),
        None if signed.response_signed => return Err(SsoReason::DestinationMismatch),
        _ => {}
    }

    // Web SSO profile §4.1.4.2: an AudienceRestriction naming this SP; every one present must.
    let conditions = a.conditions.as_ref().ok_or(SsoReason::AudienceMismatch)?;
    let restrictions = conditions.audience_restrictions.as_deref().unwrap_or_default();
    if restrictions.is_empty()
        || !restrictions.iter().all(|r| r.audience.iter().any(|x| x.trim() == sp.entity_id))
    {
        return Err(SsoReason::AudienceMismatch);
    }

    if a.issue_instant > late || conditions.not_before.is_some_and(|t| t > late) {
        return Err(SsoReason::NotYetValid);
    }
    if conditions.not_on_or_after.is_some_and(|t| t <= early) {
        return Err(SsoReason::Expired);
    }
    let data = bearer_confirmation(a, &sp.acs_url, early, late)?;

    let in_response_to = in_response_to(envelope, signed, data)?;
    if in_response_to.is_none() && !idp.allow_idp_initiated {
        return Err(SsoReason::IdpInitiatedDisabled);
    }

    let name_id = a.subject.as_ref().and_then(|s| s.name_id.as_ref()).ok_or(SsoReason::MalformedResponse)?;
    let value = name_id.value.trim();
    if value.is_empty() {
        return Err(SsoReason::MalformedResponse);
    }

    let deadline = [conditions.not_on_or_after, data.not_on_or_after].into_iter().flatten().min();
    Ok(Assertion {
        assertion_id: a.id.clone(),
        in_response_to,
        name_id: value.to_owned(),
        name_id_format: name_id.format.clone(),
        not_on_or_after: deadline.map(|t| t.checked_add_signed(skew).unwrap_or(DateTime::<Utc>::MAX_UTC)),
        attributes: attributes(a),
    })
}

/// The first bearer `SubjectConfirmationData` sent to `acs_url` and valid now; else the reason
/// the first bearer confirmation fails (Web SSO profile §4.1.4.2).
fn bearer_confirmation<'a>(
    a: &'a SamlAssertion,
    acs_url: &str,
    early: DateTime<Utc>,
    late: DateTime<Utc>,
) -> Result<&'a SubjectConfirmationData, SsoReason> {
    let confirmations =
        a.subject.as_ref().and_then(|s| s.subject_confirmations.as_deref()).unwrap_or_default();
    let mut first_refusal = None;
    for confirmation in confirmations.iter().filter(|c| c.method.as_deref() == Some(BEARER)) {
        let checked =
            confirmation.subject_confirmation_data.as_ref().ok_or(SsoReason::MalformedResponse).and_then(
                |d| {
                    if d.recipient.as_deref() != Some(acs_url) {
                        Err(SsoReason::RecipientMismatch)
                    } else if d.not_on_or_after.ok_or(SsoReason::MalformedResponse)? <= early {
                        Err(SsoReason::Expired)
                    } else if d.not_before.is_some_and(|t| t > late) {
                        Err(SsoReason::NotYetValid)
                    } else {
                        Ok(d)
                    }
                },
            );
        match checked {
            Ok(d) => return Ok(d),
            Err(reason) => {
                first_refusal.get_or_insert(reason);
            }
        }
    }
    Err(first_refusal.unwrap_or(SsoReason::MalformedResponse))
}

/// The request this answers, from signed content only: the Response's `InResponseTo` when the
/// Response is signed, else the confirmation's. An unsigned Response `InResponseTo` that the
/// signed one does not back (different, or absent) is refused: it cannot be trusted, and a genuine
/// IdP never sends one.
fn in_response_to(
    envelope: &Envelope,
    signed: &Signed,
    data: &SubjectConfirmationData,
) -> Result<Option<String>, SsoReason> {
    match (envelope.in_response_to.as_deref(), data.in_response_to.as_deref()) {
        (Some(outer), Some(inner)) if outer != inner => Err(SsoReason::UnknownRequest),
        (Some(outer), _) if signed.response_signed => Ok(Some(outer.to_owned())),
        (Some(_), None) => Err(SsoReason::UnknownRequest),
        (_, inner) => Ok(inner.map(str::to_owned)),
    }
}

/// Attribute name → its values, over every AttributeStatement (values of a repeated name join).
fn attributes(a: &SamlAssertion) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for attribute in a.attribute_statements.iter().flatten().flat_map(|s| &s.attributes) {
        let Some(name) = attribute.name.as_ref() else { continue };
        let values = attribute.values.iter().filter_map(|v| v.value.as_ref()).map(|v| v.trim().to_owned());
        out.entry(name.clone()).or_default().extend(values);
    }
    out
}
