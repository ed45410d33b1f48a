//! Latency figures: a timed load phase over concurrent workers, and percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Latency figures of one load phase.
pub(crate) struct Phase {
    pub(crate) requests: usize,
    pub(crate) errors: usize,
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests, {} errors)",
            self.rps, self.p50_ms, self.p99_ms, self.requests, self.errors
        )
    }
}

/// Runs `workers` loops of `step` for `seconds`; a step takes the worker's state and gives it
/// back with whether the request succeeded.
pub(crate) async fn load<S, F, Fut>(workers: Vec<S>, seconds: u64, step: F) -> Phase
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = (S, bool)> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in workers {
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut w = w;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (next, ok) = step(w).await;
                w = next;
                if !ok {
                    errors += 1;
                }
                lat.push(elapsed_ms(t));
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.await.unwrap_or_default();
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let all = sorted(all);
    Phase {
        requests: all.len(),
        errors,
        rps: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
    }
}

/// Runs `phase` on a thread of its own with a single-threaded runtime, as `wrk -t1` drives a
/// server: the load generator takes at most one core, without wake-ups across threads, and what
/// `phase` opens (connections) lives on that runtime.
pub(crate) async fn on_one_thread<T, F, Fut>(phase: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let r = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(phase()));
        let _ = tx.send(r);
    });
    rx.await.map_err(|_| anyhow::anyhow!("the load thread ended without a result"))?
}

/// The value at quantile `q` (0–1) of `values`, sorted ascending (0 when empty).
pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    values
        .get(((values.len() as f64 * q) as usize).min(values.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

/// `v` in ascending order (what [`percentile`] reads).
pub(crate) fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// Milliseconds since `t`.
pub(crate) fn elapsed_ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
