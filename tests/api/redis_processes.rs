//! Two `janua` processes (the real binary) on one database and one Redis: a session signed out
//! through one is refused by the other at the next request, and the per-IP rate limit counts the
//! requests to both together.

use std::time::{Duration, Instant};

use janua::security::secrets::MasterKey;
use serde_json::json;

use crate::helpers::{PASSWORD, Resp, TempDir, redis_prefix, redis_url};

struct Node {
    child: std::process::Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(dir: &TempDir, key: &str, redis: &str, prefix: &str, client: &reqwest::Client) -> Node {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_janua"))
        .arg("serve")
        .env("JANUA_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.0.join("janua.db").display()))
        .env("JANUA_MASTER_KEY", key)
        .env("JANUA_MASTER_KEY_FILE", dir.0.join("janua.key"))
        .env("JANUA_MAIL_DIR", dir.0.join("mail"))
        .env("REDIS_URL", redis)
        .env("JANUA_REDIS_PREFIX", prefix)
        .env("JANUA_RATE_LIMIT_PER_MINUTE", "20")
        .env("JANUA_ARGON2_MEMORY_KIB", "8192")
        .env("JANUA_ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start janua");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "janua did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Node { child, base }
}

async fn call(
    client: &reqwest::Client,
    node: &Node,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Resp {
    let mut req = client.request(method.parse().unwrap(), format!("{}/api/v1{path}", node.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Resp::from(req.send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_revocations_and_rate_limits() {
    let Some(redis) = redis_url() else { return };
    let (dir, key, prefix, client) =
        (TempDir::new(), MasterKey::generate().to_base64(), redis_prefix(), reqwest::Client::new());
    // One after the other: the first creates and migrates the database.
    let a = start(&dir, &key, &redis, &prefix, &client).await;
    let b = start(&dir, &key, &redis, &prefix, &client).await;
    let mut used = 0;

    let s = call(
        &client,
        &a,
        "POST",
        "/auth/signup",
        None,
        Some(json!({"email": "two@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s.status, 201, "{}", s.body);
    let token = s.body["data"]["tokens"]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(call(&client, &b, "GET", "/auth/me", Some(&token), None).await.status, 200);
    assert_eq!(call(&client, &a, "POST", "/auth/signout", Some(&token), None).await.status, 200);
    let r = call(&client, &b, "GET", "/auth/me", Some(&token), None).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"), "signed out on A, refused on B at once");
    used += 4;

    // 20 requests a minute per IP in all: alternate between the nodes until one refuses.
    let mut first_refusal = None;
    for i in 0..40 {
        let node = if i % 2 == 0 { &a } else { &b };
        if call(&client, node, "GET", "/health/detailed", None, None).await.status == 429 {
            first_refusal = Some(used + i);
            break;
        }
    }
    let n = first_refusal.expect("the shared limit refuses before 40 requests");
    assert!(n <= 20, "refused after {n} requests: counted together, not per node");
}
