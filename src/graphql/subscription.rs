//! `sessionEvents`: the caller's session events, replayed from the outbox after `after`, then live.

use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::{Context, ID, Json, Result, SimpleObject, Subscription};
use chrono::{DateTime, Utc};

use super::parts;
use super::render::Feed;
use super::types::{SessionEvent, SessionEventType};
use crate::context::UserActor;
use crate::domain::{SessionEventKind, parse_id};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::events::BusEvent;
use crate::services::subscriptions::{self, AuditStreamFilter, EventStream, StreamItem};
use crate::state::AppState;

/// Who acted, in an audit event.
#[derive(SimpleObject, Clone)]
pub struct AuditEventActor {
    /// `user`, `api_key`, `anonymous` or `system`.
    #[graphql(name = "type")]
    pub kind: Option<String>,
    pub id: Option<ID>,
}

/// What an audit event is about.
#[derive(SimpleObject, Clone)]
pub struct AuditEventTarget {
    #[graphql(name = "type")]
    pub kind: Option<String>,
    pub id: Option<String>,
}

/// An audit event as it happens (the same id as its audit record and webhook deliveries).
#[derive(SimpleObject, Clone)]
pub struct AuditEvent {
    /// Pass it as `after` to resume.
    pub id: ID,
    pub action: String,
    pub actor: AuditEventActor,
    pub target: AuditEventTarget,
    pub organization_id: Option<ID>,
    pub occurred_at: DateTime<Utc>,
    /// The event's attributes (never secrets).
    pub data: Json<serde_json::Value>,
}

fn audit_event(e: &BusEvent) -> AuditEvent {
    let d = &e.payload["data"];
    let s = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    AuditEvent {
        id: ID(e.id.to_string()),
        action: e.event_type.clone(),
        actor: AuditEventActor { kind: s(&d["actor"]["type"]), id: s(&d["actor"]["id"]).map(ID) },
        target: AuditEventTarget { kind: s(&d["target"]["type"]), id: s(&d["target"]["id"]) },
        organization_id: e.organization_id.map(|o| ID(o.to_string())),
        occurred_at: e.created_at,
        data: Json(d["attributes"].clone()),
    }
}

/// Subscription root.
#[derive(Default)]
pub struct SessionSubscription;

fn to_graphql(e: &BusEvent) -> Option<SessionEvent> {
    let kind = e.facts().session_kind?;
    let attrs = &e.payload["data"]["attributes"];
    Some(SessionEvent {
        id: ID(e.id.to_string()),
        kind: match kind {
            SessionEventKind::Created => SessionEventType::Created,
            SessionEventKind::Refreshed => SessionEventType::Refreshed,
            SessionEventKind::Revoked => SessionEventType::Revoked,
            SessionEventKind::RefreshReuseDetected => SessionEventType::RefreshReuseDetected,
        },
        action: e.event_type.clone(),
        session_id: ID(attrs["session_id"].as_str().unwrap_or_default().to_owned()),
        user_id: ID(e.subject_user_id.map(|u| u.to_string()).unwrap_or_default()),
        occurred_at: e.created_at,
    })
}

#[Subscription]
impl SessionSubscription {
    /// Session events (created, refreshed, revoked, refresh reuse detected): the caller's own,
    /// and for organization admins and owners, their members'.
    /// With `after` (an event id), first replays every later event, with no gap and no duplicate.
    /// Ends with `SESSION_REVOKED` when the subscriber's own session is revoked.
    async fn session_events(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<BoxStream<'static, Result<SessionEvent>>> {
        deliver(
            ctx,
            |state, actor| async move {
                let after = after.map(|a| parse_id("after", &a)).transpose()?;
                subscriptions::session_stream(state, actor, after).await
            },
            |item| match item {
                StreamItem::Event(e) => to_graphql(&e).map(Ok),
                StreamItem::End => Some(Err(AppError::new(ErrorCode::SessionRevoked).into())),
            },
        )
        .await
    }

    /// Audit events as they happen: everything for administrators; for organization admins and
    /// owners, their organizations' events. `action` matches exactly, or by prefix when it ends in
    /// `.*`. With `after` (an event id), first replays what came later. Ends with
    /// `SESSION_REVOKED` when the subscriber's own session is revoked.
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
        action: Option<String>,
        actor_id: Option<ID>,
        target_id: Option<String>,
        organization_id: Option<ID>,
    ) -> Result<BoxStream<'static, Result<AuditEvent>>> {
        deliver(
            ctx,
            |state, actor| async move {
                let filter = AuditStreamFilter {
                    action,
                    actor_id: actor_id.map(|a| parse_id("actor_id", &a)).transpose()?,
                    target_id,
                    organization_id: organization_id.map(|o| parse_id("organization_id", &o)).transpose()?,
                };
                let after = after.map(|a| parse_id("after", &a)).transpose()?;
                subscriptions::audit_stream(state, actor, filter, after).await
            },
            |item| match item {
                StreamItem::Event(e) => Some(Ok(audit_event(&e))),
                StreamItem::End => Some(Err(AppError::new(ErrorCode::SessionRevoked).into())),
            },
        )
        .await
    }
}

/// The stream of a subscription field: `open` authorizes the caller and opens its event stream,
/// `map` turns each item into the field's type. Over `/graphql/ws` the [`Feed`] splits the two
/// (see [`super::render`]): a probe keeps the opened stream, a render maps one given item.
async fn deliver<T, Open, Fut, Map>(
    ctx: &Context<'_>,
    open: Open,
    map: Map,
) -> Result<BoxStream<'static, Result<T>>>
where
    T: Send + 'static,
    Open: FnOnce(AppState, UserActor) -> Fut,
    Fut: Future<Output = AppResult<EventStream>>,
    Map: Fn(StreamItem) -> Option<Result<T>> + Send + Sync + 'static,
{
    if let Some(Feed::Render(item)) = ctx.data_opt::<Feed>() {
        return Ok(stream::iter(map(item.clone())).boxed());
    }
    let (state, rc) = parts(ctx);
    let actor = rc.require_user()?.clone();
    let events = open(state.clone(), actor).await?;
    if let Some(Feed::Probe(slot)) = ctx.data_opt::<Feed>() {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(events);
        return Ok(stream::empty().boxed());
    }
    Ok(events.filter_map(move |item| std::future::ready(map(item))).boxed())
}
