//! Webhook endpoints, their deliveries and every delivery attempt; a fan-out marker on the outbox.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OutboxEvents {
    Table,
    Seq,
    WebhooksFannedAt,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    UserId,
    OrganizationId,
    Url,
    Description,
    Events,
    SecretSealed,
    Active,
    DisabledReason,
    FailingSince,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EndpointId,
    EventSeq,
    EventId,
    EventType,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastAttemptAt,
    LastStatusCode,
    LastError,
    LastDurationMs,
    DeliveredAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    Number,
    StartedAt,
    DurationMs,
    StatusCode,
    Error,
    Outcome,
    NextAttemptAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Rows already in the outbox predate every endpoint: mark them fanned out.
        m.alter_table(
            Table::alter()
                .table(OutboxEvents::Table)
                .add_column(timestamp_with_time_zone_null(OutboxEvents::WebhooksFannedAt))
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared("UPDATE outbox_events SET webhooks_fanned_at = CURRENT_TIMESTAMP")
            .await?;
        m.create_index(
            Index::create()
                .name("idx_outbox_events_webhooks_pending")
                .table(OutboxEvents::Table)
                .col(OutboxEvents::WebhooksFannedAt)
                .col(OutboxEvents::Seq)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WebhookEndpoints::Table)
                .col(pk_uuid(WebhookEndpoints::Id))
                .col(uuid_null(WebhookEndpoints::UserId))
                .col(uuid_null(WebhookEndpoints::OrganizationId))
                .col(text(WebhookEndpoints::Url))
                .col(string_null(WebhookEndpoints::Description))
                .col(json(WebhookEndpoints::Events))
                .col(blob(WebhookEndpoints::SecretSealed))
                .col(boolean(WebhookEndpoints::Active))
                .col(string_null(WebhookEndpoints::DisabledReason))
                .col(timestamp_with_time_zone_null(WebhookEndpoints::FailingSince))
                .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                .col(timestamp_with_time_zone(WebhookEndpoints::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookEndpoints::Table, WebhookEndpoints::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_webhook_endpoints_user_id", WebhookEndpoints::UserId),
            ("idx_webhook_endpoints_organization_id", WebhookEndpoints::OrganizationId),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(WebhookEndpoints::Table)
                    .col(col)
                    .col(WebhookEndpoints::Id)
                    .to_owned(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table(WebhookDeliveries::Table)
                .col(pk_uuid(WebhookDeliveries::Id))
                .col(uuid(WebhookDeliveries::EndpointId))
                .col(big_integer(WebhookDeliveries::EventSeq))
                .col(uuid(WebhookDeliveries::EventId))
                .col(string(WebhookDeliveries::EventType))
                .col(json(WebhookDeliveries::Payload))
                .col(string(WebhookDeliveries::Status))
                .col(integer(WebhookDeliveries::Attempts))
                .col(timestamp_with_time_zone_null(WebhookDeliveries::NextAttemptAt))
                .col(timestamp_with_time_zone_null(WebhookDeliveries::LockedUntil))
                .col(timestamp_with_time_zone_null(WebhookDeliveries::LastAttemptAt))
                .col(integer_null(WebhookDeliveries::LastStatusCode))
                .col(text_null(WebhookDeliveries::LastError))
                .col(big_integer_null(WebhookDeliveries::LastDurationMs))
                .col(timestamp_with_time_zone_null(WebhookDeliveries::DeliveredAt))
                .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                        .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_endpoint_event")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::EndpointId)
                .col(WebhookDeliveries::EventId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_due")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::Status)
                .col(WebhookDeliveries::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_endpoint_seq")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::EndpointId)
                .col(WebhookDeliveries::Status)
                .col(WebhookDeliveries::EventSeq)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WebhookAttempts::Table)
                .col(pk_uuid(WebhookAttempts::Id))
                .col(uuid(WebhookAttempts::DeliveryId))
                .col(integer(WebhookAttempts::Number))
                .col(timestamp_with_time_zone(WebhookAttempts::StartedAt))
                .col(big_integer(WebhookAttempts::DurationMs))
                .col(integer_null(WebhookAttempts::StatusCode))
                .col(text_null(WebhookAttempts::Error))
                .col(string(WebhookAttempts::Outcome))
                .col(timestamp_with_time_zone_null(WebhookAttempts::NextAttemptAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookAttempts::Table, WebhookAttempts::DeliveryId)
                        .to(WebhookDeliveries::Table, WebhookDeliveries::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_attempts_delivery_id")
                .table(WebhookAttempts::Table)
                .col(WebhookAttempts::DeliveryId)
                .col(WebhookAttempts::Number)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            WebhookAttempts::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        m.drop_index(
            Index::drop().name("idx_outbox_events_webhooks_pending").table(OutboxEvents::Table).to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter().table(OutboxEvents::Table).drop_column(OutboxEvents::WebhooksFannedAt).to_owned(),
        )
        .await
    }
}
