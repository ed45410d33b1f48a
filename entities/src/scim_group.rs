//! `scim_groups`: an organization's groups, provisioned over SCIM; a group may carry an
//! organization role its members hold.
use sea_orm::entity::prelude::*;

/// One group; (`organization_id`, `display_name_lc`) is unique.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub display_name: String,
    pub display_name_lc: String,
    pub external_id: Option<String>,
    /// `admin`, `member` or `viewer`: the role a member of this group holds (none: no effect).
    pub role: Option<String>,
    /// The stored SCIM document (without `id`, `meta` and `members`).
    pub attributes: Json,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::scim_group_member::Entity")]
    Member,
}

impl Related<super::scim_group_member::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Member.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
