//! Account mail: what a mail says ([`MailKind`]), queuing it in the caller's transaction (the
//! mail outbox, so it commits or rolls back with the change that causes it), the links it
//! carries and the language it is written in. The mail worker (`workers::mail`) renders and
//! sends it after the commit, with retries; a crash loses none.

pub mod queue;
pub mod templates;

use chrono::Utc;
use sea_orm::{EntityTrait, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use entities::mail_outbox;

use crate::config::Config;
use crate::context::RequestContext;
use crate::error::{AppError, AppResult, ErrorCode, Locale};
use crate::services::scim::users::PLACEHOLDER_DOMAIN;
use crate::services::unit_of_work::Write;
use crate::state::AppState;
use crate::storage::mail_limits;

/// What a mail says; the template renders it in the recipient's language. Links carry a
/// single-use token: they are kept only until the mail is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MailKind {
    /// Confirms the address of a new account.
    VerifyEmail { link: String },
    /// Sent to the new address of an email change, which takes effect once confirmed.
    ConfirmEmailChange { link: String, new_email: String },
    /// A password-reset link.
    PasswordReset { link: String },
    /// Tells the user their password was changed (or reset).
    PasswordChanged,
    /// A sign-in link.
    MagicLink { link: String },
    /// An invitation to join an organization.
    Invitation { link: String, organization: String, inviter: Option<String>, message: Option<String> },
}

impl MailKind {
    /// The stored name of the kind (`mail_outbox.kind`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::VerifyEmail { .. } => "verify_email",
            Self::ConfirmEmailChange { .. } => "confirm_email_change",
            Self::PasswordReset { .. } => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::MagicLink { .. } => "magic_link",
            Self::Invitation { .. } => "invitation",
        }
    }
}

/// The state of a queued mail (`mail_outbox.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Handed to the SMTP server (or written to the mail folder).
    Sent,
    /// Refused for good, or out of retries.
    Failed,
    /// Never sent: an address that receives no mail.
    Skipped,
    /// A deferred account request (password reset, magic link) waiting for the worker to look
    /// the account up; it becomes a mail of its own only when there is an account.
    Requested,
    /// A deferred request the worker has handled.
    Resolved,
}

impl MailStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Requested => "requested",
            Self::Resolved => "resolved",
        }
    }
}

/// Whether Janua sends mail to `address`: not to SCIM placeholder accounts (which have no
/// mailbox), nor to anything that is not an address.
pub fn deliverable(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.eq_ignore_ascii_case(PLACEHOLDER_DOMAIN),
        None => false,
    }
}

/// Queues a mail in the caller's transaction (the outbox): sent by the worker after commit.
/// A mail to an address that receives none (a SCIM placeholder) is dropped here.
pub async fn queue(w: &mut Write<'_>, to: &str, locale: Option<&str>, kind: MailKind) -> AppResult<()> {
    if !deliverable(to) {
        tracing::debug!(kind = kind.name(), "no mail queued: the address receives none");
        return Ok(());
    }
    let locale = locale.and_then(supported).unwrap_or_default();
    let now = Utc::now();
    let data = serde_json::to_value(&kind).map_err(AppError::internal)?;
    mail_outbox::Entity::insert(mail_outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(kind.name().to_owned()),
        to_address: Set(to.to_owned()),
        locale: Set(locale.tag().to_owned()),
        data: Set(Some(data)),
        status: Set(MailStatus::Pending.as_str().to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        locked_until: Set(None),
        last_error: Set(None),
        message_id: Set(None),
        request_id: Set(Some(w.ctx().request_id.clone())),
        created_at: Set(now),
        sent_at: Set(None),
    })
    .exec_without_returning(w.tx())
    .await?;
    w.queued_mail();
    metrics::counter!("janua_mail_queued_total", "kind" => kind.name()).increment(1);
    Ok(())
}

/// Counts one mail-sending request against the client's IP and the recipient `address` (an
/// hour's allowance each, across nodes with Redis); `RATE_LIMITED` when either is spent. It
/// counts the same whether or not `address` has an account.
pub async fn allow(state: &AppState, ctx: &RequestContext, address: &str) -> AppResult<()> {
    let refused = |d: crate::storage::rate_limits::RateDecision| {
        metrics::counter!("janua_mail_rate_limited_total").increment(1);
        AppError::new(ErrorCode::RateLimited).with_details(serde_json::json!({
            "limit": d.limit, "window_seconds": MAIL_WINDOW.as_secs(), "retry_after": d.retry_after_secs,
        }))
    };
    if let Some(ip) = ctx.client_ip {
        let d = state.mail_ip_limiter.check(&mail_limits::ip_key(ip)).await;
        if !d.allowed {
            return Err(refused(d));
        }
    }
    let d = state.mail_address_limiter.check(&mail_limits::address_key(address)).await;
    if !d.allowed {
        return Err(refused(d));
    }
    Ok(())
}

/// The window of the mail limits.
pub const MAIL_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// `{public_url}{path}?token={token}` (percent-encoded).
pub fn link(config: &Config, path: &str, token: &str) -> String {
    let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{}{path}{sep}token={token}", config.public_base())
}

/// The locale for mail to a user: their `locale`, else the request's Accept-Language, else en.
pub fn locale_for(user_locale: Option<&str>, ctx: &RequestContext) -> String {
    user_locale.and_then(supported).unwrap_or(ctx.locale).tag().to_owned()
}

/// The language of a tag (`es`, `es-ES`, `de_AT`) when Janua writes mail in it.
pub fn supported(tag: &str) -> Option<Locale> {
    match tag.split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase().as_str() {
        "en" => Some(Locale::En),
        "es" => Some(Locale::Es),
        "fr" => Some(Locale::Fr),
        "de" => Some(Locale::De),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_locales_and_addresses() {
        let mut c = Config::defaults();
        c.public_url = Some("https://id.example.com/".into());
        assert_eq!(
            link(&c, "/verify-email", "a+b/c="),
            "https://id.example.com/verify-email?token=a%2Bb%2Fc%3D"
        );
        assert_eq!(link(&c, "/x?a=1", "t"), "https://id.example.com/x?a=1&token=t");
        let ctx = RequestContext { locale: Locale::Fr, ..RequestContext::default() };
        assert_eq!(locale_for(Some("de-AT"), &ctx), "de");
        assert_eq!(locale_for(Some("it"), &ctx), "fr");
        assert_eq!(locale_for(None, &RequestContext::default()), "en");
        assert!(deliverable("a@example.com"));
        assert!(!deliverable("scim-1@provisioned.invalid") && !deliverable("x@PROVISIONED.INVALID"));
        assert!(!deliverable("nobody"));
        let k =
            MailKind::Invitation { link: "l".into(), organization: "O".into(), inviter: None, message: None };
        let v = serde_json::to_value(&k).unwrap();
        assert_eq!(v["kind"], "invitation");
        assert_eq!(serde_json::from_value::<MailKind>(v).unwrap(), k);
    }
}
