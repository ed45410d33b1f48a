//! Operations on an attribute named without a value filter: `attr` or `attr.sub`.

use serde_json::{Map, Value};

use super::{Op, PatchError, Site, multi};
use crate::services::scim::document::is_assigned;
use crate::services::scim::schema::{Attribute, Mutability};

/// The attribute's current value, its name matched case-insensitively.
pub(super) fn current<'a>(holder: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    holder.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// Removes the attribute under any spelling and returns its value.
pub(super) fn take(holder: &mut Map<String, Value>, name: &str) -> Option<Value> {
    let key = holder.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()?;
    holder.remove(&key)
}

/// Stores a value under the attribute's canonical name, or removes it when unassigned.
pub(super) fn store(holder: &mut Map<String, Value>, name: &'static str, value: Option<Value>) {
    take(holder, name);
    if let Some(value) = value.filter(|v| is_assigned(Some(v))) {
        holder.insert(name.to_string(), value);
    }
}

/// An immutable (sub-)attribute may only be written when it has no value yet (RFC 7644 §3.5.2).
pub(super) fn check_immutable(
    attr: &Attribute,
    label: &str,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Result<(), PatchError> {
    let changed = is_assigned(old) && old != new;
    if attr.mutability == Mutability::Immutable && changed {
        return Err(PatchError::mutability(format!("'{label}' is immutable")));
    }
    Ok(())
}

/// Read-only (sub-)attributes are never written, required ones never removed.
pub(super) fn check_writable(attr: &Attribute, label: &str, removing: bool) -> Result<(), PatchError> {
    if attr.is_read_only() {
        return Err(PatchError::mutability(format!("'{label}' is readOnly")));
    }
    if removing && attr.required {
        return Err(PatchError::mutability(format!("'{label}' is required")));
    }
    Ok(())
}

/// One operation on `attr` or `attr.sub`.
pub(super) fn operate(
    holder: &mut Map<String, Value>,
    site: &Site,
    sub: Option<&'static Attribute>,
    op: Op,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    // RFC 7644 §3.5.2.3 leaves `replace` with null open; null means unassigned (RFC 7643 §2.5).
    let (op, value) = match (op, value) {
        (Op::Replace | Op::Remove, Some(Value::Null)) => (Op::Remove, None),
        other => other,
    };
    let whole_removal = op == Op::Remove && sub.is_none() && !(site.attr.multi && value.is_some());
    check_writable(site.attr, &site.label, whole_removal)?;
    match (op, sub, value) {
        (Op::Remove, None, Some(listed)) if site.attr.multi => multi::remove_listed(holder, site, listed),
        (Op::Remove, None, _) => remove(holder, site),
        (Op::Remove, Some(sub), _) => remove_sub(holder, site, sub),
        (_, None, Some(v)) => write(holder, site, op, v),
        (_, Some(sub), Some(v)) => write_sub(holder, site, sub, v),
        (_, _, None) => Err(PatchError::invalid_value("the operation needs a value")),
    }
}

fn remove(holder: &mut Map<String, Value>, site: &Site) -> Result<(), PatchError> {
    check_immutable(site.attr, &site.label, current(holder, site.attr.name), None)?;
    take(holder, site.attr.name);
    Ok(())
}

/// Removes `attr.sub` from the attribute's value (from each of its values when multi-valued);
/// values left empty go, and the attribute goes when nothing is left.
fn remove_sub(holder: &mut Map<String, Value>, site: &Site, sub: &Attribute) -> Result<(), PatchError> {
    let label = format!("{}.{}", site.label, sub.name);
    check_writable(sub, &label, true)?;
    let Some(mut value) = take(holder, site.attr.name) else {
        return Ok(());
    };
    match &mut value {
        Value::Array(items) => {
            for item in items.iter_mut() {
                remove_member(item, sub, &label)?;
            }
            items.retain(|i| i.as_object().is_some_and(|m| !m.is_empty()));
        }
        object => remove_member(object, sub, &label)?,
    }
    let left = Some(value).filter(|v| !v.as_object().is_some_and(Map::is_empty));
    store(holder, site.attr.name, left);
    Ok(())
}

fn remove_member(item: &mut Value, sub: &Attribute, label: &str) -> Result<(), PatchError> {
    if let Value::Object(members) = item {
        check_immutable(sub, label, current(members, sub.name), None)?;
        take(members, sub.name);
    }
    Ok(())
}

/// `add`/`replace` on `attr`: multi-valued values are appended (`add`) or replaced as a whole
/// (`replace`); a complex value's sub-attributes are merged, the others kept (RFC 7644 §3.5.2.1 and
/// §3.5.2.3); a simple value is set.
fn write(holder: &mut Map<String, Value>, site: &Site, op: Op, v: &Value) -> Result<(), PatchError> {
    let new = site.checked(v)?;
    if site.attr.multi {
        return match (op, new) {
            (Op::Add, Some(Value::Array(items))) => multi::append(holder, site, items),
            (Op::Add, _) => Ok(()),
            (_, new) => {
                store(holder, site.attr.name, new);
                Ok(())
            }
        };
    }
    match new {
        Some(Value::Object(members)) => merge(holder, site, members),
        // Nothing writable to merge (`{"displayName": "x"}` for a manager): nothing changes.
        None if !site.attr.sub.is_empty() => Ok(()),
        new => {
            check_immutable(site.attr, &site.label, current(holder, site.attr.name), new.as_ref())?;
            store(holder, site.attr.name, new);
            Ok(())
        }
    }
}

/// Merges sub-attributes into a single-valued complex attribute.
fn merge(
    holder: &mut Map<String, Value>,
    site: &Site,
    members: Map<String, Value>,
) -> Result<(), PatchError> {
    let mut object = match take(holder, site.attr.name) {
        Some(Value::Object(object)) => object,
        _ => Map::new(),
    };
    merge_into(&mut object, site, members)?;
    store(holder, site.attr.name, Some(Value::Object(object)));
    Ok(())
}

/// Merges checked sub-attributes into one complex value, immutable ones kept unless unassigned.
pub(super) fn merge_into(
    object: &mut Map<String, Value>,
    site: &Site,
    members: Map<String, Value>,
) -> Result<(), PatchError> {
    for (name, value) in members {
        if let Some(sub) = crate::services::scim::schema::find(site.attr.sub, &name) {
            let label = format!("{}.{}", site.label, sub.name);
            check_immutable(sub, &label, current(object, sub.name), Some(&value))?;
            store(object, sub.name, Some(value));
        }
    }
    Ok(())
}

/// `add`/`replace` on `attr.sub`: sets it on the complex value (on every value of a multi-valued
/// attribute; a first value is created when there is none).
fn write_sub(
    holder: &mut Map<String, Value>,
    site: &Site,
    sub: &'static Attribute,
    v: &Value,
) -> Result<(), PatchError> {
    let label = format!("{}.{}", site.label, sub.name);
    check_writable(sub, &label, false)?;
    let new = site.checked_sub(sub, v)?;
    let mut value = take(holder, site.attr.name).unwrap_or(Value::Null);
    if site.attr.multi {
        let mut items = match value {
            Value::Array(items) if !items.is_empty() => items,
            _ => vec![Value::Object(Map::new())],
        };
        for item in &mut items {
            set_member(item, sub, &label, new.clone())?;
        }
        let touched: Vec<usize> = (0..items.len()).collect();
        multi::settle_primary(&mut items, &touched);
        store(holder, site.attr.name, Some(Value::Array(items)));
        return Ok(());
    }
    if !value.is_object() {
        value = Value::Object(Map::new());
    }
    set_member(&mut value, sub, &label, new)?;
    let left = Some(value).filter(|v| !v.as_object().is_some_and(Map::is_empty));
    store(holder, site.attr.name, left);
    Ok(())
}

/// Sets (or, for an unassigned value, removes) one sub-attribute of a complex value.
pub(super) fn set_member(
    item: &mut Value,
    sub: &'static Attribute,
    label: &str,
    new: Option<Value>,
) -> Result<(), PatchError> {
    if let Value::Object(members) = item {
        check_immutable(sub, label, current(members, sub.name), new.as_ref())?;
        store(members, sub.name, new);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{op, patch_user, user, user_error};
    use crate::services::scim::schema::ENTERPRISE_URN;
    use serde_json::json;

    #[test]
    fn entra_sends_booleans_as_strings() {
        for (value, want) in
            [(json!("False"), false), (json!("True"), true), (json!("false"), false), (json!(false), false)]
        {
            let doc = patch_user(vec![op("Replace", Some("active"), Some(value.clone()))]).expect("active");
            assert_eq!(doc["active"], want, "{value}");
        }
        let doc =
            patch_user(vec![op("replace", None, Some(json!({ "active": "False" })))]).expect("pathless");
        assert_eq!(doc["active"], false);
        let e = json!([{ "value": "a@x", "primary": "True" }]);
        let doc = patch_user(vec![op("replace", Some("emails"), Some(e))]).expect("primary");
        assert_eq!(doc["emails"], json!([{ "value": "a@x", "primary": true }]));
    }

    #[test]
    fn sub_attributes_of_a_complex_attribute() {
        let doc =
            patch_user(vec![op("replace", Some("name.familyName"), Some(json!("J")))]).expect("replace");
        assert_eq!(doc["name"], json!({ "givenName": "Barbara", "familyName": "J" }));
        let doc = patch_user(vec![op("remove", Some("name.givenName"), None)]).expect("remove");
        assert_eq!(doc["name"], json!({ "familyName": "Jensen" }));
        let doc = patch_user(vec![
            op("remove", Some("name.givenName"), None),
            op("remove", Some("name.familyName"), None),
        ])
        .expect("remove both");
        assert!(doc.get("name").is_none());
        let doc = patch_user(vec![
            op("remove", Some("name"), None),
            op("add", Some("name.middleName"), Some(json!("M"))),
        ])
        .expect("create");
        assert_eq!(doc["name"], json!({ "middleName": "M" }));
        let doc = patch_user(vec![op("replace", Some("name.givenName"), Some(json!(null)))]).expect("null");
        assert_eq!(doc["name"], json!({ "familyName": "Jensen" }));
    }

    #[test]
    fn complex_values_merge() {
        let doc = patch_user(vec![op(
            "replace",
            Some("name"),
            Some(json!({ "givenName": "B", "Formatted": "B J" })),
        )])
        .expect("replace");
        assert_eq!(doc["name"], json!({ "givenName": "B", "familyName": "Jensen", "formatted": "B J" }));
        let doc = patch_user(vec![op("add", Some("name"), Some(json!({ "familyName": "K" })))]).expect("add");
        assert_eq!(doc["name"], json!({ "givenName": "Barbara", "familyName": "K" }));
        assert_eq!(user_error(vec![op("add", Some("name"), Some(json!({ "nick": "K" })))]), "invalidValue");
        assert_eq!(user_error(vec![op("add", Some("name"), Some(json!("K")))]), "invalidValue");
    }

    #[test]
    fn simple_values_are_set_and_null_unassigns() {
        let doc = patch_user(vec![op("add", Some("displayName"), Some(json!("New")))]).expect("add replaces");
        assert_eq!(doc["displayName"], "New");
        let doc = patch_user(vec![op("replace", Some("displayName"), Some(json!(null)))]).expect("null");
        assert!(doc.get("displayName").is_none());
        let doc =
            patch_user(vec![op("replace", Some("externalId"), Some(json!("E-1")))]).expect("externalId");
        assert_eq!(doc["externalId"], "E-1");
        assert_eq!(user_error(vec![op("replace", Some("displayName"), Some(json!(["a"])))]), "invalidValue");
        assert_eq!(user_error(vec![op("replace", Some("active"), Some(json!(1)))]), "invalidValue");
    }

    #[test]
    fn multi_valued_add_appends_and_replace_replaces() {
        let new = json!({ "value": "other@x.test", "type": "other" });
        let doc = patch_user(vec![op("add", Some("emails"), Some(json!([new.clone()])))]).expect("append");
        assert_eq!(doc["emails"].as_array().map(Vec::len), Some(3));
        assert_eq!(doc["emails"][2], new);
        let again = json!([user()["emails"][1].clone()]);
        let doc = patch_user(vec![op("add", Some("emails"), Some(again))]).expect("duplicate");
        assert_eq!(doc["emails"], user()["emails"]);
        let doc =
            patch_user(vec![op("add", Some("emails"), Some(new.clone()))]).expect("single value wrapped");
        assert_eq!(doc["emails"][2], new);
        let doc =
            patch_user(vec![op("replace", Some("emails"), Some(json!([new.clone()])))]).expect("replace");
        assert_eq!(doc["emails"], json!([new]));
        let doc = patch_user(vec![op("replace", Some("emails"), Some(json!([])))]).expect("empty");
        assert!(doc.get("emails").is_none());
        let doc = patch_user(vec![op("remove", Some("emails"), None)]).expect("remove");
        assert!(doc.get("emails").is_none());
    }

    #[test]
    fn a_new_primary_value_demotes_the_old_one() {
        let new = json!([{ "value": "new@x.test", "type": "work", "primary": true }]);
        let doc = patch_user(vec![op("add", Some("emails"), Some(new))]).expect("append primary");
        assert_eq!(doc["emails"][0]["primary"], false);
        assert_eq!(doc["emails"][2]["primary"], true);
    }

    #[test]
    fn sub_attribute_of_every_value() {
        let doc = patch_user(vec![op("replace", Some("emails.display"), Some(json!("D")))]).expect("all");
        assert!(doc["emails"].as_array().is_some_and(|a| a.iter().all(|e| e["display"] == "D")));
        let doc = patch_user(vec![op("remove", Some("emails.type"), None)]).expect("remove sub");
        assert!(doc["emails"].as_array().is_some_and(|a| a.iter().all(|e| e.get("type").is_none())));
        let doc = patch_user(vec![
            op("remove", Some("emails"), None),
            op("add", Some("emails.value"), Some(json!("a@x"))),
        ])
        .expect("first value");
        assert_eq!(doc["emails"], json!([{ "value": "a@x" }]));
    }

    #[test]
    fn entra_sends_the_manager_as_an_id() {
        let path = format!("{ENTERPRISE_URN}:manager");
        let doc = patch_user(vec![op("Add", Some(&path), Some(json!("u9")))]).expect("string");
        assert_eq!(doc[ENTERPRISE_URN]["manager"], json!({ "value": "u9" }));
        let doc = patch_user(vec![op("Add", Some(&path), Some(json!({ "value": "u8" })))]).expect("object");
        assert_eq!(doc[ENTERPRISE_URN]["manager"], json!({ "value": "u8" }));
        let doc =
            patch_user(vec![op("Replace", Some(&format!("{path}.value")), Some(json!("u7")))]).expect("sub");
        assert_eq!(doc[ENTERPRISE_URN]["manager"]["value"], "u7");
        let e = user_error(vec![op("Add", Some(&format!("{path}.displayName")), Some(json!("x")))]);
        assert_eq!(e, "mutability");
        let doc =
            patch_user(vec![op("Add", Some(&path), Some(json!({ "value": "u8", "displayName": "M" })))])
                .expect("read-only sub-attribute dropped from a value");
        assert_eq!(doc[ENTERPRISE_URN]["manager"], json!({ "value": "u8" }));
        let doc = patch_user(vec![op("Replace", Some(&path), Some(json!({ "displayName": "M" })))])
            .expect("nothing writable: unchanged");
        assert_eq!(doc, user());
        let doc = patch_user(vec![op("Remove", Some(&path), None)]).expect("remove");
        assert!(doc[ENTERPRISE_URN].get("manager").is_none());
    }

    #[test]
    fn extension_attributes_with_and_without_urn() {
        let doc = patch_user(vec![
            op("replace", Some(&format!("{ENTERPRISE_URN}:department")), Some(json!("Sales"))),
            op("replace", Some("employeeNumber"), Some(json!("2"))),
        ])
        .expect("patch");
        assert_eq!(doc[ENTERPRISE_URN], json!({ "employeeNumber": "2", "department": "Sales" }));
        let doc = patch_user(vec![
            op("remove", Some(&format!("{ENTERPRISE_URN}:department")), None),
            op("remove", Some(&format!("{ENTERPRISE_URN}:employeeNumber")), None),
        ])
        .expect("remove all");
        assert!(doc.get(ENTERPRISE_URN).is_none());
        assert_eq!(doc["schemas"].as_array().map(Vec::len), Some(1));
    }
}
