//! `sessionEvents` over a real WebSocket, in both protocols, with resumption by `after`.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Backend, TestApp, access};

crate::on_both_databases!(
    revocation_reaches_a_subscriber_and_resume_misses_nothing,
    legacy_graphql_ws_protocol
);

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(app: &TestApp, protocol: &str, token: &str) -> Ws {
    let mut ws = raw(app, protocol).await;
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["type"], "connection_ack");
    ws
}

pub(crate) async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next protocol message that is not a keep-alive, within 10 seconds.
pub(crate) async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("stream open")
            .expect("no transport error");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] != "ka" && v["type"] != "ping" && v["type"] != "pong" {
                return v;
            }
        }
    }
}

const SUB: &str = "subscription($after: ID) { sessionEvents(after: $after) { id type action sessionId userId occurredAt } }";

pub(crate) async fn subscribe(ws: &mut Ws, kind: &str, after: Option<&str>) {
    send(ws, json!({"id": "1", "type": kind, "payload": {"query": SUB, "variables": {"after": after}}}))
        .await;
}

async fn revocation_reaches_a_subscriber_and_resume_misses_nothing(b: Backend) {
    let app = TestApp::spawn(b).await;
    let a = app.signup("sub@example.com").await;
    let watcher = app.signin("sub@example.com").await;
    let token = access(&watcher);
    let mut ws = connect(&app, "graphql-transport-ws", &token).await;
    subscribe(&mut ws, "subscribe", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // let the subscription register

    let a_sid = a["tokens"]["session_id"].as_str().unwrap();
    assert_eq!(app.rest("DELETE", &format!("/sessions/{a_sid}"), Some(&token), None).await.status, 204);
    app.drain_events().await;
    let msg = next(&mut ws).await;
    assert_eq!(msg["type"], "next", "{msg}");
    let e1 = &msg["payload"]["data"]["sessionEvents"];
    assert_eq!((e1["type"].as_str(), e1["sessionId"].as_str()), (Some("REVOKED"), Some(a_sid)), "{msg}");
    assert_eq!(e1["action"], "session.revoked");
    let e1_id = e1["id"].as_str().unwrap().to_owned();
    ws.close(None).await.ok();

    // While disconnected: a new session is created and terminated.
    let c = app.signin("sub@example.com").await;
    let c_sid = c["tokens"]["session_id"].as_str().unwrap().to_owned();
    app.rest("DELETE", &format!("/sessions/{c_sid}"), Some(&token), None).await;
    app.drain_events().await;

    // Resuming after e1 replays exactly what was missed, in order, then goes live.
    let mut ws = connect(&app, "graphql-transport-ws", &token).await;
    subscribe(&mut ws, "subscribe", Some(&e1_id)).await;
    let got: Vec<Value> = vec![next(&mut ws).await, next(&mut ws).await];
    let kinds: Vec<_> = got.iter().map(|m| m["payload"]["data"]["sessionEvents"]["type"].clone()).collect();
    assert_eq!(kinds, [json!("CREATED"), json!("REVOKED")], "{got:?}");
    assert!(got.iter().all(|m| m["payload"]["data"]["sessionEvents"]["sessionId"] == c_sid.as_str()));

    // Revoking the subscriber's own session delivers the event, then ends the stream with an error.
    app.rest("POST", "/auth/signout", Some(&token), None).await;
    app.drain_events().await;
    let own = next(&mut ws).await;
    assert_eq!(own["payload"]["data"]["sessionEvents"]["type"], "REVOKED", "{own}");
    let end = next(&mut ws).await;
    assert_eq!(end["payload"]["errors"][0]["extensions"]["code"], "SESSION_REVOKED", "{end}");
    // …and the connection, authenticated by that session, is closed.
    assert_eq!(closed_with(&mut ws).await, (4403, "SESSION_REVOKED".into()));
}

async fn legacy_graphql_ws_protocol(b: Backend) {
    let app = TestApp::spawn(b).await;
    let s = app.signup("legacy@example.com").await;
    let other = app.signin("legacy@example.com").await;
    let mut ws = connect(&app, "graphql-ws", &access(&s)).await;
    subscribe(&mut ws, "start", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sid = other["tokens"]["session_id"].as_str().unwrap();
    app.rest("DELETE", &format!("/sessions/{sid}"), Some(&access(&s)), None).await;
    app.drain_events().await;
    let msg = next(&mut ws).await;
    assert_eq!(msg["type"], "data", "{msg}");
    assert_eq!(msg["payload"]["data"]["sessionEvents"]["sessionId"], sid);

    // A bad token is refused at connection_init, with the error code as the close reason.
    let mut bad = raw(&app, "graphql-transport-ws").await;
    send(&mut bad, json!({"type": "connection_init", "payload": {"authorization": "Bearer nope"}})).await;
    assert_eq!(closed_with(&mut bad).await, (4403, "INVALID_TOKEN".into()));

    // The legacy protocol has no close codes: a refused init is a `connection_error`.
    let mut bad = raw(&app, "graphql-ws").await;
    send(&mut bad, json!({"type": "connection_init", "payload": {"authorization": "Bearer nope"}})).await;
    let refused = next(&mut bad).await;
    assert_eq!(refused, json!({"type": "connection_error", "payload": {"message": "INVALID_TOKEN"}}));
}

/// The close code and reason the server ends the connection with (within 10 seconds).
pub(crate) async fn closed_with(ws: &mut Ws) -> (u16, String) {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("closed within 10 s");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Text(t))) if !t.contains("\"ka\"") => panic!("expected a close frame, got {t}"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Opens a socket speaking `protocol` (the server agrees to it), without `connection_init`.
pub(crate) async fn raw(app: &TestApp, protocol: &str) -> Ws {
    let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.expect("websocket connects");
    assert_eq!(resp.headers()["sec-websocket-protocol"], protocol);
    ws
}

crate::on_both_databases!(graphql_transport_ws_protocol_rules);

/// graphql-transport-ws as its specification words it: ping/pong, queries over the socket,
/// complete, and the close codes for a broken protocol.
async fn graphql_transport_ws_protocol_rules(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.ws_init_timeout = Duration::from_millis(300)).await;
    let s = app.signup("rules@example.com").await;
    let token = access(&s);

    let mut ws = connect(&app, "graphql-transport-ws", &token).await;
    send(&mut ws, json!({"type": "ping"})).await;
    let pong = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(serde_json::from_str::<Value>(pong.to_text().unwrap()).unwrap(), json!({"type": "pong"}));
    // A query answers once, then completes.
    send(&mut ws, json!({"id": "q", "type": "subscribe", "payload": {"query": "{ me { email } }"}})).await;
    let answer = next(&mut ws).await;
    assert_eq!((answer["type"].as_str(), answer["id"].as_str()), (Some("next"), Some("q")), "{answer}");
    assert_eq!(answer["payload"]["data"]["me"]["email"], "rules@example.com");
    assert_eq!(next(&mut ws).await, json!({"type": "complete", "id": "q"}));
    // A subscription the client completes is acknowledged; its id can then be used again.
    subscribe(&mut ws, "subscribe", None).await;
    send(&mut ws, json!({"id": "1", "type": "complete"})).await;
    assert_eq!(next(&mut ws).await, json!({"type": "complete", "id": "1"}));
    subscribe(&mut ws, "subscribe", None).await;
    // Two operations under one id: 4409.
    subscribe(&mut ws, "subscribe", None).await;
    assert_eq!(closed_with(&mut ws).await, (4409, "Subscriber for 1 already exists".into()));

    // Subscribing before connection_init: 4401.
    let mut early = raw(&app, "graphql-transport-ws").await;
    subscribe(&mut early, "subscribe", None).await;
    assert_eq!(closed_with(&mut early).await.0, 4401);
    // A second connection_init: 4429.
    let mut twice = connect(&app, "graphql-transport-ws", &token).await;
    send(&mut twice, json!({"type": "connection_init"})).await;
    assert_eq!(closed_with(&mut twice).await.0, 4429);
    // Not a protocol message: 4400.
    let mut junk = connect(&app, "graphql-transport-ws", &token).await;
    junk.send(Message::text("{\"type\": \"hello\"}")).await.unwrap();
    assert_eq!(closed_with(&mut junk).await.0, 4400);
    // No connection_init in time: 4408.
    let mut silent = raw(&app, "graphql-transport-ws").await;
    assert_eq!(closed_with(&mut silent).await.0, 4408);
}

crate::on_both_databases!(audit_events_reach_administrators_and_organization_admins);

const AUDIT: &str = "subscription($action: String) { auditEvents(action: $action) { id action actor { type id } target { type id } organizationId data } }";

async fn audit_events_reach_administrators_and_organization_admins(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("audit-admin@example.com").await;
    let owner = access(&app.signup("audit-owner@example.com").await);
    let other = access(&app.signup("audit-other@example.com").await);
    let org = app.org(&owner, "Watched").await;
    let elsewhere = app.org(&other, "Elsewhere Inc").await;

    let mut as_admin = connect(&app, "graphql-transport-ws", &admin).await;
    send(&mut as_admin, json!({"id": "1", "type": "subscribe", "payload": {"query": AUDIT, "variables": {"action": "organization.*"}}})).await;
    let mut as_owner = connect(&app, "graphql-transport-ws", &owner).await;
    send(&mut as_owner, json!({"id": "1", "type": "subscribe", "payload": {"query": AUDIT}})).await;
    let plain = access(&app.signup("audit-plain@example.com").await);
    let mut as_plain = connect(&app, "graphql-transport-ws", &plain).await;
    send(&mut as_plain, json!({"id": "1", "type": "subscribe", "payload": {"query": AUDIT}})).await;
    let refused = next(&mut as_plain).await;
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // One change in each organization, and one that is not about an organization.
    app.rest("PUT", &format!("/organizations/{elsewhere}"), Some(&other), Some(json!({"description": "x"})))
        .await;
    app.rest("PUT", &format!("/organizations/{org}"), Some(&owner), Some(json!({"description": "y"}))).await;
    app.rest(
        "POST",
        "/auth/signin",
        None,
        Some(json!({"email": "nobody@example.com", "password": "wrong password 1"})),
    )
    .await;
    app.drain_events().await;

    // The administrator sees both organization changes (the filter drops the failed sign-in)…
    let a1 = next(&mut as_admin).await;
    let a2 = next(&mut as_admin).await;
    let orgs: Vec<_> =
        [&a1, &a2].iter().map(|m| m["payload"]["data"]["auditEvents"]["organizationId"].clone()).collect();
    assert_eq!(orgs, [json!(elsewhere), json!(org)], "{a1} {a2}");
    assert_eq!(a2["payload"]["data"]["auditEvents"]["action"], "organization.updated");
    assert_eq!(a2["payload"]["data"]["auditEvents"]["actor"]["type"], "user");
    // …the owner only their own organization's.
    let o1 = next(&mut as_owner).await;
    assert_eq!(o1["payload"]["data"]["auditEvents"]["organizationId"], json!(org), "{o1}");
    assert_eq!(o1["payload"]["data"]["auditEvents"]["data"]["organization_id"], json!(org));
    let quiet = tokio::time::timeout(Duration::from_millis(300), as_owner.next()).await;
    assert!(quiet.is_err(), "nothing else reaches the owner: {quiet:?}");
}

crate::on_both_databases!(organization_admins_see_their_members_sessions);

async fn organization_admins_see_their_members_sessions(b: Backend) {
    let app = TestApp::spawn(b).await;
    let owner = access(&app.signup("sess-owner@example.com").await);
    let org = app.org(&owner, "Session Watchers").await;
    app.signup("sess-member@example.com").await;
    app.signup("sess-stranger@example.com").await;
    app.add_member(&owner, &org, "sess-member@example.com", "member").await;
    let mut ws = connect(&app, "graphql-transport-ws", &owner).await;
    subscribe(&mut ws, "subscribe", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.signin("sess-stranger@example.com").await;
    let member = app.signin("sess-member@example.com").await;
    app.drain_events().await;
    let msg = next(&mut ws).await;
    let e = &msg["payload"]["data"]["sessionEvents"];
    assert_eq!(
        (e["type"].as_str(), e["userId"].as_str()),
        (Some("CREATED"), member["user"]["id"].as_str()),
        "{msg}"
    );
    assert_eq!(e["sessionId"], member["tokens"]["session_id"]);
    let quiet = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
    assert!(quiet.is_err(), "a stranger's sessions are not shown: {quiet:?}");
}

crate::on_both_databases!(one_resolution_per_selection_and_event);

/// Subscribers with the same selection share one resolution of an event; another selection
/// (aliases, fewer fields) gets its own, and each subscriber receives exactly its own shape.
async fn one_resolution_per_selection_and_event(b: Backend) {
    let app = TestApp::spawn(b).await;
    let victim = app.signup("shared@example.com").await;
    let token = access(&app.signin("shared@example.com").await);
    let narrow = "subscription { e: sessionEvents { kind: type sid: sessionId } }";
    let mut sockets = Vec::new();
    for query in [SUB, SUB, narrow] {
        let mut ws = connect(&app, "graphql-transport-ws", &token).await;
        send(&mut ws, json!({"id": "7", "type": "subscribe", "payload": {"query": query}})).await;
        sockets.push(ws);
    }
    // Wait until all three are live in the lanes (the assertion below counts the lanes' writes).
    for _ in 0..1000 {
        if app.services.ws.adopted() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.services.ws.adopted(), 3, "three subscribers live in the lanes");
    let before = app.services.ws.renders().resolutions();
    let lane_before = app.services.ws.lane_writes();

    let sid = victim["tokens"]["session_id"].as_str().unwrap();
    assert_eq!(app.rest("DELETE", &format!("/sessions/{sid}"), Some(&token), None).await.status, 204);
    app.drain_events().await;
    for ws in &mut sockets[..2] {
        let msg = next(ws).await;
        assert_eq!((msg["type"].as_str(), msg["id"].as_str()), (Some("next"), Some("7")), "{msg}");
        let e = &msg["payload"]["data"]["sessionEvents"];
        assert_eq!((e["type"].as_str(), e["sessionId"].as_str()), (Some("REVOKED"), Some(sid)), "{msg}");
        assert_eq!(e.as_object().unwrap().len(), 6, "{msg}");
    }
    let msg = next(&mut sockets[2]).await;
    assert_eq!(msg["payload"]["data"], json!({"e": {"kind": "REVOKED", "sid": sid}}), "{msg}");
    assert_eq!(app.services.ws.renders().resolutions() - before, 2, "one resolution per selection");
    // Live subscribers are served by the event lanes, not by their connections' tasks (a lane
    // adds its pass's writes to the count when the pass ends, just after writing).
    for _ in 0..500 {
        if app.services.ws.lane_writes() - lane_before >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.services.ws.lane_writes() - lane_before, 3, "written by the lanes");
}
