//! The discovery representations of the definitions: a schema (RFC 7643 §7) and a resource
//! type (§6), as `/Schemas` and `/ResourceTypes` serve them.

use serde_json::{Map, Value, json};

use super::{Attribute, Kind, Mutability, ResourceType, Returned, Schema, Uniqueness};

const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// `base_url` without its trailing slashes, so `{base}/Schemas` has exactly one.
fn trim_base(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

/// The RFC 7643 §7 representation of a schema, with `meta.location` under `base_url`.
pub fn schema_document(s: &Schema, base_url: &str) -> Value {
    json!({
        "schemas": [SCHEMA_URN],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": s.attributes.iter().map(attribute_document).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{}/Schemas/{}", trim_base(base_url), s.id),
        },
    })
}

/// The RFC 7643 §7 representation of one attribute and its sub-attributes.
fn attribute_document(a: &Attribute) -> Value {
    let mut doc = Map::new();
    doc.insert("name".into(), a.name.into());
    doc.insert("type".into(), kind_name(a.kind).into());
    doc.insert("multiValued".into(), a.multi.into());
    doc.insert("description".into(), a.description.into());
    doc.insert("required".into(), a.required.into());
    doc.insert("caseExact".into(), a.case_exact.into());
    doc.insert("mutability".into(), mutability_name(a.mutability).into());
    doc.insert("returned".into(), returned_name(a.returned).into());
    doc.insert("uniqueness".into(), uniqueness_name(a.uniqueness).into());
    if !a.canonical.is_empty() {
        doc.insert("canonicalValues".into(), a.canonical.into());
    }
    if a.kind == Kind::Reference {
        doc.insert("referenceTypes".into(), a.reference_types.into());
    }
    if a.kind == Kind::Complex {
        let sub = a.sub.iter().map(attribute_document).collect::<Vec<_>>();
        doc.insert("subAttributes".into(), sub.into());
    }
    Value::Object(doc)
}

/// The RFC 7643 §6 representation of a resource type, with `meta.location` under `base_url`.
pub fn resource_type_document(r: &ResourceType, base_url: &str) -> Value {
    let extensions: Vec<Value> =
        r.extensions.iter().map(|s| json!({ "schema": s.id, "required": false })).collect();
    json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": r.id,
        "name": r.id,
        "endpoint": r.endpoint,
        "description": r.description,
        "schema": r.core.id,
        "schemaExtensions": extensions,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{}/ResourceTypes/{}", trim_base(base_url), r.id),
        },
    })
}

/// The RFC 7643 spelling of a data type.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::String => "string",
        Kind::Boolean => "boolean",
        Kind::Complex => "complex",
        Kind::Reference => "reference",
        Kind::DateTime => "dateTime",
        Kind::Integer => "integer",
    }
}

fn mutability_name(m: Mutability) -> &'static str {
    match m {
        Mutability::ReadOnly => "readOnly",
        Mutability::ReadWrite => "readWrite",
        Mutability::Immutable => "immutable",
        Mutability::WriteOnly => "writeOnly",
    }
}

fn returned_name(r: Returned) -> &'static str {
    match r {
        Returned::Always => "always",
        Returned::Never => "never",
        Returned::Default => "default",
        Returned::Request => "request",
    }
}

fn uniqueness_name(u: Uniqueness) -> &'static str {
    match u {
        Uniqueness::None => "none",
        Uniqueness::Server => "server",
        Uniqueness::Global => "global",
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    #[test]
    fn schema_document_follows_rfc_7643_section_7() {
        let doc = schema_document(&USER_SCHEMA, "https://x.test/scim/v2/");
        assert_eq!(doc["id"], USER_URN);
        assert_eq!(doc["schemas"][0], SCHEMA_URN);
        assert_eq!(doc["meta"]["resourceType"], "Schema");
        assert_eq!(doc["meta"]["location"], format!("https://x.test/scim/v2/Schemas/{USER_URN}"));
        let attrs = doc["attributes"].as_array().expect("attributes");
        let names: Vec<&str> = attrs.iter().filter_map(|a| a["name"].as_str()).collect();
        assert_eq!(names, ["userName", "name", "displayName", "emails", "active", "locale", "groups"]);
        let user_name = &attrs[0];
        assert_eq!(user_name["required"], true);
        assert_eq!(user_name["uniqueness"], "server");
        assert_eq!(user_name["caseExact"], false);
        let emails = &attrs[3];
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["subAttributes"][1]["canonicalValues"], json!(["work", "home", "other"]));
        let groups = &attrs[6];
        assert_eq!(groups["mutability"], "readOnly");
        assert_eq!(groups["subAttributes"][1]["name"], "$ref");
        assert_eq!(groups["subAttributes"][1]["referenceTypes"], json!(["Group"]));
        assert_eq!(groups["subAttributes"][1]["caseExact"], true);
        assert!(groups["subAttributes"][1].get("subAttributes").is_none());
    }

    #[test]
    fn group_and_extension_documents() {
        let group = schema_document(&GROUP_SCHEMA, "https://x.test/scim/v2");
        let members = &group["attributes"][1];
        assert_eq!(members["name"], "members");
        assert_eq!(members["subAttributes"][0]["mutability"], "immutable");
        assert_eq!(members["subAttributes"][1]["referenceTypes"], json!(["User"]));
        assert_eq!(members["subAttributes"][2]["mutability"], "readOnly");
        assert_eq!(members["subAttributes"][2]["returned"], "request");
        assert!(members["subAttributes"][3].get("strict").is_none());
        let janua = schema_document(&JANUA_GROUP_SCHEMA, "https://x.test/scim/v2");
        assert_eq!(janua["attributes"][0]["canonicalValues"], json!(["admin", "member", "viewer"]));
        let enterprise = schema_document(&ENTERPRISE_SCHEMA, "https://x.test/scim/v2");
        assert_eq!(enterprise["attributes"][2]["subAttributes"][2]["mutability"], "readOnly");
    }

    #[test]
    fn resource_type_document_follows_rfc_7643_section_6() {
        let doc = resource_type_document(&USER, "https://x.test/scim/v2");
        assert_eq!(doc["id"], "User");
        assert_eq!(doc["endpoint"], "/Users");
        assert_eq!(doc["schema"], USER_URN);
        assert_eq!(doc["schemaExtensions"], json!([{ "schema": ENTERPRISE_URN, "required": false }]));
        assert_eq!(doc["meta"]["location"], "https://x.test/scim/v2/ResourceTypes/User");
        let group = resource_type_document(&GROUP, "https://x.test/scim/v2");
        assert_eq!(group["schemaExtensions"][0]["schema"], JANUA_GROUP_URN);
    }
}
