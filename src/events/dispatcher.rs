//! Publishes committed outbox rows to the bus, in order, marking each one published.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use tokio::sync::{Mutex, Notify};

use entities::outbox_event;

use super::{BusEvent, EventBus};
use crate::storage::{Redis, WriteGate};

/// The PostgreSQL advisory lock held while publishing to Redis (one dispatcher at a time).
const DISPATCH_LOCK: i64 = 0x4a41_4e55_4101;

/// The most outbox rows one dispatcher transaction publishes.
const BATCH: usize = 500;

/// The shortest time between the starts of two dispatcher runs.
const BATCH_WINDOW: Duration = Duration::from_millis(2);

/// Moves events from the outbox to the bus.
#[derive(Clone)]
pub struct Dispatcher {
    db: DatabaseConnection,
    bus: EventBus,
    wake: Arc<Notify>,
    /// One run at a time in this process, so events leave in outbox order.
    running: Arc<Mutex<()>>,
    /// With Redis, events go to its channel (every node's forwarder feeds its own bus).
    redis: Option<Redis>,
    /// The process's write gate (SQLite), taken for each transaction (none until given one).
    gate: WriteGate,
}

impl Dispatcher {
    /// A dispatcher over `db` feeding `bus`; `wake` is notified after each commit with events.
    pub fn new(db: DatabaseConnection, bus: EventBus, wake: Arc<Notify>) -> Self {
        Self { db, bus, wake, running: Arc::new(Mutex::new(())), redis: None, gate: WriteGate::default() }
    }

    /// Publishes through Redis pub/sub when `redis` is set (a cluster), else to the local bus.
    pub fn with_redis(mut self, redis: Option<Redis>) -> Self {
        self.redis = redis;
        self
    }

    /// Takes the process's write gate for each transaction, like every other writer.
    pub fn with_write_gate(mut self, gate: WriteGate) -> Self {
        self.gate = gate;
        self
    }

    /// `PUBLISH`es one event on the Redis channel (every node, this one included, gets it from
    /// there).
    async fn publish_to_redis(redis: &Redis, e: &BusEvent) -> anyhow::Result<()> {
        let json = serde_json::to_string(e)?;
        let mut conn = redis.conn();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(redis.events_channel()).arg(json);
        redis.guard(publish.query_async::<i64>(&mut conn)).await?;
        Ok(())
    }

    /// Publishes every unpublished row once, oldest first; returns how many it published.
    /// Rows are claimed and marked in one transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
    /// the write lock on SQLite), so no row is published twice.
    ///
    /// With Redis (several nodes), events are published to its channel before the commit, under a
    /// cluster-wide lock (an advisory lock on PostgreSQL, the write lock on SQLite), so every node
    /// receives them in outbox order; a failed commit publishes them again later, and subscribers
    /// skip what they have seen (by outbox position). When Redis does not answer, the events stay
    /// unpublished in the outbox (on every node, this one included) and go out, in order, at the
    /// first run once it answers again (runs come with every commit and at least every interval);
    /// a node whose subscription to the channel broke meanwhile re-reads what it missed from the
    /// outbox ([`super::forward_from_redis`]). Nothing is lost, nothing is delivered twice.
    pub async fn try_run_once(&self) -> Result<usize, sea_orm::DbErr> {
        let _one_at_a_time = self.running.lock().await;
        let mut total = 0;
        let postgres = self.db.get_database_backend() == DbBackend::Postgres;
        loop {
            let (_pass, txn) = self.gate.begin(&self.db).await?;
            if self.redis.is_some() && postgres {
                txn.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT pg_advisory_xact_lock($1)",
                    [DISPATCH_LOCK.into()],
                ))
                .await?;
            }
            let mut q = outbox_event::Entity::find()
                .filter(outbox_event::Column::PublishedAt.is_null())
                .order_by_asc(outbox_event::Column::Seq)
                .limit(BATCH as u64);
            if postgres {
                q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
            }
            let rows = q.all(&txn).await?;
            if rows.is_empty() {
                txn.commit().await?;
                return Ok(total);
            }
            // A batch short of the limit took every row committed when it read: rows committed
            // since come with a wake-up of their own (a permit kept while this run runs), so
            // the run ends with this transaction instead of opening one more to find nothing
            // (on SQLite each is a turn of the write lock the requests wait for).
            let more = rows.len() == BATCH;
            let events: Vec<BusEvent> = rows.into_iter().map(BusEvent::from).collect();
            // With Redis, only what reached its channel is marked published: the rest stays in
            // the outbox, for the next run once Redis answers (then every node gets it, in order).
            let (sent, redis_down) = match &self.redis {
                Some(redis) => {
                    let mut sent = 0;
                    for e in &events {
                        if let Err(err) = Self::publish_to_redis(redis, e).await {
                            tracing::warn!(error = %err, "redis publish failed; events held in the outbox until it answers");
                            metrics::counter!("janua_events_held_total", "reason" => "redis_unavailable")
                                .increment((events.len() - sent) as u64);
                            break;
                        }
                        sent += 1;
                    }
                    (sent, sent < events.len())
                }
                None => (events.len(), false),
            };
            if sent > 0 {
                let seqs: Vec<i64> = events[..sent].iter().map(|e| e.seq).collect();
                outbox_event::Entity::update_many()
                    .col_expr(outbox_event::Column::PublishedAt, Expr::value(Utc::now()))
                    .filter(outbox_event::Column::Seq.is_in(seqs))
                    .exec(&txn)
                    .await?;
            }
            total += sent;
            metrics::counter!("janua_events_published_total").increment(sent as u64);
            txn.commit().await?;
            if self.redis.is_none() {
                for e in events {
                    self.bus.publish(Arc::new(e));
                }
            }
            if redis_down || !more {
                return Ok(total);
            }
        }
    }

    /// Runs until aborted: after every wake-up, and at least every `interval`.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let started = tokio::time::Instant::now();
                if let Err(e) = self.try_run_once().await {
                    tracing::warn!(error = %e, "outbox dispatch failed; retrying");
                }
                if tokio::time::timeout(interval, self.wake.notified()).await.is_ok() {
                    // A commit after a quiet spell is published at once; under a burst, runs start
                    // at most every BATCH_WINDOW, so concurrent commits share one publishing
                    // transaction rather than taking the write lock once per request.
                    tokio::time::sleep_until(started + BATCH_WINDOW).await;
                }
            }
        })
    }
}
