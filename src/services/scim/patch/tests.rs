//! Tests of the SCIM PATCH operations (`super`).

use super::fixtures::{body, group, op, patch_group, patch_user, user, user_error};
use super::*;
use crate::services::scim::schema::{ENTERPRISE_URN, GROUP, USER, USER_URN};
use serde_json::{Value, json};

#[test]
fn body_shapes() {
    let mut doc = user();
    let lower = json!({ "operations": [op("replace", Some("displayName"), Some(json!("B")))] });
    apply(&USER, &mut doc, &lower).expect("lowercase operations, no schemas");
    assert_eq!(doc["displayName"], "B");
    let cases = [
        (json!([]), "invalidSyntax"),
        (json!({ "schemas": [PATCH_OP_URN] }), "invalidSyntax"),
        (json!({ "schemas": [USER_URN], "Operations": [] }), "invalidSyntax"),
        (json!({ "Operations": {} }), "invalidSyntax"),
        (json!({ "Operations": [] }), "invalidValue"),
        (json!({ "Operations": ["add"] }), "invalidSyntax"),
        (json!({ "Operations": [{ "path": "displayName", "value": "x" }] }), "invalidSyntax"),
        (json!({ "Operations": [{ "op": 1, "value": "x" }] }), "invalidSyntax"),
        (json!({ "Operations": [{ "op": "move", "path": "displayName", "value": "x" }] }), "invalidValue"),
        (json!({ "Operations": [{ "op": "add", "path": "displayName" }] }), "invalidValue"),
        (json!({ "Operations": [{ "op": "add", "path": "displayName", "value": null }] }), "invalidValue"),
        (json!({ "Operations": [{ "op": "replace", "path": "displayName" }] }), "invalidValue"),
        (json!({ "Operations": [{ "op": "add", "path": 3, "value": "x" }] }), "invalidPath"),
    ];
    for (body, scim_type) in cases {
        let mut doc = user();
        let e = apply(&USER, &mut doc, &body).expect_err(&body.to_string());
        assert_eq!(e.scim_type, scim_type, "{body}: {e}");
        assert_eq!(doc, user());
    }
}

#[test]
fn limits() {
    let many = vec![op("replace", Some("displayName"), Some(json!("x"))); MAX_OPERATIONS + 1];
    assert_eq!(user_error(many), "invalidValue");
    let thousand = vec![op("replace", Some("displayName"), Some(json!("x"))); MAX_OPERATIONS];
    assert!(patch_user(thousand).is_ok());
    let mut deep = json!("x");
    for _ in 0..MAX_VALUE_DEPTH + 1 {
        deep = json!([deep]);
    }
    assert_eq!(user_error(vec![op("add", Some("emails"), Some(deep))]), "invalidValue");
}

#[test]
fn op_names_are_case_insensitive() {
    let doc = patch_user(vec![
        op("Replace", Some("displayName"), Some(json!("B"))),
        op("ADD", Some("locale"), Some(json!("en-US"))),
        op("Remove", Some("name"), None),
    ])
    .expect("patch");
    assert_eq!((&doc["displayName"], &doc["locale"]), (&json!("B"), &json!("en-US")));
    assert!(doc.get("name").is_none());
}

#[test]
fn all_or_nothing_and_the_failing_operation_is_named() {
    let mut doc = user();
    let ops = body(vec![
        op("replace", Some("displayName"), Some(json!("changed"))),
        op("replace", Some("nickName2"), Some(json!("x"))),
    ]);
    let e = apply(&USER, &mut doc, &ops).expect_err("second operation");
    assert_eq!(e.scim_type, "invalidPath");
    assert!(e.message.starts_with("operation 2: "), "{}", e.message);
    assert_eq!(doc, user());
}

#[test]
fn okta_deactivates_without_path() {
    let doc = patch_user(vec![op("replace", None, Some(json!({ "active": false })))]).expect("patch");
    assert_eq!(doc["active"], false);
}

#[test]
fn okta_renames_a_group_with_its_id_in_the_value() {
    let doc = patch_group(vec![op("replace", None, Some(json!({ "id": "g1", "displayName": "Ops 2" })))])
        .expect("same id is ignored");
    assert_eq!((&doc["id"], &doc["displayName"]), (&json!("g1"), &json!("Ops 2")));
    let e = patch_group(vec![op("replace", None, Some(json!({ "id": "other" })))]).expect_err("other id");
    assert_eq!(e.scim_type, "mutability");
}

#[test]
fn entra_pathless_add_with_dotted_and_urn_keys() {
    let value = json!({
        "name.givenName": "Barbara Ann",
        "displayName": "BAJ",
        format!("{ENTERPRISE_URN}:department"): "Sales",
        "urn:ietf:params:scim:schemas:core:2.0:User:locale": "fr-FR"
    });
    let doc = patch_user(vec![op("Add", None, Some(value))]).expect("patch");
    assert_eq!(doc["name"], json!({ "givenName": "Barbara Ann", "familyName": "Jensen" }));
    assert_eq!(doc["displayName"], "BAJ");
    assert_eq!(doc["locale"], "fr-FR");
    assert_eq!(doc[ENTERPRISE_URN], json!({ "employeeNumber": "701984", "department": "Sales" }));
}

#[test]
fn pathless_extension_object_merges() {
    let value = json!({ ENTERPRISE_URN: { "department": "Sales", "manager": { "value": "u9" } } });
    let doc = patch_user(vec![op("replace", None, Some(value))]).expect("patch");
    let want = json!({ "employeeNumber": "701984", "department": "Sales", "manager": { "value": "u9" } });
    assert_eq!(doc[ENTERPRISE_URN], want);
}

#[test]
fn pathless_ignores_schemas_and_meta() {
    let value = json!({ "schemas": [USER_URN], "meta": { "resourceType": "User" }, "displayName": "x" });
    let doc = patch_user(vec![op("replace", None, Some(value))]).expect("patch");
    assert_eq!(doc["displayName"], "x");
    assert_eq!(doc["schemas"], user()["schemas"]);
}

#[test]
fn pathless_needs_an_object() {
    assert_eq!(user_error(vec![op("add", None, Some(json!("x")))]), "invalidValue");
    assert_eq!(user_error(vec![op("replace", None, Some(json!({ "nickName2": "x" })))]), "invalidValue");
}

#[test]
fn unknown_paths_and_ignored_ones() {
    assert_eq!(user_error(vec![op("replace", Some("nickName2"), Some(json!("x")))]), "invalidPath");
    assert_eq!(user_error(vec![op("replace", Some("name.nick"), Some(json!("x")))]), "invalidPath");
    assert_eq!(user_error(vec![op("replace", Some("active.x"), Some(json!("x")))]), "invalidPath");
    assert_eq!(user_error(vec![op("add", Some("a b"), Some(json!("x")))]), "invalidPath");
    assert_eq!(
        user_error(vec![op("add", Some(&format!("{ENTERPRISE_URN}:userName")), Some(json!("x")))]),
        "invalidPath"
    );
    let ignored = vec![
        op("Add", Some("title"), Some(json!("Tour Guide"))),
        op("Add", Some(r#"phoneNumbers[type eq "work"].value"#), Some(json!("+1 555"))),
        op(
            "Replace",
            Some("urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:x"),
            Some(json!("1")),
        ),
        op("Add", None, Some(json!({ "preferredLanguage": "en", "roles": [] }))),
        op("Remove", Some("addresses"), None),
    ];
    assert_eq!(patch_user(ignored), Ok(user()));
}

#[test]
fn read_only_attributes_refuse_changes() {
    for path in ["groups", "id", "meta", "meta.created", "groups.display", r#"groups[value eq "g1"]"#] {
        for o in ["add", "replace", "remove"] {
            let value = (o != "remove").then(|| json!("x"));
            assert_eq!(user_error(vec![op(o, Some(path), value)]), "mutability", "{o} {path}");
        }
    }
    assert_eq!(
        user_error(vec![op("add", None, Some(json!({ "groups": [{ "value": "g2" }] })))]),
        "mutability"
    );
}

#[test]
fn remove_needs_a_path_and_spares_required_attributes() {
    assert_eq!(user_error(vec![op("remove", None, None)]), "noTarget");
    assert_eq!(user_error(vec![op("remove", Some(""), None)]), "noTarget");
    assert_eq!(user_error(vec![op("remove", Some("userName"), None)]), "mutability");
    assert_eq!(user_error(vec![op("replace", Some("userName"), Some(json!(null)))]), "mutability");
    let e = patch_group(vec![op("remove", Some("displayName"), None)]).expect_err("required");
    assert_eq!(e.scim_type, "mutability");
}

#[test]
fn core_urn_prefix_and_case_insensitive_names() {
    let doc = patch_user(vec![
        op("replace", Some(&format!("{USER_URN}:userName")), Some(json!("b@x.test"))),
        op("replace", Some("NAME.GIVENNAME"), Some(json!("B"))),
        op("add", Some("DisplayName"), Some(json!("D"))),
    ])
    .expect("patch");
    assert_eq!(doc["userName"], "b@x.test");
    assert_eq!(doc["name"]["givenName"], "B");
    assert_eq!(doc["displayName"], "D");
    assert!(doc.get("DisplayName").is_none());
}

#[test]
fn bare_extension_paths() {
    let doc = patch_user(vec![op("remove", Some(ENTERPRISE_URN), None)]).expect("remove");
    assert!(doc.get(ENTERPRISE_URN).is_none());
    assert_eq!(doc["schemas"], json!([USER_URN]));
    let value = json!({ "schemas": [ENTERPRISE_URN], "employeeNumber": "1", "manager": { "value": "u9", "$ref": "https://x.test/Users/u9" } });
    let mut doc = doc;
    apply(&USER, &mut doc, &body(vec![op("add", Some(ENTERPRISE_URN), Some(value))])).expect("add");
    let want =
        json!({ "employeeNumber": "1", "manager": { "value": "u9", "$ref": "https://x.test/Users/u9" } });
    assert_eq!(doc[ENTERPRISE_URN], want);
    assert_eq!(doc["schemas"], json!([USER_URN, ENTERPRISE_URN]));
    assert_eq!(user_error(vec![op("add", Some(ENTERPRISE_URN), Some(json!("x")))]), "invalidValue");
    assert_eq!(user_error(vec![op("add", Some(ENTERPRISE_URN), Some(json!({ "x": 1 })))]), "invalidValue");
    assert_eq!(user_error(vec![op("remove", Some(USER_URN), None)]), "invalidPath");
}

#[test]
fn the_result_is_validated() {
    let long = "x".repeat(1025);
    assert_eq!(user_error(vec![op("replace", Some("userName"), Some(json!(long)))]), "invalidValue");
    assert_eq!(user_error(vec![op("replace", Some("active"), Some(json!("yes")))]), "invalidValue");
    assert_eq!(
        user_error(vec![op("replace", Some("emails"), Some(json!([{ "value": 1 }])))]),
        "invalidValue"
    );
    let two = json!([{ "value": "a@x", "primary": true }, { "value": "b@x", "primary": true }]);
    assert_eq!(user_error(vec![op("replace", Some("emails"), Some(two))]), "invalidValue");
}

#[test]
fn random_operations_never_panic() {
    let paths = [
        "emails",
        "emails.value",
        r#"emails[type eq "work"]"#,
        r#"emails[type eq "work"].primary"#,
        "name",
        "name.givenName",
        "members",
        "members.value",
        r#"members[value eq "u1"]"#,
        r#"members[value eq "u9"].type"#,
        "active",
        "userName",
        "displayName",
        ENTERPRISE_URN,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "urn:janua:params:scim:schemas:extension:2.0:Group:role",
        "groups",
        "id",
        "title",
        "x[",
    ];
    let values = [
        json!(null),
        json!("x"),
        json!(true),
        json!("False"),
        json!(1),
        json!([]),
        json!({}),
        json!([{ "value": "u3", "primary": true }]),
        json!({ "value": "u1", "type": "User" }),
        json!({ "givenName": "B", "displayName": "D" }),
        json!([{ "value": null }]),
        json!([[1]]),
    ];
    let ops = ["add", "remove", "replace", "Replace", "move"];
    let mut seed = 11u64;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for _ in 0..5_000 {
        let count = 1 + next() % 3;
        let operations: Vec<Value> = (0..count)
            .map(|_| {
                let path = (next() % 5 > 0).then(|| paths[next() % paths.len()]);
                op(ops[next() % ops.len()], path, Some(values[next() % values.len()].clone()))
            })
            .collect();
        for (rt, fixture) in [(&USER, user()), (&GROUP, group())] {
            let mut doc = fixture.clone();
            if apply(rt, &mut doc, &body(operations.clone())).is_err() {
                assert_eq!(doc, fixture);
            } else {
                assert_eq!(document::validate(rt, &doc), Ok(doc.clone()));
            }
        }
    }
}

#[test]
fn server_written_attributes_survive() {
    let doc = patch_user(vec![op("replace", Some("displayName"), Some(json!("x")))]).expect("user");
    assert_eq!((&doc["id"], &doc["groups"]), (&user()["id"], &user()["groups"]));
    let doc = patch_group(vec![op("replace", Some("displayName"), Some(json!("x")))]).expect("group");
    assert_eq!(doc["members"], group()["members"]);
    let mut not_object = json!([]);
    let e =
        apply(&GROUP, &mut not_object, &body(vec![op("remove", Some("members"), None)])).expect_err("array");
    assert_eq!(e.scim_type, "invalidSyntax");
}

/// Fuzz: PatchOp bodies of arbitrary operations (real and mutated paths, values of any
/// shape, unknown ops) on the fixture User and Group never panic, and a refused patch leaves
/// the document as it was (all or nothing).
#[test]
fn fuzz_patch_operations() {
    use proptest::prelude::*;
    let json_leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9@.: -]{0,12}".prop_map(Value::from),
        Just(json!("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")),
    ];
    let value = json_leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "value",
                    "type",
                    "primary",
                    "display",
                    "givenName",
                    "active",
                    "userName",
                    "emails",
                    "members",
                    "displayName",
                    "department",
                    "schemas",
                    "id",
                    "$ref",
                    "role",
                ]),
                inner,
                0..4,
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    });
    let paths = vec![
        "displayName",
        "userName",
        "active",
        "name",
        "name.givenName",
        "emails",
        "emails.value",
        r#"emails[type eq "work"]"#,
        r#"emails[type eq "work"].value"#,
        r#"emails[primary eq true].type"#,
        "members",
        r#"members[value eq "u1"]"#,
        r#"members[value eq "u2"].display"#,
        "groups",
        "id",
        "meta",
        "schemas",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "urn:janua:params:scim:schemas:extension:2.0:Group:role",
        "externalId",
        "title",
    ];
    let path = prop_oneof![
        3 => prop::sample::select(paths.clone()).prop_map(|p| Some(p.to_owned())),
        2 => prop::sample::select(paths).prop_flat_map(|p| crate::fuzz::mutated(p.to_owned())).prop_map(Some),
        1 => Just(None),
        1 => any::<String>().prop_map(Some),
    ];
    let op_name = prop::sample::select(vec!["add", "remove", "replace", "Add", "REPLACE", "move", ""]);
    let operation = (op_name, path, prop::option::of(value)).prop_map(|(o, p, v)| op(o, p.as_deref(), v));
    let strategy = (prop::collection::vec(operation, 1..5), any::<bool>());
    crate::fuzz::run("SCIM PATCH", 3000, strategy, |(operations, on_group)| {
        let (rt, original) = if on_group { (&GROUP, group()) } else { (&USER, user()) };
        let mut doc = original.clone();
        match apply(rt, &mut doc, &body(operations)) {
            Ok(()) => prop_assert!(doc["schemas"].is_array(), "{}", doc),
            Err(e) => {
                prop_assert_eq!(&doc, &original, "a refused patch changed the document");
                prop_assert!(!e.scim_type.is_empty());
            }
        }
        Ok(())
    });
}
