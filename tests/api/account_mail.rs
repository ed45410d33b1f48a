//! Account mail through the real server and a real SMTP sink: a person reads each mail, takes
//! its link and follows it (verification, email change, password reset and change, magic
//! links); tokens reused, expired or tampered with are refused; the forgot-password and magic
//! link answers do not tell whether an address has an account; mail limits; SMTP down.

use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use entities::{account_token, mail_attempt, mail_outbox};

use crate::helpers::{Backend, PASSWORD, TestApp, access, refresh};
use crate::mfa::audited;
use crate::smtp_sink::{Mail, SmtpSink, drain, inbox, next_mail, with_sink};

crate::on_both_databases!(
    sign_up_mails_a_well_formed_verification_link_that_verifies,
    verification_can_be_required_and_resent,
    a_new_email_takes_effect_when_confirmed,
    a_reset_link_sets_the_password_and_signs_out_everywhere,
    forgot_answers_the_same_for_known_and_unknown_addresses,
    changing_the_password_needs_the_current_one_and_ends_other_sessions,
    a_magic_link_signs_in_once,
    a_magic_link_still_asks_for_the_second_factor,
    mail_waits_for_a_server_that_is_down,
    mail_limits_count_per_address_and_per_ip,
    without_smtp_mail_is_written_to_the_folder,
    mail_entities_round_trip,
    placeholder_addresses_get_no_mail,
);

const NEW_PASSWORD: &str = "an entirely different passphrase";

/// Makes every live token of `purpose` expired.
async fn expire_tokens(app: &TestApp, purpose: &str) {
    account_token::Entity::update_many()
        .col_expr(account_token::Column::ExpiresAt, Expr::value(Utc::now() - chrono::Duration::minutes(1)))
        .filter(account_token::Column::Purpose.eq(purpose))
        .exec(&app.services.state.db)
        .await
        .unwrap();
}

/// A token with one character changed.
fn tampered(token: &str) -> String {
    let mut t: Vec<char> = token.chars().collect();
    t[5] = if t[5] == 'A' { 'B' } else { 'A' };
    t.into_iter().collect()
}

async fn sign_up_mails_a_well_formed_verification_link_that_verifies(b: Backend) {
    let (app, sink) = with_sink(b, |c| {
        c.product_name = "Acme ID".into();
        c.public_url = Some("https://id.acme.example".into());
        c.mail_from = "Acme ID <no-reply@acme.example>".into();
    })
    .await;
    let data = app.signup("ada@example.com").await;
    assert_eq!(data["user"]["email_verified"], false);
    let mail = next_mail(&app, &sink, "ada@example.com", 0).await;
    // A sane RFC 5322 message: Date, Message-ID, multipart/alternative with text and HTML.
    assert!(mail.date.is_some(), "{}", mail.raw);
    let mid = mail.message_id.clone().expect("a Message-ID");
    assert!(mid.ends_with("@acme.example"), "{mid}");
    assert_eq!(mail.content_type, "multipart/alternative", "{}", mail.raw);
    assert_eq!((mail.to.as_str(), mail.from.as_str()), ("ada@example.com", "no-reply@acme.example"));
    assert_eq!(mail.subject, "Verify your email address for Acme ID");
    assert!(mail.html.contains("<a href=\"https://id.acme.example/verify-email?token="), "{}", mail.html);
    assert!(mail.link().starts_with("https://id.acme.example/verify-email?token="), "{}", mail.link());
    let token = mail.token();
    assert!(token.len() >= 43, "32 random bytes: {token}");
    let stored = mail_outbox::Entity::find().all(&app.services.state.db).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].status.as_str(), stored[0].message_id.as_deref()), ("sent", Some(mid.as_str())));
    assert!(stored[0].data.is_none(), "the link is not kept once sent");
    let hashes: Vec<String> = account_token::Entity::find()
        .all(&app.services.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.token_hash)
        .collect();
    assert!(!hashes.iter().any(|h| h.contains(&token)), "stored hashed");

    // Tampered: refused; the real one verifies once.
    let r = app.rest("POST", "/auth/verify-email", None, Some(json!({"token": tampered(&token)}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"), "{}", r.body);
    let r = app.rest("POST", "/auth/verify-email", None, Some(json!({"token": token}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["user"]["email_verified"], true);
    let r = app.rest("POST", "/auth/email/verify", None, Some(json!({"token": token}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"), "single use: {}", r.body);
    let me = app.rest("GET", "/auth/me", Some(&access(&data)), None).await;
    assert_eq!(me.body["data"]["email_verified"], true);
    assert_eq!(audited(&app, "user.email_verified").await, 1);

    // The user's locale chooses the language; without one, the request's Accept-Language.
    let r = app
        .rest(
            "POST",
            "/auth/signup",
            None,
            Some(json!({"email": "zoe@example.com", "password": PASSWORD, "locale": "fr"})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        next_mail(&app, &sink, "zoe@example.com", 0).await.subject,
        "Vérifiez votre adresse e-mail pour Acme ID"
    );
    let r = app
        .client
        .post(app.url("/api/v1/auth/signup"))
        .header("accept-language", "de-DE,de;q=0.9")
        .json(&json!({"email": "udo@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mail = next_mail(&app, &sink, "udo@example.com", 0).await;
    assert_eq!(mail.subject, "Bestätigen Sie Ihre E-Mail-Adresse für Acme ID");
    assert!(mail.text.contains("Der Link funktioniert einmal"), "{}", mail.text);

    // An expired link is refused as such (the GraphQL mutation, same rule).
    expire_tokens(&app, "verify_email").await;
    let v = app
        .gql(
            None,
            "mutation($t: String!) { verifyEmail(input: {token: $t}) { user { emailVerified } } }",
            json!({"t": mail.token()}),
        )
        .await;
    assert_eq!(v["errors"][0]["extensions"]["code"], "TOKEN_EXPIRED", "{v}");
}

async fn verification_can_be_required_and_resent(b: Backend) {
    let (app, sink) = with_sink(b, |c| c.require_email_verification = true).await;
    let data = app.signup("ada@example.com").await;
    let first = next_mail(&app, &sink, "ada@example.com", 0).await;
    let r = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "ada@example.com", "password": PASSWORD})))
        .await;
    assert_eq!((r.status, r.code()), (403, "EMAIL_NOT_VERIFIED"), "{}", r.body);
    // A wrong password still hears INVALID_CREDENTIALS (the verification state is not told).
    let r = app
        .rest(
            "POST",
            "/auth/signin",
            None,
            Some(json!({"email": "ada@example.com", "password": "wrong wrong wrong"})),
        )
        .await;
    assert_eq!(r.code(), "INVALID_CREDENTIALS");
    let r = app.rest("POST", "/auth/email/resend-verification", None, None).await;
    assert_eq!(r.status, 401, "needs a bearer");
    let r = app.rest("POST", "/auth/email/resend-verification", Some(&access(&data)), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = next_mail(&app, &sink, "ada@example.com", 1).await;
    assert_ne!(first.token(), second.token());
    let r = app.rest("POST", "/auth/verify-email", None, Some(json!({"token": first.token()}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"), "a new link replaces the old one");
    let r = app.rest("POST", "/auth/verify-email", None, Some(json!({"token": second.token()}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.signin("ada@example.com").await;
    let r = app.rest("POST", "/auth/email/resend-verification", Some(&access(&data)), None).await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"), "{}", r.body);
    assert_eq!(r.body["error"]["details"]["reason"], "already_verified");
}

async fn a_new_email_takes_effect_when_confirmed(b: Backend) {
    let (app, sink) = with_sink(b, |_| {}).await;
    let data = app.signup("old@example.com").await;
    app.signup("taken@example.com").await;
    let (t, id) = (access(&data), data["user"]["id"].as_str().unwrap().to_owned());
    let r =
        app.rest("PUT", &format!("/users/{id}"), Some(&t), Some(json!({"email": "taken@example.com"}))).await;
    assert_eq!((r.status, r.code()), (409, "CONFLICT"), "{}", r.body);
    let r =
        app.rest("PUT", &format!("/users/{id}"), Some(&t), Some(json!({"email": "not an address"}))).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app
        .rest(
            "PUT",
            &format!("/users/{id}"),
            Some(&t),
            Some(json!({"email": "New@Example.com", "name": "Ada"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["data"]["email"].as_str(), r.body["data"]["name"].as_str()),
        (Some("old@example.com"), Some("Ada"))
    );
    let mail = next_mail(&app, &sink, "new@example.com", 0).await;
    assert_eq!(mail.subject, "Confirm your new email address for Janua");
    assert!(
        mail.text.contains("new@example.com") && mail.link().contains("/confirm-email?token="),
        "{}",
        mail.text
    );
    // Until confirmed, the old address signs in and the new one does not.
    app.signin("old@example.com").await;
    let r = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "new@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(r.status, 401);
    let r = app.rest("POST", "/auth/verify-email", None, Some(json!({"token": mail.token()}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["user"]["email"], "new@example.com");
    assert_eq!(r.body["data"]["user"]["email_verified"], true);
    app.signin("new@example.com").await;
    let r = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "old@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(r.status, 401);
    let r = app.rest("POST", "/auth/verify-email", None, Some(json!({"token": mail.token()}))).await;
    assert_eq!(r.code(), "INVALID_TOKEN");
}

async fn a_reset_link_sets_the_password_and_signs_out_everywhere(b: Backend) {
    let (app, sink) = with_sink(b, |c| c.lockout_threshold = 3).await;
    let first = app.signup("ada@example.com").await;
    let second = app.signin("ada@example.com").await;
    inbox(&app, &sink, "ada@example.com").await; // the verification mail
    // Locked out by wrong passwords.
    for _ in 0..3 {
        app.rest(
            "POST",
            "/auth/signin",
            None,
            Some(json!({"email": "ada@example.com", "password": "not the password"})),
        )
        .await;
    }
    let r = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "ada@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(r.status, 423, "{}", r.body);

    let r = app.rest("POST", "/auth/password/forgot", None, Some(json!({"email": "ada@example.com"}))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let old = next_mail(&app, &sink, "ada@example.com", 1).await;
    assert_eq!(old.subject, "Reset your Janua password");
    assert!(old.link().contains("/reset-password?token="));
    let r = app.rest("POST", "/auth/password/forgot", None, Some(json!({"email": "ADA@example.com"}))).await;
    assert_eq!(r.status, 202);
    let mail = next_mail(&app, &sink, "ada@example.com", 2).await;
    let r = app
        .rest(
            "POST",
            "/auth/password/reset",
            None,
            Some(json!({"token": old.token(), "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"), "a new request invalidates the previous link");
    let r = app
        .rest(
            "POST",
            "/auth/password/reset",
            None,
            Some(json!({"token": mail.token(), "new_password": "short"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["error"]["details"]["fields"]["new_password"].is_string(), "{}", r.body);
    let r = app
        .rest(
            "POST",
            "/auth/password/reset",
            None,
            Some(json!({"token": tampered(&mail.token()), "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(r.code(), "INVALID_TOKEN");
    let r = app
        .rest(
            "POST",
            "/auth/password/reset",
            None,
            Some(json!({"token": mail.token(), "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Every session is refused at its next request, access and refresh tokens alike.
    for s in [&first, &second] {
        let r = app.rest("GET", "/auth/me", Some(&access(s)), None).await;
        assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"), "{}", r.body);
        let r = app.rest("POST", "/auth/refresh", None, Some(json!({"refresh_token": refresh(s)}))).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = app
        .rest(
            "POST",
            "/auth/password/reset",
            None,
            Some(json!({"token": mail.token(), "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(r.code(), "INVALID_TOKEN", "single use");
    // The lockout is cleared; the new password works, the old one does not.
    let r = app
        .rest(
            "POST",
            "/auth/signin",
            None,
            Some(json!({"email": "ada@example.com", "password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "ada@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(r.status, 401);
    let notice = next_mail(&app, &sink, "ada@example.com", 3).await;
    assert_eq!(notice.subject, "Your Janua password was changed");
    assert_eq!(audited(&app, "user.password_reset_requested").await, 2);
    assert_eq!(audited(&app, "user.password_reset").await, 1);
    // Following the link proved the address.
    let me = app.rest("GET", "/auth/me", Some(&access(&r_signin(&app, NEW_PASSWORD).await)), None).await;
    assert_eq!(me.body["data"]["email_verified"], true);

    // An expired link is refused as such.
    app.rest("POST", "/auth/password/forgot", None, Some(json!({"email": "ada@example.com"}))).await;
    let mail = next_mail(&app, &sink, "ada@example.com", 4).await;
    expire_tokens(&app, "password_reset").await;
    let r = app
        .rest(
            "POST",
            "/auth/password/reset",
            None,
            Some(json!({"token": mail.token(), "new_password": PASSWORD})),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "TOKEN_EXPIRED"), "{}", r.body);
}

async fn r_signin(app: &TestApp, password: &str) -> Value {
    let r = app
        .rest("POST", "/auth/signin", None, Some(json!({"email": "ada@example.com", "password": password})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].clone()
}

async fn forgot_answers_the_same_for_known_and_unknown_addresses(b: Backend) {
    let (app, sink) = with_sink(b, |_| {}).await;
    app.signup("known@example.com").await;
    drain(&app).await;
    let before = sink.count();
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("request_id");
        v.as_object_mut().unwrap().remove("timestamp");
        v
    };
    for path in ["/auth/password/forgot", "/auth/magic-link"] {
        let known = app.rest("POST", path, None, Some(json!({"email": "known@example.com"}))).await;
        let unknown = app.rest("POST", path, None, Some(json!({"email": "nobody@example.com"}))).await;
        assert_eq!(known.status, 202, "{}", known.body);
        assert_eq!((known.status, strip(&known.body)), (unknown.status, strip(&unknown.body)), "{path}");
        let bad = app.rest("POST", path, None, Some(json!({"email": "not-an-address"}))).await;
        assert_eq!(bad.status, 422, "{}", bad.body);
    }
    drain(&app).await;
    let sent: Vec<Mail> = sink.received()[before..].iter().map(Mail::parse).collect();
    assert_eq!(sent.len(), 2, "one reset and one sign-in link, both to the known address");
    assert!(sent.iter().all(|m| m.to == "known@example.com"));
    // GraphQL says the same.
    let q = "mutation($e: String!) { forgotPassword(input: {email: $e}) { success } }";
    let a = app.gql(None, q, json!({"e": "known@example.com"})).await;
    let b = app.gql(None, q, json!({"e": "nobody@example.com"})).await;
    assert_eq!(a, b);
    assert_eq!(a["data"]["forgotPassword"]["success"], true);
}

async fn changing_the_password_needs_the_current_one_and_ends_other_sessions(b: Backend) {
    let (app, sink) = with_sink(b, |c| c.lockout_threshold = 2).await;
    let current = app.signup("ada@example.com").await;
    let other = app.signin("ada@example.com").await;
    inbox(&app, &sink, "ada@example.com").await;
    let t = access(&current);
    let change = |cur: &str, new: &str| json!({"current_password": cur, "new_password": new});
    let r = app.rest("POST", "/auth/password/change", None, Some(change(PASSWORD, NEW_PASSWORD))).await;
    assert_eq!(r.status, 401, "needs a bearer");
    let r = app
        .rest("POST", "/auth/password/change", Some(&t), Some(change("wrong wrong wrong", NEW_PASSWORD)))
        .await;
    assert_eq!((r.status, r.code()), (401, "INVALID_CREDENTIALS"), "{}", r.body);
    assert_eq!(audited(&app, "user.signin_failed").await, 1, "counted like a failed sign-in");
    let r =
        app.rest("POST", "/auth/password/change", Some(&t), Some(change(PASSWORD, "ada@example.com"))).await;
    assert_eq!(r.status, 422, "the sign-up policy: {}", r.body);
    let r = app.rest("POST", "/auth/password/change", Some(&t), Some(change(PASSWORD, NEW_PASSWORD))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.rest("GET", "/auth/me", Some(&t), None).await.status, 200, "this session stays");
    let r = app.rest("GET", "/auth/me", Some(&access(&other)), None).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"));
    let notice = next_mail(&app, &sink, "ada@example.com", 1).await;
    assert_eq!(notice.subject, "Your Janua password was changed");
    assert_eq!(audited(&app, "security.password.changed").await, 1);
    r_signin(&app, NEW_PASSWORD).await;
    // Wrong current passwords lock the account like wrong sign-ins.
    for _ in 0..2 {
        app.rest("POST", "/auth/password/change", Some(&t), Some(change("wrong wrong wrong", PASSWORD)))
            .await;
    }
    let r = app.rest("POST", "/auth/password/change", Some(&t), Some(change(NEW_PASSWORD, PASSWORD))).await;
    assert_eq!((r.status, r.code()), (423, "ACCOUNT_LOCKED"), "{}", r.body);
}

async fn a_magic_link_signs_in_once(b: Backend) {
    let (app, sink) = with_sink(b, |c| c.public_url = Some("https://id.example.com".into())).await;
    app.signup("ada@example.com").await;
    inbox(&app, &sink, "ada@example.com").await;
    let r = app
        .rest(
            "POST",
            "/auth/magic-link",
            None,
            Some(json!({"email": "ada@example.com", "redirect_url": "https://evil.example.com/"})),
        )
        .await;
    assert_eq!(r.status, 422, "an open redirect is refused: {}", r.body);
    let r = app
        .rest(
            "POST",
            "/auth/magic-link",
            None,
            Some(json!({"email": "ada@example.com", "redirect_url": "https://id.example.com/app"})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let mail = next_mail(&app, &sink, "ada@example.com", 1).await;
    assert_eq!(mail.subject, "Your sign-in link for Janua");
    assert!(mail.link().starts_with("https://id.example.com/magic-link?token="));
    // The link opens a page; opening it spends nothing (a mail scanner may fetch it).
    let page = app.client.get(app.url(&mail.link()["https://id.example.com".len()..])).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.text().await.unwrap().contains("/api/v1/auth/magic-link/verify"));
    let r = app
        .rest("POST", "/auth/magic-link/verify", None, Some(json!({"token": tampered(&mail.token())})))
        .await;
    assert_eq!(r.code(), "INVALID_TOKEN");
    let r = app.rest("POST", "/auth/magic-link/verify", None, Some(json!({"token": mail.token()}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["user"]["email"], "ada@example.com");
    assert_eq!(d["user"]["email_verified"], true, "the link proved the address");
    assert_eq!(d["redirect_url"], "https://id.example.com/app");
    assert!(d.get("mfa_required").is_none_or(|m| m == false), "{d}");
    let sid = d["tokens"]["session_id"].as_str().unwrap();
    let s = app.rest("GET", &format!("/sessions/{sid}"), Some(&access(d)), None).await;
    assert_eq!(s.body["data"]["auth_method"], "magic_link", "{}", s.body);
    let r = app.rest("POST", "/auth/magic-link/verify", None, Some(json!({"token": mail.token()}))).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"), "single use");
    // Expired.
    app.rest("POST", "/auth/magic-link", None, Some(json!({"email": "ada@example.com"}))).await;
    let mail = next_mail(&app, &sink, "ada@example.com", 2).await;
    expire_tokens(&app, "magic_link").await;
    let r = app.rest("POST", "/auth/magic-link/verify", None, Some(json!({"token": mail.token()}))).await;
    assert_eq!((r.status, r.code()), (401, "TOKEN_EXPIRED"));
}

async fn a_magic_link_still_asks_for_the_second_factor(b: Backend) {
    let (app, sink) = with_sink(b, |_| {}).await;
    let (_, totp, _) = crate::mfa::enable_mfa(&app, "ada@example.com").await;
    inbox(&app, &sink, "ada@example.com").await;
    app.rest("POST", "/auth/magic-link", None, Some(json!({"email": "ada@example.com"}))).await;
    let mail = next_mail(&app, &sink, "ada@example.com", 1).await;
    let r = app.rest("POST", "/auth/magic-link/verify", None, Some(json!({"token": mail.token()}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["mfa_required"], true, "{d}");
    assert!(d.get("tokens").is_none(), "no tokens before the second factor: {d}");
    let mfa_token = d["mfa_token"].as_str().unwrap();
    let r = app
        .rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": mfa_token, "code": totp.code(0)})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sid = r.body["data"]["tokens"]["session_id"].as_str().unwrap();
    let s = app.rest("GET", &format!("/sessions/{sid}"), Some(&access(&r.body["data"])), None).await;
    assert_eq!(s.body["data"]["auth_method"], "magic_link+mfa", "{}", s.body);
}

async fn mail_waits_for_a_server_that_is_down(b: Backend) {
    // Nothing listens on the port yet: the request still succeeds, the mail waits.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = TestApp::spawn_with(b, |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}?tls=none"));
        c.smtp_timeout = Duration::from_secs(2);
        c.mail_retry_schedule = vec![Duration::from_millis(300); 50];
    })
    .await;
    let r = app
        .rest("POST", "/auth/signup", None, Some(json!({"email": "ada@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    drain(&app).await;
    let db = &app.services.state.db;
    let m = mail_outbox::Entity::find().one(db).await.unwrap().unwrap();
    assert_eq!(m.status, "pending", "{m:?}");
    assert!(m.attempts >= 1 && m.last_error.is_some(), "{m:?}");
    // The server comes up: the background worker's retry delivers it, once.
    let sink = SmtpSink::start_on(port).await.unwrap();
    assert!(sink.wait_for(1, Duration::from_secs(30)).await, "the mail arrived");
    // A temporary refusal (451) is retried too.
    sink.fail_next(2);
    app.rest("POST", "/auth/password/forgot", None, Some(json!({"email": "ada@example.com"}))).await;
    assert!(sink.wait_for(2, Duration::from_secs(30)).await, "the reset mail arrived after two 451s");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sink.count(), 2, "each mail once");
    let mails =
        mail_outbox::Entity::find().filter(mail_outbox::Column::Status.eq("sent")).all(db).await.unwrap();
    assert_eq!(mails.len(), 2);
    let reset = mails.iter().find(|m| m.kind == "password_reset").unwrap();
    let attempts =
        mail_attempt::Entity::find().filter(mail_attempt::Column::MailId.eq(reset.id)).all(db).await.unwrap();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert_eq!(attempts.iter().filter(|a| a.outcome == "retrying").count(), 2);
    assert!(attempts.iter().any(|a| a.error.as_deref().is_some_and(|e| e.contains("451"))), "{attempts:?}");
}

async fn mail_limits_count_per_address_and_per_ip(b: Backend) {
    let (app, sink) = with_sink(b, |c| {
        c.mail_per_address_per_hour = 2;
        c.mail_per_ip_per_hour = 6;
    })
    .await;
    app.signup("ada@example.com").await;
    for _ in 0..2 {
        let r =
            app.rest("POST", "/auth/password/forgot", None, Some(json!({"email": "ada@example.com"}))).await;
        assert_eq!(r.status, 202);
    }
    for address in ["ada@example.com", "nobody@example.com"] {
        if address == "nobody@example.com" {
            for _ in 0..2 {
                app.rest("POST", "/auth/magic-link", None, Some(json!({"email": address}))).await;
            }
        }
        let r = app.rest("POST", "/auth/magic-link", None, Some(json!({"email": address}))).await;
        assert_eq!((r.status, r.code()), (429, "RATE_LIMITED"), "{address}: {}", r.body);
        assert_eq!(r.body["error"]["details"]["window_seconds"], 3600);
        assert!(r.header("retry-after").parse::<u64>().is_ok_and(|s| s > 0), "a Retry-After header");
    }
    // The IP's allowance (6) is spent by now, for any address.
    let r =
        app.rest("POST", "/auth/password/forgot", None, Some(json!({"email": "fresh@example.com"}))).await;
    assert_eq!((r.status, r.code()), (429, "RATE_LIMITED"), "{}", r.body);
    drain(&app).await;
    assert_eq!(inbox(&app, &sink, "ada@example.com").await.len(), 3, "verification + two resets");
}

async fn without_smtp_mail_is_written_to_the_folder(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.signup("ada@example.com").await;
    drain(&app).await;
    let dir = &app.config.mail_dir;
    let files: Vec<_> = std::fs::read_dir(dir).expect("the mail folder").map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "eml"));
    let raw = std::fs::read(&files[0]).unwrap();
    let mail = Mail::parse(&janua::bench::smtp_sink::Envelope {
        mail_from: String::new(),
        rcpt_to: vec![],
        data: raw,
    });
    assert_eq!(mail.to, "ada@example.com");
    let r = app.rest("POST", "/auth/verify-email", None, Some(json!({"token": mail.token()}))).await;
    assert_eq!(r.status, 200, "the link in the file works: {}", r.body);
}

/// The new tables migrate on both databases, their rows round-trip, and a user's tokens go with
/// the user (a mail's attempts with the mail).
async fn mail_entities_round_trip(b: Backend) {
    use chrono::SubsecRound;
    use entities::user;
    use sea_orm::{ActiveModelTrait, Set};
    let app = TestApp::spawn(b).await;
    let db = &app.services.state.db;
    let uid: uuid::Uuid = app.signup("rt@example.com").await["user"]["id"].as_str().unwrap().parse().unwrap();
    drain(&app).await;
    let now = Utc::now().trunc_subsecs(6);
    let t = account_token::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        user_id: Set(uid),
        purpose: Set("email_change".into()),
        token_hash: Set("ab".repeat(32)),
        data: Set(Some(json!({"new_email": "n@example.com"}))),
        expires_at: Set(now),
        used_at: Set(Some(now)),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(account_token::Entity::find_by_id(t.id).one(db).await.unwrap(), Some(t.clone()));
    let m = mail_outbox::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        kind: Set("magic_link".into()),
        to_address: Set("rt@example.com".into()),
        locale: Set("es".into()),
        data: Set(Some(json!({"kind": "magic_link", "link": "l"}))),
        status: Set("failed".into()),
        attempts: Set(3),
        next_attempt_at: Set(now),
        locked_until: Set(Some(now)),
        last_error: Set(Some("refused".into())),
        message_id: Set(Some("x@example.com".into())),
        request_id: Set(Some("req_1".into())),
        created_at: Set(now),
        sent_at: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(mail_outbox::Entity::find_by_id(m.id).one(db).await.unwrap(), Some(m.clone()));
    let a = mail_attempt::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        mail_id: Set(m.id),
        number: Set(1),
        started_at: Set(now),
        duration_ms: Set(12),
        outcome: Set("failed".into()),
        error: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(mail_attempt::Entity::find_by_id(a.id).one(db).await.unwrap(), Some(a.clone()));
    mail_outbox::Entity::delete_by_id(m.id).exec(db).await.unwrap();
    assert!(mail_attempt::Entity::find_by_id(a.id).one(db).await.unwrap().is_none());
    user::Entity::delete_by_id(uid).exec(db).await.unwrap();
    assert!(account_token::Entity::find().all(db).await.unwrap().is_empty());
}

/// SCIM placeholder accounts (`@provisioned.invalid`) have no mailbox: nothing is queued for them.
async fn placeholder_addresses_get_no_mail(b: Backend) {
    use janua::services::mail::{self, MailKind};
    use janua::services::unit_of_work::Write;
    let app = TestApp::spawn(b).await;
    let state = &app.services.state;
    let mut w = Write::begin_worker(state, "test").await.unwrap();
    mail::queue(&mut w, "scim-0190@provisioned.invalid", None, MailKind::PasswordChanged).await.unwrap();
    mail::queue(&mut w, "real@example.com", Some("es-MX"), MailKind::PasswordChanged).await.unwrap();
    w.commit().await.unwrap();
    let rows = mail_outbox::Entity::find().all(&state.db).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].to_address.as_str(), rows[0].locale.as_str()), ("real@example.com", "es"));
}
