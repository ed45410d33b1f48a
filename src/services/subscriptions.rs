//! Event streams for subscribers: replay from the outbox, then live from the bus, without gaps
//! or duplicates (events are ordered by outbox position and de-duplicated by it).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::future::{BoxFuture, FutureExt};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use uuid::Uuid;

use crate::context::UserActor;
use crate::domain::UserStatus;
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

/// Which events a subscriber receives.
#[derive(Debug, Clone)]
enum Scope {
    /// Session events of these users: the subscriber, and the members of the organizations the
    /// subscriber administers.
    Sessions { users: std::collections::HashSet<Uuid>, orgs: Vec<Uuid> },
    /// Audit events: every event for administrators, else those of the organizations the
    /// subscriber administers; narrowed by the filter.
    Audit { all: bool, orgs: Vec<Uuid>, filter: AuditStreamFilter },
}

/// Narrows an `auditEvents` subscription.
#[derive(Debug, Clone, Default)]
pub struct AuditStreamFilter {
    /// An action, or a prefix when it ends with `.*` (`organization.*`).
    pub action: Option<String>,
    pub actor_id: Option<Uuid>,
    pub target_id: Option<String>,
    pub organization_id: Option<Uuid>,
}

impl AuditStreamFilter {
    fn matches(&self, e: &BusEvent) -> bool {
        let data = &e.payload["data"];
        let action_ok = match self.action.as_deref() {
            None | Some("") => true,
            Some(a) => match a.strip_suffix(".*") {
                Some(prefix) => e.event_type.starts_with(&format!("{prefix}.")),
                None => e.event_type == a,
            },
        };
        action_ok
            && self.actor_id.is_none_or(|a| data["actor"]["id"].as_str() == Some(&a.to_string()))
            && self.target_id.as_ref().is_none_or(|t| data["target"]["id"].as_str() == Some(t.as_str()))
            && self.organization_id.is_none_or(|o| e.organization_id == Some(o))
    }
}

/// How often an audit subscriber's rights are read again (a demoted admin stops receiving).
const RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// A subscriber's position in the event sequence and what it may see.
pub struct Cursor {
    state: AppState,
    actor: UserActor,
    /// The subscriber's session id as events carry it (compared for every event).
    own_session: String,
    scope: Scope,
    checked_at: std::time::Instant,
    /// An event changed this subscriber's rights: they are read again before the next event.
    rights_changed: bool,
    rx: broadcast::Receiver<Arc<BusEvent>>,
    last_seq: i64,
    pending: VecDeque<Arc<BusEvent>>,
    /// Still reading the outbox after `after` (in pages) before going live.
    replaying: bool,
    ended: bool,
    /// The `End` item was handed out.
    end_sent: bool,
}

/// What a live cursor has for its subscriber right now ([`Cursor::poll_live`]).
pub enum Offer {
    /// An event to send.
    Deliver(Arc<BusEvent>),
    /// Nothing waiting.
    Idle,
    /// The asynchronous path must go on: the subscriber's own session was revoked, its rights
    /// are due to be read again, it lagged behind the bus (the outbox is read), or the bus closed.
    Slow,
}

impl Cursor {
    fn wants(&self, e: &BusEvent) -> bool {
        e.seq > self.last_seq
            && match &self.scope {
                Scope::Sessions { users, .. } => {
                    e.facts().session_kind.is_some() && e.subject_user_id.is_some_and(|u| users.contains(&u))
                }
                Scope::Audit { all, orgs, filter } => {
                    (*all || e.organization_id.is_some_and(|o| orgs.contains(&o))) && filter.matches(e)
                }
            }
    }

    /// Reads the subscriber's audit rights again when they are older than [`RECHECK`].
    async fn recheck(&mut self) -> AppResult<()> {
        if !self.rights_changed && self.checked_at.elapsed() < RECHECK {
            return Ok(());
        }
        self.scope = match &self.scope {
            Scope::Audit { filter, .. } => audit_scope(&self.state, &self.actor, filter.clone()).await?,
            Scope::Sessions { .. } => sessions_scope(&self.state, &self.actor).await?,
        };
        self.checked_at = std::time::Instant::now();
        self.rights_changed = false;
        Ok(())
    }

    /// Whether `e` may change what this subscriber sees: a membership, role or account change
    /// of the subscriber, or in an organization it watches. Membership alone grants the view of
    /// a person, so it is read again at once, not at the next [`RECHECK`].
    fn rights_changed_by(&self, e: &BusEvent) -> bool {
        let orgs = match &self.scope {
            Scope::Sessions { orgs, .. } | Scope::Audit { orgs, .. } => orgs,
        };
        e.seq > self.last_seq
            && e.facts().changes_rights
            && (e.subject_user_id == Some(self.actor.user_id)
                || e.organization_id.is_some_and(|o| orgs.contains(&o)))
    }

    fn ends_stream(&self, e: &BusEvent) -> bool {
        e.facts().revoked_session.as_deref() == Some(self.own_session.as_str())
    }

    /// Reads the next page of the outbox after `last_seq`; the replay ends with a short page.
    async fn refill_from_outbox(&mut self) -> AppResult<()> {
        const PAGE: u64 = 500;
        // The subscriber's own events are read by user; wider scopes read every event.
        let user = match &self.scope {
            Scope::Sessions { users, .. } if users.len() == 1 => Some(self.actor.user_id),
            _ => None,
        };
        let from = self.pending.back().map_or(self.last_seq, |e| e.seq);
        let rows = events::replay(&self.state.db, from, user, PAGE).await?;
        self.replaying = rows.len() as u64 == PAGE;
        self.pending.extend(rows.into_iter().map(Arc::new));
        Ok(())
    }

    /// The next item, waiting for it: events, then `End` once if the subscriber's own session
    /// was revoked; `None` when the stream is over.
    pub async fn next_item(&mut self) -> Option<StreamItem> {
        match self.next().await {
            Some(e) => Some(StreamItem::Event(e)),
            None if self.ended && !self.end_sent => {
                self.end_sent = true;
                Some(StreamItem::End)
            }
            None => None,
        }
    }

    /// Whether [`Cursor::poll_live`] can serve it at `now`: caught up with the outbox, nothing
    /// pending, not ended, rights not due to be read again.
    fn is_live_at(&self, now: std::time::Instant) -> bool {
        !self.ended
            && !self.replaying
            && self.pending.is_empty()
            && !self.rights_changed
            && now.saturating_duration_since(self.checked_at) < RECHECK
    }

    /// What is waiting, without waiting: the same decisions as [`Cursor::next_item`] for a live
    /// subscriber, anything else left to it ([`Offer::Slow`], with nothing consumed but what
    /// it has queued for itself).
    ///
    /// `now` is read once by the caller for all the cursors it serves.
    pub fn poll_live(&mut self, now: std::time::Instant) -> Offer {
        if !self.is_live_at(now) {
            return Offer::Slow;
        }
        loop {
            match self.rx.try_recv() {
                Ok(e) if self.rights_changed_by(&e) => {
                    self.rights_changed = true;
                    self.pending.push_back(e);
                    return Offer::Slow;
                }
                Ok(e) if !self.admits(&e) => continue,
                Ok(e) if self.ends_stream(&e) => {
                    self.pending.push_back(e);
                    return Offer::Slow;
                }
                Ok(e) => {
                    self.last_seq = e.seq;
                    return Offer::Deliver(e);
                }
                Err(TryRecvError::Empty) => return Offer::Idle,
                Err(TryRecvError::Lagged(n)) => {
                    self.lagged(n);
                    return Offer::Slow;
                }
                Err(TryRecvError::Closed) => return Offer::Slow,
            }
        }
    }

    /// Whether an event from the bus is for this subscriber: one it may see, or the revocation
    /// of its own session, after what it has had.
    fn admits(&self, e: &BusEvent) -> bool {
        e.seq > self.last_seq && (self.wants(e) || self.ends_stream(e))
    }

    /// Missed `n` live events: they are read back from the outbox instead of being dropped.
    fn lagged(&mut self, n: u64) {
        metrics::counter!("janua_subscriber_lagged_total").increment(n);
        self.pending.clear();
        self.replaying = true;
    }

    async fn next(&mut self) -> Option<Arc<BusEvent>> {
        loop {
            if self.ended {
                return None;
            }
            if self.pending.is_empty() && self.replaying && self.refill_from_outbox().await.is_err() {
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                if e.seq <= self.last_seq {
                    continue;
                }
                // After the revocation of the subscriber's own session, nothing more is sent.
                if self.ends_stream(&e) {
                    self.ended = true;
                    self.last_seq = e.seq;
                    if self.wants(&e) || matches!(self.scope, Scope::Sessions { .. }) {
                        return Some(e);
                    }
                    return None;
                }
                if self.recheck().await.is_err() {
                    return None;
                }
                if !self.wants(&e) {
                    continue;
                }
                self.last_seq = e.seq;
                return Some(e);
            }
            match self.rx.recv().await {
                Ok(e) if self.rights_changed_by(&e) => {
                    self.rights_changed = true;
                    self.pending.push_back(e);
                }
                Ok(e) if self.admits(&e) => self.pending.push_back(e),
                Ok(_) => {}
                // Refilled from the outbox at the top of the loop.
                Err(RecvError::Lagged(n)) => self.lagged(n),
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

async fn sessions_scope(state: &AppState, actor: &UserActor) -> AppResult<Scope> {
    use entities::org_member;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let orgs = crate::services::authz::administered_orgs(&state.db, actor.user_id).await?;
    let mut users: std::collections::HashSet<Uuid> = if orgs.is_empty() {
        Default::default()
    } else {
        org_member::Entity::find()
            .filter(org_member::Column::OrganizationId.is_in(orgs.clone()))
            .select_only()
            .column(org_member::Column::UserId)
            .into_tuple::<Uuid>()
            .all(&state.db)
            .await?
            .into_iter()
            .collect()
    };
    users.insert(actor.user_id);
    Ok(Scope::Sessions { users, orgs })
}

async fn audit_scope(state: &AppState, actor: &UserActor, filter: AuditStreamFilter) -> AppResult<Scope> {
    use crate::services::authz::{self, Principal};
    use entities::user;
    use sea_orm::EntityTrait;
    let u = user::Entity::find_by_id(actor.user_id).one(&state.db).await?.ok_or(ErrorCode::SessionRevoked)?;
    if !UserStatus::Active.is(&u.status) {
        return Err(ErrorCode::AccountDisabled.into());
    }
    let p = Principal::User { id: u.id, is_admin: u.is_admin };
    if p.is_admin() {
        return Ok(Scope::Audit { all: true, orgs: Vec::new(), filter });
    }
    let orgs = crate::services::authz::administered_orgs(&state.db, u.id).await?;
    match filter.organization_id {
        Some(org) => {
            let role = authz::role_in(state, &p, org).await?;
            authz::authorize(&p, &authz::Action::ReadOrgAudit { org, role })?;
        }
        None if orgs.is_empty() => return Err(ErrorCode::Forbidden.into()),
        None => {}
    }
    Ok(Scope::Audit { all: false, orgs, filter })
}

async fn open_stream(
    state: AppState,
    actor: UserActor,
    scope: Scope,
    after: Option<Uuid>,
) -> AppResult<EventStream> {
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
    let cursor = Cursor {
        state,
        own_session: actor.session_id.to_string(),
        actor,
        scope,
        checked_at: std::time::Instant::now(),
        rights_changed: false,
        rx,
        last_seq,
        pending: VecDeque::new(),
        replaying: after.is_some(),
        ended: false,
        end_sent: false,
    };
    Ok(EventStream::new(cursor))
}

/// A subscriber's events as a stream; the cursor can be taken out between items (to be served
/// without a task of its own, see `http::ws::lanes`) and put back.
pub struct EventStream {
    cursor: Option<Cursor>,
    next: Option<BoxFuture<'static, (Cursor, Option<StreamItem>)>>,
}

impl EventStream {
    pub fn new(cursor: Cursor) -> Self {
        Self { cursor: Some(cursor), next: None }
    }

    /// The cursor, when it is between items and live (the lane's [`Cursor::poll_live`] can
    /// serve it).
    pub fn take_live(&mut self) -> Option<Cursor> {
        let now = std::time::Instant::now();
        let live = self.next.is_none() && self.cursor.as_ref().is_some_and(|c| c.is_live_at(now));
        if live { self.cursor.take() } else { None }
    }
}

impl Stream for EventStream {
    type Item = StreamItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        let this = &mut *self;
        if this.next.is_none() {
            let Some(mut c) = this.cursor.take() else { return Poll::Ready(None) };
            this.next = Some(
                async move {
                    let item = c.next_item().await;
                    (c, item)
                }
                .boxed(),
            );
        }
        let next = this.next.as_mut().expect("set above");
        let (c, item) = std::task::ready!(next.as_mut().poll(cx));
        this.next = None;
        if item.is_some() {
            this.cursor = Some(c);
        }
        Poll::Ready(item)
    }
}

/// Audit events the subscriber may see (administrators: all; organization admins and owners:
/// their organizations'), narrowed by `filter`; with `after` it first replays what came later.
/// Rights are checked at subscription and again every 30 seconds as events flow.
pub async fn audit_stream(
    state: AppState,
    actor: UserActor,
    filter: AuditStreamFilter,
    after: Option<Uuid>,
) -> AppResult<EventStream> {
    let scope = audit_scope(&state, &actor, filter).await?;
    open_stream(state, actor, scope, after).await
}

/// The session events of `actor`'s user; with `after` (an event id) it first replays what came later.
pub async fn session_stream(
    state: AppState,
    actor: UserActor,
    after: Option<Uuid>,
) -> AppResult<EventStream> {
    let scope = sessions_scope(&state, &actor).await?;
    open_stream(state, actor, scope, after).await
}
