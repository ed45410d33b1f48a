//! Resolving attribute paths against a resource type.

use crate::services::scim::filter::AttrPath;
use crate::services::scim::schema::{self, Attribute, ResourceType, Schema};

/// What an attribute path designates in a resource type.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// All of a schema's attributes: the document itself (core) or an extension's object.
    Schema(&'static Schema),
    /// An attribute of `schema` (the core schema for `id`, `externalId`, `meta`), maybe a sub-attribute.
    Attr { schema: &'static Schema, attr: &'static Attribute, sub: Option<&'static Attribute> },
    /// Accepted and dropped: an RFC 7643 attribute Janua does not store, or a schema that is not
    /// one of this resource type's.
    Ignored,
}

/// Resolves an attribute path against a resource type to its canonical (schema, attribute,
/// sub-attribute), case-insensitively. Paths may carry the core URN or not; extension attributes
/// are found with their URN, or without it when no other attribute has that name. `id`,
/// `externalId` and `meta` resolve to the core schema.
pub fn resolve(
    rt: &ResourceType,
    p: &AttrPath,
) -> Option<(&'static Schema, &'static Attribute, Option<&'static Attribute>)> {
    match target(rt, p) {
        Ok(Target::Attr { schema, attr, sub }) => Some((schema, attr, sub)),
        _ => None,
    }
}

/// Whether string comparisons on this path are case-sensitive (false for unknown paths).
pub fn is_case_exact(rt: &ResourceType, p: &AttrPath) -> bool {
    match resolve(rt, p) {
        Some((_, _, Some(sub))) => sub.case_exact,
        Some((_, attr, None)) => attr.case_exact,
        None => false,
    }
}

/// Resolves a path to what it designates; `Err` carries why it designates nothing.
pub(crate) fn target(rt: &ResourceType, p: &AttrPath) -> Result<Target, String> {
    let found = match &p.urn {
        Some(urn) => {
            let bare = format!("{urn}:{}", p.name);
            if let Some(s) = schemas_of(rt).find(|s| s.id.eq_ignore_ascii_case(&bare)) {
                if p.sub.is_some() {
                    return Err(format!("'{}' is a schema, not an attribute", super::shown(&bare)));
                }
                return Ok(Target::Schema(s));
            }
            match schemas_of(rt).find(|s| s.id.eq_ignore_ascii_case(urn)) {
                Some(s) => in_schema(rt, s, &p.name),
                None => return Ok(Target::Ignored),
            }
        }
        None => unqualified(rt, &p.name),
    };
    let (schema, attr) = match found {
        Some(Found::Attr(schema, attr)) => (schema, attr),
        Some(Found::Ignored) => return Ok(Target::Ignored),
        None => return Err(format!("'{}' is not an attribute of {}", display(p), rt.id)),
    };
    let sub = match &p.sub {
        None => None,
        Some(name) => match schema::find(attr.sub, name) {
            Some(sub) => Some(sub),
            None => return Err(format!("'{}' is not an attribute of {}", display(p), rt.id)),
        },
    };
    Ok(Target::Attr { schema, attr, sub })
}

enum Found {
    Attr(&'static Schema, &'static Attribute),
    Ignored,
}

/// The core schema, then the extensions.
fn schemas_of(rt: &ResourceType) -> impl Iterator<Item = &'static Schema> + '_ {
    std::iter::once(rt.core).chain(rt.extensions.iter().copied())
}

/// An attribute named with a schema's URN.
fn in_schema(rt: &ResourceType, s: &'static Schema, name: &str) -> Option<Found> {
    if std::ptr::eq(s, rt.core) {
        return core_attribute(rt, name);
    }
    schema::find(s.attributes, name).map(|a| Found::Attr(s, a))
}

/// A common or core attribute, or one of the core's ignored names.
fn core_attribute(rt: &ResourceType, name: &str) -> Option<Found> {
    let attr = schema::find(schema::common(), name).or_else(|| schema::find(rt.core.attributes, name));
    match attr {
        Some(attr) => Some(Found::Attr(rt.core, attr)),
        None if rt.ignored.iter().any(|i| i.eq_ignore_ascii_case(name)) => Some(Found::Ignored),
        None => None,
    }
}

/// An attribute named without URN: the core's, else the only extension attribute of that name.
fn unqualified(rt: &ResourceType, name: &str) -> Option<Found> {
    if let Some(found) = core_attribute(rt, name) {
        return Some(found);
    }
    let mut candidates =
        rt.extensions.iter().filter_map(|s| schema::find(s.attributes, name).map(|a| (*s, a)));
    match (candidates.next(), candidates.next()) {
        (Some((s, a)), None) => Some(Found::Attr(s, a)),
        _ => None,
    }
}

/// A path as text, for messages (cut to 100 characters).
pub(crate) fn display(p: &AttrPath) -> String {
    let mut text = match &p.urn {
        Some(urn) => format!("{urn}:{}", p.name),
        None => p.name.clone(),
    };
    if let Some(sub) = &p.sub {
        text.push('.');
        text.push_str(sub);
    }
    super::shown(&text)
}

/// The canonical label of an attribute for messages: `name`, or `urn:…:name` for extensions.
pub(crate) fn label(rt: &ResourceType, schema: &Schema, attr: &Attribute) -> String {
    if std::ptr::eq(schema, rt.core) { attr.name.to_string() } else { format!("{}:{}", schema.id, attr.name) }
}
