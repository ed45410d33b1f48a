//! Webhook delivery: fans published outbox events out into deliveries, sends the due ones
//! (signed, 15 s timeout, no redirects, only to allowed addresses) and records each attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::task::JoinSet;
use uuid::Uuid;

use entities::webhook_delivery;

use crate::config::Config;
use crate::context::RequestContext;
use crate::domain::webhooks::AddressPolicy;
use crate::error::AppResult;
use crate::security::outbound::{AddressNotAllowed, guarded_client};
use crate::services::webhook_deliveries::{self as deliveries, DeliveryView};
use crate::services::webhook_queue::{self as queue, AttemptOutcome, Claimed};
use crate::services::webhooks::address_policy;
use crate::state::AppState;

/// `sha256=` and the hex HMAC-SHA256 of `"{timestamp}.{body}"` keyed with the endpoint's secret
/// (the whole `whsec_…` string, as UTF-8): the `X-Janua-Signature` header.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The HTTP client of webhook deliveries.
pub fn client(config: &Config) -> anyhow::Result<reqwest::Client> {
    let policy = AddressPolicy {
        allow_loopback: config.webhook_allow_loopback,
        allow_private: config.webhook_allow_private,
    };
    guarded_client(
        policy,
        config.webhook_timeout,
        config.webhook_concurrency,
        concat!("Janua-Webhooks/", env!("CARGO_PKG_VERSION")),
    )
}

fn root_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> &'a (dyn std::error::Error + 'static) {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur
}

fn has_cause<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<T>() {
            return true;
        }
        cur = c.source();
    }
    false
}

/// Sends one delivery once and says what happened (never fails: failures are outcomes).
pub async fn send(state: &AppState, c: &Claimed) -> AttemptOutcome {
    let started_at = Utc::now();
    let clock = Instant::now();
    let outcome = |status_code: Option<u16>, error: Option<String>, retryable: bool| AttemptOutcome {
        started_at,
        duration_ms: clock.elapsed().as_millis() as i64,
        status_code,
        error,
        retryable,
    };
    let policy = address_policy(state);
    let literal = reqwest::Url::parse(&c.url).ok().and_then(|u| {
        u.host_str().and_then(|h| h.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok())
    });
    if literal.is_some_and(|ip| !policy.allows(ip)) {
        return outcome(None, Some(AddressNotAllowed.to_string()), false);
    }
    let d = &c.delivery;
    let body = serde_json::to_vec(&d.payload).unwrap_or_default();
    let timestamp = Utc::now().timestamp();
    let sent = state
        .webhook_client
        .post(&c.url)
        .header("content-type", "application/json")
        .header("x-janua-signature", signature(&c.secret.0, timestamp, &body))
        .header("x-janua-timestamp", timestamp.to_string())
        .header("x-janua-event-id", d.event_id.to_string())
        .header("x-janua-event-type", d.event_type.as_str())
        .header("x-janua-delivery-id", d.id.to_string())
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let s = resp.status().as_u16();
            let retryable = s >= 500 || s == 408 || s == 429;
            let error = (!resp.status().is_success()).then(|| format!("HTTP {s}"));
            outcome(Some(s), error, retryable)
        }
        Err(e) if e.is_timeout() => outcome(None, Some("timed out".into()), true),
        Err(e) if has_cause::<AddressNotAllowed>(&e) => {
            outcome(None, Some(AddressNotAllowed.to_string()), false)
        }
        Err(e) => {
            // The URL (which may hold a token) is left out of the recorded error.
            let e = e.without_url();
            let detail = root_cause(&e).to_string();
            outcome(None, Some(format!("connection failed: {detail}")), true)
        }
    }
}

/// What `testWebhook` reports.
#[derive(Clone, Debug)]
pub struct TestResult {
    pub delivery: DeliveryView,
    pub success: bool,
    pub status_code: Option<u16>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// Sends `webhook.test` to one of the caller's endpoints now, records the attempt (and the
/// audited event) and reports the receiver's answer and the time it took.
pub async fn test_webhook(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<TestResult> {
    let delivery_id = deliveries::queue_test(state, ctx, id).await?;
    let claimed = queue::claim_leased(state, delivery_id).await?;
    let outcome = send(state, &claimed).await;
    queue::record_attempts(state, vec![(claimed, outcome.clone())]).await?;
    Ok(TestResult {
        delivery: deliveries::delivery_view(&state.db, delivery_id).await?,
        success: outcome.succeeded(),
        status_code: outcome.status_code,
        duration_ms: outcome.duration_ms,
        error: outcome.error,
    })
}

/// Fans out and sends webhook deliveries; any number of these may run, on any number of nodes.
#[derive(Clone)]
pub struct WebhookWorker {
    state: AppState,
}

/// What one attempt in flight gives back: the delivery as claimed and what the attempt gave.
type Sent = (Claimed, AttemptOutcome);

impl WebhookWorker {
    /// A worker over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Fans out every published event and sends every delivery due now, including retries that
    /// fall due meanwhile; returns how many attempts it made. (The server's own loop is
    /// [`WebhookWorker::spawn`]; this is a run to completion, for tests and tools.)
    pub async fn try_run_once(&self) -> AppResult<usize> {
        // One run at a time in this process (any worker built over the same state).
        let _one_at_a_time = self.state.webhook_running.lock().await;
        let state = &self.state;
        let mut attempts = 0;
        loop {
            let fanned = queue::fan_out_once(state).await?;
            let claimed = queue::claim_due(state, state.config.webhook_concurrency.max(1)).await?;
            if claimed.is_empty() {
                if fanned == 0 {
                    return Ok(attempts);
                }
                continue;
            }
            attempts += claimed.len();
            let results: Vec<Sent> = futures::stream::iter(claimed)
                .map(|c| async move {
                    let o = send(state, &c).await;
                    (c, o)
                })
                .buffer_unordered(state.config.webhook_concurrency.max(1))
                .collect()
                .await;
            queue::record_attempts(state, results).await?;
        }
    }

    /// Runs until aborted or shut down: claims due deliveries whenever fewer than
    /// `JANUA_WEBHOOK_CONCURRENCY` attempts are in flight (after each commit or published event,
    /// each finished attempt, and at least every `interval`), sends each on its own and records
    /// it as soon as it ends, so a slow or failing delivery holds up no other. When the server
    /// shuts down it claims nothing more, lets the attempts in flight finish until the grace
    /// runs out and hands back the rest ([`queue::hand_back`]); the task then ends.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.serve(interval).await })
    }

    async fn serve(self, interval: Duration) {
        let state = self.state.clone();
        let shutdown = state.shutdown.clone();
        let width = state.config.webhook_concurrency.max(1);
        let mut published = state.bus.subscribe();
        let mut in_flight: JoinSet<Sent> = JoinSet::new();
        // What each attempt in flight is, should the grace run out before it ends.
        let mut sending: HashMap<tokio::task::Id, (webhook_delivery::Model, chrono::DateTime<Utc>)> =
            HashMap::new();
        let mut done: Vec<Sent> = Vec::new();
        let mut look = true;
        // Held while attempts are in flight, so a `try_run_once` in this process waits until
        // they are recorded (and this loop claims nothing while one runs).
        let mut busy: Option<tokio::sync::OwnedMutexGuard<()>> = None;
        loop {
            let stopping = shutdown.deadline().is_some();
            if look && !stopping {
                look = false;
                if busy.is_none() {
                    busy = state.webhook_running.clone().try_lock_owned().ok();
                }
                if busy.is_none() {
                    look = true;
                } else {
                    match self.fill(&mut in_flight, &mut sending, width).await {
                        Ok(true) => look = true,
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(code = %e.code, cause = ?e.internal, "webhook claim failed; retrying")
                        }
                    }
                }
            }
            if !done.is_empty() {
                match queue::record_attempts(&state, std::mem::take(&mut done)).await {
                    Ok(()) => look = true,
                    Err(e) => {
                        // The leases run out and the attempts are recorded as cut short.
                        tracing::warn!(code = %e.code, cause = ?e.internal, "recording webhook attempts failed")
                    }
                }
            }
            if in_flight.is_empty() {
                busy = None;
            }
            if stopping && in_flight.is_empty() {
                return;
            }
            let wait = if look { COALESCE } else { interval };
            tokio::select! {
                Some(r) = in_flight.join_next_with_id() => {
                    collect(r, &mut sending, &mut done);
                    while let Some(r) = in_flight.try_join_next_with_id() {
                        collect(r, &mut sending, &mut done);
                    }
                    continue;
                }
                _ = state.webhook_wake.notified(), if !stopping => {}
                _ = published.recv(), if !stopping => {}
                _ = tokio::time::sleep(wait), if !stopping => {}
                _ = shutdown.begun(), if !stopping => continue,
                () = shutdown.overdue(), if stopping => {
                    in_flight.abort_all();
                    while let Some(r) = in_flight.join_next_with_id().await {
                        collect(r, &mut sending, &mut done);
                    }
                    let _ = queue::record_attempts(&state, std::mem::take(&mut done)).await;
                    let cut: Vec<_> = sending.drain().map(|(_, v)| v).collect();
                    let n = cut.len();
                    match queue::hand_back(&state, cut).await {
                        Ok(()) => tracing::info!(deliveries = n, "webhook attempts handed back at shutdown"),
                        Err(e) => tracing::warn!(code = %e.code, cause = ?e.internal, "handing back webhook attempts failed"),
                    }
                    return;
                }
            }
            // Let a burst of commits gather so one claim takes them together: under load a
            // claim per event would compete with the requests for the database's write lock.
            tokio::time::sleep(COALESCE).await;
            while published.try_recv().is_ok() {}
            look = true;
        }
    }

    /// Fans out and claims up to the free width; whether it filled the width (more may be due).
    async fn fill(
        &self,
        in_flight: &mut JoinSet<Sent>,
        sending: &mut HashMap<tokio::task::Id, (webhook_delivery::Model, chrono::DateTime<Utc>)>,
        width: usize,
    ) -> AppResult<bool> {
        let state = &self.state;
        while queue::fan_out_once(state).await? > 0 {}
        let free = width.saturating_sub(in_flight.len());
        if free == 0 {
            return Ok(false);
        }
        let claimed = queue::claim_due(state, free).await?;
        let full = claimed.len() == free;
        for c in claimed {
            let row = c.delivery.clone();
            let state = state.clone();
            let handle = in_flight.spawn(async move {
                let o = send(&state, &c).await;
                (c, o)
            });
            sending.insert(handle.id(), (row, Utc::now()));
        }
        Ok(full)
    }
}

/// Files a finished attempt (a panicked or aborted one stays in `sending`, to be handed back).
fn collect(
    r: Result<(tokio::task::Id, Sent), tokio::task::JoinError>,
    sending: &mut HashMap<tokio::task::Id, (webhook_delivery::Model, chrono::DateTime<Utc>)>,
    done: &mut Vec<Sent>,
) {
    if let Ok((id, sent)) = r {
        sending.remove(&id);
        done.push(sent);
    }
}

/// How long a woken worker waits for more events before it claims (batching under load).
const COALESCE: Duration = Duration::from_millis(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_follows_the_documented_recipe() {
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // "{timestamp}.{body}" with the secret as key.
        let s = signature("Jefe", 1, b"x");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1.x");
        mac.verify_slice(&hex_decode(&s["sha256=".len()..])).unwrap();
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
