//! `scim_tokens`: an organization's SCIM bearer tokens, stored as SHA-256 hashes.
use sea_orm::entity::prelude::*;

/// One token; `token_hash` is unique. Revoked tokens are kept (their rows answer "revoked").
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    /// The first characters of the token, shown in lists so an admin can tell tokens apart.
    pub prefix: String,
    pub token_hash: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
