//! Organizations, their members, API keys, and the user indexes that keyset pages sort by.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Status,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Name,
    Slug,
    Domain,
    Description,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OrgMembers {
    Table,
    Id,
    OrganizationId,
    UserId,
    Role,
    JoinedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    OrganizationId,
    Name,
    Prefix,
    KeyHash,
    Scopes,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Organizations::Table)
                .col(pk_uuid(Organizations::Id))
                .col(string(Organizations::Name))
                .col(string_uniq(Organizations::Slug))
                .col(string_null(Organizations::Domain).unique_key())
                .col(text_null(Organizations::Description))
                .col(timestamp_with_time_zone(Organizations::CreatedAt))
                .col(timestamp_with_time_zone(Organizations::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_organizations_name_id")
                .table(Organizations::Table)
                .col(Organizations::Name)
                .col(Organizations::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(OrgMembers::Table)
                .col(pk_uuid(OrgMembers::Id))
                .col(uuid(OrgMembers::OrganizationId))
                .col(uuid(OrgMembers::UserId))
                .col(string(OrgMembers::Role))
                .col(timestamp_with_time_zone(OrgMembers::JoinedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(OrgMembers::Table, OrgMembers::OrganizationId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(OrgMembers::Table, OrgMembers::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_org_members_org_user")
                .table(OrgMembers::Table)
                .col(OrgMembers::OrganizationId)
                .col(OrgMembers::UserId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_org_members_user")
                .table(OrgMembers::Table)
                .col(OrgMembers::UserId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(pk_uuid(ApiKeys::Id))
                .col(uuid_null(ApiKeys::OrganizationId))
                .col(string(ApiKeys::Name))
                .col(string(ApiKeys::Prefix))
                .col(string_uniq(ApiKeys::KeyHash))
                .col(json(ApiKeys::Scopes))
                .col(uuid_null(ApiKeys::CreatedBy))
                .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
                .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiKeys::Table, ApiKeys::OrganizationId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        // Keyset pages over users sort by (created_at, id) or (name, id), optionally per status.
        for (name, cols) in [
            ("idx_users_created_at_id", vec![Users::CreatedAt, Users::Id]),
            ("idx_users_name_id", vec![Users::Name, Users::Id]),
            ("idx_users_status_created_at_id", vec![Users::Status, Users::CreatedAt, Users::Id]),
        ] {
            let mut idx = Index::create().name(name).table(Users::Table).to_owned();
            for c in cols {
                idx.col(c);
            }
            m.create_index(idx).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in ["idx_users_created_at_id", "idx_users_name_id", "idx_users_status_created_at_id"] {
            m.drop_index(Index::drop().name(name).table(Users::Table).to_owned()).await?;
        }
        for t in [ApiKeys::Table.into_iden(), OrgMembers::Table.into_iden(), Organizations::Table.into_iden()]
        {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
