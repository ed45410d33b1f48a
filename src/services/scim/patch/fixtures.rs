//! Stored documents and request builders shared by the PATCH tests.

use super::{PatchError, apply};
use crate::services::scim::schema::{ENTERPRISE_URN, GROUP, GROUP_URN, JANUA_GROUP_URN, USER, USER_URN};
use serde_json::{Value, json};

/// A stored User as the server returns it, without `meta`.
pub(crate) fn user() -> Value {
    json!({
        "schemas": [USER_URN, ENTERPRISE_URN],
        "id": "u1",
        "userName": "bjensen@example.com",
        "name": { "givenName": "Barbara", "familyName": "Jensen" },
        "displayName": "Babs",
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@home.example", "type": "home" }
        ],
        "active": true,
        "groups": [{ "value": "g1", "display": "Ops", "type": "direct" }],
        ENTERPRISE_URN: { "employeeNumber": "701984", "department": "Tour Operations" }
    })
}

/// A stored Group with two members.
pub(crate) fn group() -> Value {
    json!({
        "schemas": [GROUP_URN, JANUA_GROUP_URN],
        "id": "g1",
        "displayName": "Ops",
        "members": [
            { "value": "u1", "$ref": "https://x.test/scim/v2/Users/u1", "type": "User", "display": "Babs" },
            { "value": "u2", "type": "User" }
        ],
        JANUA_GROUP_URN: { "role": "member" }
    })
}

/// One operation.
pub(crate) fn op(op: &str, path: Option<&str>, value: Option<Value>) -> Value {
    let mut o = json!({ "op": op });
    if let Some(path) = path {
        o["path"] = path.into();
    }
    if let Some(value) = value {
        o["value"] = value;
    }
    o
}

/// A PatchOp body holding these operations.
pub(crate) fn body(operations: Vec<Value>) -> Value {
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations })
}

/// Patches a copy of the fixture User.
pub(crate) fn patch_user(operations: Vec<Value>) -> Result<Value, PatchError> {
    let mut doc = user();
    apply(&USER, &mut doc, &body(operations)).map(|()| doc)
}

/// Patches a copy of the fixture Group.
pub(crate) fn patch_group(operations: Vec<Value>) -> Result<Value, PatchError> {
    let mut doc = group();
    apply(&GROUP, &mut doc, &body(operations)).map(|()| doc)
}

/// The `scimType` of a refused patch of the fixture User.
pub(crate) fn user_error(operations: Vec<Value>) -> &'static str {
    match patch_user(operations) {
        Ok(doc) => panic!("accepted: {doc}"),
        Err(e) => e.scim_type,
    }
}
