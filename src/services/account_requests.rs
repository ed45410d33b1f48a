//! Deferred account requests: `forgotPassword` and `requestMagicLink` answer without looking the
//! address up. The request stores one row in the mail outbox (status `requested`) — the same
//! work, in the same time, whether or not the address has an account — and the mail worker
//! resolves it after the commit: when the address belongs to an active account, it issues the
//! token, queues the mail and records the event, in one write; otherwise nothing is sent. A crash
//! loses no request (the row is durable, and resolved by whichever node gets to it first).

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use uuid::Uuid;

use entities::{mail_outbox, user};

use crate::context::RequestContext;
use crate::domain::{Email, EventType, UserStatus};
use crate::error::{AppError, AppResult, FieldIssue};
use crate::services::account_tokens::{self, TokenPurpose};
use crate::services::audit::Change;
use crate::services::mail::{self, MailKind, MailStatus, queue::any_due};
use crate::services::unit_of_work::Write;
use crate::state::AppState;

/// What was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    PasswordReset,
    MagicLink,
}

impl RequestKind {
    /// The stored name (`mail_outbox.kind` of a request row).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset_request",
            Self::MagicLink => "magic_link_request",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::PasswordReset, Self::MagicLink].into_iter().find(|k| k.as_str() == s)
    }
}

/// Records a request for `email` (parsed first: a malformed address is a 422, the same for
/// everyone), after counting it against the client's and the address's mail limits. `extra`
/// travels with the request to the mail (a magic link's redirect).
pub async fn request(
    state: &AppState,
    ctx: &RequestContext,
    kind: RequestKind,
    email: &str,
    extra: Option<serde_json::Value>,
) -> AppResult<()> {
    let email = Email::parse(email).map_err(|_| AppError::field("email", FieldIssue::InvalidEmail))?;
    mail::allow(state, ctx, email.as_str()).await?;
    let now = Utc::now();
    let data = serde_json::json!({
        "ip": ctx.client_ip.map(|ip| ip.to_string()),
        "user_agent": ctx.user_agent,
        "extra": extra,
    });
    let mut w = Write::begin(state, ctx).await?;
    mail_outbox::Entity::insert(mail_outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(kind.as_str().to_owned()),
        to_address: Set(email.as_str().to_owned()),
        locale: Set(ctx.locale.tag().to_owned()),
        data: Set(Some(data)),
        status: Set(MailStatus::Requested.as_str().to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        locked_until: Set(None),
        last_error: Set(None),
        message_id: Set(None),
        request_id: Set(Some(ctx.request_id.clone())),
        created_at: Set(now),
        sent_at: Set(None),
    })
    .exec_without_returning(w.tx())
    .await?;
    w.queued_mail();
    w.commit().await
}

/// The request's context, as it was when it was made (its audit rows name that client).
fn context_of(row: &mail_outbox::Model) -> RequestContext {
    let data = row.data.clone().unwrap_or_default();
    RequestContext {
        request_id: row.request_id.clone().unwrap_or_else(|| mail::queue::WORKER.to_owned()),
        client_ip: data["ip"].as_str().and_then(|ip| ip.parse().ok()),
        user_agent: data["user_agent"].as_str().map(str::to_owned),
        locale: mail::supported(&row.locale).unwrap_or_default(),
        ..RequestContext::default()
    }
}

/// Resolves every request due now, each in its own write under its own request's context;
/// returns how many it resolved.
pub async fn resolve_due(state: &AppState) -> AppResult<usize> {
    if !any_due(state, MailStatus::Requested).await? {
        return Ok(0);
    }
    let rows = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Status.eq(MailStatus::Requested.as_str()))
        .order_by_asc(mail_outbox::Column::CreatedAt)
        .limit(100)
        .all(&state.db)
        .await?;
    let mut resolved = 0;
    for row in rows {
        let ctx = context_of(&row);
        let mut w = Write::begin(state, &ctx).await?;
        // Whoever marks the row first resolves it (another node skips it).
        let marked = mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::Status, Expr::value(MailStatus::Resolved.as_str()))
            .col_expr(mail_outbox::Column::Data, Expr::value(Option::<serde_json::Value>::None))
            .col_expr(mail_outbox::Column::SentAt, Expr::value(Utc::now()))
            .filter(mail_outbox::Column::Id.eq(row.id))
            .filter(mail_outbox::Column::Status.eq(MailStatus::Requested.as_str()))
            .exec(w.tx())
            .await?;
        if marked.rows_affected != 1 {
            w.rollback().await?;
            continue;
        }
        if let Some(kind) = RequestKind::parse(&row.kind) {
            resolve_one(&mut w, state, &ctx, kind, &row).await?;
        }
        w.commit().await?;
        resolved += 1;
    }
    Ok(resolved)
}

async fn resolve_one(
    w: &mut Write<'_>,
    state: &AppState,
    ctx: &RequestContext,
    kind: RequestKind,
    row: &mail_outbox::Model,
) -> AppResult<()> {
    let Some(u) = user::Entity::find()
        .filter(user::Column::Email.eq(row.to_address.as_str()))
        .one(w.tx())
        .await?
        .filter(|u| UserStatus::Active.is(&u.status))
    else {
        tracing::debug!(kind = kind.as_str(), "no active account for the address; no mail");
        return Ok(());
    };
    let locale = mail::locale_for(u.locale.as_deref(), ctx);
    let extra = row.data.as_ref().map(|d| d["extra"].clone()).filter(|e| !e.is_null());
    match kind {
        RequestKind::PasswordReset => {
            let token = account_tokens::issue(w, u.id, TokenPurpose::PasswordReset, None).await?;
            let link = mail::link(&state.config, TokenPurpose::PasswordReset.page(), &token);
            mail::queue(w, &u.email, Some(&locale), MailKind::PasswordReset { link }).await?;
            w.record(Change {
                event: EventType::UserPasswordResetRequested,
                target: Some(("user", u.id.to_string())),
                subject_user: Some(u.id),
                acting_user: Some((Some(u.id), u.email.clone())),
                organization: None,
                data: serde_json::json!({"user_id": u.id}),
            })
            .await?;
        }
        RequestKind::MagicLink => {
            let token = account_tokens::issue(w, u.id, TokenPurpose::MagicLink, extra).await?;
            let link = mail::link(&state.config, TokenPurpose::MagicLink.page(), &token);
            mail::queue(w, &u.email, Some(&locale), MailKind::MagicLink { link }).await?;
        }
    }
    Ok(())
}
