//! RFC 7644 §3.5.2 PATCH applied to a resource document, all operations or none, with the
//! request shapes Microsoft Entra ID and Okta send.

use serde_json::{Map, Value};

use super::document::{self, Mode, Target, shown};
use super::filter::{PatchPath, parse_path};
use super::schema::{self, Attribute, ResourceType, Schema};

mod error;
mod multi;
mod single;

pub use error::PatchError;

/// Most operations one PATCH request may carry.
pub const MAX_OPERATIONS: usize = 1000;
/// Deepest nesting of arrays and objects an operation's value may have.
pub const MAX_VALUE_DEPTH: usize = 8;

const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The three PATCH operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Remove,
    Replace,
}

/// Applies a PatchOp body (`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[…]}`)
/// to `doc` (a full resource document of resource type `rt`, as returned to clients but without
/// `meta`), all or nothing: on `Err`, `doc` is unchanged. On success `doc` is the validated result
/// (see [`document::validate`]), its `schemas` listing the extensions present.
pub fn apply(rt: &ResourceType, doc: &mut Value, body: &Value) -> Result<(), PatchError> {
    let operations = operations(body)?;
    let Some(mut work) = doc.as_object().cloned() else {
        return Err(PatchError::invalid_syntax("the patched resource must be a JSON object"));
    };
    for (index, operation) in operations.iter().enumerate() {
        apply_operation(rt, &mut work, operation).map_err(|e| e.in_operation(index))?;
    }
    *doc = document::validate(rt, &Value::Object(work))?;
    Ok(())
}

/// The `Operations` array (also accepted as `operations`), at most [`MAX_OPERATIONS`] long.
fn operations(body: &Value) -> Result<&[Value], PatchError> {
    let Some(members) = body.as_object() else {
        return Err(PatchError::invalid_syntax("a PatchOp must be a JSON object"));
    };
    if let Some(schemas) = member(members, "schemas") {
        let listed = schemas.as_array().is_some_and(|a| {
            a.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_URN)))
        });
        if !listed {
            return Err(PatchError::invalid_syntax(format!("'schemas' must list {PATCH_OP_URN}")));
        }
    }
    let operations = match member(members, "Operations") {
        Some(Value::Array(operations)) => operations,
        Some(_) => return Err(PatchError::invalid_syntax("'Operations' must be an array")),
        None => return Err(PatchError::invalid_syntax("'Operations' is missing")),
    };
    if operations.is_empty() {
        return Err(PatchError::invalid_value("'Operations' holds no operation"));
    }
    if operations.len() > MAX_OPERATIONS {
        return Err(PatchError::invalid_value(format!("more than {MAX_OPERATIONS} operations")));
    }
    Ok(operations)
}

/// A member of an object, its name matched case-insensitively.
fn member<'a>(members: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    members.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

fn apply_operation(
    rt: &ResourceType,
    doc: &mut Map<String, Value>,
    operation: &Value,
) -> Result<(), PatchError> {
    let Some(members) = operation.as_object() else {
        return Err(PatchError::invalid_syntax("an operation must be a JSON object"));
    };
    let op = match member(members, "op").map(|op| op.as_str()) {
        Some(Some(op)) if op.eq_ignore_ascii_case("add") => Op::Add,
        Some(Some(op)) if op.eq_ignore_ascii_case("remove") => Op::Remove,
        Some(Some(op)) if op.eq_ignore_ascii_case("replace") => Op::Replace,
        Some(Some(op)) => {
            return Err(PatchError::invalid_value(format!("'{op}' is not add, remove or replace")));
        }
        Some(None) => return Err(PatchError::invalid_syntax("'op' must be a string")),
        None => return Err(PatchError::invalid_syntax("'op' is missing")),
    };
    let value = member(members, "value");
    if value.is_some_and(|v| !document::depth_within(v, MAX_VALUE_DEPTH)) {
        return Err(PatchError::invalid_value("the value is nested too deeply"));
    }
    match (op, value) {
        (Op::Add, None | Some(Value::Null)) => return Err(PatchError::invalid_value("add needs a value")),
        (Op::Replace, None) => return Err(PatchError::invalid_value("replace needs a value")),
        _ => {}
    }
    let path = match member(members, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => Some(parsed_path(text)?),
        Some(_) => return Err(PatchError::invalid_path("'path' must be a string")),
    };
    match path {
        None if op == Op::Remove => Err(PatchError::no_target("remove needs a path")),
        None => pathless(rt, doc, op, value.unwrap_or(&Value::Null)),
        Some(path) => {
            let target = document::target(rt, &path.attr).map_err(PatchError::invalid_path)?;
            at_target(rt, doc, op, target, &path, value)
        }
    }
}

/// Parses a path; a fault inside a closed `[…]` is `invalidFilter`, any other (an unclosed
/// bracket among them) `invalidPath`.
fn parsed_path(text: &str) -> Result<PatchPath, PatchError> {
    parse_path(text).map_err(|e| {
        let bracketed = text.find('[').is_some_and(|open| text[open..].contains(']'));
        let scim_type = if bracketed { PatchError::INVALID_FILTER } else { PatchError::INVALID_PATH };
        PatchError::new(scim_type, format!("'{}': {e}", shown(text)))
    })
}

/// `add`/`replace` without a path: each member of the value object is a target, named by an
/// attribute, a dotted sub-attribute (`name.givenName`), a URN-qualified attribute or an extension
/// URN. `schemas` and `meta` are ignored, and `id` when it is the current one.
fn pathless(
    rt: &ResourceType,
    doc: &mut Map<String, Value>,
    op: Op,
    value: &Value,
) -> Result<(), PatchError> {
    let Some(members) = value.as_object() else {
        return Err(PatchError::invalid_value("an operation without path needs an object value"));
    };
    for (key, v) in members {
        if key.eq_ignore_ascii_case("schemas") || key.eq_ignore_ascii_case("meta") {
            continue;
        }
        if key.eq_ignore_ascii_case("id") && doc.get("id") == Some(v) {
            continue;
        }
        let unknown = || PatchError::invalid_value(format!("unknown attribute '{}'", shown(key)));
        let path = parse_path(key).map_err(|_| unknown())?;
        let target = document::target(rt, &path.attr).map_err(|_| unknown())?;
        at_target(rt, doc, op, target, &path, Some(v))?;
    }
    Ok(())
}

/// One operation on what its path designates.
fn at_target(
    rt: &ResourceType,
    doc: &mut Map<String, Value>,
    op: Op,
    target: Target,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    match target {
        Target::Ignored => Ok(()),
        Target::Schema(s) if std::ptr::eq(s, rt.core) => match op {
            Op::Remove => Err(PatchError::invalid_path(format!("cannot remove '{}'", s.id))),
            _ => pathless(rt, doc, op, value.unwrap_or(&Value::Null)),
        },
        Target::Schema(s) => extension(rt, doc, op, s, value),
        Target::Attr { schema, attr, sub } => {
            let site = Site { label: document::label(rt, schema, attr), attr };
            let Some(filter) = &path.filter else {
                return in_holder(doc, rt, schema, |h| single::operate(h, &site, sub, op, value));
            };
            let sub = match &path.sub {
                None => None,
                Some(name) => Some(schema::find(attr.sub, name).ok_or_else(|| {
                    PatchError::invalid_path(format!("'{}.{}' is not an attribute", site.label, shown(name)))
                })?),
            };
            in_holder(doc, rt, schema, |h| multi::filtered(h, &site, filter, sub, op, value))
        }
    }
}

/// The attribute an operation works on, with its label for messages.
pub(crate) struct Site {
    pub(crate) label: String,
    pub(crate) attr: &'static Attribute,
}

impl Site {
    /// Checks a value for this attribute (all its values when multi-valued), as client input.
    fn checked(&self, v: &Value) -> Result<Option<Value>, PatchError> {
        document::attribute_value(self.attr, v, &self.label, Mode::Input)
    }

    /// Checks one value of this attribute's sub-attribute, as client input.
    fn checked_sub(&self, sub: &Attribute, v: &Value) -> Result<Option<Value>, PatchError> {
        document::attribute_value(sub, v, &format!("{}.{}", self.label, sub.name), Mode::Input)
    }
}

/// Runs `f` on the object holding a schema's attributes: the document for the core, the
/// extension's member otherwise (created empty when missing; the final validation drops it if it
/// stays empty).
fn in_holder<R>(
    doc: &mut Map<String, Value>,
    rt: &ResourceType,
    s: &Schema,
    f: impl FnOnce(&mut Map<String, Value>) -> Result<R, PatchError>,
) -> Result<R, PatchError> {
    if std::ptr::eq(s, rt.core) {
        return f(doc);
    }
    let mut members = match single::take(doc, s.id) {
        Some(Value::Object(members)) => members,
        _ => Map::new(),
    };
    let result = f(&mut members);
    doc.insert(s.id.to_string(), Value::Object(members));
    result
}

/// An operation whose path is an extension's URN: `remove` drops the extension's object;
/// `add`/`replace` take an object of its attributes, each added or replaced, the others kept.
fn extension(
    rt: &ResourceType,
    doc: &mut Map<String, Value>,
    op: Op,
    s: &'static Schema,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    let members = match value {
        _ if op == Op::Remove => None,
        Some(Value::Null) => None,
        Some(Value::Object(members)) => Some(members),
        _ => return Err(PatchError::invalid_value(format!("'{}' must be an object", s.id))),
    };
    let Some(members) = members else {
        if let Some(a) = s.attributes.iter().find(|a| a.required || a.is_read_only()) {
            return Err(PatchError::mutability(format!("'{}' cannot be removed", document::label(rt, s, a))));
        }
        doc.retain(|k, _| !k.eq_ignore_ascii_case(s.id));
        return Ok(());
    };
    for (key, v) in members {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let Some(attr) = schema::find(s.attributes, key) else {
            return Err(PatchError::invalid_value(format!("unknown attribute '{}:{}'", s.id, shown(key))));
        };
        let site = Site { label: document::label(rt, s, attr), attr };
        in_holder(doc, rt, s, |h| single::operate(h, &site, None, op, Some(v)))?;
    }
    Ok(())
}

/// Filter paths inside `attr[…]` are relative: `case_exact` of `attr.sub`.
pub(crate) fn sub_case_exact(attr: &Attribute) -> impl Fn(&super::filter::AttrPath) -> bool + '_ {
    move |p| {
        let name = p.sub.as_deref().unwrap_or(&p.name);
        schema::find(attr.sub, name).is_some_and(|s| s.case_exact)
    }
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests;
