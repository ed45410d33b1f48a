//! The OpenID Connect relying party (`services::sso::oidc`) against a real provider
//! ([`TestIdp`]): the happy path, and every forged, replayed or misdirected answer refused with
//! its `details.reason`.

use std::time::Duration;

use chrono::Utc;
use janua::domain::webhooks::AddressPolicy;
use janua::error::{AppError, AppResult, ErrorCode};
use janua::security::outbound::guarded_client;
use janua::services::sso::oidc::{Identity, OidcSettings, Pending, authorization_url, complete, discover};
use janua::storage::documents::DocumentCache;
use serde_json::json;

use crate::oidc_idp::{CLIENT_ID, ClientAuth, Signing, TestIdp};

const REDIRECT_URI: &str = "http://127.0.0.1:9/api/v1/sso/oidc/callback";

fn client(allow_loopback: bool) -> reqwest::Client {
    let policy = AddressPolicy { allow_loopback, allow_private: false };
    guarded_client(policy, Duration::from_secs(10), 2, "janua-test").unwrap()
}

/// The relying party of one test: its client and cache, against one provider.
struct Rp {
    http: reqwest::Client,
    cache: DocumentCache,
    settings: OidcSettings,
}

impl Rp {
    fn new(idp: &TestIdp) -> Self {
        Self { http: client(true), cache: DocumentCache::default(), settings: idp.settings() }
    }

    async fn discover(&self) -> AppResult<()> {
        discover(&self.http, &self.cache, &self.settings).await
    }

    /// Starts a sign-in and plays the browser through the provider: the pending state and the code.
    async fn start(&self, idp: &TestIdp) -> (Pending, String) {
        let (url, pending) =
            authorization_url(&self.http, &self.cache, &self.settings, REDIRECT_URI).await.unwrap();
        let callback = idp.authorize(&url).await;
        assert_eq!(callback.state, pending.state);
        assert!(callback.location.starts_with(REDIRECT_URI));
        (pending, callback.code)
    }

    async fn complete(&self, pending: &Pending, code: &str) -> AppResult<Identity> {
        complete(&self.http, &self.cache, &self.settings, pending, code, Utc::now()).await
    }

    /// A whole sign-in.
    async fn sign_in(&self, idp: &TestIdp) -> AppResult<Identity> {
        let (pending, code) = self.start(idp).await;
        self.complete(&pending, &code).await
    }
}

fn reason(e: &AppError) -> &str {
    e.details.as_ref().and_then(|d| d["reason"].as_str()).unwrap_or("<none>")
}

#[track_caller]
fn assert_refused(r: AppResult<Identity>, expected: &str) {
    let e = r.expect_err("the sign-in should have been refused");
    assert_eq!(e.code, ErrorCode::SsoError, "{e:?}");
    assert_eq!(reason(&e), expected, "{e:?}");
}

#[track_caller]
fn assert_unreachable(e: AppError) {
    assert_eq!(e.code, ErrorCode::UpstreamError, "{e:?}");
    assert_eq!(e.code.http_status(), 502);
    assert_eq!(reason(&e), "idp_unreachable");
}

#[tokio::test]
async fn happy_path_with_pkce_checked_by_the_provider() {
    let idp = TestIdp::start().await;
    let rp = Rp::new(&idp);
    rp.discover().await.unwrap();
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (1, 1));

    let (pending, code) = rp.start(&idp).await;
    let asked = idp.last_authorize().unwrap();
    assert_eq!(asked["scope"], "openid email profile");
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["nonce"], pending.nonce);
    assert_eq!(asked["redirect_uri"], REDIRECT_URI);

    let id = rp.complete(&pending, &code).await.unwrap();
    assert_eq!(id.subject, "idp-user-1");
    assert_eq!(id.email.as_deref(), Some("ada@example.com"));
    assert_eq!(id.email_verified, Some(true));
    assert_eq!(id.claims["name"], "Ada Lovelace");
    assert_eq!(id.claims["aud"], CLIENT_ID);
    // Email was in the id_token: no userinfo call; documents came from the cache.
    assert_eq!(idp.userinfo_requests(), 0);
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches(), idp.token_requests()), (1, 1, 1));
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused_by_the_provider() {
    let idp = TestIdp::start().await;
    let rp = Rp::new(&idp);
    let (mut pending, code) = rp.start(&idp).await;
    pending.pkce_verifier = "x".repeat(64);
    assert_refused(rp.complete(&pending, &code).await, "idp_error");
}

#[tokio::test]
async fn userinfo_supplies_email_when_the_id_token_lacks_it() {
    let idp = TestIdp::start().await;
    idp.set(|k| {
        k.email_in_id_token = false;
        k.userinfo_patch.insert("name".into(), json!("Someone Else"));
    });
    let rp = Rp::new(&idp);
    let id = rp.sign_in(&idp).await.unwrap();
    assert_eq!(idp.userinfo_requests(), 1);
    assert_eq!(id.email.as_deref(), Some("ada@example.com"));
    assert_eq!(id.email_verified, Some(true));
    // The id_token's claims win; userinfo fills the gaps.
    assert_eq!(id.claims["name"], "Ada Lovelace");
    assert_eq!(id.claims["given_name"], "Ada");
    assert_eq!(id.claims["family_name"], "Lovelace");
    assert_eq!(id.claims["locale"], "en");
}

#[tokio::test]
async fn userinfo_about_another_subject_is_refused() {
    let idp = TestIdp::start().await;
    idp.set(|k| {
        k.email_in_id_token = false;
        k.userinfo_patch.insert("sub".into(), json!("someone-else"));
    });
    assert_refused(Rp::new(&idp).sign_in(&idp).await, "malformed_response");
}

#[tokio::test]
async fn es256_and_client_secret_post() {
    let idp = TestIdp::start().await;
    idp.set(|k| {
        k.signing = Signing::Es256;
        k.client_auth = ClientAuth::Post;
    });
    let id = Rp::new(&idp).sign_in(&idp).await.unwrap();
    assert_eq!(id.subject, "idp-user-1");
}

#[tokio::test]
async fn a_signature_by_a_key_outside_the_jwks_is_refused() {
    let idp = TestIdp::start().await;
    idp.set(|k| k.signing = Signing::ForeignKey);
    let rp = Rp::new(&idp);
    assert_refused(rp.sign_in(&idp).await, "signature_invalid");
    // The kid is known: no reason to fetch the JWKS again.
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn alg_none_and_hs256_keyed_with_the_public_key_are_refused() {
    let idp = TestIdp::start().await;
    let rp = Rp::new(&idp);
    for forgery in [Signing::AlgNone, Signing::Hs256WithPublicKey] {
        idp.set(|k| k.signing = forgery);
        assert_refused(rp.sign_in(&idp).await, "signature_invalid");
    }
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_exactly_once() {
    let idp = TestIdp::start().await;
    let rp = Rp::new(&idp);
    rp.discover().await.unwrap();
    assert_eq!(idp.jwks_fetches(), 1);
    idp.set(|k| k.signing = Signing::UnknownKid);
    assert_refused(rp.sign_in(&idp).await, "unknown_key");
    assert_eq!(idp.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refresh() {
    let idp = TestIdp::start().await;
    let rp = Rp::new(&idp);
    rp.discover().await.unwrap();
    idp.rotate_keys();
    let id = rp.sign_in(&idp).await.unwrap();
    assert_eq!(id.subject, "idp-user-1");
    assert_eq!(idp.jwks_fetches(), 2);
    // The refreshed JWKS is cached: the next sign-in fetches nothing.
    rp.sign_in(&idp).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_wrong_nonce_is_refused() {
    let idp = TestIdp::start().await;
    idp.set(|k| k.nonce = Some("a-nonce-of-another-sign-in".into()));
    assert_refused(Rp::new(&idp).sign_in(&idp).await, "nonce_mismatch");
}

#[tokio::test]
async fn audiences_must_name_this_client_and_azp_must_be_it() {
    let idp = TestIdp::start().await;
    let rp = Rp::new(&idp);
    idp.set(|k| k.audience = Some(vec!["another-client".into()]));
    assert_refused(rp.sign_in(&idp).await, "audience_mismatch");
    // Several audiences: only with azp = this client.
    idp.set(|k| k.audience = Some(vec![CLIENT_ID.into(), "another-client".into()]));
    assert_refused(rp.sign_in(&idp).await, "audience_mismatch");
    idp.set(|k| k.azp = Some("another-client".into()));
    assert_refused(rp.sign_in(&idp).await, "audience_mismatch");
    idp.set(|k| k.azp = Some(CLIENT_ID.into()));
    rp.sign_in(&idp).await.unwrap();
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let idp = TestIdp::start().await;
    idp.set(|k| k.token_issuer = Some("https://evil.example.com".into()));
    assert_refused(Rp::new(&idp).sign_in(&idp).await, "issuer_mismatch");
}

#[tokio::test]
async fn expired_and_future_tokens_are_refused() {
    let idp = TestIdp::start().await;
    let rp = Rp::new(&idp);
    idp.set(|k| k.expires_in = -5);
    assert_refused(rp.sign_in(&idp).await, "expired");
    idp.set(|k| {
        k.expires_in = 900;
        k.issued_at_offset = 600;
    });
    assert_refused(rp.sign_in(&idp).await, "not_yet_valid");
    // Within the 60 s skew: accepted.
    idp.set(|k| k.issued_at_offset = 30);
    rp.sign_in(&idp).await.unwrap();
}

#[tokio::test]
async fn a_reused_code_is_refused() {
    let idp = TestIdp::start().await;
    let rp = Rp::new(&idp);
    let (pending, code) = rp.start(&idp).await;
    rp.complete(&pending, &code).await.unwrap();
    assert_refused(rp.complete(&pending, &code).await, "idp_error");
}

#[tokio::test]
async fn an_at_hash_for_another_access_token_is_refused() {
    let idp = TestIdp::start().await;
    idp.set(|k| k.wrong_at_hash = true);
    assert_refused(Rp::new(&idp).sign_in(&idp).await, "malformed_response");
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_refused_and_not_cached() {
    let idp = TestIdp::start().await;
    let rp = Rp::new(&idp);
    idp.set(|k| {
        k.discovery_patch.insert("issuer".into(), json!(format!("{}/", idp.issuer())));
    });
    let e = rp.discover().await.unwrap_err();
    assert_eq!((e.code, reason(&e)), (ErrorCode::SsoError, "issuer_mismatch"));
    let e = authorization_url(&rp.http, &rp.cache, &rp.settings, REDIRECT_URI).await.unwrap_err();
    assert_eq!(reason(&e), "issuer_mismatch");
    assert_eq!(idp.discovery_fetches(), 2);
    idp.set(|k| k.discovery_patch.clear());
    rp.discover().await.unwrap();
}

#[tokio::test]
async fn unreadable_discovery_documents() {
    let idp = TestIdp::start().await;
    let rp = Rp::new(&idp);
    idp.set(|k| {
        k.discovery_patch.insert("jwks_uri".into(), json!(null));
    });
    let e = rp.discover().await.unwrap_err();
    assert_eq!(reason(&e), "malformed_response");
    // An answer too large to be a discovery document is not read to its end.
    idp.set(|k| {
        k.discovery_patch.insert("padding".into(), json!("x".repeat(300 * 1024)));
    });
    let e = rp.discover().await.unwrap_err();
    assert_eq!(reason(&e), "malformed_response");
    for status in [404, 500, 503] {
        idp.set(|k| k.discovery_status = Some(status));
        assert_unreachable(rp.discover().await.unwrap_err());
    }
}

#[tokio::test]
async fn an_unreachable_idp_is_a_502() {
    let idp = TestIdp::start().await;
    let rp = Rp::new(&idp);
    let (pending, code) = rp.start(&idp).await;
    idp.stop().await;
    // The token endpoint is gone (discovery still cached)…
    assert_unreachable(rp.complete(&pending, &code).await.unwrap_err());
    // …and so is discovery.
    assert_unreachable(rp.discover().await.unwrap_err());
}

#[tokio::test]
async fn the_guarded_client_refuses_a_loopback_idp_unless_allowed() {
    let idp = TestIdp::start().await;
    let strict = client(false);
    let cache = DocumentCache::default();
    // By IP literal (no DNS involved) and by name.
    let port = idp.issuer().rsplit(':').next().unwrap();
    for issuer in [idp.issuer().to_owned(), format!("http://localhost:{port}")] {
        let s = OidcSettings { issuer, ..idp.settings() };
        assert_unreachable(discover(&strict, &cache, &s).await.unwrap_err());
        let e = authorization_url(&strict, &cache, &s, REDIRECT_URI).await.unwrap_err();
        assert_unreachable(e);
    }
    assert_eq!(idp.discovery_fetches(), 0, "no request may reach the provider");
}
