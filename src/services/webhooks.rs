//! Webhook endpoints: create, list, read, update, delete, rotate the signing secret.
//! Endpoints belong to the signed-in user (`organization_id` is ready for org-owned ones) and
//! receive the events whose subject is that user.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use uuid::Uuid;

use entities::webhook_endpoint;

use crate::context::RequestContext;
use crate::domain::page::{Page, PageRequest, encode_cursor};
use crate::domain::webhooks::{AddressPolicy, parse_endpoint_url, parse_event_filter};
use crate::domain::{EventType, optional_text};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::security::secrets::{MasterKey, Secret, random_token};
use crate::services::audit::Change;
use crate::services::authz;
use crate::services::unit_of_work::Write;
use crate::state::AppState;

/// Longest description.
pub const MAX_DESCRIPTION: usize = 500;

/// An endpoint as its owner sees it (never its secret).
#[derive(Clone, Debug)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub active: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub organization_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<webhook_endpoint::Model> for WebhookView {
    fn from(m: webhook_endpoint::Model) -> Self {
        Self {
            id: m.id,
            url: m.url,
            description: m.description,
            events: serde_json::from_value(m.events).unwrap_or_default(),
            active: m.active,
            disabled_reason: m.disabled_reason,
            failing_since: m.failing_since,
            organization_id: m.organization_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// An endpoint with its signing secret: the only time the secret leaves the server.
#[derive(Clone, Debug)]
pub struct WebhookWithSecret {
    pub webhook: WebhookView,
    pub secret: Secret,
}

/// What `create_webhook` takes.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    /// Owned by this organization (its admins and owners manage it) instead of the caller.
    pub organization_id: Option<Uuid>,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

/// What `update_webhook` changes (absent fields stay; an empty description clears it).
#[derive(Clone, Debug, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

/// The destinations configuration allows.
pub fn address_policy(state: &AppState) -> AddressPolicy {
    AddressPolicy {
        allow_loopback: state.config.webhook_allow_loopback,
        allow_private: state.config.webhook_allow_private,
    }
}

/// A fresh signing secret: `whsec_` and 32 random bytes, base64url.
fn new_secret() -> Secret {
    Secret(format!("whsec_{}", random_token(32)))
}

/// Opens an endpoint's sealed signing secret.
pub(crate) fn open_secret(master: &MasterKey, m: &webhook_endpoint::Model) -> AppResult<Secret> {
    let bytes = master.open(&m.secret_sealed).map_err(AppError::internal)?;
    String::from_utf8(bytes).map(Secret).map_err(AppError::internal)
}

/// Whether the caller may manage `org`'s endpoints (its admins and owners; administrators).
async fn authorize_org(state: &AppState, ctx: &RequestContext, org: Uuid) -> AppResult<()> {
    let p = authz::principal(state, ctx).await?;
    let role = authz::role_in(state, &p, org).await?;
    authz::authorize(&p, &authz::Action::ManageWebhooks { org, role })
}

/// One of the caller's endpoints, or one of an organization the caller administers; anything
/// else is reported exactly like a missing one.
pub(crate) async fn own_endpoint(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
) -> AppResult<webhook_endpoint::Model> {
    let actor = ctx.require_user()?;
    let m = webhook_endpoint::Entity::find_by_id(id).one(&state.db).await?.ok_or(ErrorCode::NotFound)?;
    match (m.user_id, m.organization_id) {
        (Some(owner), _) => authz::owned_by(actor.user_id, owner).map(|()| m),
        (None, Some(org)) => {
            authorize_org(state, ctx, org).await.map_err(|e| match e.code {
                ErrorCode::InsufficientPermissions => e,
                _ => AppError::new(ErrorCode::NotFound),
            })?;
            Ok(m)
        }
        _ => Err(ErrorCode::NotFound.into()),
    }
}

fn audit_data(m: &webhook_endpoint::Model) -> serde_json::Value {
    serde_json::json!({
        "webhook_id": m.id,
        "url": m.url,
        "events": m.events,
        "active": m.active,
    })
}

/// Creates an endpoint for the caller with a new secret (returned once), and audits it.
pub async fn create_webhook(
    state: &AppState,
    ctx: &RequestContext,
    input: NewWebhook,
) -> AppResult<WebhookWithSecret> {
    let actor = ctx.require_user()?;
    if let Some(org) = input.organization_id {
        authorize_org(state, ctx, org).await?;
    }
    let url = parse_endpoint_url(&input.url, address_policy(state));
    let events = parse_event_filter(input.events);
    let description = optional_text("description", input.description, MAX_DESCRIPTION);
    let (url, events, description) = match (url, events, description) {
        (Ok(u), Ok(e), Ok(d)) => (u, e, d),
        (u, e, d) => return Err(merge_errors([u.err(), e.err(), d.err()])),
    };
    let secret = new_secret();
    let now = Utc::now();
    let mut w = Write::begin(state, ctx).await?;
    let m = webhook_endpoint::ActiveModel {
        id: Set(Uuid::now_v7()),
        // An organization's endpoint belongs to the organization, not to whoever created it.
        user_id: Set(input.organization_id.is_none().then_some(actor.user_id)),
        organization_id: Set(input.organization_id),
        url: Set(url.to_string()),
        description: Set(description),
        events: Set(serde_json::json!(events)),
        secret_sealed: Set(state.master_key.seal(secret.0.as_bytes())),
        active: Set(input.active.unwrap_or(true)),
        disabled_reason: Set(None),
        failing_since: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(w.tx())
    .await?;
    w.record(Change {
        event: EventType::WebhookCreated,
        target: Some(("webhook", m.id.to_string())),
        subject_user: Some(actor.user_id),
        acting_user: None,
        organization: m.organization_id,
        data: audit_data(&m),
    })
    .await?;
    w.commit().await?;
    Ok(WebhookWithSecret { webhook: m.into(), secret })
}

/// Joins the field errors of several checks into one validation error.
fn merge_errors<const N: usize>(errors: [Option<AppError>; N]) -> AppError {
    let mut out: Option<AppError> = None;
    for e in errors.into_iter().flatten() {
        out = Some(match out {
            None => e,
            Some(mut acc) => {
                acc.fields.extend(e.fields);
                acc
            }
        });
    }
    out.unwrap_or_else(|| AppError::new(ErrorCode::ValidationError))
}

/// The caller's endpoints, newest first, by keyset pages.
pub async fn list_webhooks(
    state: &AppState,
    ctx: &RequestContext,
    organization_id: Option<Uuid>,
    page: PageRequest,
) -> AppResult<Page<WebhookView>> {
    let actor = ctx.require_user()?;
    let base = match organization_id {
        Some(org) => {
            authorize_org(state, ctx, org).await?;
            webhook_endpoint::Entity::find().filter(webhook_endpoint::Column::OrganizationId.eq(org))
        }
        None => webhook_endpoint::Entity::find().filter(webhook_endpoint::Column::UserId.eq(actor.user_id)),
    };
    let total_count = base.clone().count(&state.db).await?;
    let (rows, has_next, has_previous) =
        super::webhook_deliveries::keyset(&state.db, base, webhook_endpoint::Column::Id, &page).await?;
    Ok(Page {
        items: rows.into_iter().map(|m| (encode_cursor(m.id), m.into())).collect(),
        has_next,
        has_previous,
        total_count,
    })
}

/// One of the caller's endpoints.
pub async fn get_webhook(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<WebhookView> {
    Ok(own_endpoint(state, ctx, id).await?.into())
}

/// Changes an endpoint and audits it. Re-activating one clears its failure record.
pub async fn update_webhook(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
    changes: WebhookChanges,
) -> AppResult<WebhookView> {
    let current = own_endpoint(state, ctx, id).await?;
    let url = changes.url.as_deref().map(|u| parse_endpoint_url(u, address_policy(state))).transpose();
    let events = changes.events.map(parse_event_filter).transpose();
    let description = match changes.description {
        Some(d) => optional_text("description", Some(d), MAX_DESCRIPTION).map(Some),
        None => Ok(None),
    };
    let (url, events, description) = match (url, events, description) {
        (Ok(u), Ok(e), Ok(d)) => (u, e, d),
        (u, e, d) => return Err(merge_errors([u.err(), e.err(), d.err()])),
    };
    let mut am: webhook_endpoint::ActiveModel = current.clone().into();
    if let Some(u) = url {
        am.url = Set(u.to_string());
    }
    if let Some(e) = events {
        am.events = Set(serde_json::json!(e));
    }
    if let Some(d) = description {
        am.description = Set(d);
    }
    if let Some(a) = changes.active {
        am.active = Set(a);
        if a && !current.active {
            am.disabled_reason = Set(None);
            am.failing_since = Set(None);
        }
    }
    am.updated_at = Set(Utc::now());
    let mut w = Write::begin(state, ctx).await?;
    let m = am.update(w.tx()).await?;
    w.record(change(&m, EventType::WebhookUpdated, audit_data(&m))).await?;
    w.commit().await?;
    Ok(m.into())
}

/// The audit change of `event` on endpoint `m` (its owner's stream, its organization's log).
fn change(m: &webhook_endpoint::Model, event: EventType, data: serde_json::Value) -> Change {
    Change {
        event,
        target: Some(("webhook", m.id.to_string())),
        subject_user: m.user_id,
        acting_user: None,
        organization: m.organization_id,
        data,
    }
}

/// Deletes an endpoint with its deliveries, and audits it.
pub async fn delete_webhook(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<()> {
    let m = own_endpoint(state, ctx, id).await?;
    let mut w = Write::begin(state, ctx).await?;
    webhook_endpoint::Entity::delete_by_id(m.id).exec(w.tx()).await?;
    w.record(change(&m, EventType::WebhookDeleted, audit_data(&m))).await?;
    w.commit().await?;
    Ok(())
}

/// Replaces an endpoint's signing secret (the old one stops signing at once); returns the new
/// one, once, and audits the rotation.
pub async fn rotate_webhook_secret(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
) -> AppResult<WebhookWithSecret> {
    let current = own_endpoint(state, ctx, id).await?;
    let secret = new_secret();
    let mut am: webhook_endpoint::ActiveModel = current.into();
    am.secret_sealed = Set(state.master_key.seal(secret.0.as_bytes()));
    am.updated_at = Set(Utc::now());
    let mut w = Write::begin(state, ctx).await?;
    let m = am.update(w.tx()).await?;
    let mut data = audit_data(&m);
    data["secret_rotated"] = true.into();
    w.record(change(&m, EventType::WebhookUpdated, data)).await?;
    w.commit().await?;
    Ok(WebhookWithSecret { webhook: m.into(), secret })
}
