//! Hostile input at the HTTP and WebSocket layers (issue 18, item 4): bodies over the limit
//! (413 at once when `Content-Length` says so), heads over the limit (431), bodies that are not
//! UTF-8, slow clients (header and body read deadlines), and on `/graphql/ws`: messages over the
//! limit (1009), binary frames (1003), too many connections per user (4429) and operations per
//! connection (`error`, `RATE_LIMITED`); strings holding U+0000, which PostgreSQL cannot store
//! (schemathesis found one: a 503 for an organization named `\u0000…`).

use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Backend, TestApp, access};
use crate::subscriptions::{closed_with, connect, next, raw, send};

crate::on_both_databases!(
    oversized_and_undecodable_requests_are_refused_at_once,
    slow_clients_are_cut_off,
    websocket_frames_over_the_limits_are_closed_with_their_codes,
    websocket_connections_and_operations_are_bounded_per_user,
    nul_characters_are_refused_before_anything_is_written
);

/// What the server answers on a raw connection after `sent` (within 10 s): its bytes until it
/// closes, or what it sent by then.
async fn answer_to(app: &TestApp, sent: &[u8]) -> (String, Duration) {
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let start = Instant::now();
    tcp.write_all(sent).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap_or(0);
    (String::from_utf8_lossy(&buf[..n]).into_owned(), start.elapsed())
}

async fn oversized_and_undecodable_requests_are_refused_at_once(b: Backend) {
    let app = TestApp::spawn_with(b, |c| {
        c.body_limit = 4096;
        c.header_limit = 16 * 1024;
    })
    .await;
    // A Content-Length over the limit is answered before any body byte is sent.
    for path in ["/graphql", "/api/v1/auth/signup"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        );
        let (answer, took) = answer_to(&app, head.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("PAYLOAD_TOO_LARGE"), "{path}: {answer}");
        assert!(took < Duration::from_secs(5), "{path}: {took:?}");
    }
    // A chunked body over the limit: 413 once it passes it.
    let big = json!({"query": "{ __typename }", "pad": "x".repeat(10_000)}).to_string();
    let chunked = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    assert!(answer_to(&app, chunked.as_bytes()).await.0.starts_with("HTTP/1.1 413"));
    // Headers over the limit: 431, however they arrive.
    let r = app.client.get(app.url("/health")).header("x-pad", "a".repeat(20_000)).send().await.unwrap();
    assert_eq!(r.status(), 431);
    let head = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "a".repeat(100_000));
    assert!(answer_to(&app, head.as_bytes()).await.0.starts_with("HTTP/1.1 431"));
    // Bodies that are not UTF-8: 400 INVALID_UTF8, over GraphQL and REST.
    let bad: Vec<u8> =
        [&b"{\"query\": \"{ __typename }\", \"x\": \""[..], &[0xff, 0xfe], &b"\"}"[..]].concat();
    let r = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(bad.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["errors"][0]["extensions"]["code"], "INVALID_UTF8");
    let r = app
        .client
        .post(app.url("/api/v1/auth/signin"))
        .header("content-type", "application/json")
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "INVALID_UTF8");
    // The server still answers.
    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), 200);
}

async fn slow_clients_are_cut_off(b: Backend) {
    let app = TestApp::spawn_with(b, |c| {
        c.header_read_timeout = Duration::from_millis(700);
        c.body_read_timeout = Duration::from_millis(700);
    })
    .await;
    // Slowloris: the head, a byte every 100 ms, never finished: the connection is closed.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let start = Instant::now();
    let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for byte in head {
        if tcp.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut buf = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut buf)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "a head sent byte by byte for {:?} was not cut off", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    // A body dripped byte by byte: 408 REQUEST_TIMEOUT at its deadline.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{").await.unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    while start.elapsed() < Duration::from_secs(5) {
        let _ = tcp.write_all(b" ").await;
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut buf)).await {
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.windows(15).any(|w| w == b"REQUEST_TIMEOUT") {
                break;
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), 200);
}

async fn websocket_frames_over_the_limits_are_closed_with_their_codes(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.body_limit = 4096).await;
    let s = app.signup("frames@example.com").await;
    let token = access(&s);
    let mut ws = connect(&app, "graphql-transport-ws", &token).await;
    let big = json!({"id": "1", "type": "subscribe", "payload": {"query": format!("{{ __typename }} # {}", "x".repeat(10_000))}});
    send(&mut ws, big).await;
    assert_eq!(closed_with(&mut ws).await, (1009, "Message too big".to_owned()));
    let mut ws = connect(&app, "graphql-transport-ws", &token).await;
    ws.send(Message::binary(json!({"type": "ping"}).to_string().into_bytes())).await.unwrap();
    assert_eq!(closed_with(&mut ws).await.0, 1003);
    let mut legacy = connect(&app, "graphql-ws", &token).await;
    legacy.send(Message::binary(b"{}".to_vec())).await.unwrap();
    assert_eq!(closed_with(&mut legacy).await.0, 1003);
}

async fn websocket_connections_and_operations_are_bounded_per_user(b: Backend) {
    let app = TestApp::spawn_with(b, |c| {
        c.ws_max_connections_per_user = 2;
        c.ws_max_operations = 2;
    })
    .await;
    let s = app.signup("sockets@example.com").await;
    let token = access(&s);
    let first = connect(&app, "graphql-transport-ws", &token).await;
    let mut second = connect(&app, "graphql-transport-ws", &token).await;
    let mut third = raw(&app, "graphql-transport-ws").await;
    send(
        &mut third,
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(closed_with(&mut third).await, (4429, "Too many connections".to_owned()));
    // Another user is counted apart; a closed connection gives its place back.
    let other = access(&app.signup("sockets-other@example.com").await);
    let _o = connect(&app, "graphql-transport-ws", &other).await;
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        let mut ws = raw(&app, "graphql-transport-ws").await;
        send(
            &mut ws,
            json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}),
        )
        .await;
        if next(&mut ws).await["type"] == "connection_ack" {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the closed connection's place was not given back");
    // Two operations run at once; a third is refused with `error`, the others go on.
    let sub = "subscription { sessionEvents { id } }";
    for id in ["a", "b"] {
        send(&mut second, json!({"id": id, "type": "subscribe", "payload": {"query": sub}})).await;
    }
    send(&mut second, json!({"id": "c", "type": "subscribe", "payload": {"query": sub}})).await;
    let refused = next(&mut second).await;
    assert_eq!((refused["type"].as_str(), refused["id"].as_str()), (Some("error"), Some("c")), "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["details"]["max_operations"], 2, "{refused}");
    send(&mut second, json!({"id": "a", "type": "complete"})).await;
    assert_eq!(next(&mut second).await, json!({"type": "complete", "id": "a"}));
    send(&mut second, json!({"id": "d", "type": "subscribe", "payload": {"query": "{ __typename }"}})).await;
    assert_eq!(next(&mut second).await["payload"]["data"]["__typename"], "Query");
}

/// U+0000 in a GraphQL literal, a variable, a REST body or a REST query: `VALIDATION_ERROR`
/// before a resolver runs, the same on SQLite (which would store it) and PostgreSQL (which
/// cannot), and nothing written.
async fn nul_characters_are_refused_before_anything_is_written(b: Backend) {
    let app = TestApp::spawn(b).await;
    let at = access(&app.signup("nul@example.com").await);
    let literal = r#"mutation { createOrganization(input: {name: "\u0000x", description: "b"}) { id } }"#;
    let body = app.gql(Some(&at), literal, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION_ERROR", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["details"]["invalid_character"], "U+0000", "{body}");
    let with_variable = "mutation($n: String!) { createOrganization(input: {name: $n}) { id } }";
    let body = app.gql(Some(&at), with_variable, json!({"n": "a\u{0}b"})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION_ERROR", "{body}");
    let nested = "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { id } }";
    let body = app.gql(Some(&at), nested, json!({"i": {"name": "ok", "description": "\u{0}"}})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION_ERROR", "{body}");
    let r = app.rest("POST", "/organizations", Some(&at), Some(json!({"name": "Acme\u{0}"}))).await;
    assert_eq!((r.status, r.code()), (422, "VALIDATION_ERROR"), "{}", r.body);
    let r = app.rest("GET", "/organizations?search=%00", Some(&at), None).await;
    assert!(r.status == 422 || r.status == 200, "{} {}", r.status, r.body);
    let r = app
        .rest(
            "POST",
            "/auth/signup",
            None,
            Some(json!({"email": "n2@example.com", "password": "a long passphrase", "name": "x\u{0}"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "VALIDATION_ERROR"), "{}", r.body);
    let r = app.rest("GET", "/organizations", Some(&at), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(0), "nothing was created: {}", r.body);
}
