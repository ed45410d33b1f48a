//! The webhook phase of `janua bench`: 100 endpoints of one user subscribed to
//! `session.refreshed`, a fast receiver on 127.0.0.1, and two measurements: the delay from an
//! event's commit to the receiver's first byte (p50/p99, at a paced 10 events/s), and
//! deliveries per second with events fired as fast as one client can.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::client::{Tokens, refresh, signup};
use super::stats::{percentile, sorted};

/// Endpoints subscribed.
const ENDPOINTS: usize = 100;

#[derive(Default)]
struct Seen {
    /// Event time → receiver first byte, in ms.
    delays: Vec<f64>,
    count: usize,
}

async fn receive(State(seen): State<Arc<Mutex<Seen>>>, req: Request) -> &'static str {
    let first_byte = Utc::now();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let created = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["created_at"].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()));
    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
    s.count += 1;
    if let Some(c) = created {
        s.delays.push((first_byte - c.with_timezone(&Utc)).num_microseconds().unwrap_or(0) as f64 / 1000.0);
    }
    ""
}

/// Refreshes once; returns the next refresh token.
async fn next_token(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    refresh(client, base, token).await.ok_or_else(|| anyhow::anyhow!("refresh failed"))
}

async fn wait_for(seen: &Mutex<Seen>, count: usize, limit: Duration) -> Instant {
    let start = Instant::now();
    while seen.lock().map(|s| s.count).unwrap_or(0) < count && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Instant::now()
}

/// Runs the phase against the server at `base` (started with `JANUA_WEBHOOK_ALLOW_LOOPBACK`);
/// returns the report lines.
pub async fn phase(client: &reqwest::Client, base: &str, seconds: u64) -> anyhow::Result<String> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let router = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    let receiver = tokio::spawn(async move { axum::serve(listener, router).await });

    let Tokens { access, refresh: mut token, .. } = signup(client, base, "webhook-bench@example.com").await?;
    for _ in 0..ENDPOINTS {
        let r = client
            .post(format!("{base}/api/v1/webhooks"))
            .bearer_auth(&access)
            .json(&json!({"url": hook, "events": ["session.refreshed"]}))
            .send()
            .await?;
        anyhow::ensure!(r.status().as_u16() == 201, "creating an endpoint failed: {}", r.text().await?);
    }

    // (1) Delay at a paced 10 events/s.
    let paced = (seconds * 10).max(10) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for _ in 0..paced {
        tick.tick().await;
        token = next_token(client, base, &token).await?;
    }
    wait_for(&seen, paced * ENDPOINTS, Duration::from_secs(60)).await;
    let delays = sorted(std::mem::take(&mut seen.lock().unwrap_or_else(|e| e.into_inner()).delays));
    let paced_got = delays.len();

    // (2) Throughput: events as fast as one client sends them for `seconds`, then the drain.
    let before = seen.lock().map(|s| s.count).unwrap_or(0);
    let start = Instant::now();
    let mut events = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        token = next_token(client, base, &token).await?;
        events += 1;
    }
    let done = wait_for(&seen, before + events * ENDPOINTS, Duration::from_secs(120)).await;
    let delivered = seen.lock().map(|s| s.count).unwrap_or(0) - before;
    let rate = delivered as f64 / done.duration_since(start).as_secs_f64();
    receiver.abort();

    Ok(format!(
        "(e) webhooks, {ENDPOINTS} endpoints on one user: commit → receiver first byte p50 {:.1} ms  p99 {:.1} ms \
         ({paced_got} deliveries of {paced} events at 10 events/s)\n    \
         throughput {rate:.0} deliveries/s ({delivered} of {} for {events} events sent in {seconds} s, drained in {:.1} s)",
        percentile(&delays, 0.50),
        percentile(&delays, 0.99),
        events * ENDPOINTS,
        done.duration_since(start).as_secs_f64(),
    ))
}
