//! `webhook_attempts`: every HTTP attempt of a delivery, as it happened.
use sea_orm::entity::prelude::*;

/// One attempt: when, how long, the receiver's status or the error, and what was decided.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub delivery_id: Uuid,
    /// 1 for the first attempt.
    pub number: i32,
    pub started_at: DateTimeUtc,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// `succeeded`, `retrying` or `failed`.
    pub outcome: String,
    /// When the next attempt was scheduled, if one was.
    pub next_attempt_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
