//! The mails a test server wrote to its mail folder (no SMTP server configured), parsed with
//! mail-parser as a mail client would: recipient, subject, text and HTML bodies, the link.

use crate::helpers::TestApp;

/// One mail as received.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The first link of the text body whose path is `path` (`https://…/invitations/accept?token=…`).
    pub fn link(&self, path: &str) -> String {
        self.text
            .split_whitespace()
            .find(|w| w.starts_with("http") && w.contains(path))
            .unwrap_or_else(|| panic!("no {path} link in the mail:\n{}", self.text))
            .trim_end_matches(['.', ',', ')', '>'])
            .to_owned()
    }

    /// The `token` of that link, decoded.
    pub fn token(&self, path: &str) -> String {
        let url = reqwest::Url::parse(&self.link(path)).expect("a URL");
        url.query_pairs().find(|(k, _)| k == "token").map(|(_, v)| v.into_owned()).expect("a token")
    }
}

/// Sends every mail due now (the worker writes them to the folder), then reads them all, oldest
/// first.
pub async fn mails(app: &TestApp) -> Vec<Mail> {
    app.mail.try_run_once().await.expect("mail run");
    let dir = &app.config.mail_dir;
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.expect("an entry").path()).collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| {
            let raw = std::fs::read(&p).expect("a mail file");
            let msg = mail_parser::MessageParser::default().parse(&raw).expect("an RFC 5322 message");
            let to = msg
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_lowercase();
            Mail {
                to,
                subject: msg.subject().unwrap_or_default().to_owned(),
                text: msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                html: msg.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
            }
        })
        .collect()
}

/// The mails to `email`, oldest first.
pub async fn mails_to(app: &TestApp, email: &str) -> Vec<Mail> {
    mails(app).await.into_iter().filter(|m| m.to == email.to_lowercase()).collect()
}

/// The newest mail to `email` with a link to `path`.
pub async fn last_link_mail_to(app: &TestApp, email: &str, path: &str) -> Mail {
    mails_to(app, email)
        .await
        .into_iter()
        .rfind(|m| m.text.contains(path))
        .unwrap_or_else(|| panic!("no mail to {email} with a {path} link"))
}

/// The token of the newest invitation mail to `email`.
pub async fn invitation_token(app: &TestApp, email: &str) -> String {
    last_link_mail_to(app, email, "/invitations/accept").await.token("/invitations/accept")
}
