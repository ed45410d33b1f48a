//! Every directory route × every kind of caller, against the expected status of each cell.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, access};

crate::on_both_databases!(every_route_for_every_caller);

/// The callers, in the column order of the table below.
const CALLERS: [&str; 10] = [
    "anonymous",
    "plain",
    "member",
    "org_admin",
    "owner",
    "other_org",
    "admin",
    "key",
    "key_no_scope",
    "admin_key",
];

struct Fixture {
    app: TestApp,
    tokens: Vec<Option<(bool, String)>>, // (is_api_key, secret)
    org: String,
    member_id: String,
    key_id: String,
    /// The member's own session, personal webhook endpoint and passkey.
    session: String,
    hook: String,
    passkey: String,
    /// A webhook endpoint of the organization (its admins manage it).
    org_hook: String,
    /// A SAML identity provider of the organization, serving `matrix.example.com`.
    provider: String,
    /// A SCIM token of the organization (its secret, its id).
    scim: (String, String),
    /// An open invitation of the organization.
    invitation: String,
}

/// A SAML provider's body for `org` (`domain`: the email domain it serves).
fn saml_provider(org: &str, domain: &str) -> Value {
    json!({
        "organization_id": org,
        "name": "Matrix IdP",
        "protocol": "saml",
        "saml_entity_id": format!("https://idp.{domain}/saml"),
        "saml_sso_url": format!("https://idp.{domain}/sso"),
        "saml_certificate": include_str!("../fixtures/contract-idp.pem"),
        "allowed_domains": [domain],
    })
}

async fn fixture(b: Backend) -> Fixture {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("admin@example.com").await;
    let owner = access(&app.signup("owner@example.com").await);
    let org = app.org(&owner, "Matrix").await;
    let mut tokens = vec![None];
    for (email, role) in [("plain", None), ("member", Some("member")), ("orgadmin", Some("admin"))] {
        let s = app.signup(&format!("{email}@example.com")).await;
        if let Some(role) = role {
            app.add_member(&owner, &org, &format!("{email}@example.com"), role).await;
        }
        tokens.push(Some((false, access(&s))));
    }
    tokens.push(Some((false, owner.clone())));
    let other = access(&app.signup("other@example.com").await);
    app.org(&other, "Elsewhere").await;
    tokens.push(Some((false, other)));
    tokens.push(Some((false, admin.clone())));
    let mk = |org: Option<String>, scopes: Vec<&'static str>, token: String| {
        let app = &app;
        async move {
            let (path, name) = match &org {
                Some(o) => (format!("/organizations/{o}/api-keys"), "automation"),
                None => ("/admin/api-keys".to_owned(), "admin automation"),
            };
            let r =
                app.rest("POST", &path, Some(&token), Some(json!({"name": name, "scopes": scopes}))).await;
            assert_eq!(r.status, 201, "{}", r.body);
            (
                r.body["data"]["key"].as_str().unwrap().to_owned(),
                r.body["data"]["api_key"]["id"].as_str().unwrap().to_owned(),
            )
        }
    };
    let all = vec![
        "users:read",
        "organizations:read",
        "organizations:write",
        "members:read",
        "members:write",
        "audit:read",
    ];
    let (key, _) = mk(Some(org.clone()), all, owner.clone()).await;
    let (weak, key_id) = mk(Some(org.clone()), vec!["audit:read"], owner.clone()).await;
    let (admin_key, _) = mk(None, vec!["admin:read"], admin).await;
    tokens.extend([Some((true, key)), Some((true, weak)), Some((true, admin_key))]);
    let members = app.rest("GET", &format!("/organizations/{org}/members"), Some(&owner), None).await;
    let member_id = members.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"]["email"] == "member@example.com")
        .unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let member = tokens[2].clone().expect("the member's token").1;
    let sessions = app.rest("GET", "/sessions", Some(&member), None).await;
    let session = sessions.body["data"][0]["id"].as_str().expect("a session").to_owned();
    let hook_body = |org: Option<&str>| json!({"url": "https://hooks.example.com/janua", "events": ["user.updated"], "organization_id": org});
    let r = app.rest("POST", "/webhooks", Some(&member), Some(hook_body(None))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let hook = r.body["data"]["webhook"]["id"].as_str().expect("an endpoint").to_owned();
    let r = app.rest("POST", "/webhooks", Some(&owner), Some(hook_body(Some(&org)))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let org_hook = r.body["data"]["webhook"]["id"].as_str().expect("an endpoint").to_owned();
    let mut authenticator = crate::passkeys::ResidentToken::new();
    let pk = crate::passkeys::register(&app, &member, &mut authenticator, Some("laptop")).await;
    let passkey = pk["id"].as_str().expect("a passkey").to_owned();
    let r = app
        .rest("POST", "/sso/providers", Some(&owner), Some(saml_provider(&org, "matrix.example.com")))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let provider = r.body["data"]["id"].as_str().expect("a provider").to_owned();
    let r = app
        .rest(
            "POST",
            &format!("/organizations/{org}/scim/tokens"),
            Some(&owner),
            Some(json!({"name": "idp"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let scim = (
        r.body["data"]["token"].as_str().expect("a SCIM token").to_owned(),
        r.body["data"]["id"].as_str().expect("its id").to_owned(),
    );
    let r = app
        .rest(
            "POST",
            "/invitations",
            Some(&owner),
            Some(json!({"organization_id": org, "email": "invitee@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let invitation = r.body["data"]["invitation"]["id"].as_str().expect("an invitation").to_owned();
    Fixture {
        app,
        tokens,
        org,
        member_id,
        key_id,
        session,
        hook,
        passkey,
        org_hook,
        provider,
        scim,
        invitation,
    }
}

/// `path` with the fixture's ids in place of `{org}`, `{member}`, ….
fn fill(f: &Fixture, path: &str) -> String {
    path.replace("{org}", &f.org)
        .replace("{member}", &f.member_id)
        .replace("{key}", &f.key_id)
        .replace("{session}", &f.session)
        .replace("{hook}", &f.hook)
        .replace("{org_hook}", &f.org_hook)
        .replace("{passkey}", &f.passkey)
        .replace("{provider}", &f.provider)
        .replace("{scim_token}", &f.scim.1)
        .replace("{invitation}", &f.invitation)
}

async fn call(f: &Fixture, caller: usize, method: &str, path: &str, body: Option<Value>) -> u16 {
    let path = fill(f, path);
    let body = body.map(|b| serde_json::from_str(&b.to_string().replace("{org}", &f.org)).expect("JSON"));
    match &f.tokens[caller] {
        None => f.app.rest(method, &path, None, body).await.status,
        Some((false, t)) => f.app.rest(method, &path, Some(t), body).await.status,
        Some((true, k)) => f.app.rest_key(method, &path, k, body).await.status,
    }
}

async fn every_route_for_every_caller(b: Backend) {
    #[rustfmt::skip]
    let table: Vec<(&str, &str, Option<Value>, [u16; 10])> = vec![
        //                                                               anon plain member oadm owner other admin key  weak admkey
        ("GET", "/auth/me", None,                                        [401, 200, 200, 200, 200, 200, 200, 403, 403, 403]),
        ("GET", "/sessions", None,                                       [401, 200, 200, 200, 200, 200, 200, 403, 403, 403]),
        ("GET", "/users", None,                                          [401, 403, 403, 200, 200, 200, 200, 200, 403, 403]),
        ("GET", "/users/{member}", None,                                 [401, 404, 200, 200, 200, 404, 200, 200, 404, 404]),
        ("GET", "/users/{member}/roles", None,                           [401, 404, 200, 200, 200, 404, 200, 200, 404, 404]),
        ("PUT", "/users/{member}", Some(json!({"name": "N"})),           [401, 404, 200, 403, 403, 404, 200, 403, 404, 404]),
        ("DELETE", "/users/{member}", None,                              [401, 404, 204, 403, 403, 404, 204, 403, 404, 404]),
        ("GET", "/organizations", None,                                  [401, 200, 200, 200, 200, 200, 200, 200, 403, 403]),
        ("POST", "/organizations", Some(json!({"name": "New Org"})),     [401, 201, 201, 201, 201, 201, 201, 403, 403, 403]),
        ("GET", "/organizations/{org}", None,                            [401, 404, 200, 200, 200, 404, 200, 200, 404, 404]),
        ("PUT", "/organizations/{org}", Some(json!({"description": "d"})), [401, 404, 403, 200, 200, 404, 200, 200, 404, 404]),
        ("GET", "/organizations/{org}/members", None,                    [401, 404, 200, 200, 200, 404, 200, 200, 404, 404]),
        // A person who administers the organization invites (202); administrators and keys add.
        ("POST", "/organizations/{org}/members", Some(json!({"email": "plain@example.com"})),
                                                                         [401, 404, 403, 202, 202, 404, 201, 201, 404, 404]),
        // Invitations: the organization's admins and owners, and a members:write key.
        ("GET", "/invitations?organization_id={org}", None,              [401, 404, 403, 200, 200, 404, 200, 200, 404, 404]),
        ("GET", "/invitations", None,                                    [401, 200, 200, 200, 200, 200, 200, 200, 404, 403]),
        ("POST", "/invitations", Some(json!({"organization_id": "{org}", "email": "newcomer@example.com", "role": "member"})),
                                                                         [401, 404, 403, 201, 201, 404, 201, 201, 404, 404]),
        ("POST", "/invitations/{invitation}/resend", None,               [401, 404, 403, 200, 200, 404, 200, 200, 404, 404]),
        ("DELETE", "/invitations/{invitation}", None,                    [401, 404, 403, 200, 200, 404, 200, 200, 404, 404]),
        // The token is the credential: a bad one is refused the same for all.
        ("POST", "/invitations/accept", Some(json!({"token": "not-a-token"})),
                                                                         [400, 400, 400, 400, 400, 400, 400, 400, 400, 400]),
        ("PUT", "/organizations/{org}/members/{member}", Some(json!({"role": "viewer"})),
                                                                         [401, 404, 403, 200, 200, 404, 200, 200, 404, 404]),
        ("DELETE", "/organizations/{org}/members/{member}", None,        [401, 404, 204, 204, 204, 404, 204, 204, 404, 404]),
        ("GET", "/organizations/{org}/api-keys", None,                   [401, 404, 403, 200, 200, 404, 200, 403, 403, 403]),
        ("POST", "/organizations/{org}/api-keys", Some(json!({"name": "k", "scopes": ["users:read"]})),
                                                                         [401, 404, 403, 201, 201, 404, 201, 403, 403, 403]),
        ("DELETE", "/api-keys/{key}", None,                              [401, 404, 403, 200, 200, 404, 200, 403, 403, 403]),
        // SCIM tokens: like API keys, an organization admin's (never a key's).
        ("GET", "/organizations/{org}/scim/tokens", None,                [401, 404, 403, 200, 200, 404, 200, 403, 403, 403]),
        ("POST", "/organizations/{org}/scim/tokens", Some(json!({"name": "idp"})),
                                                                         [401, 404, 403, 201, 201, 404, 201, 403, 403, 403]),
        ("DELETE", "/scim/tokens/{scim_token}", None,                    [401, 404, 403, 200, 200, 404, 200, 403, 403, 403]),
        // The SCIM protocol answers its organization's SCIM token only (the last column below).
        ("GET", "/scim/v2/Users", None,                                  [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
        ("POST", "/scim/v2/Users", Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "m@example.com"})),
                                                                         [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
        ("GET", "/scim/v2/Groups", None,                                 [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
        ("GET", "/admin/users", None,                                    [401, 403, 403, 403, 403, 403, 200, 403, 403, 200]),
        ("GET", "/admin/organizations", None,                            [401, 403, 403, 403, 403, 403, 200, 403, 403, 200]),
        ("GET", "/admin/analytics", None,                                [401, 403, 403, 403, 403, 403, 200, 403, 403, 200]),
        ("GET", "/admin/audit-logs", None,                               [401, 403, 403, 403, 403, 403, 200, 403, 403, 200]),
        ("GET", "/admin/api-keys", None,                                 [401, 403, 403, 403, 403, 403, 200, 403, 403, 403]),
        ("POST", "/admin/api-keys", Some(json!({"name": "a", "scopes": ["admin:read"]})),
                                                                         [401, 403, 403, 403, 403, 403, 201, 403, 403, 403]),
        ("GET", "/mfa/status", None,                                     [401, 200, 200, 200, 200, 200, 200, 403, 403, 403]),
        ("POST", "/mfa/setup", None,                                     [401, 200, 200, 200, 200, 200, 200, 403, 403, 403]),
        ("GET", "/passkeys", None,                                       [401, 200, 200, 200, 200, 200, 200, 403, 403, 403]),
        ("POST", "/passkeys/register/options", None,                     [401, 200, 200, 200, 200, 200, 200, 403, 403, 403]),
        ("GET", "/webhooks", None,                                       [401, 200, 200, 200, 200, 200, 200, 403, 403, 403]),
        ("POST", "/webhooks", Some(json!({"url": "https://hooks.example.com/janua", "events": ["user.updated"]})),
                                                                         [401, 201, 201, 201, 201, 201, 201, 403, 403, 403]),
        ("POST", "/sessions/terminate-all", None,                        [401, 200, 200, 200, 200, 200, 200, 403, 403, 403]),
        ("POST", "/auth/reauthenticate", Some(json!({"password": crate::helpers::PASSWORD})),
                                                                         [401, 200, 200, 200, 200, 200, 200, 403, 403, 403]),
        ("POST", "/auth/signout", None,                                  [401, 200, 200, 200, 200, 200, 200, 403, 403, 403]),
        // Account mail: the signed-in user's own (an administrator's address is verified, and so
        // are the member's and the org admin's: they joined through a mailed invitation).
        ("POST", "/auth/email/resend-verification", None,                [401, 200, 409, 409, 200, 200, 409, 403, 403, 403]),
        ("POST", "/auth/password/change", Some(json!({"current_password": crate::helpers::PASSWORD, "new_password": "short"})),
                                                                         [401, 422, 422, 422, 422, 422, 422, 403, 403, 403]),
        // The mailed token is the credential: the same refusal for every caller.
        ("POST", "/auth/verify-email", Some(json!({"token": "not-a-token"})), [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
        ("POST", "/auth/email/verify", Some(json!({"token": "not-a-token"})), [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
        ("POST", "/auth/password/reset", Some(json!({"token": "not-a-token", "new_password": "x"})),
                                                                         [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
        ("POST", "/auth/magic-link/verify", Some(json!({"token": "not-a-token"})),
                                                                         [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
        // Personal resources (the member's): nobody else sees them, administrators included.
        ("GET", "/sessions/{session}", None,                             [401, 404, 200, 404, 404, 404, 404, 403, 403, 403]),
        ("DELETE", "/sessions/{session}", None,                          [401, 404, 204, 404, 404, 404, 404, 403, 403, 403]),
        ("GET", "/webhooks/{hook}", None,                                [401, 404, 200, 404, 404, 404, 404, 403, 403, 403]),
        ("PUT", "/webhooks/{hook}", Some(json!({"description": "d"})),   [401, 404, 200, 404, 404, 404, 404, 403, 403, 403]),
        ("GET", "/webhooks/{hook}/deliveries", None,                     [401, 404, 200, 404, 404, 404, 404, 403, 403, 403]),
        ("POST", "/webhooks/{hook}/rotate-secret", None,                 [401, 404, 200, 404, 404, 404, 404, 403, 403, 403]),
        ("DELETE", "/webhooks/{hook}", None,                             [401, 404, 204, 404, 404, 404, 404, 403, 403, 403]),
        ("PUT", "/passkeys/{passkey}", Some(json!({"name": "desk"})),    [401, 404, 200, 404, 404, 404, 404, 403, 403, 403]),
        ("DELETE", "/passkeys/{passkey}", None,                          [401, 404, 204, 404, 404, 404, 404, 403, 403, 403]),
        // An organization's endpoint: its admins and owners (members see it exists).
        ("GET", "/webhooks/{org_hook}", None,                            [401, 404, 403, 200, 200, 404, 200, 403, 403, 403]),
        ("PUT", "/webhooks/{org_hook}", Some(json!({"description": "d"})), [401, 404, 403, 200, 200, 404, 200, 403, 403, 403]),
        ("GET", "/webhooks/{org_hook}/deliveries", None,                 [401, 404, 403, 200, 200, 404, 200, 403, 403, 403]),
        ("DELETE", "/webhooks/{org_hook}", None,                         [401, 404, 403, 204, 204, 404, 204, 403, 403, 403]),
        ("GET", "/mfa/backup-codes", None,                               [401, 400, 400, 400, 400, 400, 400, 403, 403, 403]),
        // An organization's identity providers: its admins and owners, never an API key.
        ("GET", "/sso/providers?organization_id={org}", None,            [401, 404, 403, 200, 200, 404, 200, 403, 403, 403]),
        ("POST", "/sso/providers", Some(saml_provider("{org}", "other.example.com")),
                                                                         [401, 404, 403, 201, 201, 404, 201, 403, 403, 403]),
        ("GET", "/sso/providers/{provider}", None,                       [401, 404, 403, 200, 200, 404, 200, 403, 403, 403]),
        ("PUT", "/sso/providers/{provider}", Some(json!({"name": "Renamed"})),
                                                                         [401, 404, 403, 200, 200, 404, 200, 403, 403, 403]),
        ("DELETE", "/sso/providers/{provider}", None,                    [401, 404, 403, 204, 204, 404, 204, 403, 403, 403]),
        ("GET", "/sso/config?organization_id={org}", None,               [401, 404, 403, 200, 200, 404, 200, 403, 403, 403]),
        // Public and secret-free: which provider serves a domain, and starting a sign-in there.
        ("GET", "/sso/providers?email=someone@matrix.example.com", None, [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
        ("POST", "/sso/start", Some(json!({"email": "someone@matrix.example.com"})),
                                                                         [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
        ("GET", "/sso/providers/discover?email=someone@matrix.example.com", None,
                                                                         [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
        // The IdP's answer (or the one-time code) is the credential: the same refusal for all.
        ("POST", "/sso/saml", Some(json!({"saml_response": "PHNhbWxwOlJlc3BvbnNlLz4="})),
                                                                         [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
        ("POST", "/sso/oidc/complete", Some(json!({"code": "c", "state": "s"})),
                                                                         [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
        ("POST", "/sso/exchange", Some(json!({"code": "not-a-code"})),   [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
    ];
    // Every route of the REST table is a row here, or named below with the reason it is not.
    let exempt = [
        ("POST", "/auth/signup", "public: creates a caller"),
        ("POST", "/auth/signin", "public: makes a caller"),
        ("POST", "/auth/refresh", "public: the refresh token is the credential"),
        (
            "POST",
            "/auth/password/forgot",
            "public: the same 202 for every caller and address (tests/api/account_mail.rs)",
        ),
        (
            "POST",
            "/auth/magic-link",
            "public: the same 202 for every caller and address (tests/api/account_mail.rs)",
        ),
        ("POST", "/passkeys/authenticate/options", "public: starts a sign-in"),
        ("POST", "/passkeys/authenticate", "public: finishes a sign-in"),
        ("POST", "/passkeys/register", "needs a live ceremony: tests/api/passkeys.rs"),
        ("POST", "/mfa/verify", "needs a pending TOTP secret: tests/api/mfa.rs"),
        ("POST", "/mfa/disable", "needs MFA on: tests/api/mfa.rs"),
        ("POST", "/mfa/backup-codes", "needs MFA on: tests/api/mfa.rs"),
        ("GET", "/health/detailed", "operator token, not a caller: tests/api/exposure.rs"),
        ("POST", "/webhooks/{id}/test", "sends over the network: tests/api/webhooks.rs"),
        (
            "POST",
            "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            "needs a delivery: tests/api/webhooks.rs",
        ),
        ("POST", "/sso/oidc", "public: needs a live IdP (tests/api/sso_oidc.rs)"),
    ];
    let generic = |path: &str| {
        let path = path.split('?').next().unwrap_or_default();
        let mut out = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => in_param = true,
                '}' => {
                    in_param = false;
                    out.push_str("{}");
                }
                _ if !in_param => out.push(c),
                _ => {}
            }
        }
        out
    };
    let covered: Vec<(String, String)> = table
        .iter()
        .map(|r| (r.0.to_owned(), generic(r.1)))
        .chain(exempt.iter().map(|e| (e.0.to_owned(), generic(e.1))))
        .collect();
    let missing: Vec<String> = janua::rest::routes::routes()
        .iter()
        .map(|r| (r.method.as_str().to_owned(), generic(r.path)))
        .filter(|r| !covered.contains(r))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(missing.is_empty(), "routes with no row in the matrix: {missing:?}");
    let mut failures = Vec::new();
    let mut f = fixture(b.clone()).await;
    for (method, path, body, expected) in &table {
        for (caller, want) in expected.iter().enumerate() {
            let got = call(&f, caller, method, path, body.clone()).await;
            if got != *want {
                failures.push(format!("{method} {path} as {}: expected {want}, got {got}", CALLERS[caller]));
            }
            // A successful change (or a sign-out) alters the fixture: start the next cell afresh.
            if (200..300).contains(&got) && *method != "GET" {
                f = fixture(b.clone()).await;
            }
        }
    }
    // The organization's SCIM token is no caller of the REST API: every route answers it as it
    // answers an anonymous request; on the SCIM routes it is the caller.
    let scim_rows: Vec<(&str, &str, u16)> = vec![
        ("GET", "/scim/v2/Users", 200),
        ("GET", "/scim/v2/Groups", 200),
        ("GET", "/scim/Users", 200),
        ("GET", "/scim/v2/ServiceProviderConfig", 200),
    ];
    for (method, path, _, expected) in table.iter().filter(|r| r.0 == "GET" && !r.1.starts_with("/scim/v2/"))
    {
        let got = f.app.rest(method, &fill(&f, path), Some(&f.scim.0), None).await.status;
        if got != expected[0] {
            failures.push(format!("{method} {path} as scim_token: expected {}, got {got}", expected[0]));
        }
    }
    for (method, path, want) in scim_rows {
        let got = f.app.rest(method, path, Some(&f.scim.0), None).await.status;
        if got != want {
            failures.push(format!("{method} {path} as scim_token: expected {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{} cells differ:\n{}", failures.len(), failures.join("\n"));
}
