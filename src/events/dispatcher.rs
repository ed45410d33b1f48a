//! Publishes committed outbox rows to the bus, in order, marking each one published.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::{Mutex, Notify};

use entities::outbox_event;

use super::{BusEvent, EventBus};
use crate::storage::begin_write;

/// Moves events from the outbox to the bus.
#[derive(Clone)]
pub struct Dispatcher {
    db: DatabaseConnection,
    bus: EventBus,
    wake: Arc<Notify>,
    /// One run at a time in this process, so events leave in outbox order.
    running: Arc<Mutex<()>>,
}

impl Dispatcher {
    /// A dispatcher over `db` feeding `bus`; `wake` is notified after each commit with events.
    pub fn new(db: DatabaseConnection, bus: EventBus, wake: Arc<Notify>) -> Self {
        Self { db, bus, wake, running: Arc::new(Mutex::new(())) }
    }

    /// Publishes every unpublished row once, oldest first; returns how many it published.
    /// Rows are claimed and marked in one transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
    /// the write lock on SQLite), so no row is published twice.
    pub async fn try_run_once(&self) -> Result<usize, sea_orm::DbErr> {
        let _one_at_a_time = self.running.lock().await;
        let mut total = 0;
        loop {
            let txn = begin_write(&self.db).await?;
            let mut q = outbox_event::Entity::find()
                .filter(outbox_event::Column::PublishedAt.is_null())
                .order_by_asc(outbox_event::Column::Seq)
                .limit(500);
            if self.db.get_database_backend() == DbBackend::Postgres {
                q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
            }
            let rows = q.all(&txn).await?;
            if rows.is_empty() {
                txn.commit().await?;
                return Ok(total);
            }
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            outbox_event::Entity::update_many()
                .col_expr(outbox_event::Column::PublishedAt, Expr::value(Utc::now()))
                .filter(outbox_event::Column::Seq.is_in(seqs))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            total += rows.len();
            for r in rows {
                metrics::counter!("janua_events_published_total").increment(1);
                self.bus.publish(Arc::new(BusEvent::from(r)));
            }
        }
    }

    /// Runs until aborted: after every wake-up, and at least every `interval`.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.try_run_once().await {
                    tracing::warn!(error = %e, "outbox dispatch failed; retrying");
                }
                if tokio::time::timeout(interval, self.wake.notified()).await.is_ok() {
                    // Woken by a commit: give concurrent commits a moment to join this batch, so
                    // a burst costs one publishing transaction rather than one per request.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    }
}
