//! SAML single sign-on through a real server: a provider made from the test IdP's metadata,
//! SP metadata, SP-initiated sign-in by a browser's form POST (→ return URL with a one-time code
//! → `/sso/exchange`) and by JSON, IdP-initiated sign-in when enabled, and every refusal with
//! its `details.reason` — the request check, replay (also across two nodes) and domains
//! included, which only the server can check.

use std::io::Read;
use std::sync::OnceLock;

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::{Backend, Resp, TestApp, access, code_of, no_redirects, redis_prefix, redis_url};
use crate::saml_idp::{Signing, TestSamlIdp, Wrap};

crate::on_both_databases!(
    saml_browser_and_api_sign_in,
    saml_refusals_carry_their_reason,
    saml_replay_is_refused_across_nodes
);

const RETURN_URL: &str = "https://app.example.com/sso/done";

/// One IdP for the binary (RSA key generation is slow), and a forger with the same name.
fn idp() -> &'static TestSamlIdp {
    static IDP: OnceLock<TestSamlIdp> = OnceLock::new();
    IDP.get_or_init(|| TestSamlIdp::new("https://idp.example.com/saml/metadata"))
}

fn forger() -> &'static TestSamlIdp {
    static F: OnceLock<TestSamlIdp> = OnceLock::new();
    F.get_or_init(|| idp().with_new_key())
}

/// The provider as the server answered it, and its SP entity id and ACS URL.
struct Provider {
    id: String,
    sp_entity_id: String,
    acs_url: String,
}

async fn provider(app: &TestApp, owner: &str, extra: Value) -> Provider {
    let org = app.org(owner, "Difference Engines").await;
    let idp_initiated = extra.get("allow_idp_initiated").cloned().unwrap_or(json!(false));
    let mut body = json!({
        "organization_id": org,
        "name": "Okta",
        "protocol": "saml",
        "saml_metadata_xml": idp().metadata_xml(),
        "allowed_domains": ["example.com"],
        "return_url": RETURN_URL,
        "attribute_mapping": {"first_name": "firstName", "last_name": "lastName"},
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    let r = app.rest("POST", "/sso/providers", Some(owner), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["saml_entity_id"], idp().entity_id.as_str(), "filled from the metadata: {d}");
    assert_eq!(d["saml_sso_url"], idp().sso_url.as_str());
    assert_eq!(d["saml_want_assertions_signed"], true);
    assert_eq!(d["allow_idp_initiated"], idp_initiated, "default false: {d}");
    assert!(d["saml_certificate_fingerprint"].as_str().is_some_and(|f| f.len() == 95), "{d}");
    Provider {
        id: d["id"].as_str().unwrap().to_owned(),
        sp_entity_id: d["sp_entity_id"].as_str().unwrap().to_owned(),
        acs_url: d["saml_acs_url"].as_str().unwrap().to_owned(),
    }
}

/// Starts a sign-in: the AuthnRequest's `ID` and the RelayState.
async fn start(app: &TestApp, p: &Provider) -> (String, String) {
    let r = app.rest("POST", "/sso/start", None, Some(json!({"provider_id": p.id}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["protocol"], "saml");
    let redirect = reqwest::Url::parse(d["redirect_url"].as_str().unwrap()).unwrap();
    assert!(redirect.as_str().starts_with(&idp().sso_url), "{redirect}");
    let q: std::collections::HashMap<_, _> = redirect.query_pairs().into_owned().collect();
    assert_eq!(q["RelayState"], d["relay_state"].as_str().unwrap());
    // The redirect binding: deflated, base64.
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(d["saml_request"].as_str().unwrap()).unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..]).read_to_string(&mut xml).unwrap();
    assert!(xml.contains(&format!("AssertionConsumerServiceURL=\"{}\"", p.acs_url)), "{xml}");
    let id = xml.split(" ID=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
    (id, d["relay_state"].as_str().unwrap().to_owned())
}

async fn post_json(app: &TestApp, saml_response: &str, relay_state: Option<&str>) -> Resp {
    app.rest(
        "POST",
        "/sso/saml",
        None,
        Some(json!({"saml_response": saml_response, "relay_state": relay_state})),
    )
    .await
}

/// The IdP's HTML form POST, as a browser sends it (redirects shown, not followed).
async fn post_form(app: &TestApp, saml_response: &str, relay_state: &str) -> reqwest::Response {
    no_redirects()
        .post(app.url("/api/v1/sso/saml"))
        .form(&[("SAMLResponse", saml_response), ("RelayState", relay_state)])
        .send()
        .await
        .unwrap()
}

fn reason(r: &Resp) -> String {
    r.body["error"]["details"]["reason"].as_str().unwrap_or_default().to_owned()
}

async fn saml_browser_and_api_sign_in(b: Backend) {
    let app = TestApp::spawn(b).await;
    let owner = access(&app.signup("owner@example.org").await);
    let p = provider(&app, &owner, json!({})).await;

    // The SP metadata an IdP admin imports.
    let md = app.client.get(app.url(&format!("/api/v1/sso/saml/metadata/{}", p.id))).send().await.unwrap();
    assert_eq!(md.status(), 200);
    assert!(md.headers()["content-type"].to_str().unwrap().contains("samlmetadata+xml"));
    let md = md.text().await.unwrap();
    assert!(md.contains(&p.sp_entity_id) && md.contains(&p.acs_url), "{md}");

    // A browser: the IdP posts the form, Janua sends it on with a one-time code.
    let (id, relay) = start(&app, &p).await;
    let signed = idp()
        .response(&p.sp_entity_id, &p.acs_url)
        .in_response_to(&id)
        .name_id("grace@example.com")
        .attribute("firstName", &["Grace"])
        .attribute("lastName", &["Hopper"])
        .build();
    let back = post_form(&app, &signed, &relay).await;
    assert_eq!(back.status(), 303, "{}", back.text().await.unwrap_or_default());
    let location = back.headers()["location"].to_str().unwrap().to_owned();
    let code = code_of(&location);
    assert!(location.starts_with(RETURN_URL), "{location}");
    let r = app.rest("POST", "/sso/exchange", None, Some(json!({"code": code}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let user = r.body["data"]["user"].clone();
    assert_eq!(user["email"], "grace@example.com");
    assert_eq!((user["first_name"].as_str(), user["last_name"].as_str()), (Some("Grace"), Some("Hopper")));
    assert_eq!(user["email_verified"], true);
    let at = r.body["data"]["tokens"]["access_token"].as_str().unwrap().to_owned();
    let sid = r.body["data"]["tokens"]["session_id"].as_str().unwrap();
    let s = app.rest("GET", &format!("/sessions/{sid}"), Some(&at), None).await;
    assert_eq!(s.body["data"]["auth_method"], "sso");

    // An API client posts JSON and gets tokens; the identity is linked by its NameID.
    let (id, relay) = start(&app, &p).await;
    let signed =
        idp().response(&p.sp_entity_id, &p.acs_url).in_response_to(&id).name_id("grace@example.com").build();
    let r = post_json(&app, &signed, Some(&relay)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["user"]["id"], user["id"]);

    // IdP-initiated sign-in, once the provider allows it (then over a signed Response).
    let unsolicited = || idp().response(&p.sp_entity_id, &p.acs_url).name_id("grace@example.com").build();
    let r = post_json(&app, &unsolicited(), None).await;
    assert_eq!(reason(&r), "idp_initiated_disabled", "{}", r.body);
    let r = app
        .rest(
            "PUT",
            &format!("/sso/providers/{}", p.id),
            Some(&owner),
            Some(json!({"allow_idp_initiated": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post_json(&app, &unsolicited(), None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Several certificates during a rotation: the new key signs, the old one still counts.
    let both = vec![idp().certificate_pem.clone(), forger().certificate_pem.clone()];
    let r = app
        .rest(
            "PUT",
            &format!("/sso/providers/{}", p.id),
            Some(&owner),
            Some(json!({"saml_certificates": both})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["saml_certificates"].as_array().map(Vec::len), Some(2));
    let (id, relay) = start(&app, &p).await;
    let rotated = forger()
        .response(&p.sp_entity_id, &p.acs_url)
        .in_response_to(&id)
        .name_id("grace@example.com")
        .build();
    assert_eq!(post_json(&app, &rotated, Some(&relay)).await.status, 200);
}

async fn saml_refusals_carry_their_reason(b: Backend) {
    let app = TestApp::spawn(b).await;
    let owner = access(&app.signup("owner@example.org").await);
    let p = provider(&app, &owner, json!({})).await;
    let now = Utc::now();

    // Each case answers a request Janua issued, so only the lie itself can be refused.
    type Lie = fn(crate::saml_idp::ResponseBuilder<'static>) -> crate::saml_idp::ResponseBuilder<'static>;
    let cases: Vec<(&str, Lie)> = vec![
        ("unsigned", |r| r.sign(Signing::None)),
        ("unsigned", |r| r.sign(Signing::Response)),
        ("signature_invalid", |r| r.signed_by(forger())),
        ("signature_invalid", |r| r.tamper()),
        ("malformed_response", |r| r.wrap(Wrap::Beside)),
        ("malformed_response", |r| r.wrap(Wrap::Around)),
        ("audience_mismatch", |r| r.audience("https://someone-else.example.com/sp")),
        ("recipient_mismatch", |r| r.recipient("https://someone-else.example.com/acs")),
        ("destination_mismatch", |r| r.destination(Some("https://someone-else.example.com/acs"))),
        ("issuer_mismatch", |r| r.issuer("https://idp.evil.example.com")),
        ("domain_not_allowed", |r| r.name_id("grace@elsewhere.example")),
    ];
    for (want, lie) in cases {
        let (id, relay) = start(&app, &p).await;
        let r =
            lie(idp().response(&p.sp_entity_id, &p.acs_url).in_response_to(&id).name_id("grace@example.com"));
        let r = post_json(&app, &r.build(), Some(&relay)).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (401, Some("SSO_ERROR")),
            "{want}: {}",
            r.body
        );
        assert_eq!(reason(&r), want, "{}", r.body);
    }
    let windows = [
        ("expired", (now - Duration::hours(2), now - Duration::hours(2), now - Duration::hours(1))),
        ("not_yet_valid", (now, now + Duration::hours(1), now + Duration::hours(2))),
    ];
    for (want, (issued, from, until)) in windows {
        let (id, relay) = start(&app, &p).await;
        let r = idp()
            .response(&p.sp_entity_id, &p.acs_url)
            .in_response_to(&id)
            .validity(issued, from, until)
            .build();
        assert_eq!(reason(&post_json(&app, &r, Some(&relay)).await), want);
    }
    // An InResponseTo Janua never issued, with a real RelayState or none.
    let (_, relay) = start(&app, &p).await;
    let stray = idp().response(&p.sp_entity_id, &p.acs_url).in_response_to("_not-ours").build();
    assert_eq!(reason(&post_json(&app, &stray, Some(&relay)).await), "unknown_request");
    let stray = idp().response(&p.sp_entity_id, &p.acs_url).in_response_to("_not-ours-either").build();
    assert_eq!(reason(&post_json(&app, &stray, None).await), "unknown_request");
    // A DOCTYPE never reaches a parser, signed or not.
    let xml = idp().response(&p.sp_entity_id, &p.acs_url).xml();
    let evil = crate::saml_idp::encode(&xml.replacen(
        "<samlp:Response",
        "<!DOCTYPE r [<!ENTITY e \"x\">]><samlp:Response",
        1,
    ));
    assert_eq!(reason(&post_json(&app, &evil, None).await), "doctype_forbidden");
    // A genuine answer is taken once: the second post is a replay.
    let (id, relay) = start(&app, &p).await;
    let genuine =
        idp().response(&p.sp_entity_id, &p.acs_url).in_response_to(&id).name_id("grace@example.com").build();
    assert_eq!(post_json(&app, &genuine, Some(&relay)).await.status, 200);
    let r = post_json(&app, &genuine, Some(&relay)).await;
    assert_eq!(reason(&r), "replayed", "{}", r.body);
    // JIT off: a stranger is refused; a browser's form POST refused the same way.
    app.rest(
        "PUT",
        &format!("/sso/providers/{}", p.id),
        Some(&owner),
        Some(json!({"jit_provisioning": false})),
    )
    .await;
    let (id, relay) = start(&app, &p).await;
    let stranger =
        idp().response(&p.sp_entity_id, &p.acs_url).in_response_to(&id).name_id("new@example.com").build();
    let r = post_form(&app, &stranger, &relay).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["details"]["reason"], "user_not_provisioned", "{body}");
    // Garbage is a clear 401 too, never a 500.
    for junk in ["", "%%%", "PHg+", "bm90IHhtbA=="] {
        let r = post_json(&app, junk, None).await;
        assert!(matches!(r.status, 401 | 422), "{junk}: {}", r.body);
    }

    // Every refusal is audited with its reason.
    let admin = app.admin("root@example.org").await;
    let logs =
        app.rest("GET", "/admin/audit-logs?action=sso.signin_failed&limit=100", Some(&admin), None).await;
    let reasons: Vec<&str> = logs.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["metadata"]["reason"].as_str())
        .collect();
    for want in
        ["unsigned", "signature_invalid", "audience_mismatch", "expired", "unknown_request", "replayed"]
    {
        assert!(reasons.contains(&want), "{want} not audited: {reasons:?}");
    }
}

async fn saml_replay_is_refused_across_nodes(b: Backend) {
    let Some(url) = redis_url() else { return };
    let prefix = redis_prefix();
    let a = TestApp::spawn_with(b, |c| {
        c.redis_url = Some(url);
        c.redis_prefix = prefix;
    })
    .await;
    let node_b = a.spawn_peer().await;
    let owner = access(&a.signup("owner@example.org").await);
    let p = provider(&a, &owner, json!({"allow_idp_initiated": true})).await;
    // Started on A, answered on B.
    let (id, relay) = start(&a, &p).await;
    let genuine =
        idp().response(&p.sp_entity_id, &p.acs_url).in_response_to(&id).name_id("grace@example.com").build();
    assert_eq!(post_json(&node_b, &genuine, Some(&relay)).await.status, 200);
    let r = post_json(&a, &genuine, Some(&relay)).await;
    assert_eq!(reason(&r), "replayed", "{}", r.body);
    // An unsolicited assertion, accepted on B, is a replay on A.
    let unsolicited = idp().response(&p.sp_entity_id, &p.acs_url).name_id("grace@example.com").build();
    assert_eq!(post_json(&node_b, &unsolicited, None).await.status, 200);
    assert_eq!(reason(&post_json(&a, &unsolicited, None).await), "replayed");
}
