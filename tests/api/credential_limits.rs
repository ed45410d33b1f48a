//! Credential checks are bounded however they arrive: aliased in one POST, concurrent over
//! HTTP or over one WebSocket, as second factors; the per-IP credential limit; one successor per
//! refresh token inside the grace period; sensitive changes need a recent authentication.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, access, refresh};
use crate::mfa::{audited, enable_mfa, mfa_token};
use crate::subscriptions::{next, raw, send};

crate::on_both_databases!(
    aliased_sign_ins_in_one_post_verify_at_most_the_threshold,
    concurrent_guesses_over_http_verify_at_most_the_threshold,
    concurrent_guesses_over_one_websocket_verify_at_most_the_threshold,
    concurrent_second_factor_codes_verify_at_most_the_limit,
    the_credential_limit_bounds_guesses_per_client_and_gives_back_successes,
    concurrent_refreshes_share_one_successor,
    sensitive_changes_need_a_recent_authentication,
);

const THRESHOLD: i32 = 5;
const WRONG: &str = "not the password at all";

/// The `user.signin_failed` rows of passwords verified and found wrong (not of refusals of an
/// account already locked, which verify nothing but the decoy).
async fn verified_failures(app: &TestApp) -> usize {
    let rows = entities::audit_log::Entity::find()
        .filter(entities::audit_log::Column::Action.eq("user.signin_failed"))
        .all(&app.services.state.db)
        .await
        .unwrap();
    rows.iter().filter(|r| r.metadata["reason"] == "invalid_credentials").count()
}

/// How many times each error code came back.
fn tally<'a>(codes: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in codes {
        *m.entry(c.to_owned()).or_insert(0) += 1;
    }
    m
}

fn count(t: &BTreeMap<String, usize>, code: &str) -> usize {
    t.get(code).copied().unwrap_or(0)
}

async fn signin_code(app: &TestApp, email: &str, password: &str) -> (u16, String) {
    let r = app.rest("POST", "/auth/signin", None, Some(json!({"email": email, "password": password}))).await;
    (r.status, r.code().to_owned())
}

/// 100 aliased `signin` mutations in one request: at most the lockout threshold of passwords
/// are verified, the rest are refused; the right password is then refused while locked.
async fn aliased_sign_ins_in_one_post_verify_at_most_the_threshold(b: Backend) {
    // The alias bound (`JANUA_GRAPHQL_MAX_ALIASES`) would refuse this document before any
    // check runs; raised here so the credential bound behind it is what is tested.
    let app = TestApp::spawn_with(b, |c| {
        c.lockout_threshold = THRESHOLD;
        c.graphql_max_aliases = 1000;
    })
    .await;
    app.signup("alias@example.com").await;
    let fields: Vec<String> = (0..100)
        .map(|i| {
            format!(
                "a{i}: signin(input: {{email: \"alias@example.com\", password: \"{WRONG}\"}}) {{ mfaRequired }}"
            )
        })
        .collect();
    let body = app.gql(None, &format!("mutation {{ {} }}", fields.join(" ")), json!({})).await;
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    let t = tally(errors.iter().map(|e| e["extensions"]["code"].as_str().unwrap_or("")));
    assert!(count(&t, "INVALID_CREDENTIALS") < THRESHOLD as usize, "{t:?}");
    assert!(
        t.keys().all(|c| ["INVALID_CREDENTIALS", "ACCOUNT_LOCKED", "RATE_LIMITED"].contains(&c.as_str())),
        "{t:?}"
    );
    assert!(verified_failures(&app).await <= THRESHOLD as usize, "at most the threshold verified");
    assert_eq!(signin_code(&app, "alias@example.com", PASSWORD).await, (423, "ACCOUNT_LOCKED".into()));
}

/// 300 wrong passwords at once over HTTP: at most the threshold are verified.
async fn concurrent_guesses_over_http_verify_at_most_the_threshold(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.lockout_threshold = THRESHOLD).await;
    app.signup("http@example.com").await;
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { signin_code(&app, "http@example.com", WRONG).await.1 })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    let t = tally(codes.iter().map(String::as_str));
    assert!(count(&t, "INVALID_CREDENTIALS") <= THRESHOLD as usize, "{t:?}");
    assert_eq!(count(&t, "INVALID_CREDENTIALS") + count(&t, "ACCOUNT_LOCKED"), 300, "{t:?}");
    assert!(verified_failures(&app).await <= THRESHOLD as usize);
    assert_eq!(
        audited(&app, "user.signin_failed").await,
        300,
        "a refusal of a locked account is audited too"
    );
    assert_eq!(signin_code(&app, "http@example.com", PASSWORD).await, (423, "ACCOUNT_LOCKED".into()));
}

/// 300 wrong passwords at once as operations of one token-less WebSocket: the same bound (the
/// socket's own operation allowance is lifted here, so that the lockout alone is tested).
async fn concurrent_guesses_over_one_websocket_verify_at_most_the_threshold(b: Backend) {
    let app = TestApp::spawn_with(b, |c| {
        c.lockout_threshold = THRESHOLD;
        c.ws_operations_burst = 1000;
        c.ws_operations_per_second = 1000;
        c.ws_max_operations = 1000;
    })
    .await;
    app.signup("ws@example.com").await;
    let mut ws = raw(&app, "graphql-transport-ws").await;
    send(&mut ws, json!({"type": "connection_init"})).await;
    assert_eq!(next(&mut ws).await["type"], "connection_ack");
    let query =
        "mutation($p: String!) { signin(input: {email: \"ws@example.com\", password: $p}) { mfaRequired } }";
    for i in 0..300 {
        let payload = json!({"query": query, "variables": {"p": WRONG}});
        send(&mut ws, json!({"id": format!("g{i}"), "type": "subscribe", "payload": payload})).await;
    }
    let mut codes = Vec::new();
    while codes.len() < 300 {
        let m = next(&mut ws).await;
        match m["type"].as_str() {
            Some("next") => {
                codes.push(m["payload"]["errors"][0]["extensions"]["code"].as_str().unwrap_or("").to_owned())
            }
            Some("complete") => {}
            other => panic!("unexpected {other:?}: {m}"),
        }
    }
    let t = tally(codes.iter().map(String::as_str));
    assert!(count(&t, "INVALID_CREDENTIALS") <= THRESHOLD as usize, "{t:?}");
    assert_eq!(count(&t, "INVALID_CREDENTIALS") + count(&t, "ACCOUNT_LOCKED"), 300, "{t:?}");
    assert_eq!(signin_code(&app, "ws@example.com", PASSWORD).await, (423, "ACCOUNT_LOCKED".into()));
}

/// Wrong TOTP codes at once, each with its own MFA token: at most `mfa_max_attempts` are
/// verified; the right code is then refused while locked.
async fn concurrent_second_factor_codes_verify_at_most_the_limit(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.mfa_max_attempts = THRESHOLD).await;
    let (_, totp, _) = enable_mfa(&app, "totp@example.com").await;
    let mut tokens = Vec::new();
    for _ in 0..30 {
        tokens.push(mfa_token(&app, "totp@example.com").await);
    }
    // A code that is none of the accepted steps' codes.
    let accepted: Vec<String> = (-1..=1).map(|o| totp.code(o)).collect();
    let wrong =
        (0..).map(|n| format!("{:06}", 100_003 * n % 1_000_000)).find(|c| !accepted.contains(c)).unwrap();
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let (app, wrong) = (app.clone(), wrong.clone());
            tokio::spawn(async move {
                let r =
                    app.rest("POST", "/mfa/verify", None, Some(json!({"code": wrong, "mfa_token": t}))).await;
                r.code().to_owned()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    let t = tally(codes.iter().map(String::as_str));
    assert!(count(&t, "INVALID_MFA_CODE") <= THRESHOLD as usize, "{t:?}");
    assert_eq!(count(&t, "INVALID_MFA_CODE") + count(&t, "ACCOUNT_LOCKED"), 30, "{t:?}");
    let token = mfa_token(&app, "totp@example.com").await;
    let r =
        app.rest("POST", "/mfa/verify", None, Some(json!({"code": totp.code(1), "mfa_token": token}))).await;
    assert_eq!((r.status, r.code()), (423, "ACCOUNT_LOCKED"), "{}", r.body);
}

/// Guesses spread over many accounts stop at the client's credential limit; credentials that
/// prove good (passwords, API keys) give their unit back.
async fn the_credential_limit_bounds_guesses_per_client_and_gives_back_successes(b: Backend) {
    let app = TestApp::spawn_with(b, |c| {
        c.credential_attempts_per_minute = 10;
        c.graphql_max_aliases = 1000; // as above: the credential limit is what is tested
    })
    .await;
    let admin = app.admin("limit-admin@example.com").await;
    let r = app
        .rest("POST", "/admin/api-keys", Some(&admin), Some(json!({"name": "k", "scopes": ["admin:read"]})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.body["data"]["key"].as_str().unwrap().to_owned();
    app.signup("good@example.com").await;
    for _ in 0..15 {
        assert_eq!(signin_code(&app, "good@example.com", PASSWORD).await.0, 200, "a success gives back");
        assert_eq!(app.rest_key("GET", "/admin/users", &key, None).await.status, 200);
    }
    // 100 aliased sign-ins, each for another email: at most the limit verified.
    let fields: Vec<String> = (0..100)
        .map(|i| format!("a{i}: signin(input: {{email: \"u{i}@example.com\", password: \"{WRONG}\"}}) {{ mfaRequired }}"))
        .collect();
    let body = app.gql(None, &format!("mutation {{ {} }}", fields.join(" ")), json!({})).await;
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    let t = tally(errors.iter().map(|e| e["extensions"]["code"].as_str().unwrap_or("")));
    assert!(count(&t, "INVALID_CREDENTIALS") <= 10, "{t:?}");
    assert!(audited(&app, "user.signin_failed").await <= 10, "at most the limit verified");
    let (status, code) = signin_code(&app, "good@example.com", PASSWORD).await;
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"), "the client's attempts are spent");
    let bad = app.rest_key("GET", "/admin/users", "jk_not-a-key", None).await;
    assert_eq!(bad.code(), "RATE_LIMITED", "{}", bad.body);
}

/// Eight refreshes with one token at once: each gets the one successor; the session keeps one
/// live refresh token; a replay after the grace period still revokes the session.
async fn concurrent_refreshes_share_one_successor(b: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(b).await);
    let s = app.signup("tabs@example.com").await;
    let rt = refresh(&s);
    let sid: uuid::Uuid = s["tokens"]["session_id"].as_str().unwrap().parse().unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (app, rt) = (app.clone(), rt.clone());
            tokio::spawn(async move {
                app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": rt}))).await
            })
        })
        .collect();
    let mut successors = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        successors.push(r.body["data"]["tokens"]["refresh_token"].as_str().unwrap().to_owned());
    }
    assert!(successors.iter().all(|s| *s == successors[0] && *s != rt), "{successors:?}");
    let db = &app.services.state.db;
    let live = entities::refresh_token::Entity::find()
        .filter(entities::refresh_token::Column::SessionId.eq(sid))
        .filter(entities::refresh_token::Column::RotatedAt.is_null())
        .all(db)
        .await
        .unwrap();
    assert_eq!(live.len(), 1, "one live refresh token");
    assert_eq!(live[0].token_hash, janua::security::secrets::sha256_hex(&successors[0]));

    // The grace period is over (moved back rather than waited for): a replay revokes the session.
    entities::refresh_token::Entity::update_many()
        .col_expr(entities::refresh_token::Column::RotatedAt, Expr::value(Utc::now() - Duration::hours(1)))
        .filter(entities::refresh_token::Column::TokenHash.eq(janua::security::secrets::sha256_hex(&rt)))
        .exec(db)
        .await
        .unwrap();
    let r = app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": rt}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"), "{}", r.body);
    let r = app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": successors[0]}))).await;
    assert_eq!(r.code(), "SESSION_REVOKED", "{}", r.body);
}

/// Moves the session's last authentication an hour back (instead of waiting the window out).
async fn age_session(app: &TestApp, data: &Value) {
    let sid: uuid::Uuid = data["tokens"]["session_id"].as_str().unwrap().parse().unwrap();
    let long_ago = Utc::now() - Duration::hours(1);
    entities::session::Entity::update_many()
        .col_expr(entities::session::Column::AuthenticatedAt, Expr::value(long_ago))
        .col_expr(entities::session::Column::CreatedAt, Expr::value(long_ago))
        .filter(entities::session::Column::Id.eq(sid))
        .exec(&app.services.state.db)
        .await
        .unwrap();
}

/// Registering a passkey, turning MFA on or off, creating API keys and deleting one's account
/// answer `REAUTH_REQUIRED` on a session authenticated too long ago (a refresh does not count);
/// `reauthenticate` with the password, or a fresh sign-in, allows them again.
async fn sensitive_changes_need_a_recent_authentication(b: Backend) {
    let app = TestApp::spawn(b).await;
    let data = app.signup("stale@example.com").await;
    let uid = data["user"]["id"].as_str().unwrap().to_owned();
    let org = app.org(&access(&data), "Stale").await;
    age_session(&app, &data).await;
    // A refresh keeps the session's authentication time.
    let r = app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": refresh(&data)}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.body["data"]["tokens"]["access_token"].as_str().unwrap().to_owned();
    let keys = format!("/organizations/{org}/api-keys");
    let key_body = json!({"name": "k", "scopes": ["users:read"]});
    let sensitive: Vec<(&str, String, Option<Value>)> = vec![
        ("POST", "/mfa/setup".into(), None),
        ("POST", "/mfa/verify".into(), Some(json!({"code": "123456"}))),
        ("POST", "/mfa/disable".into(), Some(json!({"password": PASSWORD}))),
        ("POST", "/passkeys/register/options".into(), None),
        ("POST", "/passkeys/register".into(), Some(json!({"ceremony_id": "x", "credential": {}}))),
        ("POST", keys.clone(), Some(key_body.clone())),
        ("DELETE", format!("/users/{uid}"), None),
    ];
    for (method, path, body) in &sensitive {
        let r = app.rest(method, path, Some(&at), body.clone()).await;
        assert_eq!((r.status, r.code()), (403, "REAUTH_REQUIRED"), "{method} {path}: {}", r.body);
    }
    // GraphQL answers the same code.
    let g = app.gql(Some(&at), "mutation { setupMfa { secret } }", json!({})).await;
    assert_eq!(g["errors"][0]["extensions"]["code"], "REAUTH_REQUIRED", "{g}");

    let r = app.rest("POST", "/auth/reauthenticate", Some(&at), Some(json!({"password": WRONG}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_CREDENTIALS"), "{}", r.body);
    let r = app.rest("POST", "/auth/reauthenticate", Some(&at), Some(json!({"password": PASSWORD}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["data"]["authenticated_at"].is_string(), "{}", r.body);
    assert_eq!(app.rest("POST", "/passkeys/register/options", Some(&at), None).await.status, 200);
    assert_eq!(app.rest("POST", &keys, Some(&at), Some(key_body)).await.status, 201);
    assert_eq!(app.rest("POST", "/mfa/setup", Some(&at), None).await.status, 200);

    // A fresh sign-in is recent too.
    let other = app.signup("fresh@example.com").await;
    let fresh = access(&other);
    assert_eq!(app.rest("POST", "/mfa/setup", Some(&fresh), None).await.status, 200);
    let oid = other["user"]["id"].as_str().unwrap();
    assert_eq!(app.rest("DELETE", &format!("/users/{oid}"), Some(&fresh), None).await.status, 204);
}
