//! Users, sessions, refresh tokens, signing keys, audit log and event outbox.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    Name,
    FirstName,
    LastName,
    Username,
    AvatarUrl,
    Locale,
    Metadata,
    Status,
    IsAdmin,
    EmailVerified,
    LastSigninAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    IpAddress,
    UserAgent,
    DeviceLabel,
    AuthMethod,
    CreatedAt,
    LastActiveAt,
    ExpiresAt,
    RevokedAt,
    RevokedReason,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    SessionId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    RotatedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Algorithm,
    PublicKey,
    PrivateKeySealed,
    CreatedAt,
    RetiredAt,
    PublishUntil,
}

#[derive(DeriveIden)]
enum AuditLogs {
    Table,
    Id,
    Action,
    ActorType,
    ActorId,
    ActorEmail,
    OrganizationId,
    TargetType,
    TargetId,
    IpAddress,
    UserAgent,
    RequestId,
    Metadata,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OutboxEvents {
    Table,
    Seq,
    EventId,
    EventType,
    SubjectUserId,
    OrganizationId,
    Payload,
    CreatedAt,
    PublishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(pk_uuid(Users::Id))
                .col(string_uniq(Users::Email))
                .col(string_null(Users::PasswordHash))
                .col(string_null(Users::Name))
                .col(string_null(Users::FirstName))
                .col(string_null(Users::LastName))
                .col(string_null(Users::Username).unique_key())
                .col(string_null(Users::AvatarUrl))
                .col(string_null(Users::Locale))
                .col(json_null(Users::Metadata))
                .col(string(Users::Status))
                .col(boolean(Users::IsAdmin))
                .col(boolean(Users::EmailVerified))
                .col(timestamp_with_time_zone_null(Users::LastSigninAt))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .col(pk_uuid(Sessions::Id))
                .col(uuid(Sessions::UserId))
                .col(string_null(Sessions::IpAddress))
                .col(text_null(Sessions::UserAgent))
                .col(string_null(Sessions::DeviceLabel))
                .col(string(Sessions::AuthMethod))
                .col(timestamp_with_time_zone(Sessions::CreatedAt))
                .col(timestamp_with_time_zone(Sessions::LastActiveAt))
                .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                .col(string_null(Sessions::RevokedReason))
                .foreign_key(
                    ForeignKey::create()
                        .from(Sessions::Table, Sessions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_sessions_user_id")
                .table(Sessions::Table)
                .col(Sessions::UserId)
                .col(Sessions::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(pk_uuid(RefreshTokens::Id))
                .col(uuid(RefreshTokens::SessionId))
                .col(string_uniq(RefreshTokens::TokenHash))
                .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                .col(timestamp_with_time_zone_null(RefreshTokens::RotatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(RefreshTokens::Table, RefreshTokens::SessionId)
                        .to(Sessions::Table, Sessions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_refresh_tokens_session_id")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::SessionId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SigningKeys::Table)
                .col(string(SigningKeys::Kid).primary_key())
                .col(string(SigningKeys::Algorithm))
                .col(blob(SigningKeys::PublicKey))
                .col(blob(SigningKeys::PrivateKeySealed))
                .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                .col(timestamp_with_time_zone_null(SigningKeys::RetiredAt))
                .col(timestamp_with_time_zone_null(SigningKeys::PublishUntil))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditLogs::Table)
                .col(pk_uuid(AuditLogs::Id))
                .col(string(AuditLogs::Action))
                .col(string(AuditLogs::ActorType))
                .col(uuid_null(AuditLogs::ActorId))
                .col(string_null(AuditLogs::ActorEmail))
                .col(uuid_null(AuditLogs::OrganizationId))
                .col(string_null(AuditLogs::TargetType))
                .col(string_null(AuditLogs::TargetId))
                .col(string_null(AuditLogs::IpAddress))
                .col(text_null(AuditLogs::UserAgent))
                .col(string_null(AuditLogs::RequestId))
                .col(json(AuditLogs::Metadata))
                .col(timestamp_with_time_zone(AuditLogs::CreatedAt))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_audit_logs_action", AuditLogs::Action),
            ("idx_audit_logs_actor_id", AuditLogs::ActorId),
            ("idx_audit_logs_target_id", AuditLogs::TargetId),
        ] {
            m.create_index(Index::create().name(name).table(AuditLogs::Table).col(col).to_owned()).await?;
        }

        m.create_table(
            Table::create()
                .table(OutboxEvents::Table)
                .col(big_pk_auto(OutboxEvents::Seq))
                .col(uuid_uniq(OutboxEvents::EventId))
                .col(string(OutboxEvents::EventType))
                .col(uuid_null(OutboxEvents::SubjectUserId))
                .col(uuid_null(OutboxEvents::OrganizationId))
                .col(json(OutboxEvents::Payload))
                .col(timestamp_with_time_zone(OutboxEvents::CreatedAt))
                .col(timestamp_with_time_zone_null(OutboxEvents::PublishedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_outbox_events_unpublished")
                .table(OutboxEvents::Table)
                .col(OutboxEvents::PublishedAt)
                .col(OutboxEvents::Seq)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            OutboxEvents::Table.into_iden(),
            AuditLogs::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
