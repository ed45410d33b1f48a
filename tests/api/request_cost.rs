//! What an authenticated request and a refresh cost in database statements (issue 19), and the
//! guarantees the caller cache keeps while it saves them: a change to a user, or a revocation,
//! is seen by every node at the next request.
//!
//! Statements are counted by the process-wide counter with the server and its workers stopped,
//! so only the request measured runs; the requests go through the same router the server runs.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::{Backend, TestApp, access, redis_prefix, redis_url, refresh};

crate::on_both_databases!(
    statements_per_request,
    statements_per_request_with_redis,
    a_cached_caller_sees_each_change_at_the_next_request_on_every_node,
    a_redis_that_lost_its_data_vouches_for_no_cached_caller,
    a_first_page_holding_every_match_is_not_counted_again,
);

/// Sends `req` through the application's router in-process; returns status, body and how many
/// statements the database ran for it.
async fn counted(app: &TestApp, req: Request<Body>) -> (u16, Value, u64) {
    let router = janua::app::router(app.services.clone());
    let before = app.services.state.queries.get();
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let n = app.services.state.queries.get() - before;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), n)
}

fn get(path: &str, token: &str) -> Request<Body> {
    Request::get(path).header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap()
}

fn post(path: &str, token: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// `GET /auth/me` three times, GraphQL `me`, three refreshes: their statement counts.
async fn measure(mut app: TestApp) -> (Vec<u64>, u64, Vec<u64>) {
    let s = app.signup("cost@example.com").await;
    let (token, mut rt) = (access(&s), refresh(&s));
    app.stop().await;
    if let Some(redis) = app.services.state.redis.clone() {
        // The write-back of revocations a fresh Redis starts with (while its marker is missing, a
        // revocation check reads the database) is not what is measured: it is done first.
        let mut conn = redis.conn();
        let marker = redis.key("revocations:synced");
        for _ in 0..200 {
            if redis::cmd("EXISTS").arg(&marker).query_async::<bool>(&mut conn).await.unwrap() {
                break;
            }
            // The workers are stopped: write them back here if the subscriber had not yet.
            if let Some(r) = &app.services.state.redis_revocations {
                r.resync().await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
    let mut me = Vec::new();
    for _ in 0..3 {
        let (status, body, n) = counted(&app, get("/api/v1/auth/me", &token)).await;
        assert_eq!(status, 200, "{body}");
        me.push(n);
    }
    let q = json!({"query": "{ me { id email isAdmin } }"});
    let (status, body, gql_me) = counted(&app, post("/graphql", Some(&token), q)).await;
    assert_eq!((status, body["errors"].is_null()), (200, true), "{body}");
    let mut rotations = Vec::new();
    for _ in 0..3 {
        let (status, body, n) =
            counted(&app, post("/api/v1/auth/refresh", None, json!({"refresh_token": rt}))).await;
        assert_eq!(status, 200, "{body}");
        rt = body["data"]["tokens"]["refresh_token"].as_str().unwrap().to_owned();
        rotations.push(n);
    }
    (me, gql_me, rotations)
}

/// The caller is read once, then served from the cache: no statement per authenticated request.
/// A refresh is one read (token, session and user joined) and five writes in one transaction.
async fn statements_per_request(b: Backend) {
    let (me, gql_me, rotations) = measure(TestApp::spawn(b).await).await;
    assert_eq!((me.as_slice(), gql_me), ([1, 0, 0].as_slice(), 0), "statements of me");
    assert_eq!(rotations, [6, 6, 6], "statements of a refresh");
}

/// The same with Redis: the stamp that vouches for the cached caller comes with the revocation
/// check (one round trip), not from the database.
async fn statements_per_request_with_redis(b: Backend) {
    let Some(url) = redis_url() else { return };
    let app = TestApp::spawn_with(b, |c| {
        c.redis_url = Some(url);
        c.redis_prefix = redis_prefix();
    })
    .await;
    let (me, gql_me, rotations) = measure(app).await;
    assert_eq!((me.as_slice(), gql_me), ([1, 0, 0].as_slice(), 0), "statements of me");
    assert_eq!(rotations, [6, 6, 6], "statements of a refresh");
}

/// A node, and with Redis a second one sharing it, each with the caller cached: a profile change,
/// a grant of administrator rights and a suspension made through the first are seen by every
/// node at the next request.
async fn a_cached_caller_sees_each_change_at_the_next_request_on_every_node(b: Backend) {
    let redis = redis_url();
    let prefix = redis_prefix();
    let a = TestApp::spawn_with(b, |c| {
        c.redis_url = redis.clone();
        c.redis_prefix = prefix;
    })
    .await;
    let mut nodes = vec![&a];
    let peer = match redis {
        Some(_) => Some(a.spawn_peer().await),
        None => None,
    };
    nodes.extend(peer.as_ref());
    let admin = a.admin("root@example.com").await;
    let s = a.signup("cached@example.com").await;
    let (t, id) = (access(&s), s["user"]["id"].as_str().unwrap().to_owned());
    let warm = || async {
        for n in &nodes {
            for _ in 0..2 {
                assert_eq!(n.rest("GET", "/auth/me", Some(&t), None).await.status, 200);
            }
        }
    };

    warm().await;
    let r = a.rest("PUT", &format!("/users/{id}"), Some(&t), Some(json!({"name": "Renamed"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (i, n) in nodes.iter().enumerate() {
        let r = n.rest("GET", "/auth/me", Some(&t), None).await;
        assert_eq!(r.body["data"]["name"], "Renamed", "node {i}: {}", r.body);
    }

    warm().await;
    for n in &nodes {
        assert_eq!(n.rest("GET", "/users", Some(&t), None).await.code(), "FORBIDDEN");
    }
    let r = a.rest("PUT", &format!("/users/{id}"), Some(&admin), Some(json!({"is_admin": true}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (i, n) in nodes.iter().enumerate() {
        let r = n.rest("GET", "/users", Some(&t), None).await;
        assert_eq!(r.status, 200, "node {i}: an administrator now: {}", r.body);
        assert_eq!(n.rest("GET", "/auth/me", Some(&t), None).await.body["data"]["is_admin"], true);
    }

    warm().await;
    let r = a.rest("PUT", &format!("/users/{id}"), Some(&admin), Some(json!({"status": "suspended"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (i, n) in nodes.iter().enumerate() {
        let r = n.rest("GET", "/auth/me", Some(&t), None).await;
        assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"), "node {i}: {}", r.body);
    }
}

/// Redis restarted without its data (here: its keys deleted) while a node kept a caller cached,
/// and the user changed meanwhile without a stamp to show it (here: written to the database
/// directly): until the revocations are written back under a new epoch no stamp is given, and
/// after it none matches an old one, so the next request reads the database.
async fn a_redis_that_lost_its_data_vouches_for_no_cached_caller(b: Backend) {
    let Some(url) = redis_url() else { return };
    let prefix = redis_prefix();
    let app = TestApp::spawn_with(b, |c| {
        c.redis_url = Some(url.clone());
        c.redis_prefix = prefix.clone();
    })
    .await;
    let s = app.signup("lost@example.com").await;
    let t = access(&s);
    let id: uuid::Uuid = s["user"]["id"].as_str().unwrap().parse().unwrap();
    for _ in 0..2 {
        assert_eq!(app.rest("GET", "/auth/me", Some(&t), None).await.status, 200);
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL").arg(&keys).query_async::<()>(&mut conn).await.unwrap();
    }
    // A session check kept before the loss answers for at most a lease (a change made through
    // Janua waits that out: `redis::a_kept_session_check_…`); the copy is not vouched for after.
    tokio::time::sleep(Duration::from_millis(app.config.session_lease_ms + 100)).await;
    let db = &app.services.state.db;
    let mut u: entities::user::ActiveModel =
        entities::user::Entity::find_by_id(id).one(db).await.unwrap().unwrap().into();
    u.name = Set(Some("Changed behind the cache".into()));
    u.update(db).await.unwrap();
    for i in 0..3 {
        let r = app.rest("GET", "/auth/me", Some(&t), None).await;
        assert_eq!(r.body["data"]["name"], "Changed behind the cache", "request {i}: {}", r.body);
    }
}

/// A list's first page that holds every row it could find is its own `total_count`: a search
/// finding fewer rows than the limit runs exactly one statement less than one finding more (the
/// `COUNT`), and both totals are exact.
async fn a_first_page_holding_every_match_is_not_counted_again(b: Backend) {
    let mut app = TestApp::spawn(b).await;
    let admin = app.admin("root@example.com").await;
    for name in ["alpha.one", "beta.one", "beta.two", "beta.three"] {
        app.signup(&format!("{name}@example.com")).await;
    }
    app.stop().await;
    let search = async |term: &str| {
        let (status, body, n) =
            counted(&app, get(&format!("/api/v1/users?search={term}&limit=2"), &admin)).await;
        assert_eq!(status, 200, "{body}");
        (body["pagination"]["total_count"].as_u64(), body["data"].as_array().map(Vec::len), n)
    };
    // The first request loads the caller into the cache; the two measured find it there.
    search("nobody").await;
    let (few_total, few_rows, few) = search("alpha").await;
    let (many_total, many_rows, many) = search("beta").await;
    assert_eq!((few_total, few_rows, many_total, many_rows), (Some(1), Some(1), Some(3), Some(2)));
    assert_eq!(
        few + 1,
        many,
        "statements: {few} for a page holding every match, {many} for one that does not"
    );
}
