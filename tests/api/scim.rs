//! SCIM 2.0 provisioning (API.md §3.2): the organization's SCIM token, the request sequences
//! Okta and Microsoft Entra ID send, what provisioning does to members and sessions, ETags,
//! errors (never a 500), tenant isolation, the audit trail, and scim2-tester's conformance run.

use serde_json::{Value, json};

use crate::helpers::{Backend, Resp, TestApp, access};

mod conformance;
mod effects;
mod errors;
mod sequences;

const V2: &str = "/api/v1/scim/v2";
const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const JANUA_GROUP_URN: &str = "urn:janua:params:scim:schemas:extension:2.0:Group";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM request (`path` under `/api/v1/scim/v2`, query included) with `token` as the bearer.
async fn scim(app: &TestApp, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
    send(
        app,
        method,
        &format!("{V2}{path}"),
        Some(&format!("Bearer {token}")),
        body.map(|b| b.to_string()),
        &[],
    )
    .await
}

/// A request to `url_path` (from the root) with an optional `Authorization`, a raw
/// `application/scim+json` body and extra headers.
async fn send(
    app: &TestApp,
    method: &str,
    url_path: &str,
    authorization: Option<&str>,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = app.client.request(method.parse().unwrap(), app.url(url_path));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/scim+json; charset=utf-8").body(b);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Resp::from(req.send().await.expect("request")).await
}

/// Percent-encodes a query parameter value (everything but RFC 3986's unreserved characters).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `?filter=…` for `f`.
fn filter(f: &str) -> String {
    format!("filter={}", enc(f))
}

/// A PATCH body with these operations.
fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_URN], "Operations": ops})
}

/// Asserts a SCIM `Error` (RFC 7644 §3.12) with this status and, when given, `scimType`.
#[track_caller]
fn assert_scim_error(r: &Resp, status: u16, scim_type: Option<&str>, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(r.body["schemas"], json!([ERROR_URN]), "{what}: an Error body: {}", r.body);
    assert_eq!(r.body["status"], status.to_string(), "{what}: status is a string: {}", r.body);
    if let Some(t) = scim_type {
        assert_eq!(r.body["scimType"], t, "{what}: {}", r.body);
    }
}

/// The `totalResults` of a list and the ids of its `Resources`.
#[track_caller]
fn listed(r: &Resp) -> (u64, Vec<String>) {
    assert_eq!(r.status, 200, "a list: {}", r.body);
    assert_eq!(r.body["schemas"], json!([LIST_URN]), "{}", r.body);
    let ids = r.body["Resources"]
        .as_array()
        .map(|a| a.iter().map(|x| x["id"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default();
    (r.body["totalResults"].as_u64().expect("totalResults"), ids)
}

/// The member ids of a group document.
fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|a| a.iter().map(|m| m["value"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// A server, its owner (`owner@example.com`, access token), their organization (domain
/// `acme.example`) and a SCIM token for it.
struct Provisioned {
    app: TestApp,
    owner: String,
    org: String,
    token: String,
}

async fn provisioned(b: Backend) -> Provisioned {
    provisioned_with(TestApp::spawn(b).await).await
}

async fn provisioned_with(app: TestApp) -> Provisioned {
    let owner = access(&app.signup("owner@example.com").await);
    let org = org_with_domain(&app, &owner, "Acme", "acme.example").await;
    let token = new_token(&app, &owner, &org, "Okta").await["token"].as_str().unwrap().to_owned();
    Provisioned { app, owner, org, token }
}

/// Creates an organization that owns `domain` (so its SCIM token may link existing accounts there).
async fn org_with_domain(app: &TestApp, owner: &str, name: &str, domain: &str) -> String {
    let r =
        app.rest("POST", "/organizations", Some(owner), Some(json!({"name": name, "domain": domain}))).await;
    assert_eq!(r.status, 201, "create organization: {}", r.body);
    r.body["data"]["id"].as_str().unwrap().to_owned()
}

/// Creates a SCIM token over REST as `owner`; returns the `data`.
async fn new_token(app: &TestApp, owner: &str, org: &str, name: &str) -> Value {
    let r = app
        .rest("POST", &format!("/organizations/{org}/scim/tokens"), Some(owner), Some(json!({"name": name})))
        .await;
    assert_eq!(r.status, 201, "create a SCIM token: {}", r.body);
    r.body["data"].clone()
}

/// A minimal user document.
fn user_doc(user_name: &str, email: &str) -> Value {
    json!({
        "schemas": [USER_URN],
        "userName": user_name,
        "name": {"givenName": "Given", "familyName": "Family"},
        "emails": [{"value": email, "type": "work", "primary": true}],
        "active": true,
    })
}

/// Provisions `email` (also its `userName`); returns its resource id.
async fn create_user(app: &TestApp, token: &str, email: &str) -> String {
    let r = scim(app, "POST", "/Users", token, Some(user_doc(email, email))).await;
    assert_eq!(r.status, 201, "create user {email}: {}", r.body);
    r.body["id"].as_str().expect("an id").to_owned()
}

/// Creates a group (carrying `role` when given); returns its id.
async fn create_group(app: &TestApp, token: &str, name: &str, role: Option<&str>) -> String {
    let mut doc = json!({"schemas": [GROUP_URN], "displayName": name});
    if let Some(role) = role {
        doc["schemas"] = json!([GROUP_URN, JANUA_GROUP_URN]);
        doc[JANUA_GROUP_URN] = json!({"role": role});
    }
    let r = scim(app, "POST", "/Groups", token, Some(doc)).await;
    assert_eq!(r.status, 201, "create group {name}: {}", r.body);
    r.body["id"].as_str().expect("an id").to_owned()
}

crate::on_both_databases!(
    scim_tokens_are_shown_once_listed_without_secret_and_revocable,
    only_a_scim_token_opens_the_scim_routes
);

/// A token is shown once (REST and GraphQL), listed without its secret, stamped `lastUsedAt`
/// after use, and answered 401 (a SCIM error with `WWW-Authenticate`) once revoked; a member
/// who is not an admin can neither create nor list tokens.
async fn scim_tokens_are_shown_once_listed_without_secret_and_revocable(b: Backend) {
    let Provisioned { app, owner, org, token } = provisioned(b).await;
    assert!(token.starts_with("jscim_"), "{token}");

    let q = "mutation($org: ID!) { createScimToken(organizationId: $org, input: {name: \"Entra\"}) \
             { id organizationId name prefix token createdAt } }";
    let created = app.gql(Some(&owner), q, json!({"org": org})).await;
    let g = &created["data"]["createScimToken"];
    let gql_token = g["token"].as_str().unwrap_or_else(|| panic!("{created}"));
    assert!(
        gql_token.starts_with(g["prefix"].as_str().unwrap())
            && g["prefix"].as_str().unwrap().starts_with("jscim_")
    );
    assert_eq!((g["organizationId"].as_str(), g["name"].as_str()), (Some(org.as_str()), Some("Entra")));

    let list = app.rest("GET", &format!("/organizations/{org}/scim/tokens"), Some(&owner), None).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(2), "{}", list.body);
    let text = list.body.to_string();
    assert!(!text.contains(&token) && !text.contains(gql_token), "a secret is never listed: {text}");

    // Used once, the token shows when (written off the request path: poll briefly).
    let r = scim(&app, "GET", "/Users", &token, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let used_q = "query($org: ID!) { scimTokens(organizationId: $org) { id name lastUsedAt revokedAt } }";
    let mut last_used = Value::Null;
    for _ in 0..100 {
        let l = app.gql(Some(&owner), used_q, json!({"org": org})).await;
        last_used = l["data"]["scimTokens"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["name"] == "Okta"))
            .map(|t| t["lastUsedAt"].clone())
            .unwrap_or(Value::Null);
        if !last_used.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(last_used.is_string(), "lastUsedAt is set after use: {last_used}");

    // Revoked: the next request is a SCIM 401.
    let okta_id = list.body["data"].as_array().unwrap().iter().find(|t| t["name"] == "Okta").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.rest("DELETE", &format!("/scim/tokens/{okta_id}"), Some(&owner), None).await;
    assert!(r.status == 200 || r.status == 204, "revoke: {}", r.body);
    let r = scim(&app, "GET", "/Users", &token, None).await;
    assert_scim_error(&r, 401, None, "a revoked token");
    assert!(r.header("www-authenticate").starts_with("Bearer"), "WWW-Authenticate: {:?}", r.headers);
    assert_eq!(scim(&app, "GET", "/Users", gql_token, None).await.status, 200, "the other token still works");

    // A member who is not an admin cannot create or list tokens; an admin can.
    let member = access(&app.signup("member@example.com").await);
    app.add_member(&owner, &org, "member@example.com", "member").await;
    let r = app
        .rest("POST", &format!("/organizations/{org}/scim/tokens"), Some(&member), Some(json!({"name": "x"})))
        .await;
    assert_eq!(r.status, 403, "a member creates no SCIM token: {}", r.body);
    let r = app.gql(Some(&member), q, json!({"org": org})).await;
    assert!(
        r["data"]["createScimToken"].is_null() && r["errors"][0]["extensions"]["code"].is_string(),
        "{r}"
    );
    let r = app.rest("GET", &format!("/organizations/{org}/scim/tokens"), Some(&member), None).await;
    assert_eq!(r.status, 403, "a member lists no SCIM token: {}", r.body);
    let r = app.rest("DELETE", &format!("/scim/tokens/{okta_id}"), Some(&member), None).await;
    assert_eq!(r.status, 403, "a member revokes no SCIM token: {}", r.body);
    let admin = access(&app.signup("orgadmin@example.com").await);
    app.add_member(&owner, &org, "orgadmin@example.com", "admin").await;
    new_token(&app, &admin, &org, "by an admin").await;
    // Someone outside the organization does not learn it exists.
    let outsider = access(&app.signup("outsider@example.com").await);
    let r = app
        .rest(
            "POST",
            &format!("/organizations/{org}/scim/tokens"),
            Some(&outsider),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

/// The SCIM routes take an organization's SCIM token and nothing else: no bearer, a user's
/// access token, an API key, a made-up `jscim_` token or Basic credentials are each a SCIM 401;
/// the discovery documents are public.
async fn only_a_scim_token_opens_the_scim_routes(b: Backend) {
    let Provisioned { app, owner, org, token } = provisioned(b).await;
    let r = app
        .rest(
            "POST",
            &format!("/organizations/{org}/api-keys"),
            Some(&owner),
            Some(json!({"name": "ci", "scopes": ["users:read"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.body["data"]["key"].as_str().unwrap().to_owned();

    let jwt = format!("Bearer {owner}");
    let basic = format!("Basic {}", "b3duZXJAZXhhbXBsZS5jb206cGFzc3dvcmQ=");
    let made_up = format!("Bearer jscim_{}", "A".repeat(43));
    for prefix in [V2, "/api/v1/scim"] {
        for (what, auth, headers) in [
            ("no credentials", None, vec![]),
            ("a user's access token", Some(jwt.as_str()), vec![]),
            ("an API key", None, vec![("x-api-key", key.as_str())]),
            ("a made-up SCIM token", Some(made_up.as_str()), vec![]),
            ("Basic credentials", Some(basic.as_str()), vec![]),
            ("a bare token without a scheme", Some(token.as_str()), vec![]),
        ] {
            for (method, path) in [("GET", "/Users"), ("GET", "/Groups"), ("POST", "/Users")] {
                let body = (method == "POST").then(|| user_doc("x@example.com", "x@example.com").to_string());
                let r = send(&app, method, &format!("{prefix}{path}"), auth, body, &headers).await;
                assert_scim_error(&r, 401, None, &format!("{what}: {method} {prefix}{path}"));
                assert!(!r.header("www-authenticate").is_empty(), "{what}: WWW-Authenticate");
            }
        }
        let r =
            send(&app, "GET", &format!("{prefix}/Users"), Some(&format!("Bearer {token}")), None, &[]).await;
        assert_eq!(r.status, 200, "{prefix}: {}", r.body);
        assert!(r.header("content-type").starts_with("application/scim+json"), "{:?}", r.headers);
    }
    // Nothing was provisioned by any of them.
    assert_eq!(listed(&scim(&app, "GET", "/Users", &token, None).await).0, 0);
    // Discovery needs no token.
    let r = send(&app, "GET", &format!("{V2}/ServiceProviderConfig"), None, None, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["patch"]["supported"], true, "{}", r.body);
}
