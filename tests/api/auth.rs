//! Sign-up, sign-in, me, refresh, sign-out — through REST and through GraphQL.

use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp, access, refresh};

crate::on_both_databases!(
    rest_signup_signin_me_refresh_signout,
    graphql_signup_signin_me_refresh_signout,
    duplicate_email_is_a_conflict,
    unknown_email_and_wrong_password_look_the_same,
    reused_refresh_token_revokes_the_session,
    concurrent_refresh_within_grace_is_allowed,
    concurrent_refreshes_are_written_together_each_rotating_once,
    repeated_failures_lock_the_account,
    audit_and_outbox_rows_are_written_with_each_change,
);

async fn rest_signup_signin_me_refresh_signout(b: Backend) {
    let app = TestApp::spawn(b).await;
    let r = app
        .rest(
            "POST",
            "/auth/signup",
            None,
            Some(json!({"email": "Ada@Example.com", "password": PASSWORD, "first_name": "Ada", "last_name": "Lovelace"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["success"], true);
    assert!(r.body["request_id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(r.header("x-request-id"), r.body["request_id"].as_str().unwrap());
    assert!(r.body["timestamp"].as_str().unwrap().ends_with('Z'));
    let user = &r.body["data"]["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["first_name"], "Ada");
    assert_eq!(user["name"], "Ada Lovelace");
    assert!(user.get("password_hash").is_none() && user.get("passwordHash").is_none());
    assert_eq!(r.body["data"]["tokens"]["token_type"], "Bearer");

    let signed_in = app.signin("ada@example.com").await;
    let token = access(&signed_in);
    let me = app.rest("GET", "/auth/me", Some(&token), None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["data"]["id"], user["id"]);

    let rotated =
        app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": refresh(&signed_in)}))).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_access = rotated.body["data"]["tokens"]["access_token"].as_str().unwrap().to_owned();
    let new_refresh = rotated.body["data"]["tokens"]["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, refresh(&signed_in));
    assert_eq!(app.rest("GET", "/auth/me", Some(&new_access), None).await.status, 200);

    let out = app.rest("POST", "/auth/signout", Some(&new_access), None).await;
    assert_eq!(out.status, 200, "{}", out.body);
    // Both access tokens of the session and its refresh token stop working at once.
    for t in [&token, &new_access] {
        let r = app.rest("GET", "/auth/me", Some(t), None).await;
        assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"));
    }
    let r = app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": new_refresh}))).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"));
}

const SIGNUP: &str = "mutation($input: SignupInput!) { signup(input: $input) { user { id email } tokens { accessToken refreshToken } } }";
const SIGNIN: &str = "mutation($input: SigninInput!) { signin(input: $input) { user { id } tokens { accessToken refreshToken } } }";
const REFRESH: &str =
    "mutation($t: String!) { refresh(input: {refreshToken: $t}) { tokens { accessToken refreshToken } } }";

async fn graphql_signup_signin_me_refresh_signout(b: Backend) {
    let app = TestApp::spawn(b).await;
    let r = app
        .gql(
            None,
            SIGNUP,
            json!({"input": {"email": "grace@example.com", "password": PASSWORD, "firstName": "Grace"}}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let id = r["data"]["signup"]["user"]["id"].clone();
    let r =
        app.gql(None, SIGNIN, json!({"input": {"email": "grace@example.com", "password": PASSWORD}})).await;
    let token = r["data"]["signin"]["tokens"]["accessToken"].as_str().unwrap().to_owned();
    let rt = r["data"]["signin"]["tokens"]["refreshToken"].as_str().unwrap().to_owned();
    let me = app.gql(Some(&token), "{ me { id email firstName } }", json!({})).await;
    assert_eq!(me["data"]["me"]["id"], id);
    assert_eq!(me["data"]["me"]["firstName"], "Grace");

    let r = app.gql(None, REFRESH, json!({"t": rt})).await;
    let token2 = r["data"]["refresh"]["tokens"]["accessToken"].as_str().unwrap().to_owned();
    let r = app.gql(Some(&token2), "mutation { signout { success } }", json!({})).await;
    assert_eq!(r["data"]["signout"]["success"], true, "{r}");
    let me = app.gql(Some(&token2), "{ me { id } }", json!({})).await;
    assert_eq!(me["errors"][0]["extensions"]["code"], "SESSION_REVOKED", "{me}");
    assert!(me["errors"][0]["extensions"]["request_id"].as_str().unwrap().starts_with("req_"));
    let anon = app.gql(None, "{ me { id } }", json!({})).await;
    assert_eq!(anon["errors"][0]["extensions"]["code"], "AUTHENTICATION_REQUIRED");
}

async fn duplicate_email_is_a_conflict(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.signup("dup@example.com").await;
    let r = app
        .rest("POST", "/auth/signup", None, Some(json!({"email": "DUP@example.com", "password": PASSWORD})))
        .await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"));
    assert_eq!(r.body["error"]["details"]["field"], "email");
    let g = app.gql(None, SIGNUP, json!({"input": {"email": "dup@example.com", "password": PASSWORD}})).await;
    assert_eq!(g["errors"][0]["extensions"]["code"], "CONFLICT");
}

async fn unknown_email_and_wrong_password_look_the_same(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.signup("known@example.com").await;
    let wrong = app
        .rest(
            "POST",
            "/auth/signin",
            None,
            Some(json!({"email": "known@example.com", "password": "not the password at all"})),
        )
        .await;
    let unknown = app
        .rest(
            "POST",
            "/auth/signin",
            None,
            Some(json!({"email": "nobody@example.com", "password": "not the password at all"})),
        )
        .await;
    assert_eq!((wrong.status, wrong.code()), (401, "INVALID_CREDENTIALS"));
    assert_eq!((unknown.status, unknown.code()), (401, "INVALID_CREDENTIALS"));
    assert_eq!(wrong.body["error"], unknown.body["error"]);
}

async fn reused_refresh_token_revokes_the_session(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.refresh_reuse_grace = 0).await;
    let s = app.signup("reuse@example.com").await;
    let first = refresh(&s);
    let r = app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_eq!(r.status, 200);
    let second = r.body["data"]["tokens"]["refresh_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // past the (zero) grace, at second resolution
    let replay = app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_eq!((replay.status, replay.code()), (401, "INVALID_TOKEN"));
    // The whole session is gone: the legitimate newer token and the access token too.
    let r = app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": second}))).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"));
    let r = app.rest("GET", "/auth/me", Some(&access(&s)), None).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"));
}

async fn concurrent_refresh_within_grace_is_allowed(b: Backend) {
    let app = TestApp::spawn(b).await; // grace 5 s by default
    let s = app.signup("tabs@example.com").await;
    let rt = refresh(&s);
    let a = app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": rt}))).await;
    let b = app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": rt}))).await;
    assert_eq!((a.status, b.status), (200, 200), "{} {}", a.body, b.body);
    let me = app.rest("GET", "/auth/me", Some(&access(&a.body["data"])), None).await;
    assert_eq!(me.status, 200, "the session survives a concurrent refresh");
}

/// Many refreshes at once (written in groups, `services::refresh_batch`): every chain rotates
/// exactly once per refresh, the same token presented several times at once answers with one
/// successor, a refresh of a revoked session is refused without writing, and every refresh is
/// audited.
async fn concurrent_refreshes_are_written_together_each_rotating_once(b: Backend) {
    use entities::{audit_log, refresh_token};
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let app = TestApp::spawn(b).await;
    let mut chains = Vec::new();
    for i in 0..24 {
        chains.push(app.signup(&format!("chain{i}@example.com")).await);
    }
    let revoked = chains.pop().unwrap();
    let r = app.rest("POST", "/auth/signout", Some(&access(&revoked)), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let shared = refresh(&chains[0]);
    let mut tokens: Vec<String> = chains.iter().map(refresh).collect();
    let mut refreshes = 0;
    for round in 0..3 {
        let mut calls: Vec<_> = tokens
            .iter()
            .map(|t| app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": t}))))
            .collect();
        // The first chain's first token, four more times at once (concurrent tabs), in round 0.
        let extra = if round == 0 { 4 } else { 0 };
        for _ in 0..extra {
            calls.push(app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": shared}))));
        }
        calls.push(app.rest(
            "POST",
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh(&revoked)})),
        ));
        let answers = futures::future::join_all(calls).await;
        let (last, answers) = answers.split_last().unwrap();
        assert_eq!((last.status, last.code()), (401, "SESSION_REVOKED"), "{}", last.body);
        for a in answers {
            assert_eq!(a.status, 200, "{}", a.body);
        }
        let next: Vec<String> = answers.iter().map(|a| refresh(&a.body["data"])).collect();
        for extra in &next[tokens.len()..] {
            assert_eq!(extra, &next[0], "one successor for one token");
        }
        refreshes += answers.len();
        tokens = next[..tokens.len()].to_vec();
    }
    // Each chain holds exactly one live token (the last), and it works.
    let db = &app.services.state.db;
    let live = refresh_token::Entity::find()
        .filter(refresh_token::Column::RotatedAt.is_null())
        .count(db)
        .await
        .unwrap();
    assert_eq!(live as usize, chains.len() + 1, "one live token per chain, and the revoked session's");
    for (t, s) in tokens.iter().zip(&chains) {
        let r = app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": t}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["data"]["tokens"]["session_id"], s["tokens"]["session_id"]);
        refreshes += 1;
    }
    let audited = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("session.refreshed"))
        .count(db)
        .await
        .unwrap();
    assert_eq!(audited as usize, refreshes);
}

async fn repeated_failures_lock_the_account(b: Backend) {
    use entities::audit_log;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = TestApp::spawn_with(b, |c| c.lockout_threshold = 3).await;
    app.signup("lock@example.com").await;
    let bad = json!({"email": "lock@example.com", "password": "wrong wrong wrong"});
    for _ in 0..2 {
        assert_eq!(
            app.rest("POST", "/auth/signin", None, Some(bad.clone())).await.code(),
            "INVALID_CREDENTIALS"
        );
    }
    let locked = app.rest("POST", "/auth/signin", None, Some(bad.clone())).await;
    assert_eq!((locked.status, locked.code()), (423, "ACCOUNT_LOCKED"));
    assert!(locked.body["error"]["details"]["locked_until"].is_string());
    // Even the right password is refused while locked…
    let r = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "lock@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(r.status, 423);
    // …and audited as a refusal of a locked account, like any failure (the same write, so the
    // same time as a wrong password).
    let rows = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("user.signin_failed"))
        .all(&app.services.state.db)
        .await
        .unwrap();
    let reasons: Vec<&str> = rows.iter().filter_map(|r| r.metadata["reason"].as_str()).collect();
    assert_eq!(reasons.iter().filter(|r| **r == "invalid_credentials").count(), 3, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| **r == "account_locked").count(), 1, "{reasons:?}");
    // …and an unknown email locks the same way, so a lock reveals nothing.
    let ghost = json!({"email": "ghost@example.com", "password": "wrong wrong wrong"});
    let mut last = 0;
    for _ in 0..3 {
        last = app.rest("POST", "/auth/signin", None, Some(ghost.clone())).await.status;
    }
    assert_eq!(last, 423);
}

async fn audit_and_outbox_rows_are_written_with_each_change(b: Backend) {
    use entities::{audit_log, outbox_event};
    use sea_orm::{EntityTrait, QueryOrder};
    let app = TestApp::spawn(b).await;
    let s = app.signup("audit@example.com").await;
    app.rest(
        "POST",
        "/auth/signin",
        None,
        Some(json!({"email": "audit@example.com", "password": "bad password here"})),
    )
    .await;
    app.rest("POST", "/auth/signout", Some(&access(&s)), None).await;
    let db = &app.services.state.db;
    let audits = audit_log::Entity::find().order_by_asc(audit_log::Column::Id).all(db).await.unwrap();
    let actions: Vec<&str> = audits.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        ["user.created", "session.created", "user.signin_failed", "user.signed_out", "session.revoked"]
    );
    let outbox = outbox_event::Entity::find().order_by_asc(outbox_event::Column::Seq).all(db).await.unwrap();
    let ids: Vec<_> = outbox.iter().map(|o| o.event_id).collect();
    assert_eq!(
        ids,
        audits.iter().map(|a| a.id).collect::<Vec<_>>(),
        "each audit record has its event, same id"
    );
    assert!(audits.iter().all(|a| a.request_id.as_deref().is_some_and(|r| r.starts_with("req_"))));
    let failed = &audits[2];
    assert_eq!(failed.actor_email.as_deref(), Some("audit@example.com"));
    assert!(!failed.metadata.to_string().contains("bad password"), "no secret in the audit log");
}
