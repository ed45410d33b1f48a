//! The SAML service provider's verdict on Responses signed by a real IdP ([`TestSamlIdp`]):
//! genuine ones are accepted, and every forged, replayed or misdirected one is refused with its
//! reason. Calls `verify_response` directly (no server: storage and routes are tested elsewhere).

use std::sync::OnceLock;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use janua::domain::sso::SsoReason;
use janua::services::sso::saml::{
    Assertion, IdpSettings, MAX_RESPONSE_BYTES, SpSettings, certificate_fingerprint, parse_idp_metadata,
    verify_response,
};
use openssl::hash::MessageDigest;
use openssl::x509::X509;

use crate::saml_idp::{FORGED_NAME_ID, ResponseBuilder, Signing, TestSamlIdp, Wrap, decode, encode};

const SP_ENTITY_ID: &str = "https://janua.test/api/v1/sso/saml/metadata/7f0c";
const ACS_URL: &str = "https://janua.test/api/v1/sso/saml";
const REQUEST_ID: &str = "_0123456789abcdef0123456789abcdef";
const SKEW: StdDuration = StdDuration::from_secs(60);

/// One IdP for the whole binary (RSA key generation is the slow part), and a second key.
fn idp() -> &'static TestSamlIdp {
    static IDP: OnceLock<TestSamlIdp> = OnceLock::new();
    IDP.get_or_init(|| TestSamlIdp::new("https://idp.test/metadata"))
}

fn other_key() -> &'static TestSamlIdp {
    static OTHER: OnceLock<TestSamlIdp> = OnceLock::new();
    OTHER.get_or_init(|| idp().with_new_key())
}

fn sp() -> SpSettings {
    SpSettings { entity_id: SP_ENTITY_ID.to_owned(), acs_url: ACS_URL.to_owned() }
}

/// A Response answering [`REQUEST_ID`], the Assertion signed.
fn response() -> ResponseBuilder<'static> {
    idp().response(SP_ENTITY_ID, ACS_URL).in_response_to(REQUEST_ID)
}

fn verify_with(settings: &IdpSettings, saml_response: &str) -> Result<Assertion, SsoReason> {
    verify_response(saml_response, settings, &sp(), Utc::now(), SKEW)
}

fn verify(saml_response: &str) -> Result<Assertion, SsoReason> {
    verify_with(&idp().settings(), saml_response)
}

fn lax() -> IdpSettings {
    IdpSettings { want_assertions_signed: false, ..idp().settings() }
}

#[test]
fn saml_accepts_a_signed_assertion_and_reads_it() {
    let xml = response()
        .attribute("email", &["user@example.com"])
        .attribute("groups", &["R&D <lab>", "staff"])
        .xml();
    let a = verify(&encode(&xml)).expect("a genuine response");
    let assertion_id = xml.split("<saml:Assertion").nth(1).unwrap().split(" ID=\"").nth(1).unwrap();
    assert_eq!(a.assertion_id, assertion_id[..assertion_id.find('"').unwrap()]);
    assert_eq!(a.in_response_to.as_deref(), Some(REQUEST_ID));
    assert_eq!(a.name_id, "user@example.com");
    assert_eq!(a.name_id_format.as_deref(), Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"));
    assert_eq!(a.attributes["email"], ["user@example.com"]);
    assert_eq!(a.attributes["groups"], ["R&D <lab>", "staff"]);
    // Replay entries must outlive the last instant the assertion is accepted: its end plus skew.
    let until = a.not_on_or_after.expect("a deadline");
    let expected = Utc::now() + Duration::minutes(5) + Duration::seconds(60);
    assert!((until - expected).num_seconds().abs() <= 5, "{until} vs {expected}");
}

#[test]
fn saml_accepts_a_signed_response_with_a_signed_assertion() {
    let persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
    let r = response().sign(Signing::Both).name_id("  00u1a2b3c4  ").name_id_format(persistent);
    let a = verify(&r.build()).expect("both signed");
    assert_eq!((a.name_id.as_str(), a.name_id_format.as_deref()), ("00u1a2b3c4", Some(persistent)));
    assert_eq!(a.in_response_to.as_deref(), Some(REQUEST_ID));
}

#[test]
fn saml_a_signed_response_alone_is_enough_only_when_the_provider_says_so() {
    let signed_response = response().sign(Signing::Response).build();
    assert_eq!(verify(&signed_response), Err(SsoReason::Unsigned));
    let a = verify_with(&lax(), &signed_response).expect("a signed Response over the assertion");
    assert_eq!(a.in_response_to.as_deref(), Some(REQUEST_ID));
}

#[test]
fn saml_refuses_an_unsigned_response() {
    let unsigned = response().sign(Signing::None).build();
    assert_eq!(verify(&unsigned), Err(SsoReason::Unsigned));
    assert_eq!(verify_with(&lax(), &unsigned), Err(SsoReason::Unsigned));
}

#[test]
fn saml_refuses_a_signature_by_another_key() {
    let forged = response().signed_by(other_key()).build();
    assert_eq!(verify(&forged), Err(SsoReason::SignatureInvalid));
    let forged = response().sign(Signing::Both).signed_by(other_key()).build();
    assert_eq!(verify(&forged), Err(SsoReason::SignatureInvalid));
}

#[test]
fn saml_refuses_content_changed_after_signing() {
    assert_eq!(verify(&response().tamper().build()), Err(SsoReason::SignatureInvalid));
    assert_eq!(verify(&response().sign(Signing::Both).tamper().build()), Err(SsoReason::SignatureInvalid));
    let tampered = response().sign(Signing::Response).tamper().build();
    assert_eq!(verify_with(&lax(), &tampered), Err(SsoReason::SignatureInvalid));
}

#[test]
fn saml_refuses_sha1_signatures() {
    assert_eq!(verify(&response().sha1().build()), Err(SsoReason::SignatureInvalid));
}

#[test]
fn saml_refuses_an_unsigned_assertion_beside_the_signed_one() {
    let xml = response().wrap(Wrap::Beside).xml();
    assert_eq!(xml.matches(FORGED_NAME_ID).count(), 1);
    assert_eq!(verify(&encode(&xml)), Err(SsoReason::MalformedResponse));
    let wrapped = response().sign(Signing::Both).wrap(Wrap::Beside).build();
    assert_eq!(verify(&wrapped), Err(SsoReason::MalformedResponse));
}

#[test]
fn saml_refuses_an_unsigned_assertion_around_the_signed_one() {
    let xml = response().wrap(Wrap::Around).xml();
    assert!(xml.contains("<saml:Advice><saml:Assertion"));
    assert_eq!(verify(&encode(&xml)), Err(SsoReason::MalformedResponse));
}

#[test]
fn saml_refuses_a_signed_assertion_moved_out_of_place() {
    // The signed assertion inside the Response's Extensions, a forged one where it belongs.
    let xml = response().xml();
    let start = xml.find("<saml:Assertion").unwrap();
    let signed = &xml[start..xml.find("</samlp:Response>").unwrap()];
    let forged = idp()
        .response(SP_ENTITY_ID, ACS_URL)
        .in_response_to(REQUEST_ID)
        .name_id(FORGED_NAME_ID)
        .sign(Signing::None)
        .xml();
    let forged = &forged[forged.find("<saml:Assertion").unwrap()..forged.find("</samlp:Response>").unwrap()];
    let moved = xml.replacen(signed, forged, 1).replacen(
        "<samlp:Status>",
        &format!("<samlp:Extensions>{signed}</samlp:Extensions><samlp:Status>"),
        1,
    );
    assert_eq!(verify(&encode(&moved)), Err(SsoReason::MalformedResponse));
}

#[test]
fn saml_refuses_another_audience() {
    let r = response().audience("https://other-sp.test/metadata").build();
    assert_eq!(verify(&r), Err(SsoReason::AudienceMismatch));
}

#[test]
fn saml_refuses_another_recipient() {
    let r = response().recipient("https://other-sp.test/acs").build();
    assert_eq!(verify(&r), Err(SsoReason::RecipientMismatch));
}

#[test]
fn saml_refuses_another_destination() {
    let r = response().destination(Some("https://other-sp.test/acs")).build();
    assert_eq!(verify(&r), Err(SsoReason::DestinationMismatch));
    // A signed Response must say where it goes; an unsigned envelope may leave it out.
    let r = response().sign(Signing::Both).destination(None).build();
    assert_eq!(verify(&r), Err(SsoReason::DestinationMismatch));
    assert!(verify(&response().destination(None).build()).is_ok());
}

#[test]
fn saml_refuses_an_expired_assertion() {
    let now = Utc::now();
    let r = response()
        .validity(now - Duration::minutes(10), now - Duration::minutes(10), now - Duration::minutes(5))
        .build();
    assert_eq!(verify(&r), Err(SsoReason::Expired));
}

#[test]
fn saml_refuses_an_assertion_not_yet_valid() {
    let now = Utc::now();
    let r = response()
        .validity(now + Duration::minutes(5), now + Duration::minutes(5), now + Duration::minutes(10))
        .build();
    assert_eq!(verify(&r), Err(SsoReason::NotYetValid));
}

#[test]
fn saml_honours_the_clock_skew_and_no_more() {
    let now = Utc::now();
    let settings = idp().settings();
    let late = response().validity(
        now - Duration::minutes(5),
        now - Duration::minutes(5),
        now - Duration::seconds(30),
    );
    let late = late.build();
    let a = verify_response(&late, &settings, &sp(), now, SKEW).expect("30 s late, 60 s skew");
    assert!(a.not_on_or_after.unwrap() > now, "a replay entry outlives acceptance");
    let strict = verify_response(&late, &settings, &sp(), now, StdDuration::ZERO);
    assert_eq!(strict, Err(SsoReason::Expired));

    let early = response().validity(
        now + Duration::seconds(30),
        now + Duration::seconds(30),
        now + Duration::minutes(5),
    );
    let early = early.build();
    assert!(verify_response(&early, &settings, &sp(), now, SKEW).is_ok(), "30 s early, 60 s skew");
    let strict = verify_response(&early, &settings, &sp(), now, StdDuration::ZERO);
    assert_eq!(strict, Err(SsoReason::NotYetValid));
}

#[test]
fn saml_idp_initiated_sign_in_only_when_allowed() {
    let unsolicited = idp().response(SP_ENTITY_ID, ACS_URL).build();
    assert_eq!(verify(&unsolicited), Err(SsoReason::IdpInitiatedDisabled));
    let allowing = IdpSettings { allow_idp_initiated: true, ..idp().settings() };
    let a = verify_with(&allowing, &unsolicited).expect("allowed");
    assert_eq!(a.in_response_to, None);
}

#[test]
fn saml_an_unsigned_in_response_to_counts_for_nothing() {
    // Only the Assertion is signed: the Response's InResponseTo is the attacker's to write.
    let xml = response().xml();
    let rewritten = xml.replacen(&format!(r#"InResponseTo="{REQUEST_ID}""#), r#"InResponseTo="_another""#, 1);
    assert_ne!(xml, rewritten);
    assert_eq!(verify(&encode(&rewritten)), Err(SsoReason::UnknownRequest));

    // An unsolicited assertion dressed as an answer, for a provider that allows unsolicited ones.
    let allowing = IdpSettings { allow_idp_initiated: true, ..idp().settings() };
    let xml = idp().response(SP_ENTITY_ID, ACS_URL).xml();
    let dressed =
        xml.replacen(r#" Version="2.0""#, &format!(r#" InResponseTo="{REQUEST_ID}" Version="2.0""#), 1);
    assert_eq!(verify_with(&allowing, &encode(&dressed)), Err(SsoReason::UnknownRequest));
}

#[test]
fn saml_refuses_a_doctype_in_a_validly_signed_response() {
    for signing in [Signing::Assertion, Signing::Both] {
        let xml = response().sign(signing).xml();
        assert!(verify(&encode(&xml)).is_ok());
        let with_dtd = xml.replacen("?>", "?>\n<!DOCTYPE samlp:Response [<!ENTITY e \"x\">]>", 1);
        assert_eq!(verify(&encode(&with_dtd)), Err(SsoReason::DoctypeForbidden));
        let bare = xml.replacen("?>", "?>\n<!DOCTYPE samlp:Response>", 1);
        assert_eq!(verify(&encode(&bare)), Err(SsoReason::DoctypeForbidden));
    }
}

#[test]
fn saml_refuses_a_comment_in_the_name_id() {
    // The attacker owns `user@evil.com.example.com` at the IdP; a comment (outside the signed
    // canonical form) would make a careless reader see `user@evil.com`.
    let xml = response().name_id("user@evil.com.example.com").xml();
    assert_eq!(verify(&encode(&xml)).unwrap().name_id, "user@evil.com.example.com");
    let tricked = xml.replacen("user@evil.com.example.com", "user@evil.com<!---->.example.com", 1);
    assert_eq!(verify(&encode(&tricked)), Err(SsoReason::MalformedResponse));
}

#[test]
fn saml_refuses_another_issuer() {
    assert_eq!(
        verify(&response().issuer("https://evil.test/metadata").build()),
        Err(SsoReason::IssuerMismatch)
    );
    // The Response's own Issuer (unsigned here) must not name someone else either.
    let xml = response().xml();
    let other = xml.replacen(
        &format!("<saml:Issuer>{}</saml:Issuer>", idp().entity_id),
        "<saml:Issuer>https://evil.test/metadata</saml:Issuer>",
        1,
    );
    assert_eq!(verify(&encode(&other)), Err(SsoReason::IssuerMismatch));
}

#[test]
fn saml_reports_an_idp_refusal() {
    let refused =
        response().sign(Signing::Response).status("urn:oasis:names:tc:SAML:2.0:status:Responder").build();
    assert_eq!(verify(&refused), Err(SsoReason::IdpError));
}

#[test]
fn saml_accepts_either_certificate_during_a_rotation() {
    let rotating = IdpSettings {
        certificates: vec![idp().certificate_pem.clone(), other_key().certificate_pem.clone()],
        ..idp().settings()
    };
    assert!(verify_with(&rotating, &response().signed_by(other_key()).build()).is_ok());
    assert!(verify_with(&rotating, &response().build()).is_ok());
    let stranger = TestSamlIdp::new("https://idp.test/metadata");
    assert_eq!(
        verify_with(&rotating, &response().signed_by(&stranger).build()),
        Err(SsoReason::SignatureInvalid)
    );
}

#[test]
fn saml_refuses_encrypted_assertions_and_odd_input() {
    let xml = response().xml();
    let encrypted = xml.replacen("<saml:Assertion", "<saml:EncryptedAssertion/><saml:Assertion", 1);
    assert_eq!(verify(&encode(&encrypted)), Err(SsoReason::MalformedResponse));
    assert_eq!(verify("not base64!"), Err(SsoReason::MalformedResponse));
    let pad = |n: usize| xml.replacen("<samlp:Status>", &format!("{}<samlp:Status>", " ".repeat(n)), 1);
    assert!(verify(&encode(&pad(MAX_RESPONSE_BYTES - xml.len()))).is_ok(), "at the size cap");
    assert_eq!(verify(&encode(&pad(MAX_RESPONSE_BYTES - xml.len() + 1))), Err(SsoReason::MalformedResponse));
    let utf16: Vec<u8> = xml.encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert_eq!(verify(&base64_of(&utf16)), Err(SsoReason::MalformedResponse));
    let declared = xml.replacen("encoding=\"UTF-8\"", "encoding=\"UTF-7\"", 1);
    assert_eq!(verify(&encode(&declared)), Err(SsoReason::MalformedResponse));
    // A browser's wrapping (and a stray space) is not a change.
    assert!(verify(&format!(" {}\n", encode(&xml))).is_ok());
    assert_eq!(decode(&encode(&xml)), xml);
}

#[test]
fn saml_reads_the_test_idp_metadata() {
    let m = parse_idp_metadata(&idp().metadata_xml()).expect("metadata");
    assert_eq!(m.entity_id, idp().entity_id);
    assert_eq!(m.sso_url, idp().sso_url, "the redirect binding's location");
    assert_eq!(m.slo_url, Some(format!("{}/slo", idp().sso_url)));
    assert_eq!(m.certificates, [idp().certificate_pem.clone()]);
    let x509 = X509::from_pem(idp().certificate_pem.as_bytes()).unwrap();
    let digest = x509.digest(MessageDigest::sha256()).unwrap();
    let expected: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(certificate_fingerprint(&m.certificates[0]).unwrap(), expected.join(":"));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
