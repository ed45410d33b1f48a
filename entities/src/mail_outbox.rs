//! `mail_outbox`: mails queued with the change that causes them, sent by the mail worker.
use sea_orm::entity::prelude::*;

/// One mail. `status` is `pending`, `sent`, `failed` or `skipped`; a pending mail is sent at
/// `next_attempt_at` by the node holding its lease (`locked_until`). `data` holds what the
/// template needs (its link carries a token) and is cleared once the mail is sent or given up.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `verify_email`, `password_reset`, … (or a deferred request such as `password_reset_request`).
    pub kind: String,
    pub to_address: String,
    pub locale: String,
    pub data: Option<Json>,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub locked_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    /// The `Message-ID` sent (without angle brackets), once built.
    pub message_id: Option<String>,
    /// The request that queued it.
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
