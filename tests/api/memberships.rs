//! Membership as the only source of an organization admin's view of a person (issue 13 item 3),
//! and the last-owner rule under concurrency (item 4).

use crate::helpers::{Backend, TestApp, access};
use crate::subscriptions::{connect, next, subscribe};

crate::on_both_databases!(
    only_membership_shows_a_person_to_an_org_admin,
    two_owners_leaving_at_once_leave_one_owner,
    owner_leaving_while_the_other_deletes_the_account_leaves_one_owner
);

/// An org admin sees a person's profile, roles and session events exactly while that person is
/// a member: not before they join, not after they leave, and not through another organization
/// where the admin is only a member.
async fn only_membership_shows_a_person_to_an_org_admin(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = access(&app.signup("orgadmin@example.com").await);
    let person = app.signup("person@example.com").await;
    let person_id = person["user"]["id"].as_str().unwrap().to_owned();
    let org = app.org(&admin, "Acme").await;
    // The person owns another organization, where the admin is only a member.
    let elsewhere = app.org(&access(&person), "Elsewhere").await;
    app.add_member(&access(&person), &elsewhere, "orgadmin@example.com", "member").await;

    let sees = |token: String| {
        let app = &app;
        let person_id = person_id.clone();
        async move {
            let one = app.rest("GET", &format!("/users/{person_id}"), Some(&token), None).await.status;
            let roles =
                app.rest("GET", &format!("/users/{person_id}/roles"), Some(&token), None).await.status;
            let list = app.rest("GET", "/users?search=person", Some(&token), None).await;
            let listed = list.body["data"].as_array().is_some_and(|d| d.iter().any(|u| u["id"] == person_id));
            (one, roles, listed)
        }
    };
    assert_eq!(sees(admin.clone()).await, (404, 404, false), "not a member of the admin's org");

    // The admin watches session events: the person's sign-in is not shown before membership.
    let mut ws = connect(&app, "graphql-transport-ws", &admin).await;
    subscribe(&mut ws, "subscribe", None).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // let the subscription register
    app.signin("person@example.com").await;
    let own = app.signin("orgadmin@example.com").await;
    app.drain_events().await;
    let e = next(&mut ws).await;
    assert_eq!(
        e["payload"]["data"]["sessionEvents"]["sessionId"], own["tokens"]["session_id"],
        "the first event the admin sees is its own sign-in, not the outsider's: {e}"
    );

    // While a member: visible.
    app.add_member(&admin, &org, "person@example.com", "member").await;
    assert_eq!(sees(admin.clone()).await, (200, 200, true), "a member of the admin's org");
    let member_signin = app.signin("person@example.com").await;
    app.drain_events().await;
    let e = next(&mut ws).await;
    assert_eq!(
        e["payload"]["data"]["sessionEvents"]["sessionId"], member_signin["tokens"]["session_id"],
        "{e}"
    );

    // After leaving: not visible any more.
    let person_token = access(&member_signin);
    let r = app
        .rest("DELETE", &format!("/organizations/{org}/members/{person_id}"), Some(&person_token), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(sees(admin.clone()).await, (404, 404, false), "left the admin's org");
    app.signin("person@example.com").await;
    let own = app.signin("orgadmin@example.com").await;
    app.drain_events().await;
    let e = next(&mut ws).await;
    assert_eq!(e["payload"]["data"]["sessionEvents"]["sessionId"], own["tokens"]["session_id"], "{e}");
}

/// An organization with two owners, A and B; returns (org, A's token and id, B's token and id).
async fn two_owners(app: &TestApp, n: usize) -> (String, (String, String), (String, String)) {
    let a = app.signup(&format!("owner-a{n}@example.com")).await;
    let b = app.signup(&format!("owner-b{n}@example.com")).await;
    let (a_token, b_token) = (access(&a), access(&b));
    let org = app.org(&a_token, &format!("Race {n}")).await;
    app.add_member(&a_token, &org, &format!("owner-b{n}@example.com"), "owner").await;
    let id = |v: &serde_json::Value| v["user"]["id"].as_str().unwrap().to_owned();
    (org, (a_token, id(&a)), (b_token, id(&b)))
}

async fn owners_of(app: &TestApp, admin: &str, org: &str) -> usize {
    let r = app.rest("GET", &format!("/organizations/{org}/members?limit=100"), Some(admin), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].as_array().unwrap().iter().filter(|m| m["role"] == "owner").count()
}

const TRIALS: usize = 20;

/// Both owners leave at the same moment: exactly one succeeds, the other gets 409 `last_owner`.
async fn two_owners_leaving_at_once_leave_one_owner(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.db_max_connections = Some(8)).await;
    let root = app.admin("root@example.com").await;
    for n in 0..TRIALS {
        let (org, (a, a_id), (b, b_id)) = two_owners(&app, n).await;
        let leave = |token: String, id: String| {
            let (app, org) = (&app, org.clone());
            async move {
                app.rest("DELETE", &format!("/organizations/{org}/members/{id}"), Some(&token), None).await
            }
        };
        let (ra, rb) = tokio::join!(leave(a, a_id), leave(b, b_id));
        let mut statuses = [ra.status, rb.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [204, 409], "trial {n}: {} / {}", ra.body, rb.body);
        let refused = if ra.status == 409 { &ra } else { &rb };
        assert_eq!(refused.body["error"]["details"]["reason"], "last_owner", "{}", refused.body);
        assert_eq!(owners_of(&app, &root, &org).await, 1, "trial {n}");
    }
}

/// One owner leaves while the other deletes their account (which ends their memberships).
async fn owner_leaving_while_the_other_deletes_the_account_leaves_one_owner(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.db_max_connections = Some(8)).await;
    let root = app.admin("root@example.com").await;
    for n in 0..TRIALS {
        let (org, (a, a_id), (b, b_id)) = two_owners(&app, n).await;
        let (leave_path, delete_path) =
            (format!("/organizations/{org}/members/{a_id}"), format!("/users/{b_id}"));
        let leave = app.rest("DELETE", &leave_path, Some(&a), None);
        let delete = app.rest("DELETE", &delete_path, Some(&b), None);
        let (ra, rb) = tokio::join!(leave, delete);
        let mut statuses = [ra.status, rb.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [204, 409], "trial {n}: {} / {}", ra.body, rb.body);
        assert_eq!(owners_of(&app, &root, &org).await, 1, "trial {n}");
    }
}
