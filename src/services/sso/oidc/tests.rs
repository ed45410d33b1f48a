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

/// A P-256 key: its PKCS#8 DER and its JWK.
fn ec_key(kid: &str) -> (Vec<u8>, Value) {
    use openssl::{bn::BigNum, bn::BigNumContext, ec::EcGroup, ec::EcKey, nid::Nid, pkey::PKey};
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let ec = EcKey::generate(&group).unwrap();
    let (mut x, mut y, mut ctx) =
        (BigNum::new().unwrap(), BigNum::new().unwrap(), BigNumContext::new().unwrap());
    ec.public_key().affine_coordinates(&group, &mut x, &mut y, &mut ctx).unwrap();
    let b64 = |n: &BigNum| URL_SAFE_NO_PAD.encode(n.to_vec_padded(32).unwrap());
    let jwk = json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid, "x": b64(&x), "y": b64(&y)});
    (PKey::from_ec_key(ec).unwrap().private_key_to_pkcs8().unwrap(), jwk)
}

/// Whether two compact JWS texts carry the same bytes: a mutation of the unused low bits of a
/// segment's last base64url character (the text differs, the header, claims and signature do
/// not) is the same token.
fn same_jws(a: &str, b: &str) -> bool {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let parts = |t: &str| -> Option<Vec<Vec<u8>>> { t.split('.').map(|s| lenient.decode(s).ok()).collect() };
    a == b || (a.split('.').count() == 3 && parts(a).is_some_and(|pa| parts(b) == Some(pa)))
}

/// Fuzz: the id_token check against mutated JWKS documents and mutated or arbitrary tokens.
/// Nothing panics; a JWKS that still parses never lets a changed token through; the one
/// token the IdP signed verifies against its own key set.
#[test]
fn fuzz_id_token_and_jwks() {
    use proptest::prelude::*;
    let (der, jwk) = ec_key("ec-1");
    let now = Utc::now();
    let claims = json!({"iss": ISSUER, "aud": "janua", "sub": "user-1", "email": "a@example.com",
        "iat": now.timestamp(), "exp": now.timestamp() + 300, "nonce": "n-1"});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("ec-1".into());
    let valid =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(&der)).unwrap();
    let jwks = json!({"keys": [jwk]}).to_string();
    let s = settings();
    let access = AccessToken::new("at".into());
    let check = Check { s: &s, nonce: Nonce::new("n-1".into()), access_token: &access, now };
    type Verdict = Option<Result<(String, Map<String, Value>), SsoReason>>;
    let verify = |token: &str, keys: &str| -> Verdict {
        let keys: CoreJsonWebKeySet = serde_json::from_str(keys).ok()?;
        let token: CoreIdToken = token.parse().ok()?;
        Some(check.verify(&token, keys))
    };
    assert_eq!(verify(&valid, &jwks).expect("parses").expect("verifies").0, "user-1");
    // The last character of the 64-byte signature carries 2 bits: its other 4 are not the token's.
    let alphabet = base64::alphabet::URL_SAFE.as_str();
    let (head, last) = valid.split_at(valid.len() - 1);
    let index = alphabet.find(last).expect("a base64url character");
    let loose = format!("{head}{}", &alphabet[index | 0b11..=index | 0b11]);
    assert_ne!(loose, valid);
    assert!(same_jws(&loose, &valid));
    assert!(!same_jws(&valid.replacen("eyJ", "eyK", 1), &valid));

    let token = prop_oneof![
        1 => Just(valid.clone()),
        1 => any::<String>(),
        4 => crate::fuzz::mutated(valid.clone()),
    ];
    let keys = prop_oneof![
        2 => Just(jwks.clone()),
        3 => crate::fuzz::mutated(jwks.clone()),
        1 => any::<String>(),
    ];
    crate::fuzz::run("OIDC id_token + JWKS", 1500, (token, keys), |(token, keys)| {
        if let Some(Ok((subject, _))) = verify(&token, &keys) {
            prop_assert!(same_jws(&token, &valid), "a changed id_token verified: {token}");
            prop_assert_eq!(subject, "user-1");
        }
        Ok(())
    });
}
