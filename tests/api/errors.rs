//! Error envelopes, codes and languages.

use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp, access};

crate::on_both_databases!(
    envelopes_for_malformed_unknown_and_wrong_method,
    validation_names_fields_in_the_callers_language,
    suspended_accounts_are_disabled,
);

async fn envelopes_for_malformed_unknown_and_wrong_method(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.body_limit = 2048).await;
    let malformed = app
        .client
        .post(app.url("/api/v1/auth/signup"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let r = crate::helpers::Resp::from(malformed).await;
    assert_eq!((r.status, r.code()), (400, "BAD_REQUEST"));
    assert_eq!(r.body["success"], false);
    assert!(r.body["request_id"].is_string() && r.body["timestamp"].is_string());

    let array = app.rest("POST", "/auth/signin", None, Some(json!([1, 2]))).await;
    assert_eq!((array.status, array.code()), (400, "BAD_REQUEST"));

    let r = app.rest("GET", "/no/such/route", None, None).await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));
    let r = app.rest("DELETE", "/auth/signup", None, None).await;
    assert_eq!((r.status, r.code()), (405, "METHOD_NOT_ALLOWED"));

    let big = "x".repeat(4096);
    let r = app.rest("POST", "/auth/signup", None, Some(json!({"email": "a@b.co", "password": big}))).await;
    assert_eq!((r.status, r.code()), (413, "PAYLOAD_TOO_LARGE"));

    let gql = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(gql.status().as_u16(), 400);
    let v: serde_json::Value = gql.json().await.unwrap();
    assert_eq!(v["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    let syntax = app.gql(None, "{ me { id ", json!({})).await;
    assert_eq!(syntax["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{syntax}");
    let unknown_field = app.gql(None, "{ nope }", json!({})).await;
    assert_eq!(unknown_field["errors"][0]["extensions"]["code"], "VALIDATION_ERROR", "{unknown_field}");

    // A client request id is echoed; an insane one is replaced.
    let r = app.client.get(app.url("/api/v1/nope")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = app
        .client
        .get(app.url("/api/v1/nope"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert!(r.headers()["x-request-id"].to_str().unwrap().starts_with("req_"));
}

async fn validation_names_fields_in_the_callers_language(b: Backend) {
    let app = TestApp::spawn(b).await;
    let cases = [
        ("de", "Einige Felder sind ungültig.", "muss mindestens 12 Zeichen lang sein"),
        ("fr-CA, fr;q=0.9", "Certains champs sont invalides.", "doit contenir au moins 12 caractères"),
        ("es-ES,es;q=0.9,en;q=0.5", "Algunos campos no son válidos.", "debe tener al menos 12 caracteres"),
        ("en", "Some fields are invalid.", "must be at least 12 characters"),
    ];
    for (lang, message, field) in cases {
        let r = app
            .client
            .post(app.url("/api/v1/auth/signup"))
            .header("accept-language", lang)
            .json(&json!({"email": "not-an-email", "password": "short"}))
            .send()
            .await
            .unwrap();
        let r = crate::helpers::Resp::from(r).await;
        assert_eq!((r.status, r.code()), (422, "VALIDATION_ERROR"));
        assert_eq!(r.body["error"]["message"], message, "{lang}");
        assert_eq!(r.body["error"]["details"]["fields"]["password"], field, "{lang}");
        assert!(r.body["error"]["details"]["fields"]["email"].is_string());
        assert_eq!(r.header("content-language"), &lang[..2]);
    }
    // Missing required fields are named too; common passwords and the email itself are refused.
    let r = app.rest("POST", "/auth/signup", None, Some(json!({}))).await;
    assert_eq!(r.body["error"]["details"]["fields"]["email"], "is required");
    assert_eq!(r.body["error"]["details"]["fields"]["password"], "is required");
    let r = app
        .rest(
            "POST",
            "/auth/signup",
            None,
            Some(json!({"email": "x@example.com", "password": "password1234"})),
        )
        .await;
    assert_eq!(r.body["error"]["details"]["fields"]["password"], "is too common");
    let r = app
        .rest(
            "POST",
            "/auth/signup",
            None,
            Some(json!({"email": "longname@example.com", "password": "longname@example.com"})),
        )
        .await;
    assert_eq!(r.body["error"]["details"]["fields"]["password"], "must not be your email address");
    // GraphQL errors speak the same language.
    let g = app
        .client
        .post(app.url("/graphql"))
        .header("accept-language", "de")
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = g.json().await.unwrap();
    assert_eq!(v["errors"][0]["message"], "Anmeldung erforderlich.");
}

async fn suspended_accounts_are_disabled(b: Backend) {
    use entities::user;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = TestApp::spawn(b).await;
    let s = app.signup("sus@example.com").await;
    user::Entity::update_many()
        .col_expr(user::Column::Status, Expr::value("suspended"))
        .filter(user::Column::Email.eq("sus@example.com"))
        .exec(&app.services.state.db)
        .await
        .unwrap();
    let r = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "sus@example.com", "password": PASSWORD})))
        .await;
    assert_eq!((r.status, r.code()), (403, "ACCOUNT_DISABLED"));
    let r = app
        .rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": s["tokens"]["refresh_token"]})))
        .await;
    assert_eq!((r.status, r.code()), (403, "ACCOUNT_DISABLED"));
    let _ = access(&s);
}

crate::on_both_databases!(parse_and_validation_errors_are_told_apart_on_every_transport);

/// A document that is not GraphQL is a `BAD_REQUEST`; one that is GraphQL but does not fit the
/// schema (or names no single operation) a `VALIDATION_ERROR` — over POST, GET and the socket,
/// whatever the parser's message says (over the socket as an `error` message).
async fn parse_and_validation_errors_are_told_apart_on_every_transport(b: Backend) {
    use crate::subscriptions::{connect, next, send};
    let app = TestApp::spawn(b).await;
    let s = app.signup("kinds@example.com").await;
    let token = access(&s);
    let cases = [
        ("{ me { id ", "BAD_REQUEST"),
        ("subscription { sessionEvents(after: ) { id } }", "BAD_REQUEST"),
        ("{ nope }", "VALIDATION_ERROR"),
        // Refused by the parser, though not for its syntax: GraphQL's own validation rules.
        ("{ me { id } } { me { email } }", "VALIDATION_ERROR"),
        ("query A { me { id } } query A { me { email } }", "VALIDATION_ERROR"),
        // Refused while choosing the operation to run.
        ("query A { me { id } } query B { me { email } }", "VALIDATION_ERROR"),
    ];
    let mut ws = connect(&app, "graphql-transport-ws", &token).await;
    for (i, (query, code)) in cases.iter().enumerate() {
        let post = app.gql(Some(&token), query, json!({})).await;
        assert_eq!(post["errors"][0]["extensions"]["code"], *code, "POST {query}: {post}");
        assert!(post["errors"][0]["extensions"]["request_id"].is_string(), "{post}");
        let get: serde_json::Value = app
            .client
            .get(app.url("/graphql"))
            .query(&[("query", query)])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(get["errors"][0]["extensions"]["code"], *code, "GET {query}: {get}");
        let id = i.to_string();
        send(&mut ws, json!({"id": id, "type": "subscribe", "payload": {"query": query}})).await;
        // Refused before it ran: graphql-transport-ws's `error` message, its last (no `complete`).
        let answer = next(&mut ws).await;
        assert_eq!(
            (answer["type"].as_str(), answer["id"].as_str()),
            (Some("error"), Some(id.as_str())),
            "{answer}"
        );
        assert_eq!(answer["payload"][0]["extensions"]["code"], *code, "WS {query}: {answer}");
    }
}
