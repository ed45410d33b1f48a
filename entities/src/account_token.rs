//! `account_tokens`: single-use tokens mailed to a user (email verification and change,
//! password reset, magic link), stored as SHA-256 hashes.
use sea_orm::entity::prelude::*;

/// One token; `token_hash` is unique. A token is spent by setting `used_at` (once).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "account_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// `verify_email`, `email_change`, `password_reset` or `magic_link`.
    pub purpose: String,
    pub token_hash: String,
    /// What the token carries besides its purpose (the new address of an email change, a
    /// magic link's redirect).
    pub data: Option<Json>,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
