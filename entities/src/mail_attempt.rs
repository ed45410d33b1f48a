//! `mail_attempts`: every attempt to hand one mail to the SMTP server (or the mail folder).
use sea_orm::entity::prelude::*;

/// One attempt; `outcome` is `sent`, `retrying`, `failed` or `skipped`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub mail_id: Uuid,
    pub number: i32,
    pub started_at: DateTimeUtc,
    pub duration_ms: i64,
    pub outcome: String,
    /// Why it failed (the SMTP server's answer or the connection error; never a token).
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
