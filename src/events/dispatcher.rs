//! Publishes committed outbox rows to the bus, in order, marking each one published.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::Notify;

use entities::outbox_event;

use super::{BusEvent, EventBus};

/// Moves events from the outbox to the bus.
#[derive(Clone)]
pub struct Dispatcher {
    db: DatabaseConnection,
    bus: EventBus,
    wake: Arc<Notify>,
}

impl Dispatcher {
    /// A dispatcher over `db` feeding `bus`; `wake` is notified after each commit with events.
    pub fn new(db: DatabaseConnection, bus: EventBus, wake: Arc<Notify>) -> Self {
        Self { db, bus, wake }
    }

    /// Publishes every unpublished row once, oldest first; returns how many it published.
    pub async fn try_run_once(&self) -> Result<usize, sea_orm::DbErr> {
        let mut total = 0;
        loop {
            let rows = outbox_event::Entity::find()
                .filter(outbox_event::Column::PublishedAt.is_null())
                .order_by_asc(outbox_event::Column::Seq)
                .limit(500)
                .all(&self.db)
                .await?;
            if rows.is_empty() {
                return Ok(total);
            }
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            outbox_event::Entity::update_many()
                .col_expr(outbox_event::Column::PublishedAt, Expr::value(Utc::now()))
                .filter(outbox_event::Column::Seq.is_in(seqs))
                .exec(&self.db)
                .await?;
            total += rows.len();
            for r in rows {
                metrics::counter!("janua_events_published_total").increment(1);
                self.bus.publish(Arc::new(BusEvent::from(r)));
            }
        }
    }

    /// Runs until the process ends: after every wake-up, and at least every `interval`.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.try_run_once().await {
                    tracing::warn!(error = %e, "outbox dispatch failed; retrying");
                }
                let _ = tokio::time::timeout(interval, self.wake.notified()).await;
            }
        })
    }
}
