//! The shared Redis of a cluster (`REDIS_URL`): one reconnecting connection per node for
//! commands, one pub/sub connection for events (see `events::forward_from_redis`).

use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A handle on the configured Redis; cheap to clone. Keys and channels carry the prefix.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
}

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
        Ok(Self { client, conn, prefix: prefix.to_owned() })
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
