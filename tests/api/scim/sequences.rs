//! The request sequences Okta and Microsoft Entra ID send, in their shapes (Okta's "SCIM 2.0
//! provisioning" reference and Entra's "Develop and plan provisioning for a SCIM endpoint"
//! request examples): each step answered as those clients expect.

use serde_json::json;

use super::{
    ENTERPRISE_URN, GROUP_URN, Provisioned, USER_URN, create_user, filter, listed, member_ids, patch,
    provisioned, scim,
};
use crate::helpers::Backend;

crate::on_both_databases!(okta_user_and_group_sequence, entra_user_and_group_sequence);

/// Okta: look the user up by `userName` (paged), create it with Okta's body (a `password` and
/// an empty `groups` included), read it, replace it with PUT, deactivate and reactivate it with
/// a path-less PATCH; push a group, rename it with a path-less PATCH naming its `id`, set, add
/// and remove members, replace it with PUT, find it by `displayName`, delete it.
async fn okta_user_and_group_sequence(b: Backend) {
    let Provisioned { app, token, .. } = provisioned(b).await;
    let by_name =
        format!("/Users?{}&startIndex=1&count=100", filter(r#"userName eq "test.user@okta.local""#));
    assert_eq!(listed(&scim(&app, "GET", &by_name, &token, None).await), (0, vec![]), "not there yet");

    let okta_user = json!({
        "schemas": [USER_URN],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true,
    });
    let r = scim(&app, "POST", "/Users", &token, Some(okta_user)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        r.body["meta"]["location"].as_str().unwrap(),
        "Location is meta.location"
    );
    let location = r.body["meta"]["location"].as_str().unwrap();
    assert!(location.ends_with(&format!("/api/v1/scim/v2/Users/{id}")), "{location}");
    assert_eq!(
        (r.body["userName"].as_str(), r.body["active"].as_bool()),
        (Some("test.user@okta.local"), Some(true))
    );
    assert_eq!(r.body["externalId"], "00ujl29u0le5T6Aj10h7");
    assert!(r.body.get("password").is_none(), "a password is never returned: {}", r.body);
    assert!(r.header("content-type").starts_with("application/scim+json"));

    let got = scim(&app, "GET", &format!("/Users/{id}"), &token, None).await;
    assert_eq!((got.status, got.body["name"]["givenName"].as_str()), (200, Some("Test")), "{}", got.body);
    assert!(got.body.get("password").is_none() && !got.body.to_string().contains("1mz050nq"), "{}", got.body);
    assert_eq!(listed(&scim(&app, "GET", &by_name, &token, None).await), (1, vec![id.clone()]));

    // PUT: Okta sends the whole profile back (id and meta included).
    let mut replaced = got.body.clone();
    replaced["name"] = json!({"givenName": "Another", "middleName": "", "familyName": "User"});
    let r = scim(&app, "PUT", &format!("/Users/{id}"), &token, Some(replaced)).await;
    assert_eq!((r.status, r.body["name"]["givenName"].as_str()), (200, Some("Another")), "{}", r.body);
    assert_eq!(r.body["id"], id.as_str());

    let deactivate = patch(json!([{"op": "replace", "value": {"active": false}}]));
    let r = scim(&app, "PATCH", &format!("/Users/{id}"), &token, Some(deactivate)).await;
    assert_eq!((r.status, r.body["active"].as_bool()), (200, Some(false)), "{}", r.body);
    assert_eq!(r.body["name"]["givenName"], "Another", "the rest is left alone: {}", r.body);
    let reactivate = patch(json!([{"op": "replace", "value": {"active": true}}]));
    let r = scim(&app, "PATCH", &format!("/Users/{id}"), &token, Some(reactivate)).await;
    assert_eq!((r.status, r.body["active"].as_bool()), (200, Some(true)), "{}", r.body);
    let all = scim(&app, "GET", "/Users?startIndex=1&count=100", &token, None).await;
    assert_eq!(listed(&all), (1, vec![id.clone()]), "import lists it");

    // Groups (Push Groups).
    let other = create_user(&app, &token, "second.user@okta.local").await;
    let by_display = format!("/Groups?{}&startIndex=1&count=100", filter(r#"displayName eq "Test SCIMv2""#));
    assert_eq!(listed(&scim(&app, "GET", &by_display, &token, None).await).0, 0);
    let g = json!({"schemas": [GROUP_URN], "displayName": "Test SCIMv2", "members": []});
    let r = scim(&app, "POST", "/Groups", &token, Some(g)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let gid = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("location"), r.body["meta"]["location"].as_str().unwrap());
    let r = scim(&app, "GET", &format!("/Groups/{gid}"), &token, None).await;
    assert_eq!((r.status, r.body["displayName"].as_str()), (200, Some("Test SCIMv2")), "{}", r.body);

    let rename =
        patch(json!([{"op": "replace", "value": {"id": gid, "displayName": "Another Display Name"}}]));
    let r = scim(&app, "PATCH", &format!("/Groups/{gid}"), &token, Some(rename)).await;
    assert_eq!((r.status, r.body["displayName"].as_str()), (200, Some("Another Display Name")), "{}", r.body);

    let set = patch(
        json!([{"op": "replace", "path": "members", "value": [{"value": id, "display": "test.user@okta.local"}]}]),
    );
    let r = scim(&app, "PATCH", &format!("/Groups/{gid}"), &token, Some(set)).await;
    assert_eq!((r.status, member_ids(&r.body)), (200, vec![id.clone()]), "{}", r.body);
    let add = patch(
        json!([{"op": "add", "path": "members", "value": [{"value": other, "display": "second.user@okta.local"}]}]),
    );
    let r = scim(&app, "PATCH", &format!("/Groups/{gid}"), &token, Some(add)).await;
    let mut both = vec![id.clone(), other.clone()];
    both.sort();
    assert_eq!((r.status, member_ids(&r.body)), (200, both), "{}", r.body);
    let remove = patch(json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]));
    let r = scim(&app, "PATCH", &format!("/Groups/{gid}"), &token, Some(remove)).await;
    assert_eq!((r.status, member_ids(&r.body)), (200, vec![other.clone()]), "{}", r.body);
    let u = scim(&app, "GET", &format!("/Users/{other}"), &token, None).await;
    assert_eq!(u.body["groups"][0]["value"], gid.as_str(), "the user shows its group: {}", u.body);

    let put = json!({"schemas": [GROUP_URN], "id": gid, "displayName": "Test SCIMv2", "members": [{"value": id, "display": "test.user@okta.local"}]});
    let r = scim(&app, "PUT", &format!("/Groups/{gid}"), &token, Some(put)).await;
    assert_eq!((r.status, member_ids(&r.body)), (200, vec![id.clone()]), "{}", r.body);
    assert_eq!(listed(&scim(&app, "GET", &by_display, &token, None).await), (1, vec![gid.clone()]));

    assert_eq!(scim(&app, "DELETE", &format!("/Groups/{gid}"), &token, None).await.status, 204);
    assert_eq!(scim(&app, "GET", &format!("/Groups/{gid}"), &token, None).await.status, 404);
    let u = scim(&app, "GET", &format!("/Users/{id}"), &token, None).await;
    assert!(u.body.get("groups").is_none_or(|g| g.as_array().is_some_and(Vec::is_empty)), "{}", u.body);
}

/// Entra ID: look the user up by `userName` and by `externalId`, create it with Entra's body (the
/// enterprise extension, a `work` email, `roles: []`), PATCH with capitalised ops (`Replace`,
/// `Add`) on `emails[type eq "work"].value`, `name.givenName`, `name.familyName` and the
/// enterprise `department`, deactivate with the string `"False"`; create a group with Entra's
/// extra schema URN, read it without members, add and remove members (both remove shapes
/// Entra uses), rename it, delete the user (204, then 404).
async fn entra_user_and_group_sequence(b: Backend) {
    let Provisioned { app, token, .. } = provisioned(b).await;
    let user_name = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1";
    let external_id = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef";
    let by_name = format!("/Users?{}", filter(&format!("userName eq \"{user_name}\"")));
    let by_external = format!("/Users?{}", filter(&format!("externalId eq \"{external_id}\"")));
    assert_eq!(listed(&scim(&app, "GET", &by_name, &token, None).await).0, 0);
    assert_eq!(listed(&scim(&app, "GET", &by_external, &token, None).await).0, 0);
    let nobody = format!("/Users?{}", filter(r#"userName eq "non-existent user""#));
    assert_eq!(listed(&scim(&app, "GET", &nobody, &token, None).await).0, 0);

    let entra_user = json!({
        "schemas": [USER_URN, ENTERPRISE_URN],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
        ENTERPRISE_URN: {"employeeNumber": "701984", "department": "Tour Operations"},
    });
    let r = scim(&app, "POST", "/Users", &token, Some(entra_user.clone())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body[ENTERPRISE_URN]["employeeNumber"], "701984", "{}", r.body);
    assert_eq!(listed(&scim(&app, "GET", &by_name, &token, None).await), (1, vec![id.clone()]));
    assert_eq!(listed(&scim(&app, "GET", &by_external, &token, None).await), (1, vec![id.clone()]));
    // Entra's duplicate check: the same user again is a 409.
    let r = scim(&app, "POST", "/Users", &token, Some(entra_user)).await;
    super::assert_scim_error(&r, 409, Some("uniqueness"), "the same user twice");

    let ops = patch(json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        {"op": "Replace", "path": "name.givenName", "value": "updatedGivenName"},
        {"op": "Add", "path": format!("{ENTERPRISE_URN}:department"), "value": "Sales"},
    ]));
    let r = scim(&app, "PATCH", &format!("/Users/{id}"), &token, Some(ops)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["emails"][0]["value"], "updatedEmail@microsoft.com", "{}", r.body);
    assert_eq!(r.body["emails"].as_array().map(Vec::len), Some(1), "replaced in place: {}", r.body);
    assert_eq!(
        (r.body["name"]["familyName"].as_str(), r.body["name"]["givenName"].as_str()),
        (Some("updatedFamilyName"), Some("updatedGivenName"))
    );
    assert_eq!(r.body[ENTERPRISE_URN]["department"], "Sales", "{}", r.body);
    let add_email = patch(
        json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "added@microsoft.com"}]),
    );
    let r = scim(&app, "PATCH", &format!("/Users/{id}"), &token, Some(add_email)).await;
    assert_eq!(
        (r.status, r.body["emails"][0]["value"].as_str()),
        (200, Some("added@microsoft.com")),
        "{}",
        r.body
    );
    let by_email =
        format!("/Users?{}", filter(r#"emails[type eq "work" and value eq "ADDED@microsoft.com"]"#));
    assert_eq!(listed(&scim(&app, "GET", &by_email, &token, None).await), (1, vec![id.clone()]));
    let rename = patch(
        json!([{"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}]),
    );
    let r = scim(&app, "PATCH", &format!("/Users/{id}"), &token, Some(rename)).await;
    assert_eq!(
        (r.status, r.body["userName"].as_str()),
        (200, Some("5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"))
    );

    let disable = patch(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    let r = scim(&app, "PATCH", &format!("/Users/{id}"), &token, Some(disable)).await;
    assert_eq!(
        (r.status, r.body["active"].clone()),
        (200, json!(false)),
        "a boolean, not the string: {}",
        r.body
    );
    let inactive = format!("/Users?{}", filter("active eq false"));
    assert_eq!(listed(&scim(&app, "GET", &inactive, &token, None).await), (1, vec![id.clone()]));
    let enable = patch(json!([{"op": "Replace", "path": "active", "value": "True"}]));
    let r = scim(&app, "PATCH", &format!("/Users/{id}"), &token, Some(enable)).await;
    assert_eq!((r.status, r.body["active"].clone()), (200, json!(true)), "{}", r.body);

    // Groups.
    let other = create_user(&app, &token, "other@testuser.com").await;
    let entra_group = json!({
        "schemas": [GROUP_URN, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "displayName",
        "meta": {"resourceType": "Group"},
    });
    let r = scim(&app, "POST", "/Groups", &token, Some(entra_group)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let gid = r.body["id"].as_str().unwrap().to_owned();
    let add = |u: &str| {
        patch(
            json!([{"name": "addMember", "op": "Add", "path": "members", "value": [{"$ref": null, "value": u}]}]),
        )
    };
    for u in [&id, &other] {
        let r = scim(&app, "PATCH", &format!("/Groups/{gid}"), &token, Some(add(u))).await;
        assert!(r.status == 200 || r.status == 204, "add member: {}", r.body);
    }
    let lean = format!("/Groups?excludedAttributes=members&{}", filter(r#"displayName eq "displayName""#));
    let r = scim(&app, "GET", &lean, &token, None).await;
    assert_eq!(listed(&r), (1, vec![gid.clone()]));
    assert!(r.body["Resources"][0].get("members").is_none(), "members excluded: {}", r.body);
    let r = scim(&app, "GET", &format!("/Groups/{gid}?excludedAttributes=members"), &token, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("members").is_none() && r.body["displayName"] == "displayName", "{}", r.body);
    let r = scim(&app, "GET", &format!("/Groups/{gid}"), &token, None).await;
    let mut both = vec![id.clone(), other.clone()];
    both.sort();
    assert_eq!(member_ids(&r.body), both, "{}", r.body);
    let members_of = format!("/Groups?{}", filter(&format!("members[value eq \"{id}\"]")));
    assert_eq!(listed(&scim(&app, "GET", &members_of, &token, None).await), (1, vec![gid.clone()]));

    let by_filter = patch(json!([{"op": "Remove", "path": format!("members[value eq \"{id}\"]")}]));
    let r = scim(&app, "PATCH", &format!("/Groups/{gid}"), &token, Some(by_filter)).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    let r = scim(&app, "GET", &format!("/Groups/{gid}"), &token, None).await;
    assert_eq!(member_ids(&r.body), vec![other.clone()], "{}", r.body);
    let by_value = patch(
        json!([{"name": "removeMember", "op": "Remove", "path": "members", "value": [{"$ref": null, "value": other}]}]),
    );
    let r = scim(&app, "PATCH", &format!("/Groups/{gid}"), &token, Some(by_value)).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    let r = scim(&app, "GET", &format!("/Groups/{gid}"), &token, None).await;
    assert_eq!(member_ids(&r.body), Vec::<String>::new(), "Entra's remove with a value list: {}", r.body);
    let rename = patch(
        json!([{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]),
    );
    let r = scim(&app, "PATCH", &format!("/Groups/{gid}"), &token, Some(rename)).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.body);

    assert_eq!(scim(&app, "DELETE", &format!("/Users/{id}"), &token, None).await.status, 204);
    let r = scim(&app, "GET", &format!("/Users/{id}"), &token, None).await;
    super::assert_scim_error(&r, 404, None, "a deleted user");
    assert_eq!(listed(&scim(&app, "GET", &by_external, &token, None).await).0, 0);
    assert_eq!(scim(&app, "DELETE", &format!("/Groups/{gid}"), &token, None).await.status, 204);
}
