//! The SMTP sink of the mail tests (`janua::bench::smtp_sink`, a real SMTP server on 127.0.0.1
//! that lettre talks to), and what a person reads in a mail: parsed with `mail-parser`, its link
//! and the token in it.

use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};

pub use janua::bench::smtp_sink::{Envelope, SmtpSink};

use crate::helpers::{Backend, TestApp};

/// A received mail, parsed.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `multipart/alternative`, …
    pub content_type: String,
    pub date: Option<String>,
    pub message_id: Option<String>,
    /// The raw message.
    pub raw: String,
}

impl Mail {
    /// Parses what the sink received.
    pub fn parse(e: &Envelope) -> Self {
        let m = MessageParser::default().parse(&e.data).expect("an RFC 5322 message");
        let ct = m.content_type().expect("a Content-Type");
        Self {
            to: m.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_owned(),
            from: m.from().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_owned(),
            subject: m.subject().unwrap_or_default().to_owned(),
            text: m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
            html: m.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
            content_type: format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()),
            date: m.date().map(|d| d.to_rfc3339()),
            message_id: m.message_id().map(str::to_owned),
            raw: String::from_utf8_lossy(&e.data).into_owned(),
        }
    }

    /// The link a person clicks: the first URL of the text part.
    pub fn link(&self) -> String {
        let start = self.text.find("http").unwrap_or_else(|| panic!("a link in: {}", self.text));
        self.text[start..].split_whitespace().next().unwrap().to_owned()
    }

    /// The `token` of the link.
    pub fn token(&self) -> String {
        let url = reqwest::Url::parse(&self.link()).expect("a URL");
        url.query_pairs().find(|(k, _)| k == "token").map(|(_, v)| v.into_owned()).expect("a token")
    }
}

/// A server whose mail goes to a new sink (with `tweak` on its configuration).
pub async fn with_sink(b: Backend, tweak: impl FnOnce(&mut janua::config::Config)) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await.expect("start the SMTP sink");
    let url = sink.url();
    let app = TestApp::spawn_with(b, |c| {
        c.smtp_url = Some(url);
        c.smtp_timeout = Duration::from_secs(5);
        c.mail_retry_schedule = vec![Duration::from_millis(200); 20];
        tweak(c);
    })
    .await;
    (app, sink)
}

/// Sends every mail due now (as the background worker would), then returns the mails the sink
/// has for `to`, parsed.
pub async fn inbox(app: &TestApp, sink: &SmtpSink, to: &str) -> Vec<Mail> {
    drain(app).await;
    sink.received().iter().filter(|e| e.rcpt_to.iter().any(|r| r == to)).map(Mail::parse).collect()
}

/// Runs the mail worker until nothing is due (requests resolved, mails sent).
pub async fn drain(app: &TestApp) {
    janua::workers::mail::MailWorker::new(app.services.state.clone()).try_run_once().await.expect("mail run");
}

/// The one new mail for `to` since `seen` mails (fails unless exactly one arrived).
pub async fn next_mail(app: &TestApp, sink: &SmtpSink, to: &str, seen: usize) -> Mail {
    let all = inbox(app, sink, to).await;
    assert_eq!(
        all.len(),
        seen + 1,
        "one new mail for {to}: {:#?}",
        all.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    all.last().cloned().unwrap()
}
