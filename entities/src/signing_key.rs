//! `signing_keys`: token signing keys; the private half is stored encrypted.
use sea_orm::entity::prelude::*;

/// A signing key. The newest key without `retired_at` signs; every key whose
/// `publish_until` has not passed is published in the JWKS.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    pub algorithm: String,
    pub public_key: Vec<u8>,
    /// nonce ‖ ciphertext of the PKCS#8 private key, sealed with the master key.
    pub private_key_sealed: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub retired_at: Option<DateTimeUtc>,
    pub publish_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
