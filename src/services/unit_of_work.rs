//! The one way to write: every state change of the services goes through a [`Write`].
//!
//! A `Write` opens the write transaction, records each change as its audit row and outbox event
//! (one id) in that transaction — buffered, and written as one multi-row `INSERT` per table just
//! before the commit (or at [`Write::flush`]), so a write recording several changes costs two
//! statements for them, not two each — commits, and only then makes committed session revocations
//! effective on this node and wakes the outbox dispatcher, the webhook worker and, when it
//! queued mail, the mail worker. Dropped
//! without [`Write::commit`], it rolls everything back: the change, its audit rows and events.

use std::borrow::Cow;

use chrono::Utc;
use sea_orm::{DatabaseConnection, DatabaseTransaction, EntityTrait, Set};
use uuid::Uuid;

use entities::{audit_log, outbox_event, session};

use crate::context::{Actor, RequestContext};
use crate::error::AppResult;
use crate::services::audit::Change;
use crate::state::AppState;
use crate::storage::{GatePass, WriteGate};

/// An open write: a transaction, the request it serves, and what to do once it commits.
pub struct Write<'a> {
    txn: DatabaseTransaction,
    /// This process's turn to write (SQLite), released once the transaction ended (declared
    /// after `txn`, so a dropped write rolls back before the next one starts).
    pass: GatePass,
    ctx: Cow<'a, RequestContext>,
    /// `None` for a bare connection (bulk seeding): nothing to wake, no revocation to publish.
    state: Option<&'a AppState>,
    recorded: usize,
    /// Audit rows and outbox events recorded and not yet written, in the order recorded.
    pending: Vec<(audit_log::ActiveModel, outbox_event::ActiveModel)>,
    revoked: Vec<session::Model>,
    /// Users whose row this write changes (their cached copies are stale once it commits).
    users: Vec<Uuid>,
    /// Mails queued in this write (the mail worker is woken after the commit).
    mails: usize,
}

impl<'a> Write<'a> {
    /// Opens the write transaction of a request (`BEGIN IMMEDIATE` on SQLite).
    pub async fn begin(state: &'a AppState, ctx: &'a RequestContext) -> AppResult<Self> {
        Self::open(&state.db, Cow::Borrowed(ctx), Some(state)).await
    }

    /// Opens a write of a background worker; its changes are audited under `request_id`.
    pub async fn begin_worker(state: &'a AppState, request_id: &str) -> AppResult<Self> {
        let ctx = RequestContext { request_id: request_id.to_owned(), ..RequestContext::default() };
        Self::open(&state.db, Cow::Owned(ctx), Some(state)).await
    }

    /// Opens a write on a bare connection (no workers to wake); for bulk inserts that record
    /// no change.
    pub async fn begin_on(db: &'a DatabaseConnection) -> AppResult<Self> {
        Self::open(db, Cow::Owned(RequestContext::default()), None).await
    }

    async fn open(
        db: &DatabaseConnection,
        ctx: Cow<'a, RequestContext>,
        state: Option<&'a AppState>,
    ) -> AppResult<Self> {
        let (pass, txn) = match state {
            Some(s) => s.write_gate.begin(db).await?,
            None => WriteGate::default().begin(db).await?,
        };
        Ok(Self {
            txn,
            pass,
            ctx,
            state,
            recorded: 0,
            pending: Vec::new(),
            revoked: Vec::new(),
            users: Vec::new(),
            mails: 0,
        })
    }

    /// The transaction, for the statements of the change itself.
    pub fn tx(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// The request this write serves.
    pub fn ctx(&self) -> &RequestContext {
        &self.ctx
    }

    /// Writes the audit row and the outbox event of `change` in this transaction (they commit
    /// or roll back with it); returns the event id, shared by both rows.
    pub async fn record(&mut self, change: Change) -> AppResult<Uuid> {
        let (id, rows) = rows_of(&self.ctx, change);
        self.pend(rows);
        Ok(id)
    }

    /// As [`Write::record`], for a change made on behalf of another request than this write's
    /// (a group of rotations written together: `services::refresh_batch`).
    pub fn record_for(&mut self, ctx: &RequestContext, change: Change) -> Uuid {
        let (id, rows) = rows_of(ctx, change);
        self.pend(rows);
        id
    }

    /// Keeps a change's rows for the next [`Write::flush`].
    fn pend(&mut self, rows: (audit_log::ActiveModel, outbox_event::ActiveModel)) {
        self.pending.push(rows);
        self.recorded += 1;
    }

    /// Writes the audit rows and outbox events recorded so far, for a statement of this write
    /// that reads them back (the commit writes whatever is still pending).
    pub async fn flush(&mut self) -> AppResult<()> {
        // Bounded rows per statement: SQLite allows 32,766 parameters; an audit row binds 13.
        const ROWS: usize = 1000;
        let pending = std::mem::take(&mut self.pending);
        for chunk in pending.chunks(ROWS) {
            let (audits, events): (Vec<_>, Vec<_>) = chunk.iter().cloned().unzip();
            audit_log::Entity::insert_many(audits).exec_without_returning(&self.txn).await?;
            outbox_event::Entity::insert_many(events).exec_without_returning(&self.txn).await?;
        }
        Ok(())
    }

    /// Marks a session whose revocation this write commits: after the commit, this node
    /// refuses its tokens at once.
    pub fn revoked(&mut self, s: session::Model) {
        self.revoked.push(s);
    }

    /// Marks a user whose row this write changes: after the commit, every node reads it from
    /// the database at its next request (its stamp changes; see `storage::user_cache`). Every
    /// update or deletion of a `users` row calls this.
    pub fn user_changed(&mut self, user_id: Uuid) {
        if !self.users.contains(&user_id) {
            self.users.push(user_id);
        }
    }

    /// Notes a mail queued in this transaction (`services::mail::queue`): the commit wakes
    /// the mail worker.
    pub fn queued_mail(&mut self) {
        self.mails += 1;
    }

    /// Commits; then publishes the revocations and user changes and, when the write recorded or revoked
    /// anything, wakes the outbox dispatcher and the webhook worker (and the mail worker when
    /// it queued mail).
    pub async fn commit(mut self) -> AppResult<()> {
        self.flush().await?;
        let Self { txn, pass, state, recorded, revoked, users, mails, .. } = self;
        let committed = txn.commit().await;
        drop(pass);
        committed?;
        if let Some(state) = state {
            for s in &revoked {
                state.revocations.revoke(s.id, s.expires_at).await;
            }
            for u in users {
                state.revocations.user_changed(u).await;
            }
            if recorded > 0 || !revoked.is_empty() {
                state.events_committed();
            }
            if mails > 0 {
                state.mail_wake.notify_one();
            }
        }
        Ok(())
    }

    /// Rolls back now (dropping the write does too, but this releases the write lock before
    /// the caller goes on).
    pub async fn rollback(self) -> AppResult<()> {
        let Self { txn, pass, .. } = self;
        let r = txn.rollback().await;
        drop(pass);
        Ok(r?)
    }
}

/// The audit row and the outbox event of `change`, and their shared event id.
fn rows_of(
    ctx: &RequestContext,
    change: Change,
) -> (Uuid, (audit_log::ActiveModel, outbox_event::ActiveModel)) {
    let id = Uuid::now_v7();
    let now = Utc::now();
    let (actor_type, actor_id, actor_email) = match (&ctx.actor, &change.acting_user) {
        (Actor::User(u), _) => ("user", Some(u.user_id), Some(u.email.clone())),
        (Actor::ApiKey(k), _) => ("api_key", Some(k.key_id), None),
        (Actor::Scim(t), _) => ("scim_token", Some(t.token_id), None),
        (Actor::Anonymous, Some((id, email))) => {
            (if id.is_some() { "user" } else { "anonymous" }, *id, Some(email.clone()))
        }
        (Actor::Anonymous, None) => ("anonymous", None, None),
    };
    let (target_type, target_id) = match &change.target {
        Some((t, i)) => (Some((*t).to_owned()), Some(i.clone())),
        None => (None, None),
    };
    let audit = audit_log::ActiveModel {
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
    };
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
    let event = outbox_event::ActiveModel {
        event_id: Set(id),
        event_type: Set(change.event.as_str().to_owned()),
        subject_user_id: Set(change.subject_user),
        organization_id: Set(change.organization),
        payload: Set(payload),
        created_at: Set(now),
        published_at: Set(None),
        ..Default::default()
    };
    (id, (audit, event))
}
