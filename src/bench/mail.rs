//! `janua bench --only mail` (issue 17): the time of `POST /auth/password/forgot` for a known and
//! an unknown address, interleaved in one run (median, p99, their ratio), then how many mails per
//! second the worker hands to a local SMTP sink from a backlog. The server runs in this process
//! over a temporary SQLite file (or a fresh schema of `--database-url`); the sink is
//! `bench::smtp_sink`.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::client::signup;
use super::smtp_sink::SmtpSink;
use super::stats::{elapsed_ms, percentile, sorted};
use crate::app::App;
use crate::services::mail::{self, MailKind};
use crate::services::unit_of_work::Write;
use crate::workers::mail::MailWorker;

/// Runs the mail group and prints its lines: `requests` forgot requests of each kind, then a
/// backlog of `mails` mails.
pub async fn run(database_url: Option<&str>, requests: usize, mails: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("janua-bench-mail-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let sink = SmtpSink::start().await?;
    let (mut config, backend, schema) = super::server::in_process_config(&dir, database_url).await?;
    config.smtp_url = Some(sink.url());
    let app = App::build_with_schema(config, schema.as_deref()).await?;
    let state = app.services.state.clone();
    let base = format!("http://{}", app.local_addr());
    let server = tokio::spawn(app.run());
    let client = reqwest::Client::new();
    signup(&client, &base, "known@bench.example.com").await?;
    anyhow::ensure!(sink.wait_for(1, Duration::from_secs(10)).await, "the verification mail did not arrive");

    // Known and unknown alternate, one request at a time, so drift hits both alike.
    let forgot = async |email: &str| -> anyhow::Result<f64> {
        let t = Instant::now();
        let r = client
            .post(format!("{base}/api/v1/auth/password/forgot"))
            .json(&json!({"email": email}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 202, "forgot: {}", r.status());
        r.bytes().await?;
        Ok(elapsed_ms(t))
    };
    for _ in 0..20 {
        forgot("known@bench.example.com").await?;
        forgot("nobody@bench.example.com").await?;
    }
    let (mut known, mut unknown) = (Vec::with_capacity(requests), Vec::with_capacity(requests));
    for i in 0..requests {
        if i % 2 == 0 {
            known.push(forgot("known@bench.example.com").await?);
            unknown.push(forgot("nobody@bench.example.com").await?);
        } else {
            unknown.push(forgot("nobody@bench.example.com").await?);
            known.push(forgot("known@bench.example.com").await?);
        }
    }
    let (known, unknown) = (sorted(known), sorted(unknown));
    let (k50, u50) = (percentile(&known, 0.5), percentile(&unknown, 0.5));
    println!("(mail, {backend}) POST /auth/password/forgot, {requests} each, interleaved, one client:");
    println!("  known address:   p50 {k50:.3} ms  p99 {:.3} ms", percentile(&known, 0.99));
    println!("  unknown address: p50 {u50:.3} ms  p99 {:.3} ms", percentile(&unknown, 0.99));
    println!("  median known / unknown = {:.3}", k50 / u50);
    // Let the worker finish the reset mails of that phase, then stop the server and its workers.
    MailWorker::new(state.clone()).try_run_once().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    server.abort();
    let _ = server.await;

    // A backlog of `mails` mails (queued in batches, as requests would), sent by one worker run.
    let before = sink.count();
    let mut queued = 0;
    while queued < mails {
        let n = (mails - queued).min(500);
        let mut w = Write::begin_worker(&state, "bench").await.map_err(|e| anyhow::anyhow!("{e}"))?;
        for i in queued..queued + n {
            let link = mail::link(&state.config, "/reset-password", &format!("bench-token-{i}"));
            mail::queue(
                &mut w,
                &format!("user{i}@bench.example.com"),
                Some("en"),
                MailKind::PasswordReset { link },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        w.commit().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        queued += n;
    }
    let start = Instant::now();
    let attempts = MailWorker::new(state.clone()).try_run_once().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let secs = start.elapsed().as_secs_f64();
    let arrived = sink.count() - before;
    anyhow::ensure!(arrived == mails, "{arrived} of {mails} mails arrived ({attempts} attempts)");
    println!(
        "  worker → local SMTP sink: {mails} mails in {secs:.2} s = {:.0} mails/s (concurrency {}, {} SMTP connections)",
        mails as f64 / secs,
        state.config.mail_concurrency,
        sink.connections(),
    );
    super::server::drop_schema(database_url, schema.as_deref()).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
