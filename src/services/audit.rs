//! Audit records and their outbox events, always written in the caller's transaction.

use chrono::Utc;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use uuid::Uuid;

use entities::{audit_log, outbox_event};

use crate::context::{Actor, RequestContext};
use crate::domain::EventType;
use crate::error::AppResult;

/// One change to record.
pub struct Change {
    pub event: EventType,
    /// `(type, id)` of what the change is about.
    pub target: Option<(&'static str, String)>,
    /// The user whose session stream the event belongs to.
    pub subject_user: Option<Uuid>,
    /// Who acted, when the request itself is anonymous (sign-up, sign-in): `(id, email)`.
    pub acting_user: Option<(Option<Uuid>, String)>,
    /// The organization the change belongs to (org admins see it in their audit stream).
    pub organization: Option<Uuid>,
    /// Event data (never secrets).
    pub data: serde_json::Value,
}

/// Writes the audit record and the outbox event of `change` in `txn`; returns the event id.
/// The caller commits and then calls `AppState::events_committed`.
pub async fn record(txn: &impl ConnectionTrait, ctx: &RequestContext, change: Change) -> AppResult<Uuid> {
    let id = Uuid::now_v7();
    let now = Utc::now();
    let (actor_type, actor_id, actor_email) = match (&ctx.actor, &change.acting_user) {
        (Actor::User(u), _) => ("user", Some(u.user_id), Some(u.email.clone())),
        (Actor::ApiKey(k), _) => ("api_key", Some(k.key_id), None),
        (Actor::Anonymous, Some((id, email))) => {
            (if id.is_some() { "user" } else { "anonymous" }, *id, Some(email.clone()))
        }
        (Actor::Anonymous, None) => ("anonymous", None, None),
    };
    let (target_type, target_id) = match &change.target {
        Some((t, i)) => (Some((*t).to_owned()), Some(i.clone())),
        None => (None, None),
    };
    audit_log::Entity::insert(audit_log::ActiveModel {
        id: Set(id),
        action: Set(change.event.as_str().to_owned()),
        actor_type: Set(actor_type.to_owned()),
        actor_id: Set(actor_id),
        actor_email: Set(actor_email),
        organization_id: Set(change.organization),
        target_type: Set(target_type.clone()),
        target_id: Set(target_id.clone()),
        ip_address: Set(ctx.client_ip.map(|ip| ip.to_string())),
        user_agent: Set(ctx.user_agent.clone()),
        request_id: Set(Some(ctx.request_id.clone())),
        metadata: Set(change.data.clone()),
        created_at: Set(now),
    })
    .exec_without_returning(txn)
    .await?;
    let payload = serde_json::json!({
        "id": id,
        "type": change.event.as_str(),
        "api_version": "2026-11-01",
        "created_at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "actor": {"type": actor_type, "id": actor_id},
            "target": {"type": target_type, "id": target_id},
            "attributes": change.data,
        },
    });
    outbox_event::Entity::insert(outbox_event::ActiveModel {
        event_id: Set(id),
        event_type: Set(change.event.as_str().to_owned()),
        subject_user_id: Set(change.subject_user),
        organization_id: Set(change.organization),
        payload: Set(payload),
        created_at: Set(now),
        published_at: Set(None),
        ..Default::default()
    })
    .exec_without_returning(txn)
    .await?;
    Ok(id)
}
