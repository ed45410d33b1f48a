//! Event streams for subscribers: replay from the outbox, then live from the bus, without gaps
//! or duplicates (events are ordered by outbox position and de-duplicated by it).

use std::collections::VecDeque;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use crate::context::UserActor;
use crate::domain::EventType;
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::events::{self, BusEvent};
use crate::state::AppState;

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum StreamItem {
    Event(Arc<BusEvent>),
    /// The subscriber's own session was revoked: the stream ends.
    End,
}

struct Cursor {
    state: AppState,
    actor: UserActor,
    rx: broadcast::Receiver<Arc<BusEvent>>,
    last_seq: i64,
    pending: VecDeque<Arc<BusEvent>>,
    ended: bool,
    _gauge: SubscriberGauge,
}

/// Counts a subscriber in `janua_subscribers` for as long as its stream lives.
struct SubscriberGauge;

impl SubscriberGauge {
    fn new() -> Self {
        metrics::gauge!("janua_subscribers").increment(1.0);
        Self
    }
}

impl Drop for SubscriberGauge {
    fn drop(&mut self) {
        metrics::gauge!("janua_subscribers").decrement(1.0);
    }
}

impl Cursor {
    fn wants(&self, e: &BusEvent) -> bool {
        e.seq > self.last_seq && e.subject_user_id == Some(self.actor.user_id)
    }

    fn ends_stream(&self, e: &BusEvent) -> bool {
        e.event_type == EventType::SessionRevoked.as_str()
            && e.payload["data"]["attributes"]["session_id"].as_str()
                == Some(&self.actor.session_id.to_string())
    }

    async fn refill_from_outbox(&mut self) -> AppResult<()> {
        let rows = events::replay(&self.state.db, self.last_seq, Some(self.actor.user_id), 500).await?;
        self.pending.extend(rows.into_iter().map(Arc::new));
        Ok(())
    }

    async fn next(&mut self) -> Option<StreamItem> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                if !self.wants(&e) {
                    continue;
                }
                self.last_seq = e.seq;
                // After the revocation of the subscriber's own session, nothing more is sent.
                self.ended = self.ends_stream(&e);
                return Some(StreamItem::Event(e));
            }
            match self.rx.recv().await {
                Ok(e) => {
                    if self.wants(&e) {
                        self.pending.push_back(e);
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    metrics::counter!("janua_subscriber_lagged_total").increment(n);
                    if self.refill_from_outbox().await.is_err() {
                        return None;
                    }
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// The session events of `actor`'s user; with `after` (an event id) it first replays what came later.
pub async fn session_stream(
    state: AppState,
    actor: UserActor,
    after: Option<Uuid>,
) -> AppResult<impl Stream<Item = StreamItem> + Send + 'static> {
    if state.revocations.is_revoked(actor.session_id).await.map_err(AppError::internal)? {
        return Err(ErrorCode::SessionRevoked.into());
    }
    // Subscribe before reading the outbox so nothing committed in between is missed.
    let rx = state.bus.subscribe();
    let last_seq = match after {
        Some(id) => events::seq_of(&state.db, id)
            .await?
            .ok_or_else(|| AppError::field("after", FieldIssue::InvalidFormat))?,
        // Live only: start after the newest event already in the outbox.
        None => events::replay_tail_seq(&state.db).await?,
    };
    let mut cursor = Cursor {
        state,
        actor,
        rx,
        last_seq,
        pending: VecDeque::new(),
        ended: false,
        _gauge: SubscriberGauge::new(),
    };
    if after.is_some() {
        cursor.refill_from_outbox().await?;
    }
    Ok(futures::stream::unfold((cursor, false), |(mut c, done)| async move {
        if done {
            return None;
        }
        match c.next().await {
            Some(item) => Some((item, (c, false))),
            None if c.ended => Some((StreamItem::End, (c, true))),
            None => None,
        }
    }))
}
