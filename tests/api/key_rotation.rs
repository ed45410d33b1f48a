//! Key rotation without downtime: two `janua serve` processes on one SQLite file;
//! `janua keys rotate` as a third process; the other node publishes and signs with the new key
//! within `JANUA_KEY_REFRESH_INTERVAL`, and a token signed with the old key stays valid on both.

use std::time::{Duration, Instant};

use janua::security::secrets::MasterKey;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TempDir, post_json};
use crate::shutdown::serve;
use crate::tokens::verify_with_jwks;

fn kid_of(token: &str) -> String {
    let head = token.split('.').next().unwrap();
    let head: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, head).unwrap(),
    )
    .unwrap();
    head["kid"].as_str().unwrap().to_owned()
}

async fn jwks(client: &reqwest::Client, base: &str) -> Value {
    client.get(format!("{base}/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

async fn sign_in(client: &reqwest::Client, base: &str) -> String {
    let body = json!({"email": "rotate@example.com", "password": PASSWORD});
    let v = post_json(client, &format!("{base}/api/v1/auth/signin"), None, body).await;
    v["data"]["tokens"]["access_token"].as_str().unwrap().to_owned()
}

async fn me(client: &reqwest::Client, base: &str, token: &str) -> u16 {
    client.get(format!("{base}/api/v1/auth/me")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_by_another_process_reaches_every_node_and_old_tokens_stay_valid() {
    let (dir, key, client) = (TempDir::new(), MasterKey::generate().to_base64(), reqwest::Client::new());
    let env = [("JANUA_KEY_REFRESH_INTERVAL", "1s")];
    // One after the other: the first creates and migrates the database.
    let a = serve(&dir, &key, &env).await;
    let b = serve(&dir, &key, &env).await;
    let r = client
        .post(format!("{}/api/v1/auth/signup", b.base))
        .json(&json!({"email": "rotate@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let old = sign_in(&client, &b.base).await;
    let old_kid = kid_of(&old);

    let mut rotate = crate::process::janua(&["keys", "rotate"]);
    let out = crate::process::over_sqlite(&mut rotate, &dir, &key)
        .env("JANUA_KEY_REFRESH_INTERVAL", "1s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("janua keys rotate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    let new_kid = said
        .split_whitespace()
        .nth(3)
        .map(|k| k.trim_end_matches(';').to_owned())
        .unwrap_or_else(|| panic!("the new kid in {said}"));
    assert_ne!(new_kid, old_kid);
    let rotated = Instant::now();

    // Within the refresh interval (1 s; 10 s allowed here), B publishes the new key and signs with it.
    let deadline = rotated + Duration::from_secs(10);
    loop {
        let set = jwks(&client, &b.base).await;
        if kids(&set).contains(&new_kid) {
            break;
        }
        assert!(Instant::now() < deadline, "B's JWKS lists {new_kid} within 10 s: {set}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let published = rotated.elapsed();
    let fresh = loop {
        let t = sign_in(&client, &b.base).await;
        if kid_of(&t) == new_kid {
            break t;
        }
        assert!(Instant::now() < deadline, "B signs with {new_kid} within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "node B published the new key {} ms after `janua keys rotate`, signed with it after {} ms",
        published.as_millis(),
        rotated.elapsed().as_millis()
    );

    // The old token stays valid on both nodes, and both keys are published by both.
    for node in [&a, &b] {
        assert_eq!(me(&client, &node.base, &old).await, 200, "old token on {}", node.base);
        assert_eq!(me(&client, &node.base, &fresh).await, 200, "new token on {}", node.base);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let set_a = loop {
        let set = jwks(&client, &a.base).await;
        if kids(&set).contains(&new_kid) || Instant::now() > deadline {
            break set;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let set_b = jwks(&client, &b.base).await;
    for set in [&set_a, &set_b] {
        let k = kids(set);
        assert!(k.contains(&old_kid) && k.contains(&new_kid), "both keys published: {set}");
        // A third-party JWT library verifies both tokens against the served JWKS.
        assert_eq!(verify_with_jwks(&old, set)["email"], "rotate@example.com");
        assert_eq!(verify_with_jwks(&fresh, set)["email"], "rotate@example.com");
    }
    assert_eq!(kid_of(&sign_in(&client, &a.base).await), new_kid, "A signs with the new key too");
}
