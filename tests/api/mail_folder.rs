//! The mails a test server without an SMTP server wrote to its mail folder (the default of
//! `TestApp`), parsed as the SMTP sink's mails are ([`crate::smtp_sink::Mail`]). Tests of mail
//! itself use the sink; this serves helpers such as `TestApp::add_member`, which need the link
//! of a mail on any server.

use crate::helpers::TestApp;
use crate::smtp_sink::{Envelope, Mail, drain};

/// Sends every mail due now (the worker writes them to the folder), then reads the mails to
/// `to`, oldest first.
pub async fn folder_mails_to(app: &TestApp, to: &str) -> Vec<Mail> {
    assert!(app.config.smtp_url.is_none(), "this server mails an SMTP server: read its sink");
    drain(app).await;
    let mut files: Vec<_> = match std::fs::read_dir(&app.config.mail_dir) {
        Ok(entries) => entries.map(|e| e.expect("an entry").path()).collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| {
            let data = std::fs::read(&p).expect("a mail file");
            Mail::parse(&Envelope { mail_from: String::new(), rcpt_to: Vec::new(), data })
        })
        .filter(|m| m.to.eq_ignore_ascii_case(to))
        .collect()
}

/// The token of the newest invitation mail to `to` in the folder.
pub async fn invitation_token(app: &TestApp, to: &str) -> String {
    folder_mails_to(app, to)
        .await
        .into_iter()
        .rfind(|m| m.text.contains("/invitations/accept"))
        .unwrap_or_else(|| panic!("no invitation mail to {to}"))
        .token()
}
