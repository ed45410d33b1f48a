//! Which sessions are revoked, answered without a database query per request.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use entities::session;

/// Revoked sessions that have not yet expired, kept in process. It is loaded from the database
/// at start and updated by every revocation this node makes, so a revoked session's access
/// token is refused at the next request.
#[derive(Clone, Default)]
pub struct RevocationStore {
    revoked: Arc<DashMap<Uuid, DateTime<Utc>>>,
}

impl RevocationStore {
    /// Loads every revoked, unexpired session.
    pub async fn load(db: &DatabaseConnection) -> anyhow::Result<Self> {
        let store = Self::default();
        let rows = session::Entity::find()
            .filter(session::Column::RevokedAt.is_not_null())
            .filter(session::Column::ExpiresAt.gt(Utc::now()))
            .all(db)
            .await?;
        for s in rows {
            store.revoked.insert(s.id, s.expires_at);
        }
        Ok(store)
    }

    /// Marks a session revoked until it would have expired anyway.
    pub fn revoke(&self, session_id: Uuid, expires_at: DateTime<Utc>) {
        self.revoked.insert(session_id, expires_at);
    }

    /// Whether tokens of this session must be refused.
    pub fn is_revoked(&self, session_id: Uuid) -> bool {
        self.revoked.contains_key(&session_id)
    }

    /// Forgets revocations of sessions that have expired (their tokens are refused anyway).
    pub fn purge_expired(&self) {
        let now = Utc::now();
        self.revoked.retain(|_, exp| *exp > now);
    }
}
