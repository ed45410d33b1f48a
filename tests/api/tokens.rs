//! Access tokens verified by an independent JWT library against the served JWKS; key rotation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_compact::alg::{Ed25519, VerifyingKey};
use jwt_compact::{Algorithm, AlgorithmExt, UntrustedToken};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, access, get_json};

crate::on_both_databases!(
    access_tokens_verify_against_the_jwks,
    rotated_keys_stay_published_until_their_tokens_expire,
    expired_and_forged_tokens_are_refused,
);

/// Verifies `token` with jwt-compact using the key the JWKS names by `kid`; returns the claims.
pub(crate) fn verify_with_jwks(token: &str, jwks: &Value) -> Value {
    let untrusted = UntrustedToken::new(token).expect("a JWT");
    let kid = untrusted.header().key_id.clone().expect("kid in the header");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS {jwks}"));
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let key = <<Ed25519 as Algorithm>::VerifyingKey as VerifyingKey<Ed25519>>::from_slice(&x).unwrap();
    let token = Ed25519.validator::<Value>(&key).validate(&untrusted).expect("signature verifies");
    let claims = token.claims();
    assert!(claims.expiration.is_some_and(|e| e > chrono::Utc::now()));
    assert!(claims.issued_at.is_some_and(|t| t <= chrono::Utc::now()));
    claims.custom.clone()
}

async fn access_tokens_verify_against_the_jwks(b: Backend) {
    let app = TestApp::spawn(b).await;
    let s = app.signup("jwt@example.com").await;
    let jwks = get_json(&app.client, &app.url("/.well-known/jwks.json"), None).await;
    let claims = verify_with_jwks(&access(&s), &jwks);
    assert_eq!(claims["iss"], "http://localhost:8000");
    assert_eq!(claims["aud"], "janua");
    assert_eq!(claims["sub"], s["user"]["id"]);
    assert_eq!(claims["sid"], s["tokens"]["session_id"]);
    assert!(claims["jti"].is_string(), "jti claim");
    let conf = get_json(&app.client, &app.url("/.well-known/openid-configuration"), None).await;
    assert_eq!(conf["issuer"], "http://localhost:8000");
    assert_eq!(conf["jwks_uri"], "http://localhost:8000/.well-known/jwks.json");
    // No private material is ever published.
    let text = jwks.to_string();
    assert!(!text.contains("\"d\""), "{text}");
}

async fn rotated_keys_stay_published_until_their_tokens_expire(b: Backend) {
    use janua::security::secrets::MasterKey;
    use janua::security::tokens::KeyStore;
    let app = TestApp::spawn(b).await;
    let before = app.signup("rot@example.com").await;
    let state = &app.services.state;
    let master = MasterKey::from_base64(state.config.master_key.as_deref().unwrap()).unwrap();
    // What `janua keys rotate` does, against the same database.
    let new_kid = KeyStore::rotate(&state.db, &master, state.config.access_token_ttl).await.unwrap();
    state.keys.reload(&state.db).await.unwrap();
    let after = app.signin("rot@example.com").await;
    let jwks = get_json(&app.client, &app.url("/.well-known/jwks.json"), None).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "old and new keys are published: {jwks}");
    verify_with_jwks(&access(&before), &jwks);
    verify_with_jwks(&access(&after), &jwks);
    let header = UntrustedToken::new(&access(&after)).unwrap().header().key_id.clone();
    assert_eq!(header.as_deref(), Some(new_kid.as_str()), "new tokens are signed by the new key");
    // A token signed by the old key is still accepted while it lives.
    assert_eq!(app.rest("GET", "/auth/me", Some(&access(&before)), None).await.status, 200);
}

async fn expired_and_forged_tokens_are_refused(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.access_token_ttl = -60).await;
    let s = app.signup("exp@example.com").await;
    let r = app.rest("GET", "/auth/me", Some(&access(&s)), None).await;
    assert_eq!((r.status, r.code()), (401, "TOKEN_EXPIRED"));
    let g = app.gql(Some(&access(&s)), "{ me { id } }", json!({})).await;
    assert_eq!(g["errors"][0]["extensions"]["code"], "TOKEN_EXPIRED");
    // Tamper with the payload: the signature no longer matches.
    let t = access(&s);
    let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["exp"] = json!(4_000_000_000i64);
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let r = app.rest("GET", "/auth/me", Some(&parts.join(".")), None).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"));
    let r = app.rest("GET", "/auth/me", Some("not.a.jwt"), None).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"));
}
