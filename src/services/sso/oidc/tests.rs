use serde_json::json;

use super::*;
use crate::error::ErrorCode;

const ISSUER: &str = "https://idp.example.com";
const DISCOVERY: &str = "https://idp.example.com/.well-known/openid-configuration";

fn settings() -> OidcSettings {
    OidcSettings {
        issuer: ISSUER.into(),
        discovery_url: None,
        client_id: "janua".into(),
        client_secret: "s3cret".into(),
        scopes: vec!["openid".into(), "email".into(), " profile ".into(), "email".into()],
    }
}

fn discovery_doc() -> Value {
    json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://idp.example.com/authorize",
        "token_endpoint": "https://idp.example.com/token",
        "userinfo_endpoint": "https://idp.example.com/userinfo",
        "jwks_uri": "https://idp.example.com/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
}

/// A client that can reach nothing: these tests run from the cache alone.
fn offline() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn reason(e: &AppError) -> Option<&str> {
    e.details.as_ref()?.get("reason")?.as_str()
}

#[test]
fn fetchable_urls_are_https_or_loopback_http() {
    for ok in
        ["https://idp.example.com/x", "http://127.0.0.1:8080/x", "http://[::1]/x", "http://localhost:3000/"]
    {
        assert!(fetchable(&Url::parse(ok).unwrap()), "{ok}");
    }
    for bad in [
        "http://idp.example.com/x",
        "http://10.0.0.1/x",
        "ftp://idp.example.com/",
        "https://u:p@idp.example.com/",
    ] {
        assert!(!fetchable(&Url::parse(bad).unwrap()), "{bad}");
    }
}

#[test]
fn scopes_are_trimmed_deduplicated_and_checked() {
    assert_eq!(scopes(&settings()).unwrap(), vec!["email", "profile"]);
    let bad = OidcSettings { scopes: vec!["email\"x".into()], ..settings() };
    assert_eq!(scopes(&bad).unwrap_err().code, ErrorCode::ValidationError);
}

#[test]
fn userinfo_fills_gaps_only_and_email_verified_is_read_leniently() {
    let mut claims: Map<String, Value> =
        json!({"sub": "u1", "name": "From Token"}).as_object().unwrap().clone();
    let extra =
        json!({"sub": "u1", "name": "From Userinfo", "email": "a@example.com", "email_verified": "TRUE"});
    merge_missing(&mut claims, extra.as_object().unwrap().clone());
    let id = identity("u1".into(), claims);
    assert_eq!(id.claims["name"], "From Token");
    assert_eq!(id.email.as_deref(), Some("a@example.com"));
    assert_eq!(id.email_verified, Some(true));
    assert_eq!(identity("u".into(), Map::new()).email_verified, None);
}

#[tokio::test]
async fn authorization_url_asks_for_code_with_pkce_state_nonce_and_openid_once() {
    let cache = DocumentCache::default();
    cache.put(DISCOVERY, discovery_doc());
    let (url, pending) =
        authorization_url(&offline(), &cache, &settings(), "https://janua.example.com/cb").await.unwrap();
    let url = Url::parse(&url).unwrap();
    assert!(url.as_str().starts_with("https://idp.example.com/authorize?"));
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "janua");
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["redirect_uri"], "https://janua.example.com/cb");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["state"], pending.state);
    assert_eq!(q["nonce"], pending.nonce);
    let challenge =
        URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(pending.pkce_verifier.as_bytes()));
    assert_eq!(q["code_challenge"], challenge);
    assert!(pending.state.len() >= 20 && pending.nonce.len() >= 20 && pending.pkce_verifier.len() >= 43);

    let (_, again) =
        authorization_url(&offline(), &cache, &settings(), "https://janua.example.com/cb").await.unwrap();
    assert_ne!(again.state, pending.state);
    assert_ne!(again.nonce, pending.nonce);
    assert_ne!(again.pkce_verifier, pending.pkce_verifier);
}

#[tokio::test]
async fn a_cached_document_is_checked_like_a_fetched_one() {
    let cache = DocumentCache::default();
    let mut other = discovery_doc();
    other["issuer"] = json!("https://idp.example.com/");
    cache.put(DISCOVERY, other);
    let e = authorization_url(&offline(), &cache, &settings(), "https://j.example.com/cb").await.unwrap_err();
    assert_eq!(reason(&e), Some("issuer_mismatch"));

    let mut plain = discovery_doc();
    plain["token_endpoint"] = json!("http://idp.example.com/token");
    cache.put(DISCOVERY, plain);
    let e = authorization_url(&offline(), &cache, &settings(), "https://j.example.com/cb").await.unwrap_err();
    assert_eq!(reason(&e), Some("malformed_response"));

    cache.put(DISCOVERY, json!({"issuer": ISSUER}));
    let e = authorization_url(&offline(), &cache, &settings(), "https://j.example.com/cb").await.unwrap_err();
    assert_eq!(reason(&e), Some("malformed_response"));
}

#[tokio::test]
async fn settings_and_inputs_that_are_not_urls_are_validation_errors() {
    let cache = DocumentCache::default();
    let http_issuer = OidcSettings { issuer: "http://idp.example.com".into(), ..settings() };
    let e = discover(&offline(), &cache, &http_issuer).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationError);
    assert!(e.fields.contains_key("oidc_issuer"));
    cache.put(DISCOVERY, discovery_doc());
    let e = authorization_url(&offline(), &cache, &settings(), "not a url").await.unwrap_err();
    assert!(e.fields.contains_key("redirect_uri"));
}

#[test]
fn the_flow_runs_on_a_multithreaded_runtime() {
    fn send<T: Send>(_: T) {}
    let (http, cache, s) = (offline(), DocumentCache::default(), settings());
    let pending =
        Pending { state: "s".into(), nonce: "n".into(), pkce_verifier: "v".into(), redirect_uri: "r".into() };
    send(discover(&http, &cache, &s));
    send(authorization_url(&http, &cache, &s, "r"));
    send(complete(&http, &cache, &s, &pending, "c", Utc::now()));
}

#[test]
fn debug_leaves_secrets_out() {
    let s = format!("{:?}", settings());
    assert!(!s.contains("s3cret") && s.contains("janua"), "{s}");
    let p = Pending {
        state: "st".into(),
        nonce: "no".into(),
        pkce_verifier: "VERIFIER".into(),
        redirect_uri: "r".into(),
    };
    assert!(!format!("{p:?}").contains("VERIFIER"));
}
