//! Listing, reading and terminating sessions, through REST and GraphQL.

use serde_json::json;

use crate::helpers::{Backend, TestApp, access};

crate::on_both_databases!(
    list_get_and_terminate_over_rest,
    sessions_over_graphql,
    terminate_all_keeps_the_current_session,
    pagination_walks_every_session_once,
    another_users_session_is_not_found,
);

const UA: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";

async fn list_get_and_terminate_over_rest(b: Backend) {
    let app = TestApp::spawn(b).await;
    let first = app.signup("s@example.com").await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/signin"))
        .header("user-agent", UA)
        .json(&json!({"email": "s@example.com", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    let second: serde_json::Value = r.json().await.unwrap();
    let token = access(&second["data"]);

    let list = app.rest("GET", "/sessions", Some(&token), None).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let items = list.body["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(list.body["pagination"]["total_count"], 2);
    let newest = &items[0];
    assert_eq!(newest["current"], true);
    assert_eq!(newest["device"]["browser"], "Safari");
    assert_eq!(newest["device"]["os"], "Mac OSX");
    assert_eq!(newest["device"]["type"], "desktop");
    assert_eq!(newest["ip_address"], "127.0.0.1");
    assert_eq!(newest["auth_method"], "password");
    for key in ["created_at", "last_active_at", "expires_at", "user_agent"] {
        assert!(newest[key].is_string(), "{key} missing");
    }

    let older_id = items[1]["id"].as_str().unwrap();
    let one = app.rest("GET", &format!("/sessions/{older_id}"), Some(&token), None).await;
    assert_eq!((one.status, one.body["data"]["current"].clone()), (200, json!(false)));

    let del = app.rest("DELETE", &format!("/sessions/{older_id}"), Some(&token), None).await;
    assert_eq!(del.status, 204);
    let r = app.rest("GET", "/auth/me", Some(&access(&first)), None).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"));
    let list = app.rest("GET", "/sessions", Some(&token), None).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);

    let bad = app.rest("GET", "/sessions/not-a-uuid", Some(&token), None).await;
    assert_eq!((bad.status, bad.code()), (422, "VALIDATION_ERROR"));
    let anon = app.rest("GET", "/sessions", None, None).await;
    assert_eq!((anon.status, anon.code()), (401, "AUTHENTICATION_REQUIRED"));
}

async fn sessions_over_graphql(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.signup("g@example.com").await;
    let s = app.signin("g@example.com").await;
    let token = access(&s);
    let q = "{ sessions(first: 10) { totalCount edges { cursor node { id current device { type } } } pageInfo { hasNextPage } } }";
    let r = app.gql(Some(&token), q, json!({})).await;
    assert_eq!(r["data"]["sessions"]["totalCount"], 2, "{r}");
    let other = r["data"]["sessions"]["edges"][1]["node"]["id"].as_str().unwrap().to_owned();
    let r = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { terminateSession(id: $id) { success } }",
            json!({"id": other}),
        )
        .await;
    assert_eq!(r["data"]["terminateSession"]["success"], true, "{r}");
    let r = app
        .gql(Some(&token), "query($id: ID!) { session(id: $id) { revokedAt } }", json!({"id": other}))
        .await;
    assert!(r["data"]["session"]["revokedAt"].is_string(), "{r}");
    let r = app.gql(Some(&token), "{ sessions(first: 101) { totalCount } }", json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "VALIDATION_ERROR");
}

async fn terminate_all_keeps_the_current_session(b: Backend) {
    let app = TestApp::spawn(b).await;
    let a = app.signup("all@example.com").await;
    let b2 = app.signin("all@example.com").await;
    let c = app.signin("all@example.com").await;
    let r = app.rest("POST", "/sessions/terminate-all", Some(&access(&c)), None).await;
    assert_eq!((r.status, r.body["data"]["terminated"].clone()), (200, json!(2)), "{}", r.body);
    assert_eq!(app.rest("GET", "/auth/me", Some(&access(&a)), None).await.status, 401);
    assert_eq!(app.rest("GET", "/auth/me", Some(&access(&b2)), None).await.status, 401);
    assert_eq!(app.rest("GET", "/auth/me", Some(&access(&c)), None).await.status, 200);
    let r = app
        .rest("POST", "/sessions/terminate-all", Some(&access(&c)), Some(json!({"include_current": true})))
        .await;
    assert_eq!(r.body["data"]["terminated"], 1);
    assert_eq!(app.rest("GET", "/auth/me", Some(&access(&c)), None).await.status, 401);
}

async fn pagination_walks_every_session_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    let s = app.signup("page@example.com").await;
    for _ in 0..4 {
        app.signin("page@example.com").await;
    }
    let token = access(&s);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/sessions?limit=2&cursor={c}"),
            None => "/sessions?limit=2".to_owned(),
        };
        let r = app.rest("GET", &path, Some(&token), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["pagination"]["total_count"], 5);
        assert_eq!(r.body["pagination"]["has_previous"], cursor.is_some());
        seen.extend(r.body["data"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()));
        match r.body["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5), "every session once: {seen:?}");
    // Backward from the last page returns the page before it.
    let last =
        app.rest("GET", &format!("/sessions?limit=2&cursor={}", cursor.unwrap()), Some(&token), None).await;
    let prev = last.body["pagination"]["previous_cursor"].as_str().unwrap().to_owned();
    let back = app.rest("GET", &format!("/sessions?limit=2&cursor={prev}"), Some(&token), None).await;
    let ids: Vec<_> =
        back.body["data"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, seen[2..4].to_vec());

    for bad in ["limit=101", "limit=0", "limit=abc"] {
        let r = app.rest("GET", &format!("/sessions?{bad}"), Some(&token), None).await;
        assert_eq!((r.status, r.code()), (422, "VALIDATION_ERROR"), "{bad}");
        assert!(r.body["error"]["details"]["fields"]["limit"].is_string());
    }
    let r = app.rest("GET", "/sessions?cursor=zzz", Some(&token), None).await;
    assert_eq!(r.status, 422);
}

async fn another_users_session_is_not_found(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.signup("alice@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let bobs_session = bob["tokens"]["session_id"].as_str().unwrap();
    let r = app.rest("GET", &format!("/sessions/{bobs_session}"), Some(&access(&alice)), None).await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));
    let r = app.rest("DELETE", &format!("/sessions/{bobs_session}"), Some(&access(&alice)), None).await;
    assert_eq!(r.status, 404);
    assert_eq!(app.rest("GET", "/auth/me", Some(&access(&bob)), None).await.status, 200);
}
