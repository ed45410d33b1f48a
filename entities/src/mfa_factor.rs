//! `mfa_factors`: a user's TOTP factor; the secret is stored sealed with the master key.
use sea_orm::entity::prelude::*;

/// One TOTP factor per user. `enabled` turns on once a code confirms the setup;
/// `last_used_step` is the last accepted time step (a code is accepted once).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "mfa_factors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// nonce ‖ ciphertext of the raw TOTP secret.
    pub secret_sealed: Vec<u8>,
    pub enabled: bool,
    pub last_used_step: Option<i64>,
    pub created_at: DateTimeUtc,
    pub enabled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
