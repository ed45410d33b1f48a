//! `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) applied to an output document.

use serde_json::{Map, Value};

use super::{Target, target};
use crate::services::scim::filter::parse_path;
use crate::services::scim::patch::PatchError;
use crate::services::scim::schema::{Attribute, ResourceType, Returned, Schema};

/// One entry of an `attributes` or `excludedAttributes` list.
#[derive(Clone, Copy)]
enum Selector {
    /// A whole extension, named by its URN.
    Schema(&'static Schema),
    Attr(&'static Attribute, Option<&'static Attribute>),
}

/// Which attributes the caller asked for.
enum Request {
    Default,
    Only(Vec<Selector>),
    Excluding(Vec<Selector>),
}

/// Applies `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, comma-separated, paths may carry
/// URNs and sub-attributes) to an output document: `id`, `schemas` and returned=always attributes
/// stay; returned=never never appear; returned=request ones only when asked. Unknown attribute names
/// are ignored; a malformed one is `invalidPath`; giving both lists is `invalidValue`. `schemas` is
/// rewritten to list the core schema and the extensions left in the output.
pub fn project(
    rt: &ResourceType,
    doc: &Value,
    attributes: Option<&str>,
    excluded: Option<&str>,
) -> Result<Value, PatchError> {
    let attributes = attributes.filter(|a| !a.trim().is_empty());
    let excluded = excluded.filter(|a| !a.trim().is_empty());
    let request = match (attributes, excluded) {
        (Some(_), Some(_)) => {
            return Err(PatchError::invalid_value(
                "'attributes' and 'excludedAttributes' are mutually exclusive",
            ));
        }
        (Some(list), None) => Request::Only(selectors(rt, list)?),
        (None, Some(list)) => Request::Excluding(selectors(rt, list)?),
        (None, None) => Request::Default,
    };
    let Some(members) = doc.as_object() else {
        return Ok(doc.clone());
    };
    let mut out = Map::new();
    let mut listed = vec![Value::from(rt.core.id)];
    for (key, value) in members {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let path = parse_path(key).ok().filter(|p| p.filter.is_none() && p.attr.sub.is_none());
        match path.map(|p| target(rt, &p.attr)) {
            Some(Ok(Target::Attr { schema, attr, sub: None })) if std::ptr::eq(schema, rt.core) => {
                if let Some(kept) = keep(attr, value, rt.core, &request) {
                    out.insert(key.clone(), kept);
                }
            }
            Some(Ok(Target::Schema(s))) if !std::ptr::eq(s, rt.core) => {
                if let Some(kept) = extension(s, value, &request) {
                    listed.push(s.id.into());
                    out.insert(key.clone(), kept);
                }
            }
            _ if matches!(request, Request::Only(_)) => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out.insert("schemas".into(), Value::Array(listed));
    Ok(Value::Object(out))
}

/// Parses a comma-separated list; names that resolve to nothing are left out.
fn selectors(rt: &ResourceType, list: &str) -> Result<Vec<Selector>, PatchError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let path = parse_path(item).map_err(|e| PatchError::invalid_path(format!("'{item}': {e}")))?;
        if path.filter.is_some() {
            return Err(PatchError::invalid_path(format!("'{item}' cannot hold a filter")));
        }
        match target(rt, &path.attr) {
            Ok(Target::Schema(s)) => out.push(Selector::Schema(s)),
            Ok(Target::Attr { attr, sub, .. }) => out.push(Selector::Attr(attr, sub)),
            Ok(Target::Ignored) | Err(_) => {}
        }
    }
    Ok(out)
}

/// An extension's object, each attribute projected; None when nothing is left.
fn extension(s: &'static Schema, value: &Value, request: &Request) -> Option<Value> {
    let members = value.as_object()?;
    let mut out = Map::new();
    for (key, value) in members {
        let Some(attr) = crate::services::scim::schema::find(s.attributes, key) else { continue };
        if let Some(kept) = keep(attr, value, s, request) {
            out.insert(key.clone(), kept);
        }
    }
    Some(Value::Object(out)).filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
}

/// What is left of one attribute's value, or None when it is not returned.
fn keep(attr: &'static Attribute, value: &Value, s: &'static Schema, request: &Request) -> Option<Value> {
    if attr.returned == Returned::Never {
        return None;
    }
    if attr.returned == Returned::Always {
        return Some(value.clone());
    }
    let whole = |selectors: &[Selector]| {
        selectors.iter().any(|sel| match sel {
            Selector::Schema(x) => std::ptr::eq(*x, s),
            Selector::Attr(a, None) => std::ptr::eq(*a, attr),
            Selector::Attr(_, Some(_)) => false,
        })
    };
    let subs = |selectors: &[Selector]| -> Vec<&'static Attribute> {
        selectors
            .iter()
            .filter_map(|sel| match sel {
                Selector::Attr(a, Some(sub)) if std::ptr::eq(*a, attr) => Some(*sub),
                _ => None,
            })
            .collect()
    };
    match request {
        Request::Default if attr.returned == Returned::Request => None,
        Request::Default => sub_filtered(attr, value, |sub| sub.returned != Returned::Request),
        Request::Only(sel) if whole(sel) => {
            sub_filtered(attr, value, |sub| sub.returned != Returned::Request)
        }
        Request::Only(sel) => {
            let asked = subs(sel);
            if asked.is_empty() {
                return None;
            }
            sub_filtered(attr, value, |sub| {
                sub.returned == Returned::Always || asked.iter().any(|a| std::ptr::eq(*a, sub))
            })
        }
        Request::Excluding(_) if attr.returned == Returned::Request => None,
        Request::Excluding(sel) if whole(sel) => None,
        Request::Excluding(sel) => {
            let dropped = subs(sel);
            sub_filtered(attr, value, |sub| {
                sub.returned == Returned::Always
                    || (sub.returned != Returned::Request && !dropped.iter().any(|a| std::ptr::eq(*a, sub)))
            })
        }
    }
}

/// The value with only the sub-attributes `keep_sub` accepts (never the returned=never ones);
/// None when a complex value is left empty. Simple values are returned as they are.
fn sub_filtered(attr: &Attribute, value: &Value, keep_sub: impl Fn(&Attribute) -> bool) -> Option<Value> {
    if attr.sub.is_empty() {
        return Some(value.clone());
    }
    let filter_one = |v: &Value| -> Option<Value> {
        let members = v.as_object()?;
        let kept: Map<String, Value> = members
            .iter()
            .filter(|(k, _)| {
                crate::services::scim::schema::find(attr.sub, k)
                    .is_some_and(|sub| sub.returned != Returned::Never && keep_sub(sub))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Some(Value::Object(kept)).filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
    };
    match value {
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(filter_one).collect();
            Some(Value::Array(kept)).filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        }
        v => filter_one(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::scim::schema::{ENTERPRISE_URN, GROUP, USER, USER_URN};
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "id": "u1",
            "externalId": "e1",
            "userName": "bjensen",
            "name": { "givenName": "Barbara", "familyName": "Jensen" },
            "emails": [{ "value": "b@x.test", "type": "work", "primary": true }],
            "active": true,
            "meta": { "resourceType": "User", "location": "https://x.test/Users/u1" },
            ENTERPRISE_URN: { "department": "Tour", "employeeNumber": "7" }
        })
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default()
    }

    #[test]
    fn default_returns_everything() {
        assert_eq!(project(&USER, &user(), None, None), Ok(user()));
        assert_eq!(project(&USER, &user(), Some(" "), Some("")), Ok(user()));
    }

    #[test]
    fn attributes_keep_only_what_is_asked_plus_always() {
        let out = project(&USER, &user(), Some("externalId"), None).expect("project");
        assert_eq!(keys(&out), ["externalId", "id", "schemas"]);
        assert_eq!(out["schemas"], json!([USER_URN]));
        let out = project(&USER, &user(), Some("name.givenName, emails.value"), None).expect("sub");
        assert_eq!(out["name"], json!({ "givenName": "Barbara" }));
        assert_eq!(out["emails"], json!([{ "value": "b@x.test" }]));
        let out =
            project(&USER, &user(), Some("USERNAME,urn:ietf:params:scim:schemas:core:2.0:User:active"), None)
                .expect("case and core urn");
        assert_eq!(keys(&out), ["active", "id", "schemas", "userName"]);
    }

    #[test]
    fn attributes_reach_into_extensions() {
        let out =
            project(&USER, &user(), Some(&format!("{ENTERPRISE_URN}:department")), None).expect("ext attr");
        assert_eq!(out[ENTERPRISE_URN], json!({ "department": "Tour" }));
        assert_eq!(out["schemas"], json!([USER_URN, ENTERPRISE_URN]));
        let out = project(&USER, &user(), Some(ENTERPRISE_URN), None).expect("whole ext");
        assert_eq!(out[ENTERPRISE_URN], user()[ENTERPRISE_URN]);
    }

    #[test]
    fn excluded_attributes_drop_what_is_named_but_never_id() {
        let out = project(&USER, &user(), None, Some("name,id,emails.primary")).expect("exclude");
        assert!(out.get("name").is_none());
        assert_eq!(out["id"], "u1");
        assert_eq!(out["emails"], json!([{ "value": "b@x.test", "type": "work" }]));
        assert_eq!(out["meta"], user()["meta"]);
        let out = project(&USER, &user(), None, Some(ENTERPRISE_URN)).expect("exclude ext");
        assert!(out.get(ENTERPRISE_URN).is_none());
        assert_eq!(out["schemas"], json!([USER_URN]));
        let out = project(
            &USER,
            &user(),
            None,
            Some(&format!("{ENTERPRISE_URN}:department,{ENTERPRISE_URN}:employeeNumber")),
        )
        .expect("exclude all ext attrs");
        assert!(out.get(ENTERPRISE_URN).is_none());
    }

    #[test]
    fn unknown_names_are_ignored_and_malformed_ones_refused() {
        let out = project(&USER, &user(), Some("nickName,title"), None).expect("unknown");
        assert_eq!(keys(&out), ["id", "schemas"]);
        let e = project(&USER, &user(), Some("emails[type eq \"work\"]"), None).expect_err("filter");
        assert_eq!(e.scim_type, "invalidPath");
        let e = project(&USER, &user(), Some("a b"), None).expect_err("malformed");
        assert_eq!(e.scim_type, "invalidPath");
        let e = project(&USER, &user(), Some("name"), Some("name")).expect_err("both");
        assert_eq!(e.scim_type, "invalidValue");
    }

    #[test]
    fn groups_project_members() {
        let group = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": "g1",
            "displayName": "Ops",
            "members": [{ "value": "u1", "display": "B" }]
        });
        let out = project(&GROUP, &group, Some("members.value"), None).expect("members");
        assert_eq!(out["members"], json!([{ "value": "u1" }]));
        let out = project(&GROUP, &group, None, Some("members")).expect("no members");
        assert_eq!(keys(&out), ["displayName", "id", "schemas"]);
    }
}
