//! `sso_providers`: an organization's identity provider (SAML or OIDC). The OIDC client secret
//! is stored sealed with the master key.
use sea_orm::entity::prelude::*;

/// One identity provider.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sso_providers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    /// `saml` or `oidc`.
    pub protocol: String,
    pub enabled: bool,
    /// Create unknown users on their first sign-in.
    pub jit_provisioning: bool,
    /// The organization role of users it provisions.
    pub default_role: String,
    /// JSON array of lower-case email domains.
    pub allowed_domains: Json,
    /// JSON object: Janua field (`email`, `first_name`, `last_name`, `name`) → IdP attribute.
    pub attribute_mapping: Json,
    /// Where a browser lands after signing in (with a one-time `code`).
    pub return_url: Option<String>,
    /// Members whose email is in the allowed domains may not sign in with a password.
    pub enforce_sso: bool,
    pub saml_entity_id: Option<String>,
    pub saml_sso_url: Option<String>,
    pub saml_slo_url: Option<String>,
    /// JSON array of PEM certificates (several during a rotation).
    pub saml_certificates: Json,
    pub saml_want_assertions_signed: bool,
    pub saml_metadata_url: Option<String>,
    pub allow_idp_initiated: bool,
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    /// nonce ‖ ciphertext of the client secret.
    pub oidc_client_secret_sealed: Option<Vec<u8>>,
    pub oidc_discovery_url: Option<String>,
    /// JSON array of OIDC scopes.
    pub scopes: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
