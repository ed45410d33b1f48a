//! Graceful shutdown of a real `janua serve` process: on SIGTERM a slow request in flight gets
//! its response, new connections are refused, a subscriber gets a 1001 close frame, a webhook
//! attempt in flight finishes (or, when the grace runs out, is handed back) and the process
//! exits 0.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures::{SinkExt, StreamExt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use entities::{webhook_attempt, webhook_delivery};
use janua::security::secrets::MasterKey;
use janua::services::webhook_queue::{HANDED_BACK, INTERRUPTED};

use crate::helpers::{TempDir, post_json, signup_token};
pub(crate) use crate::process::sqlite_url;
use crate::process::{free_port, over_sqlite, serve_on, wait_ready};

/// A `janua serve` child on a SQLite file in `dir`, killed when dropped (if still running).
pub(crate) struct Child {
    pub(crate) child: std::process::Child,
    pub(crate) base: String,
    pub(crate) port: u16,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `janua serve` on a free port over the SQLite file in `dir`, with `env` added; waits
/// until it is ready.
pub(crate) async fn serve(dir: &TempDir, key: &str, env: &[(&str, &str)]) -> Child {
    let port = free_port();
    let mut cmd = serve_on(port);
    over_sqlite(&mut cmd, dir, key);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start janua");
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&reqwest::Client::new(), &base).await;
    Child { child, base, port }
}

fn sigterm(child: &std::process::Child) {
    let ok = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(ok.success(), "kill -TERM");
}

/// Waits for the child to exit, at most `within`; its status.
async fn exited(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "janua still running {within:?} after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A webhook receiver that answers 200 after `delay`, noting the event types it got.
async fn slow_receiver(delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    async fn hook(
        State((got, delay)): State<(Arc<Mutex<Vec<String>>>, Duration)>,
        h: HeaderMap,
    ) -> StatusCode {
        got.lock().unwrap().push(h["x-janua-event-type"].to_str().unwrap().to_owned());
        tokio::time::sleep(delay).await;
        StatusCode::OK
    }
    let router =
        axum::Router::new().route("/hook", axum::routing::post(hook)).with_state((got.clone(), delay));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://127.0.0.1:{port}/hook"), got)
}

async fn signup_with_hook(client: &reqwest::Client, base: &str, email: &str, hook: &str) -> (String, String) {
    let t = signup_token(client, &format!("{base}/api/v1"), email).await;
    let v = post_json(
        client,
        &format!("{base}/api/v1/webhooks"),
        Some(&t),
        json!({"url": hook, "events": ["*"]}),
    )
    .await;
    (t, v["data"]["webhook"]["id"].as_str().unwrap().to_owned())
}

async fn wait_for(got: &Arc<Mutex<Vec<String>>>, event: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !got.lock().unwrap().iter().any(|t| t == event) {
        assert!(Instant::now() < deadline, "{event} reached the receiver");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_requests_subscriptions_and_webhooks_then_exits_0() {
    let (dir, key, client) = (TempDir::new(), MasterKey::generate().to_base64(), reqwest::Client::new());
    let (hook, got) = slow_receiver(Duration::from_secs(3)).await;
    let mut node =
        serve(&dir, &key, &[("JANUA_SHUTDOWN_GRACE", "10s"), ("JANUA_WEBHOOK_TIMEOUT", "10s")]).await;
    let base = node.base.clone();
    let (t, id) = signup_with_hook(&client, &base, "drain@example.com", &hook).await;
    // `webhook.created` goes out at once (the worker's attempt, 3 s at the receiver).
    wait_for(&got, "webhook.created").await;

    // A subscriber.
    let mut req = format!("ws://127.0.0.1:{}/graphql/ws", node.port).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connects");
    let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {t}")}});
    ws.send(Message::text(init.to_string())).await.unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack:?}");
    let sub = json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { sessionEvents { id type } }"}});
    ws.send(Message::text(sub.to_string())).await.unwrap();

    // A slow request (the test delivery waits for the receiver, 3 s), in flight at SIGTERM.
    let slow = tokio::spawn({
        let (client, t) = (client.clone(), t.clone());
        let url = format!("{base}/api/v1/webhooks/{id}/test");
        async move { client.post(url).bearer_auth(t).send().await }
    });
    wait_for(&got, "webhook.test").await;
    let signalled = Instant::now();
    sigterm(&node.child);

    // The subscriber is told the server is going away.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("closed within 5 s") {
            Some(Ok(Message::Close(Some(f)))) => break f,
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1001, "going away: {close:?}");
    // New connections are refused while the slow request is still running.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!slow.is_finished(), "the slow request is still in flight");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", node.port)).await.is_err(),
        "the listener is closed"
    );
    // The request in flight completes with its response (no reset).
    let r = slow.await.unwrap().expect("a response, not a reset");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["success"], true, "{v}");
    let status = exited(&mut node.child, Duration::from_secs(15)).await;
    let drained = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    eprintln!("drained in {} ms (a 3 s request and a 3 s webhook attempt in flight)", drained.as_millis());

    // The worker's attempt in flight finished and was recorded.
    let db = sea_orm::Database::connect(sqlite_url(&dir)).await.unwrap();
    let created = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::EventType.eq("webhook.created"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((created.status.as_str(), created.attempts), ("succeeded", 1), "{created:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_attempt_still_running_when_the_grace_ends_is_handed_back() {
    let (dir, key, client) = (TempDir::new(), MasterKey::generate().to_base64(), reqwest::Client::new());
    let (hook, got) = slow_receiver(Duration::from_secs(8)).await;
    let mut node =
        serve(&dir, &key, &[("JANUA_SHUTDOWN_GRACE", "1s"), ("JANUA_WEBHOOK_TIMEOUT", "10s")]).await;
    let base = node.base.clone();
    signup_with_hook(&client, &base, "handback@example.com", &hook).await;
    wait_for(&got, "webhook.created").await;
    let signalled = Instant::now();
    sigterm(&node.child);
    let status = exited(&mut node.child, Duration::from_secs(8)).await;
    assert!(status.success(), "exit status {status:?}");
    eprintln!("exited {} ms after SIGTERM (grace 1 s)", signalled.elapsed().as_millis());

    let db = sea_orm::Database::connect(sqlite_url(&dir)).await.unwrap();
    let d = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::EventType.eq("webhook.created"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.status.as_str(), d.attempts, d.locked_until),
        ("pending", 1, None),
        "lease released: {d:?}"
    );
    assert!(d.next_attempt_at.is_some_and(|t| t <= chrono::Utc::now()), "due again at once: {d:?}");
    let a = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.eq(d.id))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.outcome.as_str(), a.error.as_deref()), (INTERRUPTED, Some(HANDED_BACK)));
    db.close().await.ok();

    // The next start sends it at once.
    let _node = serve(&dir, &key, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().iter().filter(|t| *t == "webhook.created").count() < 2 {
        assert!(Instant::now() < deadline, "sent again after the restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
