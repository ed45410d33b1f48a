//! The texts of every mail in en, es, fr and de, rendered as a subject, a plain-text body and an
//! HTML body (every value HTML-escaped; subjects free of line breaks).

use crate::error::Locale;
use crate::services::mail::MailKind;

/// A mail ready to be put into a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What one mail says, before it is laid out.
struct Texts {
    subject: String,
    paragraphs: Vec<String>,
    /// A message from a person (an invitation's), shown as a quote.
    quote: Option<String>,
    /// The call to action: its label and link.
    action: Option<(String, String)>,
    /// The small print: how long the link works, what to do when it was not you.
    note: String,
}

/// Renders `kind` in `locale`, signed with the product name.
pub fn render(kind: &MailKind, locale: Locale, product: &str) -> Rendered {
    let t = texts(kind, locale, product);
    Rendered {
        subject: one_line(&t.subject),
        text: text_body(&t, product),
        html: html_body(&t, locale, product),
    }
}

fn texts(kind: &MailKind, l: Locale, p: &str) -> Texts {
    use Locale::*;
    let action = |label: &str, link: &str| Some((label.to_owned(), link.to_owned()));
    match kind {
        MailKind::VerifyEmail { link } => match l {
            En => Texts {
                subject: format!("Verify your email address for {p}"),
                paragraphs: vec![format!(
                    "Confirm that this is your email address to finish setting up your {p} account."
                )],
                quote: None,
                action: action("Verify email address", link),
                note: format!(
                    "The link works once and expires in 24 hours. If you did not sign up for {p}, ignore this message."
                ),
            },
            Es => Texts {
                subject: format!("Verifique su dirección de correo para {p}"),
                paragraphs: vec![format!(
                    "Confirme que esta es su dirección de correo para terminar de configurar su cuenta de {p}."
                )],
                quote: None,
                action: action("Verificar dirección de correo", link),
                note: format!(
                    "El enlace funciona una sola vez y caduca en 24 horas. Si no se registró en {p}, ignore este mensaje."
                ),
            },
            Fr => Texts {
                subject: format!("Vérifiez votre adresse e-mail pour {p}"),
                paragraphs: vec![format!(
                    "Confirmez que cette adresse e-mail est la vôtre pour terminer la création de votre compte {p}."
                )],
                quote: None,
                action: action("Vérifier l'adresse e-mail", link),
                note: format!(
                    "Le lien ne fonctionne qu'une fois et expire dans 24 heures. Si vous ne vous êtes pas inscrit à {p}, ignorez ce message."
                ),
            },
            De => Texts {
                subject: format!("Bestätigen Sie Ihre E-Mail-Adresse für {p}"),
                paragraphs: vec![format!(
                    "Bestätigen Sie, dass dies Ihre E-Mail-Adresse ist, um die Einrichtung Ihres {p}-Kontos abzuschließen."
                )],
                quote: None,
                action: action("E-Mail-Adresse bestätigen", link),
                note: format!(
                    "Der Link funktioniert einmal und läuft in 24 Stunden ab. Wenn Sie sich nicht bei {p} registriert haben, ignorieren Sie diese Nachricht."
                ),
            },
        },
        MailKind::ConfirmEmailChange { link, new_email } => match l {
            En => Texts {
                subject: format!("Confirm your new email address for {p}"),
                paragraphs: vec![format!(
                    "You asked to change the email address of your {p} account to {new_email}. Confirm it to make the change."
                )],
                quote: None,
                action: action("Confirm new address", link),
                note: "The link works once and expires in 24 hours. If you did not ask for this, ignore this message: the address stays as it is.".into(),
            },
            Es => Texts {
                subject: format!("Confirme su nueva dirección de correo para {p}"),
                paragraphs: vec![format!(
                    "Pidió cambiar la dirección de correo de su cuenta de {p} a {new_email}. Confírmela para hacer el cambio."
                )],
                quote: None,
                action: action("Confirmar la nueva dirección", link),
                note: "El enlace funciona una sola vez y caduca en 24 horas. Si no lo pidió, ignore este mensaje: la dirección no cambia.".into(),
            },
            Fr => Texts {
                subject: format!("Confirmez votre nouvelle adresse e-mail pour {p}"),
                paragraphs: vec![format!(
                    "Vous avez demandé à remplacer l'adresse e-mail de votre compte {p} par {new_email}. Confirmez-la pour effectuer le changement."
                )],
                quote: None,
                action: action("Confirmer la nouvelle adresse", link),
                note: "Le lien ne fonctionne qu'une fois et expire dans 24 heures. Si vous n'avez rien demandé, ignorez ce message : l'adresse reste inchangée.".into(),
            },
            De => Texts {
                subject: format!("Bestätigen Sie Ihre neue E-Mail-Adresse für {p}"),
                paragraphs: vec![format!(
                    "Sie möchten die E-Mail-Adresse Ihres {p}-Kontos in {new_email} ändern. Bestätigen Sie sie, um die Änderung vorzunehmen."
                )],
                quote: None,
                action: action("Neue Adresse bestätigen", link),
                note: "Der Link funktioniert einmal und läuft in 24 Stunden ab. Wenn Sie das nicht angefordert haben, ignorieren Sie diese Nachricht: die Adresse bleibt unverändert.".into(),
            },
        },
        MailKind::PasswordReset { link } => match l {
            En => Texts {
                subject: format!("Reset your {p} password"),
                paragraphs: vec![format!("Someone, hopefully you, asked to reset the password of your {p} account.")],
                quote: None,
                action: action("Choose a new password", link),
                note: "The link works once and expires in 30 minutes. If you did not ask for this, ignore this message: your password stays as it is.".into(),
            },
            Es => Texts {
                subject: format!("Restablezca su contraseña de {p}"),
                paragraphs: vec![format!(
                    "Alguien, esperamos que usted, pidió restablecer la contraseña de su cuenta de {p}."
                )],
                quote: None,
                action: action("Elegir una nueva contraseña", link),
                note: "El enlace funciona una sola vez y caduca en 30 minutos. Si no lo pidió, ignore este mensaje: su contraseña no cambia.".into(),
            },
            Fr => Texts {
                subject: format!("Réinitialisez votre mot de passe {p}"),
                paragraphs: vec![format!(
                    "Quelqu'un, vous sans doute, a demandé la réinitialisation du mot de passe de votre compte {p}."
                )],
                quote: None,
                action: action("Choisir un nouveau mot de passe", link),
                note: "Le lien ne fonctionne qu'une fois et expire dans 30 minutes. Si vous n'avez rien demandé, ignorez ce message : votre mot de passe reste inchangé.".into(),
            },
            De => Texts {
                subject: format!("Setzen Sie Ihr {p}-Passwort zurück"),
                paragraphs: vec![format!(
                    "Jemand, hoffentlich Sie, hat angefordert, das Passwort Ihres {p}-Kontos zurückzusetzen."
                )],
                quote: None,
                action: action("Neues Passwort wählen", link),
                note: "Der Link funktioniert einmal und läuft in 30 Minuten ab. Wenn Sie das nicht angefordert haben, ignorieren Sie diese Nachricht: Ihr Passwort bleibt unverändert.".into(),
            },
        },
        MailKind::PasswordChanged => match l {
            En => Texts {
                subject: format!("Your {p} password was changed"),
                paragraphs: vec![format!(
                    "The password of your {p} account was just changed, and your other sessions were signed out."
                )],
                quote: None,
                action: None,
                note: "If this was not you, reset your password at once and review your sessions.".into(),
            },
            Es => Texts {
                subject: format!("Se cambió su contraseña de {p}"),
                paragraphs: vec![format!(
                    "Se acaba de cambiar la contraseña de su cuenta de {p} y se cerraron sus otras sesiones."
                )],
                quote: None,
                action: None,
                note: "Si no fue usted, restablezca su contraseña de inmediato y revise sus sesiones.".into(),
            },
            Fr => Texts {
                subject: format!("Votre mot de passe {p} a été modifié"),
                paragraphs: vec![format!(
                    "Le mot de passe de votre compte {p} vient d'être modifié et vos autres sessions ont été fermées."
                )],
                quote: None,
                action: None,
                note: "Si ce n'était pas vous, réinitialisez votre mot de passe sans attendre et vérifiez vos sessions.".into(),
            },
            De => Texts {
                subject: format!("Ihr {p}-Passwort wurde geändert"),
                paragraphs: vec![format!(
                    "Das Passwort Ihres {p}-Kontos wurde soeben geändert, und Ihre anderen Sitzungen wurden abgemeldet."
                )],
                quote: None,
                action: None,
                note: "Wenn Sie das nicht waren, setzen Sie Ihr Passwort sofort zurück und prüfen Sie Ihre Sitzungen.".into(),
            },
        },
        MailKind::MagicLink { link } => match l {
            En => Texts {
                subject: format!("Your sign-in link for {p}"),
                paragraphs: vec![format!("Use this link to sign in to {p}.")],
                quote: None,
                action: action("Sign in", link),
                note: "The link works once and expires in 15 minutes. If you did not ask for it, ignore this message.".into(),
            },
            Es => Texts {
                subject: format!("Su enlace de inicio de sesión en {p}"),
                paragraphs: vec![format!("Use este enlace para iniciar sesión en {p}.")],
                quote: None,
                action: action("Iniciar sesión", link),
                note: "El enlace funciona una sola vez y caduca en 15 minutos. Si no lo pidió, ignore este mensaje.".into(),
            },
            Fr => Texts {
                subject: format!("Votre lien de connexion à {p}"),
                paragraphs: vec![format!("Utilisez ce lien pour vous connecter à {p}.")],
                quote: None,
                action: action("Se connecter", link),
                note: "Le lien ne fonctionne qu'une fois et expire dans 15 minutes. Si vous ne l'avez pas demandé, ignorez ce message.".into(),
            },
            De => Texts {
                subject: format!("Ihr Anmeldelink für {p}"),
                paragraphs: vec![format!("Melden Sie sich mit diesem Link bei {p} an.")],
                quote: None,
                action: action("Anmelden", link),
                note: "Der Link funktioniert einmal und läuft in 15 Minuten ab. Wenn Sie ihn nicht angefordert haben, ignorieren Sie diese Nachricht.".into(),
            },
        },
        MailKind::Invitation { link, organization: o, inviter, message } => {
            let quote = message.clone().filter(|m| !m.trim().is_empty());
            match l {
                En => Texts {
                    subject: match inviter {
                        Some(i) => format!("{i} invited you to join {o} on {p}"),
                        None => format!("You are invited to join {o} on {p}"),
                    },
                    paragraphs: vec![match inviter {
                        Some(i) => format!("{i} invited you to join the organization {o} on {p}."),
                        None => format!("You are invited to join the organization {o} on {p}."),
                    }],
                    quote,
                    action: action("Accept the invitation", link),
                    note: "If you did not expect this invitation, ignore this message.".into(),
                },
                Es => Texts {
                    subject: match inviter {
                        Some(i) => format!("{i} le invitó a unirse a {o} en {p}"),
                        None => format!("Está invitado a unirse a {o} en {p}"),
                    },
                    paragraphs: vec![match inviter {
                        Some(i) => format!("{i} le invitó a unirse a la organización {o} en {p}."),
                        None => format!("Está invitado a unirse a la organización {o} en {p}."),
                    }],
                    quote,
                    action: action("Aceptar la invitación", link),
                    note: "Si no esperaba esta invitación, ignore este mensaje.".into(),
                },
                Fr => Texts {
                    subject: match inviter {
                        Some(i) => format!("{i} vous invite à rejoindre {o} sur {p}"),
                        None => format!("Vous êtes invité à rejoindre {o} sur {p}"),
                    },
                    paragraphs: vec![match inviter {
                        Some(i) => format!("{i} vous invite à rejoindre l'organisation {o} sur {p}."),
                        None => format!("Vous êtes invité à rejoindre l'organisation {o} sur {p}."),
                    }],
                    quote,
                    action: action("Accepter l'invitation", link),
                    note: "Si vous n'attendiez pas cette invitation, ignorez ce message.".into(),
                },
                De => Texts {
                    subject: match inviter {
                        Some(i) => format!("{i} hat Sie eingeladen, {o} auf {p} beizutreten"),
                        None => format!("Sie sind eingeladen, {o} auf {p} beizutreten"),
                    },
                    paragraphs: vec![match inviter {
                        Some(i) => format!("{i} hat Sie eingeladen, der Organisation {o} auf {p} beizutreten."),
                        None => format!("Sie sind eingeladen, der Organisation {o} auf {p} beizutreten."),
                    }],
                    quote,
                    action: action("Einladung annehmen", link),
                    note: "Wenn Sie diese Einladung nicht erwartet haben, ignorieren Sie diese Nachricht.".into(),
                },
            }
        }
    }
}

/// A subject on one line: control characters (line breaks included) become spaces.
fn one_line(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn text_body(t: &Texts, product: &str) -> String {
    let mut out = String::new();
    for p in &t.paragraphs {
        out.push_str(p);
        out.push_str("\n\n");
    }
    if let Some(q) = &t.quote {
        for line in q.lines() {
            out.push_str("> ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    if let Some((label, link)) = &t.action {
        out.push_str(label);
        out.push_str(":\n");
        out.push_str(link);
        out.push_str("\n\n");
    }
    out.push_str(&t.note);
    out.push_str("\n\n-- \n");
    out.push_str(product);
    out.push('\n');
    out
}

fn html_body(t: &Texts, l: Locale, product: &str) -> String {
    let mut body = String::new();
    for p in &t.paragraphs {
        body.push_str(&format!("<p>{}</p>\n", escape(p)));
    }
    if let Some(q) = &t.quote {
        let lines: Vec<String> = q.lines().map(escape).collect();
        body.push_str(&format!(
            "<blockquote style=\"margin:0 0 1em;padding:.5em 1em;border-left:3px solid #ccc;color:#444\">{}</blockquote>\n",
            lines.join("<br>")
        ));
    }
    if let Some((label, link)) = &t.action {
        let (label, link) = (escape(label), escape(link));
        body.push_str(&format!(
            "<p><a href=\"{link}\" style=\"display:inline-block;padding:.6em 1.2em;background:#2b59c3;color:#fff;text-decoration:none;border-radius:4px\">{label}</a></p>\n\
             <p style=\"font-size:.85em;color:#555\">{link}</p>\n"
        ));
    }
    body.push_str(&format!("<p style=\"font-size:.85em;color:#555\">{}</p>\n", escape(&t.note)));
    format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font:15px/1.5 system-ui,sans-serif;max-width:36rem;margin:1.5rem auto;padding:0 1rem;color:#222\">\n\
         {body}<p style=\"font-size:.85em;color:#555\">— {product}</p>\n</body>\n</html>\n",
        lang = l.tag(),
        title = escape(&one_line(&t.subject)),
        product = escape(product),
    )
}

/// Escapes text for HTML content and double- or single-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<MailKind> {
        let link = "https://id.example.com/x?token=abc".to_owned();
        vec![
            MailKind::VerifyEmail { link: link.clone() },
            MailKind::ConfirmEmailChange { link: link.clone(), new_email: "new@example.com".into() },
            MailKind::PasswordReset { link: link.clone() },
            MailKind::PasswordChanged,
            MailKind::MagicLink { link: link.clone() },
            MailKind::Invitation {
                link,
                organization: "Acme".into(),
                inviter: Some("Ann".into()),
                message: Some("Welcome!".into()),
            },
        ]
    }

    #[test]
    fn every_kind_renders_in_every_language_with_its_link() {
        for kind in every_kind() {
            let mut subjects = std::collections::HashSet::new();
            for l in [Locale::En, Locale::Es, Locale::Fr, Locale::De] {
                let r = render(&kind, l, "Acme ID");
                assert!(r.subject.contains("Acme ID"), "{kind:?} {l:?}: {}", r.subject);
                assert!(subjects.insert(r.subject.clone()), "{kind:?}: {l:?} repeats a subject");
                assert!(r.text.contains("Acme ID") && r.html.contains(&format!("lang=\"{}\"", l.tag())));
                if kind != MailKind::PasswordChanged {
                    assert!(r.text.contains("https://id.example.com/x?token=abc"), "{kind:?} {l:?}");
                    assert!(r.html.contains("href=\"https://id.example.com/x?token=abc\""), "{kind:?} {l:?}");
                }
            }
        }
    }

    #[test]
    fn what_people_wrote_is_escaped_and_subjects_stay_on_one_line() {
        let kind = MailKind::Invitation {
            link: "https://id.example.com/accept?token=t&x=\"y\"".into(),
            organization: "<b>Evil</b> & Co\r\nBcc: victim@example.com".into(),
            inviter: Some("Mallory <script>alert(1)</script>".into()),
            message: Some("<img src=x onerror=alert(1)>\nsecond line".into()),
        };
        let r = render(&kind, Locale::En, "Janua");
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'), "{}", r.subject);
        assert!(!r.html.contains("<script>") && !r.html.contains("<img") && !r.html.contains("<b>"));
        assert!(r.html.contains("&lt;b&gt;Evil&lt;/b&gt; &amp; Co"));
        assert!(r.html.contains("href=\"https://id.example.com/accept?token=t&amp;x=&quot;y&quot;\""));
        assert!(r.text.contains("> <img src=x onerror=alert(1)>\n> second line"), "{}", r.text);
    }
}
