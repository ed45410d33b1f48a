//! When each credential's (API key's, SCIM token's) `last_used_at` was last written, so a busy
//! one costs one write a minute, off the request path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

/// How often a key's `last_used_at` is written at most.
const WRITE_EVERY: Duration = Duration::from_secs(60);

/// Remembers, per key, when its use was last written (in process; a node restart writes again).
#[derive(Clone, Default)]
pub struct UsageThrottle(Arc<DashMap<Uuid, Instant>>);

impl UsageThrottle {
    /// Whether key `id`'s use is due to be written now; if so, it counts as written.
    pub fn take_due(&self, id: Uuid) -> bool {
        let mut last = self.0.entry(id).or_insert_with(|| Instant::now() - WRITE_EVERY * 2);
        if last.elapsed() < WRITE_EVERY {
            return false;
        }
        *last = Instant::now();
        true
    }

    /// When `id`'s use is due, sets its `last_used` column (the row whose `id_column` is `id`)
    /// to now in a background task; a failed write is only a stale timestamp.
    pub fn record<E: EntityTrait>(
        &self,
        db: &DatabaseConnection,
        id: Uuid,
        id_column: E::Column,
        last_used: E::Column,
    ) where
        E::Column: Send + 'static,
    {
        if !self.take_due(id) {
            return;
        }
        let (db, now) = (db.clone(), chrono::Utc::now());
        tokio::spawn(async move {
            let _ = E::update_many()
                .col_expr(last_used, Expr::value(now))
                .filter(id_column.eq(id))
                .exec(&db)
                .await;
        });
    }
}
