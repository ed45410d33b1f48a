//! The REST table's contract (issue 14 defects 1, 2, 3, 7 and item 7): every route called with
//! only its required fields, every answer checked against `openapi.json`, list parameters
//! validated, authentication before parameters, the detailed health through the table.

use std::collections::HashMap;

use janua::rest::routes::{Body, RestRoute, routes};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, PASSWORD, Resp, TestApp, access, refresh};

crate::on_both_databases!(every_route_with_only_its_required_fields_matches_the_document);
crate::on_both_databases!(lists_validate_sort_and_filters);
crate::on_both_databases!(authentication_comes_before_parameters_and_bodies);
crate::on_both_databases!(admin_counts_and_adoption);

// ---------------------------------------------------------------------------------------------
// A validator for the subset of JSON Schema the document uses: `$ref` (local), `const`, `type`
// (one or a list), `enum`, `properties`, `required`, `items`. Formats are not checked.

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => schema,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => panic!("type {other} is not in the subset"),
    }
}

fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(c) = schema.get("const")
        && c != v
    {
        errors.push(format!("{at}: {v} is not {c}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, v)) {
        errors.push(format!("{at}: {v} is not of type {types:?}"));
        return;
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(v)
    {
        errors.push(format!("{at}: {v} is not one of {values:?}"));
    }
    if let Value::Object(m) = v {
        for r in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !m.contains_key(r) {
                errors.push(format!("{at}: `{r}` is missing"));
            }
        }
        if let Some(props) = schema["properties"].as_object() {
            for (k, sub) in props {
                if let Some(x) = m.get(k) {
                    validate(doc, sub, x, &format!("{at}.{k}"), errors);
                }
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (v, schema.get("items")) {
        for (i, x) in items.iter().enumerate() {
            validate(doc, item, x, &format!("{at}[{i}]"), errors);
        }
    }
}

/// Checks a response against the document's operation for `route`: a documented status (or
/// `default`), and the body against that response's schema.
fn check_against_document(doc: &Value, route: &RestRoute, r: &Resp) {
    let op = &doc["paths"][format!("/api/v1{}", route.path)][route.method.as_str().to_lowercase()];
    assert!(op.is_object(), "{} {} is not in the document", route.method, route.path);
    let responses = &op["responses"];
    let documented = &responses[r.status.to_string()];
    let response = if documented.is_object() { documented } else { &responses["default"] };
    let what = format!("{} {} → {}", route.method, route.path, r.status);
    if r.status >= 400 {
        assert!(!documented.is_object() || r.status == 503, "{what}: an error answered on a success status");
    }
    match response["content"]["application/json"].get("schema") {
        Some(schema) => {
            let mut errors = Vec::new();
            validate(doc, schema, &r.body, "$", &mut errors);
            assert!(
                errors.is_empty(),
                "{what} does not match the document:\n{}\n{}",
                errors.join("\n"),
                r.body
            );
        }
        None => assert!(r.body.is_null(), "{what}: the document promises no body, got {}", r.body),
    }
}

async fn document(app: &TestApp) -> Value {
    app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap()
}

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
    app.rest(method, path, token, body).await
}

// ---------------------------------------------------------------------------------------------

/// Resources the routes act on, made by an administrator.
struct World {
    admin_email: String,
    admin: String,
    admin_refresh: String,
    org: String,
    member: String,
    victim: String,
    ids: HashMap<&'static str, String>,
}

async fn world(app: &TestApp) -> World {
    let admin = app.admin("contract-admin@example.com").await;
    let org = app.org(&admin, "Contract Org").await;
    let member = app.signup("contract-member@example.com").await["user"]["id"].as_str().unwrap().to_owned();
    app.add_member(&admin, &org, "contract-member@example.com", "member").await;
    let victim = app.signup("contract-victim@example.com").await["user"]["id"].as_str().unwrap().to_owned();
    app.signup("contract-joiner@example.com").await;
    let signed = app.signin("contract-admin@example.com").await;
    World {
        admin_email: "contract-admin@example.com".into(),
        admin,
        admin_refresh: refresh(&signed),
        org,
        member,
        victim,
        ids: HashMap::new(),
    }
}

/// A value for a required field of `route` (`n` keeps emails and names unique).
fn required_value(w: &World, route: &RestRoute, field: &str, n: usize) -> Value {
    match (route.operation, field) {
        ("Signin", "email") => json!(w.admin_email),
        (_, "email") => json!(format!("contract-{n}@example.com")),
        (_, "password") => json!(PASSWORD),
        (_, "refresh_token") => json!(w.admin_refresh),
        (_, "name") => json!(format!("Contract {n}")),
        (_, "scopes") => json!(["users:read"]),
        // Refused at once: nothing listens on the discard port.
        (_, "url") => json!("http://127.0.0.1:9/janua"),
        (_, "events") => json!(["user.created"]),
        (_, "role") => json!("admin"),
        (_, "code") => json!("000000"),
        (_, "ceremony_id") => json!("not-a-ceremony"),
        (_, "credential") => json!({}),
        (_, "organization_id") => json!(w.org),
        (_, "protocol") => json!("saml"),
        (_, "saml_response") => json!("PHNhbWxwOlJlc3BvbnNlLz4="),
        (_, "state") => json!("not-a-state"),
        // A mailed token that is no token: refused (401) before anything changes.
        (_, "token") => json!("not-a-token"),
        (_, "current_password") => json!(PASSWORD),
        // Too short for the policy: the administrator keeps the password the loop signs in with.
        (_, "new_password") => json!("short"),
        (op, f) => panic!("no value for required field {f} of {op}: add one"),
    }
}

/// Fields that are optional one by one but of which the route needs one (`{email | user_id}`,
/// `{password | code}`): the minimal body names the first.
fn one_of(route: &RestRoute) -> Vec<(&'static str, Value)> {
    match route.operation {
        "AddMember" => vec![("email", json!("contract-joiner@example.com"))],
        "DisableMfa" => vec![("password", json!(PASSWORD))],
        "StartSso" | "StartOidcSso" => vec![("email", json!("someone@unclaimed.example.com"))],
        // A SAML provider needs the IdP's entity id, SSO URL and certificate (or its metadata).
        "CreateSsoProvider" => vec![
            ("saml_entity_id", json!("https://contract-idp.example.com/saml")),
            ("saml_sso_url", json!("https://contract-idp.example.com/sso")),
            ("saml_certificate", json!(include_str!("../fixtures/contract-idp.pem"))),
        ],
        _ => vec![],
    }
}

fn path_of(w: &World, route: &RestRoute, session: &str) -> String {
    let mut path = route.path.to_owned();
    for p in route.path_params {
        let value = match (route.path.split('/').nth(1).unwrap_or_default(), *p) {
            ("sessions", _) => session.to_owned(),
            ("users", _) => w.victim.clone(),
            ("organizations", "id") => w.org.clone(),
            ("organizations", "user_id") => w.member.clone(),
            ("api-keys", _) => w.ids.get("api_key").cloned().unwrap_or_default(),
            ("webhooks", "id") => w.ids.get("webhook").cloned().unwrap_or_default(),
            ("invitations", _) => w.ids.get("invitation").cloned().unwrap_or_default(),
            ("sso", "id") => w.ids.get("sso_provider").cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let value = if value.is_empty() { Uuid::now_v7().to_string() } else { value };
        path = path.replace(&format!("{{{p}}}"), &value);
    }
    path
}

async fn every_route_with_only_its_required_fields_matches_the_document(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.webhook_allow_loopback = true).await;
    let doc = document(&app).await;
    let api = &app.services.rest;
    let mut w = world(&app).await;
    for (n, p) in api.routes.iter().enumerate() {
        let route = &p.route;
        // A fresh session of the administrator: signing out or ending sessions spends only it.
        let signed = app.signin(&w.admin_email).await;
        let token = access(&signed);
        let session = signed["tokens"]["session_id"].as_str().unwrap().to_owned();
        if route.operation == "Refresh" {
            w.admin_refresh = refresh(&signed);
        }
        let mut body = serde_json::Map::new();
        for f in p.input.iter().filter(|f| f.required) {
            body.insert(f.rest_name.clone(), required_value(&w, route, &f.rest_name, n));
        }
        for (k, v) in one_of(route) {
            body.insert(k.into(), v);
        }
        let sent: Vec<String> = body.keys().cloned().collect();
        let body = match route.body {
            Body::None => None,
            _ => Some(Value::Object(body)),
        };
        let path = path_of(&w, route, &session);
        let r = call(&app, route.method.as_str(), &path, Some(&token), body).await;
        let what = format!("{} {path} ({})", route.method, route.operation);
        assert!(r.status < 500, "{what} answered {}: {}", r.status, r.body);
        if r.status == 422 {
            let fields = r.body["error"]["details"]["fields"].as_object().cloned().unwrap_or_default();
            for f in fields.keys() {
                assert!(
                    sent.contains(f),
                    "{what}: 422 for `{f}`, which is optional and was left out: {}",
                    r.body
                );
            }
        }
        check_against_document(&doc, route, &r);
        // Ids the later routes act on.
        match route.operation {
            "CreateOrganizationApiKey" => {
                w.ids.insert("api_key", r.body["data"]["api_key"]["id"].as_str().unwrap_or_default().into());
            }
            "CreateSsoProvider" => {
                w.ids.insert("sso_provider", r.body["data"]["id"].as_str().unwrap_or_default().into());
            }
            "CreateInvitation" => {
                let id = r.body["data"]["invitation"]["id"].as_str().unwrap_or_default();
                w.ids.insert("invitation", id.into());
            }
            "CreateWebhook" => {
                w.ids.insert("webhook", r.body["data"]["webhook"]["id"].as_str().unwrap_or_default().into());
            }
            _ => {}
        }
        if matches!(
            route.operation,
            "TerminateAllSessions" | "Me" | "Sessions" | "AdminUsers" | "AdminAnalytics"
        ) {
            assert_eq!(r.status, route.status, "{what}: {}", r.body);
        }
    }

    // Error answers match the document too: 401, 404, 422. (Ending all sessions above ended the
    // first token of the administrator: sign in again.)
    w.admin = access(&app.signin(&w.admin_email).await);
    for p in &api.routes {
        let route = &p.route;
        let path = path_of(&w, route, &Uuid::now_v7().to_string());
        if route.auth {
            let r = call(&app, route.method.as_str(), &path, None, None).await;
            assert_eq!(r.status, 401, "{} {path} anonymous: {}", route.method, r.body);
            check_against_document(&doc, route, &r);
        }
        if route.paginated {
            let r = call(&app, "GET", &format!("{path}?limit=0"), Some(&w.admin), None).await;
            assert_eq!((r.status, r.code()), (422, "VALIDATION_ERROR"), "{path}?limit=0: {}", r.body);
            check_against_document(&doc, route, &r);
        }
    }
    let missing = format!("/users/{}", Uuid::now_v7());
    let r = call(&app, "GET", &missing, Some(&w.admin), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let user = api.routes.iter().find(|p| p.route.operation == "User").unwrap();
    check_against_document(&doc, &user.route, &r);
}

async fn lists_validate_sort_and_filters(b: Backend) {
    let app = TestApp::spawn(b).await;
    let w = world(&app).await;
    for route in routes().iter().filter(|r| r.paginated) {
        let path = path_of(&w, route, "");
        let bad = |q: &str| format!("{path}?{q}");
        let r = call(&app, "GET", &bad("sort=bogus"), Some(&w.admin), None).await;
        assert_eq!((r.status, r.code()), (422, "VALIDATION_ERROR"), "{path}?sort=bogus: {}", r.body);
        assert!(r.body["error"]["details"]["fields"]["sort"].is_string(), "{path}: {}", r.body);
        for f in route.sorts {
            for dir in ["", ":asc", ":desc"] {
                let r = call(&app, "GET", &bad(&format!("sort={f}{dir}")), Some(&w.admin), None).await;
                assert_eq!(r.status, 200, "{path}?sort={f}{dir}: {}", r.body);
            }
        }
        for (param, value) in [
            ("status", "bogus"),
            ("search", &*"x".repeat(201)),
            ("action", &*"x".repeat(201)),
            ("target_id", &*"x".repeat(201)),
            ("actor_id", "not-a-uuid"),
            ("organization_id", "not-a-uuid"),
            ("from", "1969-12-31"),
            ("to", "not-a-date"),
        ] {
            let r = call(&app, "GET", &bad(&format!("{param}={value}")), Some(&w.admin), None).await;
            assert_eq!((r.status, r.code()), (422, "VALIDATION_ERROR"), "{path}?{param}=…: {}", r.body);
            assert!(r.body["error"]["details"]["fields"][param].is_string(), "{path}?{param}: {}", r.body);
        }
    }
    // Sessions sort by creation and by last activity, both ways.
    let token = access(&app.signin("contract-member@example.com").await);
    app.signin("contract-member@example.com").await;
    let ids = |r: &Resp| -> Vec<String> {
        r.body["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
    };
    let newest = ids(&call(&app, "GET", "/sessions?sort=created_at:desc", Some(&token), None).await);
    let mut oldest = ids(&call(&app, "GET", "/sessions?sort=created_at:asc", Some(&token), None).await);
    oldest.reverse();
    assert_eq!(newest.len(), 3);
    assert_eq!(newest, oldest);
    let page = call(&app, "GET", "/sessions?sort=last_active_at&limit=2", Some(&token), None).await;
    assert_eq!(page.body["pagination"]["has_next"], true, "{}", page.body);
    let next = page.body["pagination"]["next_cursor"].as_str().unwrap();
    let rest = call(
        &app,
        "GET",
        &format!("/sessions?sort=last_active_at&limit=2&cursor={next}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(rest.body["data"].as_array().unwrap().len(), 1, "{}", rest.body);
    assert!(rest.body["pagination"]["next_cursor"].is_null());
}

async fn authentication_comes_before_parameters_and_bodies(b: Backend) {
    let app = TestApp::spawn(b).await;
    // Anonymous with a bad parameter: 401, not 422.
    for path in ["/sessions?sort=bogus", "/users?limit=1000", "/admin/analytics?from=1900-01-01"] {
        let r = call(&app, "GET", path, None, None).await;
        assert_eq!((r.status, r.code()), (401, "AUTHENTICATION_REQUIRED"), "{path}: {}", r.body);
    }
    let user = app.signup("contract-body@example.com").await;
    let token = access(&user);
    let id = user["user"]["id"].as_str().unwrap();
    // A required body that is absent is a 422 naming `body`; an empty object is a valid update.
    let r = call(&app, "PUT", &format!("/users/{id}"), Some(&token), None).await;
    assert_eq!((r.status, r.code()), (422, "VALIDATION_ERROR"), "{}", r.body);
    assert!(r.body["error"]["details"]["fields"]["body"].is_string(), "{}", r.body);
    assert_eq!(call(&app, "PUT", &format!("/users/{id}"), Some(&token), Some(json!({}))).await.status, 200);
    // Defect 1: terminate-all with `{}` keeps the current session.
    app.signin("contract-body@example.com").await;
    let r = call(&app, "POST", "/sessions/terminate-all", Some(&token), Some(json!({}))).await;
    assert_eq!((r.status, &r.body["data"]["terminated"]), (200, &json!(1)), "{}", r.body);
    assert_eq!(call(&app, "GET", "/auth/me", Some(&token), None).await.status, 200);
    // The detailed health runs through the table and stays in its envelope.
    let r = call(&app, "GET", "/health/detailed", None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["dependencies"]["redis"]["status"], "not_configured");
    assert_eq!(r.body["data"]["status"], "healthy");
    let doc = document(&app).await;
    let health = routes().into_iter().find(|r| r.operation == "HealthDetailed").unwrap();
    check_against_document(&doc, &health, &r);
    // Over GraphQL it is for administrators.
    let g = app.gql(Some(&token), "{ healthDetailed { status } }", json!({})).await;
    assert!(g["errors"][0]["extensions"]["code"].is_string(), "{g}");
    let admin = app.admin("contract-health@example.com").await;
    let g = app.gql(Some(&admin), "{ healthDetailed { status } }", json!({})).await;
    assert_eq!(g["data"]["healthDetailed"]["status"], "healthy", "{g}");
    // 503 when the database does not answer.
    app.services.state.db.clone().close().await.unwrap();
    let r = call(&app, "GET", "/health/detailed", None, None).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "unhealthy");
    assert_eq!(r.body["data"]["dependencies"]["database"]["status"], "down");
    check_against_document(&doc, &health, &r);
}

async fn admin_counts_and_adoption(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("contract-counts@example.com").await;
    let both = app.signup("contract-both@example.com").await["user"]["id"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .unwrap();
    app.signup("contract-none@example.com").await;
    let db = &app.services.state.db;
    for n in 0..2 {
        entities::passkey::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(both),
            credential_id: Set(format!("cred-{n}")),
            credential: Set("{}".into()),
            name: Set(format!("key {n}")),
            sign_count: Set(0),
            backup_eligible: Set(false),
            backup_state: Set(false),
            transports: Set(None),
            discoverable: Set(true),
            created_at: Set(chrono::Utc::now()),
            last_used_at: Set(None),
        }
        .insert(db)
        .await
        .unwrap();
    }
    entities::mfa_factor::ActiveModel {
        user_id: Set(both),
        secret_sealed: Set(vec![0; 8]),
        enabled: Set(true),
        last_used_step: Set(None),
        created_at: Set(chrono::Utc::now()),
        enabled_at: Set(Some(chrono::Utc::now())),
    }
    .insert(db)
    .await
    .unwrap();

    let r = call(&app, "GET", "/admin/users?sort=email", Some(&admin), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.body["data"].as_array().unwrap();
    let row = |email: &str| rows.iter().find(|u| u["user"]["email"] == email).unwrap().clone();
    assert_eq!(
        (
            row("contract-both@example.com")["passkeys"].clone(),
            row("contract-both@example.com")["mfa_enabled"].clone()
        ),
        (json!(2), json!(true))
    );
    assert_eq!(
        (
            row("contract-none@example.com")["passkeys"].clone(),
            row("contract-none@example.com")["mfa_enabled"].clone()
        ),
        (json!(0), json!(false))
    );

    let a = call(&app, "GET", "/admin/analytics", Some(&admin), None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let d = &a.body["data"];
    assert_eq!(
        (d["users_total"].clone(), d["users_with_mfa"].clone(), d["users_with_passkeys"].clone()),
        (json!(3), json!(1), json!(1)),
        "{d}"
    );
    let rate = d["mfa_adoption_rate"].as_f64().unwrap();
    assert!((rate - 1.0 / 3.0).abs() < 1e-9, "{d}");
    assert!((d["passkey_adoption_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9, "{d}");
}
