//! Webhook deliveries are independent: a failing event is retried on its own schedule while
//! the later events reach the receiver promptly; at most `JANUA_WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT`
//! requests are in flight to one endpoint; an attempt cut short by a crash is recorded.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use entities::{webhook_attempt, webhook_delivery};
use janua::app::App;
use janua::services::webhook_queue::{CUT_SHORT, INTERRUPTED};

use crate::helpers::{Backend, TempDir, access, signup_token};
use crate::webhooks::spawn_dev;
use crate::webhooks_crash::own_config;

crate::on_both_databases!(
    a_failing_event_holds_up_no_later_one,
    requests_in_flight_to_an_endpoint_are_bounded,
    an_attempt_cut_short_by_a_crash_is_recorded,
);

/// A receiver that answers 503 to every request for the first event it sees, 200 to the others
/// (after `delay`), and counts the requests in flight at once.
#[derive(Clone, Default)]
struct Picky {
    bad: Arc<Mutex<Option<String>>>,
    /// `(event id, when it arrived)` of every accepted request.
    accepted: Arc<Mutex<Vec<(String, Instant)>>>,
    refused: Arc<AtomicUsize>,
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    delay: Duration,
    /// Holds the first request this long (a node dies meanwhile), then answers 200 at once.
    hold_first: Option<Duration>,
    seen: Arc<AtomicUsize>,
    fail_first_event: bool,
}

impl Picky {
    async fn start(self) -> (Self, SocketAddr) {
        async fn hook(State(p): State<Picky>, headers: HeaderMap) -> StatusCode {
            let id = headers["x-janua-event-id"].to_str().unwrap().to_owned();
            let n = p.now.fetch_add(1, Ordering::SeqCst) + 1;
            p.most.fetch_max(n, Ordering::SeqCst);
            let first = p.seen.fetch_add(1, Ordering::SeqCst) == 0;
            if let (true, Some(hold)) = (first, p.hold_first) {
                tokio::time::sleep(hold).await;
            }
            tokio::time::sleep(p.delay).await;
            p.now.fetch_sub(1, Ordering::SeqCst);
            if p.fail_first_event {
                let mut bad = p.bad.lock().unwrap();
                if bad.get_or_insert_with(|| id.clone()) == &id {
                    p.refused.fetch_add(1, Ordering::SeqCst);
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
            }
            p.accepted.lock().unwrap().push((id, Instant::now()));
            StatusCode::OK
        }
        let router = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (self, addr)
    }

    fn accepted_ids(&self) -> HashSet<String> {
        self.accepted.lock().unwrap().iter().map(|(id, _)| id.clone()).collect()
    }
}

async fn endpoint(app_rest: &crate::helpers::TestApp, token: &str, addr: SocketAddr) -> String {
    let r = app_rest
        .rest(
            "POST",
            "/webhooks",
            Some(token),
            Some(json!({"url": format!("http://127.0.0.1:{}/hook", addr.port()), "events": ["*"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["data"]["webhook"]["id"].as_str().unwrap().to_owned()
}

async fn a_failing_event_holds_up_no_later_one(b: Backend) {
    // The failing event is retried every 2 s for a minute: it stays pending throughout.
    let app = spawn_dev(b, |c| c.webhook_retry_schedule = vec![Duration::from_secs(2); 30]).await;
    let (rx, addr) = Picky { fail_first_event: true, ..Picky::default() }.start().await;
    let t = access(&app.signup("hol@example.com").await);
    let id = endpoint(&app, &t, addr).await;
    // Wait for the first event (`webhook.created`) to fail once: it is the bad one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.refused.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the first event reached the receiver");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    for _ in 0..5 {
        app.signin("hol@example.com").await;
    }
    // Every later event (two per sign-in) arrives while the bad one is still retrying.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.accepted_ids().len() < 10 {
        assert!(Instant::now() < deadline, "{} of 10 later events within 10 s", rx.accepted_ids().len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = rx.accepted.lock().unwrap().iter().map(|(_, at)| *at).max().unwrap();
    eprintln!(
        "10 later events delivered within {} ms of the first sign-in while event 1 was refused {} times",
        (last - started).as_millis(),
        rx.refused.load(Ordering::SeqCst)
    );
    let bad = rx.bad.lock().unwrap().clone().unwrap();
    assert!(!rx.accepted_ids().contains(&bad));
    let d = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::EventId.eq(uuid::Uuid::parse_str(&bad).unwrap()))
        .one(&app.services.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, "pending", "the failing event is still retrying on its own schedule");
    assert_eq!(d.endpoint_id.to_string(), id);
    assert!(d.attempts >= 1 && d.next_attempt_at.is_some(), "{d:?}");
}

async fn requests_in_flight_to_an_endpoint_are_bounded(b: Backend) {
    let app = spawn_dev(b, |c| {
        c.webhook_max_in_flight_per_endpoint = 2;
        c.webhook_concurrency = 64;
    })
    .await;
    let (rx, addr) = Picky { delay: Duration::from_millis(300), ..Picky::default() }.start().await;
    let t = access(&app.signup("slow@example.com").await);
    endpoint(&app, &t, addr).await;
    for _ in 0..6 {
        app.signin("slow@example.com").await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while rx.accepted_ids().len() < 13 {
        assert!(Instant::now() < deadline, "{} of 13 events within 30 s", rx.accepted_ids().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let most = rx.most.load(Ordering::SeqCst);
    assert!(most <= 2, "{most} requests in flight at once to one endpoint (bound 2)");
    assert_eq!(most, 2, "deliveries to one endpoint do run side by side");
}

async fn an_attempt_cut_short_by_a_crash_is_recorded(b: Backend) {
    let dir = TempDir::new();
    let (mut config, schema) = own_config(&b, &dir).await;
    config.webhook_timeout = Duration::from_secs(1);
    config.webhook_retry_schedule = vec![Duration::from_secs(1); 3];
    // The first request is held until after its node is gone.
    let (rx, addr) = Picky { hold_first: Some(Duration::from_secs(3)), ..Picky::default() }.start().await;
    let client = reqwest::Client::new();
    let first = App::build_with_schema(config.clone(), schema.as_deref()).await.unwrap();
    let base = format!("http://{}/api/v1", first.local_addr());
    let server = tokio::spawn(first.run());
    let t = signup_token(&client, &base, "cut@example.com").await;
    let r = client
        .post(format!("{base}/webhooks"))
        .bearer_auth(&t)
        .json(&json!({"url": format!("http://127.0.0.1:{}/hook", addr.port()), "events": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // `webhook.created` is in flight (held by the receiver) when the node dies.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.seen.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the attempt started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.abort();
    let _ = server.await;

    let second = App::build_with_schema(config, schema.as_deref()).await.unwrap();
    let db = second.services.state.db.clone();
    let server = tokio::spawn(second.run());
    // Its lease (timeout 1 s + 5 s) runs out; the next claim records the attempt and sends again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let d = loop {
        let d = webhook_delivery::Entity::find().one(&db).await.unwrap().unwrap();
        if d.status == "succeeded" {
            break d;
        }
        assert!(Instant::now() < deadline, "delivered again after the lease ran out: {d:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.eq(d.id))
        .order_by_asc(webhook_attempt::Column::Number)
        .all(&db)
        .await
        .unwrap();
    let seen: Vec<(i32, &str, Option<&str>)> =
        log.iter().map(|a| (a.number, a.outcome.as_str(), a.error.as_deref())).collect();
    assert_eq!(seen, [(1, INTERRUPTED, Some(CUT_SHORT)), (2, "succeeded", None)]);
    assert_eq!(d.attempts, 2);
    server.abort();
}
