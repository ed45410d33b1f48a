//! Mail delivery: resolves deferred account requests into mails, renders each due mail (text
//! and HTML, multipart/alternative, `Date`, a `Message-ID` stable across retries), and hands it
//! to the SMTP server through lettre — or, with no SMTP server configured, writes it into the
//! mail folder and names the file in the log. Each attempt is recorded; temporary failures are
//! retried on the schedule.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use entities::mail_outbox;

use crate::config::Config;
use crate::error::AppResult;
use crate::services::mail::queue::{self, MailOutcome, MailResult};
use crate::services::mail::{MailKind, deliverable, supported, templates};
use crate::state::AppState;

/// The SMTP client of `JANUA_SMTP_URL`, or `None` (mails then go to the folder
/// `JANUA_MAIL_DIR`). Checks `JANUA_MAIL_FROM` too, so a bad sender fails at start, not at the
/// first mail.
pub fn smtp_transport(config: &Config) -> anyhow::Result<Option<AsyncSmtpTransport<Tokio1Executor>>> {
    config
        .mail_from
        .parse::<Mailbox>()
        .map_err(|e| anyhow::anyhow!("JANUA_MAIL_FROM `{}` is not a mailbox: {e}", config.mail_from))?;
    let Some(url) = &config.smtp_url else {
        return Ok(None);
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&lettre_url(url)?)
        .map_err(|e| anyhow::anyhow!("JANUA_SMTP_URL: {e}"))?
        .timeout(Some(config.smtp_timeout))
        .build();
    Ok(Some(transport))
}

/// Janua's SMTP URL as lettre reads it. `smtps://` is implicit TLS; `smtp://` takes `?tls=`
/// `required` (STARTTLS or nothing), `opportunistic` (STARTTLS when offered) or `none` (plain:
/// a relay on the same host, a test sink). Without `tls`, STARTTLS is required when the URL
/// carries credentials (they never cross the network in the clear) and opportunistic otherwise.
pub fn lettre_url(raw: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(raw).map_err(|e| anyhow::anyhow!("JANUA_SMTP_URL is not a URL: {e}"))?;
    let pairs: Vec<(String, String)> =
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let asked = pairs.iter().find(|(k, _)| k == "tls").map(|(_, v)| v.as_str());
    let credentials = !url.username().is_empty() || url.password().is_some();
    let tls = match (url.scheme(), asked) {
        ("smtps", _) | ("smtp", Some("none")) => None,
        ("smtp", Some(t @ ("required" | "opportunistic"))) => Some(t.to_owned()),
        ("smtp", None) if credentials => Some("required".to_owned()),
        ("smtp", None) => Some("opportunistic".to_owned()),
        ("smtp", Some(t)) => anyhow::bail!("JANUA_SMTP_URL: tls={t}: use required, opportunistic or none"),
        (s, _) => anyhow::bail!("JANUA_SMTP_URL: the scheme must be smtp or smtps, not {s}"),
    };
    let scheme_tls = url.scheme() == "smtp";
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in pairs.iter().filter(|(k, _)| k != "tls") {
            q.append_pair(k, v);
        }
        if let (true, Some(t)) = (scheme_tls, &tls) {
            q.append_pair("tls", t);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(url.to_string())
}

/// Builds the message of one queued mail; `Err` is a permanent problem (retrying cannot help).
pub fn message(config: &Config, m: &mail_outbox::Model) -> Result<Message, String> {
    let kind: MailKind = m
        .data
        .clone()
        .ok_or("the mail has no content")
        .and_then(|d| serde_json::from_value(d).map_err(|_| "the mail's content is not readable"))?;
    let from: Mailbox =
        config.mail_from.parse().map_err(|_| "JANUA_MAIL_FROM is not a mailbox".to_owned())?;
    let to: Mailbox = m.to_address.parse().map_err(|_| "the recipient is not an address".to_owned())?;
    let rendered = templates::render(&kind, supported(&m.locale).unwrap_or_default(), &config.product_name);
    // One Message-ID per queued mail, the same on every attempt: a receiver can drop a copy
    // sent again after a crash between the SMTP server's answer and its record here.
    let domain = from.email.domain().to_owned();
    Message::builder()
        .from(from)
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(format!("<{}@{domain}>", m.id.simple())))
        .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))
        .map_err(|e| format!("the message could not be built: {e}"))
}

/// The `Message-ID` of `msg`, without its angle brackets.
fn message_id_of(msg: &Message) -> String {
    msg.headers()
        .get_raw("Message-ID")
        .map(|v| v.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
        .unwrap_or_default()
}

/// Hands one mail over once and says what happened (never fails: failures are outcomes).
pub async fn send(state: &AppState, m: &mail_outbox::Model) -> MailOutcome {
    let started_at = Utc::now();
    let clock = Instant::now();
    let result = attempt(state, m).await;
    MailOutcome { started_at, duration_ms: clock.elapsed().as_millis() as i64, result }
}

async fn attempt(state: &AppState, m: &mail_outbox::Model) -> MailResult {
    if !deliverable(&m.to_address) {
        return MailResult::Skipped;
    }
    let msg = match message(&state.config, m) {
        Ok(msg) => msg,
        Err(e) => return MailResult::Permanent(e),
    };
    let message_id = message_id_of(&msg);
    match &state.smtp {
        Some(transport) => match transport.send(msg).await {
            Ok(_) => {
                tracing::debug!(mail_id = %m.id, kind = %m.kind, "mail sent");
                MailResult::Sent { message_id }
            }
            Err(e) if e.is_permanent() => MailResult::Permanent(format!("refused: {e}")),
            Err(e) => MailResult::Retry(e.to_string()),
        },
        None => {
            let dir = &state.config.mail_dir;
            let path = dir.join(format!("{}-{}.eml", started_stamp(m), m.kind));
            let write = async {
                tokio::fs::create_dir_all(dir).await?;
                tokio::fs::write(&path, msg.formatted()).await
            };
            match write.await {
                Ok(()) => {
                    // The file holds the link; the log names the file, never the token.
                    tracing::info!(to = %m.to_address, kind = %m.kind, path = %path.display(), "mail written (no SMTP server configured)");
                    MailResult::Sent { message_id }
                }
                Err(e) => MailResult::Retry(format!("writing {}: {e}", path.display())),
            }
        }
    }
}

/// `20261203T101500-<id>`: files sort by the time the mail was queued.
fn started_stamp(m: &mail_outbox::Model) -> String {
    format!("{}-{}", m.created_at.format("%Y%m%dT%H%M%S"), m.id.simple())
}

/// Resolves deferred requests and sends due mails; any number of these may run, on any
/// number of nodes (leases keep them off each other's mails).
#[derive(Clone)]
pub struct MailWorker {
    state: AppState,
    /// The mails this worker holds the lease of, while it sends them (handed back at shutdown).
    sending: Arc<std::sync::Mutex<Vec<uuid::Uuid>>>,
}

impl MailWorker {
    /// A worker over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state, sending: Arc::default() }
    }

    /// Resolves every due request and sends every mail due now; returns how many attempts it
    /// made. Retries that fall due later are left for a later run.
    pub async fn try_run_once(&self) -> AppResult<usize> {
        let _one_at_a_time = self.state.mail_running.lock().await;
        let state = &self.state;
        let width = state.config.mail_concurrency.max(1);
        let mut attempts = 0;
        loop {
            // A stopping server sends nothing more.
            if state.shutdown.deadline().is_some() {
                return Ok(attempts);
            }
            let resolved = crate::services::account_requests::resolve_due(state).await?;
            let claimed = queue::claim_due(state, width).await?;
            *self.sending.lock().expect("mail lock poisoned") = claimed.iter().map(|m| m.id).collect();
            if claimed.is_empty() {
                if resolved == 0 {
                    return Ok(attempts);
                }
                continue;
            }
            attempts += claimed.len();
            let results: Vec<_> = futures::stream::iter(claimed)
                .map(|m| async move {
                    let o = send(state, &m).await;
                    (m, o)
                })
                .buffer_unordered(width)
                .collect()
                .await;
            queue::record_attempts(state, results).await?;
            self.sending.lock().expect("mail lock poisoned").clear();
        }
    }

    /// Runs until aborted or shut down: after each write that queued mail, and at least every
    /// `interval` (retries fall due while nothing else happens). When the server shuts down, a
    /// run in progress finishes its sends (claiming nothing more) until the grace runs out; the
    /// mails still being sent then are handed back ([`queue::release`]) and the task ends.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let shutdown = self.state.shutdown.clone();
            loop {
                tokio::select! {
                    r = self.try_run_once() => if let Err(e) = r {
                        tracing::warn!(code = %e.code, cause = ?e.internal, "mail run failed; retrying");
                    },
                    () = shutdown.overdue() => {
                        let held = std::mem::take(&mut *self.sending.lock().expect("mail lock poisoned"));
                        let n = held.len();
                        match queue::release(&self.state, held).await {
                            Ok(()) => tracing::info!(mails = n, "mail sends handed back at shutdown"),
                            Err(e) => tracing::warn!(code = %e.code, cause = ?e.internal, "handing back mails failed"),
                        }
                        return;
                    }
                }
                if shutdown.deadline().is_some() {
                    return;
                }
                tokio::select! {
                    _ = self.state.mail_wake.notified() => {}
                    _ = tokio::time::sleep(interval) => {}
                    _ = shutdown.begun() => return,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_become_lettre_urls() {
        let u = |s| lettre_url(s).unwrap();
        assert_eq!(
            u("smtp://user:pass@mail.example.com:587"),
            "smtp://user:pass@mail.example.com:587?tls=required"
        );
        assert_eq!(u("smtp://mail.example.com"), "smtp://mail.example.com?tls=opportunistic");
        assert_eq!(u("smtp://127.0.0.1:2525?tls=none"), "smtp://127.0.0.1:2525");
        assert_eq!(u("smtp://u:p@relay:25/?tls=opportunistic"), "smtp://u:p@relay:25/?tls=opportunistic");
        assert_eq!(u("smtps://u:p@mail.example.com"), "smtps://u:p@mail.example.com");
        assert!(lettre_url("http://mail.example.com").is_err());
        assert!(lettre_url("smtp://mail.example.com?tls=maybe").is_err());
    }

    #[test]
    fn a_queued_mail_becomes_an_rfc_5322_message() {
        let mut c = Config::defaults();
        c.mail_from = "Acme <no-reply@acme.example>".into();
        c.product_name = "Acme".into();
        let id = uuid::Uuid::now_v7();
        let kind = MailKind::PasswordReset { link: "https://id.acme.example/reset-password?token=t".into() };
        let m = mail_outbox::Model {
            id,
            kind: kind.name().into(),
            to_address: "ann@example.com".into(),
            locale: "de".into(),
            data: Some(serde_json::to_value(&kind).unwrap()),
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: Utc::now(),
            locked_until: None,
            last_error: None,
            message_id: None,
            request_id: None,
            created_at: Utc::now(),
            sent_at: None,
        };
        let msg = message(&c, &m).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(raw.contains("\r\nDate: ") || raw.starts_with("Date: "), "{raw}");
        assert!(raw.contains(&format!("Message-ID: <{}@acme.example>", id.simple())), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain") && raw.contains("text/html"), "{raw}");
        assert_eq!(message_id_of(&msg), format!("{}@acme.example", id.simple()));
        let bad = mail_outbox::Model { to_address: "not an address".into(), ..m };
        assert!(message(&c, &bad).is_err());
    }
}
