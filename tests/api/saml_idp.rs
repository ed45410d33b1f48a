//! A SAML identity provider for tests: a real RSA key and self-signed certificate, metadata, and
//! Responses signed with xmlsec (through samael) the way IdPs sign them — the Assertion, the
//! Response, both or neither — plus the forgeries a verifier must refuse (another key, content
//! altered after signing, signature wrapping). It is the only SAML signer of the test suite.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use janua::services::sso::saml::IdpSettings;
use openssl::x509::X509;
use samael::crypto::{Crypto, CryptoProvider};
use samael::idp::{CertificateParams, IdentityProvider, KeyType, Rsa};

/// An identity provider with its own signing key.
pub struct TestSamlIdp {
    pub entity_id: String,
    /// Where AuthnRequests go (never contacted).
    pub sso_url: String,
    /// The RSA private key, PKCS#1 DER (what xmlsec signs with).
    pub key_der: Vec<u8>,
    /// The self-signed certificate of that key, PEM.
    pub certificate_pem: String,
}

/// Which elements carry a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing {
    None,
    Assertion,
    Response,
    Both,
}

/// An XML signature wrapping attack on the signed Response: an assertion the IdP never signed,
/// naming `admin@example.com`, placed where a careless verifier reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrap {
    /// Before the signed assertion, as its sibling.
    Beside,
    /// In the signed assertion's place, holding the signed one (in its `Advice`).
    Around,
}

/// The NameID a forged assertion names.
pub const FORGED_NAME_ID: &str = "admin@example.com";

impl TestSamlIdp {
    /// A new IdP named `entity_id`, with a fresh 2048-bit RSA key.
    pub fn new(entity_id: &str) -> Self {
        let idp = IdentityProvider::generate_new(KeyType::Rsa(Rsa::Rsa2048)).expect("an RSA key");
        let params =
            CertificateParams { common_name: "Test IdP", issuer_name: "Test IdP", days_until_expiration: 30 };
        let der = idp.create_certificate(&params).expect("a certificate");
        let pem = X509::from_der(der.der_data()).and_then(|c| c.to_pem()).expect("PEM");
        Self {
            entity_id: entity_id.to_owned(),
            sso_url: "https://idp.test/sso".to_owned(),
            key_der: idp.export_private_key_der().expect("the key's DER"),
            certificate_pem: String::from_utf8(pem).expect("PEM is ASCII"),
        }
    }

    /// The same IdP (entity id, URLs) with a new key: a rotation, or a forger's key.
    pub fn with_new_key(&self) -> Self {
        Self {
            entity_id: self.entity_id.clone(),
            sso_url: self.sso_url.clone(),
            ..Self::new(&self.entity_id)
        }
    }

    /// The certificate as metadata and KeyInfo carry it: base64 DER, no PEM armour.
    pub fn certificate_base64(&self) -> String {
        self.certificate_pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    /// The settings Janua keeps for this IdP (assertions must be signed, SP-initiated only).
    pub fn settings(&self) -> IdpSettings {
        IdpSettings {
            entity_id: self.entity_id.clone(),
            sso_url: self.sso_url.clone(),
            slo_url: Some(format!("{}/slo", self.sso_url)),
            certificates: vec![self.certificate_pem.clone()],
            want_assertions_signed: true,
            allow_idp_initiated: false,
        }
    }

    /// The IdP's metadata: one signing key, SSO by redirect and POST, SLO by redirect.
    pub fn metadata_xml(&self) -> String {
        let cert = self.certificate_base64();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}/slo"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{sso}"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"#,
            entity = xml_escape(&self.entity_id),
            sso = xml_escape(&self.sso_url),
        )
    }

    /// A Response to the SP `sp_entity_id` at `acs_url`: by default an answer to no request
    /// (set [`ResponseBuilder::in_response_to`]), for `user@example.com`, issued now, valid five
    /// minutes, its Assertion signed.
    pub fn response(&self, sp_entity_id: &str, acs_url: &str) -> ResponseBuilder<'_> {
        let now = Utc::now();
        ResponseBuilder {
            signer: self,
            issuer: self.entity_id.clone(),
            audience: sp_entity_id.to_owned(),
            recipient: acs_url.to_owned(),
            destination: Some(acs_url.to_owned()),
            in_response_to: None,
            name_id: "user@example.com".to_owned(),
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".to_owned(),
            attributes: Vec::new(),
            issue_instant: now,
            not_before: now - Duration::seconds(30),
            not_on_or_after: now + Duration::minutes(5),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".to_owned(),
            signing: Signing::Assertion,
            sha1: false,
            tamper: false,
            wrap: None,
        }
    }
}

/// One Response in the making; [`ResponseBuilder::build`] posts it as a browser would.
pub struct ResponseBuilder<'a> {
    signer: &'a TestSamlIdp,
    issuer: String,
    audience: String,
    recipient: String,
    destination: Option<String>,
    in_response_to: Option<String>,
    name_id: String,
    name_id_format: String,
    attributes: Vec<(String, Vec<String>)>,
    issue_instant: DateTime<Utc>,
    not_before: DateTime<Utc>,
    not_on_or_after: DateTime<Utc>,
    status: String,
    signing: Signing,
    sha1: bool,
    tamper: bool,
    wrap: Option<Wrap>,
}

impl<'a> ResponseBuilder<'a> {
    /// Answers the AuthnRequest `id` (Response and bearer confirmation).
    pub fn in_response_to(mut self, id: &str) -> Self {
        self.in_response_to = Some(id.to_owned());
        self
    }

    pub fn name_id(mut self, name_id: &str) -> Self {
        self.name_id = name_id.to_owned();
        self
    }

    pub fn name_id_format(mut self, format: &str) -> Self {
        self.name_id_format = format.to_owned();
        self
    }

    /// Adds an attribute with its values.
    pub fn attribute(mut self, name: &str, values: &[&str]) -> Self {
        self.attributes.push((name.to_owned(), values.iter().map(|v| (*v).to_owned()).collect()));
        self
    }

    /// Issued at `issued`, valid from `not_before` until `not_on_or_after` (Conditions and the
    /// bearer confirmation alike).
    pub fn validity(
        mut self,
        issued: DateTime<Utc>,
        not_before: DateTime<Utc>,
        not_on_or_after: DateTime<Utc>,
    ) -> Self {
        (self.issue_instant, self.not_before, self.not_on_or_after) = (issued, not_before, not_on_or_after);
        self
    }

    pub fn audience(mut self, audience: &str) -> Self {
        self.audience = audience.to_owned();
        self
    }

    /// The bearer confirmation's `Recipient`.
    pub fn recipient(mut self, recipient: &str) -> Self {
        self.recipient = recipient.to_owned();
        self
    }

    /// The Response's `Destination` (`None`: left out).
    pub fn destination(mut self, destination: Option<&str>) -> Self {
        self.destination = destination.map(str::to_owned);
        self
    }

    /// The Issuer of the Response and the Assertion.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = issuer.to_owned();
        self
    }

    /// The top-level StatusCode (an IdP's refusal carries no assertion).
    pub fn status(mut self, status: &str) -> Self {
        self.status = status.to_owned();
        self
    }

    pub fn sign(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }

    /// Signs with `other`'s key (and names its certificate in KeyInfo).
    pub fn signed_by(mut self, other: &'a TestSamlIdp) -> Self {
        self.signer = other;
        self
    }

    /// Signs with RSA-SHA1 and SHA-1 digests.
    pub fn sha1(mut self) -> Self {
        self.sha1 = true;
        self
    }

    /// After signing, changes the NameID to [`FORGED_NAME_ID`].
    pub fn tamper(mut self) -> Self {
        self.tamper = true;
        self
    }

    /// After signing, adds an unsigned assertion for [`FORGED_NAME_ID`].
    pub fn wrap(mut self, wrap: Wrap) -> Self {
        self.wrap = Some(wrap);
        self
    }

    /// The `SAMLResponse` form value: base64 wrapped at 76 columns.
    pub fn build(&self) -> String {
        encode(&self.xml())
    }

    /// The Response XML, signed as asked, then tampered or wrapped.
    pub fn xml(&self) -> String {
        let assertion_id = new_id();
        let mut assertion = self.assertion(&assertion_id, &self.name_id, self.signing_assertion());
        if self.signing_assertion() {
            assertion = strip_declaration(&self.sign_xml(&assertion));
        }
        let response_id = new_id();
        let mut xml = self.response_xml(&response_id, &assertion);
        if matches!(self.signing, Signing::Response | Signing::Both) {
            xml = self.sign_xml(&xml);
        }
        if self.tamper {
            xml =
                xml.replacen(&format!(">{}<", xml_escape(&self.name_id)), &format!(">{FORGED_NAME_ID}<"), 1);
        }
        if let Some(wrap) = self.wrap {
            let forged = self.assertion(&new_id(), FORGED_NAME_ID, false);
            let signed = &xml[xml.find("<saml:Assertion").expect("an assertion")..];
            let signed =
                &signed[..signed.find("</saml:Assertion>").expect("its end") + "</saml:Assertion>".len()];
            let replacement = match wrap {
                Wrap::Beside => format!("{forged}{signed}"),
                Wrap::Around => forged.replacen(
                    "</saml:Conditions>",
                    &format!("</saml:Conditions><saml:Advice>{signed}</saml:Advice>"),
                    1,
                ),
            };
            xml = xml.replacen(signed, &replacement, 1);
        }
        xml
    }

    fn signing_assertion(&self) -> bool {
        matches!(self.signing, Signing::Assertion | Signing::Both)
    }

    /// Signs the first signature template of `xml` (document order) with the signer's key.
    fn sign_xml(&self, xml: &str) -> String {
        Crypto::sign_xml(xml, &self.signer.key_der).expect("xmlsec signs")
    }

    fn response_xml(&self, id: &str, assertion: &str) -> String {
        let signature = if matches!(self.signing, Signing::Response | Signing::Both) {
            self.signature_template(id)
        } else {
            String::new()
        };
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{issued}"{destination}{irt}><saml:Issuer>{issuer}</saml:Issuer>{signature}<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>{assertion}</samlp:Response>
"#,
            issued = instant(self.issue_instant),
            destination = optional_attribute("Destination", self.destination.as_deref()),
            irt = optional_attribute("InResponseTo", self.in_response_to.as_deref()),
            issuer = xml_escape(&self.issuer),
            status = xml_escape(&self.status),
            // An IdP's refusal carries no assertion.
            assertion = if self.status.ends_with(":Success") { assertion } else { "" },
        )
    }

    fn assertion(&self, id: &str, name_id: &str, signed: bool) -> String {
        let signature = if signed { self.signature_template(id) } else { String::new() };
        let attributes: String = self
            .attributes
            .iter()
            .map(|(name, values)| {
                let values: String = values
                    .iter()
                    .map(|v| format!(r#"<saml:AttributeValue xsi:type="xs:string">{}</saml:AttributeValue>"#, xml_escape(v)))
                    .collect();
                format!(
                    r#"<saml:Attribute Name="{}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">{values}</saml:Attribute>"#,
                    xml_escape(name)
                )
            })
            .collect();
        let statement = if attributes.is_empty() {
            String::new()
        } else {
            format!("<saml:AttributeStatement>{attributes}</saml:AttributeStatement>")
        };
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="{id}" Version="2.0" IssueInstant="{issued}"><saml:Issuer>{issuer}</saml:Issuer>{signature}<saml:Subject><saml:NameID Format="{format}">{name_id}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData{irt} NotOnOrAfter="{until}" Recipient="{recipient}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{from}" NotOnOrAfter="{until}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{issued}" SessionIndex="{id}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>{statement}</saml:Assertion>"#,
            issued = instant(self.issue_instant),
            issuer = xml_escape(&self.issuer),
            format = xml_escape(&self.name_id_format),
            name_id = xml_escape(name_id),
            irt = optional_attribute("InResponseTo", self.in_response_to.as_deref()),
            until = instant(self.not_on_or_after),
            from = instant(self.not_before),
            recipient = xml_escape(&self.recipient),
            audience = xml_escape(&self.audience),
        )
    }

    /// An enveloped, exclusive-c14n signature template over `#id`, naming the signer's certificate.
    fn signature_template(&self, id: &str) -> String {
        let (method, digest) = if self.sha1 {
            ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1")
        } else {
            ("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2001/04/xmlenc#sha256")
        };
        format!(
            r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{method}"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##,
            cert = self.signer.certificate_base64(),
        )
    }
}

/// A posted `SAMLResponse` for `xml`: base64 wrapped at 76 columns with CRLF, as browsers post
/// long form values.
pub fn encode(xml: &str) -> String {
    let b64 = STANDARD.encode(xml);
    b64.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The XML inside a posted `SAMLResponse`.
pub fn decode(saml_response: &str) -> String {
    let compact: String = saml_response.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    String::from_utf8(STANDARD.decode(compact).expect("base64")).expect("UTF-8")
}

/// `_` and 32 hex digits, like the IDs IdPs and Janua make.
pub fn new_id() -> String {
    format!("_{}", uuid::Uuid::new_v4().simple())
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn optional_attribute(name: &str, value: Option<&str>) -> String {
    value.map(|v| format!(r#" {name}="{}""#, xml_escape(v))).unwrap_or_default()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// xmlsec's output starts with an XML declaration; an embedded assertion must not.
fn strip_declaration(xml: &str) -> String {
    match xml.strip_prefix("<?xml") {
        Some(rest) => rest[rest.find("?>").expect("the declaration ends") + 2..].trim_start().to_owned(),
        None => xml.to_owned(),
    }
}
