//! The mail queue: claiming due mails (one node per attempt, by a lease) and recording every
//! attempt with its retry decision.
//!
//! State lives in the database only, so a crash loses nothing: a claimed mail carries a lease
//! (`locked_until`) that expires if its node dies before recording the attempt, and then
//! another node (or the restarted one) sends it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, Set,
    Statement,
};
use uuid::Uuid;

use entities::{mail_attempt, mail_outbox};

use crate::error::AppResult;
use crate::services::mail::MailStatus;
use crate::services::unit_of_work::Write;
use crate::state::AppState;

/// The request id the mail worker's writes are audited under.
pub const WORKER: &str = "mail-worker";

/// What one attempt to hand a mail over gave.
#[derive(Clone, Debug)]
pub struct MailOutcome {
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub result: MailResult,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailResult {
    /// Taken by the SMTP server (or written to the mail folder), with its `Message-ID`.
    Sent { message_id: String },
    /// A temporary failure (4xx, connection error, timeout): worth retrying.
    Retry(String),
    /// A permanent refusal (5xx, an address that is not one): never retried.
    Permanent(String),
    /// Not sent, on purpose (an address that receives no mail).
    Skipped,
}

const CLAIM_SQL: &str = "SELECT * FROM mail_outbox \
     WHERE status = $1 AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until <= $2) \
     ORDER BY next_attempt_at, id LIMIT $3";

fn claim_sql(backend: DbBackend) -> String {
    match backend {
        DbBackend::Postgres => format!("{CLAIM_SQL} FOR UPDATE SKIP LOCKED"),
        _ => CLAIM_SQL.replace("$1", "?1").replace("$2", "?2").replace("$3", "?3"),
    }
}

/// Rows of `status` due now, locked for the transaction of `w` (`FOR UPDATE SKIP LOCKED` on
/// PostgreSQL, the write lock on SQLite): no other node reads them until it commits.
async fn due_in(w: &Write<'_>, status: MailStatus, limit: usize) -> AppResult<Vec<mail_outbox::Model>> {
    let backend = w.tx().get_database_backend();
    Ok(mail_outbox::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend,
            claim_sql(backend),
            [status.as_str().into(), Utc::now().into(), (limit as i64).into()],
        ))
        .all(w.tx())
        .await?)
}

/// Whether a row of `status` is due (a plain read: an idle node takes no write lock).
pub async fn any_due(state: &AppState, status: MailStatus) -> AppResult<bool> {
    let now = Utc::now();
    Ok(mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Status.eq(status.as_str()))
        .filter(mail_outbox::Column::NextAttemptAt.lte(now))
        .filter(mail_outbox::Column::LockedUntil.is_null().or(mail_outbox::Column::LockedUntil.lte(now)))
        .count(&state.db)
        .await?
        > 0)
}

/// How long a claimed mail stays this node's: several SMTP exchanges, each within the timeout.
pub fn lease(state: &AppState) -> chrono::Duration {
    chrono::Duration::from_std(state.config.smtp_timeout * 4).unwrap_or(chrono::Duration::minutes(2))
        + chrono::Duration::seconds(5)
}

/// Claims up to `limit` due mails by setting their lease, in one write transaction, so no two
/// nodes send the same attempt.
pub async fn claim_due(state: &AppState, limit: usize) -> AppResult<Vec<mail_outbox::Model>> {
    if !any_due(state, MailStatus::Pending).await? {
        return Ok(Vec::new());
    }
    let w = Write::begin_worker(state, WORKER).await?;
    let rows = due_in(&w, MailStatus::Pending, limit).await?;
    if !rows.is_empty() {
        mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::LockedUntil, Expr::value(Utc::now() + lease(state)))
            .filter(mail_outbox::Column::Id.is_in(rows.iter().map(|r| r.id)))
            .exec(w.tx())
            .await?;
    }
    w.commit().await?;
    Ok(rows)
}

/// Records attempts and decides what follows each: sent, retried at the next step of the
/// schedule, or failed. A mail that is done (sent, failed, skipped) loses its `data`: the link
/// it carried is not kept.
pub async fn record_attempts(
    state: &AppState,
    results: Vec<(mail_outbox::Model, MailOutcome)>,
) -> AppResult<()> {
    if results.is_empty() {
        return Ok(());
    }
    let schedule = &state.config.mail_retry_schedule;
    let w = Write::begin_worker(state, WORKER).await?;
    let now = Utc::now();
    let mut attempts = Vec::with_capacity(results.len());
    for (m, o) in &results {
        let number = m.attempts + 1;
        let step = usize::try_from(m.attempts).unwrap_or(usize::MAX);
        let (status, outcome, next, error, message_id) = match &o.result {
            MailResult::Sent { message_id } => {
                (MailStatus::Sent, "sent", None, None, Some(message_id.clone()))
            }
            MailResult::Skipped => (MailStatus::Skipped, "skipped", None, None, None),
            MailResult::Permanent(e) => (MailStatus::Failed, "failed", None, Some(e.clone()), None),
            MailResult::Retry(e) => {
                match schedule.get(step).and_then(|d| chrono::Duration::from_std(*d).ok()) {
                    Some(delay) => {
                        (MailStatus::Pending, "retrying", Some(now + delay), Some(e.clone()), None)
                    }
                    None => (MailStatus::Failed, "failed", None, Some(e.clone()), None),
                }
            }
        };
        metrics::counter!("janua_mail_attempts_total", "outcome" => outcome).increment(1);
        metrics::histogram!("janua_mail_attempt_duration_seconds").record(o.duration_ms as f64 / 1000.0);
        if status == MailStatus::Failed {
            tracing::warn!(mail_id = %m.id, kind = %m.kind, error = ?error, "mail given up");
        }
        attempts.push(mail_attempt::ActiveModel {
            id: Set(Uuid::now_v7()),
            mail_id: Set(m.id),
            number: Set(number),
            started_at: Set(o.started_at),
            duration_ms: Set(o.duration_ms),
            outcome: Set(outcome.into()),
            error: Set(error.clone()),
        });
        let mut update = mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::Status, Expr::value(status.as_str()))
            .col_expr(mail_outbox::Column::Attempts, Expr::value(number))
            .col_expr(mail_outbox::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(mail_outbox::Column::LastError, Expr::value(error))
            .filter(mail_outbox::Column::Id.eq(m.id));
        if let Some(next) = next {
            update = update.col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(next));
        } else {
            update =
                update.col_expr(mail_outbox::Column::Data, Expr::value(Option::<serde_json::Value>::None));
        }
        if let Some(id) = message_id {
            update = update
                .col_expr(mail_outbox::Column::MessageId, Expr::value(id))
                .col_expr(mail_outbox::Column::SentAt, Expr::value(now));
        }
        update.exec(w.tx()).await?;
    }
    mail_attempt::Entity::insert_many(attempts).exec_without_returning(w.tx()).await?;
    w.commit().await
}

/// Releases the leases of mails a stopping node was still sending when its shutdown grace ran
/// out, so another node (or the next start) sends them at once; the attempt was not completed,
/// so it is not counted.
pub async fn release(state: &AppState, ids: Vec<Uuid>) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let w = Write::begin_worker(state, WORKER).await?;
    mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(Utc::now()))
        .filter(mail_outbox::Column::Id.is_in(ids))
        .filter(mail_outbox::Column::Status.eq(MailStatus::Pending.as_str()))
        .exec(w.tx())
        .await?;
    w.commit().await
}

/// Mails waiting to be sent, on every node (the mail backlog).
pub async fn backlog(db: &impl ConnectionTrait) -> AppResult<u64> {
    Ok(mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Status.eq(MailStatus::Pending.as_str()))
        .count(db)
        .await?)
}
