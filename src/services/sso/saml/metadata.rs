//! Metadata both ways — the IdP's read (samael's `EntityDescriptor`), this SP's written — and the
//! PEM certificates the IdP signs with.
//!
//! IdP metadata is taken as the administrator's statement of trust: a signature on it (Entra ID
//! signs its federation metadata) is not verified, its certificates are what Janua pins.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::x509::X509;
use samael::crypto::CertificateDer;
use samael::metadata::{
    EntityDescriptor, EntityDescriptorType, HTTP_POST_BINDING, HTTP_REDIRECT_BINDING, IdpSsoDescriptor,
    IndexedEndpoint, NameIdFormat, SpSsoDescriptor,
};
use samael::traits::ToXml;
use sha2::{Digest, Sha256};

use super::input::guard_xml;
use super::{IdpMetadata, NS_PROTOCOL, SpSettings};
use crate::error::{AppError, AppResult, FieldIssue};

/// The largest metadata document accepted (Entra's federation metadata is some 25 KiB).
const MAX_METADATA_BYTES: usize = 1024 * 1024;

fn invalid_metadata() -> AppError {
    AppError::field("saml_metadata_xml", FieldIssue::InvalidFormat)
}

fn invalid_certificate() -> AppError {
    AppError::field("saml_certificate", FieldIssue::InvalidFormat)
}

/// See [`super::parse_idp_metadata`].
pub fn parse_idp_metadata(xml: &str) -> AppResult<IdpMetadata> {
    if xml.len() > MAX_METADATA_BYTES {
        return Err(invalid_metadata());
    }
    let xml = guard_xml(xml).map_err(|_| invalid_metadata())?;
    let parsed: EntityDescriptorType = xml.parse().map_err(|_| invalid_metadata())?;
    // An aggregate (`EntitiesDescriptor`, as older Keycloak serves) must hold exactly one IdP.
    let mut idps = parsed.iter().filter_map(|entity| Some((entity, idp_descriptor(entity)?)));
    let (entity, descriptor) = idps.next().ok_or_else(invalid_metadata)?;
    if idps.next().is_some() {
        return Err(invalid_metadata());
    }

    let entity_id = entity.entity_id.as_deref().map(str::trim).filter(|e| !e.is_empty());
    let sso = &descriptor.single_sign_on_services;
    let sso_url = [HTTP_REDIRECT_BINDING, HTTP_POST_BINDING]
        .iter()
        .find_map(|binding| sso.iter().find(|e| e.binding == *binding))
        .map(|e| e.location.trim().to_owned());
    let slo = &descriptor.single_logout_services;
    let slo_url = [HTTP_REDIRECT_BINDING, HTTP_POST_BINDING]
        .iter()
        .find_map(|binding| slo.iter().find(|e| e.binding == *binding))
        .map(|e| e.location.trim().to_owned());

    let mut certificates = Vec::new();
    // `use` absent means both signing and encryption (metadata §2.4.1.1).
    for key in
        descriptor.key_descriptors.iter().filter(|k| k.key_use.as_deref().is_none_or(|u| u == "signing"))
    {
        for b64 in key.key_info.x509_data.iter().flat_map(|d| &d.certificates) {
            let pem = pem_of_base64(b64).ok_or_else(invalid_metadata)?;
            if !certificates.contains(&pem) {
                certificates.push(pem);
            }
        }
    }

    match (entity_id, sso_url) {
        (Some(entity_id), Some(sso_url)) if !sso_url.is_empty() && !certificates.is_empty() => {
            Ok(IdpMetadata { entity_id: entity_id.to_owned(), sso_url, slo_url, certificates })
        }
        _ => Err(invalid_metadata()),
    }
}

/// The entity's SAML 2.0 `IDPSSODescriptor`, if it has one.
fn idp_descriptor(entity: &EntityDescriptor) -> Option<&IdpSsoDescriptor> {
    entity.idp_sso_descriptors.iter().flatten().find(|d| {
        d.protocol_support_enumeration
            .as_deref()
            .is_some_and(|p| p.split_whitespace().any(|p| p == NS_PROTOCOL))
    })
}

/// A metadata `X509Certificate` (base64 DER, wrapped or not) as PEM, if it is a certificate.
fn pem_of_base64(b64: &str) -> Option<String> {
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(compact).ok()?;
    let pem = X509::from_der(&der).ok()?.to_pem().ok()?;
    String::from_utf8(pem).ok()
}

/// The DER of a PEM certificate (the first one if several are concatenated).
pub fn certificate_der(pem: &str) -> AppResult<CertificateDer> {
    let cert = X509::from_pem(pem.trim().as_bytes()).map_err(|_| invalid_certificate())?;
    cert.to_der().map(CertificateDer::from).map_err(|_| invalid_certificate())
}

/// See [`super::certificate_fingerprint`].
pub fn certificate_fingerprint(pem: &str) -> AppResult<String> {
    let der = certificate_der(pem)?;
    let digest = Sha256::digest(der.der_data());
    Ok(digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
}

/// See [`super::sp_metadata`].
pub fn sp_metadata(sp: &SpSettings) -> String {
    let descriptor = SpSsoDescriptor {
        protocol_support_enumeration: Some(NS_PROTOCOL.to_owned()),
        authn_requests_signed: Some(false),
        want_assertions_signed: Some(true),
        name_id_formats: Some(vec![
            NameIdFormat::EmailAddressNameIDFormat.value().to_owned(),
            NameIdFormat::PersistentNameIDFormat.value().to_owned(),
        ]),
        assertion_consumer_services: vec![IndexedEndpoint {
            binding: HTTP_POST_BINDING.to_owned(),
            location: sp.acs_url.clone(),
            index: 0,
            is_default: Some(true),
            ..IndexedEndpoint::default()
        }],
        ..SpSsoDescriptor::default()
    };
    let entity = EntityDescriptor {
        entity_id: Some(sp.entity_id.clone()),
        sp_sso_descriptors: Some(vec![descriptor]),
        ..EntityDescriptor::default()
    };
    // samael escapes attribute values (entity id, ACS URL); the NameIDFormat texts are constants.
    entity.to_string().expect("serialising metadata into memory cannot fail")
}
