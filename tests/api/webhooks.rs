//! Webhooks through the real server: a real receiver verifying signatures, retries on 5xx,
//! none on 4xx, private addresses refused, disabling after failing; REST and GraphQL.
//! (GraphQL: `webhooks_graphql.rs`; a killed server losing nothing: `webhooks_crash.rs`.)

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use sha2::Sha256;

use entities::{audit_log, webhook_endpoint};
use janua::config::Config;
use janua::workers::webhooks::WebhookWorker;

use crate::helpers::{Backend, TestApp, access};

crate::on_both_databases!(
    rest_endpoints_and_signed_deliveries,
    server_errors_are_retried_on_the_schedule,
    client_errors_are_not_retried,
    private_addresses_are_refused,
    an_endpoint_failing_too_long_is_disabled_and_audited,
);

/// One request the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

#[derive(Default)]
pub(crate) struct ReceiverState {
    got: Vec<Received>,
    /// Statuses to answer, in order; 200 once they run out.
    script: Vec<u16>,
}

/// A webhook receiver on 127.0.0.1, port 0.
#[derive(Clone)]
pub(crate) struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    pub(crate) async fn start(script: Vec<u16>) -> Self {
        let state = Arc::new(Mutex::new(ReceiverState { got: Vec::new(), script }));
        async fn hook(
            State(s): State<Arc<Mutex<ReceiverState>>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let mut s = s.lock().unwrap();
            s.got.push(Received { headers, body });
            let code = if s.script.is_empty() { 200 } else { s.script.remove(0) };
            StatusCode::from_u16(code).unwrap()
        }
        let router = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { addr, state }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.addr.port())
    }

    pub(crate) fn got(&self) -> Vec<Received> {
        self.state.lock().unwrap().got.clone()
    }

    /// The ids of the events received, in arrival order.
    pub(crate) fn event_ids(&self) -> Vec<String> {
        self.got().iter().map(|r| header(&r.headers, "x-janua-event-id")).collect()
    }
}

pub(crate) fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// The documented recipe: `X-Janua-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`,
/// compared in constant time.
pub(crate) fn verify(secret: &str, r: &Received) -> bool {
    let ts = header(&r.headers, "x-janua-timestamp");
    let sig = header(&r.headers, "x-janua-signature");
    let Some(hex) = sig.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&r.body);
    mac.verify_slice(&expected).is_ok()
}

pub(crate) async fn spawn_dev(b: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(b, |c| {
        c.webhook_allow_loopback = true;
        tweak(c);
    })
    .await
}

/// Publishes committed events, then fans out and sends everything due (a second "node"
/// besides the server's own worker: the leases keep them from sending the same attempt).
pub(crate) async fn deliver(app: &TestApp) {
    app.drain_events().await;
    WebhookWorker::new(app.services.state.clone()).try_run_once().await.expect("webhook run");
}

async fn create(app: &TestApp, token: &str, url: &str, events: Value) -> (String, String) {
    let r = app
        .rest(
            "POST",
            "/webhooks",
            Some(token),
            Some(json!({"url": url, "events": events, "description": "test hook"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["data"]["webhook"]["id"].as_str().unwrap().to_owned();
    let secret = r.body["data"]["secret"].as_str().unwrap().to_owned();
    (id, secret)
}

async fn rest_endpoints_and_signed_deliveries(b: Backend) {
    let app = spawn_dev(b, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let t = access(&app.signup("hooks@example.com").await);
    let (id, secret) = create(&app, &t, &rx.url(), json!(["user.signed_in", "session.created"])).await;
    assert!(secret.starts_with("whsec_"));

    // Reading it back never shows the secret.
    let r = app.rest("GET", &format!("/webhooks/{id}"), Some(&t), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["events"], json!(["user.signed_in", "session.created"]));
    assert_eq!(r.body["data"]["active"], true);
    assert!(!r.body.to_string().contains(&secret));
    let r = app.rest("GET", "/webhooks?limit=10", Some(&t), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["pagination"]["total_count"], 1);
    assert_eq!(r.body["data"][0]["id"], id.as_str());

    // Someone else sees nothing of it.
    let other = access(&app.signup("other@example.com").await);
    assert_eq!(app.rest("GET", &format!("/webhooks/{id}"), Some(&other), None).await.status, 404);

    app.signin("hooks@example.com").await;
    deliver(&app).await;
    let mut got = rx.got();
    // Deliveries are independent (they may arrive in any order): receivers order by the
    // event's id (a UUIDv7, time-ordered) and `created_at`.
    got.sort_by_key(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["id"].as_str().unwrap().to_owned());
    let types: Vec<String> = got.iter().map(|r| header(&r.headers, "x-janua-event-type")).collect();
    assert_eq!(types, ["user.signed_in", "session.created"], "in event order, by id");
    for r in &got {
        assert!(verify(&secret, r), "signature verifies with the documented recipe");
        assert!(!verify("whsec_wrong", r));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["id"], header(&r.headers, "x-janua-event-id").as_str());
        assert_eq!(body["type"], header(&r.headers, "x-janua-event-type").as_str());
        for k in ["api_version", "created_at", "data"] {
            assert!(!body[k].is_null(), "payload has {k}");
        }
        let ts: i64 = header(&r.headers, "x-janua-timestamp").parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
        assert_eq!(header(&r.headers, "content-type"), "application/json");
    }

    // Every attempt is listed.
    let r = app.rest("GET", &format!("/webhooks/{id}/deliveries"), Some(&t), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["pagination"]["total_count"], 2);
    for d in r.body["data"].as_array().unwrap() {
        assert_eq!(d["status"], "succeeded");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["attempt_log"][0]["status_code"], 200);
        assert_eq!(d["attempt_log"][0]["outcome"], "succeeded");
        assert!(d["next_attempt_at"].is_null());
    }
    let r = app.rest("GET", &format!("/webhooks/{id}/deliveries?limit=1"), Some(&t), None).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["pagination"]["has_next"], true);

    // Update: only session.created now; an https URL check still applies.
    let r = app
        .rest("PUT", &format!("/webhooks/{id}"), Some(&t), Some(json!({"events": ["session.created"]})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["events"], json!(["session.created"]));
    assert_eq!(r.body["data"]["url"], rx.url().as_str());
    let r = app
        .rest("PUT", &format!("/webhooks/{id}"), Some(&t), Some(json!({"url": "http://example.com/x"})))
        .await;
    assert_eq!(r.status, 422);
    assert!(!r.body["error"]["details"]["fields"]["url"].is_null());

    // Test: sent now, reported with status and time.
    let r = app.rest("POST", &format!("/webhooks/{id}/test"), Some(&t), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["success"], true);
    assert_eq!(r.body["data"]["status_code"], 200);
    assert!(r.body["data"]["duration_ms"].as_i64().unwrap() >= 0);
    assert_eq!(r.body["data"]["delivery"]["event_type"], "webhook.test");
    let last = rx.got().pop().unwrap();
    assert_eq!(header(&last.headers, "x-janua-event-type"), "webhook.test");
    assert!(verify(&secret, &last));

    // Observability: backlog in the detailed health, attempts in the metrics.
    let h: Value =
        app.client.get(app.url("/api/v1/health/detailed")).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["data"]["webhook_backlog"], 0);
    let m = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("janua_webhook_attempts_total"));
    assert!(m.contains("janua_webhook_backlog"));

    // Every change is audited.
    let db = &app.services.state.db;
    let actions: Vec<String> = audit_log::Entity::find()
        .filter(audit_log::Column::TargetId.eq(id.as_str()))
        .order_by_asc(audit_log::Column::Id)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, ["webhook.created", "webhook.updated", "webhook.test"]);

    let r = app.rest("DELETE", &format!("/webhooks/{id}"), Some(&t), None).await;
    assert_eq!(r.status, 204);
    assert_eq!(app.rest("GET", &format!("/webhooks/{id}"), Some(&t), None).await.status, 404);
    assert_eq!(
        audit_log::Entity::find()
            .filter(audit_log::Column::Action.eq("webhook.deleted"))
            .all(db)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// The deliveries of `id` as REST returns them.
async fn deliveries(app: &TestApp, t: &str, id: &str) -> Vec<Value> {
    let r = app.rest("GET", &format!("/webhooks/{id}/deliveries"), Some(t), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].as_array().unwrap().clone()
}

async fn server_errors_are_retried_on_the_schedule(b: Backend) {
    // Shortened schedule: retries fall due at once, so one run goes through them.
    let app = spawn_dev(b, |c| c.webhook_retry_schedule = vec![Duration::ZERO; 3]).await;
    let rx = Receiver::start(vec![500, 500]).await;
    let t = access(&app.signup("retry@example.com").await);
    let (id, secret) = create(&app, &t, &rx.url(), json!(["session.created"])).await;
    app.signin("retry@example.com").await;
    deliver(&app).await;

    let got = rx.got();
    assert_eq!(got.len(), 3, "two failures then a success");
    let ids: HashSet<String> = rx.event_ids().into_iter().collect();
    assert_eq!(ids.len(), 1, "the same event each time");
    assert!(got.iter().all(|r| verify(&secret, r)));
    let ds = deliveries(&app, &t, &id).await;
    assert_eq!(ds.len(), 1);
    let d = &ds[0];
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempts"], 3);
    let log = d["attempt_log"].as_array().unwrap();
    let summary: Vec<(Value, Value)> =
        log.iter().map(|a| (a["status_code"].clone(), a["outcome"].clone())).collect();
    assert_eq!(
        summary,
        [(json!(500), json!("retrying")), (json!(500), json!("retrying")), (json!(200), json!("succeeded")),]
    );
    assert!(!log[0]["next_attempt_at"].is_null(), "a retry was scheduled");
    assert!(log[2]["next_attempt_at"].is_null());

    // With the default schedule a 503 waits a minute before the next attempt.
    let app2 = spawn_dev(Backend::Sqlite, |_| {}).await;
    let rx2 = Receiver::start(vec![503]).await;
    let t2 = access(&app2.signup("retry2@example.com").await);
    let (id2, _) = create(&app2, &t2, &rx2.url(), json!(["session.created"])).await;
    app2.signin("retry2@example.com").await;
    deliver(&app2).await;
    deliver(&app2).await;
    assert_eq!(rx2.got().len(), 1);
    let d = &deliveries(&app2, &t2, &id2).await[0];
    assert_eq!(d["status"], "pending");
    let next = chrono::DateTime::parse_from_rfc3339(d["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = next.timestamp() - chrono::Utc::now().timestamp();
    assert!((50..=61).contains(&wait), "next attempt in about a minute, got {wait} s");
}

async fn client_errors_are_not_retried(b: Backend) {
    let app = spawn_dev(b, |c| c.webhook_retry_schedule = vec![Duration::ZERO; 3]).await;
    let rx = Receiver::start(vec![400, 400, 400]).await;
    let t = access(&app.signup("four@example.com").await);
    let (id, _) = create(&app, &t, &rx.url(), json!(["session.created"])).await;
    app.signin("four@example.com").await;
    deliver(&app).await;
    deliver(&app).await;
    assert_eq!(rx.got().len(), 1, "a 400 is not retried");
    let d = &deliveries(&app, &t, &id).await[0];
    assert_eq!(d["status"], "failed");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_status_code"], 400);
    assert_eq!(d["attempt_log"][0]["outcome"], "failed");
    assert!(d["next_attempt_at"].is_null());
    // A later event is still delivered (ordering does not wait on a failed one).
    app.signin("four@example.com").await;
    deliver(&app).await;
    assert_eq!(rx.got().len(), 2);
}

async fn private_addresses_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await; // production defaults: no loopback, no private
    let t = access(&app.signup("ssrf@example.com").await);
    for url in [
        "https://10.0.0.8/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1]/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "http://hooks.example.com/not-https",
    ] {
        let r = app.rest("POST", "/webhooks", Some(&t), Some(json!({"url": url, "events": ["*"]}))).await;
        assert_eq!(r.status, 422, "{url}: {}", r.body);
        assert_eq!(r.code(), "VALIDATION_ERROR");
        assert_eq!(r.body["error"]["details"]["fields"]["url"], "must be an https URL of a public host");
    }
    let r = app
        .rest(
            "POST",
            "/webhooks",
            Some(&t),
            Some(json!({"url": "https://example.com/h", "events": ["user.exploded"]})),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(!r.body["error"]["details"]["fields"]["events"].is_null());
    // In the caller's language.
    let r = app
        .client
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(&t)
        .header("accept-language", "de")
        .json(&json!({"url": "https://10.1.1.1/", "events": ["*"]}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["details"]["fields"]["url"],
        "muss eine https-URL eines öffentlichen Hosts sein"
    );
    let v = app
        .gql(
            Some(&t),
            "mutation { createWebhook(input: {url: \"https://[::1]/x\", events: [\"*\"]}) { secret } }",
            json!({}),
        )
        .await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "VALIDATION_ERROR");

    // An endpoint whose address turns private later is refused at delivery, not connected to.
    let rx = Receiver::start(vec![]).await;
    let (id, _) = create(&app, &t, "https://hooks.example.com/janua", json!(["session.created"])).await;
    let db = &app.services.state.db;
    let ep = webhook_endpoint::Entity::find_by_id(uuid::Uuid::parse_str(&id).unwrap())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut am: webhook_endpoint::ActiveModel = ep.into();
    am.url = sea_orm::Set(rx.url());
    sea_orm::ActiveModelTrait::update(am, db).await.unwrap();
    app.signin("ssrf@example.com").await;
    deliver(&app).await;
    assert!(rx.got().is_empty(), "nothing reached the loopback receiver");
    let d = &deliveries(&app, &t, &id).await[0];
    assert_eq!(d["status"], "failed");
    assert!(d["last_error"].as_str().unwrap().contains("may not reach"), "{d}");
}

async fn an_endpoint_failing_too_long_is_disabled_and_audited(b: Backend) {
    let app = spawn_dev(b, |c| {
        c.webhook_retry_schedule = vec![Duration::ZERO; 3];
        c.webhook_disable_after = Duration::ZERO;
    })
    .await;
    let rx = Receiver::start(vec![500; 10]).await;
    let t = access(&app.signup("flaky@example.com").await);
    let (id, _) = create(&app, &t, &rx.url(), json!(["session.created"])).await;
    app.signin("flaky@example.com").await;
    deliver(&app).await;
    let r = app.rest("GET", &format!("/webhooks/{id}"), Some(&t), None).await;
    assert_eq!(r.body["data"]["active"], false, "{}", r.body);
    assert_eq!(r.body["data"]["disabled_reason"], "failing");
    assert_eq!(rx.got().len(), 2, "disabled at the second failure (limit 0 s)");
    let audit = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("webhook.updated"))
        .filter(audit_log::Column::TargetId.eq(id.as_str()))
        .one(&app.services.state.db)
        .await
        .unwrap()
        .expect("the disabling is audited");
    assert_eq!(audit.metadata["reason"], "failing");
    // Re-enabling clears the failure record and delivery resumes.
    rx.state.lock().unwrap().script.clear();
    let r = app.rest("PUT", &format!("/webhooks/{id}"), Some(&t), Some(json!({"active": true}))).await;
    assert_eq!(r.body["data"]["active"], true);
    assert!(r.body["data"]["disabled_reason"].is_null());
    deliver(&app).await;
    let d = &deliveries(&app, &t, &id).await[0];
    assert_eq!(d["status"], "succeeded", "{d}");
}

crate::on_both_databases!(organization_endpoints_get_the_organizations_events);

async fn organization_endpoints_get_the_organizations_events(b: Backend) {
    let app = spawn_dev(b, |_| {}).await;
    let owner = access(&app.signup("org-hooks@example.com").await);
    let member = access(&app.signup("org-member@example.com").await);
    let outsider = access(&app.signup("org-outsider@example.com").await);
    let org = app.org(&owner, "Hooked Org").await;
    app.add_member(&owner, &org, "org-member@example.com", "member").await;
    let receiver = Receiver::start(vec![]).await;
    let body = json!({"organization_id": org, "url": receiver.url(), "events": ["organization.*", "organization.updated"]});
    // Only the organization's admins and owners manage its endpoints; outsiders cannot tell it exists.
    let r = app.rest("POST", "/webhooks", Some(&member), Some(body.clone())).await;
    assert_eq!((r.status, r.code()), (403, "INSUFFICIENT_PERMISSIONS"), "{}", r.body);
    let r = app.rest("POST", "/webhooks", Some(&outsider), Some(body.clone())).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let body = json!({"organization_id": org, "url": receiver.url(), "events": ["organization.updated"]});
    let r = app.rest("POST", "/webhooks", Some(&owner), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["data"]["webhook"]["id"].as_str().unwrap().to_owned();
    let secret = r.body["data"]["secret"].as_str().unwrap().to_owned();
    let listed = app.rest("GET", &format!("/webhooks?organization_id={org}"), Some(&owner), None).await;
    assert_eq!(listed.body["data"][0]["id"], id.as_str(), "{}", listed.body);
    let mine = app.rest("GET", "/webhooks", Some(&owner), None).await;
    assert_eq!(
        mine.body["pagination"]["total_count"], 0,
        "an organization's endpoint is not the creator's own"
    );
    assert_eq!(app.rest("GET", &format!("/webhooks/{id}"), Some(&outsider), None).await.status, 404);

    let r = app
        .rest(
            "PUT",
            &format!("/organizations/{org}"),
            Some(&owner),
            Some(json!({"description": "now hooked"})),
        )
        .await;
    assert_eq!(r.status, 200);
    deliver(&app).await;
    let got = receiver.got();
    assert_eq!(got.len(), 1, "exactly the organization's event");
    assert_eq!(header(&got[0].headers, "x-janua-event-type"), "organization.updated");
    assert!(verify(&secret, &got[0]));
}
