//! Account mail: the mail outbox (queued in the transaction of the change that causes a mail,
//! sent by a worker holding a lease), every send attempt, and single-use account tokens
//! (verification, email change, password reset, magic link) stored as SHA-256 hashes.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    Id,
    Kind,
    ToAddress,
    Locale,
    Data,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastError,
    MessageId,
    RequestId,
    CreatedAt,
    SentAt,
}

#[derive(DeriveIden)]
enum MailAttempts {
    Table,
    Id,
    MailId,
    Number,
    StartedAt,
    DurationMs,
    Outcome,
    Error,
}

#[derive(DeriveIden)]
enum AccountTokens {
    Table,
    Id,
    UserId,
    Purpose,
    TokenHash,
    Data,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(MailOutbox::Table)
                .col(pk_uuid(MailOutbox::Id))
                .col(string(MailOutbox::Kind))
                .col(text(MailOutbox::ToAddress))
                .col(string(MailOutbox::Locale))
                .col(json_null(MailOutbox::Data))
                .col(string(MailOutbox::Status))
                .col(integer(MailOutbox::Attempts))
                .col(timestamp_with_time_zone(MailOutbox::NextAttemptAt))
                .col(timestamp_with_time_zone_null(MailOutbox::LockedUntil))
                .col(text_null(MailOutbox::LastError))
                .col(string_null(MailOutbox::MessageId))
                .col(string_null(MailOutbox::RequestId))
                .col(timestamp_with_time_zone(MailOutbox::CreatedAt))
                .col(timestamp_with_time_zone_null(MailOutbox::SentAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_mail_outbox_due")
                .table(MailOutbox::Table)
                .col(MailOutbox::Status)
                .col(MailOutbox::NextAttemptAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(MailAttempts::Table)
                .col(pk_uuid(MailAttempts::Id))
                .col(uuid(MailAttempts::MailId))
                .col(integer(MailAttempts::Number))
                .col(timestamp_with_time_zone(MailAttempts::StartedAt))
                .col(big_integer(MailAttempts::DurationMs))
                .col(string(MailAttempts::Outcome))
                .col(text_null(MailAttempts::Error))
                .foreign_key(
                    ForeignKey::create()
                        .from(MailAttempts::Table, MailAttempts::MailId)
                        .to(MailOutbox::Table, MailOutbox::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_mail_attempts_mail_id")
                .table(MailAttempts::Table)
                .col(MailAttempts::MailId)
                .col(MailAttempts::Number)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AccountTokens::Table)
                .col(pk_uuid(AccountTokens::Id))
                .col(uuid(AccountTokens::UserId))
                .col(string(AccountTokens::Purpose))
                .col(string(AccountTokens::TokenHash))
                .col(json_null(AccountTokens::Data))
                .col(timestamp_with_time_zone(AccountTokens::ExpiresAt))
                .col(timestamp_with_time_zone_null(AccountTokens::UsedAt))
                .col(timestamp_with_time_zone(AccountTokens::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(AccountTokens::Table, AccountTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_account_tokens_token_hash")
                .table(AccountTokens::Table)
                .col(AccountTokens::TokenHash)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_account_tokens_user_purpose")
                .table(AccountTokens::Table)
                .col(AccountTokens::UserId)
                .col(AccountTokens::Purpose)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in
            [AccountTokens::Table.into_iden(), MailAttempts::Table.into_iden(), MailOutbox::Table.into_iden()]
        {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
