//! A `/graphql/ws` connection lives no longer than the session and the access token it was
//! authenticated by: sign-out, terminate-all, an administrator's suspension and expiry close it
//! even when no subscription runs, an operation sent right after is refused and changes nothing,
//! a revocation on another node closes it too, and operations beyond the per-connection
//! allowance are answered with `RATE_LIMITED`.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Backend, TestApp, access, redis_prefix, redis_url};
use crate::subscriptions::{Ws, closed_with, connect, next};

crate::on_both_databases!(
    sign_out_closes_the_socket_and_refuses_what_follows,
    terminate_all_closes_the_socket_and_refuses_what_follows,
    an_administrators_suspension_closes_the_socket_and_refuses_what_follows,
    an_expired_token_closes_the_socket_and_refuses_what_follows,
    every_operation_is_checked_against_the_revocation_store,
    a_revocation_on_another_node_closes_the_socket,
    operations_beyond_the_allowance_are_rate_limited,
);

const PLANTED: &str = "Planted Org";

/// What a stolen token would do on an open socket: read, create an organization, start a passkey.
const ABUSE: [&str; 3] = [
    "{ me { email } sessions(first: 5) { edges { node { id } } } }",
    "mutation { createOrganization(input: {name: \"Planted Org\"}) { id } }",
    "mutation { passkeyRegistrationOptions { ceremonyId options } }",
];

async fn send(ws: &mut Ws, v: Value) {
    // The server may have closed the connection already: a failed send is one of the outcomes.
    let _ = ws.send(Message::text(v.to_string())).await;
}

/// Sends the abusive operations at once, without waiting for anything in between.
async fn race(ws: &mut Ws) {
    for (i, query) in ABUSE.iter().enumerate() {
        send(ws, json!({"id": format!("x{i}"), "type": "subscribe", "payload": {"query": query}})).await;
    }
}

/// Reads until the server closes: every operation answer must be the refusal `code` (no data),
/// and the close must be `close` with `code` as its reason.
async fn refused_until_closed(ws: &mut Ws, code: &str, close: u16) {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("closed within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["type"], "next", "only refusals before the close: {v}");
                assert!(v["payload"]["data"].is_null(), "no operation ran: {v}");
                assert_eq!(v["payload"]["errors"][0]["extensions"]["code"], code, "{v}");
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!((u16::from(frame.code), frame.reason.as_str()), (close, code));
                return;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected refusals then a close frame, got {other:?}"),
        }
    }
}

/// Two sockets of `token`'s session: one left idle, one to race operations on; both acknowledged.
async fn two_sockets(app: &TestApp, token: &str) -> (Ws, Ws) {
    (connect(app, "graphql-transport-ws", token).await, connect(app, "graphql-transport-ws", token).await)
}

/// Neither an organization nor a passkey was created, as the user's live session `token` sees it.
async fn nothing_planted(app: &TestApp, token: &str) {
    let orgs = app.rest("GET", "/organizations", Some(token), None).await;
    assert_eq!(orgs.status, 200, "{}", orgs.body);
    assert_eq!(orgs.body["data"], json!([]), "no organization was created: {}", orgs.body);
    let keys = app.rest("GET", "/passkeys", Some(token), None).await;
    assert_eq!(keys.status, 200, "{}", keys.body);
    assert_eq!(keys.body["data"], json!([]), "{}", keys.body);
}

async fn sign_out_closes_the_socket_and_refuses_what_follows(b: Backend) {
    let app = TestApp::spawn(b).await;
    let s = app.signup("ws-out@example.com").await;
    let token = access(&s);
    let (mut idle, mut busy) = two_sockets(&app, &token).await;
    let mut legacy = connect(&app, "graphql-ws", &token).await;

    assert_eq!(app.rest("POST", "/auth/signout", Some(&token), None).await.status, 200);
    race(&mut busy).await;
    app.drain_events().await;

    refused_until_closed(&mut busy, "SESSION_REVOKED", 4403).await;
    assert_eq!(closed_with(&mut idle).await, (4403, "SESSION_REVOKED".into()));
    // The legacy protocol has no close codes: `connection_error`, then a normal close.
    assert_eq!(
        next(&mut legacy).await,
        json!({"type": "connection_error", "payload": {"message": "SESSION_REVOKED"}})
    );
    assert_eq!(closed_with(&mut legacy).await, (1000, "SESSION_REVOKED".into()));
    nothing_planted(&app, &access(&app.signin("ws-out@example.com").await)).await;
}

async fn terminate_all_closes_the_socket_and_refuses_what_follows(b: Backend) {
    let app = TestApp::spawn(b).await;
    let s = app.signup("ws-all@example.com").await;
    let token = access(&s);
    let keeper = access(&app.signin("ws-all@example.com").await);
    let (mut idle, mut busy) = two_sockets(&app, &token).await;
    // A socket of the session that stays is left alone.
    let mut kept = connect(&app, "graphql-transport-ws", &keeper).await;

    let r = app.rest("POST", "/sessions/terminate-all", Some(&keeper), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    race(&mut busy).await;
    app.drain_events().await;

    refused_until_closed(&mut busy, "SESSION_REVOKED", 4403).await;
    assert_eq!(closed_with(&mut idle).await, (4403, "SESSION_REVOKED".into()));
    send(&mut kept, json!({"id": "k", "type": "subscribe", "payload": {"query": "{ me { email } }"}})).await;
    let answer = next(&mut kept).await;
    assert_eq!(answer["payload"]["data"]["me"]["email"], "ws-all@example.com", "{answer}");
    nothing_planted(&app, &keeper).await;
}

async fn an_administrators_suspension_closes_the_socket_and_refuses_what_follows(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("ws-admin@example.com").await;
    let s = app.signup("ws-suspended@example.com").await;
    let (token, id) = (access(&s), s["user"]["id"].as_str().unwrap().to_owned());
    let (mut idle, mut busy) = two_sockets(&app, &token).await;

    let r =
        app.rest("PUT", &format!("/users/{id}"), Some(&admin), Some(json!({"status": "suspended"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    race(&mut busy).await;
    app.drain_events().await;

    refused_until_closed(&mut busy, "SESSION_REVOKED", 4403).await;
    assert_eq!(closed_with(&mut idle).await, (4403, "SESSION_REVOKED".into()));
    let orgs = app.rest("GET", "/admin/organizations", Some(&admin), None).await;
    assert_eq!(orgs.status, 200, "{}", orgs.body);
    let names: Vec<&Value> = orgs.body["data"].as_array().unwrap().iter().map(|o| &o["name"]).collect();
    assert!(!names.contains(&&json!(PLANTED)), "no organization was created: {}", orgs.body);
}

async fn an_expired_token_closes_the_socket_and_refuses_what_follows(b: Backend) {
    // Whole seconds: a token lives between 2 and 3 seconds.
    let app = TestApp::spawn_with(b, |c| c.access_token_ttl = 3).await;
    let s = app.signup("ws-expiry@example.com").await;
    let token = access(&s);
    let (mut idle, mut busy) = two_sockets(&app, &token).await;
    let exp = app.services.state.keys.verify_access(&token).expect("a valid token").exp;

    // Wait for the token's own expiry (the one wait this test cannot do without).
    let left = (exp * 1000 - chrono::Utc::now().timestamp_millis()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(left)).await;
    race(&mut busy).await;

    refused_until_closed(&mut busy, "TOKEN_EXPIRED", 4401).await;
    assert_eq!(closed_with(&mut idle).await, (4401, "TOKEN_EXPIRED".into()));
    // Renewal is a new connection with a fresh token.
    let fresh = access(&app.signin("ws-expiry@example.com").await);
    let mut again = connect(&app, "graphql-transport-ws", &fresh).await;
    send(&mut again, json!({"id": "m", "type": "subscribe", "payload": {"query": "{ me { email } }"}})).await;
    assert_eq!(next(&mut again).await["payload"]["data"]["me"]["email"], "ws-expiry@example.com");
    nothing_planted(&app, &fresh).await;
}

/// Before the revocation's event arrives (here: never, it is written to the store alone), the
/// per-operation check refuses: the error, then the close — in both protocols.
async fn every_operation_is_checked_against_the_revocation_store(b: Backend) {
    let app = TestApp::spawn(b).await;
    let s = app.signup("ws-store@example.com").await;
    let token = access(&s);
    let sid: uuid::Uuid = s["tokens"]["session_id"].as_str().unwrap().parse().unwrap();
    let mut ws = connect(&app, "graphql-transport-ws", &token).await;
    let mut legacy = connect(&app, "graphql-ws", &token).await;
    send(&mut ws, json!({"id": "1", "type": "subscribe", "payload": {"query": "{ me { email } }"}})).await;
    assert_eq!(next(&mut ws).await["payload"]["data"]["me"]["email"], "ws-store@example.com");
    assert_eq!(next(&mut ws).await, json!({"type": "complete", "id": "1"}));

    app.services.state.revocations.revoke(sid, chrono::Utc::now() + chrono::Duration::hours(1)).await;
    race(&mut ws).await;
    let refused = next(&mut ws).await;
    assert_eq!((refused["type"].as_str(), refused["id"].as_str()), (Some("next"), Some("x0")), "{refused}");
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "SESSION_REVOKED", "{refused}");
    assert!(refused["payload"]["errors"][0]["extensions"]["request_id"].is_string(), "{refused}");
    assert_eq!(closed_with(&mut ws).await, (4403, "SESSION_REVOKED".into()));

    send(&mut legacy, json!({"id": "1", "type": "start", "payload": {"query": ABUSE[1]}})).await;
    let refused = next(&mut legacy).await;
    assert_eq!(refused["type"], "data", "{refused}");
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "SESSION_REVOKED", "{refused}");
    assert_eq!(next(&mut legacy).await["type"], "connection_error");
    assert_eq!(closed_with(&mut legacy).await, (1000, "SESSION_REVOKED".into()));
    nothing_planted(&app, &access(&app.signin("ws-store@example.com").await)).await;
}

/// Two nodes on one database and one Redis: signing out through A closes the sockets on B.
async fn a_revocation_on_another_node_closes_the_socket(b: Backend) {
    let Some(url) = redis_url() else { return };
    let prefix = redis_prefix();
    let a = TestApp::spawn_with(b, |c| {
        c.redis_url = Some(url);
        c.redis_prefix = prefix;
    })
    .await;
    let node_b = a.spawn_peer().await;
    let s = a.signup("ws-nodes@example.com").await;
    let token = access(&s);
    let (mut idle, mut busy) = two_sockets(&node_b, &token).await;

    assert_eq!(a.rest("POST", "/auth/signout", Some(&token), None).await.status, 200);
    race(&mut busy).await;
    a.drain_events().await;

    refused_until_closed(&mut busy, "SESSION_REVOKED", 4403).await;
    assert_eq!(closed_with(&mut idle).await, (4403, "SESSION_REVOKED".into()));
    nothing_planted(&node_b, &access(&node_b.signin("ws-nodes@example.com").await)).await;
}

/// Each connection has a token bucket (`JANUA_WS_OPERATIONS_BURST` at once, then
/// `JANUA_WS_OPERATIONS_PER_SECOND`): an operation beyond it is answered with `RATE_LIMITED`
/// and completed; the connection stays open.
async fn operations_beyond_the_allowance_are_rate_limited(b: Backend) {
    let app = TestApp::spawn_with(b, |c| {
        c.ws_operations_burst = 5;
        c.ws_operations_per_second = 1;
    })
    .await;
    let token = access(&app.signup("ws-limit@example.com").await);
    let mut ws = connect(&app, "graphql-transport-ws", &token).await;
    const SENT: usize = 20;
    for i in 0..SENT {
        send(
            &mut ws,
            json!({"id": format!("q{i}"), "type": "subscribe", "payload": {"query": "{ me { email } }"}}),
        )
        .await;
    }
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < SENT {
        let m = next(&mut ws).await;
        if m["type"] == "next" {
            let i: usize = m["id"].as_str().unwrap()[1..].parse().unwrap();
            answers.insert(i, m["payload"].clone());
        } else {
            assert_eq!(m["type"], "complete", "{m}");
        }
    }
    for (i, p) in &answers {
        if *i < 5 {
            assert_eq!(p["data"]["me"]["email"], "ws-limit@example.com", "the burst runs: {i} {p}");
        } else if p["data"].is_null() {
            assert_eq!(p["errors"][0]["extensions"]["code"], "RATE_LIMITED", "{i} {p}");
        }
    }
    let limited = answers.values().filter(|p| p["errors"][0]["extensions"]["code"] == "RATE_LIMITED").count();
    assert!(limited > 0, "some operations beyond the burst are refused: {answers:?}");
    // The connection is still served.
    send(&mut ws, json!({"type": "ping"})).await;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        if v["type"] == "pong" {
            break;
        }
        assert_eq!(v["type"], "complete", "{v}");
    }
}
