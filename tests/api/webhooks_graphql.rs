//! Webhooks over GraphQL: create (secret once), list, test, rotate, redeliver, update, delete.

use serde_json::json;

use crate::helpers::{Backend, access};
use crate::webhooks::{Received, Receiver, deliver, header, spawn_dev, verify};

crate::on_both_databases!(graphql_endpoints_test_rotate_and_redeliver);

const FIELDS: &str = "id url description events active disabledReason";

async fn graphql_endpoints_test_rotate_and_redeliver(b: Backend) {
    let app = spawn_dev(b, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let t = access(&app.signup("gql-hooks@example.com").await);
    let v = app
        .gql(
            Some(&t),
            &format!("mutation($i: CreateWebhookInput!) {{ createWebhook(input: $i) {{ secret webhook {{ {FIELDS} }} }} }}"),
            json!({"i": {"url": rx.url(), "events": ["*"]}}),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let id = v["data"]["createWebhook"]["webhook"]["id"].as_str().unwrap().to_owned();
    let secret = v["data"]["createWebhook"]["secret"].as_str().unwrap().to_owned();

    let v = app
        .gql(
            Some(&t),
            &format!("{{ webhooks(first: 5) {{ totalCount edges {{ node {{ {FIELDS} }} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(v["data"]["webhooks"]["totalCount"], 1);
    assert_eq!(v["data"]["webhooks"]["edges"][0]["node"]["events"], json!(["*"]));
    // There is no way to read a secret back.
    let v = app
        .gql(Some(&t), "{ webhook(id: \"00000000-0000-0000-0000-000000000000\") { secret } }", json!({}))
        .await;
    assert!(!v["errors"].is_null());

    let v = app
        .gql(
            Some(&t),
            "mutation($id: ID!) { testWebhook(id: $id) { success statusCode durationMs error delivery { id eventType status attempts } } }",
            json!({"id": id}),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let test = &v["data"]["testWebhook"];
    assert_eq!(test["success"], true);
    assert_eq!(test["statusCode"], 200);
    assert_eq!(test["delivery"]["status"], "succeeded");
    assert!(verify(&secret, &rx.got()[0]));

    // Rotation: the new secret signs from now on, the old one no longer does.
    let v = app
        .gql(
            Some(&t),
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { id } } }",
            json!({"id": id}),
        )
        .await;
    let new_secret = v["data"]["rotateWebhookSecret"]["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let delivery_id = test["delivery"]["id"].as_str().unwrap().to_owned();
    let v = app
        .gql(
            Some(&t),
            "mutation($w: ID!, $d: ID!) { redeliverWebhookDelivery(webhookId: $w, deliveryId: $d) { id status attempts } }",
            json!({"w": id, "d": delivery_id}),
        )
        .await;
    assert_eq!(v["data"]["redeliverWebhookDelivery"]["status"], "pending", "{v}");
    deliver(&app).await;
    let redelivered: Vec<Received> =
        rx.got().into_iter().filter(|r| header(&r.headers, "x-janua-event-type") == "webhook.test").collect();
    assert_eq!(redelivered.len(), 2);
    assert!(verify(&new_secret, &redelivered[1]) && !verify(&secret, &redelivered[1]));

    let v = app
        .gql(
            Some(&t),
            "query($id: ID!) { webhookDeliveries(webhookId: $id, first: 50) { totalCount edges { node { id eventType status attempts attemptLog { number statusCode outcome } } } } }",
            json!({"id": id}),
        )
        .await;
    let edges = v["data"]["webhookDeliveries"]["edges"].as_array().unwrap().clone();
    let test_delivery = edges.iter().find(|e| e["node"]["id"] == delivery_id.as_str()).unwrap();
    assert_eq!(test_delivery["node"]["attempts"], 2);
    assert_eq!(test_delivery["node"]["attemptLog"].as_array().unwrap().len(), 2);

    let v = app
        .gql(
            Some(&t),
            &format!("mutation($id: ID!, $i: UpdateWebhookInput!) {{ updateWebhook(id: $id, input: $i) {{ {FIELDS} }} }}"),
            json!({"id": id, "i": {"active": false, "description": "paused"}}),
        )
        .await;
    assert_eq!(v["data"]["updateWebhook"]["active"], false, "{v}");
    assert_eq!(v["data"]["updateWebhook"]["description"], "paused");

    let v = app
        .gql(Some(&t), "mutation($id: ID!) { deleteWebhook(id: $id) { success } }", json!({"id": id}))
        .await;
    assert_eq!(v["data"]["deleteWebhook"]["success"], true);
    let v = app
        .gql(Some(&t), "mutation($id: ID!) { deleteWebhook(id: $id) { success } }", json!({"id": id}))
        .await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "NOT_FOUND");
    // Unauthenticated callers get nothing.
    let v = app.gql(None, "{ webhooks { totalCount } }", json!({})).await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "AUTHENTICATION_REQUIRED");
}
