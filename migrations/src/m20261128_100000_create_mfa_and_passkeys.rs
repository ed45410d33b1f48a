//! TOTP factors, backup codes and passkeys (WebAuthn credentials).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum MfaFactors {
    Table,
    UserId,
    SecretSealed,
    Enabled,
    LastUsedStep,
    CreatedAt,
    EnabledAt,
}

#[derive(DeriveIden)]
enum BackupCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    CredentialId,
    Credential,
    Name,
    SignCount,
    BackupEligible,
    BackupState,
    Transports,
    Discoverable,
    CreatedAt,
    LastUsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(MfaFactors::Table)
                .col(uuid(MfaFactors::UserId).primary_key())
                .col(blob(MfaFactors::SecretSealed))
                .col(boolean(MfaFactors::Enabled))
                .col(big_integer_null(MfaFactors::LastUsedStep))
                .col(timestamp_with_time_zone(MfaFactors::CreatedAt))
                .col(timestamp_with_time_zone_null(MfaFactors::EnabledAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(MfaFactors::Table, MfaFactors::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(BackupCodes::Table)
                .col(pk_uuid(BackupCodes::Id))
                .col(uuid(BackupCodes::UserId))
                .col(string(BackupCodes::CodeHash))
                .col(timestamp_with_time_zone_null(BackupCodes::UsedAt))
                .col(timestamp_with_time_zone(BackupCodes::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(BackupCodes::Table, BackupCodes::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_backup_codes_user_id")
                .table(BackupCodes::Table)
                .col(BackupCodes::UserId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Passkeys::Table)
                .col(pk_uuid(Passkeys::Id))
                .col(uuid(Passkeys::UserId))
                .col(string_uniq(Passkeys::CredentialId))
                .col(text(Passkeys::Credential))
                .col(string(Passkeys::Name))
                .col(big_integer(Passkeys::SignCount))
                .col(boolean(Passkeys::BackupEligible))
                .col(boolean(Passkeys::BackupState))
                .col(json_null(Passkeys::Transports))
                .col(boolean(Passkeys::Discoverable))
                .col(timestamp_with_time_zone(Passkeys::CreatedAt))
                .col(timestamp_with_time_zone_null(Passkeys::LastUsedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Passkeys::Table, Passkeys::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_passkeys_user_id")
                .table(Passkeys::Table)
                .col(Passkeys::UserId)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Passkeys::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(BackupCodes::Table).to_owned()).await?;
        m.drop_table(Table::drop().table(MfaFactors::Table).to_owned()).await?;
        Ok(())
    }
}
