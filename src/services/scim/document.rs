//! Resource documents: validation and normalisation of POST/PUT bodies (RFC 7643), resolution of
//! attribute paths against a resource type, and `attributes`/`excludedAttributes` projection
//! (RFC 7644 §3.4.2.5).
//!
//! A stored document has its attributes under their schema spelling, extension attributes inside
//! an object under the extension's URN, and a `schemas` member listing the core schema and the
//! extensions present. It never holds `meta` (the caller adds it on output).

use serde_json::{Map, Value};

use super::filter::parse_path;
use super::patch::PatchError;
use super::schema::{self, Attribute, Kind, ResourceType, Schema};

mod project;
mod resolve;
mod values;

pub use project::project;
pub(crate) use resolve::{Target, label, target};
pub use resolve::{is_case_exact, resolve};
pub(crate) use values::{attribute_value, depth_within, single_value};

/// How a document is checked: a client's body, or a document that was stored and then patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Read-only attributes are dropped; `schemas` must list the core schema.
    Input,
    /// Read-only attributes are kept as they are (the server wrote them).
    Stored,
}

/// Checks a POST/PUT body against the resource type and returns the stored document: canonical
/// attribute names, types checked (the strings `"true"`/`"false"` are accepted for booleans), read-only
/// attributes dropped, attributes of unknown schemas and RFC 7643 attributes Janua does not store
/// dropped, other unknown attributes refused (`invalidValue`), required attributes present, strings
/// of at most 1,024 characters, multi-valued attributes of at most 100 values (`members`: 10,000), at
/// most one `primary: true`. `schemas` must list the core schema; the output's `schemas` lists the
/// core schema and the extensions present.
pub fn normalise(rt: &ResourceType, body: &Value) -> Result<Value, PatchError> {
    document(rt, body, Mode::Input)
}

/// Checks a stored document after changes (PATCH): the same rules as [`normalise`], except that
/// read-only attributes are kept as they are and `schemas` is recomputed rather than checked.
pub fn validate(rt: &ResourceType, doc: &Value) -> Result<Value, PatchError> {
    document(rt, doc, Mode::Stored)
}

/// Deepest nesting of arrays and objects a document may have.
const MAX_DOCUMENT_DEPTH: usize = 8;

fn document(rt: &ResourceType, body: &Value, mode: Mode) -> Result<Value, PatchError> {
    let Some(members) = body.as_object() else {
        return Err(PatchError::invalid_syntax("a resource must be a JSON object"));
    };
    if !depth_within(body, MAX_DOCUMENT_DEPTH) {
        return Err(PatchError::invalid_value("the resource is nested too deeply"));
    }
    if mode == Mode::Input {
        check_schemas(rt, members)?;
    }
    let mut core = Map::new();
    let mut extensions: Vec<(&'static Schema, Map<String, Value>)> = Vec::new();
    for (key, value) in members {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let path = parse_path(key).ok().filter(|p| p.filter.is_none()).map(|p| p.attr);
        let target = path.as_ref().map(|p| target(rt, p));
        match target {
            Some(Ok(Target::Ignored)) => {}
            Some(Ok(Target::Schema(s))) if !std::ptr::eq(s, rt.core) => {
                let slot = extension_slot(&mut extensions, s);
                extension_members(rt, s, value, slot, mode)?;
            }
            Some(Ok(Target::Attr { schema, attr, sub: None })) => {
                let slot = if std::ptr::eq(schema, rt.core) {
                    &mut core
                } else {
                    extension_slot(&mut extensions, schema)
                };
                put(rt, schema, attr, value, slot, mode)?;
            }
            _ => return Err(PatchError::invalid_value(format!("unknown attribute '{}'", shown(key)))),
        }
    }
    required(rt, rt.core, &core)?;
    let mut listed = vec![Value::from(rt.core.id)];
    for s in rt.extensions {
        if let Some((_, m)) = extensions.iter_mut().find(|(e, _)| std::ptr::eq(*e, *s)) {
            required(rt, s, m)?;
            if !m.is_empty() {
                listed.push(s.id.into());
                core.insert(s.id.to_string(), Value::Object(std::mem::take(m)));
            }
        }
    }
    core.insert("schemas".into(), Value::Array(listed));
    Ok(Value::Object(core))
}

/// `schemas` must be an array of strings naming the core schema.
fn check_schemas(rt: &ResourceType, members: &Map<String, Value>) -> Result<(), PatchError> {
    let schemas = members.iter().find(|(k, _)| k.eq_ignore_ascii_case("schemas")).map(|(_, v)| v);
    let lists_core = schemas
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(rt.core.id))));
    if lists_core {
        return Ok(());
    }
    Err(PatchError::invalid_value(format!("'schemas' must list {}", rt.core.id)))
}

fn extension_slot<'a>(
    extensions: &'a mut Vec<(&'static Schema, Map<String, Value>)>,
    s: &'static Schema,
) -> &'a mut Map<String, Value> {
    let index = match extensions.iter().position(|(e, _)| std::ptr::eq(*e, s)) {
        Some(index) => index,
        None => {
            extensions.push((s, Map::new()));
            extensions.len() - 1
        }
    };
    &mut extensions[index].1
}

/// The members of an extension's object, checked into `slot`.
fn extension_members(
    rt: &ResourceType,
    s: &'static Schema,
    value: &Value,
    slot: &mut Map<String, Value>,
    mode: Mode,
) -> Result<(), PatchError> {
    let members = match value {
        Value::Null => return Ok(()),
        Value::Object(members) => members,
        _ => return Err(PatchError::invalid_value(format!("'{}' must be an object", s.id))),
    };
    for (key, value) in members {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let Some(attr) = schema::find(s.attributes, key) else {
            return Err(PatchError::invalid_value(format!("unknown attribute '{}:{}'", s.id, shown(key))));
        };
        put(rt, s, attr, value, slot, mode)?;
    }
    Ok(())
}

/// Checks one attribute's value and stores it in `slot` under its canonical name.
fn put(
    rt: &ResourceType,
    s: &Schema,
    attr: &'static Attribute,
    value: &Value,
    slot: &mut Map<String, Value>,
    mode: Mode,
) -> Result<(), PatchError> {
    if attr.name == "meta" {
        return Ok(());
    }
    if attr.is_read_only() && mode == Mode::Input {
        return Ok(());
    }
    let checked = if attr.is_read_only() {
        Some(value.clone()).filter(|v| !v.is_null())
    } else {
        attribute_value(attr, value, &label(rt, s, attr), mode)?
    };
    if let Some(checked) = checked {
        slot.insert(attr.name.to_string(), checked);
    }
    Ok(())
}

/// Every required attribute of the schema is present.
fn required(rt: &ResourceType, s: &Schema, members: &Map<String, Value>) -> Result<(), PatchError> {
    match s.attributes.iter().find(|a| a.required && !members.contains_key(a.name)) {
        Some(a) => Err(PatchError::invalid_value(format!("'{}' is required", label(rt, s, a)))),
        None => Ok(()),
    }
}

/// A client-supplied name for a message, cut to 100 characters.
pub(crate) fn shown(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// True when a document's value is assigned (RFC 7643 §2.5: null and `[]` are unassigned).
pub(crate) fn is_assigned(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    }
}

/// The kind an attribute's single value has, for messages.
pub(crate) fn kind_label(attr: &Attribute) -> &'static str {
    match attr.kind {
        Kind::Complex => "an object",
        Kind::Boolean => "a boolean",
        Kind::Integer => "an integer",
        Kind::DateTime => "a date-time string",
        Kind::String | Kind::Reference => "a string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::scim::filter::AttrPath;
    use crate::services::scim::schema::{ENTERPRISE_URN, GROUP, GROUP_URN, JANUA_GROUP_URN, USER, USER_URN};
    use serde_json::json;

    fn error_of(rt: &ResourceType, body: Value) -> PatchError {
        match normalise(rt, &body) {
            Ok(doc) => panic!("accepted: {doc}"),
            Err(e) => e,
        }
    }

    fn user(extra: Value) -> Value {
        let mut body = json!({ "schemas": [USER_URN], "userName": "bjensen" });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    }

    #[test]
    fn entra_creates_a_user() {
        let body = json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
            "active": true,
            "emails": [{ "primary": true, "type": "work", "value": "Test_User_fd0e@testuser.com" }],
            "meta": { "resourceType": "User" },
            "name": { "formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName" },
            "roles": []
        });
        let doc = normalise(&USER, &body).expect("entra user");
        let mut want = body.clone();
        if let Some(want) = want.as_object_mut() {
            want.remove("meta");
            want.remove("roles");
            want.insert("schemas".into(), json!([USER_URN]));
        }
        assert_eq!(doc, want);
    }

    #[test]
    fn okta_creates_a_user() {
        let body = json!({
            "schemas": [USER_URN],
            "userName": "test.user@okta.local",
            "name": { "givenName": "Test", "familyName": "User" },
            "emails": [{ "primary": true, "value": "test.user@okta.local", "type": "work" }],
            "displayName": "Test User",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": true
        });
        let doc = normalise(&USER, &body).expect("okta user");
        assert!(doc.get("password").is_none() && doc.get("groups").is_none());
        assert_eq!(doc["locale"], "en-US");
        assert_eq!(doc["emails"], body["emails"]);
    }

    #[test]
    fn idps_create_groups() {
        let entra = json!({
            "schemas": [GROUP_URN, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": { "resourceType": "Group" }
        });
        let doc = normalise(&GROUP, &entra).expect("entra group");
        assert_eq!(
            doc,
            json!({ "schemas": [GROUP_URN], "externalId": entra["externalId"], "displayName": "displayName" })
        );
        let okta = json!({ "schemas": [GROUP_URN], "displayName": "Test SCIMv2", "members": [] });
        let doc = normalise(&GROUP, &okta).expect("okta group");
        assert_eq!(doc, json!({ "schemas": [GROUP_URN], "displayName": "Test SCIMv2" }));
    }

    #[test]
    fn names_are_canonicalised() {
        let body = json!({
            "Schemas": [USER_URN.to_uppercase()],
            "USERNAME": "b",
            "Emails": [{ "Value": "b@x", "TYPE": "work" }],
            ENTERPRISE_URN.to_lowercase(): { "Department": "Sales" }
        });
        let doc = normalise(&USER, &body).expect("canonical");
        let want = json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "userName": "b",
            "emails": [{ "value": "b@x", "type": "work" }],
            ENTERPRISE_URN: { "department": "Sales" }
        });
        assert_eq!(doc, want);
    }

    #[test]
    fn schemas_must_list_the_core_schema() {
        for schemas in [json!(null), json!([]), json!([ENTERPRISE_URN]), json!(USER_URN), json!([1])] {
            let e = error_of(&USER, json!({ "schemas": schemas, "userName": "b" }));
            assert_eq!(e.scim_type, "invalidValue", "{schemas}");
        }
        let e = error_of(&USER, json!({ "userName": "b" }));
        assert_eq!(e.scim_type, "invalidValue");
    }

    #[test]
    fn unknown_attributes() {
        let e = error_of(&USER, user(json!({ "nickname2": "x" })));
        assert_eq!((e.scim_type, e.message.as_str()), ("invalidValue", "unknown attribute 'nickname2'"));
        let e = error_of(&USER, user(json!({ "emails": [{ "value": "a@x", "label": "x" }] })));
        assert_eq!(e.message, "unknown attribute 'emails.label'");
        let e = error_of(&USER, user(json!({ ENTERPRISE_URN: { "costCenter": "4130" } })));
        assert_eq!(e.message, format!("unknown attribute '{ENTERPRISE_URN}:costCenter'"));
        assert_eq!(error_of(&USER, user(json!({ "name.givenName": "x" }))).scim_type, "invalidValue");
        let dropped = user(json!({
            "urn:okta:custom:2.0:User": { "x": 1 },
            GROUP_URN: { "displayName": "not a user attribute" },
            "title": "Tour Guide",
            "phoneNumbers": [{ "value": "555" }],
            "x509Certificates": [[[{}]]]
        }));
        assert_eq!(normalise(&USER, &dropped), normalise(&USER, &user(json!({}))));
    }

    #[test]
    fn extension_attributes() {
        let body = user(
            json!({ ENTERPRISE_URN: { "schemas": [ENTERPRISE_URN], "employeeNumber": "7", "manager": "u9" } }),
        );
        let doc = normalise(&USER, &body).expect("extension");
        assert_eq!(doc[ENTERPRISE_URN], json!({ "employeeNumber": "7", "manager": { "value": "u9" } }));
        assert_eq!(doc["schemas"], json!([USER_URN, ENTERPRISE_URN]));
        let doc = normalise(&USER, &user(json!({ ENTERPRISE_URN: {} }))).expect("empty extension");
        assert!(doc.get(ENTERPRISE_URN).is_none());
        assert_eq!(doc["schemas"], json!([USER_URN]));
        let doc = normalise(
            &USER,
            &user(json!({ format!("{ENTERPRISE_URN}:department"): "Sales", "employeeNumber": "8" })),
        )
        .expect("qualified and unqualified keys");
        assert_eq!(doc[ENTERPRISE_URN], json!({ "department": "Sales", "employeeNumber": "8" }));
        let e = error_of(&USER, user(json!({ ENTERPRISE_URN: "x" })));
        assert_eq!(e.scim_type, "invalidValue");
    }

    #[test]
    fn required_attributes() {
        let e = error_of(&USER, json!({ "schemas": [USER_URN], "displayName": "x" }));
        assert_eq!(e.message, "'userName' is required");
        let e = error_of(&USER, json!({ "schemas": [USER_URN], "userName": null }));
        assert_eq!(e.scim_type, "invalidValue");
        let e = error_of(&GROUP, json!({ "schemas": [GROUP_URN] }));
        assert_eq!(e.message, "'displayName' is required");
    }

    #[test]
    fn types_are_checked() {
        let doc = normalise(&USER, &user(json!({ "active": "TRUE" }))).expect("boolean string");
        assert_eq!(doc["active"], true);
        for bad in [
            json!({ "active": "yes" }),
            json!({ "active": 1 }),
            json!({ "userName": 42 }),
            json!({ "name": "Barbara" }),
            json!({ "name": [{ "givenName": "B" }] }),
            json!({ "emails": [{ "primary": "maybe" }] }),
            json!({ "emails": ["a@x"] }),
            json!({ "displayName": { "value": "x" } }),
        ] {
            assert_eq!(error_of(&USER, user(bad.clone())).scim_type, "invalidValue", "{bad}");
        }
        let doc =
            normalise(&USER, &user(json!({ "emails": { "value": "a@x" } }))).expect("single value wrapped");
        assert_eq!(doc["emails"], json!([{ "value": "a@x" }]));
    }

    #[test]
    fn sizes_are_bounded() {
        let ok = "é".repeat(1024);
        assert_eq!(
            normalise(&USER, &user(json!({ "displayName": ok }))).map(|d| d["displayName"].clone()),
            Ok(json!(ok))
        );
        let e = error_of(&USER, user(json!({ "displayName": "x".repeat(1025) })));
        assert_eq!(e.message, "'displayName' is longer than 1024 characters");
        let emails: Vec<Value> = (0..101).map(|i| json!({ "value": format!("{i}@x") })).collect();
        assert_eq!(error_of(&USER, user(json!({ "emails": emails }))).scim_type, "invalidValue");
        let mut deep = json!("x");
        for _ in 0..MAX_DOCUMENT_DEPTH {
            deep = json!({ "a": deep });
        }
        assert_eq!(error_of(&USER, user(json!({ "title": deep }))).scim_type, "invalidValue");
        assert_eq!(error_of(&USER, json!("user")).scim_type, "invalidSyntax");
    }

    #[test]
    fn at_most_one_primary() {
        let two = json!([{ "value": "a@x", "primary": true }, { "value": "b@x", "primary": true }]);
        let e = error_of(&USER, user(json!({ "emails": two })));
        assert_eq!(e.message, "'emails' has more than one primary value");
        let one = json!([{ "value": "a@x", "primary": true }, { "value": "b@x", "primary": false }]);
        assert!(normalise(&USER, &user(json!({ "emails": one }))).is_ok());
    }

    #[test]
    fn read_only_attributes_are_dropped_from_input() {
        let body = user(json!({
            "id": "client-chosen",
            "meta": { "created": "2020-01-01T00:00:00Z" },
            "groups": [{ "value": "g1" }],
            ENTERPRISE_URN: { "manager": { "value": "u9", "displayName": "Boss" } }
        }));
        let doc = normalise(&USER, &body).expect("user");
        assert!(doc.get("id").is_none() && doc.get("meta").is_none() && doc.get("groups").is_none());
        assert_eq!(doc[ENTERPRISE_URN]["manager"], json!({ "value": "u9" }));
        let group = json!({
            "schemas": [GROUP_URN],
            "displayName": "Ops",
            "members": [{ "value": "u1", "display": "Babs", "$ref": null }, { "$ref": null }]
        });
        let doc = normalise(&GROUP, &group).expect("group");
        assert_eq!(doc["members"], json!([{ "value": "u1" }]));
        let mut nobody = group.clone();
        nobody["members"][1] = json!({ "display": "nobody" });
        assert_eq!(error_of(&GROUP, nobody).message, "'members' needs 'value'");
    }

    #[test]
    fn members_and_roles() {
        let group = |extra: Value| {
            let mut g = json!({ "schemas": [GROUP_URN], "displayName": "Ops" });
            if let (Some(g), Some(extra)) = (g.as_object_mut(), extra.as_object()) {
                g.extend(extra.clone());
            }
            g
        };
        let e =
            error_of(&GROUP, group(json!({ "members": [{ "type": "User", "$ref": "https://x/Users/1" }] })));
        assert_eq!(e.message, "'members' needs 'value'");
        let e = error_of(&GROUP, group(json!({ "members": [{ "value": "g2", "type": "Group" }] })));
        assert_eq!(e.message, "'members.type' must be one of 'User'");
        let doc = normalise(&GROUP, &group(json!({ JANUA_GROUP_URN: { "role": "ADMIN" } }))).expect("role");
        assert_eq!(doc[JANUA_GROUP_URN], json!({ "role": "admin" }));
        assert_eq!(doc["schemas"], json!([GROUP_URN, JANUA_GROUP_URN]));
        let e = error_of(&GROUP, group(json!({ JANUA_GROUP_URN: { "role": "owner" } })));
        assert_eq!(e.message, format!("'{JANUA_GROUP_URN}:role' must be one of 'admin', 'member', 'viewer'"));
    }

    #[test]
    fn validate_keeps_what_the_server_wrote() {
        let stored = json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "id": "u1",
            "userName": "b",
            "groups": [{ "value": "g1", "display": "Ops" }],
            ENTERPRISE_URN: { "manager": { "value": "u9", "displayName": "Boss" } }
        });
        assert_eq!(validate(&USER, &stored), Ok(stored.clone()));
        let mut stale = stored.clone();
        stale[ENTERPRISE_URN] = json!({});
        let doc = validate(&USER, &stale).expect("stale schemas");
        assert_eq!(doc["schemas"], json!([USER_URN]));
    }

    #[test]
    fn resolve_paths() {
        let path = |urn: Option<&str>, name: &str, sub: Option<&str>| AttrPath {
            urn: urn.map(str::to_string),
            name: name.into(),
            sub: sub.map(str::to_string),
        };
        let names = |p: AttrPath| resolve(&USER, &p).map(|(s, a, sub)| (s.id, a.name, sub.map(|s| s.name)));
        assert_eq!(names(path(None, "USERNAME", None)), Some((USER_URN, "userName", None)));
        assert_eq!(
            names(path(Some(USER_URN), "name", Some("GIVENNAME"))),
            Some((USER_URN, "name", Some("givenName")))
        );
        assert_eq!(
            names(path(Some(ENTERPRISE_URN), "manager", Some("$REF"))),
            Some((ENTERPRISE_URN, "manager", Some("$ref")))
        );
        assert_eq!(names(path(None, "department", None)), Some((ENTERPRISE_URN, "department", None)));
        assert_eq!(names(path(None, "externalId", None)), Some((USER_URN, "externalId", None)));
        assert_eq!(
            names(path(None, "meta", Some("lastModified"))),
            Some((USER_URN, "meta", Some("lastModified")))
        );
        assert_eq!(names(path(Some(ENTERPRISE_URN), "userName", None)), None);
        assert_eq!(names(path(None, "members", None)), None);
        assert_eq!(names(path(None, "title", None)), None);
        assert_eq!(names(path(None, "active", Some("x"))), None);
        assert!(is_case_exact(&USER, &path(None, "externalId", None)));
        assert!(!is_case_exact(&USER, &path(None, "userName", None)));
        assert!(is_case_exact(&GROUP, &path(None, "members", Some("$ref"))));
        assert!(!is_case_exact(&GROUP, &path(None, "nothing", None)));
    }
}
