//! Checking and canonicalising one attribute's value.

use serde_json::{Map, Value};

use super::{Mode, kind_label};
use crate::services::scim::patch::PatchError;
use crate::services::scim::schema::{self, Attribute, Kind, MAX_STRING_CHARS};

/// Checks and canonicalises all the values of `attr` (an array when multi-valued; a single value
/// is accepted there and wrapped). `None` when the value is unassigned: null, `[]`, or an object
/// left empty once read-only sub-attributes are dropped.
pub(crate) fn attribute_value(
    attr: &Attribute,
    v: &Value,
    label: &str,
    mode: Mode,
) -> Result<Option<Value>, PatchError> {
    if !attr.multi {
        if v.is_array() {
            return Err(PatchError::invalid_value(format!("'{label}' takes a single value")));
        }
        return single_value(attr, v, label, mode);
    }
    let items = match v {
        Value::Null => return Ok(None),
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    if items.len() > attr.max_items {
        return Err(PatchError::invalid_value(format!(
            "'{label}' holds more than {} values",
            attr.max_items
        )));
    }
    let mut checked = Vec::with_capacity(items.len());
    for item in items {
        if let Some(item) = single_value(attr, item, label, mode)? {
            checked.push(item);
        }
    }
    if checked.iter().filter(|i| is_primary(i)).count() > 1 {
        return Err(PatchError::invalid_value(format!("'{label}' has more than one primary value")));
    }
    Ok(Some(Value::Array(checked)).filter(|v| v.as_array().is_some_and(|a| !a.is_empty())))
}

/// True for a value whose `primary` sub-attribute is true (RFC 7643 §2.4).
pub(crate) fn is_primary(v: &Value) -> bool {
    v.get("primary") == Some(&Value::Bool(true))
}

/// Checks and canonicalises one value of `attr` (one element when multi-valued).
pub(crate) fn single_value(
    attr: &Attribute,
    v: &Value,
    label: &str,
    mode: Mode,
) -> Result<Option<Value>, PatchError> {
    if v.is_null() {
        return Ok(None);
    }
    let checked = match attr.kind {
        Kind::Complex => return complex(attr, v, label, mode),
        Kind::Boolean => boolean(v),
        Kind::String | Kind::Reference => string(attr, v),
        Kind::DateTime => {
            v.as_str().filter(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()).map(Value::from)
        }
        Kind::Integer => Some(v.clone()).filter(|v| v.is_i64() || v.is_u64()),
    };
    match checked {
        Some(checked) => Ok(Some(checked)),
        None => Err(invalid(attr, v, label)),
    }
}

fn invalid(attr: &Attribute, v: &Value, label: &str) -> PatchError {
    if let Some(s) = v.as_str()
        && attr.strict
        && s.chars().count() <= MAX_STRING_CHARS
    {
        let allowed = attr.canonical.join("', '");
        return PatchError::invalid_value(format!("'{label}' must be one of '{allowed}'"));
    }
    if v.as_str().is_some_and(|s| s.chars().count() > MAX_STRING_CHARS) {
        return PatchError::invalid_value(format!("'{label}' is longer than {MAX_STRING_CHARS} characters"));
    }
    PatchError::invalid_value(format!("'{label}' must be {}", kind_label(attr)))
}

/// A boolean, or the strings `"true"`/`"false"` in any case (Microsoft Entra sends `"False"`).
fn boolean(v: &Value) -> Option<Value> {
    match v {
        Value::Bool(_) => Some(v.clone()),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(Value::Bool(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(Value::Bool(false)),
        _ => None,
    }
}

/// A string of at most [`MAX_STRING_CHARS`] characters; a strict attribute's canonical spelling.
fn string(attr: &Attribute, v: &Value) -> Option<Value> {
    let s = v.as_str().filter(|s| s.chars().count() <= MAX_STRING_CHARS)?;
    if !attr.strict {
        return Some(v.clone());
    }
    attr.canonical.iter().find(|c| c.eq_ignore_ascii_case(s)).map(|c| Value::from(*c))
}

/// An object of sub-attributes. A single-valued complex attribute with a `value` sub-attribute
/// also accepts a bare string as that `value` (Entra sends `manager` as the manager's id).
fn complex(attr: &Attribute, v: &Value, label: &str, mode: Mode) -> Result<Option<Value>, PatchError> {
    let wrapped;
    let members = match v {
        Value::Object(members) => members,
        Value::String(_) if !attr.multi && schema::find(attr.sub, "value").is_some() => {
            wrapped = Map::from_iter([("value".to_string(), v.clone())]);
            &wrapped
        }
        _ => return Err(invalid(attr, v, label)),
    };
    let mut out = Map::new();
    for (key, value) in members {
        let Some(sub) = schema::find(attr.sub, key) else {
            let key = super::shown(key);
            return Err(PatchError::invalid_value(format!("unknown attribute '{label}.{key}'")));
        };
        let sub_label = format!("{label}.{}", sub.name);
        let checked = match (sub.is_read_only(), mode) {
            (true, Mode::Input) => None,
            (true, Mode::Stored) => Some(value.clone()).filter(|v| !v.is_null()),
            (false, _) => super::attribute_value(sub, value, &sub_label, mode)?,
        };
        if let Some(checked) = checked {
            out.insert(sub.name.to_string(), checked);
        }
    }
    // An object of nulls is unassigned (Entra sends `"$ref": null`); one naming only read-only
    // sub-attributes still needs the required ones.
    if !members.values().any(|v| !v.is_null()) {
        return Ok(None);
    }
    if let Some(missing) = attr.sub.iter().find(|s| s.required && !out.contains_key(s.name)) {
        return Err(PatchError::invalid_value(format!("'{label}' needs '{}'", missing.name)));
    }
    Ok(Some(Value::Object(out)).filter(|o| o.as_object().is_some_and(|m| !m.is_empty())))
}

/// True when no array or object in `v` is nested more than `max` levels deep (checked without
/// recursion, so any input is safe).
pub(crate) fn depth_within(v: &Value, max: usize) -> bool {
    let mut stack = vec![(v, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(members) => Box::new(members.values()),
            _ => continue,
        };
        if depth + 1 > max {
            return false;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    true
}
