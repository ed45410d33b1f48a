//! Webhook tables: every entity round-trips a row on each database, and signing secrets are
//! stored sealed, never in clear.

use chrono::{SubsecRound, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::json;
use uuid::Uuid;

use entities::{webhook_attempt, webhook_delivery, webhook_endpoint};

use crate::helpers::{Backend, TestApp, access};

crate::on_both_databases!(webhook_entities_round_trip_and_secrets_are_sealed);

async fn webhook_entities_round_trip_and_secrets_are_sealed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let db = &app.services.state.db;
    let now = Utc::now().trunc_subsecs(6); // PostgreSQL keeps microseconds
    let e = webhook_endpoint::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(None),
        organization_id: Set(Some(Uuid::now_v7())),
        url: Set("https://hooks.example.com/x".into()),
        description: Set(Some("round trip".into())),
        events: Set(json!(["*"])),
        secret_sealed: Set(vec![1, 2, 3]),
        active: Set(false),
        disabled_reason: Set(Some("failing".into())),
        failing_since: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(webhook_endpoint::Entity::find_by_id(e.id).one(db).await.unwrap(), Some(e.clone()));
    let d = webhook_delivery::ActiveModel {
        id: Set(Uuid::now_v7()),
        endpoint_id: Set(e.id),
        event_seq: Set(i64::from(i32::MAX) + 7),
        event_id: Set(Uuid::now_v7()),
        event_type: Set("user.created".into()),
        payload: Set(json!({"id": "x", "data": {"k": [1]}})),
        status: Set("pending".into()),
        attempts: Set(2),
        next_attempt_at: Set(Some(now)),
        locked_until: Set(None),
        last_attempt_at: Set(Some(now)),
        last_status_code: Set(Some(503)),
        last_error: Set(Some("HTTP 503".into())),
        last_duration_ms: Set(Some(12)),
        delivered_at: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(webhook_delivery::Entity::find_by_id(d.id).one(db).await.unwrap(), Some(d.clone()));
    let a = webhook_attempt::ActiveModel {
        id: Set(Uuid::now_v7()),
        delivery_id: Set(d.id),
        number: Set(1),
        started_at: Set(now),
        duration_ms: Set(12),
        status_code: Set(None),
        error: Set(Some("timed out".into())),
        outcome: Set("retrying".into()),
        next_attempt_at: Set(Some(now)),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(webhook_attempt::Entity::find_by_id(a.id).one(db).await.unwrap(), Some(a.clone()));
    // Deleting an endpoint takes its deliveries and their attempts with it.
    webhook_endpoint::Entity::delete_by_id(e.id).exec(db).await.unwrap();
    assert!(webhook_delivery::Entity::find_by_id(d.id).one(db).await.unwrap().is_none());
    assert!(webhook_attempt::Entity::find_by_id(a.id).one(db).await.unwrap().is_none());

    // Secrets: sealed at rest, opened only with the master key.
    let t = access(&app.signup("sealed@example.com").await);
    let r = app
        .rest(
            "POST",
            "/webhooks",
            Some(&t),
            Some(json!({"url": "https://hooks.example.com/y", "events": ["user.updated"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["data"]["secret"].as_str().unwrap();
    let id = Uuid::parse_str(r.body["data"]["webhook"]["id"].as_str().unwrap()).unwrap();
    let row = webhook_endpoint::Entity::find_by_id(id).one(db).await.unwrap().unwrap();
    assert!(!row.secret_sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let opened = app.services.state.master_key.open(&row.secret_sealed).unwrap();
    assert_eq!(opened, secret.as_bytes());
    // A list where a list is due: REST says which field is wrong.
    let r = app
        .rest(
            "POST",
            "/webhooks",
            Some(&t),
            Some(json!({"url": "https://hooks.example.com/y", "events": "user.updated"})),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(!r.body["error"]["details"]["fields"]["events"].is_null(), "{}", r.body);
}
