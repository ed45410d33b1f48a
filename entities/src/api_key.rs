//! `api_keys`: keys for automation, stored as SHA-256 hashes; the prefix stays visible.
use sea_orm::entity::prelude::*;

/// An API key of an organization (or, with no organization, an administrator's key).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Option<Uuid>,
    pub name: String,
    /// The first characters of the key, shown in lists so people can tell keys apart.
    pub prefix: String,
    #[sea_orm(unique)]
    pub key_hash: String,
    /// JSON array of scope strings.
    pub scopes: Json,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
