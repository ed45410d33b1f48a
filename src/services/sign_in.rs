//! Sign-in in one place: the password step, then — when the user has MFA on — a second factor
//! (a TOTP or backup code, or a passkey), or a passkey alone; every path ends in
//! [`complete_sign_in`], in the same write as the checks it depends on. `mfa` and `passkeys`
//! verify credentials; only this module opens sessions for a sign-in.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use entities::user;

use crate::context::RequestContext;
use crate::domain::sso::SsoReason;
use crate::domain::{AuthMethod, UserStatus};
use crate::domain::{Email, EventType, Password};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::security::secrets::sha256_hex;
use crate::services::audit::Change;
use crate::services::lockout::Attempt;
use crate::services::mfa_token::{self, MfaChallenge, MfaTicket, PendingRehash};
use crate::services::sessions::{self, IssuedTokens};
use crate::services::sso::providers as sso_providers;
use crate::services::unit_of_work::Write;
use crate::services::users::UserView;
use crate::services::{mfa, passkeys};
use crate::state::AppState;

/// A signed-in user and their tokens.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: UserView,
    pub tokens: IssuedTokens,
}

/// What a correct password leads to: a session, or a second step when MFA is on.
#[derive(Debug)]
pub enum SignInOutcome {
    Authenticated(Box<Authenticated>),
    MfaRequired(MfaChallenge),
}

/// The outcome of `verifyMfa`: setup confirmed, or a sign-in completed.
#[derive(Debug)]
pub enum Verified {
    Enabled,
    SignedIn(Box<Authenticated>),
}

/// Checks email and password and opens a session — or, when the user has MFA on, answers with
/// an MFA token for the second step and opens nothing yet (an upgraded password hash waits in
/// the token's state and commits with the completed sign-in). Unknown email and wrong password
/// give the same `INVALID_CREDENTIALS` after the same work (a decoy hash is verified for unknown
/// emails). Each call takes a unit of the client's credential limit and a lockout slot of the
/// email before hashing, so concurrent or batched guesses verify at most the lockout threshold.
pub async fn sign_in(
    state: &AppState,
    ctx: &RequestContext,
    email: &str,
    password: Password,
) -> AppResult<SignInOutcome> {
    let email = Email::parse(email).map_err(|_| AppError::new(ErrorCode::InvalidCredentials))?;
    let mut attempt = Attempt::begin(state, ctx.client_ip).await?;
    let locked_until = attempt.reserve(&state.lockouts, email.as_str()).await.err();
    // Every refusal does the same work — the lookup, one hash, one audited write — so that an
    // unknown email, a wrong password and a locked account take the same time (SECURITY.md,
    // Timing). A locked account's hash is the decoy: nothing is verified against its own.
    let found = user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(&state.db).await?;
    if let Some(until) = locked_until {
        state.passwords.verify(&password, None).await?;
        return Err(refused_sign_in(state, ctx, &email, Refusal::Locked(until)).await);
    }
    let stored = found.as_ref().and_then(|u| u.password_hash.as_deref());
    let verified = state.passwords.verify(&password, stored).await?;
    let Some(u) = found.filter(|_| verified.ok) else {
        return Err(failed_sign_in(state, ctx, &email, attempt.locks_on_failure()).await);
    };
    attempt.succeeded(state).await;
    if !UserStatus::Active.is(&u.status) {
        return Err(ErrorCode::AccountDisabled.into());
    }
    require_verified_email(state, &u)?;
    if sso_providers::password_refused(&state.db, u.id, &u.email).await? {
        return Err(SsoReason::SsoRequired.into());
    }
    if mfa::is_enabled(&state.db, u.id).await? {
        let rehash = verified.rehash.map(|hash| PendingRehash {
            hash,
            replaces: sha256_hex(u.password_hash.as_deref().unwrap_or_default()),
        });
        return Ok(SignInOutcome::MfaRequired(mfa_token::issue(state, &u, rehash).await?));
    }
    let mut w = Write::begin(state, ctx).await?;
    let out = complete_sign_in(
        &mut w,
        state,
        ctx,
        u,
        AuthMethod::Password.as_str(),
        serde_json::json!({}),
        verified.rehash,
    )
    .await?;
    w.commit().await?;
    Ok(SignInOutcome::Authenticated(Box::new(out)))
}

/// `verifyMfa`: with an MFA token, finishes a sign-in with a TOTP or backup code; otherwise
/// (bearer) confirms a pending setup with a TOTP code and turns MFA on.
pub async fn verify_mfa(
    state: &AppState,
    ctx: &RequestContext,
    code: &str,
    mfa_token: Option<&str>,
) -> AppResult<Verified> {
    mfa::require_code(code)?;
    match mfa_token {
        Some(token) => with_code(state, ctx, token, code).await.map(|a| Verified::SignedIn(Box::new(a))),
        None => mfa::confirm_setup(state, ctx, code).await.map(|()| Verified::Enabled),
    }
}

/// The second step with a code: spends the MFA token, checks the code, opens the session.
async fn with_code(
    state: &AppState,
    ctx: &RequestContext,
    token: &str,
    code: &str,
) -> AppResult<Authenticated> {
    let ticket = mfa_token::take(state, token).await?;
    let mut w = Write::begin(state, ctx).await?;
    let kind = match mfa::check_second_factor(w.tx(), state, ctx, ticket.user_id, &ticket.email, code).await {
        Ok(k) => k,
        Err(e) => {
            w.rollback().await?;
            if matches!(e.code, ErrorCode::InvalidMfaCode | ErrorCode::RateLimited) {
                // Attempts remain (or none was made): the token stays usable until it expires.
                mfa_token::restore(state, token, &ticket).await?;
            }
            return Err(e);
        }
    };
    let out = finish_second_factor(&mut w, state, ctx, &ticket, kind.as_str()).await?;
    w.commit().await?;
    Ok(out)
}

/// Finishes a passkey sign-in with the authenticator's assertion: alone (`passkey`), or as the
/// second step of an MFA sign-in (`password+mfa`) when the ceremony was started for `mfa_token`.
pub async fn with_passkey(
    state: &AppState,
    ctx: &RequestContext,
    ceremony_id: &str,
    credential: serde_json::Value,
    mfa_token: Option<&str>,
) -> AppResult<Authenticated> {
    let assertion = passkeys::verify_assertion(state, ctx, ceremony_id, credential, mfa_token).await?;
    // The assertion is good: only now spend the MFA token (single use).
    let ticket = match assertion.bound_token {
        Some(t) => Some(mfa_token::take(state, t).await?),
        None => None,
    };
    if ticket.as_ref().is_some_and(|t| t.user_id != assertion.user_id) {
        return Err(ErrorCode::PasskeyVerificationFailed.into());
    }
    let mut w = Write::begin(state, ctx).await?;
    passkeys::record_use(w.tx(), &assertion).await?;
    let out = match ticket {
        Some(t) => finish_second_factor(&mut w, state, ctx, &t, AuthMethod::Passkey.as_str()).await?,
        None => {
            let u = user::Entity::find_by_id(assertion.user_id)
                .one(w.tx())
                .await?
                .ok_or(ErrorCode::PasskeyVerificationFailed)?;
            if !UserStatus::Active.is(&u.status) {
                return Err(ErrorCode::AccountDisabled.into());
            }
            require_verified_email(state, &u)?;
            let detail = serde_json::json!({"passkey_id": assertion.passkey_id});
            complete_sign_in(&mut w, state, ctx, u, AuthMethod::Passkey.as_str(), detail, None).await?
        }
    };
    w.commit().await?;
    Ok(out)
}

/// Opens the session of a sign-in whose second factor was just verified (`password+mfa`, or
/// `magic_link+mfa`), writing the password hash upgrade of its first step unless the password
/// changed meanwhile.
async fn finish_second_factor(
    w: &mut Write<'_>,
    state: &AppState,
    ctx: &RequestContext,
    ticket: &MfaTicket,
    factor: &str,
) -> AppResult<Authenticated> {
    let u = user::Entity::find_by_id(ticket.user_id).one(w.tx()).await?.ok_or(ErrorCode::InvalidToken)?;
    if !UserStatus::Active.is(&u.status) {
        return Err(ErrorCode::AccountDisabled.into());
    }
    let current = sha256_hex(u.password_hash.as_deref().unwrap_or_default());
    let rehash = ticket.rehash.clone().filter(|r| r.replaces == current).map(|r| r.hash);
    let detail = serde_json::json!({"factor": factor});
    let method = match ticket.first.as_deref() {
        Some(m) if m == AuthMethod::MagicLink.as_str() => AuthMethod::MagicLinkMfa,
        _ => AuthMethod::PasswordMfa,
    };
    complete_sign_in(w, state, ctx, u, method.as_str(), detail, rehash).await
}

/// `EMAIL_NOT_VERIFIED` when `JANUA_REQUIRE_EMAIL_VERIFICATION` is on and `u` has not
/// verified their address (checked after the credential proved good, so it tells nothing to
/// someone without it).
fn require_verified_email(state: &AppState, u: &user::Model) -> AppResult<()> {
    if state.config.require_email_verification && !u.email_verified {
        return Err(ErrorCode::EmailNotVerified.into());
    }
    Ok(())
}

/// A sign-in with a magic link: spends the mailed token (which proves the address, so it is
/// verified on the way), then opens a session (`magic_link`) — or, when MFA is on, answers with
/// an MFA token for the second step. Returns the redirect the link was requested with.
pub async fn with_magic_link(
    state: &AppState,
    ctx: &RequestContext,
    token: &str,
) -> AppResult<(SignInOutcome, Option<String>)> {
    use crate::services::account_tokens::{self, TokenPurpose};
    let mut w = Write::begin(state, ctx).await?;
    let t = account_tokens::spend(&w, &[TokenPurpose::MagicLink], token).await?;
    let redirect = t.data.as_ref().and_then(|d| d["redirect_url"].as_str()).map(str::to_owned);
    let u = user::Entity::find_by_id(t.user_id).one(w.tx()).await?.ok_or(ErrorCode::InvalidToken)?;
    if !UserStatus::Active.is(&u.status) {
        return Err(ErrorCode::AccountDisabled.into());
    }
    if sso_providers::password_refused(&state.db, u.id, &u.email).await? {
        return Err(SsoReason::SsoRequired.into());
    }
    let u = crate::services::email_verification::mark_verified(&mut w, u).await?;
    if mfa::is_enabled(&state.db, u.id).await? {
        w.commit().await?;
        let first = Some(AuthMethod::MagicLink.as_str());
        let challenge = mfa_token::issue_after(state, &u, None, first).await?;
        return Ok((SignInOutcome::MfaRequired(challenge), redirect));
    }
    let out =
        complete_sign_in(&mut w, state, ctx, u, AuthMethod::MagicLink.as_str(), serde_json::json!({}), None)
            .await?;
    w.commit().await?;
    Ok((SignInOutcome::Authenticated(Box::new(out)), redirect))
}

/// The end of every successful sign-in (password, password + second factor, passkey): records
/// the time (and an upgraded password hash), audits `user.signed_in` with `method` and `detail`,
/// and opens the session, all in the write `w`. The caller has checked the account is active.
async fn complete_sign_in(
    w: &mut Write<'_>,
    state: &AppState,
    ctx: &RequestContext,
    u: user::Model,
    method: &str,
    detail: serde_json::Value,
    rehash: Option<String>,
) -> AppResult<Authenticated> {
    use sea_orm::{ActiveModelTrait, Set};
    let mut am: user::ActiveModel = u.into();
    am.last_signin_at = Set(Some(Utc::now()));
    if let Some(rehash) = rehash {
        am.password_hash = Set(Some(rehash));
    }
    let u = am.update(w.tx()).await?;
    w.user_changed(u.id);
    let mut data = serde_json::json!({"user_id": u.id, "method": method});
    if let (Some(d), Some(extra)) = (data.as_object_mut(), detail.as_object()) {
        d.extend(extra.clone());
    }
    w.record(Change {
        event: EventType::UserSignedIn,
        target: Some(("user", u.id.to_string())),
        subject_user: Some(u.id),
        acting_user: Some((Some(u.id), u.email.clone())),
        organization: None,
        data,
    })
    .await?;
    let tokens = sessions::open_session(w, state, ctx, u.id, &u.email, method).await?;
    metrics::counter!("janua_signins_total", "outcome" => "success").increment(1);
    Ok(Authenticated { user: u.into(), tokens })
}

/// Completes a sign-in through an identity provider (the caller linked or provisioned `u` and
/// checked it is active) in the write `w`: a session with method `sso`, and `sso.signed_in`
/// beside `user.signed_in` in the provider's organization's log.
pub(crate) async fn with_sso(
    w: &mut Write<'_>,
    state: &AppState,
    ctx: &RequestContext,
    u: user::Model,
    provider: &entities::sso_provider::Model,
    protocol: crate::domain::sso::SsoProtocol,
) -> AppResult<Authenticated> {
    let detail = serde_json::json!({"provider_id": provider.id, "protocol": protocol.as_str()});
    w.record(Change {
        event: EventType::SsoSignedIn,
        target: Some(("user", u.id.to_string())),
        subject_user: Some(u.id),
        acting_user: Some((Some(u.id), u.email.clone())),
        organization: Some(provider.organization_id),
        data: serde_json::json!({"user_id": u.id, "provider_id": provider.id, "protocol": protocol.as_str()}),
    })
    .await?;
    metrics::counter!("janua_sso_signins_total", "outcome" => "success").increment(1);
    complete_sign_in(w, state, ctx, u, AuthMethod::Sso.as_str(), detail, None).await
}

/// `ACCOUNT_LOCKED` until `until`, counted as a locked sign-in.
pub(crate) fn locked(until: chrono::DateTime<Utc>) -> AppError {
    metrics::counter!("janua_signins_total", "outcome" => "locked").increment(1);
    AppError::new(ErrorCode::AccountLocked).with_details(serde_json::json!({
        "locked_until": until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }))
}

/// Why a sign-in was refused, for its audit row and its answer.
#[derive(Clone, Copy)]
enum Refusal {
    /// A wrong password or an unknown email; `Some` is the lock this failure leaves, when it
    /// took the last slot.
    Invalid(Option<chrono::DateTime<Utc>>),
    /// The account was already locked until then (nothing was verified).
    Locked(chrono::DateTime<Utc>),
}

/// Audits a wrong password in its own write (its failure is already counted by the attempt's
/// slot); `locks` is the lock this failure leaves, when it took the last slot.
pub(crate) async fn failed_sign_in(
    state: &AppState,
    ctx: &RequestContext,
    email: &Email,
    locks: Option<chrono::DateTime<Utc>>,
) -> AppError {
    refused_sign_in(state, ctx, email, Refusal::Invalid(locks)).await
}

/// Audits a refused sign-in (`user.signin_failed`, with its reason, and `user.locked` when this
/// failure locks the account) in its own write, and answers it.
async fn refused_sign_in(state: &AppState, ctx: &RequestContext, email: &Email, why: Refusal) -> AppError {
    let (reason, locks) = match why {
        Refusal::Invalid(locks) => ("invalid_credentials", locks),
        Refusal::Locked(_) => ("account_locked", None),
    };
    if let Refusal::Invalid(_) = why {
        metrics::counter!("janua_signins_total", "outcome" => "failure").increment(1);
    }
    let write = async {
        let mut w = Write::begin(state, ctx).await?;
        let acting = Some((None, email.as_str().to_owned()));
        w.record(Change {
            event: EventType::UserSigninFailed,
            target: None,
            subject_user: None,
            acting_user: acting.clone(),
            organization: None,
            data: serde_json::json!({"email": email.as_str(), "reason": reason}),
        })
        .await?;
        if let Some(until) = locks {
            w.record(Change {
                event: EventType::UserLocked,
                target: None,
                subject_user: None,
                acting_user: acting,
                organization: None,
                data: serde_json::json!({"email": email.as_str(), "locked_until": until}),
            })
            .await?;
        }
        w.commit().await
    };
    if let Err(e) = write.await {
        return e;
    }
    match (why, locks) {
        (Refusal::Locked(until), _) | (_, Some(until)) => locked(until),
        _ => ErrorCode::InvalidCredentials.into(),
    }
}
