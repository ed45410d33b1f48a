//! `janua serve`, once started, gives back what starting took (`src/memory.rs`): it says so in
//! its log with the resident memory before and after, and serves on from code it unmapped.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use janua::security::secrets::MasterKey;
use serde_json::{Value, json};

use crate::helpers::{TempDir, get_json};
use crate::process::{free_port, over_sqlite, serve_on, wait_ready};

#[tokio::test]
async fn serve_gives_back_start_up_memory_and_serves_on() {
    let (dir, key, client) = (TempDir::new(), MasterKey::generate().to_base64(), reqwest::Client::new());
    let port = free_port();
    let mut cmd = serve_on(port);
    over_sqlite(&mut cmd, &dir, &key)
        .env("RUST_LOG", "janua=debug")
        .env("JANUA_LOG_FORMAT", "json")
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("start janua");
    // The release is logged before the server answers: read its log until that line.
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "released the memory starting took"
            {
                let _ = tx.send(v["fields"].clone());
            }
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &base).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let released = loop {
        if let Ok(v) = rx.try_recv() {
            break v;
        }
        assert!(Instant::now() < deadline, "no release in the log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(released["mappings"].as_u64().unwrap() > 0, "{released}");
    let (before, after) =
        (released["rss_before_kib"].as_u64().unwrap(), released["rss_after_kib"].as_u64().unwrap());
    assert!(after < before, "{released}");

    // It serves on, from code mapped again at first use: a sign-up and the caller it made.
    let r = client
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&json!({"email": "footprint@example.com", "password": "Correct-Horse-9-battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let token = body["data"]["tokens"]["access_token"].as_str().unwrap().to_owned();
    let me = get_json(&client, &format!("{base}/api/v1/auth/me"), Some(&token)).await;
    assert_eq!(me["data"]["email"], "footprint@example.com");
    child.kill().unwrap();
    let _ = child.wait();
}
