//! TOTP and backup codes through the real server: codes come from an independent TOTP generator
//! fed with the `otpauth://` URI the server returned.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use totp_rs::Totp;

use crate::helpers::{Backend, PASSWORD, TestApp, access};

/// An authenticator app: parses the URI like a phone would.
pub struct App(Totp);

impl App {
    pub fn from_uri(uri: &str) -> Self {
        Self(Totp::from_url(uri).expect("a valid otpauth URI"))
    }

    /// The code of the current step moved by `offset` steps (±1 is inside the accepted window).
    /// Calls with increasing offsets give strictly later steps, so none is a replay.
    pub fn code(&self, offset: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        self.0.generate((now + offset * 30) as u64).to_string()
    }
}

/// A user with MFA enabled over REST; returns (access token, authenticator app, backup codes).
/// The confirmation used the previous step's code, so offsets 0 and +1 remain usable.
pub async fn enable_mfa(app: &TestApp, email: &str) -> (String, App, Vec<String>) {
    let at = access(&app.signup(email).await);
    let r = app.rest("POST", "/mfa/setup", Some(&at), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    let totp = App::from_uri(d["otpauth_uri"].as_str().unwrap());
    let codes: Vec<String> = serde_json::from_value(d["backup_codes"].clone()).unwrap();
    let mut r = app.rest("POST", "/mfa/verify", Some(&at), Some(json!({"code": totp.code(-1)}))).await;
    if r.code() == "INVALID_MFA_CODE" {
        // A 30-second step ended between computing the code and the server checking it (a slow
        // request under load): the previous step's code of the new step is accepted.
        r = app.rest("POST", "/mfa/verify", Some(&at), Some(json!({"code": totp.code(-1)}))).await;
    }
    assert_eq!(r.status, 200, "{}", r.body);
    (at, totp, codes)
}

/// Password step of a sign-in with MFA on: returns the MFA token.
pub async fn mfa_token(app: &TestApp, email: &str) -> String {
    let r = app.rest("POST", "/auth/signin", None, Some(json!({"email": email, "password": PASSWORD}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["mfa_required"], true, "{}", r.body);
    assert!(r.body["data"].get("tokens").is_none(), "no tokens before the second factor");
    r.body["data"]["mfa_token"].as_str().unwrap().to_owned()
}

async fn session_method(app: &TestApp, data: &Value) -> String {
    let at = access(data);
    let sid = data["tokens"]["session_id"].as_str().unwrap();
    let r = app.rest("GET", &format!("/sessions/{sid}"), Some(&at), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]["auth_method"].as_str().unwrap().to_owned()
}

/// How many audit rows of `action` there are.
pub(crate) async fn audited(app: &TestApp, action: &str) -> usize {
    entities::audit_log::Entity::find()
        .filter(entities::audit_log::Column::Action.eq(action))
        .all(&app.services.state.db)
        .await
        .unwrap()
        .len()
}

async fn totp_setup_verify_and_sign_in(b: Backend) {
    let app = TestApp::spawn(b).await;
    let at = access(&app.signup("ada@example.com").await);

    let r = app.rest("POST", "/mfa/setup", Some(&at), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    let secret = d["secret"].as_str().unwrap();
    assert_eq!(secret.trim_end_matches('=').len(), 32, "160-bit secret in base32");
    let uri = d["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Janua:ada%40example.com?"), "{uri}");
    assert!(uri.contains("issuer=Janua") && uri.contains(&format!("secret={secret}")));
    assert!(d["qr_code"].as_str().unwrap().starts_with("data:image/png;base64,"));
    let codes = d["backup_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let totp = App::from_uri(uri);
    let parsed = Totp::from_url(uri).unwrap();
    assert_eq!((parsed.digits(), parsed.step()), (6, 30));

    // Until verified, MFA is off: sign-in still answers tokens.
    let r = app.rest("GET", "/mfa/status", Some(&at), None).await;
    assert_eq!(r.body["data"]["enabled"], false);
    assert_eq!(r.body["data"]["pending"], true);
    assert!(app.signin("ada@example.com").await["tokens"].is_object());

    // A wrong code does not turn it on.
    let r = app.rest("POST", "/mfa/verify", Some(&at), Some(json!({"code": "000000"}))).await;
    let r = if r.code() == "INVALID_MFA_CODE" {
        r
    } else {
        // 000000 was, by chance, a valid code: try another wrong one.
        app.rest("POST", "/mfa/verify", Some(&at), Some(json!({"code": "999999"}))).await
    };
    assert_eq!((r.status, r.code()), (401, "INVALID_MFA_CODE"), "{}", r.body);
    let r = app.rest("POST", "/mfa/verify", Some(&at), Some(json!({"code": totp.code(-1)}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"], json!({"enabled": true}));
    let r = app.rest("POST", "/mfa/verify", Some(&at), Some(json!({"code": totp.code(0)}))).await;
    assert_eq!((r.status, r.code()), (409, "MFA_ALREADY_ENABLED"));
    let r = app.rest("POST", "/mfa/setup", Some(&at), None).await;
    assert_eq!((r.status, r.code()), (409, "MFA_ALREADY_ENABLED"));

    // Sign-in now stops after the password.
    let r = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "ada@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["methods"], json!(["totp", "backup_code"]));
    let token = r.body["data"]["mfa_token"].as_str().unwrap().to_owned();

    // A wrong code is refused and the token stays usable.
    let r = app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": "12345"}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_MFA_CODE"));
    let code = totp.code(0);
    let r = app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": code}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let data = r.body["data"].clone();
    assert_eq!(data["user"]["email"], "ada@example.com");
    assert!(data.get("enabled").is_none() && data.get("mfa_required").is_none(), "{data}");
    assert_eq!(session_method(&app, &data).await, "password+mfa");

    // The MFA token is single-use.
    let r =
        app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": totp.code(1)}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"));

    // The same code is refused a second time, even with a new token.
    let token = mfa_token(&app, "ada@example.com").await;
    let r = app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": code}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_MFA_CODE"), "a reused code");
    let r =
        app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": totp.code(1)}))).await;
    assert_eq!(r.status, 200, "{}", r.body);

    assert_eq!(audited(&app, "security.mfa.enabled").await, 1);
    let r =
        app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": "mfa_nope", "code": "123456"}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"));
    // Messages follow Accept-Language.
    let r = app
        .client
        .post(app.url("/api/v1/mfa/verify"))
        .header("accept-language", "de")
        .bearer_auth(&at)
        .json(&json!({"code": "000000"}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("Zwei-Faktor"), "{body}");
}

async fn backup_codes_are_single_use_and_regenerated(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (at, totp, codes) = enable_mfa(&app, "bob@example.com").await;
    let r = app.rest("GET", "/mfa/backup-codes", Some(&at), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["data"]["remaining"].as_u64(), r.body["data"]["total"].as_u64()),
        (Some(10), Some(10))
    );
    assert!(r.body["data"]["generated_at"].is_string());

    // Accepted without the dash and in lower case.
    let first = codes[0].replace('-', "").to_lowercase();
    let token = mfa_token(&app, "bob@example.com").await;
    let r = app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": first}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.rest("GET", "/mfa/backup-codes", Some(&at), None).await;
    assert_eq!(r.body["data"]["remaining"], 9);

    // Spent: refused, with its dash too.
    let token = mfa_token(&app, "bob@example.com").await;
    let r = app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": codes[0]}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_MFA_CODE"), "a reused backup code");

    // Regeneration needs a fresh factor.
    let r = app.rest("POST", "/mfa/backup-codes", Some(&at), Some(json!({"code": "000000"}))).await;
    assert!(r.code() == "INVALID_MFA_CODE" || r.status == 200);
    let r = app.rest("POST", "/mfa/backup-codes", Some(&at), Some(json!({"code": totp.code(0)}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh: Vec<String> = serde_json::from_value(r.body["data"]["backup_codes"].clone()).unwrap();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !codes.contains(c)));
    // An old, never-used code no longer works; a new one does.
    let r = app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": codes[1]}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_MFA_CODE"));
    let r = app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": fresh[0]}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(audited(&app, "security.backup_codes.regenerated").await, 1);

    // Stored hashed: no code appears in the table.
    let rows = entities::backup_code::Entity::find().all(&app.services.state.db).await.unwrap();
    assert!(rows.iter().all(|r| !fresh.iter().any(|c| r.code_hash.contains(&c.replace('-', "")))));
    // The TOTP secret is sealed: its raw bytes do not appear in the row.
    let f = entities::mfa_factor::Entity::find().all(&app.services.state.db).await.unwrap();
    let raw = totp.0.secret().as_bytes();
    assert!(!f[0].secret_sealed.windows(raw.len()).any(|w| w == raw));
}

async fn expired_token_and_attempt_limit(b: Backend) {
    // A lifetime of 0 s: every MFA token is expired as soon as it is issued (no sleeping).
    let app = TestApp::spawn_with(b.clone(), |c| c.mfa_token_ttl = 0).await;
    let (_, totp, _) = enable_mfa(&app, "cy@example.com").await;
    let token = mfa_token(&app, "cy@example.com").await;
    let r =
        app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": totp.code(0)}))).await;
    assert_eq!((r.status, r.code()), (401, "TOKEN_EXPIRED"), "{}", r.body);

    // Wrong codes are counted; the third locks the user's second factor.
    let app = TestApp::spawn_with(b, |c| c.mfa_max_attempts = 3).await;
    let (_, totp, _) = enable_mfa(&app, "cy@example.com").await;
    let mut last = None;
    for _ in 0..3 {
        let token = mfa_token(&app, "cy@example.com").await;
        let r =
            app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": "abcdef"}))).await;
        last = Some((r.status, r.code().to_owned(), r.body["error"]["details"]["locked_until"].is_string()));
    }
    assert_eq!(last, Some((423, "ACCOUNT_LOCKED".to_owned(), true)));
    let token = mfa_token(&app, "cy@example.com").await;
    let r =
        app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": totp.code(0)}))).await;
    assert_eq!((r.status, r.code()), (423, "ACCOUNT_LOCKED"), "locked even with a right code");
}

const SETUP: &str = "mutation { setupMfa { secret otpauthUri qrCode backupCodes } }";
const VERIFY: &str = "mutation($i: VerifyMfaInput!) { verifyMfa(input: $i) { enabled user { email } tokens { accessToken sessionId } } }";
const SIGNIN: &str = "mutation($i: SigninInput!) { signin(input: $i) { mfaRequired mfaToken methods user { email } tokens { accessToken } } }";
const DISABLE: &str = "mutation($i: DisableMfaInput!) { disableMfa(input: $i) { success } }";
const STATUS: &str = "{ mfaStatus { enabled pending backupCodesRemaining passkeyCount } }";

fn gql_code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

async fn graphql_flow_and_disable(b: Backend) {
    let app = TestApp::spawn(b).await;
    let at = access(&app.signup("dee@example.com").await);
    let r = app.gql(Some(&at), SETUP, json!({})).await;
    let totp = App::from_uri(r["data"]["setupMfa"]["otpauthUri"].as_str().unwrap());
    let r = app.gql(Some(&at), VERIFY, json!({"i": {"code": totp.code(-1)}})).await;
    assert_eq!(r["data"]["verifyMfa"]["enabled"], true, "{r}");
    let r = app.gql(Some(&at), STATUS, json!({})).await;
    assert_eq!(
        r["data"]["mfaStatus"],
        json!({"enabled": true, "pending": false, "backupCodesRemaining": 10, "passkeyCount": 0})
    );

    let creds = json!({"i": {"email": "dee@example.com", "password": PASSWORD}});
    let r = app.gql(None, SIGNIN, creds.clone()).await;
    let s = &r["data"]["signin"];
    assert_eq!(s["mfaRequired"], true, "{r}");
    assert!(s["tokens"].is_null() && s["user"].is_null());
    let token = s["mfaToken"].as_str().unwrap();
    let r = app.gql(None, VERIFY, json!({"i": {"mfaToken": token, "code": "000001"}})).await;
    assert!(gql_code(&r) == "INVALID_MFA_CODE" || r["data"]["verifyMfa"]["tokens"].is_object());
    let r = app.gql(None, VERIFY, json!({"i": {"mfaToken": token, "code": totp.code(0)}})).await;
    assert_eq!(r["data"]["verifyMfa"]["user"]["email"], "dee@example.com", "{r}");

    // Disabling needs the password or a code.
    let r = app.gql(Some(&at), DISABLE, json!({"i": {}})).await;
    assert_eq!(gql_code(&r), "VALIDATION_ERROR");
    let r = app.gql(Some(&at), DISABLE, json!({"i": {"password": "not the password at all"}})).await;
    assert_eq!(gql_code(&r), "INVALID_CREDENTIALS", "{r}");
    let r = app.gql(Some(&at), DISABLE, json!({"i": {"code": totp.code(1)}})).await;
    assert_eq!(r["data"]["disableMfa"]["success"], true, "{r}");
    let r = app.gql(Some(&at), DISABLE, json!({"i": {"password": PASSWORD}})).await;
    assert_eq!(gql_code(&r), "MFA_NOT_ENABLED");
    let r = app.gql(None, SIGNIN, creds).await;
    assert_eq!(r["data"]["signin"]["mfaRequired"], false);
    assert!(r["data"]["signin"]["tokens"]["accessToken"].is_string());
    assert_eq!(audited(&app, "security.mfa.disabled").await, 1);
    // The outbox carries the events.
    let events = entities::outbox_event::Entity::find().all(&app.services.state.db).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert!(kinds.contains(&"security.mfa.enabled") && kinds.contains(&"security.mfa.disabled"));

    let r = app.rest("POST", "/mfa/disable", Some(&at), Some(json!({"password": PASSWORD}))).await;
    assert_eq!((r.status, r.code()), (400, "MFA_NOT_ENABLED"));
}

/// The new tables migrate on both databases and their rows round-trip and cascade with the user.
async fn mfa_entities_round_trip(b: Backend) {
    use entities::{backup_code, mfa_factor, passkey, user};
    use sea_orm::{ActiveModelTrait, Set};
    let app = TestApp::spawn(b).await;
    let db = &app.services.state.db;
    let uid: uuid::Uuid = app.signup("rt@example.com").await["user"]["id"].as_str().unwrap().parse().unwrap();
    let now = chrono::Utc::now();
    let f = mfa_factor::ActiveModel {
        user_id: Set(uid),
        secret_sealed: Set(vec![1, 2, 3]),
        enabled: Set(true),
        last_used_step: Set(Some(59_000_000)),
        created_at: Set(now),
        enabled_at: Set(Some(now)),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(mfa_factor::Entity::find_by_id(uid).one(db).await.unwrap(), Some(f));
    let c = backup_code::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        user_id: Set(uid),
        code_hash: Set("h".into()),
        used_at: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(backup_code::Entity::find_by_id(c.id).one(db).await.unwrap(), Some(c));
    let p = passkey::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        user_id: Set(uid),
        credential_id: Set("cred".into()),
        credential: Set("{}".into()),
        name: Set("Key".into()),
        sign_count: Set(i64::from(u32::MAX)),
        backup_eligible: Set(true),
        backup_state: Set(false),
        transports: Set(Some(json!(["usb"]))),
        discoverable: Set(true),
        created_at: Set(now),
        last_used_at: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(passkey::Entity::find_by_id(p.id).one(db).await.unwrap(), Some(p.clone()));
    user::Entity::delete_by_id(uid).exec(db).await.unwrap();
    assert!(mfa_factor::Entity::find().all(db).await.unwrap().is_empty());
    assert!(backup_code::Entity::find().all(db).await.unwrap().is_empty());
    assert!(passkey::Entity::find_by_id(p.id).one(db).await.unwrap().is_none());
}

crate::on_both_databases!(
    mfa_entities_round_trip,
    totp_setup_verify_and_sign_in,
    backup_codes_are_single_use_and_regenerated,
    expired_token_and_attempt_limit,
    graphql_flow_and_disable,
);
