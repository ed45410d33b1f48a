//! Health, readiness, metrics, rate limits, bundled pages, OpenAPI and the checked-in schema.

use serde_json::json;

use crate::helpers::{Backend, TestApp, get_json};

crate::on_both_databases!(health_ready_metrics_and_detailed, rate_limit_headers_and_429);

async fn health_ready_metrics_and_detailed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let h = get_json(&app.client, &app.url("/health"), None).await;
    assert_eq!(h["status"], "ok");
    assert!(h["version"].is_string());
    let r = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    app.signup("m@example.com").await;
    let _ = app
        .rest(
            "POST",
            "/auth/signin",
            None,
            Some(json!({"email": "m@example.com", "password": "wrong password!"})),
        )
        .await;
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        "janua_http_requests_total",
        "janua_http_request_duration_seconds_bucket",
        "janua_signins_total{outcome=\"failure\"}",
        "janua_active_sessions",
        "route=\"/api/v1/auth/signup\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from /metrics");
    }
    let d = app.rest("GET", "/health/detailed", None, None).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body["data"]["dependencies"]["database"]["status"], "ok");
    assert!(d.body["data"]["dependencies"]["database"]["latency_ms"].is_number());
    assert!(d.body["data"]["event_backlog"].is_number());

    // Readiness fails when the database does not answer.
    app.services.state.db.clone().close().await.unwrap();
    let r = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    // …and requests that need it answer 503 SERVICE_UNAVAILABLE with a generic message.
    let r = app
        .rest(
            "POST",
            "/auth/signin",
            None,
            Some(json!({"email": "m@example.com", "password": "whatever it is"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (503, "SERVICE_UNAVAILABLE"), "{}", r.body);
    assert!(!r.body.to_string().contains("pool"), "no internals in the message");
}

async fn rate_limit_headers_and_429(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.rate_limit_per_minute = 5).await;
    for i in 0..5u32 {
        let r = app.rest("GET", "/auth/me", None, None).await;
        assert_eq!(r.header("x-ratelimit-limit"), "5");
        assert_eq!(r.header("x-ratelimit-remaining"), (4 - i).to_string());
        assert!(r.header("x-ratelimit-reset").parse::<u64>().is_ok());
    }
    let r = app.rest("GET", "/auth/me", None, None).await;
    assert_eq!((r.status, r.code()), (429, "RATE_LIMITED"));
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!((1..=12).contains(&retry), "{retry}");
    assert_eq!(r.body["error"]["details"]["limit"], 5);
    assert_eq!(r.body["error"]["details"]["window_seconds"], 60);
    assert_eq!(r.body["error"]["details"]["retry_after"], retry);
    // Health checks are not counted.
    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn graphiql_and_docs_are_served_from_the_binary() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/assets/graphiql.min.js") && !page.contains("https://"), "no CDN");
    let docs = app.client.get(app.url("/docs")).send().await.unwrap().text().await.unwrap();
    assert!(docs.contains("/assets/swagger-ui-bundle.js") && !docs.contains("https://"));
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    ] {
        let r = app.client.get(app.url(&format!("/assets/{asset}"))).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{asset}");
        assert!(r.bytes().await.unwrap().len() > 1000, "{asset}");
    }
    let spec = get_json(&app.client, &app.url("/openapi.json"), None).await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    assert!(spec["paths"]["/api/v1/auth/signup"]["post"]["requestBody"].is_object());
    let required = &spec["paths"]["/api/v1/auth/signup"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["required"];
    assert_eq!(required, &json!(["email", "password"]));
    // GET queries work; GET mutations do not.
    let r = get_json(&app.client, &app.url("/graphql?query=%7Bhealth%7Bstatus%7D%7D"), None).await;
    assert_eq!(r["data"]["health"]["status"], "ok");
    let r =
        app.client.get(app.url("/graphql?query=mutation%7Bsignout%7Bsuccess%7D%7D")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

#[tokio::test]
async fn graphql_depth_limit_is_enforced() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.graphql_max_depth = 3).await;
    let r = app.gql(None, "{ sessions { edges { node { device { type } } } } }", json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "VALIDATION_ERROR", "{r}");
}

#[tokio::test]
async fn checked_in_schema_is_up_to_date() {
    let (sdl, openapi) = janua::schema_files().await.unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    let stale = "is stale: run `cargo run -- schema` and commit schema/";
    // Compared as booleans: a failure names the stale file without printing the whole schema.
    let current = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
    assert!(current("schema.graphql") == sdl, "schema.graphql {stale}");
    assert!(current("openapi.json") == openapi, "openapi.json {stale}");
}
