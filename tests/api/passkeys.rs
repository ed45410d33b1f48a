//! Passkeys through the real server, driven by webauthn-authenticator-rs's software token.
//!
//! The soft token signs with real P-256 keys and keeps a real signature counter, but it cannot
//! store resident credentials. [`ResidentToken`] adds exactly that, as a platform authenticator
//! does: it remembers, per credential, the user handle the relying party sent at registration,
//! offers its credentials when the request names none (usernameless), and returns the user
//! handle with the assertion. Everything signed is the soft token's own work.

use std::collections::HashMap;

use serde_json::{Value, json};
use webauthn_authenticator_rs::prelude::{Url, WebauthnAuthenticator};
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_authenticator_rs::{AuthenticatorBackend, error::WebauthnCError};
use webauthn_rs_proto::{
    AllowCredentials, CreationChallengeResponse, PublicKeyCredential, PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions, RegisterPublicKeyCredential, RequestChallengeResponse,
};

use crate::helpers::{Backend, PASSWORD, TestApp, access};
use crate::mfa::{enable_mfa, mfa_token};

/// The origin the server is configured for by default.
const ORIGIN: &str = "http://localhost:8000";

/// A soft token that also keeps resident credentials (see the module documentation).
pub struct ResidentToken {
    token: SoftToken,
    /// credential id → (rp id, user handle)
    resident: HashMap<Vec<u8>, (String, Vec<u8>)>,
}

impl ResidentToken {
    pub fn new() -> Self {
        let (token, _ca) = SoftToken::new(true).expect("soft token");
        Self { token, resident: HashMap::new() }
    }

    /// A byte-for-byte copy (same keys, same counter): a cloned authenticator.
    pub fn duplicate(&self) -> Self {
        Self {
            token: SoftToken::from_cbor(&self.token.to_cbor().unwrap()).unwrap(),
            resident: self.resident.clone(),
        }
    }

    /// Runs `navigator.credentials.create` with the server's options JSON at `origin`.
    pub fn create(&mut self, origin: &str, options: &Value) -> Value {
        let ccr: CreationChallengeResponse =
            serde_json::from_value(options.clone()).expect("creation options");
        let cred = self.do_registration(Url::parse(origin).unwrap(), ccr).expect("registration");
        serde_json::to_value(cred).unwrap()
    }

    /// Runs `navigator.credentials.get` with the server's options JSON at `origin`.
    pub fn get(&mut self, origin: &str, options: &Value) -> Value {
        let rcr: RequestChallengeResponse = serde_json::from_value(options.clone()).expect("request options");
        let cred = self.do_authentication(Url::parse(origin).unwrap(), rcr).expect("authentication");
        serde_json::to_value(cred).unwrap()
    }
}

impl AuthenticatorBackend for ResidentToken {
    fn perform_register(
        &mut self,
        origin: Url,
        mut options: PublicKeyCredentialCreationOptions,
        timeout_ms: u32,
    ) -> Result<RegisterPublicKeyCredential, WebauthnCError> {
        let wants_resident = options.authenticator_selection.as_ref().is_some_and(|s| s.require_resident_key);
        if let Some(sel) = options.authenticator_selection.as_mut() {
            // This wrapper provides the residency the soft token lacks.
            sel.require_resident_key = false;
            sel.resident_key = None;
        }
        let rp_id = options.rp.id.clone();
        let user_handle = options.user.id.clone();
        let cred = self.token.perform_register(origin, options, timeout_ms)?;
        if wants_resident {
            self.resident.insert(cred.raw_id.clone(), (rp_id, user_handle));
        }
        Ok(cred)
    }

    fn perform_auth(
        &mut self,
        origin: Url,
        mut options: PublicKeyCredentialRequestOptions,
        timeout_ms: u32,
    ) -> Result<PublicKeyCredential, WebauthnCError> {
        if options.allow_credentials.is_empty() {
            // Usernameless: the authenticator offers its own credentials for this RP.
            options.allow_credentials = self
                .resident
                .iter()
                .filter(|(_, (rp, _))| *rp == options.rp_id)
                .map(|(id, _)| AllowCredentials {
                    type_: "public-key".into(),
                    id: id.clone(),
                    transports: None,
                })
                .collect();
        }
        let mut cred = self.token.perform_auth(origin, options, timeout_ms)?;
        if let Some((_, handle)) = self.resident.get(&cred.raw_id) {
            cred.response.user_handle = Some(handle.clone());
        }
        Ok(cred)
    }
}

/// Registers a passkey over REST for the holder of `at`; returns the passkey JSON.
pub async fn register(app: &TestApp, at: &str, token: &mut ResidentToken, name: Option<&str>) -> Value {
    let r = app.rest("POST", "/passkeys/register/options", Some(at), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    let sel = &d["options"]["publicKey"]["authenticatorSelection"];
    assert_eq!(sel["residentKey"], "required", "a discoverable credential is requested: {d}");
    assert_eq!(sel["userVerification"], "required");
    let credential = token.create(ORIGIN, &d["options"]);
    let r = app
        .rest(
            "POST",
            "/passkeys/register",
            Some(at),
            Some(json!({"ceremony_id": d["ceremony_id"], "credential": credential, "name": name})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["data"].clone()
}

/// Options for a passkey sign-in (`body` may name an email or an MFA token).
async fn auth_options(app: &TestApp, body: Value) -> (String, Value) {
    let r = app.rest("POST", "/passkeys/authenticate/options", None, Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    (d["ceremony_id"].as_str().unwrap().to_owned(), d["options"].clone())
}

async fn authenticate(app: &TestApp, ceremony: &str, credential: &Value) -> crate::helpers::Resp {
    app.rest(
        "POST",
        "/passkeys/authenticate",
        None,
        Some(json!({"ceremony_id": ceremony, "credential": credential})),
    )
    .await
}

async fn session_method(app: &TestApp, data: &Value) -> String {
    let at = access(data);
    let sid = data["tokens"]["session_id"].as_str().unwrap();
    let r = app.rest("GET", &format!("/sessions/{sid}"), Some(&at), None).await;
    r.body["data"]["auth_method"].as_str().unwrap_or_default().to_owned()
}

async fn register_and_sign_in_usernameless(b: Backend) {
    let app = TestApp::spawn(b).await;
    let at = access(&app.signup("eve@example.com").await);
    let mut token = ResidentToken::new();
    let pk = register(&app, &at, &mut token, Some("Laptop")).await;
    assert_eq!(pk["name"], "Laptop");
    assert_eq!(pk["discoverable"], true);
    assert!(pk["last_used_at"].is_null());
    assert!(pk.get("credential").is_none() && pk.get("public_key").is_none());

    // Usernameless: no email, no allowCredentials; the authenticator picks its credential.
    let (ceremony, options) = auth_options(&app, json!({})).await;
    assert!(options["publicKey"]["allowCredentials"].as_array().is_none_or(|a| a.is_empty()), "{options}");
    let assertion = token.get(ORIGIN, &options);
    let r = authenticate(&app, &ceremony, &assertion).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["user"]["email"], "eve@example.com");
    assert_eq!(session_method(&app, &r.body["data"]).await, "passkey");

    // A replayed response finds its ceremony consumed.
    let r = authenticate(&app, &ceremony, &assertion).await;
    assert_eq!((r.status, r.code()), (400, "PASSKEY_CEREMONY_INVALID"));

    // For a known email: that user's credentials are offered.
    let (ceremony, options) = auth_options(&app, json!({"email": "eve@example.com"})).await;
    assert_eq!(options["publicKey"]["allowCredentials"].as_array().unwrap().len(), 1);
    let r = authenticate(&app, &ceremony, &token.get(ORIGIN, &options)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // An unknown email answers like a known one: fake credential ids, the same every time.
    let known = options["publicKey"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let (_, fake) = auth_options(&app, json!({"email": "nobody@example.com"})).await;
    let (_, again) = auth_options(&app, json!({"email": "nobody@example.com"})).await;
    let ids = &fake["publicKey"]["allowCredentials"];
    // webauthn-rs draws how many fake ids to show from the distribution of real users' passkey
    // counts, so an unknown email may get none, as a user without passkeys would: only the shape
    // and the determinism are guaranteed.
    assert!(ids.is_array(), "{fake}");
    assert_eq!(ids, &again["publicKey"]["allowCredentials"]);
    assert_eq!(fake["publicKey"].as_object().unwrap().keys().cloned().collect::<Vec<_>>(), known);
    assert_eq!(fake.get("mediation"), options.get("mediation"));

    // Replaying a registration ceremony is refused too.
    let r = app.rest("POST", "/passkeys/register/options", Some(&at), None).await;
    let d = r.body["data"].clone();
    let mut other = ResidentToken::new();
    let cred = other.create(ORIGIN, &d["options"]);
    let body = json!({"ceremony_id": d["ceremony_id"], "credential": cred});
    let r = app.rest("POST", "/passkeys/register", Some(&at), Some(body.clone())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["name"], "Passkey 2");
    let r = app.rest("POST", "/passkeys/register", Some(&at), Some(body)).await;
    assert_eq!((r.status, r.code()), (400, "PASSKEY_CEREMONY_INVALID"));
}

async fn wrong_origin_and_cloned_authenticator_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let at = access(&app.signup("fay@example.com").await);
    let mut token = ResidentToken::new();
    register(&app, &at, &mut token, None).await;

    // Signed for another origin (a phishing page under the same RP id): refused.
    let (ceremony, options) = auth_options(&app, json!({"email": "fay@example.com"})).await;
    let phished = token.get("https://evil.localhost", &options);
    let r = authenticate(&app, &ceremony, &phished).await;
    assert_eq!((r.status, r.code()), (401, "PASSKEY_VERIFICATION_FAILED"), "{}", r.body);

    // A registration from a wrong origin is refused as well.
    let r = app.rest("POST", "/passkeys/register/options", Some(&at), None).await;
    let d = r.body["data"].clone();
    let cred = ResidentToken::new().create("https://evil.localhost", &d["options"]);
    let r = app
        .rest(
            "POST",
            "/passkeys/register",
            Some(&at),
            Some(json!({"ceremony_id": d["ceremony_id"], "credential": cred})),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "PASSKEY_VERIFICATION_FAILED"));

    // A clone of the authenticator: the original moves the counter on, the clone lags behind.
    let mut clone = token.duplicate();
    for _ in 0..2 {
        let (ceremony, options) = auth_options(&app, json!({})).await;
        let r = authenticate(&app, &ceremony, &token.get(ORIGIN, &options)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let (ceremony, options) = auth_options(&app, json!({})).await;
    let r = authenticate(&app, &ceremony, &clone.get(ORIGIN, &options)).await;
    assert_eq!((r.status, r.code()), (401, "PASSKEY_CLONED"), "{}", r.body);
}

async fn list_rename_delete(b: Backend) {
    let app = TestApp::spawn(b).await;
    let at = access(&app.signup("gus@example.com").await);
    let other = access(&app.signup("hal@example.com").await);
    let mut token = ResidentToken::new();
    let pk = register(&app, &at, &mut token, Some("Phone")).await;
    let id = pk["id"].as_str().unwrap();

    let r = app.rest("GET", "/passkeys", Some(&at), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    for k in ["id", "name", "created_at", "last_used_at", "transports", "backup_eligible"] {
        assert!(list[0].get(k).is_some(), "{k} in {}", list[0]);
    }
    let r = app.rest("PUT", &format!("/passkeys/{id}"), Some(&at), Some(json!({"name": "Work phone"}))).await;
    assert_eq!((r.status, r.body["data"]["name"].as_str()), (200, Some("Work phone")));
    let r = app.rest("PUT", &format!("/passkeys/{id}"), Some(&at), Some(json!({"name": ""}))).await;
    assert_eq!(r.code(), "VALIDATION_ERROR");
    // Someone else's passkey is not found.
    let r = app.rest("DELETE", &format!("/passkeys/{id}"), Some(&other), None).await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));
    let r = app.rest("DELETE", &format!("/passkeys/{id}"), Some(&at), None).await;
    assert_eq!(r.status, 204);
    let r = app.rest("GET", "/passkeys", Some(&at), None).await;
    assert_eq!(r.body["data"], json!([]));

    // A deleted passkey no longer signs in.
    let (ceremony, options) = auth_options(&app, json!({})).await;
    let r = authenticate(&app, &ceremony, &token.get(ORIGIN, &options)).await;
    assert_eq!((r.status, r.code()), (401, "PASSKEY_VERIFICATION_FAILED"));

    let actions: Vec<String> = {
        use sea_orm::EntityTrait;
        entities::audit_log::Entity::find()
            .all(&app.services.state.db)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect()
    };
    for a in ["security.passkey.registered", "security.passkey.renamed", "security.passkey.removed"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited");
    }
}

async fn passkey_as_second_factor(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (at, _totp, _) = enable_mfa(&app, "ivy@example.com").await;
    let mut token = ResidentToken::new();
    register(&app, &at, &mut token, None).await;

    let r = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "ivy@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(r.body["data"]["methods"], json!(["totp", "backup_code", "passkey"]));
    let mfa = r.body["data"]["mfa_token"].as_str().unwrap().to_owned();
    let (ceremony, options) = auth_options(&app, json!({"mfa_token": mfa})).await;
    let assertion = token.get(ORIGIN, &options);
    // Without its MFA token the ceremony does not complete.
    let r = authenticate(&app, &ceremony, &assertion).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"));

    let mfa = mfa_token(&app, "ivy@example.com").await;
    let (ceremony, options) = auth_options(&app, json!({"mfa_token": mfa})).await;
    let assertion = token.get(ORIGIN, &options);
    let r = app
        .rest(
            "POST",
            "/passkeys/authenticate",
            None,
            Some(json!({"ceremony_id": ceremony, "credential": assertion, "mfa_token": mfa})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(session_method(&app, &r.body["data"]).await, "password+mfa");
    // The MFA token was spent.
    let r = app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": mfa, "code": "123456"}))).await;
    assert_eq!(r.code(), "INVALID_TOKEN");
}

const REG_OPTIONS: &str = "mutation { passkeyRegistrationOptions { ceremonyId options } }";
const REGISTER: &str =
    "mutation($i: RegisterPasskeyInput!) { registerPasskey(input: $i) { id name discoverable } }";
const AUTH_OPTIONS: &str = "mutation($i: PasskeyAuthenticationOptionsInput) { passkeyAuthenticationOptions(input: $i) { ceremonyId options } }";
const AUTHENTICATE: &str = "mutation($i: AuthenticatePasskeyInput!) { authenticatePasskey(input: $i) { user { email } tokens { accessToken } } }";

async fn graphql_passkeys(b: Backend) {
    let app = TestApp::spawn(b).await;
    let at = access(&app.signup("jo@example.com").await);
    let mut token = ResidentToken::new();
    let r = app.gql(Some(&at), REG_OPTIONS, json!({})).await;
    let o = &r["data"]["passkeyRegistrationOptions"];
    let cred = token.create(ORIGIN, &o["options"]);
    let r = app
        .gql(
            Some(&at),
            REGISTER,
            json!({"i": {"ceremonyId": o["ceremonyId"], "credential": cred, "name": "Key"}}),
        )
        .await;
    assert_eq!(r["data"]["registerPasskey"]["name"], "Key", "{r}");
    let r = app
        .gql(Some(&at), "{ passkeys { name backupEligible } mfaStatus { passkeyCount } }", json!({}))
        .await;
    assert_eq!(r["data"]["passkeys"][0]["name"], "Key");
    assert_eq!(r["data"]["mfaStatus"]["passkeyCount"], 1);

    let r = app.gql(None, AUTH_OPTIONS, json!({})).await;
    let o = &r["data"]["passkeyAuthenticationOptions"];
    let assertion = token.get(ORIGIN, &o["options"]);
    let vars = json!({"i": {"ceremonyId": o["ceremonyId"], "credential": assertion}});
    let r = app.gql(None, AUTHENTICATE, vars.clone()).await;
    assert_eq!(r["data"]["authenticatePasskey"]["user"]["email"], "jo@example.com", "{r}");
    let r = app.gql(None, AUTHENTICATE, vars).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "PASSKEY_CEREMONY_INVALID");
    let r = app.gql(None, AUTHENTICATE, json!({"i": {"ceremonyId": "x", "credential": {"id": 1}}})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "VALIDATION_ERROR");
}

crate::on_both_databases!(
    register_and_sign_in_usernameless,
    wrong_origin_and_cloned_authenticator_are_refused,
    list_rename_delete,
    passkey_as_second_factor,
    graphql_passkeys,
);
