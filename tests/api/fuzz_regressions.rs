//! One regression test per bug the fuzzing found (schemathesis in `schemathesis.rs`, the
//! parser property tests `fuzz_*` in the library), over HTTP on a live server.

use serde_json::json;

use crate::helpers::{Backend, TestApp};

crate::on_both_databases!(an_unknown_organization_is_not_found_for_an_administrator);

/// Found by schemathesis: an administrator (no membership needed) asking for a SCIM token or an
/// API key of an organization that does not exist got a foreign-key 500, and a webhook for one
/// was created. Every organization-scoped operation now answers `NOT_FOUND`, and writes nothing.
async fn an_unknown_organization_is_not_found_for_an_administrator(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("unknown-org-admin@example.com").await;
    let ghost = uuid::Uuid::now_v7();
    let cases = [
        ("POST", format!("/organizations/{ghost}/scim/tokens"), Some(json!({"name": "x"}))),
        ("GET", format!("/organizations/{ghost}/scim/tokens"), None),
        (
            "POST",
            format!("/organizations/{ghost}/api-keys"),
            Some(json!({"name": "x", "scopes": ["users:read"]})),
        ),
        ("GET", format!("/organizations/{ghost}/api-keys"), None),
        (
            "POST",
            "/webhooks".to_owned(),
            Some(
                json!({"organization_id": ghost, "url": "https://example.com/h", "events": ["user.created"]}),
            ),
        ),
        (
            "POST",
            format!("/organizations/{ghost}/members"),
            Some(json!({"email": "someone@example.com", "role": "member"})),
        ),
        (
            "POST",
            "/invitations".to_owned(),
            Some(json!({"organization_id": ghost, "email": "someone@example.com"})),
        ),
        ("GET", format!("/organizations/{ghost}/members"), None),
        ("GET", format!("/organizations/{ghost}"), None),
    ];
    for (method, path, body) in cases {
        let r = app.rest(method, &path, Some(&admin), body).await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{method} {path}: {}", r.body);
    }
    let r = app.rest("GET", "/webhooks", Some(&admin), None).await;
    assert_eq!(r.body["data"], json!([]), "no webhook was made: {}", r.body);
}

crate::on_both_databases!(a_nan_q_value_in_accept_language_is_answered);

/// Found by `fuzz_accept_language`: `Accept-Language` with NaN q-values made the parser's sort
/// panic, and the connection was reset with no answer. Now the header is read (malformed
/// q-values ignored) and the request answered, in the best language that remains.
async fn a_nan_q_value_in_accept_language_is_answered(b: Backend) {
    let app = TestApp::spawn(b).await;
    let header = ["aa;q=NaN"; 7].join(",")
        + ",aa;q=-inf,aa;q=1e9,aa;q=NaN,aa;q=inf,aa;q=inf,"
        + &["aa;q=NaN"; 9].join(",");
    for (h, language) in [(header.clone(), "en"), (format!("{header},de;q=0.5,fr;q=NaN"), "de")] {
        let r = app
            .client
            .get(app.url("/api/v1/auth/me"))
            .header("accept-language", h)
            .send()
            .await
            .expect("an answer");
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["content-language"], language);
    }
}
