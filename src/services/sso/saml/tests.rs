//! Metadata of real IdP shapes (Okta, Entra ID, Keycloak), certificate fingerprints, SP metadata,
//! AuthnRequests and the input guards. Signed Responses are verified in `tests/api/saml.rs`
//! against the test IdP there (the suite's only SAML signer).

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::metadata::EntityDescriptor;
use samael::schema::AuthnRequest as SamlAuthnRequest;

use super::input::{XmlRefusal, decode_response, guard_xml};
use super::*;
use crate::error::{AppError, ErrorCode, FieldIssue};

const OKTA: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/saml/okta.xml"));
const ENTRA: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/saml/entra.xml"));
const KEYCLOAK: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/saml/keycloak.xml"));

// `openssl x509 -noout -fingerprint -sha256` of the fixtures' certificates.
const OKTA_FP: &str =
    "3C:56:A9:0D:8B:A7:02:36:A6:E5:F0:67:99:AB:4C:4E:4A:86:C2:C5:EA:56:03:01:97:64:BE:A7:A0:B4:02:3B";
const ENTRA_FP: [&str; 2] = [
    "3A:C5:0A:22:61:82:0B:10:39:F5:E5:BE:8C:E8:92:0E:CA:AD:B1:2F:68:FA:69:ED:18:A8:A3:24:85:91:81:38",
    "0F:C1:ED:88:2F:82:D8:F5:54:8B:9E:B8:E0:0D:1F:CA:89:25:6D:E7:73:72:6A:CB:74:25:FE:8F:E8:7D:18:54",
];
const KEYCLOAK_FP: &str =
    "1A:11:EA:93:78:70:20:B0:31:E4:8B:5D:34:4A:60:EF:47:40:89:0B:44:6C:20:FA:85:3B:DB:4E:0C:2D:42:54";

fn fingerprints(m: &IdpMetadata) -> Vec<String> {
    m.certificates.iter().map(|pem| certificate_fingerprint(pem).expect("a PEM certificate")).collect()
}

fn is_field_error(e: &AppError, field: &str) -> bool {
    e.code == ErrorCode::ValidationError && e.fields.get(field) == Some(&FieldIssue::InvalidFormat)
}

#[test]
fn okta_metadata_parses() {
    let m = parse_idp_metadata(OKTA).expect("Okta metadata");
    assert_eq!(m.entity_id, "http://www.okta.com/exk1fxp7f0ZhLXVzF0h8");
    // The redirect binding is preferred over POST, whatever the order in the document.
    assert_eq!(m.sso_url, "https://dev-123456.okta.com/app/dev-123456_janua_1/exk1fxp7f0ZhLXVzF0h8/sso/saml");
    assert_eq!(m.slo_url, None);
    assert_eq!(fingerprints(&m), [OKTA_FP]);
    assert!(m.certificates[0].starts_with("-----BEGIN CERTIFICATE-----\n"));
}

#[test]
fn entra_federation_metadata_parses_despite_its_role_descriptors_and_signature() {
    let m = parse_idp_metadata(ENTRA).expect("Entra ID federation metadata");
    let tenant = "https://login.microsoftonline.com/8f2c1a3e-5b7d-4e9f-a1c2-3d4e5f607182";
    assert_eq!(m.entity_id, "https://sts.windows.net/8f2c1a3e-5b7d-4e9f-a1c2-3d4e5f607182/");
    assert_eq!(m.sso_url, format!("{tenant}/saml2"));
    assert_eq!(m.slo_url, Some(format!("{tenant}/saml2")));
    // Both signing keys of a rollover; the WS-Federation RoleDescriptors' copies are not added.
    assert_eq!(fingerprints(&m), ENTRA_FP);
}

#[test]
fn keycloak_metadata_parses_without_its_encryption_key() {
    let realm = "https://keycloak.example.com/realms/janua";
    let m = parse_idp_metadata(KEYCLOAK).expect("Keycloak metadata");
    assert_eq!(m.entity_id, realm);
    assert_eq!(m.sso_url, format!("{realm}/protocol/saml"));
    assert_eq!(m.slo_url, Some(format!("{realm}/protocol/saml")));
    assert_eq!(fingerprints(&m), [KEYCLOAK_FP]);

    // Older Keycloak serves the same inside an EntitiesDescriptor.
    let wrapped = format!(
        r#"<EntitiesDescriptor Name="urn:keycloak" xmlns="urn:oasis:names:tc:SAML:2.0:metadata">{KEYCLOAK}</EntitiesDescriptor>"#
    );
    assert_eq!(parse_idp_metadata(&wrapped).expect("an aggregate of one"), m);
    let two = format!(
        r#"<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">{KEYCLOAK}{}</EntitiesDescriptor>"#,
        OKTA.trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
    );
    assert!(is_field_error(&parse_idp_metadata(&two).unwrap_err(), "saml_metadata_xml"), "which IdP?");
}

#[test]
fn metadata_without_what_sign_in_needs_is_refused() {
    let cases = [
        // a DTD, however harmless it looks
        OKTA.replacen("?>", "?><!DOCTYPE md:EntityDescriptor>", 1),
        // not metadata
        "<html><body>Sign in</body></html>".to_owned(),
        "not XML".to_owned(),
        // an SP's metadata
        sp_metadata(&SpSettings {
            entity_id: "https://sp.test".into(),
            acs_url: "https://sp.test/acs".into(),
        }),
        // no signing certificate
        KEYCLOAK.replacen(r#"use="signing""#, r#"use="encryption""#, 1),
        // a certificate that is not one
        OKTA.replacen("<ds:X509Certificate>MII", "<ds:X509Certificate>MIX", 1),
        // no SSO endpoint for a browser
        OKTA.replace("bindings:HTTP-POST", "bindings:SOAP")
            .replace("bindings:HTTP-Redirect", "bindings:SOAP"),
        // no entity id
        OKTA.replacen(r#"entityID="http://www.okta.com/exk1fxp7f0ZhLXVzF0h8""#, "", 1),
    ];
    for xml in cases {
        let e = parse_idp_metadata(&xml).expect_err(&xml[..xml.len().min(120)]);
        assert!(is_field_error(&e, "saml_metadata_xml"), "{e:?}");
    }
}

#[test]
fn certificate_fingerprints_are_sha256_of_the_der() {
    let m = parse_idp_metadata(OKTA).unwrap();
    assert_eq!(certificate_fingerprint(&m.certificates[0]).unwrap(), OKTA_FP);
    // CRLF line ends and surrounding blank lines, as pasted from a browser.
    let pasted = format!("\r\n{}\r\n", m.certificates[0].replace('\n', "\r\n"));
    assert_eq!(certificate_fingerprint(&pasted).unwrap(), OKTA_FP);
    let body: String = m.certificates[0].lines().filter(|l| !l.starts_with("-----")).collect();
    for not_pem in [String::new(), "hello".to_owned(), body, m.certificates[0].replacen("MII", "MIX", 1)] {
        let e = certificate_fingerprint(&not_pem).unwrap_err();
        assert!(is_field_error(&e, "saml_certificate"), "{not_pem:?}: {e:?}");
    }
}

fn sp() -> SpSettings {
    SpSettings {
        entity_id: "https://janua.test/api/v1/sso/saml/metadata/7f0c?tenant=a&b".into(),
        acs_url: "https://janua.test/api/v1/sso/saml".into(),
    }
}

#[test]
fn sp_metadata_names_the_acs_and_what_janua_wants() {
    let xml = sp_metadata(&sp());
    assert!(xml.contains(r#"WantAssertionsSigned="true""#), "{xml}");
    let parsed: EntityDescriptor = xml.parse().expect("metadata samael reads back");
    assert_eq!(parsed.entity_id.as_deref(), Some(sp().entity_id.as_str()), "escaped and read back");
    let descriptor = &parsed.sp_sso_descriptors.as_ref().expect("an SPSSODescriptor")[0];
    assert_eq!(descriptor.want_assertions_signed, Some(true));
    assert_eq!(
        descriptor.name_id_formats.as_deref().unwrap(),
        [
            "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
        ]
    );
    let acs = &descriptor.assertion_consumer_services;
    assert_eq!(acs.len(), 1);
    assert_eq!(acs[0].binding, "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST");
    assert_eq!(acs[0].location, sp().acs_url);
}

fn idp() -> IdpSettings {
    IdpSettings {
        entity_id: "https://idp.test".into(),
        sso_url: "https://login.idp.test/saml2?whr=janua.test".into(),
        ..IdpSettings::default()
    }
}

/// The request XML inside a redirect URL's `SAMLRequest`.
fn inflate(saml_request: &str) -> String {
    let deflated = STANDARD.decode(saml_request).expect("base64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice()).read_to_string(&mut xml).expect("raw DEFLATE");
    xml
}

#[test]
fn authn_requests_are_fresh_and_say_where_to_answer() {
    let before = Utc::now();
    let r = authn_request(&idp(), &sp(), "state 1/2&3=4").expect("a request");
    assert_eq!(r.id.len(), 33);
    assert!(r.id.starts_with('_') && r.id[1..].chars().all(|c| c.is_ascii_hexdigit()), "{}", r.id);
    assert_ne!(authn_request(&idp(), &sp(), "").unwrap().id, r.id);

    let xml = inflate(&r.saml_request);
    let request: SamlAuthnRequest = xml.parse().expect("an AuthnRequest");
    assert_eq!(request.id, r.id);
    assert_eq!(request.version, "2.0");
    assert!(
        request.issue_instant >= before - chrono::Duration::seconds(1) && request.issue_instant <= Utc::now()
    );
    assert_eq!(request.destination.as_deref(), Some(idp().sso_url.as_str()));
    assert_eq!(request.assertion_consumer_service_url.as_deref(), Some(sp().acs_url.as_str()));
    assert_eq!(request.protocol_binding.as_deref(), Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"));
    assert_eq!(request.issuer.and_then(|i| i.value).as_deref(), Some(sp().entity_id.as_str()));

    let url = url::Url::parse(&r.redirect_url).expect("a URL");
    assert_eq!(url.origin().ascii_serialization(), "https://login.idp.test");
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        query,
        [
            ("whr".to_owned(), "janua.test".to_owned()),
            ("SAMLRequest".to_owned(), r.saml_request.clone()),
            ("RelayState".to_owned(), "state 1/2&3=4".to_owned()),
        ]
    );
    let bare = authn_request(&idp(), &sp(), "").unwrap();
    assert!(!bare.redirect_url.contains("RelayState"));
}

#[test]
fn authn_requests_need_an_http_sso_url() {
    for sso_url in ["", "not a url", "javascript:alert(1)", "ftp://idp.test/sso"] {
        let idp = IdpSettings { sso_url: sso_url.into(), ..idp() };
        assert!(is_field_error(&authn_request(&idp, &sp(), "").unwrap_err(), "saml_sso_url"), "{sso_url}");
    }
}

#[test]
fn no_dtd_reaches_a_parser() {
    for xml in [
        "<!DOCTYPE r><r/>",
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>",
        "<r><!ENTITY x \"y\"></r>",
        "<!doctype r><r/>",
        "<!ELEMENT r ANY><r/>",
    ] {
        assert_eq!(guard_xml(xml), Err(XmlRefusal::Doctype), "{xml}");
    }
    for xml in [
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?><r/>",
        "<?xml version='1.0' encoding='ISO-8859-1'?><r/>",
        "<?xml version=\"1.1\"?><r/>",
        "<r>\u{0}</r>",
        "<r>\u{1b}</r>",
        "<r>\u{fffe}</r>",
    ] {
        assert_eq!(guard_xml(xml), Err(XmlRefusal::Malformed), "{xml:?}");
    }
    assert_eq!(
        guard_xml("\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><r><!-- c --><![CDATA[x]]></r>"),
        Ok("<?xml version=\"1.0\" encoding=\"utf-8\"?><r><!-- c --><![CDATA[x]]></r>")
    );
}

#[test]
fn posted_responses_are_base64_within_the_cap() {
    let xml = "<samlp:Response/>";
    let b64 = STANDARD.encode(xml);
    let wrapped = format!("{}\r\n{}\n", &b64[..8], &b64[8..]);
    assert_eq!(decode_response(&wrapped).as_deref(), Ok(xml));
    assert_eq!(decode_response(b64.trim_end_matches('=')).as_deref(), Ok(xml), "padding is optional");
    assert_eq!(decode_response("PHI+%3D"), Err(SsoReason::MalformedResponse));
    assert_eq!(decode_response(&STANDARD.encode([0xff, 0xfe, b'<'])), Err(SsoReason::MalformedResponse));
    let big = "x".repeat(MAX_RESPONSE_BYTES + 1);
    assert_eq!(decode_response(&STANDARD.encode(&big)), Err(SsoReason::MalformedResponse));
    assert_eq!(decode_response(&STANDARD.encode(&big[1..])).map(|s| s.len()), Ok(MAX_RESPONSE_BYTES));
}

/// A Response of the right shape whose assertion and response carry signature elements that
/// sign nothing (no key of the provider made them).
const UNSIGNED_RESPONSE: &str = r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" Destination="https://janua.test/acs" InResponseTo="_req"><saml:Issuer>http://www.okta.com/exk1fxp7f0ZhLXVzF0h8</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="_a1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>http://www.okta.com/exk1fxp7f0ZhLXVzF0h8</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#_a1"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature><saml:Subject><saml:NameID>admin@example.com</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="2099-01-01T00:00:00Z" Recipient="https://janua.test/acs" InResponseTo="_req"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="2000-01-01T00:00:00Z" NotOnOrAfter="2099-01-01T00:00:00Z"><saml:AudienceRestriction><saml:Audience>https://janua.test/sp</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="2026-01-01T00:00:00Z"/></saml:Assertion></samlp:Response>"##;

/// Fuzz: arbitrary form values, arbitrary XML-ish text, and mutations of a well-shaped Response
/// whose signatures sign nothing: `issuer_of` and `verify_response` never panic and never
/// accept (no key of the provider signed any of it).
#[test]
fn fuzz_saml_response_reader() {
    use proptest::prelude::*;
    let okta = parse_idp_metadata(OKTA).expect("Okta metadata");
    let idp = IdpSettings {
        entity_id: okta.entity_id,
        sso_url: okta.sso_url,
        slo_url: None,
        certificates: okta.certificates,
        want_assertions_signed: false,
        allow_idp_initiated: true,
    };
    let sp =
        SpSettings { entity_id: "https://janua.test/sp".into(), acs_url: "https://janua.test/acs".into() };
    let xmlish = prop::collection::vec(
        prop_oneof![
            Just("<samlp:Response ID=\"_r\">".to_owned()),
            Just("<saml:Assertion ID=\"_a\">".to_owned()),
            Just("</saml:Assertion>".to_owned()),
            Just("<!DOCTYPE x [<!ENTITY e \"&e;&e;\">]>".to_owned()),
            Just("<!-- c -->".to_owned()),
            Just("<?xml version=\"1.0\"?>".to_owned()),
            Just("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/>".to_owned()),
            Just("&amp;&#0;&#x10FFFF;".to_owned()),
            "\\PC{0,12}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat());
    let form_value = prop_oneof![
        2 => any::<String>(),
        1 => "[A-Za-z0-9+/=\r\n]{0,200}",
        3 => xmlish.prop_map(|x| STANDARD.encode(x)),
        6 => crate::fuzz::mutated(UNSIGNED_RESPONSE.to_owned()).prop_map(|x| STANDARD.encode(x)),
    ];
    let now = chrono::Utc::now();
    crate::fuzz::run("SAML Response (arbitrary, unsigned)", 1500, form_value, |posted| {
        let _ = issuer_of(&posted);
        let verdict = verify_response(&posted, &idp, &sp, now, std::time::Duration::from_secs(60));
        prop_assert!(verdict.is_err(), "accepted: {:?}", verdict);
        Ok(())
    });
}
