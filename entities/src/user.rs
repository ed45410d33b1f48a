//! `users`: one person who can sign in.
use sea_orm::entity::prelude::*;

/// A user row. `email` is stored lower-cased and is unique; `password_hash` is a PHC string.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub email: String,
    pub password_hash: Option<String>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[sea_orm(unique)]
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    pub locale: Option<String>,
    pub metadata: Option<Json>,
    /// `active`, `suspended` or `deleted`.
    pub status: String,
    pub is_admin: bool,
    pub email_verified: bool,
    pub last_signin_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
