//! Enterprise SSO: identity providers per organization (SAML or OIDC) and the identities they
//! assert, linked to Janua users.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SsoProviders {
    Table,
    Id,
    OrganizationId,
    Name,
    Protocol,
    Enabled,
    JitProvisioning,
    DefaultRole,
    AllowedDomains,
    AttributeMapping,
    ReturnUrl,
    EnforceSso,
    SamlEntityId,
    SamlSsoUrl,
    SamlSloUrl,
    SamlCertificates,
    SamlWantAssertionsSigned,
    SamlMetadataUrl,
    AllowIdpInitiated,
    OidcIssuer,
    OidcClientId,
    OidcClientSecretSealed,
    OidcDiscoveryUrl,
    Scopes,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SsoIdentities {
    Table,
    Id,
    ProviderId,
    UserId,
    Subject,
    Email,
    CreatedAt,
    LastSignedInAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SsoProviders::Table)
                .col(pk_uuid(SsoProviders::Id))
                .col(uuid(SsoProviders::OrganizationId))
                .col(string(SsoProviders::Name))
                .col(string(SsoProviders::Protocol))
                .col(boolean(SsoProviders::Enabled))
                .col(boolean(SsoProviders::JitProvisioning))
                .col(string(SsoProviders::DefaultRole))
                .col(json(SsoProviders::AllowedDomains))
                .col(json(SsoProviders::AttributeMapping))
                .col(text_null(SsoProviders::ReturnUrl))
                .col(boolean(SsoProviders::EnforceSso))
                .col(text_null(SsoProviders::SamlEntityId))
                .col(text_null(SsoProviders::SamlSsoUrl))
                .col(text_null(SsoProviders::SamlSloUrl))
                .col(json(SsoProviders::SamlCertificates))
                .col(boolean(SsoProviders::SamlWantAssertionsSigned))
                .col(text_null(SsoProviders::SamlMetadataUrl))
                .col(boolean(SsoProviders::AllowIdpInitiated))
                .col(text_null(SsoProviders::OidcIssuer))
                .col(text_null(SsoProviders::OidcClientId))
                .col(blob_null(SsoProviders::OidcClientSecretSealed))
                .col(text_null(SsoProviders::OidcDiscoveryUrl))
                .col(json(SsoProviders::Scopes))
                .col(timestamp_with_time_zone(SsoProviders::CreatedAt))
                .col(timestamp_with_time_zone(SsoProviders::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(SsoProviders::Table, SsoProviders::OrganizationId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_sso_providers_organization_id")
                .table(SsoProviders::Table)
                .col(SsoProviders::OrganizationId)
                .col(SsoProviders::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SsoIdentities::Table)
                .col(pk_uuid(SsoIdentities::Id))
                .col(uuid(SsoIdentities::ProviderId))
                .col(uuid(SsoIdentities::UserId))
                .col(text(SsoIdentities::Subject))
                .col(string_null(SsoIdentities::Email))
                .col(timestamp_with_time_zone(SsoIdentities::CreatedAt))
                .col(timestamp_with_time_zone(SsoIdentities::LastSignedInAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(SsoIdentities::Table, SsoIdentities::ProviderId)
                        .to(SsoProviders::Table, SsoProviders::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(SsoIdentities::Table, SsoIdentities::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_sso_identities_provider_subject")
                .table(SsoIdentities::Table)
                .col(SsoIdentities::ProviderId)
                .col(SsoIdentities::Subject)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_sso_identities_user_id")
                .table(SsoIdentities::Table)
                .col(SsoIdentities::UserId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(SsoIdentities::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(SsoProviders::Table).to_owned()).await
    }
}
