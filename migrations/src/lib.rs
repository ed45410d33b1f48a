//! Janua's migrations: append-only, one per file, each self-contained (its own `Iden` enums).
//! Never edit a migration that has landed; add a new one.
pub use sea_orm_migration::prelude::*;

mod m20261128_000001_create_core_tables;
mod m20261128_100000_create_mfa_and_passkeys;
mod m20261128_200000_create_webhooks;
mod m20261128_300000_create_organizations_and_api_keys;
mod m20261201_000000_add_session_authenticated_at;
mod m20261201_000001_create_settings;
mod m20261202_000000_create_sso;
mod m20261202_100000_create_scim;
mod m20261203_000000_create_account_mail;
mod m20261203_500000_create_invitations;
mod m20261204_000000_search_and_analytics_indexes;

/// Every migration, in the order they run.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_core_tables::Migration),
            Box::new(m20261128_100000_create_mfa_and_passkeys::Migration),
            Box::new(m20261128_200000_create_webhooks::Migration),
            Box::new(m20261128_300000_create_organizations_and_api_keys::Migration),
            Box::new(m20261201_000000_add_session_authenticated_at::Migration),
            Box::new(m20261201_000001_create_settings::Migration),
            Box::new(m20261202_000000_create_sso::Migration),
            Box::new(m20261202_100000_create_scim::Migration),
            Box::new(m20261203_000000_create_account_mail::Migration),
            Box::new(m20261203_500000_create_invitations::Migration),
            Box::new(m20261204_000000_search_and_analytics_indexes::Migration),
        ]
    }
}
