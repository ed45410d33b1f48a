//! The shared Redis of a cluster (`REDIS_URL`): one reconnecting connection per node for
//! commands, one pub/sub connection for events (see `events::forward_from_redis`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A handle on the configured Redis; cheap to clone. Keys and channels carry the prefix.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    /// Set after a connection failure: until then (ms since `epoch`) commands fail at once
    /// instead of each waiting for a timeout (callers fall back straight away).
    down_until_ms: Arc<AtomicU64>,
    epoch: Instant,
}

/// How long commands are skipped after Redis failed to answer.
const BACKOFF: Duration = Duration::from_secs(1);

impl Redis {
    /// A handle that connects on first use and reconnects by itself after Redis comes back.
    /// Commands fail fast (about a second) while Redis does not answer, so callers can fall back.
    pub fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(1000)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_owned(),
            down_until_ms: Arc::default(),
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Runs one Redis operation unless Redis failed less than a second ago; a connection
    /// failure or timeout starts that second.
    pub async fn guard<T>(&self, op: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
        if self.down_until_ms.load(Ordering::Relaxed) > self.now_ms() {
            return Err((redis::ErrorKind::Io, "redis did not answer a moment ago").into());
        }
        let r = op.await;
        if let Err(e) = &r
            && (e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal())
        {
            let until = self.now_ms() + BACKOFF.as_millis() as u64;
            self.down_until_ms.store(until, Ordering::Relaxed);
        }
        r
    }

    /// The prefixed name of a key or channel.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The command connection (clones share one multiplexed connection).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The client, for the dedicated pub/sub connection.
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The channel events are published on.
    pub fn events_channel(&self) -> String {
        self.key("events")
    }

    /// `PING`: whether Redis answers, and how long it took (ms).
    pub async fn ping(&self) -> (bool, f64) {
        let start = Instant::now();
        let mut conn = self.conn();
        let ok =
            tokio::time::timeout(Duration::from_secs(2), redis::cmd("PING").query_async::<String>(&mut conn))
                .await
                .is_ok_and(|r| r.is_ok());
        (ok, start.elapsed().as_secs_f64() * 1000.0)
    }
}
