//! A server killed while webhook deliveries are pending loses none of them: in process (the
//! server's future and its workers dropped mid-flight, on SQLite and PostgreSQL) and as a real
//! `janua` process killed with SIGKILL (SQLite).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use entities::{outbox_event, webhook_endpoint};
use janua::app::App;
use janua::config::Config;
use janua::security::secrets::MasterKey;

use crate::helpers::{Backend, PASSWORD, TempDir, post_json, signup_token};
use crate::process::{over_sqlite, serve_on, wait_ready};
use crate::webhooks::{Receiver, verify};

crate::on_both_databases!(a_killed_server_loses_no_delivery);

/// A configuration like `TestApp`'s, for servers the test starts and kills itself.
pub(crate) async fn own_config(b: &Backend, dir: &TempDir) -> (Config, Option<String>) {
    let mut c = Config::defaults();
    c.addr = "127.0.0.1:0".parse().unwrap();
    c.master_key = Some(MasterKey::generate().to_base64());
    c.master_key_file = dir.0.join("janua.key");
    c.rate_limit_per_minute = 100_000;
    c.credential_attempts_per_minute = 100_000;
    c.argon2_memory_kib = 8192;
    c.argon2_iterations = 1;
    c.mail_dir = dir.0.join("mail");
    c.webhook_allow_loopback = true;
    c.webhook_timeout = Duration::from_secs(2);
    match b {
        Backend::Sqlite => {
            c.database_url = format!("sqlite://{}?mode=rwc", dir.0.join("janua.db").display());
            (c, None)
        }
        Backend::Postgres(url) => {
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
            sea_orm::ConnectionTrait::execute_unprepared(&db, &format!("CREATE SCHEMA {name}"))
                .await
                .unwrap();
            db.close().await.ok();
            c.database_url = url.clone();
            (c, Some(name))
        }
    }
}

async fn a_killed_server_loses_no_delivery(b: Backend) {
    let dir = TempDir::new();
    let (config, schema) = own_config(&b, &dir).await;
    let rx = Receiver::start(vec![]).await;
    let client = reqwest::Client::new();

    let first = App::build_with_schema(config.clone(), schema.as_deref()).await.unwrap();
    let base = format!("http://{}/api/v1", first.local_addr());
    let server = tokio::spawn(first.run());
    let t = signup_token(&client, &base, "crash@example.com").await;
    let r =
        post_json(&client, &format!("{base}/webhooks"), Some(&t), json!({"url": rx.url(), "events": ["*"]}))
            .await;
    let endpoint = r["data"]["webhook"]["id"].as_str().unwrap().to_owned();
    for _ in 0..6 {
        let s = client
            .post(format!("{base}/auth/signin"))
            .json(&json!({"email": "crash@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(s.status(), 200);
    }
    // Killed while deliveries are pending: the server and its workers stop where they are.
    server.abort();
    let _ = server.await;
    let before = rx.got().len();

    let second = App::build_with_schema(config, schema.as_deref()).await.unwrap();
    let (state, dispatcher, worker) =
        (second.services.state.clone(), second.dispatcher.clone(), second.webhooks.clone());
    let server = tokio::spawn(second.run());
    let endpoint_id = uuid::Uuid::parse_str(&endpoint).unwrap();
    let ep = webhook_endpoint::Entity::find_by_id(endpoint_id).one(&state.db).await.unwrap().unwrap();
    let expected: HashSet<String> = outbox_event::Entity::find()
        .filter(outbox_event::Column::SubjectUserId.eq(ep.user_id.unwrap()))
        .filter(outbox_event::Column::CreatedAt.gte(ep.created_at))
        .all(&state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_id.to_string())
        .collect();
    assert_eq!(expected.len(), 1 + 6 * 2, "webhook.created and two events per sign-in");
    // A lease held by the killed server expires after the timeout (2 s) + 5 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        dispatcher.try_run_once().await.unwrap();
        worker.try_run_once().await.unwrap();
        let got: HashSet<String> = rx.event_ids().into_iter().collect();
        if got == expected {
            break;
        }
        assert!(got.is_subset(&expected), "only this user's events");
        assert!(std::time::Instant::now() < deadline, "{} of {} delivered", got.len(), expected.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids = rx.event_ids();
    eprintln!(
        "killed after {before} deliveries; {} received in all for {} events (at least once)",
        ids.len(),
        expected.len()
    );
    server.abort();
}

/// Starts the `janua` binary on `port` over the SQLite file in `dir`.
fn start_process(dir: &TempDir, port: u16, key: &str) -> std::process::Child {
    let mut cmd = serve_on(port);
    over_sqlite(&mut cmd, dir, key)
        .env("JANUA_WEBHOOK_TIMEOUT", "2s")
        .env("JANUA_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s,1s,1s")
        .spawn()
        .expect("start janua")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_process_loses_no_delivery() {
    let dir = TempDir::new();
    let key = MasterKey::generate().to_base64();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    // The receiver fails the first three attempts, so deliveries are pending (retrying, in order)
    // when the process is killed.
    let rx = Receiver::start(vec![503, 503, 503]).await;
    let client = reqwest::Client::new();

    let mut first = start_process(&dir, port, &key);
    wait_ready(&client, &base).await;
    let t = signup_token(&client, &format!("{base}/api/v1"), "sigkill@example.com").await;
    let v = post_json(
        &client,
        &format!("{base}/api/v1/webhooks"),
        Some(&t),
        json!({"url": rx.url(), "events": ["*"]}),
    )
    .await;
    let secret = v["data"]["secret"].as_str().unwrap().to_owned();
    let endpoint = uuid::Uuid::parse_str(v["data"]["webhook"]["id"].as_str().unwrap()).unwrap();
    for _ in 0..5 {
        let s = client
            .post(format!("{base}/api/v1/auth/signin"))
            .json(&json!({"email": "sigkill@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(s.status(), 200);
    }
    first.kill().expect("SIGKILL"); // `Child::kill` sends SIGKILL on Unix
    first.wait().unwrap();
    let at_kill: HashSet<String> = rx.event_ids().into_iter().collect();
    assert!(at_kill.len() < 11, "deliveries were pending when the process died");

    let mut second = start_process(&dir, port, &key);
    wait_ready(&client, &base).await;
    let db = sea_orm::Database::connect(format!("sqlite://{}?mode=rw", dir.0.join("janua.db").display()))
        .await
        .unwrap();
    let ep = webhook_endpoint::Entity::find_by_id(endpoint).one(&db).await.unwrap().unwrap();
    let expected: HashSet<String> = outbox_event::Entity::find()
        .filter(outbox_event::Column::SubjectUserId.eq(ep.user_id.unwrap()))
        .filter(outbox_event::Column::CreatedAt.gte(ep.created_at))
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_id.to_string())
        .collect();
    assert_eq!(expected.len(), 1 + 5 * 2);
    let deadline = Instant::now() + Duration::from_secs(40);
    let outcome = loop {
        let got: HashSet<String> = rx.event_ids().into_iter().collect();
        if got == expected || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(outcome, expected, "every event delivered after the restart");
    assert!(rx.got().iter().all(|r| verify(&secret, r)));
}
