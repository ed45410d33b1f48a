//! `scim_user_emails`: the addresses of a SCIM user, lower-cased, for `emails` filters.
use sea_orm::entity::prelude::*;

/// One address of one SCIM user (rewritten with the user).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "scim_user_emails")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub scim_user_id: Uuid,
    pub value_lc: String,
    /// The address's `type` (`work`, `home`, …), lower-cased.
    pub kind: Option<String>,
    pub is_primary: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
