//! `webhook_endpoints`: where events are delivered; the signing secret is stored sealed.
use sea_orm::entity::prelude::*;

/// A webhook endpoint, owned by a user (or, later, an organization).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub url: String,
    pub description: Option<String>,
    /// JSON array of event names, or `["*"]`.
    pub events: Json,
    /// nonce ‖ ciphertext of the signing secret, sealed with the master key.
    pub secret_sealed: Vec<u8>,
    pub active: bool,
    /// Why the endpoint was switched off by Janua (e.g. failing for days), if it was.
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts; cleared by a success.
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
