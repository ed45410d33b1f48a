//! What may reach an XML parser: any XML (responses, metadata) is refused when it could make a
//! parser do more than read elements: a DTD (DOCTYPE, ENTITY, …), an encoding other than UTF-8,
//! characters XML forbids.
//!
//! samael 0.0.22 parses with libxml2 in recovery mode with network access allowed and accepts a
//! validly signed Response that carries a DOCTYPE, so these checks run on the exact bytes every
//! parser later reads, before any of them does.

use crate::domain::sso::SsoReason;

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
