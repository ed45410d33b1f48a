//! `outbox_events`: events committed with their change, published to the bus afterwards.
use sea_orm::entity::prelude::*;

/// An outbox row. `seq` orders events; `event_id` equals the audit record's id.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub event_id: Uuid,
    pub event_type: String,
    /// The user the event is about (whose `sessionEvents` it belongs to), if any.
    pub subject_user_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub payload: Json,
    pub created_at: DateTimeUtc,
    pub published_at: Option<DateTimeUtc>,
    /// When the webhook fan-out turned this event into deliveries.
    pub webhooks_fanned_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
