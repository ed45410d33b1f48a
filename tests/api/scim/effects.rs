//! What provisioning does in Janua: an active SCIM user is a member of the organization, a
//! deactivated or deleted one is not and is signed out everywhere (their other organizations
//! keep them); a role-carrying group gives its members its role; one organization's token never
//! sees or changes another's; every change is audited as the SCIM token's.

use serde_json::json;

use super::{
    GROUP_URN, Provisioned, USER_URN, create_group, create_user, filter, listed, new_token, patch,
    provisioned, scim, user_doc,
};
use crate::helpers::{Backend, TestApp, access};

crate::on_both_databases!(
    deactivation_signs_out_and_ends_membership_in_this_organization_only,
    a_role_carrying_group_gives_its_members_its_role,
    one_organizations_token_never_sees_or_changes_another,
    provisioning_is_audited_as_the_scim_token,
    a_user_without_email_gets_a_placeholder_account_until_one_is_sent
);

/// The role `user` holds in `org`, as the organization's members list shows it (`None`: not a member).
async fn member_role(app: &TestApp, owner: &str, org: &str, user: &str) -> Option<String> {
    let r = app.rest("GET", &format!("/organizations/{org}/members?limit=100"), Some(owner), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["user"]["id"] == user)
        .map(|m| m["role"].as_str().unwrap().to_owned())
}

/// The role `/users/{id}/roles` shows for `org`.
async fn role_shown(app: &TestApp, token: &str, user: &str, org: &str) -> Option<String> {
    let r = app.rest("GET", &format!("/users/{user}/roles"), Some(token), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]["organizations"]
        .as_array()
        .expect("organizations")
        .iter()
        .find(|o| o["organization_id"] == org)
        .map(|o| o["role"].as_str().unwrap().to_owned())
}

/// A person with a password and an organization of their own is provisioned by Acme's IdP
/// (the account is linked, not duplicated: the email is in Acme's domain); deactivating them revokes their session at once
/// and ends the Acme membership but not the other; reactivating restores it; deleting them ends
/// it again while the account stays.
async fn deactivation_signs_out_and_ends_membership_in_this_organization_only(b: Backend) {
    let Provisioned { app, owner, org, token } = provisioned(b).await;
    let pat = app.signup("pat@acme.example").await;
    let pat_id = pat["user"]["id"].as_str().unwrap().to_owned();
    let own_org = app.org(&access(&pat), "Pat's own").await;

    let r =
        scim(&app, "POST", "/Users", &token, Some(user_doc("Pat@Acme.Example", "pat@acme.example"))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["id"], pat_id.as_str(), "the existing account is linked: {}", r.body);
    assert_eq!(member_role(&app, &owner, &org, &pat_id).await.as_deref(), Some("member"));
    let session = access(&app.signin("pat@acme.example").await);
    assert_eq!(app.rest("GET", "/auth/me", Some(&session), None).await.status, 200);

    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    let r = scim(&app, "PATCH", &format!("/Users/{pat_id}"), &token, Some(off.clone())).await;
    assert_eq!((r.status, r.body["active"].as_bool()), (200, Some(false)), "{}", r.body);
    for t in [&session, &access(&pat)] {
        let me = app.rest("GET", "/auth/me", Some(t), None).await;
        assert_eq!((me.status, me.code()), (401, "SESSION_REVOKED"), "{}", me.body);
    }
    assert_eq!(member_role(&app, &owner, &org, &pat_id).await, None, "no longer an Acme member");
    let again = access(&app.signin("pat@acme.example").await);
    assert_eq!(
        role_shown(&app, &again, &pat_id, &own_org).await.as_deref(),
        Some("owner"),
        "the other org keeps them"
    );
    assert_eq!(role_shown(&app, &again, &pat_id, &org).await, None);
    // Deactivating again changes nothing more: the new session lives.
    let r = scim(&app, "PATCH", &format!("/Users/{pat_id}"), &token, Some(off)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let on = patch(json!([{"op": "replace", "path": "active", "value": true}]));
    let r = scim(&app, "PATCH", &format!("/Users/{pat_id}"), &token, Some(on)).await;
    assert_eq!((r.status, r.body["active"].as_bool()), (200, Some(true)), "{}", r.body);
    assert_eq!(member_role(&app, &owner, &org, &pat_id).await.as_deref(), Some("member"), "a member again");

    assert_eq!(scim(&app, "DELETE", &format!("/Users/{pat_id}"), &token, None).await.status, 204);
    assert_eq!(member_role(&app, &owner, &org, &pat_id).await, None);
    let me = app.rest("GET", "/auth/me", Some(&again), None).await;
    assert_eq!((me.status, me.code()), (401, "SESSION_REVOKED"), "deleting signs out too: {}", me.body);
    let back = access(&app.signin("pat@acme.example").await);
    assert_eq!(
        role_shown(&app, &back, &pat_id, &own_org).await.as_deref(),
        Some("owner"),
        "the account stays"
    );

    // A user created inactive is never a member.
    let r = scim(
        &app,
        "POST",
        "/Users",
        &token,
        Some(json!({"schemas": [USER_URN], "userName": "late@example.com", "active": false})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let late = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(member_role(&app, &owner, &org, &late).await, None);
}

/// Adding a user to a group with role `admin` makes them an admin of the organization; removing
/// them (or deleting the group) brings them back to `member`; a role a group cannot give is refused.
async fn a_role_carrying_group_gives_its_members_its_role(b: Backend) {
    let Provisioned { app, owner, org, token } = provisioned(b).await;
    let uid = create_user(&app, &token, "ada@example.com").await;
    let admins = create_group(&app, &token, "Janua Admins", Some("admin")).await;
    let viewers = create_group(&app, &token, "Janua Viewers", Some("viewer")).await;
    assert_eq!(role_shown(&app, &owner, &uid, &org).await.as_deref(), Some("member"));

    let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]));
    for g in [&viewers, &admins] {
        let r = scim(&app, "PATCH", &format!("/Groups/{g}"), &token, Some(add.clone())).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(
        role_shown(&app, &owner, &uid, &org).await.as_deref(),
        Some("admin"),
        "the highest of its groups"
    );
    assert_eq!(member_role(&app, &owner, &org, &uid).await.as_deref(), Some("admin"));

    let remove = patch(json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]));
    let r = scim(&app, "PATCH", &format!("/Groups/{admins}"), &token, Some(remove)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        role_shown(&app, &owner, &uid, &org).await.as_deref(),
        Some("viewer"),
        "the remaining group's role"
    );
    assert_eq!(scim(&app, "DELETE", &format!("/Groups/{viewers}"), &token, None).await.status, 204);
    assert_eq!(
        role_shown(&app, &owner, &uid, &org).await.as_deref(),
        Some("member"),
        "no role-carrying group left"
    );

    // The group's role itself changes: its members follow.
    let r = scim(&app, "PATCH", &format!("/Groups/{admins}"), &token, Some(add)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let demote = patch(
        json!([{"op": "replace", "path": format!("{}:role", super::JANUA_GROUP_URN), "value": "viewer"}]),
    );
    let r = scim(&app, "PATCH", &format!("/Groups/{admins}"), &token, Some(demote)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(role_shown(&app, &owner, &uid, &org).await.as_deref(), Some("viewer"));

    // Provisioning never makes an owner.
    let bad = json!({"schemas": [GROUP_URN, super::JANUA_GROUP_URN], "displayName": "Owners", super::JANUA_GROUP_URN: {"role": "owner"}});
    let r = scim(&app, "POST", "/Groups", &token, Some(bad)).await;
    super::assert_scim_error(&r, 400, Some("invalidValue"), "role owner");
}

/// Two organizations, A and B, each with its token and domain; one person is provisioned in both
/// (A creates the account, B links it: the email is in B's domain). A's token never lists,
/// reads, finds, changes or deletes B's users and groups, cannot put B's user into an A group,
/// cannot claim B's owner (an account outside A's domains and members), and deleting the shared
/// person in A leaves them in B (with B's `externalId`).
async fn one_organizations_token_never_sees_or_changes_another(b: Backend) {
    let Provisioned { app, owner, org: org_a, token: a } = provisioned(b).await;
    let owner_b = access(&app.signup("owner-b@beta.example").await);
    let org_b = super::org_with_domain(&app, &owner_b, "Beta", "beta.example").await;
    let b = new_token(&app, &owner_b, &org_b, "Beta IdP").await["token"].as_str().unwrap().to_owned();

    let ua = create_user(&app, &a, "alice@acme.example").await;
    let ub = create_user(&app, &b, "bob@beta.example").await;
    let ga = create_group(&app, &a, "Alpha team", None).await;
    let gb = create_group(&app, &b, "Beta team", None).await;
    let mut shared_doc = user_doc("sam@beta.example", "sam@beta.example");
    shared_doc["externalId"] = json!("a-sam");
    let r = scim(&app, "POST", "/Users", &a, Some(shared_doc.clone())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sam = r.body["id"].as_str().unwrap().to_owned();
    shared_doc["externalId"] = json!("b-sam");
    let r = scim(&app, "POST", "/Users", &b, Some(shared_doc)).await;
    assert_eq!((r.status, r.body["id"].as_str()), (201, Some(sam.as_str())), "the same account: {}", r.body);

    let (total, ids) = listed(&scim(&app, "GET", "/Users", &a, None).await);
    assert_eq!(total, 2, "{ids:?}");
    assert!(ids.contains(&ua) && ids.contains(&sam) && !ids.contains(&ub));
    assert_eq!(listed(&scim(&app, "GET", "/Groups", &a, None).await), (1, vec![ga.clone()]));
    for f in [
        r#"userName eq "bob@beta.example""#.to_owned(),
        format!("id eq \"{ub}\""),
        r#"emails.value co "bob@""#.to_owned(),
        r#"externalId eq "b-sam""#.to_owned(),
    ] {
        assert_eq!(listed(&scim(&app, "GET", &format!("/Users?{}", filter(&f)), &a, None).await).0, 0, "{f}");
    }
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName eq \"bob@beta.example\""});
    assert_eq!(listed(&scim(&app, "POST", "/Users/.search", &a, Some(search)).await).0, 0);
    let (total, ids) = listed(&scim(&app, "POST", "/.search", &a, Some(json!({}))).await);
    assert_eq!(total, 3, "a root search: A's two users and one group: {ids:?}");
    assert!(!ids.contains(&ub) && !ids.contains(&gb) && ids.contains(&ga));
    let by_name = format!("/Groups?{}", filter(r#"displayName eq "Beta team""#));
    assert_eq!(listed(&scim(&app, "GET", &by_name, &a, None).await).0, 0);
    let r = scim(&app, "GET", &format!("/Users/{sam}"), &a, None).await;
    assert_eq!(r.body["externalId"], "a-sam", "A's document of the shared person: {}", r.body);

    let rename = patch(json!([{"op": "replace", "path": "displayName", "value": "hijacked"}]));
    for (method, path, body) in [
        ("GET", format!("/Users/{ub}"), None),
        ("PUT", format!("/Users/{ub}"), Some(user_doc("bob@beta.example", "bob@beta.example"))),
        (
            "PATCH",
            format!("/Users/{ub}"),
            Some(patch(json!([{"op": "replace", "path": "active", "value": false}]))),
        ),
        ("DELETE", format!("/Users/{ub}"), None),
        ("GET", format!("/Groups/{gb}"), None),
        ("PUT", format!("/Groups/{gb}"), Some(json!({"schemas": [GROUP_URN], "displayName": "hijacked"}))),
        ("PATCH", format!("/Groups/{gb}"), Some(rename)),
        ("DELETE", format!("/Groups/{gb}"), None),
    ] {
        let r = scim(&app, method, &path, &a, body).await;
        super::assert_scim_error(&r, 404, None, &format!("A's token: {method} {path}"));
    }
    let add_b = patch(json!([{"op": "add", "path": "members", "value": [{"value": ub}]}]));
    let r = scim(&app, "PATCH", &format!("/Groups/{ga}"), &a, Some(add_b)).await;
    super::assert_scim_error(&r, 400, None, "B's user in an A group");
    let with_b = json!({"schemas": [GROUP_URN], "displayName": "Sneaky", "members": [{"value": ub}]});
    let r = scim(&app, "POST", "/Groups", &a, Some(with_b)).await;
    super::assert_scim_error(&r, 400, None, "a new A group with B's user");

    // An existing account outside A's domains and members is not A's to claim (and so to sign out).
    let claim = super::user_doc("owner-b@beta.example", "owner-b@beta.example");
    let r = scim(&app, "POST", "/Users", &a, Some(claim.clone())).await;
    super::assert_scim_error(&r, 409, Some("uniqueness"), "claiming B's owner");
    let mut inactive = claim;
    inactive["active"] = json!(false);
    let r = scim(&app, "POST", "/Users", &a, Some(inactive)).await;
    super::assert_scim_error(&r, 409, Some("uniqueness"), "claiming B's owner, inactive");
    let me = app.rest("GET", "/auth/me", Some(&owner_b), None).await;
    assert_eq!(me.status, 200, "B's owner is still signed in: {}", me.body);

    // B is untouched, and A deleting the shared person leaves them in B.
    let r = scim(&app, "GET", &format!("/Users/{ub}"), &b, None).await;
    assert_eq!(
        (r.status, r.body["active"].as_bool(), r.body["meta"]["version"].clone()),
        (200, Some(true), json!("W/\"1\""))
    );
    let r = scim(&app, "GET", &format!("/Groups/{gb}"), &b, None).await;
    assert_eq!((r.status, r.body["displayName"].as_str()), (200, Some("Beta team")), "{}", r.body);
    assert_eq!(scim(&app, "DELETE", &format!("/Users/{sam}"), &a, None).await.status, 204);
    assert_eq!(member_role(&app, &owner, &org_a, &sam).await, None);
    assert_eq!(member_role(&app, &owner_b, &org_b, &sam).await.as_deref(), Some("member"));
    let r = scim(&app, "GET", &format!("/Users/{sam}"), &b, None).await;
    assert_eq!((r.status, r.body["externalId"].as_str()), (200, Some("b-sam")), "{}", r.body);
}

/// Provisioning, a group and deprovisioning each leave an audit row acted by the SCIM token,
/// in the organization.
async fn provisioning_is_audited_as_the_scim_token(b: Backend) {
    let Provisioned { app, org, token, .. } = provisioned(b).await;
    let uid = create_user(&app, &token, "audited@example.com").await;
    let gid = create_group(&app, &token, "Audited", None).await;
    let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]));
    assert_eq!(scim(&app, "PATCH", &format!("/Groups/{gid}"), &token, Some(add)).await.status, 200);
    assert_eq!(scim(&app, "DELETE", &format!("/Users/{uid}"), &token, None).await.status, 204);
    let admin = app.admin("root@example.com").await;
    for (action, target) in [
        ("scim.user.provisioned", uid.as_str()),
        ("scim.group.created", gid.as_str()),
        ("scim.group.updated", gid.as_str()),
        ("scim.user.deprovisioned", uid.as_str()),
    ] {
        let r = app.rest("GET", &format!("/admin/audit-logs?action={action}"), Some(&admin), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let rows = r.body["data"].as_array().expect("rows");
        assert_eq!(rows.len(), 1, "{action}: {}", r.body);
        let row = &rows[0];
        assert_eq!(row["actor"]["type"], "scim_token", "{action}: {row}");
        assert_eq!(row["organization_id"], org.as_str(), "{action}: {row}");
        assert_eq!(row["target"]["id"], target, "{action}: {row}");
    }
}

/// SCIM requires only `userName`: a user sent without email is provisioned (an account at a
/// unique `provisioned.invalid` address, shown nowhere in SCIM); two such users are two
/// accounts; an email sent later becomes the account's.
async fn a_user_without_email_gets_a_placeholder_account_until_one_is_sent(b: Backend) {
    let Provisioned { app, owner, org, token } = provisioned(b).await;
    let mut ids = Vec::new();
    for name in ["jdoe", "asmith"] {
        let r = scim(&app, "POST", "/Users", &token, Some(json!({"schemas": [USER_URN], "userName": name})))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(r.body.get("emails").is_none(), "no placeholder in the resource: {}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    assert_ne!(ids[0], ids[1], "two accounts");
    let email_of = |id: String| {
        let (app, owner, org) = (&app, &owner, &org);
        async move {
            let r =
                app.rest("GET", &format!("/organizations/{org}/members?limit=100"), Some(owner), None).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let m =
                r.body["data"].as_array().unwrap().iter().find(|m| m["user"]["id"] == id.as_str()).cloned();
            m.expect("a member")["user"]["email"].as_str().unwrap().to_owned()
        }
    };
    let placeholder = email_of(ids[0].clone()).await;
    assert!(placeholder.ends_with("@provisioned.invalid"), "{placeholder}");

    let ops =
        json!([{"op": "add", "path": "emails", "value": [{"value": "jdoe@acme.example", "primary": true}]}]);
    let r = scim(&app, "PATCH", &format!("/Users/{}", ids[0]), &token, Some(patch(ops))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["emails"][0]["value"], "jdoe@acme.example", "{}", r.body);
    assert_eq!(email_of(ids[0].clone()).await, "jdoe@acme.example");
}
