//! Hostile input (issue 13, items 0 and 5): values nested thousands of levels deep are refused
//! before anything parses them, on every entry; extreme list and analytics parameters are a
//! 4xx naming the field, never a panic or a 500; and the server still answers afterwards.

use futures::SinkExt;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Backend, TestApp};
use crate::subscriptions::{Ws, closed_with, next};

crate::on_both_databases!(
    nested_values_are_refused_on_every_entry,
    list_and_analytics_bounds_are_validation_errors,
    extreme_list_parameters_never_fail_the_server
);

/// Depths sent: 100 is past the bound but within serde_json's own 128; a few hundred levels already overflowed a worker's stack before the bound;
/// 10,000 is what the review sent.
const DEPTHS: [usize; 4] = [100, 800, 1_600, 10_000];

fn lists(n: usize) -> String {
    format!("{}1{}", "[".repeat(n), "]".repeat(n))
}

fn objects(n: usize) -> String {
    format!("{}1{}", "{a: ".repeat(n), "}".repeat(n))
}

fn json_lists(n: usize) -> String {
    lists(n)
}

fn json_objects(n: usize) -> String {
    format!("{}1{}", "{\"a\": ".repeat(n), "}".repeat(n))
}

/// Levels a GET can carry: a URI has at most 64 KiB (the `http` crate's limit, on both sides), and
/// a level of nested JSON objects takes 17 bytes once URL-encoded.
const GET_MAX_DEPTH: usize = 3_000;

/// The longest prefix of `v` whose URL encoding (3 bytes for every byte, at worst) fits in a URI.
fn fit_url(v: &str) -> &str {
    let end = v.char_indices().map(|(i, c)| i + c.len_utf8()).take_while(|&e| e * 3 <= 60_000).last();
    &v[..end.unwrap_or(0)]
}

/// The server is alive: `/health` answers.
async fn still_answers(app: &TestApp) {
    let r = app.client.get(app.url("/health")).send().await.expect("the server still answers");
    assert_eq!(r.status(), 200);
}

/// A GraphQL request refused as a whole: 400, `BAD_REQUEST`.
async fn assert_bad_request(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), 400, "{what}");
    let body: Value = r.json().await.expect("a JSON body");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{what}: {body}");
}

/// A socket speaking graphql-transport-ws after a token-less `connection_init`.
async fn anonymous_socket(app: &TestApp, protocol: &str) -> Ws {
    let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connects");
    ws.send(Message::text(json!({"type": "connection_init"}).to_string())).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "connection_ack");
    ws
}

async fn nested_values_are_refused_on_every_entry(b: Backend) {
    let app = TestApp::spawn(b).await;
    let post = |body: String| {
        app.client.post(app.url("/graphql")).header("content-type", "application/json").body(body).send()
    };
    for n in DEPTHS {
        // In the document: nested lists and nested objects, over POST and GET.
        for (kind, value) in [("lists", lists(n)), ("objects", objects(n))] {
            let q = format!("{{ users(first: {value}) {{ totalCount }} }}");
            let what = format!("POST, {n} {kind} in the document");
            assert_bad_request(post(json!({ "query": q }).to_string()).await.unwrap(), &what).await;
            still_answers(&app).await;
            let g = n.min(GET_MAX_DEPTH);
            let value = if kind == "lists" { lists(g) } else { objects(g) };
            let q = format!("{{ users(first: {value}) {{ totalCount }} }}");
            let r = app.client.get(app.url("/graphql")).query(&[("query", &q)]).send().await.unwrap();
            assert_bad_request(r, &format!("GET, {g} {kind} in the document")).await;
            still_answers(&app).await;
        }
        // In the variables: nested JSON arrays and objects, over POST and GET.
        let q = "query($v: Int) { users(first: $v) { totalCount } }";
        for (kind, value) in [("arrays", json_lists(n)), ("objects", json_objects(n))] {
            let body = format!("{{\"query\": {}, \"variables\": {{\"v\": {value}}}}}", json!(q));
            assert_bad_request(post(body).await.unwrap(), &format!("POST, {n} {kind} in variables")).await;
            still_answers(&app).await;
            let g = n.min(GET_MAX_DEPTH);
            let value = if kind == "arrays" { json_lists(g) } else { json_objects(g) };
            let r = app
                .client
                .get(app.url("/graphql"))
                .query(&[("query", q), ("variables", &format!("{{\"v\": {value}}}"))])
                .send()
                .await
                .unwrap();
            assert_bad_request(r, &format!("GET, {g} {kind} in variables")).await;
            still_answers(&app).await;
        }
        // A REST body (it becomes GraphQL variables).
        for (kind, value) in [("arrays", json_lists(n)), ("objects", json_objects(n))] {
            let body = format!("{{\"email\": \"deep@example.com\", \"password\": \"x\", \"name\": {value}}}");
            let r = app
                .client
                .post(app.url("/api/v1/auth/signup"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "REST, {n} {kind}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "BAD_REQUEST", "{body}");
            assert_eq!(body["error"]["details"]["max_nesting"], 64, "{body}");
            still_answers(&app).await;
        }
        // Over the WebSocket, signed out: in the document, and in the variables. Both protocols
        // close the connection (the legacy one after a `connection_error`).
        let doc = format!("{{ users(first: {}) {{ totalCount }} }}", lists(n));
        let payloads = [
            json!({"query": doc}).to_string(),
            format!("{{\"query\": {}, \"variables\": {{\"v\": {}}}}}", json!(q), json_objects(n)),
        ];
        for payload in &payloads {
            let mut ws = anonymous_socket(&app, "graphql-transport-ws").await;
            let msg = format!("{{\"id\": \"1\", \"type\": \"subscribe\", \"payload\": {payload}}}");
            ws.send(Message::text(msg)).await.unwrap();
            assert_eq!(closed_with(&mut ws).await.0, 4400, "WebSocket, {n} levels");
            still_answers(&app).await;
            let mut legacy = anonymous_socket(&app, "graphql-ws").await;
            let msg = format!("{{\"id\": \"1\", \"type\": \"start\", \"payload\": {payload}}}");
            legacy.send(Message::text(msg)).await.unwrap();
            assert_eq!(next(&mut legacy).await["type"], "connection_error", "legacy WebSocket, {n} levels");
            still_answers(&app).await;
        }
    }

    // Shallow values still reach the schema (an argument of the wrong type is its usual error).
    let r = post(json!({"query": format!("{{ users(first: {}) {{ totalCount }} }}", lists(10))}).to_string())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_ne!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{body}");
    let mut ws = anonymous_socket(&app, "graphql-transport-ws").await;
    let msg = json!({"id": "h", "type": "subscribe", "payload": {"query": "{ health { status } }"}});
    ws.send(Message::text(msg.to_string())).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "next");
}

/// A query string's pairs.
type Query<'a> = Vec<(&'a str, String)>;

/// The documented bounds, each a 422 naming its field.
async fn list_and_analytics_bounds_are_validation_errors(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("bounds-admin@example.com").await;
    let get = |path: &str, query: Vec<(&str, String)>| {
        let req = app.client.get(app.url(&format!("/api/v1{path}"))).bearer_auth(&admin).query(&query);
        async move { crate::helpers::Resp::from(req.send().await.expect("request")).await }
    };
    let long = "%".repeat(20_000); // 25,000 do not fit in a URI once encoded: see below
    let cases: Vec<(&str, Query, &str)> = vec![
        ("/admin/analytics", vec![("to", "-262143-01-01".into())], "to"),
        ("/admin/analytics", vec![("from", "+262142-12-01".into())], "from"),
        ("/admin/analytics", vec![("to", "10000-01-01".into())], "to"),
        ("/admin/analytics", vec![("from", "1969-12-31".into())], "from"),
        ("/admin/audit-logs", vec![("from", "+262142-12-01".into())], "from"),
        ("/admin/audit-logs", vec![("to", "-262143-01-01T00:00:00Z".into())], "to"),
        ("/admin/audit-logs", vec![("action", format!("{long}.*"))], "action"),
        ("/admin/audit-logs", vec![("target_id", "x".repeat(201))], "target_id"),
        ("/users", vec![("search", "a".repeat(50_000))], "search"),
        ("/users", vec![("search", long.clone())], "search"),
        ("/organizations", vec![("search", "_".repeat(25_000))], "search"),
        ("/admin/users", vec![("search", "\\".repeat(20_000))], "search"),
        ("/admin/organizations", vec![("search", "é".repeat(201))], "search"),
        ("/users", vec![("cursor", format!("n.{}", "A".repeat(2_000)))], "cursor"),
    ];
    for (path, query, field) in cases {
        let r = get(path, query).await;
        assert_eq!((r.status, r.code()), (422, "VALIDATION_ERROR"), "{path} {field}: {}", r.body);
        assert!(r.body["error"]["details"]["fields"][field].is_string(), "{path}: {}", r.body);
    }
    // At the bounds: accepted.
    for (path, query) in [
        ("/admin/analytics", vec![("from", "9999-01-01".to_owned()), ("to", "9999-12-31".to_owned())]),
        ("/admin/analytics", vec![("from", "1970-01-01".to_owned()), ("to", "1970-01-05".to_owned())]),
        ("/admin/audit-logs", vec![("action", format!("{}.*", "%".repeat(198)))]),
        ("/users", vec![("search", "%_\\".repeat(66))]),
    ] {
        let r = get(path, query).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // An audit prefix is literal: `_` matches no other character.
    let r = get("/admin/audit-logs", vec![("action", "use_.*".to_owned())]).await;
    assert_eq!(r.body["pagination"]["total_count"], 0, "{}", r.body);
    // 25,000 `%`, `_` or `\` (too long for a URI once encoded) through GraphQL.
    for flood in ["%", "_", "\\"] {
        for field in ["users", "organizations", "adminUsers", "adminOrganizations"] {
            let q = format!("query($s: String) {{ {field}(search: $s) {{ totalCount }} }}");
            let body = app.gql(Some(&admin), &q, json!({"s": flood.repeat(25_000)})).await;
            assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION_ERROR", "{field}");
        }
    }
    // GraphQL says the same, with the field named.
    let body = app.gql(Some(&admin), "{ analytics(to: \"-262143-01-01\") { usersTotal } }", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION_ERROR", "{body}");
    still_answers(&app).await;
}

/// One list or analytics parameter of a REST route.
const REST_PARAMS: &[(&str, &[&str])] = &[
    ("/users", &["limit", "cursor", "sort", "status", "search"]),
    ("/organizations", &["limit", "cursor", "sort", "search"]),
    ("/sessions", &["limit", "cursor"]),
    ("/webhooks", &["limit", "cursor", "organization_id"]),
    ("/admin/users", &["limit", "cursor", "sort", "status", "search"]),
    ("/admin/organizations", &["limit", "cursor", "sort", "search"]),
    ("/admin/analytics", &["from", "to"]),
    (
        "/admin/audit-logs",
        &["limit", "cursor", "action", "actor_id", "organization_id", "target_id", "from", "to"],
    ),
    ("/organizations/{org}/members", &["limit", "cursor"]),
    ("/invitations", &["limit", "cursor", "organization_id", "status"]),
];

/// The GraphQL list and analytics fields, each with its arguments (all but `first`/`last` strings).
const GRAPHQL_ARGS: &[(&str, &[&str], &str)] = &[
    ("users", &["first", "last", "after", "before", "orderBy", "status", "search"], "totalCount"),
    ("organizations", &["first", "last", "after", "before", "orderBy", "search"], "totalCount"),
    ("sessions", &["first", "last", "after", "before"], "totalCount"),
    ("adminUsers", &["first", "last", "after", "before", "orderBy", "status", "search"], "totalCount"),
    ("adminOrganizations", &["first", "last", "after", "before", "orderBy", "search"], "totalCount"),
    ("analytics", &["from", "to"], "usersTotal"),
    ("invitations", &["first", "last", "after", "before", "status"], "totalCount"),
    ("auditLogs", &["first", "last", "after", "before", "action", "targetId", "from", "to"], "totalCount"),
];

/// Extreme values: huge and negative numbers, far dates, long strings, `%`/`_`/`\` floods, unicode.
fn extreme() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => Just("999999999999999999999999999999".to_owned()),
        3 => (-300_000i32..300_000, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| format!("{y:+}-{m:02}-{d:02}")),
        1 => (0i32..100_000, 0u32..14, 0u32..33).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        1 => (0i32..100_000).prop_map(|y| format!("{y:04}-12-31T23:59:59-23:59")),
        3 => (prop_oneof![Just("%"), Just("_"), Just("\\"), Just("a"), Just("é")], 150usize..30_000)
            .prop_map(|(s, n)| s.repeat(n)),
        1 => (prop_oneof![Just("n."), Just("p.")], "[A-Za-z0-9_-]{0,64}", 1usize..200)
            .prop_map(|(p, s, n)| format!("{p}{}", s.repeat(n))),
        1 => "\\PC{0,40}",
        1 => Just(String::new()),
    ]
}

/// Every list and analytics parameter, fed extreme values as an administrator (so each reaches
/// its check), over REST and GraphQL: never a 5xx, never `INTERNAL_ERROR`, the server still up.
async fn extreme_list_parameters_never_fail_the_server(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("prop-admin@example.com").await;
    let org = app.org(&admin, "Prop Org").await;
    let handle = tokio::runtime::Handle::current();
    let mut runner =
        TestRunner::new(PropConfig { cases: 64, failure_persistence: None, ..PropConfig::default() });
    // Each case sends its value to every parameter of one route and of one GraphQL field.
    let strategy = (0..REST_PARAMS.len(), 0..GRAPHQL_ARGS.len(), extreme());
    let result = runner.run(&strategy, |(route, field, value)| {
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let path = REST_PARAMS[route].0.replace("{org}", &org);
                for param in REST_PARAMS[route].1 {
                    let resp = app
                        .client
                        .get(app.url(&format!("/api/v1{path}")))
                        .bearer_auth(&admin)
                        .query(&[(*param, fit_url(&value))])
                        .send()
                        .await
                        .map_err(|e| TestCaseError::fail(format!("{path}?{param}: {}", e.without_url())))?;
                    let status = resp.status().as_u16();
                    prop_assert!(status < 500, "{path}?{param}={:.80}: {status}", value);
                }
                let (field, args, selection) = GRAPHQL_ARGS[field];
                for &arg in args {
                    let (ty, v) = match arg {
                        "first" | "last" => ("Int", value.parse::<i64>().map_or(json!(value), |n| json!(n))),
                        _ => ("String", json!(value)),
                    };
                    let q = format!("query($v: {ty}) {{ {field}({arg}: $v) {{ {selection} }} }}");
                    let resp = app
                        .client
                        .post(app.url("/graphql"))
                        .bearer_auth(&admin)
                        .json(&json!({"query": q, "variables": {"v": v}}))
                        .send()
                        .await
                        .map_err(|e| TestCaseError::fail(format!("{field}({arg}): {}", e.without_url())))?;
                    let status = resp.status().as_u16();
                    let body: Value = resp.json().await.unwrap_or_default();
                    prop_assert!(status < 500, "{field}({arg}: {:.80}): {status}", value);
                    let codes: Vec<&Value> = body["errors"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| &e["extensions"]["code"])
                        .collect();
                    prop_assert!(
                        !codes.contains(&&json!("INTERNAL_ERROR")),
                        "{field}({arg}: {:.80}): {:.300}",
                        value,
                        body.to_string()
                    );
                }
                let health = app.client.get(app.url("/health")).send().await;
                prop_assert!(health.is_ok_and(|h| h.status() == 200), "the server stopped answering");
                Ok(())
            })
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
