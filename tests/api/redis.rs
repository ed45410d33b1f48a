//! Redis backends: the same store tests against the in-process and the Redis implementations,
//! two nodes sharing one database and one Redis, and a Redis stopped and restarted mid-test.
//! The Redis tests run when `JANUA_TEST_REDIS_URL` is set (else they say they were skipped).

use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use janua::storage::rate_limits::{IpRateLimiter, RateLimit, RedisRateLimiter, WindowRateLimiter};
use janua::storage::{
    CeremonyKind, CeremonyStore, MemoryCeremonyStore, MemoryRevocationStore, Redis, RedisCeremonyStore,
    RedisRevocationStore, RevocationStore,
};
use janua::storage::{LockoutStore, MemoryLockoutStore, RedisLockoutStore, Slot};
use serde_json::json;

use crate::helpers::{Backend, TestApp, access, redis_prefix, redis_url};
use crate::subscriptions::{connect, next, subscribe};

crate::on_both_databases!(
    two_nodes_share_revocations_events_and_rate_limits,
    service_continues_without_redis_and_recovers
);

/// Both implementations of every store: in process, and Redis when configured.
struct Stores {
    name: &'static str,
    ceremonies: Arc<dyn CeremonyStore>,
    lockouts: Arc<dyn LockoutStore>,
    limiter: Arc<dyn RateLimit>,
    credentials: Arc<dyn RateLimit>,
    revocations: Arc<dyn RevocationStore>,
}

async fn all_stores() -> Vec<Stores> {
    let app = TestApp::spawn(Backend::Sqlite).await; // a migrated database for the revocation stores
    let db = app.services.state.db.clone();
    let mut v = vec![Stores {
        name: "memory",
        ceremonies: Arc::new(MemoryCeremonyStore::new()),
        lockouts: Arc::new(MemoryLockoutStore::new(3, 60)),
        limiter: Arc::new(IpRateLimiter::new(3)),
        credentials: Arc::new(WindowRateLimiter::new(2)),
        revocations: Arc::new(MemoryRevocationStore::load(&db).await.unwrap()),
    }];
    if let Some(url) = redis_url() {
        let r = Redis::connect(&url, &redis_prefix()).unwrap();
        let revocations = RedisRevocationStore::load(r.clone(), db).await.unwrap();
        revocations.resync().await.unwrap(); // a fresh prefix: written back, marked in sync
        v.push(Stores {
            name: "redis",
            ceremonies: Arc::new(RedisCeremonyStore::new(r.clone())),
            lockouts: Arc::new(RedisLockoutStore::new(r.clone(), "lockout", 3, 60)),
            limiter: Arc::new(RedisRateLimiter::new(r.clone(), 3)),
            credentials: Arc::new(RedisRateLimiter::credentials(r.clone(), 2)),
            revocations: Arc::new(revocations),
        });
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_behave_the_same_in_process_and_in_redis() {
    for s in all_stores().await {
        let n = s.name;
        // Ceremonies: taken once, kinds apart, expiry.
        let k = CeremonyKind::MfaToken;
        s.ceremonies.put(k, "a", "1".into(), Duration::from_secs(60)).await.unwrap();
        assert_eq!(s.ceremonies.take(CeremonyKind::PasskeyRegistration, "a").await.unwrap(), None, "{n}");
        assert_eq!(s.ceremonies.take(k, "a").await.unwrap().as_deref(), Some("1"), "{n}");
        assert_eq!(s.ceremonies.take(k, "a").await.unwrap(), None, "{n}");
        s.ceremonies.put(k, "b", "2".into(), Duration::from_millis(5)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(s.ceremonies.take(k, "b").await.unwrap(), None, "{n}: expired");

        // Lockout: the slot at the threshold locks, per key; a success clears it.
        assert_eq!(s.lockouts.reserve("a@x.io").await, Slot::Granted, "{n}");
        assert_eq!(s.lockouts.reserve("a@x.io").await, Slot::Granted, "{n}");
        let Slot::Last(until) = s.lockouts.reserve("a@x.io").await else {
            panic!("{n}: the third slot is the last");
        };
        assert!(until > Utc::now() + chrono::Duration::seconds(50), "{n}");
        assert!(matches!(s.lockouts.reserve("a@x.io").await, Slot::Locked(_)), "{n}: no fourth slot");
        assert!(s.lockouts.locked_until("a@x.io").await.is_some(), "{n}");
        assert!(s.lockouts.locked_until("b@x.io").await.is_none(), "{n}");
        s.lockouts.record_success("a@x.io").await;
        assert!(s.lockouts.locked_until("a@x.io").await.is_none(), "{n}");

        // Rate limit: counts down, then refuses with a wait; another IP has its own allowance.
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut r = Vec::new();
        for _ in 0..4 {
            r.push(s.limiter.check(ip).await);
        }
        assert_eq!(r.iter().map(|d| d.remaining).collect::<Vec<_>>(), [2, 1, 0, 0], "{n}");
        assert!(r[2].allowed && !r[3].allowed, "{n}");
        assert!(r.iter().all(|d| d.limit == 3 && d.reset_secs >= 1 && d.reset_secs <= 60), "{n}");
        assert!((1..=60).contains(&r[3].retry_after_secs), "{n}");
        assert!(s.limiter.check("10.0.0.2".parse().unwrap()).await.allowed, "{n}");

        // Credential attempts: a unit given back may be taken again; an IPv6 /64 is one client.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(s.credentials.check(v6("2001:db8::1")).await.allowed, "{n}");
        s.credentials.release(v6("2001:db8::1")).await;
        assert!(s.credentials.check(v6("2001:db8::2")).await.allowed, "{n}");
        assert!(s.credentials.check(v6("2001:db8::3:4")).await.allowed, "{n}");
        assert!(!s.credentials.check(v6("2001:db8::5")).await.allowed, "{n}: the /64 is spent");
        assert!(s.credentials.check(v6("2001:db8:0:1::5")).await.allowed, "{n}: another /64");

        // Revocations.
        let sid = uuid::Uuid::new_v4();
        assert!(!s.revocations.is_revoked(sid).await.unwrap(), "{n}");
        s.revocations.revoke(sid, Utc::now() + chrono::Duration::hours(1)).await;
        assert!(s.revocations.is_revoked(sid).await.unwrap(), "{n}");
    }
}

/// Two nodes on one database and one Redis.
async fn two_nodes_share_revocations_events_and_rate_limits(b: Backend) {
    let Some(url) = redis_url() else { return };
    let prefix = redis_prefix();
    let a = TestApp::spawn_with(b, |c| {
        c.redis_url = Some(url);
        c.redis_prefix = prefix;
    })
    .await;
    let node_b = a.spawn_peer().await;

    // A session revoked through node A is refused by node B at the next request.
    let first = a.signup("two@example.com").await;
    let watcher = node_b.signin("two@example.com").await;
    let watcher_token = access(&watcher);
    let t = access(&first);
    assert_eq!(node_b.rest("GET", "/auth/me", Some(&t), None).await.status, 200);
    assert_eq!(a.rest("POST", "/auth/signout", Some(&t), None).await.status, 200);
    let r = node_b.rest("GET", "/auth/me", Some(&t), None).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"), "{}", r.body);

    // An event raised on A reaches a subscriber on B.
    let mut ws = connect(&node_b, "graphql-transport-ws", &watcher_token).await;
    subscribe(&mut ws, "subscribe", None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = a.signin("two@example.com").await;
    let other_sid = other["tokens"]["session_id"].as_str().unwrap().to_owned();
    a.drain_events().await;
    let msg = next(&mut ws).await;
    let e = &msg["payload"]["data"]["sessionEvents"];
    assert_eq!(
        (e["type"].as_str(), e["sessionId"].as_str()),
        (Some("CREATED"), Some(other_sid.as_str())),
        "{msg}"
    );
    ws.close(None).await.ok();

    // A subscriber on B that disconnects and resumes with `after` misses nothing raised on A.
    let seen = e["id"].as_str().unwrap().to_owned();
    let r = a.rest("DELETE", &format!("/sessions/{other_sid}"), Some(&watcher_token), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    a.drain_events().await;
    let mut ws = connect(&node_b, "graphql-transport-ws", &watcher_token).await;
    subscribe(&mut ws, "subscribe", Some(&seen)).await;
    let msg = next(&mut ws).await;
    let e = &msg["payload"]["data"]["sessionEvents"];
    assert_eq!(
        (e["type"].as_str(), e["sessionId"].as_str()),
        (Some("REVOKED"), Some(other_sid.as_str())),
        "{msg}"
    );
    ws.close(None).await.ok();

    let metrics = node_b.client.get(node_b.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("janua_redis_subscriber_connected 1"), "{metrics}");
    assert!(metrics.contains("janua_events_received_total"), "{metrics}");
    assert!(metrics.contains("janua_outbox_lag_seconds"), "{metrics}");

    // Failed sign-ins are counted across the nodes: 3 on A and 2 on B lock the account on both.
    let wrong = json!({"email": "two@example.com", "password": "not the right password"});
    for (i, node) in [&a, &a, &a, &node_b, &node_b].into_iter().enumerate() {
        let r = node.rest("POST", "/auth/signin", None, Some(wrong.clone())).await;
        let expected = if i == 4 { 423 } else { 401 };
        assert_eq!(r.status, expected, "failure {i}: {}", r.body);
    }
    let right = json!({"email": "two@example.com", "password": crate::helpers::PASSWORD});
    let r = a.rest("POST", "/auth/signin", None, Some(right)).await;
    assert_eq!((r.status, r.code()), (423, "ACCOUNT_LOCKED"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_counts_requests_to_both_nodes() {
    let Some(url) = redis_url() else { return };
    let prefix = redis_prefix();
    let a = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis_url = Some(url);
        c.redis_prefix = prefix;
        c.rate_limit_per_minute = 6;
    })
    .await;
    let b = a.spawn_peer().await;
    let get = |app: &TestApp| app.client.get(app.url("/.well-known/jwks.json")).send();
    let mut remaining = Vec::new();
    for i in 0..6 {
        let r = get(if i % 2 == 0 { &a } else { &b }).await.unwrap();
        assert_eq!(r.status(), 200);
        remaining.push(r.headers()["x-ratelimit-remaining"].to_str().unwrap().to_owned());
    }
    assert_eq!(remaining, ["5", "4", "3", "2", "1", "0"]);
    for app in [&a, &b] {
        let r = get(app).await.unwrap();
        assert_eq!(r.status(), 429);
        assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    }
}

/// Without session leases, an authenticated request asks Redis once: its rate-limit unit and its
/// session's revocation check (with its user's stamp) travel in one pipeline, counted by a Redis
/// of the test's own.
/// The unit counts as any other: the limit still refuses (revocations through the same look:
/// `two_nodes_share_revocations_events_and_rate_limits`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_request_asks_redis_once() {
    if !redis_server_available() {
        return;
    }
    let port = OwnRedis::free_port();
    let _redis = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}/");
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis_url = Some(url.clone());
        c.rate_limit_per_minute = 7;
        // Nothing kept: every request looks (kept checks: `a_kept_session_check_…`).
        c.session_lease_ms = 0;
    })
    .await;
    let token = access(&app.signup("once@example.com").await); // unit 1
    let me = || app.client.get(app.url("/api/v1/auth/me")).bearer_auth(&token).send();
    let mut conn =
        redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    // The first look finds no marker (a fresh Redis) and writes the revocations back: wait.
    for _ in 0..100 {
        assert_eq!(me().await.unwrap().status(), 200); // units 2…
        if redis::cmd("EXISTS").arg("janua:revocations:synced").query_async::<bool>(&mut conn).await.unwrap()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let used =
        7 - me().await.unwrap().headers()["x-ratelimit-remaining"].to_str().unwrap().parse::<u32>().unwrap();
    redis::cmd("CONFIG").arg("RESETSTAT").query_async::<()>(&mut conn).await.unwrap();
    let mut remaining = Vec::new();
    for _ in 0..(7 - used) {
        let r = me().await.unwrap();
        assert_eq!(r.status(), 200);
        remaining.push(r.headers()["x-ratelimit-remaining"].to_str().unwrap().parse::<u32>().unwrap());
    }
    let stats: String = redis::cmd("INFO").arg("commandstats").query_async(&mut conn).await.unwrap();
    let calls = |cmd: &str| command_calls(&stats, cmd);
    let n = u64::from(7 - used);
    assert_eq!(remaining, (0..7 - used).rev().collect::<Vec<_>>());
    assert_eq!((calls("eval"), calls("evalsha"), calls("exists")), (n, 0, n), "{stats}");
    let r = me().await.unwrap();
    assert_eq!(r.status(), 429, "the limit counts authenticated requests");
}

/// With session leases (the default), a node that kept a session's check serves its requests
/// without asking Redis (the rate limit's units leased too), and still refuses the session at the
/// next request after another node revoked it, shows a user's change made on another node at the
/// next request, and does both with its lease subscription cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_session_check_asks_redis_for_nothing_and_still_sees_every_change() {
    if !redis_server_available() {
        return;
    }
    let port = OwnRedis::free_port();
    let _redis = OwnRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}/");
    let a = TestApp::spawn_with(Backend::Sqlite, |c| c.redis_url = Some(url.clone())).await;
    let b = a.spawn_peer().await;
    let first = a.signup("kept@example.com").await;
    let user_id = first["user"]["id"].as_str().unwrap().to_owned();
    let (t1, t2, t3) = (
        access(&first),
        access(&a.signin("kept@example.com").await),
        access(&a.signin("kept@example.com").await),
    );
    let mut conn =
        redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    // Once B is registered and has kept the three checks, its requests look at nothing.
    let mut quiet = false;
    for _ in 0..100 {
        redis::cmd("CONFIG").arg("RESETSTAT").query_async::<()>(&mut conn).await.unwrap();
        for t in [&t1, &t2, &t3] {
            for _ in 0..5 {
                assert_eq!(b.rest("GET", "/auth/me", Some(t), None).await.status, 200);
            }
        }
        let stats: String = redis::cmd("INFO").arg("commandstats").query_async(&mut conn).await.unwrap();
        if command_calls(&stats, "exists") == 0 {
            quiet = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(quiet, "node B kept the session checks");

    // Revoked through A: refused by B at the next request; the other sessions still served.
    assert_eq!(a.rest("POST", "/auth/signout", Some(&t1), None).await.status, 200);
    let r = b.rest("GET", "/auth/me", Some(&t1), None).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"), "{}", r.body);
    assert_eq!(b.rest("GET", "/auth/me", Some(&t2), None).await.status, 200);

    // A user's change made through A is what B answers next.
    let r =
        a.rest("PUT", &format!("/users/{user_id}"), Some(&t2), Some(json!({"name": "Kept Renamed"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = b.rest("GET", "/auth/me", Some(&t3), None).await;
    assert_eq!((r.status, r.body["data"]["name"].as_str()), (200, Some("Kept Renamed")), "{}", r.body);

    // With every lease subscription cut, a revocation through A is still refused by B at once.
    assert_eq!(b.rest("GET", "/auth/me", Some(&t2), None).await.status, 200);
    redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async::<i64>(&mut conn).await.unwrap();
    assert_eq!(a.rest("POST", "/auth/signout", Some(&t2), None).await.status, 200);
    let r = b.rest("GET", "/auth/me", Some(&t2), None).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"), "{}", r.body);
    assert_eq!(b.rest("GET", "/auth/me", Some(&t3), None).await.status, 200);

    // Redis loses its data (registrations too): a change through A is still what B answers next.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(b.rest("GET", "/auth/me", Some(&t3), None).await.status, 200);
    redis::cmd("FLUSHALL").query_async::<()>(&mut conn).await.unwrap();
    let r = a.rest("PUT", &format!("/users/{user_id}"), Some(&t3), Some(json!({"name": "Kept Lost"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = b.rest("GET", "/auth/me", Some(&t3), None).await;
    assert_eq!((r.status, r.body["data"]["name"].as_str()), (200, Some("Kept Lost")), "{}", r.body);
}

/// How many times `cmd` ran, from Redis's `INFO commandstats`.
fn command_calls(stats: &str, cmd: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// A Redis of the test's own on a free port, killed when dropped.
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let me = Self { port, child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return me;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {port}");
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// `redis-cli shutdown nosave`, then waits for the process to end.
    fn shutdown(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "shutdown", "nosave"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server_available() -> bool {
    redis_url().is_some()
        && Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok()
}

async fn ready(app: &TestApp) -> u16 {
    app.client.get(app.url("/ready")).send().await.unwrap().status().as_u16()
}

/// Redis stopped mid-test: the node keeps serving (revocations from the database, lockout and
/// rate limit in process, ceremonies refused with 503), reports it, and recovers by itself.
async fn service_continues_without_redis_and_recovers(b: Backend) {
    if !redis_server_available() {
        return;
    }
    let port = OwnRedis::free_port();
    let mut redis = OwnRedis::start(port);
    let app = TestApp::spawn_with(b, |c| {
        c.redis_url = Some(format!("redis://127.0.0.1:{port}/"));
        c.redis_prefix = redis_prefix();
    })
    .await;
    let peer = app.spawn_peer().await;
    let user = app.signup("degraded@example.com").await;
    let token = access(&user);
    let doomed = access(&app.signin("degraded@example.com").await);
    assert_eq!(ready(&app).await, 200);
    let d = app.rest("GET", "/health/detailed", None, None).await;
    assert_eq!(d.body["data"]["dependencies"]["redis"]["status"], "ok", "{}", d.body);
    assert!(d.body["data"]["dependencies"]["redis"]["latency_ms"].is_number());
    let options = app.rest("POST", "/passkeys/authenticate/options", None, None).await;
    assert_eq!(options.status, 200, "{}", options.body);

    redis.shutdown();

    // Degraded, still serving.
    assert_eq!(ready(&app).await, 503);
    let d = app.rest("GET", "/health/detailed", None, None).await;
    assert_eq!(d.body["data"]["dependencies"]["redis"]["status"], "down", "{}", d.body);
    assert_eq!(d.body["data"]["status"], "degraded");
    assert_eq!(peer.rest("GET", "/auth/me", Some(&token), None).await.status, 200);
    app.signin("degraded@example.com").await; // lockout counted in process
    let r = app.rest("POST", "/passkeys/authenticate/options", None, None).await;
    assert_eq!((r.status, r.code()), (503, "SERVICE_UNAVAILABLE"), "{}", r.body);
    // A revocation while Redis is down still holds on the other node (database check).
    assert_eq!(app.rest("GET", "/auth/me", Some(&doomed), None).await.status, 200);
    assert_eq!(app.rest("POST", "/auth/signout", Some(&doomed), None).await.status, 200);
    let r = peer.rest("GET", "/auth/me", Some(&doomed), None).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"), "{}", r.body);

    // Redis returns (empty): everything recovers without a restart.
    let _redis = OwnRedis::start(port);
    let mut up = false;
    for _ in 0..100 {
        if ready(&app).await == 200 && ready(&peer).await == 200 {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "/ready is 200 again once Redis answers");
    let mut ok = false;
    for _ in 0..50 {
        if app.rest("POST", "/passkeys/authenticate/options", None, None).await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "ceremonies work again");
    // The revocation made while Redis was down is refused through Redis too (written back).
    let r = peer.rest("GET", "/auth/me", Some(&doomed), None).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"), "{}", r.body);
    assert_eq!(peer.rest("GET", "/auth/me", Some(&token), None).await.status, 200);

    // Events flow between the nodes again (the forwarders subscribed again).
    let mut ws = connect(&peer, "graphql-transport-ws", &token).await;
    subscribe(&mut ws, "subscribe", None).await;
    let mut delivered = false;
    let mut sids = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = app.signin("degraded@example.com").await;
        app.drain_events().await;
        sids.push(json!(s["tokens"]["session_id"]));
        if let Ok(msg) = tokio::time::timeout(Duration::from_secs(2), next(&mut ws)).await {
            let e = &msg["payload"]["data"]["sessionEvents"];
            assert_eq!(e["type"], "CREATED", "{msg}");
            assert!(sids.contains(&e["sessionId"]), "{msg}");
            delivered = true;
            break;
        }
    }
    assert!(delivered, "an event raised on one node reaches the other after Redis came back");
}
