//! No mail is lost or sent twice: a server killed while mails wait for a server that is down
//! (in process, on SQLite and PostgreSQL, with a lease held by the dead node; and a real `janua`
//! process killed with SIGKILL), and two nodes draining one outbox at once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use entities::mail_outbox;
use janua::app::App;
use janua::security::secrets::MasterKey;
use janua::services::mail::queue;

use crate::helpers::{Backend, PASSWORD, TempDir, post_json};
use crate::process::{free_port, over_sqlite, serve_on, wait_ready};
use crate::smtp_sink::{Mail, SmtpSink, drain, with_sink};
use crate::webhooks_crash::own_config;

crate::on_both_databases!(a_killed_server_loses_no_mail, two_nodes_send_each_mail_once);

/// Waits until the sink has `n` messages; then checks, a little later, that no more came and
/// that each has its own Message-ID.
async fn exactly(sink: &SmtpSink, n: usize, within: Duration) -> Vec<Mail> {
    assert!(sink.wait_for(n, within).await, "{} of {n} mails arrived", sink.count());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mails: Vec<Mail> = sink.received().iter().map(Mail::parse).collect();
    assert_eq!(
        mails.len(),
        n,
        "each mail once: {:?}",
        mails.iter().map(|m| (&m.to, &m.subject)).collect::<Vec<_>>()
    );
    let ids: HashSet<_> = mails.iter().map(|m| m.message_id.clone().expect("a Message-ID")).collect();
    assert_eq!(ids.len(), n);
    mails
}

async fn a_killed_server_loses_no_mail(b: Backend) {
    let dir = TempDir::new();
    let (mut config, schema) = own_config(&b, &dir).await;
    let port = free_port();
    config.smtp_url = Some(format!("smtp://127.0.0.1:{port}?tls=none"));
    config.smtp_timeout = Duration::from_secs(1);
    config.mail_retry_schedule = vec![Duration::from_millis(300); 100];
    let client = reqwest::Client::new();

    let first = App::build_with_schema(config.clone(), schema.as_deref()).await.unwrap();
    let state = first.services.state.clone();
    let base = format!("http://{}/api/v1", first.local_addr());
    let server = tokio::spawn(first.run());
    for name in ["ann", "bob", "cyd"] {
        let r = client
            .post(format!("{base}/auth/signup"))
            .json(&json!({"email": format!("{name}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "the request does not wait for SMTP");
    }
    let r = client
        .post(format!("{base}/auth/password/forgot"))
        .json(&json!({"email": "ann@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // The dead node holds the lease of one mail it never got to record (claimed here between two
    // of its background worker's failed attempts).
    let deadline = Instant::now() + Duration::from_secs(20);
    let leased = loop {
        janua::services::account_requests::resolve_due(&state).await.unwrap();
        let claimed = queue::claim_due(&state, 1).await.unwrap();
        if !claimed.is_empty() {
            break claimed;
        }
        assert!(Instant::now() < deadline, "a mail to claim");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    server.abort();
    let _ = server.await;
    drop(state);

    let sink = SmtpSink::start_on(port).await.unwrap();
    let second = App::build_with_schema(config, schema.as_deref()).await.unwrap();
    let db = second.services.state.db.clone();
    let server = tokio::spawn(second.run());
    // The leased one waits for its lease (1 s × 4 + 5 s) to end.
    let mails = exactly(&sink, 4, Duration::from_secs(40)).await;
    let reset = mails.iter().filter(|m| m.subject.starts_with("Reset your")).count();
    assert_eq!(reset, 1, "three verifications and one reset");
    let leased_row = mail_outbox::Entity::find_by_id(leased[0].id).one(&db).await.unwrap().unwrap();
    assert_eq!(leased_row.status, "sent");
    server.abort();
}

async fn two_nodes_send_each_mail_once(b: Backend) {
    let (app, sink) = with_sink(b, |_| {}).await;
    let peer = app.spawn_peer().await;
    let mut expected = 0;
    for i in 0..8 {
        app.signup(&format!("user{i}@example.com")).await;
        let r = peer
            .rest(
                "POST",
                "/auth/password/forgot",
                None,
                Some(json!({"email": format!("user{i}@example.com")})),
            )
            .await;
        assert_eq!(r.status, 202);
        expected += 2;
    }
    // Both nodes' workers (the background loops and these runs) compete for the same rows.
    tokio::join!(drain(&app), drain(&peer), drain(&app), drain(&peer));
    exactly(&sink, expected, Duration::from_secs(30)).await;
    let db = &app.services.state.db;
    let pending = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Status.is_in(["pending", "requested"]))
        .all(db)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
}

/// Starts the `janua` binary on `port` over the SQLite file in `dir`, mailing to `smtp_port`.
fn start_process(dir: &TempDir, port: u16, key: &str, smtp_port: u16) -> std::process::Child {
    let mut cmd = serve_on(port);
    over_sqlite(&mut cmd, dir, key)
        .env("JANUA_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}?tls=none"))
        .env("JANUA_SMTP_TIMEOUT", "1s")
        .env(
            "JANUA_MAIL_RETRY_SCHEDULE",
            "500ms,500ms,500ms,500ms,500ms,500ms,500ms,500ms,500ms,500ms,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
        )
        .spawn()
        .expect("start janua")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_process_loses_no_mail() {
    let dir = TempDir::new();
    let key = MasterKey::generate().to_base64();
    let (port, smtp_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let mut first = start_process(&dir, port, &key, smtp_port);
    wait_ready(&client, &base).await;
    for name in ["ann", "bob"] {
        let body = json!({"email": format!("{name}@example.com"), "password": PASSWORD});
        let v = post_json(&client, &format!("{base}/api/v1/auth/signup"), None, body).await;
        assert_eq!(v["success"], true, "{v}");
    }
    let r = client
        .post(format!("{base}/api/v1/auth/magic-link"))
        .json(&json!({"email": "bob@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // Let the process try (and fail) at least once before it dies.
    let db = sea_orm::Database::connect(format!("sqlite://{}?mode=rw", dir.0.join("janua.db").display()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Attempts.gte(1))
        .all(&db)
        .await
        .unwrap()
        .len()
        < 3
    {
        assert!(Instant::now() < deadline, "the process tried to send");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().expect("SIGKILL"); // `Child::kill` sends SIGKILL on Unix
    first.wait().unwrap();

    let sink = SmtpSink::start_on(smtp_port).await.unwrap();
    let mut second = start_process(&dir, port, &key, smtp_port);
    wait_ready(&client, &base).await;
    let outcome = async {
        let mails = exactly(&sink, 3, Duration::from_secs(40)).await;
        let to: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(to.iter().filter(|t| **t == "bob@example.com").count(), 2, "{to:?}");
    };
    let result = tokio::time::timeout(Duration::from_secs(60), outcome).await;
    let _ = second.kill();
    let _ = second.wait();
    result.expect("the mails arrived after the restart");
}
