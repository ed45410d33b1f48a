//! SCIM 2.0 provisioning: an organization's bearer tokens, the SCIM view of its provisioned users
//! (with their addresses, for filters), its groups and their members.
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
enum ScimTokens {
    Table,
    Id,
    OrganizationId,
    Name,
    Prefix,
    TokenHash,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum ScimUsers {
    Table,
    Id,
    OrganizationId,
    UserId,
    ExternalId,
    UserName,
    UserNameLc,
    DisplayName,
    GivenName,
    FamilyName,
    Active,
    Locale,
    EmployeeNumber,
    Department,
    ManagerId,
    Attributes,
    Provisioned,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScimUserEmails {
    Table,
    Id,
    ScimUserId,
    ValueLc,
    Kind,
    IsPrimary,
}

#[derive(DeriveIden)]
enum ScimGroups {
    Table,
    Id,
    OrganizationId,
    DisplayName,
    DisplayNameLc,
    ExternalId,
    Role,
    Attributes,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScimGroupMembers {
    Table,
    Id,
    GroupId,
    ScimUserId,
    UserId,
}

fn fk(from: (impl IntoIden, impl IntoIden), to: (impl IntoIden, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).to_owned()
}

fn index(name: &str, table: impl IntoIden, cols: Vec<DynIden>, unique: bool) -> IndexCreateStatement {
    let mut i = Index::create().name(name).table(table).to_owned();
    for c in cols {
        i.col(c);
    }
    if unique {
        i.unique();
    }
    i
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ScimTokens::Table)
                .col(pk_uuid(ScimTokens::Id))
                .col(uuid(ScimTokens::OrganizationId))
                .col(string(ScimTokens::Name))
                .col(string(ScimTokens::Prefix))
                .col(string(ScimTokens::TokenHash))
                .col(uuid_null(ScimTokens::CreatedBy))
                .col(timestamp_with_time_zone(ScimTokens::CreatedAt))
                .col(timestamp_with_time_zone_null(ScimTokens::LastUsedAt))
                .col(timestamp_with_time_zone_null(ScimTokens::RevokedAt))
                .foreign_key(&mut fk(
                    (ScimTokens::Table, ScimTokens::OrganizationId),
                    (Organizations::Table, Organizations::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_scim_tokens_token_hash",
            ScimTokens::Table,
            vec![ScimTokens::TokenHash.into_iden()],
            true,
        ))
        .await?;
        m.create_index(index(
            "idx_scim_tokens_organization_id",
            ScimTokens::Table,
            vec![ScimTokens::OrganizationId.into_iden(), ScimTokens::Id.into_iden()],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(ScimUsers::Table)
                .col(pk_uuid(ScimUsers::Id))
                .col(uuid(ScimUsers::OrganizationId))
                .col(uuid(ScimUsers::UserId))
                .col(text_null(ScimUsers::ExternalId))
                .col(text(ScimUsers::UserName))
                .col(text(ScimUsers::UserNameLc))
                .col(text_null(ScimUsers::DisplayName))
                .col(text_null(ScimUsers::GivenName))
                .col(text_null(ScimUsers::FamilyName))
                .col(boolean(ScimUsers::Active))
                .col(text_null(ScimUsers::Locale))
                .col(text_null(ScimUsers::EmployeeNumber))
                .col(text_null(ScimUsers::Department))
                .col(text_null(ScimUsers::ManagerId))
                .col(json(ScimUsers::Attributes))
                .col(boolean(ScimUsers::Provisioned))
                .col(big_integer(ScimUsers::Version))
                .col(timestamp_with_time_zone(ScimUsers::CreatedAt))
                .col(timestamp_with_time_zone(ScimUsers::UpdatedAt))
                .foreign_key(&mut fk(
                    (ScimUsers::Table, ScimUsers::OrganizationId),
                    (Organizations::Table, Organizations::Id),
                ))
                .foreign_key(&mut fk((ScimUsers::Table, ScimUsers::UserId), (Users::Table, Users::Id)))
                .to_owned(),
        )
        .await?;
        for (name, cols, unique) in [
            ("idx_scim_users_org_user", vec![ScimUsers::OrganizationId, ScimUsers::UserId], true),
            ("idx_scim_users_org_user_name", vec![ScimUsers::OrganizationId, ScimUsers::UserNameLc], true),
            (
                "idx_scim_users_org_external_id",
                vec![ScimUsers::OrganizationId, ScimUsers::ExternalId, ScimUsers::UserId],
                false,
            ),
            (
                "idx_scim_users_org_updated",
                vec![ScimUsers::OrganizationId, ScimUsers::UpdatedAt, ScimUsers::UserId],
                false,
            ),
            ("idx_scim_users_user", vec![ScimUsers::UserId], false),
        ] {
            m.create_index(index(
                name,
                ScimUsers::Table,
                cols.into_iter().map(IntoIden::into_iden).collect(),
                unique,
            ))
            .await?;
        }

        m.create_table(
            Table::create()
                .table(ScimUserEmails::Table)
                .col(pk_uuid(ScimUserEmails::Id))
                .col(uuid(ScimUserEmails::ScimUserId))
                .col(text(ScimUserEmails::ValueLc))
                .col(string_null(ScimUserEmails::Kind))
                .col(boolean(ScimUserEmails::IsPrimary))
                .foreign_key(&mut fk(
                    (ScimUserEmails::Table, ScimUserEmails::ScimUserId),
                    (ScimUsers::Table, ScimUsers::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_scim_user_emails_value",
            ScimUserEmails::Table,
            vec![ScimUserEmails::ValueLc.into_iden(), ScimUserEmails::ScimUserId.into_iden()],
            false,
        ))
        .await?;
        m.create_index(index(
            "idx_scim_user_emails_owner",
            ScimUserEmails::Table,
            vec![ScimUserEmails::ScimUserId.into_iden()],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(ScimGroups::Table)
                .col(pk_uuid(ScimGroups::Id))
                .col(uuid(ScimGroups::OrganizationId))
                .col(text(ScimGroups::DisplayName))
                .col(text(ScimGroups::DisplayNameLc))
                .col(text_null(ScimGroups::ExternalId))
                .col(string_null(ScimGroups::Role))
                .col(json(ScimGroups::Attributes))
                .col(big_integer(ScimGroups::Version))
                .col(timestamp_with_time_zone(ScimGroups::CreatedAt))
                .col(timestamp_with_time_zone(ScimGroups::UpdatedAt))
                .foreign_key(&mut fk(
                    (ScimGroups::Table, ScimGroups::OrganizationId),
                    (Organizations::Table, Organizations::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_scim_groups_org_name",
            ScimGroups::Table,
            vec![ScimGroups::OrganizationId.into_iden(), ScimGroups::DisplayNameLc.into_iden()],
            true,
        ))
        .await?;
        m.create_index(index(
            "idx_scim_groups_org_external_id",
            ScimGroups::Table,
            vec![ScimGroups::OrganizationId.into_iden(), ScimGroups::ExternalId.into_iden()],
            false,
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(ScimGroupMembers::Table)
                .col(pk_uuid(ScimGroupMembers::Id))
                .col(uuid(ScimGroupMembers::GroupId))
                .col(uuid(ScimGroupMembers::ScimUserId))
                .col(uuid(ScimGroupMembers::UserId))
                .foreign_key(&mut fk(
                    (ScimGroupMembers::Table, ScimGroupMembers::GroupId),
                    (ScimGroups::Table, ScimGroups::Id),
                ))
                .foreign_key(&mut fk(
                    (ScimGroupMembers::Table, ScimGroupMembers::ScimUserId),
                    (ScimUsers::Table, ScimUsers::Id),
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_scim_group_members_group_user",
            ScimGroupMembers::Table,
            vec![ScimGroupMembers::GroupId.into_iden(), ScimGroupMembers::UserId.into_iden()],
            true,
        ))
        .await?;
        m.create_index(index(
            "idx_scim_group_members_member",
            ScimGroupMembers::Table,
            vec![ScimGroupMembers::ScimUserId.into_iden(), ScimGroupMembers::GroupId.into_iden()],
            false,
        ))
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            ScimGroupMembers::Table.into_iden(),
            ScimGroups::Table.into_iden(),
            ScimUserEmails::Table.into_iden(),
            ScimUsers::Table.into_iden(),
            ScimTokens::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
