//! What may reach an XML parser: the `SAMLResponse` unwrapped from base64 within a size cap, and
//! any XML (responses, metadata) refused when it could make a parser do more than read elements:
//! a DTD (DOCTYPE, ENTITY, …), an encoding other than UTF-8, characters XML forbids.
//!
//! samael 0.0.22 parses with libxml2 in recovery mode with network access allowed and accepts a
//! validly signed Response that carries a DOCTYPE, so these checks run on the exact bytes every
//! parser later reads, before any of them does.

use std::sync::Once;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use libxml::parser::{Parser, ParserOptions};
use libxml::tree::Document;

use crate::domain::sso::SsoReason;

/// The largest decoded `SAMLResponse` accepted (real ones are a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Standard base64, padded or not (IdPs differ), no other alphabet.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an XML document was refused before parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XmlRefusal {
    /// A DTD: DOCTYPE, ENTITY, ELEMENT, ATTLIST or NOTATION declaration.
    Doctype,
    /// Not UTF-8 XML 1.0 (declared encoding, version, forbidden characters).
    Malformed,
}

impl From<XmlRefusal> for SsoReason {
    fn from(r: XmlRefusal) -> Self {
        match r {
            XmlRefusal::Doctype => SsoReason::DoctypeForbidden,
            XmlRefusal::Malformed => SsoReason::MalformedResponse,
        }
    }
}

/// The XML inside a posted `SAMLResponse`: whitespace (browsers wrap long values) dropped, base64
/// decoded, at most [`MAX_RESPONSE_BYTES`], UTF-8.
pub fn decode_response(encoded: &str) -> Result<String, SsoReason> {
    // Base64 is 4/3 of its payload; anything longer than that plus generous wrapping is too big.
    if encoded.len() > MAX_RESPONSE_BYTES / 3 * 4 * 2 {
        return Err(SsoReason::MalformedResponse);
    }
    let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = BASE64.decode(compact.as_bytes()).map_err(|_| SsoReason::MalformedResponse)?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(SsoReason::MalformedResponse);
    }
    String::from_utf8(bytes).map_err(|_| SsoReason::MalformedResponse)
}

/// `xml` without a leading byte-order mark, once it is known to hold no DTD, to be UTF-8 XML 1.0
/// and to contain only characters XML allows.
pub fn guard_xml(xml: &str) -> Result<&str, XmlRefusal> {
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    if xml.chars().any(|c| !is_xml_char(c)) {
        return Err(XmlRefusal::Malformed);
    }
    // `<!` opens only comments, CDATA sections and DTD declarations; refuse all but the first two
    // (also inside comments and CDATA: a false refusal there costs nothing real).
    for (i, _) in xml.match_indices("<!") {
        let rest = &xml[i + 2..];
        if !rest.starts_with("--") && !rest.starts_with("[CDATA[") {
            return Err(XmlRefusal::Doctype);
        }
    }
    if let Some(decl) = xml.strip_prefix("<?xml").filter(|r| r.starts_with(char::is_whitespace)) {
        let decl = &decl[..decl.find("?>").ok_or(XmlRefusal::Malformed)?];
        if pseudo_attribute(decl, "version").is_some_and(|v| v != "1.0") {
            return Err(XmlRefusal::Malformed);
        }
        if pseudo_attribute(decl, "encoding").is_some_and(|e| !e.eq_ignore_ascii_case("UTF-8")) {
            return Err(XmlRefusal::Malformed);
        }
    }
    Ok(xml)
}

/// Parses guarded XML with libxml2 — the parser xmlsec verifies with — but strictly: no recovery
/// from errors (samael's own parse recovers), no network. A document this accepts is one the
/// recovering parse reads identically.
pub fn parse_strict(xml: &str) -> Option<Document> {
    // libxml2 2.9 initialises its globals on the first parse without a lock (`xmlInitParser` is
    // not reentrant): make that first parse happen once, before any concurrent one.
    static INIT: Once = Once::new();
    INIT.call_once(|| drop(Parser::default().parse_string("<init/>")));
    let options = ParserOptions { recover: false, no_net: true, ..ParserOptions::default() };
    Parser::default().parse_string_with_options(xml, options).ok()
}

/// XML 1.0 `Char`: tab, newline, carriage return and everything from space up, minus U+FFFE/FFFF
/// (surrogates cannot occur in a Rust string).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{fffd}' | '\u{10000}'..)
}

/// The value of `name="…"` (or `'…'`) in an XML declaration's body.
fn pseudo_attribute<'a>(decl: &'a str, name: &str) -> Option<&'a str> {
    let at = decl.find(name)?;
    let rest = decl[at + name.len()..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let rest = &rest[1..];
    rest.find(quote).map(|end| &rest[..end])
}
