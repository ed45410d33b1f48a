//! `sso_identities`: a subject asserted by one identity provider, linked to a Janua user.
use sea_orm::entity::prelude::*;

/// One linked identity; `(provider_id, subject)` is unique.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sso_identities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub provider_id: Uuid,
    pub user_id: Uuid,
    /// The SAML NameID or the OIDC `sub`.
    pub subject: String,
    /// The email the provider asserted last.
    pub email: Option<String>,
    pub created_at: DateTimeUtc,
    pub last_signed_in_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
