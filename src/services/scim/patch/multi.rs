//! Operations on multi-valued attributes: appending, value filters (`emails[type eq "work"].value`),
//! removal by listed values, and the single `primary` rule.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::{Map, Value};

use super::single::{check_immutable, check_writable, current, merge_into, set_member, store, take};
use super::{Op, PatchError, Site, sub_case_exact};
use crate::services::scim::document::{self, Mode};
use crate::services::scim::filter::{CompValue, CompareOp, Filter, matches};
use crate::services::scim::schema::{self, Attribute};

/// What identifies an entry: its `value` when the attribute requires one (members), else the
/// whole entry.
fn identity<'a>(attr: &Attribute, entry: &'a Value) -> Cow<'a, str> {
    let keyed = schema::find(attr.sub, "value").is_some_and(|s| s.required);
    match entry.get("value") {
        Some(Value::String(value)) if keyed => Cow::Borrowed(value),
        Some(value) if keyed => Cow::Owned(value.to_string()),
        _ => Cow::Owned(entry.to_string()),
    }
}

/// Appends checked values, skipping those already present (RFC 7644 §3.5.2.1), in one pass over
/// the existing ones.
pub(super) fn append(
    holder: &mut Map<String, Value>,
    site: &Site,
    new: Vec<Value>,
) -> Result<(), PatchError> {
    let mut items = existing(holder, site);
    let keys: Vec<String> = new.iter().map(|v| identity(site.attr, v).into_owned()).collect();
    let mut wanted: HashSet<&str> = keys.iter().map(String::as_str).collect();
    for item in &items {
        wanted.remove(identity(site.attr, item).as_ref());
    }
    let mut touched = Vec::new();
    for (value, key) in new.into_iter().zip(&keys) {
        if wanted.remove(key.as_str()) {
            touched.push(items.len());
            items.push(value);
        }
    }
    settle_primary(&mut items, &touched);
    store(holder, site.attr.name, Some(Value::Array(items)));
    Ok(())
}

/// The attribute's values; a lone value is read as a one-value array.
fn existing(holder: &mut Map<String, Value>, site: &Site) -> Vec<Value> {
    match take(holder, site.attr.name) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(single) => vec![single],
    }
}

/// When a written value is primary, the others stop being (RFC 7643 §2.4, RFC 7644 §3.5.2).
pub(super) fn settle_primary(items: &mut [Value], touched: &[usize]) {
    let primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
    if !touched.iter().any(|&i| items.get(i).is_some_and(primary)) {
        return;
    }
    let touched: HashSet<usize> = touched.iter().copied().collect();
    for (index, item) in items.iter_mut().enumerate() {
        if !touched.contains(&index)
            && primary(item)
            && let Value::Object(members) = item
        {
            members.insert("primary".into(), Value::Bool(false));
        }
    }
}

/// Removes the values matching any of the listed ones (`{"op":"remove","path":"members",
/// "value":[{"value":"id"}]}`, as Microsoft Entra sends it). Members are matched by `value`; for
/// other attributes a listed value matches a value whose sub-attributes equal all its non-null ones.
pub(super) fn remove_listed(
    holder: &mut Map<String, Value>,
    site: &Site,
    listed: &Value,
) -> Result<(), PatchError> {
    let listed = match listed {
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    if listed.iter().any(|l| !l.is_object()) {
        return Err(PatchError::invalid_value(format!("a remove from '{}' lists objects", site.label)));
    }
    if listed.len() > site.attr.max_items {
        return Err(PatchError::invalid_value(format!(
            "a remove from '{}' lists too many values",
            site.label
        )));
    }
    let mut items = existing(holder, site);
    match listed_values(site.attr, listed) {
        Some(values) => {
            items.retain(|item| !item.get("value").is_some_and(|v| values.contains(&folded(site.attr, v))))
        }
        None => items.retain(|item| !listed.iter().any(|l| selects(site.attr, l, item))),
    }
    store(holder, site.attr.name, Some(Value::Array(items)));
    Ok(())
}

/// For an attribute whose entries are identified by their `value` (members), the listed values'
/// `value`s in the form [`folded`] gives, other sub-attributes disregarded (`display` is never
/// stored); None when the attribute is not keyed or a listed value has no `value`.
fn listed_values(attr: &Attribute, listed: &[Value]) -> Option<HashSet<String>> {
    if !schema::find(attr.sub, "value").is_some_and(|s| s.required) {
        return None;
    }
    let mut values = HashSet::new();
    for l in listed {
        let value = l.as_object().and_then(|m| current(m, "value")).filter(|v| !v.is_null())?;
        values.insert(folded(attr, value));
    }
    Some(values)
}

/// A `value` sub-attribute as [`selects`] compares it: lowercase unless it is caseExact.
fn folded(attr: &Attribute, value: &Value) -> String {
    let exact = schema::find(attr.sub, "value").is_some_and(|s| s.case_exact);
    match value.as_str() {
        Some(s) if !exact => s.to_lowercase(),
        _ => value.to_string(),
    }
}

/// Whether a listed value selects an item: every non-null member equal (strings compared
/// case-insensitively unless the sub-attribute is caseExact); a listed value of nulls selects nothing.
fn selects(attr: &Attribute, listed: &Value, item: &Value) -> bool {
    let Some(members) = listed.as_object() else { return false };
    let mut compared = false;
    for (key, want) in members.iter().filter(|(_, v)| !v.is_null()) {
        let Some(have) = item.as_object().and_then(|m| current(m, key)) else { return false };
        let exact = schema::find(attr.sub, key).is_some_and(|s| s.case_exact);
        let equal = match (have, want) {
            (Value::String(a), Value::String(b)) if !exact => a.to_lowercase() == b.to_lowercase(),
            (a, b) => a == b,
        };
        if !equal {
            return false;
        }
        compared = true;
    }
    compared
}

/// One operation on `attr[filter]` or `attr[filter].sub` (RFC 7644 §3.5.2). A `remove` matching
/// nothing changes nothing; a `replace` matching nothing is `noTarget` (§3.5.2.3); an `add` matching
/// nothing creates the value the filter describes when it is `eq` comparisons joined by `and`
/// (Microsoft Entra's `emails[type eq "work"].value`), else `noTarget`.
pub(super) fn filtered(
    holder: &mut Map<String, Value>,
    site: &Site,
    filter: &Filter,
    sub: Option<&'static Attribute>,
    op: Op,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    if !site.attr.multi || site.attr.sub.is_empty() {
        return Err(PatchError::invalid_path(format!(
            "'{}' is not a multi-valued complex attribute: it takes no value filter",
            site.label
        )));
    }
    check_writable(site.attr, &site.label, false)?;
    let (op, value) = match (op, value) {
        (Op::Replace | Op::Remove, Some(Value::Null)) | (Op::Remove, _) => (Op::Remove, None),
        (op, value) => (op, value),
    };
    if let Some(sub) = sub {
        check_writable(sub, &format!("{}.{}", site.label, sub.name), op == Op::Remove)?;
    }
    let mut items = existing(holder, site);
    let exact = sub_case_exact(site.attr);
    let matched: Vec<usize> = (0..items.len()).filter(|&i| matches(filter, &items[i], &exact)).collect();
    let touched = match (op, matched.is_empty(), value) {
        (Op::Remove, _, _) => {
            remove_matched(&mut items, site, sub, &matched)?;
            Vec::new()
        }
        // A filter that matches nothing and describes the value it wants (`eq` terms joined by
        // `and`) creates it, for `replace` too: Entra replaces `emails[type eq "work"].value` on
        // a user that has no work address yet. Other filters are `noTarget` (RFC 7644 §3.5.2.3).
        (Op::Replace | Op::Add, true, Some(v)) => vec![create(&mut items, site, filter, sub, v)?],
        (_, false, Some(v)) => {
            write_matched(&mut items, site, sub, op, v, &matched)?;
            matched
        }
        (_, _, None) => return Err(PatchError::invalid_value("the operation needs a value")),
    };
    settle_primary(&mut items, &touched);
    store(holder, site.attr.name, Some(Value::Array(items)));
    Ok(())
}

/// Removes the matched values, or their sub-attribute (values left empty go too).
fn remove_matched(
    items: &mut Vec<Value>,
    site: &Site,
    sub: Option<&Attribute>,
    matched: &[usize],
) -> Result<(), PatchError> {
    let Some(sub) = sub else {
        let mut keep = vec![true; items.len()];
        for &i in matched {
            keep[i] = false;
        }
        let mut index = 0;
        items.retain(|_| {
            index += 1;
            keep[index - 1]
        });
        return Ok(());
    };
    let label = format!("{}.{}", site.label, sub.name);
    check_writable(sub, &label, true)?;
    for &i in matched {
        if let Some(Value::Object(members)) = items.get_mut(i) {
            check_immutable(sub, &label, current(members, sub.name), None)?;
            take(members, sub.name);
        }
    }
    items.retain(|i| i.as_object().is_some_and(|m| !m.is_empty()));
    Ok(())
}

/// Writes the value into each matched value: a sub-attribute set, or a whole value merged
/// (`add`) or replaced (`replace`).
fn write_matched(
    items: &mut [Value],
    site: &Site,
    sub: Option<&'static Attribute>,
    op: Op,
    v: &Value,
    matched: &[usize],
) -> Result<(), PatchError> {
    if let Some(sub) = sub {
        let label = format!("{}.{}", site.label, sub.name);
        check_writable(sub, &label, false)?;
        let new = site.checked_sub(sub, v)?;
        for &i in matched {
            set_member(&mut items[i], sub, &label, new.clone())?;
        }
        return Ok(());
    }
    let Some(Value::Object(new)) = document::single_value(site.attr, v, &site.label, Mode::Input)? else {
        return Err(PatchError::invalid_value(format!("'{}' needs an object value", site.label)));
    };
    for &i in matched {
        let Value::Object(object) = &mut items[i] else { continue };
        if op == Op::Replace {
            for sub in site.attr.sub {
                let label = format!("{}.{}", site.label, sub.name);
                let old = current(object, sub.name);
                if old.is_some() && new.contains_key(sub.name) {
                    check_immutable(sub, &label, old, new.get(sub.name))?;
                }
            }
            *object = new.clone();
        } else {
            merge_into(object, site, new.clone())?;
        }
    }
    Ok(())
}

/// Appends the value a filter of `eq` comparisons describes, with the operation's value written
/// into it; returns its index.
fn create(
    items: &mut Vec<Value>,
    site: &Site,
    filter: &Filter,
    sub: Option<&Attribute>,
    v: &Value,
) -> Result<usize, PatchError> {
    let no_target = || PatchError::no_target(format!("the filter on '{}' matches no value", site.label));
    let mut entry = Map::new();
    if !described(filter, site.attr, &mut entry) {
        return Err(no_target());
    }
    match (sub, v) {
        (Some(sub), v) => {
            entry.insert(sub.name.to_string(), v.clone());
        }
        (None, Value::Object(members)) => entry.extend(members.clone()),
        (None, _) => {
            return Err(PatchError::invalid_value(format!("'{}' needs an object value", site.label)));
        }
    }
    let checked = document::single_value(site.attr, &Value::Object(entry), &site.label, Mode::Input)?;
    let checked = checked.ok_or_else(no_target)?;
    items.push(checked);
    Ok(items.len() - 1)
}

/// Collects the `sub eq value` comparisons of a filter made only of them and `and`.
fn described(filter: &Filter, attr: &Attribute, entry: &mut Map<String, Value>) -> bool {
    match filter {
        Filter::And(a, b) => described(a, attr, entry) && described(b, attr, entry),
        Filter::Compare(p, CompareOp::Eq, value) => {
            let Some(sub) = schema::find(attr.sub, &p.name) else { return false };
            let value = match value {
                CompValue::Str(s) => Value::from(s.as_str()),
                CompValue::Num(n) => Value::Number(n.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Null => return false,
            };
            entry.insert(sub.name.to_string(), value);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{group, op, patch_group, patch_user, user, user_error};
    use serde_json::{Value, json};

    fn group_error(operations: Vec<Value>) -> &'static str {
        match patch_group(operations) {
            Ok(doc) => panic!("accepted: {doc}"),
            Err(e) => e.scim_type,
        }
    }

    fn member_ids(doc: &Value) -> Vec<&str> {
        doc["members"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["value"].as_str()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn entra_adds_a_work_email_by_filter() {
        let path = r#"emails[type eq "work"].value"#;
        let doc = patch_user(vec![op("Add", Some(path), Some(json!("new@x.test")))]).expect("existing");
        assert_eq!(doc["emails"][0], json!({ "value": "new@x.test", "type": "work", "primary": true }));
        assert_eq!(doc["emails"][1], user()["emails"][1]);
        let doc = patch_user(vec![
            op("remove", Some("emails"), None),
            op("Add", Some(path), Some(json!("w@x.test"))),
        ])
        .expect("created from the filter");
        assert_eq!(doc["emails"], json!([{ "type": "work", "value": "w@x.test" }]));
        let doc = patch_user(vec![op(
            "Add",
            Some(r#"emails[type eq "other" and display eq "O"]"#),
            Some(json!({ "value": "o@x" })),
        )])
        .expect("created from an and of eq");
        assert_eq!(doc["emails"][2], json!({ "type": "other", "display": "O", "value": "o@x" }));
    }

    #[test]
    fn replace_by_filter_matches_or_creates_what_it_describes() {
        let path = r#"emails[type eq "WORK"].value"#;
        let doc = patch_user(vec![op("Replace", Some(path), Some(json!("r@x.test")))])
            .expect("match, case-insensitive");
        assert_eq!(doc["emails"][0]["value"], "r@x.test");
        let none = r#"emails[type eq "other"].value"#;
        let doc = patch_user(vec![op("Replace", Some(none), Some(json!("o@x.test")))]).expect("created");
        let emails = doc["emails"].as_array().expect("emails");
        assert!(emails.iter().any(|e| e["type"] == "other" && e["value"] == "o@x.test"), "{doc}");
        let not_eq_replace = r#"emails[value co "nowhere"].value"#;
        assert_eq!(
            user_error(vec![op("Replace", Some(not_eq_replace), Some(json!("r@x.test")))]),
            "noTarget"
        );
        let not_eq = r#"emails[value co "nowhere"].value"#;
        assert_eq!(user_error(vec![op("Add", Some(not_eq), Some(json!("r@x.test")))]), "noTarget");
        let whole = json!({ "value": "h@x.test", "type": "home" });
        let doc = patch_user(vec![op("replace", Some(r#"emails[type eq "home"]"#), Some(whole.clone()))])
            .expect("whole");
        assert_eq!(doc["emails"][1], whole);
    }

    #[test]
    fn add_by_filter_merges_into_matches() {
        let doc = patch_user(vec![op(
            "add",
            Some(r#"emails[type eq "home"]"#),
            Some(json!({ "display": "Home" })),
        )])
        .expect("merge");
        assert_eq!(
            doc["emails"][1],
            json!({ "value": "babs@home.example", "type": "home", "display": "Home" })
        );
        assert_eq!(
            user_error(vec![op("add", Some(r#"emails[type eq "home"]"#), Some(json!("x")))]),
            "invalidValue"
        );
    }

    #[test]
    fn primary_by_filter_demotes_the_others() {
        let doc =
            patch_user(vec![op("replace", Some(r#"emails[type eq "home"].primary"#), Some(json!(true)))])
                .expect("primary");
        assert_eq!(
            (&doc["emails"][0]["primary"], &doc["emails"][1]["primary"]),
            (&json!(false), &json!(true))
        );
    }

    #[test]
    fn remove_by_filter() {
        let doc = patch_user(vec![op("remove", Some(r#"emails[type eq "home"]"#), None)]).expect("remove");
        assert_eq!(doc["emails"], json!([user()["emails"][0].clone()]));
        let doc = patch_user(vec![op("remove", Some(r#"emails[value ew "nowhere"]"#), None)])
            .expect("no match is fine");
        assert_eq!(doc, user());
        let doc = patch_user(vec![op("remove", Some(r#"emails[type pr]"#), None)]).expect("all");
        assert!(doc.get("emails").is_none());
        let doc =
            patch_user(vec![op("remove", Some(r#"emails[type eq "work"].primary"#), None)]).expect("sub");
        assert_eq!(doc["emails"][0], json!({ "value": "bjensen@example.com", "type": "work" }));
    }

    #[test]
    fn filters_need_a_multi_valued_complex_attribute_and_valid_syntax() {
        assert_eq!(
            user_error(vec![op("add", Some(r#"name[givenName eq "B"]"#), Some(json!({})))]),
            "invalidPath"
        );
        assert_eq!(
            user_error(vec![op("add", Some(r#"emails[type eq "work"].nope"#), Some(json!("x")))]),
            "invalidPath"
        );
        assert_eq!(
            user_error(vec![op("add", Some(r#"emails[type eq work].value"#), Some(json!("x")))]),
            "invalidFilter"
        );
        assert_eq!(
            user_error(vec![op("add", Some(r#"emails[type eq "work""#), Some(json!("x")))]),
            "invalidPath",
            "an unclosed bracket is a malformed path"
        );
    }

    #[test]
    fn entra_removes_a_member_by_filter() {
        let doc = patch_group(vec![op("Remove", Some(r#"members[value eq "u1"]"#), None)]).expect("remove");
        assert_eq!(member_ids(&doc), ["u2"]);
        let doc = patch_group(vec![op("Remove", Some(r#"members[value eq "U1"]"#), None)])
            .expect("members.value is not caseExact");
        assert_eq!(member_ids(&doc), ["u2"]);
        let doc = patch_group(vec![
            op("Remove", Some(r#"members[value eq "u1"]"#), None),
            op("Remove", Some(r#"members[value eq "u2"]"#), None),
        ])
        .expect("remove all");
        assert!(doc.get("members").is_none());
    }

    #[test]
    fn entra_adds_members_and_duplicates_are_skipped() {
        let doc =
            patch_group(vec![op("Add", Some("members"), Some(json!([{ "value": "u3" }])))]).expect("add");
        assert_eq!(member_ids(&doc), ["u1", "u2", "u3"]);
        let again =
            json!([{ "value": "u1", "$ref": null, "display": "someone" }, { "value": "u4", "$ref": null }]);
        let doc = patch_group(vec![op("Add", Some("members"), Some(again))]).expect("dedupe by value");
        assert_eq!(member_ids(&doc), ["u1", "u2", "u4"]);
        assert_eq!(doc["members"][0], group()["members"][0]);
        assert_eq!(doc["members"][2], json!({ "value": "u4" }));
    }

    #[test]
    fn entra_removes_members_listed_in_the_value() {
        let listed = json!([{ "$ref": null, "value": "u2" }]);
        let doc = patch_group(vec![op("Remove", Some("members"), Some(listed))]).expect("remove listed");
        assert_eq!(member_ids(&doc), ["u1"]);
        let doc = patch_group(vec![op("Remove", Some("members"), Some(json!({ "value": "u9" })))])
            .expect("no match");
        assert_eq!(member_ids(&doc), ["u1", "u2"]);
        let doc = patch_group(vec![op("Remove", Some("members"), Some(json!([{ "$ref": null }])))])
            .expect("selects none");
        assert_eq!(member_ids(&doc), ["u1", "u2"]);
        assert_eq!(group_error(vec![op("Remove", Some("members"), Some(json!(["u1"])))]), "invalidValue");
        let with_display = json!([{ "value": "U2", "display": "never stored", "type": "User" }]);
        let doc =
            patch_group(vec![op("Remove", Some("members"), Some(with_display))]).expect("by value only");
        assert_eq!(member_ids(&doc), ["u1"]);
        let by_ref = json!([{ "$ref": "https://x.test/scim/v2/Users/u1" }]);
        let doc =
            patch_group(vec![op("Remove", Some("members"), Some(by_ref))]).expect("by other sub-attributes");
        assert_eq!(member_ids(&doc), ["u2"]);
        let listed = json!({ "value": "home@x", "type": "home" });
        let doc = patch_user(vec![op("Remove", Some("emails"), Some(listed))]).expect("emails: every member");
        assert_eq!(doc["emails"], user()["emails"]);
        let listed = json!({ "value": "BABS@home.example", "type": "home" });
        let doc = patch_user(vec![op("Remove", Some("emails"), Some(listed))]).expect("emails: matched");
        assert_eq!(doc["emails"], json!([user()["emails"][0].clone()]));
    }

    #[test]
    fn okta_replaces_all_members() {
        let value = json!([{ "value": "u8", "display": "x@y" }, { "value": "u9", "display": "z@y" }]);
        let doc = patch_group(vec![op("replace", Some("members"), Some(value))]).expect("replace");
        assert_eq!(doc["members"], json!([{ "value": "u8" }, { "value": "u9" }]));
        let doc = patch_group(vec![op("replace", Some("members"), Some(json!([])))]).expect("empty");
        assert!(doc.get("members").is_none());
    }

    #[test]
    fn members_keep_their_identity() {
        let path = r#"members[value eq "u1"].value"#;
        assert_eq!(group_error(vec![op("replace", Some(path), Some(json!("u5")))]), "mutability");
        assert_eq!(group_error(vec![op("remove", Some(path), None)]), "mutability");
        assert_eq!(group_error(vec![op("replace", Some("members.value"), Some(json!("u5")))]), "mutability");
        let whole = json!({ "value": "u5" });
        assert_eq!(
            group_error(vec![op("replace", Some(r#"members[value eq "u1"]"#), Some(whole))]),
            "mutability"
        );
        let display = r#"members[value eq "u1"].display"#;
        assert_eq!(group_error(vec![op("replace", Some(display), Some(json!("x")))]), "mutability");
        let unmatched = r#"members[value eq "u7"].display"#;
        assert_eq!(group_error(vec![op("add", Some(unmatched), Some(json!("x")))]), "mutability");
        let doc =
            patch_group(vec![op("add", Some(r#"members[value eq "u7"]"#), Some(json!({ "type": "User" })))])
                .expect("created from the filter");
        assert_eq!(doc["members"][2], json!({ "value": "u7", "type": "User" }));
        assert_eq!(
            group_error(vec![op("replace", Some("members"), Some(json!([{ "display": "x" }])))]),
            "invalidValue"
        );
        let doc = patch_group(vec![op(
            "add",
            Some(r#"members[value eq "u2"].$ref"#),
            Some(json!("https://x.test/Users/u2")),
        )])
        .expect("an immutable value may be set once");
        assert_eq!(doc["members"][1]["$ref"], "https://x.test/Users/u2");
    }

    #[test]
    fn members_are_users_with_an_id() {
        assert_eq!(
            group_error(vec![op("add", Some("members"), Some(json!([{ "value": "g2", "type": "Group" }])))]),
            "invalidValue"
        );
        let doc =
            patch_group(vec![op("add", Some("members"), Some(json!([{ "value": "u3", "type": "user" }])))])
                .expect("canonical spelling");
        assert_eq!(doc["members"][2], json!({ "value": "u3", "type": "User" }));
        assert_eq!(
            group_error(vec![op("add", Some("members"), Some(json!([{ "type": "User" }])))]),
            "invalidValue"
        );
        let many: Vec<Value> = (0..10_001).map(|i| json!({ "value": format!("u{i}") })).collect();
        assert_eq!(
            group_error(vec![op("replace", Some("members"), Some(Value::Array(many)))]),
            "invalidValue"
        );
        let enough: Vec<Value> = (0..10_000).map(|i| json!({ "value": format!("u{i}") })).collect();
        assert!(patch_group(vec![op("replace", Some("members"), Some(Value::Array(enough)))]).is_ok());
    }

    #[test]
    fn janua_role_is_one_of_the_canonical_values() {
        let path = "urn:janua:params:scim:schemas:extension:2.0:Group:role";
        let doc = patch_group(vec![op("replace", Some(path), Some(json!("Admin")))]).expect("admin");
        assert_eq!(doc["urn:janua:params:scim:schemas:extension:2.0:Group"]["role"], "admin");
        assert_eq!(group_error(vec![op("replace", Some(path), Some(json!("owner")))]), "invalidValue");
        let doc = patch_group(vec![op("replace", Some("role"), Some(json!("viewer")))]).expect("without urn");
        assert_eq!(doc["urn:janua:params:scim:schemas:extension:2.0:Group"]["role"], "viewer");
    }
}
