//! OIDC single sign-on through a real server against a real (minimal) OpenID provider: the
//! provider's management, the browser hop (callback → return URL with a one-time code →
//! `/sso/exchange`), the API flow, linking and JIT, `enforce_sso`, and every refusal's reason.

use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, access, code_of, no_redirects, redis_prefix, redis_url};
use crate::oidc_idp::{CLIENT_ID, CLIENT_SECRET, Signing, TestIdp};

crate::on_both_databases!(
    oidc_browser_and_api_sign_in,
    oidc_refusals_carry_their_reason,
    oidc_linking_provisioning_and_enforcement,
    oidc_state_and_codes_are_single_use_across_nodes
);

const RETURN_URL: &str = "https://app.example.com/sso/done";

async fn server(b: Backend) -> TestApp {
    TestApp::spawn_with(b, |c| c.sso_allow_loopback = true).await
}

/// An organization of `owner` with an OIDC provider for `example.com` at `idp`.
async fn provider(app: &TestApp, owner: &str, idp: &TestIdp, extra: Value) -> (String, Value) {
    let org = app.org(owner, "Analytical Engines").await;
    let mut body = json!({
        "organization_id": org,
        "name": "Test IdP",
        "protocol": "oidc",
        "oidc_issuer": idp.issuer(),
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "allowed_domains": ["example.com"],
        "return_url": RETURN_URL,
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    let r = app.rest("POST", "/sso/providers", Some(owner), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    (org, r.body["data"].clone())
}

/// Starts an API sign-in at the provider and lets the IdP answer: `(code, state)`.
async fn authorize(app: &TestApp, idp: &TestIdp, provider_id: &str) -> (String, String) {
    let r = app.rest("POST", "/sso/oidc", None, Some(json!({"provider_id": provider_id}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.body["data"]["authorization_url"].as_str().expect("an authorization URL").to_owned();
    let cb = idp.authorize(&url).await;
    (cb.code, cb.state)
}

async fn complete(app: &TestApp, code: &str, state: &str) -> crate::helpers::Resp {
    app.rest("POST", "/sso/oidc", None, Some(json!({"code": code, "state": state}))).await
}

fn reason(r: &crate::helpers::Resp) -> String {
    r.body["error"]["details"]["reason"].as_str().unwrap_or_default().to_owned()
}

async fn oidc_browser_and_api_sign_in(b: Backend) {
    let app = server(b).await;
    let idp = TestIdp::start().await;
    let owner = access(&app.signup("owner@example.org").await);
    let (org, p) = provider(&app, &owner, &idp, json!({"default_role": "viewer"})).await;
    let id = p["id"].as_str().unwrap();
    // The secret is sealed and never shown; the answer says one is set.
    assert!(p.get("oidc_client_secret").is_none(), "{p}");
    assert_eq!(p["oidc_client_secret_set"], true);
    assert_eq!(p["scopes"], json!(["openid", "email", "profile"]));
    assert!(!p.to_string().contains(CLIENT_SECRET));
    let gql = app.gql(Some(&owner), "{ __type(name: \"SsoProvider\") { fields { name } } }", json!({})).await;
    assert!(!gql.to_string().contains("\"oidcClientSecret\""), "{gql}");

    // Discovery by email domain is public and secret-free.
    let hint = app.rest("GET", "/sso/providers?email=ada@example.com", None, None).await;
    assert_eq!(hint.status, 200, "{}", hint.body);
    assert_eq!(
        hint.body["data"],
        json!({"provider_id": id, "protocol": "oidc", "organization_id": org, "name": "Test IdP"})
    );
    let none = app.rest("GET", "/sso/providers?email=ada@elsewhere.example", None, None).await;
    assert_eq!(none.status, 404, "{}", none.body);

    // The browser: start by email, the IdP sends it to the callback, Janua to the return URL.
    let r = app.rest("POST", "/sso/start", None, Some(json!({"email": "ada@example.com"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["protocol"], "oidc");
    let url = r.body["data"]["authorization_url"].as_str().unwrap();
    let asked = reqwest::Url::parse(url).unwrap();
    let q: std::collections::HashMap<_, _> = asked.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["redirect_uri"].ends_with("/api/v1/sso/oidc/callback"), "{url}");
    let cb = idp.authorize(url).await;
    let back = no_redirects()
        .get(app.url(&format!("/api/v1/sso/oidc/callback?code={}&state={}", cb.code, cb.state)))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 303);
    let location = back.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{RETURN_URL}?code=")), "{location}");
    let one_time = code_of(&location);
    let signed = app.rest("POST", "/sso/exchange", None, Some(json!({"code": one_time}))).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    let user = &signed.body["data"]["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["name"], "Ada Lovelace");
    let at = signed.body["data"]["tokens"]["access_token"].as_str().unwrap().to_owned();
    let sid = signed.body["data"]["tokens"]["session_id"].as_str().unwrap();
    let s = app.rest("GET", &format!("/sessions/{sid}"), Some(&at), None).await;
    assert_eq!(s.body["data"]["auth_method"], "sso", "{}", s.body);
    // Provisioned into the provider's organization with its default role.
    let roles =
        app.rest("GET", &format!("/users/{}/roles", user["id"].as_str().unwrap()), Some(&at), None).await;
    assert!(roles.body.to_string().contains("viewer"), "{}", roles.body);
    // The one-time code is spent.
    let again = app.rest("POST", "/sso/exchange", None, Some(json!({"code": one_time}))).await;
    assert_eq!((again.status, reason(&again).as_str()), (401, "code_invalid"), "{}", again.body);

    // The API flow: the same user, linked by subject, signs in again.
    let (code, state) = authorize(&app, &idp, id).await;
    let r = complete(&app, &code, &state).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["user"]["id"], user["id"]);

    // Both sign-ins are audited in the organization's log.
    let admin = app.admin("root@example.org").await;
    let logs = app
        .rest(
            "GET",
            &format!("/admin/audit-logs?action=sso.signed_in&organization_id={org}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(logs.body["data"].as_array().map(Vec::len), Some(2), "{}", logs.body);
}

async fn oidc_refusals_carry_their_reason(b: Backend) {
    let app = server(b).await;
    let idp = TestIdp::start().await;
    let owner = access(&app.signup("owner@example.org").await);
    let (_, p) = provider(&app, &owner, &idp, json!({})).await;
    let id = p["id"].as_str().unwrap().to_owned();

    type Lie = Box<dyn Fn(&mut crate::oidc_idp::Knobs)>;
    let cases: Vec<(&str, Lie)> = vec![
        ("signature_invalid", Box::new(|k| k.signing = Signing::ForeignKey)),
        ("signature_invalid", Box::new(|k| k.signing = Signing::AlgNone)),
        ("unknown_key", Box::new(|k| k.signing = Signing::UnknownKid)),
        ("nonce_mismatch", Box::new(|k| k.nonce = Some("another".into()))),
        ("audience_mismatch", Box::new(|k| k.audience = Some(vec!["someone-else".into()]))),
        ("issuer_mismatch", Box::new(|k| k.token_issuer = Some("https://evil.example.com".into()))),
        ("expired", Box::new(|k| k.expires_in = -600)),
        ("domain_not_allowed", Box::new(|k| k.user.email = "ada@elsewhere.example".into())),
    ];
    for (want, knob) in cases {
        idp.set(|k| {
            *k = Default::default();
            knob(k);
        });
        let (code, state) = authorize(&app, &idp, &id).await;
        let r = complete(&app, &code, &state).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (401, Some("SSO_ERROR")),
            "{want}: {}",
            r.body
        );
        assert_eq!(reason(&r), want, "{}", r.body);
    }
    idp.set(|k| *k = Default::default());

    // A state Janua never issued, and one already used.
    let r = complete(&app, "some-code", "never-issued").await;
    assert_eq!(reason(&r), "state_invalid", "{}", r.body);
    let (code, state) = authorize(&app, &idp, &id).await;
    assert_eq!(complete(&app, &code, &state).await.status, 200);
    let r = complete(&app, &code, &state).await;
    assert_eq!(reason(&r), "state_invalid", "{}", r.body);
    // A used code under a fresh state is a replay.
    let (_, fresh) = authorize(&app, &idp, &id).await;
    let r = complete(&app, &code, &fresh).await;
    assert_eq!(reason(&r), "replayed", "{}", r.body);

    // Failed SSO sign-ins are audited like failed password sign-ins.
    let admin = app.admin("root@example.org").await;
    let logs =
        app.rest("GET", "/admin/audit-logs?action=sso.signin_failed&limit=100", Some(&admin), None).await;
    assert_eq!(logs.status, 200, "{}", logs.body);
    let reasons: Vec<&str> = logs.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["metadata"]["reason"].as_str())
        .collect();
    for want in ["signature_invalid", "unknown_key", "nonce_mismatch", "expired", "state_invalid", "replayed"]
    {
        assert!(reasons.contains(&want), "{want} not audited: {reasons:?}");
    }

    // An IdP that cannot be reached is a 502, never a 500 (here its token endpoint).
    let (code, state) = authorize(&app, &idp, &id).await;
    idp.stop().await;
    let r = complete(&app, &code, &state).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (502, Some("UPSTREAM_ERROR")), "{}", r.body);
    // Creating a provider whose issuer does not answer says so too.
    let org = app.org(&owner, "Unreachable").await;
    let body = json!({"organization_id": org, "name": "Gone", "protocol": "oidc", "oidc_issuer": idp.issuer(),
        "oidc_client_id": CLIENT_ID, "oidc_client_secret": CLIENT_SECRET});
    let r = app.rest("POST", "/sso/providers", Some(&owner), Some(body)).await;
    assert_eq!(r.status, 502, "{}", r.body);
}

async fn oidc_linking_provisioning_and_enforcement(b: Backend) {
    let app = server(b).await;
    let idp = TestIdp::start().await;
    let owner = access(&app.signup("owner@example.org").await);
    let (org, p) = provider(&app, &owner, &idp, json!({"jit_provisioning": false})).await;
    let id = p["id"].as_str().unwrap().to_owned();

    // JIT off: an unknown user is refused.
    let (code, state) = authorize(&app, &idp, &id).await;
    let r = complete(&app, &code, &state).await;
    assert_eq!(reason(&r), "user_not_provisioned", "{}", r.body);

    // An existing account outside the organization is not taken over by an IdP's say-so.
    app.signup("ada@example.com").await;
    let (code, state) = authorize(&app, &idp, &id).await;
    let r = complete(&app, &code, &state).await;
    assert_eq!(reason(&r), "user_not_provisioned", "{}", r.body);

    // Once a member, the account is linked by email, then by subject.
    app.add_member(&owner, &org, "ada@example.com", "member").await;
    let (code, state) = authorize(&app, &idp, &id).await;
    let r = complete(&app, &code, &state).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ada = r.body["data"]["user"]["id"].clone();
    idp.set(|k| k.user.email = "ada.lovelace@example.com".into());
    let (code, state) = authorize(&app, &idp, &id).await;
    let r = complete(&app, &code, &state).await;
    assert_eq!(r.body["data"]["user"]["id"], ada, "{}", r.body);
    idp.set(|k| *k = Default::default());

    // enforce_sso: the member may no longer sign in with a password; others still may.
    let r = app
        .rest("PUT", &format!("/sso/providers/{id}"), Some(&owner), Some(json!({"enforce_sso": true})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["enforce_sso"], true);
    let pw = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "ada@example.com", "password": PASSWORD})))
        .await;
    assert_eq!((pw.status, reason(&pw).as_str()), (401, "sso_required"), "{}", pw.body);
    let wrong = app
        .rest(
            "POST",
            "/auth/signin",
            None,
            Some(json!({"email": "ada@example.com", "password": "wrong-password-1"})),
        )
        .await;
    assert_eq!(
        wrong.body["error"]["code"], "INVALID_CREDENTIALS",
        "a wrong password learns nothing: {}",
        wrong.body
    );
    let other = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "owner@example.org", "password": PASSWORD})))
        .await;
    assert_eq!(other.status, 200, "{}", other.body);

    // An open redirect is refused: the return URL keeps the provider's origin.
    let r = app
        .rest(
            "POST",
            "/sso/start",
            None,
            Some(json!({"provider_id": id, "return_url": "https://evil.example.com/x"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app
        .rest(
            "POST",
            "/sso/start",
            None,
            Some(json!({"provider_id": id, "return_url": "https://app.example.com/x?y=1"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A disabled provider starts nothing.
    app.rest("PUT", &format!("/sso/providers/{id}"), Some(&owner), Some(json!({"enabled": false}))).await;
    let r = app.rest("POST", "/sso/oidc", None, Some(json!({"provider_id": id}))).await;
    assert_eq!(reason(&r), "provider_disabled", "{}", r.body);

    // Another organization cannot claim the domain.
    let rival = access(&app.signup("rival@example.net").await);
    let org2 = app.org(&rival, "Rival").await;
    let body = json!({"organization_id": org2, "name": "Rival", "protocol": "oidc", "oidc_issuer": idp.issuer(),
        "oidc_client_id": CLIENT_ID, "oidc_client_secret": CLIENT_SECRET, "allowed_domains": ["example.com"]});
    let r = app.rest("POST", "/sso/providers", Some(&rival), Some(body)).await;
    assert_eq!(r.status, 409, "{}", r.body);
}

async fn oidc_state_and_codes_are_single_use_across_nodes(b: Backend) {
    let Some(url) = redis_url() else { return };
    let prefix = redis_prefix();
    let a = TestApp::spawn_with(b, |c| {
        c.sso_allow_loopback = true;
        c.redis_url = Some(url);
        c.redis_prefix = prefix;
    })
    .await;
    let node_b = a.spawn_peer().await;
    let idp = TestIdp::start().await;
    let owner = access(&a.signup("owner@example.org").await);
    let (_, p) = provider(&a, &owner, &idp, json!({})).await;
    let id = p["id"].as_str().unwrap().to_owned();
    // Started on A, completed on B; the same answer again on A is refused.
    let (code, state) = authorize(&a, &idp, &id).await;
    let r = complete(&node_b, &code, &state).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = complete(&a, &code, &state).await;
    assert_eq!(reason(&r), "state_invalid", "{}", r.body);
    let (_, fresh) = authorize(&node_b, &idp, &id).await;
    let r = complete(&a, &code, &fresh).await;
    assert_eq!(reason(&r), "replayed", "{}", r.body);
    // A browser code issued by B is taken once, on A.
    let r = a.rest("POST", "/sso/start", None, Some(json!({"provider_id": id}))).await;
    let cb = idp.authorize(r.body["data"]["authorization_url"].as_str().unwrap()).await;
    let back = no_redirects()
        .get(node_b.url(&format!("/api/v1/sso/oidc/callback?code={}&state={}", cb.code, cb.state)))
        .send()
        .await
        .unwrap();
    let location = back.headers()["location"].to_str().unwrap().to_owned();
    let one_time = code_of(&location);
    assert_eq!(a.rest("POST", "/sso/exchange", None, Some(json!({"code": one_time}))).await.status, 200);
    let again = node_b.rest("POST", "/sso/exchange", None, Some(json!({"code": one_time}))).await;
    assert_eq!(reason(&again), "code_invalid", "{}", again.body);
}
