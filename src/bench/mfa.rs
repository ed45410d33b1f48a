//! The MFA and passkey figures of `janua bench` (issue 4): the server time of `/mfa/verify` and
//! of a passkey authentication (p50/p99 at 32 concurrent clients), and the throughput of a
//! complete sign-in with TOTP as a fraction of the argon2 bound.
//!
//! A TOTP code is accepted once per user and time step, so the TOTP phases count operations
//! over many users (each user signs in at most twice, with the codes of the current and the
//! next step) instead of looping for a fixed time. Codes come from the `otpauth://` URI the
//! server returned; passkeys are a software token (webauthn-authenticator-rs) per client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures::future::join_all;
use serde_json::json;
use totp_rs::Totp;
use webauthn_authenticator_rs::prelude::{Url, WebauthnAuthenticator};
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_authenticator_rs::{AuthenticatorBackend, error::WebauthnCError};
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions, RegisterPublicKeyCredential, RequestChallengeResponse,
};

/// The WebAuthn origin the server accepts by default.
const ORIGIN: &str = "http://localhost:8000";
const CLIENTS: usize = 32;

use super::client::{PASSWORD, post_api, signup};
use super::stats::{elapsed_ms, percentile, sorted};

/// A soft token that accepts the server's request for a resident credential (it stores
/// nothing extra: the benchmark signs in by email, with the credential offered).
struct BenchToken(SoftToken);

impl AuthenticatorBackend for BenchToken {
    fn perform_register(
        &mut self,
        origin: Url,
        mut options: PublicKeyCredentialCreationOptions,
        timeout_ms: u32,
    ) -> Result<RegisterPublicKeyCredential, WebauthnCError> {
        if let Some(sel) = options.authenticator_selection.as_mut() {
            sel.require_resident_key = false;
            sel.resident_key = None;
        }
        self.0.perform_register(origin, options, timeout_ms)
    }

    fn perform_auth(
        &mut self,
        origin: Url,
        options: PublicKeyCredentialRequestOptions,
        timeout_ms: u32,
    ) -> Result<PublicKeyCredential, WebauthnCError> {
        self.0.perform_auth(origin, options, timeout_ms)
    }
}

fn code(totp: &Totp, offset: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    totp.generate((now + offset * 30) as u64).to_string()
}

/// A user with MFA on: (email, access token, authenticator app).
async fn mfa_user(
    client: &reqwest::Client,
    base: &str,
    email: String,
) -> anyhow::Result<(String, String, Totp)> {
    let fail = || anyhow::anyhow!("setting up {email} failed");
    let at = signup(client, base, &email).await?.access;
    let d = post_api(client, base, "/mfa/setup", Some(&at), json!({})).await.ok_or_else(fail)?;
    let totp = Totp::from_url(d["otpauth_uri"].as_str().ok_or_else(fail)?)?;
    // The previous step's code, so the current and next steps stay free for sign-ins.
    let confirmed = post_api(client, base, "/mfa/verify", Some(&at), json!({"code": code(&totp, -1)})).await;
    if confirmed.is_none() {
        post_api(client, base, "/mfa/verify", Some(&at), json!({"code": code(&totp, 0)}))
            .await
            .ok_or_else(fail)?;
    }
    Ok((email, at, totp))
}

async fn mfa_token(client: &reqwest::Client, base: &str, email: &str) -> Option<String> {
    let d =
        post_api(client, base, "/auth/signin", None, json!({"email": email, "password": PASSWORD})).await?;
    d["mfa_token"].as_str().map(str::to_owned)
}

/// Creates `n` MFA users, `CLIENTS` at a time.
async fn mfa_users(
    client: &reqwest::Client,
    base: &str,
    prefix: &str,
    n: usize,
) -> anyhow::Result<Vec<(String, String, Totp)>> {
    let mut out = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(CLIENTS) {
        let made = join_all(
            chunk
                .iter()
                .map(|i| mfa_user(client, base, format!("{prefix}{i}@example.com")))
                .collect::<Vec<_>>(),
        )
        .await;
        for m in made {
            out.push(m?);
        }
    }
    Ok(out)
}

/// p50 and p99 of `ms`.
fn percentiles(ms: Vec<f64>) -> (f64, f64) {
    let ms = sorted(ms);
    (percentile(&ms, 0.50), percentile(&ms, 0.99))
}

/// Runs the MFA and passkey phases against a running server; returns the report lines.
pub async fn phase(
    base: &str,
    client: &reqwest::Client,
    argon2_bound: f64,
    seconds: u64,
) -> anyhow::Result<Vec<String>> {
    let cores = super::cores();
    let mut lines = Vec::new();

    // (e) complete sign-ins with TOTP (password → MFA token → code), 2 per user. Four clients per
    // core keep the argon2 pool busy while other clients are in their second step.
    let users = Arc::new(mfa_users(client, base, "mfa-signin", 256).await?);
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    join_all((0..cores * 4).map(|_| {
        let (users, next, failures, client, base) =
            (users.clone(), next.clone(), failures.clone(), client.clone(), base.to_owned());
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= users.len() * 2 {
                    break;
                }
                let (email, _, totp) = &users[i % users.len()];
                let offset = (i / users.len()) as i64;
                let ok = match mfa_token(&client, &base, email).await {
                    Some(t) => post_api(
                        &client,
                        &base,
                        "/mfa/verify",
                        None,
                        json!({"mfa_token": t, "code": code(totp, offset)}),
                    )
                    .await
                    .is_some(),
                    None => false,
                };
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }))
    .await;
    let done = users.len() * 2;
    let rps = done as f64 / started.elapsed().as_secs_f64();
    lines.push(format!(
        "(e) sign-in with TOTP ({} clients): {rps:.1} sign-ins/s ({done} sign-ins, {} errors); / argon2 bound = {:.2}",
        cores * 4,
        failures.load(Ordering::Relaxed),
        rps / argon2_bound
    ));

    // (f) POST /mfa/verify alone, 32 concurrent clients; MFA tokens obtained beforehand.
    let users = mfa_users(client, base, "mfa-verify", 128).await?;
    // Each user's two verifications (codes of the current and next step) stay in one client, in
    // order: a later step accepted first would make the earlier one a refused replay.
    let mut work = Vec::new();
    for u in &users {
        for offset in 0..2 {
            work.push((u.0.clone(), offset));
        }
    }
    let mut tokens = Vec::with_capacity(work.len());
    for chunk in work.chunks(CLIENTS) {
        let got = join_all(chunk.iter().map(|(email, _)| mfa_token(client, base, email))).await;
        tokens.extend(got);
    }
    let per_client = work.len() / CLIENTS;
    let totps: Arc<Vec<Totp>> = Arc::new(users.into_iter().map(|u| u.2).collect());
    let results = join_all((0..CLIENTS).map(|c| {
        let (client, base, totps) = (client.clone(), base.to_owned(), totps.clone());
        let mine: Vec<(usize, i64, Option<String>)> =
            (c * per_client..(c + 1) * per_client).map(|k| (k / 2, work[k].1, tokens[k].clone())).collect();
        async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            for (u, offset, token) in mine {
                let Some(token) = token else {
                    errors += 1;
                    continue;
                };
                let body = json!({"mfa_token": token, "code": code(&totps[u], offset)});
                let t = Instant::now();
                let ok = post_api(&client, &base, "/mfa/verify", None, body).await.is_some();
                lat.push(elapsed_ms(t));
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }
    }))
    .await;
    let errors: usize = results.iter().map(|r| r.1).sum();
    let (p50, p99) = percentiles(results.into_iter().flat_map(|r| r.0).collect());
    lines.push(format!(
        "(f) POST /mfa/verify ({CLIENTS} clients): p50 {p50:.2} ms  p99 {p99:.2} ms  ({} verifications, {errors} errors)",
        per_client * CLIENTS
    ));

    // (g) passkey authentication: options, sign, POST /passkeys/authenticate; 32 clients for `seconds`.
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let email = format!("passkey{i}@example.com");
        let at = signup(client, base, &email).await?.access;
        let d = post_api(client, base, "/passkeys/register/options", Some(&at), json!({}))
            .await
            .ok_or_else(|| anyhow::anyhow!("passkey options failed"))?;
        let (token, _) = SoftToken::new(true).map_err(|e| anyhow::anyhow!("soft token: {e:?}"))?;
        let mut token = BenchToken(token);
        let ccr: CreationChallengeResponse = serde_json::from_value(d["options"].clone())?;
        let cred = token
            .do_registration(Url::parse(ORIGIN)?, ccr)
            .map_err(|e| anyhow::anyhow!("registration: {e:?}"))?;
        post_api(
            client,
            base,
            "/passkeys/register",
            Some(&at),
            json!({"ceremony_id": d["ceremony_id"], "credential": cred}),
        )
        .await
        .ok_or_else(|| anyhow::anyhow!("passkey registration failed"))?;
        clients.push((email, token));
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(seconds);
    let results = join_all(clients.into_iter().map(|(email, mut token)| {
        let (client, base) = (client.clone(), base.to_owned());
        async move {
            let (mut lat, mut errors) = (Vec::new(), 0);
            while Instant::now() < deadline {
                let Some(d) =
                    post_api(&client, &base, "/passkeys/authenticate/options", None, json!({"email": email}))
                        .await
                else {
                    errors += 1;
                    continue;
                };
                let Ok(rcr) = serde_json::from_value::<RequestChallengeResponse>(d["options"].clone()) else {
                    errors += 1;
                    continue;
                };
                let Ok(assertion) = token.do_authentication(Url::parse(ORIGIN).expect("a valid origin"), rcr)
                else {
                    errors += 1;
                    continue;
                };
                let body = json!({"ceremony_id": d["ceremony_id"], "credential": assertion});
                let t = Instant::now();
                let ok = post_api(&client, &base, "/passkeys/authenticate", None, body).await.is_some();
                lat.push(elapsed_ms(t));
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }
    }))
    .await;
    let errors: usize = results.iter().map(|r| r.1).sum();
    let count: usize = results.iter().map(|r| r.0.len()).sum();
    let (p50, p99) = percentiles(results.into_iter().flat_map(|r| r.0).collect::<Vec<_>>());
    lines.push(format!(
        "(g) POST /passkeys/authenticate ({CLIENTS} clients, {seconds} s): p50 {p50:.2} ms  p99 {p99:.2} ms  ({count} sign-ins, {errors} errors)"
    ));
    Ok(lines)
}
