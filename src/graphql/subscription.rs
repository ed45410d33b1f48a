//! `sessionEvents`: the caller's session events, replayed from the outbox after `after`, then live.

use async_graphql::futures_util::Stream;
use async_graphql::{Context, ID, Result, Subscription};

use super::parts;
use super::types::{SessionEvent, SessionEventType};
use crate::domain::{EventType, SessionEventKind, parse_id};
use crate::error::{AppError, ErrorCode};
use crate::events::BusEvent;
use crate::services::subscriptions::{self, StreamItem};

/// Subscription root.
#[derive(Default)]
pub struct SessionSubscription;

fn to_graphql(e: &BusEvent) -> Option<SessionEvent> {
    let kind = EventType::parse(&e.event_type)?.session_kind()?;
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
    /// The caller's session events (created, refreshed, revoked, refresh reuse detected).
    /// With `after` (an event id), first replays every later event, with no gap and no duplicate.
    /// Ends with `SESSION_REVOKED` when the subscriber's own session is revoked.
    async fn session_events(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = Result<SessionEvent>> + use<>> {
        let (state, rc) = parts(ctx);
        let actor = rc.require_user()?.clone();
        let after = after.map(|a| parse_id("after", &a)).transpose()?;
        let stream = subscriptions::session_stream(state.clone(), actor, after).await?;
        Ok(async_graphql::futures_util::StreamExt::filter_map(stream, |item| async move {
            match item {
                StreamItem::Event(e) => to_graphql(&e).map(Ok),
                StreamItem::End => Some(Err(AppError::new(ErrorCode::SessionRevoked).into())),
            }
        }))
    }
}
