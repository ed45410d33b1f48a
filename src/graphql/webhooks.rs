//! `webhooks`, `webhook`, `webhookDeliveries`, `createWebhook`, `updateWebhook`, `deleteWebhook`,
//! `testWebhook`, `rotateWebhookSecret`, `redeliverWebhookDelivery`, and their types.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::parts;
use super::types::{ActionPayload, Conn, connection};
use crate::domain::page::PageRequest;
use crate::domain::parse_id;
use crate::services::webhook_deliveries::{self as deliveries, AttemptView, DeliveryView};
use crate::services::webhooks::{self, NewWebhook, WebhookChanges, WebhookView, WebhookWithSecret};
use crate::workers::webhooks::{TestResult, test_webhook};

/// An endpoint that receives signed event deliveries. Its secret is never shown here.
#[derive(SimpleObject, Clone)]
pub struct Webhook {
    pub id: ID,
    pub url: String,
    pub description: Option<String>,
    /// Event names (API.md §4) or `*`.
    pub events: Vec<String>,
    pub active: bool,
    /// Why Janua switched the endpoint off (`failing`: no success for days), if it did.
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts.
    pub failing_since: Option<DateTime<Utc>>,
    pub organization_id: Option<ID>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<WebhookView> for Webhook {
    fn from(w: WebhookView) -> Self {
        Self {
            id: ID(w.id.to_string()),
            url: w.url,
            description: w.description,
            events: w.events,
            active: w.active,
            disabled_reason: w.disabled_reason,
            failing_since: w.failing_since,
            organization_id: w.organization_id.map(|o| ID(o.to_string())),
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// An endpoint with its signing secret, shown only by `createWebhook` and `rotateWebhookSecret`.
#[derive(SimpleObject, Clone)]
pub struct WebhookSecretPayload {
    pub webhook: Webhook,
    /// Verify `X-Janua-Signature` with it: `sha256=` hex HMAC-SHA256(secret, "{X-Janua-Timestamp}.{body}").
    pub secret: String,
}

impl From<WebhookWithSecret> for WebhookSecretPayload {
    fn from(w: WebhookWithSecret) -> Self {
        Self { webhook: w.webhook.into(), secret: w.secret.0 }
    }
}

/// One HTTP attempt of a delivery.
#[derive(SimpleObject, Clone)]
pub struct WebhookAttempt {
    /// 1 for the first attempt.
    pub number: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i32>,
    /// Why the attempt failed (timeout, connection error, HTTP status), if it did.
    pub error: Option<String>,
    /// `succeeded`, `retrying`, `failed` or `interrupted` (cut short: a crash, or a shutdown handing it back).
    pub outcome: String,
    /// When the next attempt was scheduled, if one was.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<AttemptView> for WebhookAttempt {
    fn from(a: AttemptView) -> Self {
        Self {
            number: a.number,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error,
            outcome: a.outcome,
            next_attempt_at: a.next_attempt_at,
        }
    }
}

/// One event to deliver to one endpoint, with every attempt.
#[derive(SimpleObject, Clone)]
pub struct WebhookDelivery {
    pub id: ID,
    pub webhook_id: ID,
    /// The event id (equal to its audit record's id), also sent as `X-Janua-Event-ID`.
    pub event_id: ID,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts made so far.
    pub attempts: i32,
    /// When a pending delivery is attempted next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<WebhookAttempt>,
}

impl From<DeliveryView> for WebhookDelivery {
    fn from(d: DeliveryView) -> Self {
        Self {
            id: ID(d.id.to_string()),
            webhook_id: ID(d.webhook_id.to_string()),
            event_id: ID(d.event_id.to_string()),
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_attempt_at: d.last_attempt_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            last_duration_ms: d.last_duration_ms,
            delivered_at: d.delivered_at,
            created_at: d.created_at,
            attempt_log: d.attempt_log.into_iter().map(Into::into).collect(),
        }
    }
}

/// What `testWebhook` reports: the receiver's answer and how long it took.
#[derive(SimpleObject, Clone)]
pub struct TestWebhookPayload {
    pub success: bool,
    pub status_code: Option<i32>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub delivery: WebhookDelivery,
}

impl From<TestResult> for TestWebhookPayload {
    fn from(t: TestResult) -> Self {
        Self {
            success: t.success,
            status_code: t.status_code.map(i32::from),
            duration_ms: t.duration_ms,
            error: t.error,
            delivery: t.delivery.into(),
        }
    }
}

/// Input of `createWebhook`.
#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// Owned by this organization (its admins and owners manage it) instead of you.
    pub organization_id: Option<ID>,
    /// `https://…` (or `http://` to loopback when the server allows it for development).
    pub url: String,
    /// Event names (API.md §4) or `*`.
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Default true.
    pub active: Option<bool>,
}

/// Input of `updateWebhook`: absent fields stay; an empty description clears it.
#[derive(InputObject)]
pub struct UpdateWebhookInput {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

/// The caller's webhook endpoints and their deliveries.
#[derive(Default)]
pub struct WebhooksQuery;

#[Object]
impl WebhooksQuery {
    /// The caller's webhook endpoints, newest first.
    async fn webhooks(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Conn<Webhook>> {
        let (state, rc) = parts(ctx);
        let page = PageRequest::parse(first, after.as_deref(), last, before.as_deref())?;
        let org = organization_id.map(|o| parse_id("organization_id", &o)).transpose()?;
        Ok(connection(webhooks::list_webhooks(state, rc, org, page).await?))
    }

    /// One of the caller's webhook endpoints.
    async fn webhook(&self, ctx: &Context<'_>, id: ID) -> Result<Webhook> {
        let (state, rc) = parts(ctx);
        Ok(webhooks::get_webhook(state, rc, parse_id("id", &id)?).await?.into())
    }

    /// The deliveries of one of the caller's endpoints, newest first, each with its attempts.
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Conn<WebhookDelivery>> {
        let (state, rc) = parts(ctx);
        let page = PageRequest::parse(first, after.as_deref(), last, before.as_deref())?;
        let id = parse_id("webhook_id", &webhook_id)?;
        Ok(connection(deliveries::list_deliveries(state, rc, id, page).await?))
    }
}

/// Managing webhook endpoints.
#[derive(Default)]
pub struct WebhooksMutation;

#[Object]
impl WebhooksMutation {
    /// Creates an endpoint; its signing secret is in the answer, and only there.
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> Result<WebhookSecretPayload> {
        let (state, rc) = parts(ctx);
        let organization_id = input.organization_id.map(|o| parse_id("organization_id", &o)).transpose()?;
        let input = NewWebhook {
            organization_id,
            url: input.url,
            events: input.events,
            description: input.description,
            active: input.active,
        };
        Ok(webhooks::create_webhook(state, rc, input).await?.into())
    }

    /// Changes an endpoint (re-activating one clears its failure record).
    async fn update_webhook(&self, ctx: &Context<'_>, id: ID, input: UpdateWebhookInput) -> Result<Webhook> {
        let (state, rc) = parts(ctx);
        let changes = WebhookChanges {
            url: input.url,
            events: input.events,
            description: input.description,
            active: input.active,
        };
        Ok(webhooks::update_webhook(state, rc, parse_id("id", &id)?, changes).await?.into())
    }

    /// Deletes an endpoint and its deliveries.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        webhooks::delete_webhook(state, rc, parse_id("id", &id)?).await?;
        Ok(ActionPayload { success: true })
    }

    /// Sends `webhook.test` to the endpoint now and reports the receiver's status and time.
    async fn test_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<TestWebhookPayload> {
        let (state, rc) = parts(ctx);
        Ok(test_webhook(state, rc, parse_id("id", &id)?).await?.into())
    }

    /// Replaces the endpoint's signing secret; the new one is in the answer, and only there.
    async fn rotate_webhook_secret(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookSecretPayload> {
        let (state, rc) = parts(ctx);
        Ok(webhooks::rotate_webhook_secret(state, rc, parse_id("id", &id)?).await?.into())
    }

    /// Sends one delivery again now, whatever its state.
    async fn redeliver_webhook_delivery(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        delivery_id: ID,
    ) -> Result<WebhookDelivery> {
        let (state, rc) = parts(ctx);
        let (w, d) = (parse_id("webhook_id", &webhook_id)?, parse_id("delivery_id", &delivery_id)?);
        Ok(deliveries::redeliver(state, rc, w, d).await?.into())
    }
}
