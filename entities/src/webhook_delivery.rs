//! `webhook_deliveries`: one event to deliver to one endpoint, with its retry state.
use sea_orm::entity::prelude::*;

/// A delivery. `status` is `pending`, `succeeded` or `failed`; a pending delivery is attempted
/// at `next_attempt_at` by the node that holds it (`locked_until` is that node's lease).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The outbox position of the event: deliveries to one endpoint go out in this order.
    pub event_seq: i64,
    pub event_id: Uuid,
    pub event_type: String,
    /// The body sent: `{id, type, api_version, created_at, data}`.
    pub payload: Json,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTimeUtc>,
    pub locked_until: Option<DateTimeUtc>,
    pub last_attempt_at: Option<DateTimeUtc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub delivered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
