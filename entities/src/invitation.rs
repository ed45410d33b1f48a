//! `invitations`: an invitation of an email address to an organization, with a role. The token
//! its mail carries is stored only as its SHA-256 hash (`token_hash`, unique).
use sea_orm::entity::prelude::*;

/// One invitation. Open while neither `accepted_at` nor `revoked_at` is set (at most one open
/// invitation per organization and `email`); usable while open and before `expires_at`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// Lower-cased.
    pub email: String,
    /// `owner`, `admin`, `member` or `viewer`.
    pub role: String,
    pub token_hash: String,
    pub message: Option<String>,
    /// The person who invited (`None` for an API key, or once that account is gone).
    pub invited_by: Option<Uuid>,
    pub expires_at: DateTimeUtc,
    pub accepted_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub accepted_user_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrganizationId",
        to = "super::organization::Column::Id",
        on_delete = "Cascade"
    )]
    Organization,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
