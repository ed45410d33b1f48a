//! `scim_users`: the SCIM view of a Janua user in one organization (its `externalId`, the
//! attributes the identity provider sent), with the columns filters and sorting use.
use sea_orm::entity::prelude::*;

/// One provisioned user; (`organization_id`, `user_id`) and (`organization_id`, `user_name_lc`)
/// are unique. The SCIM resource id is `user_id`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub external_id: Option<String>,
    pub user_name: String,
    /// `user_name` lower-cased: RFC 7643 makes `userName` case-insensitive.
    pub user_name_lc: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub active: bool,
    pub locale: Option<String>,
    pub employee_number: Option<String>,
    pub department: Option<String>,
    pub manager_id: Option<String>,
    /// The stored SCIM document (without `id`, `meta` and `groups`).
    pub attributes: Json,
    /// Whether this organization's provisioning created the Janua account (then it also keeps
    /// the account's name, email and locale in step).
    pub provisioned: bool,
    /// Moves on every change: the resource's ETag.
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
