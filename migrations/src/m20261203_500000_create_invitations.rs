//! Invitations to an organization: an address, the role it will join with, and the SHA-256 hash
//! of the token its mail carries. At most one open invitation (neither accepted nor revoked) per
//! organization and address, enforced by a partial unique index.
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
enum Invitations {
    Table,
    Id,
    OrganizationId,
    Email,
    Role,
    TokenHash,
    Message,
    InvitedBy,
    ExpiresAt,
    AcceptedAt,
    RevokedAt,
    AcceptedUserId,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Invitations::Table)
                .col(pk_uuid(Invitations::Id))
                .col(uuid(Invitations::OrganizationId))
                .col(text(Invitations::Email))
                .col(string(Invitations::Role))
                .col(string(Invitations::TokenHash))
                .col(text_null(Invitations::Message))
                .col(uuid_null(Invitations::InvitedBy))
                .col(timestamp_with_time_zone(Invitations::ExpiresAt))
                .col(timestamp_with_time_zone_null(Invitations::AcceptedAt))
                .col(timestamp_with_time_zone_null(Invitations::RevokedAt))
                .col(uuid_null(Invitations::AcceptedUserId))
                .col(timestamp_with_time_zone(Invitations::CreatedAt))
                .col(timestamp_with_time_zone(Invitations::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Invitations::Table, Invitations::OrganizationId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Invitations::Table, Invitations::InvitedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Invitations::Table, Invitations::AcceptedUserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_invitations_token_hash")
                .table(Invitations::Table)
                .col(Invitations::TokenHash)
                .unique()
                .to_owned(),
        )
        .await?;
        // Lists page by (organization, id).
        m.create_index(
            Index::create()
                .name("idx_invitations_org_id")
                .table(Invitations::Table)
                .col(Invitations::OrganizationId)
                .col(Invitations::Id)
                .to_owned(),
        )
        .await?;
        // One open invitation per organization and address: two concurrent invitations of the
        // same person cannot both stay open.
        m.create_index(
            Index::create()
                .name("idx_invitations_open_org_email")
                .table(Invitations::Table)
                .col(Invitations::OrganizationId)
                .col(Invitations::Email)
                .unique()
                .and_where(Expr::col(Invitations::AcceptedAt).is_null())
                .and_where(Expr::col(Invitations::RevokedAt).is_null())
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Invitations::Table).to_owned()).await
    }
}
