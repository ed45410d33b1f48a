//! Sign-up, refresh, re-authentication, sign-out, and turning a bearer token into an actor
//! (sign-in itself lives in `services::sign_in`).

use chrono::{Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use entities::{refresh_token, session, user};

use crate::context::{RequestContext, UserActor};
use crate::domain::{AuthMethod, UserStatus};
use crate::domain::{Email, EventType, Password, optional_text};
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::security::secrets::sha256_hex;
use crate::services::audit::Change;
use crate::services::lockout::Attempt;
use crate::services::refresh_batch::Rotation;
use crate::services::sessions::{self, IssuedTokens};
use crate::services::sign_in::{Authenticated, failed_sign_in, locked};
use crate::services::unit_of_work::Write;
use crate::services::users::{NewUser, insert_user};
use crate::state::AppState;

/// What a new account starts with.
#[derive(Debug)]
pub struct SignUp {
    pub email: String,
    pub password: Password,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub locale: Option<String>,
}

pub(crate) fn check_username(u: Option<String>) -> AppResult<Option<String>> {
    let u = optional_text("username", u, 64)?;
    if let Some(v) = &u
        && (v.len() < 3 || !v.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
    {
        return Err(AppError::field("username", FieldIssue::InvalidFormat));
    }
    Ok(u.map(|v| v.to_lowercase()))
}

pub(crate) fn check_locale(l: Option<String>) -> AppResult<Option<String>> {
    let l = optional_text("locale", l, 16)?;
    if let Some(v) = &l
        && !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(AppError::field("locale", FieldIssue::InvalidFormat));
    }
    Ok(l)
}

/// Creates an account, signs it in and mails it a verification link. A taken email or
/// username → `CONFLICT`.
pub async fn sign_up(state: &AppState, ctx: &RequestContext, input: SignUp) -> AppResult<Authenticated> {
    // Collect every field problem before answering.
    let mut err: Option<AppError> = None;
    let mut note = |r: AppError| match &mut err {
        Some(e) => e.fields.extend(r.fields),
        None => err = Some(r),
    };
    let email = Email::parse(&input.email).map_err(&mut note).ok();
    let _ = state.passwords.check_policy(&input.password, email.as_ref()).map_err(&mut note);
    let name = optional_text("name", input.name, 200).map_err(&mut note).ok().flatten();
    let first_name = optional_text("first_name", input.first_name, 100).map_err(&mut note).ok().flatten();
    let last_name = optional_text("last_name", input.last_name, 100).map_err(&mut note).ok().flatten();
    let username = check_username(input.username).map_err(&mut note).ok().flatten();
    let locale = check_locale(input.locale).map_err(&mut note).ok().flatten();
    if let Some(e) = err {
        return Err(e);
    }
    let email = email.expect("no error means the email parsed");

    // Refuse a taken email before spending a hash on it; the unique index still decides races.
    if user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(&state.db).await?.is_some() {
        return Err(email_taken());
    }
    let hash = state.passwords.hash(&input.password).await?;
    let display = name.clone().or_else(|| match (&first_name, &last_name) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        _ => None,
    });
    let mut w = Write::begin(state, ctx).await?;
    let u = insert_user(
        w.tx(),
        NewUser {
            email: email.as_str().to_owned(),
            password_hash: Some(hash),
            name: display,
            first_name,
            last_name,
            username,
            locale,
            signed_in: true,
            ..NewUser::default()
        },
    )
    .await
    .map_err(|e| match e {
        e if e.code == ErrorCode::Conflict => email_taken(),
        e => e,
    })?;
    w.record(Change {
        event: EventType::UserCreated,
        target: Some(("user", u.id.to_string())),
        subject_user: Some(u.id),
        acting_user: Some((Some(u.id), u.email.clone())),
        organization: None,
        data: serde_json::json!({"user_id": u.id, "email": u.email, "method": "password"}),
    })
    .await?;
    crate::services::email_verification::queue_verification(&mut w, state, &u).await?;
    let tokens =
        sessions::open_session(&mut w, state, ctx, u.id, &u.email, AuthMethod::Password.as_str()).await?;
    w.commit().await?;
    Ok(Authenticated { user: u.into(), tokens })
}

fn email_taken() -> AppError {
    AppError::new(ErrorCode::Conflict).with_details(serde_json::json!({"field": "email"}))
}

/// Exchanges a refresh token for new tokens, rotating it to its one successor. Presented again
/// within the grace period (concurrent tabs), it answers with that same successor — no second
/// live token. A token already rotated more than the grace period ago is a replay: the whole
/// session is revoked.
pub async fn refresh(state: &AppState, ctx: &RequestContext, token: &str) -> AppResult<IssuedTokens> {
    let invalid = || AppError::new(ErrorCode::InvalidToken);
    if token.is_empty() || token.len() > 200 {
        return Err(invalid());
    }
    let hash = sha256_hex(token);
    // Read outside the write transaction (one statement: token, session and user joined), so
    // the write lock is held only for writes.
    let Some((rt, Some(s), u)) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash))
        .find_also_related(session::Entity)
        .and_also_related(user::Entity)
        .one(&state.db)
        .await?
    else {
        return Err(invalid());
    };
    let now = Utc::now();
    if s.revoked_at.is_some() {
        return Err(ErrorCode::SessionRevoked.into());
    }
    if rt.expires_at <= now || s.expires_at <= now {
        return Err(ErrorCode::TokenExpired.into());
    }
    if let Some(rotated) = rt.rotated_at
        && now - rotated > Duration::seconds(state.config.refresh_reuse_grace)
    {
        let mut w = Write::begin(state, ctx).await?;
        w.record(Change {
            event: EventType::SessionRefreshReuseDetected,
            target: Some(("session", s.id.to_string())),
            subject_user: Some(s.user_id),
            acting_user: None,
            organization: None,
            data: serde_json::json!({"session_id": s.id, "user_id": s.user_id}),
        })
        .await?;
        sessions::revoke_in(&mut w, &s, "refresh_token_reuse").await?;
        w.commit().await?;
        return Err(invalid());
    }
    let u = u.ok_or_else(invalid)?;
    if !UserStatus::Active.is(&u.status) {
        return Err(ErrorCode::AccountDisabled.into());
    }
    let successor = sessions::successor_token(state, token);
    // The write is shared with the rotations that arrive meanwhile (one transaction for the
    // group); its conditional updates settle races with a concurrent refresh or revocation.
    let rotation = Rotation {
        ctx: ctx.clone(),
        token_id: rt.id,
        already_rotated: rt.rotated_at.is_some(),
        session_id: s.id,
        session_expires_at: s.expires_at,
        user_id: u.id,
        email: u.email.clone(),
        successor: successor.clone(),
    };
    crate::services::refresh_batch::rotate(state, rotation).await?;
    let refresh = successor;
    let (access, expires_in) = state.keys.issue_access(u.id, s.id, &u.email)?;
    Ok(IssuedTokens {
        access_token: access,
        refresh_token: refresh,
        expires_in,
        refresh_expires_in: (s.expires_at - now).num_seconds(),
        session_id: s.id,
    })
}

/// Confirms the caller's password on their current session, so sensitive changes are allowed
/// again for the re-authentication window; returns when. Counted like a sign-in (a unit of the
/// client's credential limit and a lockout slot of the email, taken before hashing).
pub async fn reauthenticate(
    state: &AppState,
    ctx: &RequestContext,
    password: Password,
) -> AppResult<chrono::DateTime<Utc>> {
    let actor = ctx.require_user()?;
    let u = user::Entity::find_by_id(actor.user_id).one(&state.db).await?.ok_or(ErrorCode::InvalidToken)?;
    let email = Email::parse(&u.email)?;
    let mut attempt = Attempt::begin(state, ctx.client_ip).await?;
    attempt.reserve(&state.lockouts, email.as_str()).await.map_err(locked)?;
    let verified = state.passwords.verify(&password, u.password_hash.as_deref()).await?;
    if !verified.ok {
        return Err(failed_sign_in(state, ctx, &email, attempt.locks_on_failure()).await);
    }
    attempt.succeeded(state).await;
    sessions::mark_authenticated(state, actor.session_id).await
}

/// Revokes the caller's current session: its access and refresh tokens stop working at once.
pub async fn sign_out(state: &AppState, ctx: &RequestContext) -> AppResult<()> {
    let actor = ctx.require_user()?;
    let mut w = Write::begin(state, ctx).await?;
    let s =
        session::Entity::find_by_id(actor.session_id).one(w.tx()).await?.ok_or(ErrorCode::SessionRevoked)?;
    w.record(Change {
        event: EventType::UserSignedOut,
        target: Some(("user", actor.user_id.to_string())),
        subject_user: Some(actor.user_id),
        acting_user: None,
        organization: None,
        data: serde_json::json!({"session_id": s.id}),
    })
    .await?;
    if s.revoked_at.is_none() {
        sessions::revoke_in(&mut w, &s, "signed_out").await?;
    }
    w.commit().await?;
    Ok(())
}

/// Verifies a bearer access token and its session: signature, issuer, audience, expiry, revocation.
/// The actor carries the stamp of its user read in the same look (one round trip with Redis), so
/// the request's services may serve the user from the cache ([`crate::services::users::caller`]).
pub async fn authenticate(state: &AppState, token: &str) -> AppResult<UserActor> {
    authenticate_prechecked(state, token, None).await
}

/// The revocation check of a session and user, looked up before the token naming them was
/// verified (in the same Redis round trip as the rate limit: `storage::request_look`).
pub struct Prechecked {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub check: crate::storage::SessionCheck,
}

/// [`authenticate`], using `pre` when the verified token names the same session and user (else
/// the check is made here, as when there is none).
pub async fn authenticate_prechecked(
    state: &AppState,
    token: &str,
    pre: Option<Prechecked>,
) -> AppResult<UserActor> {
    let claims = verify(state, token).await?;
    let check = match pre {
        Some(p) if p.session_id == claims.sid && p.user_id == claims.sub => p.check,
        _ => state.revocations.check(claims.sid, claims.sub).await.map_err(AppError::internal)?,
    };
    if check.revoked {
        return Err(ErrorCode::SessionRevoked.into());
    }
    Ok(UserActor { user_id: claims.sub, session_id: claims.sid, email: claims.email, stamp: check.user })
}

/// As [`authenticate`], with the moment the token expires (its `exp`): a long-lived transport
/// (`/graphql/ws`) stops honouring it then. Its actor has no stamp: a connection outlives any
/// one look, so each of its operations reads the user from the database.
pub async fn authenticate_with_expiry(
    state: &AppState,
    token: &str,
) -> AppResult<(UserActor, chrono::DateTime<Utc>)> {
    let claims = verify(state, token).await?;
    if state.revocations.is_revoked(claims.sid).await.map_err(AppError::internal)? {
        return Err(ErrorCode::SessionRevoked.into());
    }
    let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0).ok_or(ErrorCode::InvalidToken)?;
    Ok((
        UserActor { user_id: claims.sub, session_id: claims.sid, email: claims.email, stamp: None },
        expires_at,
    ))
}

/// The token's claims once its signature, issuer, audience and expiry hold. A key id this node
/// does not know may be a key rotated by another process: the keys are reloaded (at most twice a
/// second) and the token tried once more.
async fn verify(state: &AppState, token: &str) -> AppResult<crate::security::tokens::AccessClaims> {
    match state.keys.verify_access(token) {
        Err(e)
            if e.code == ErrorCode::InvalidToken
                && !state.keys.knows_kid(token)
                && state.keys.may_reload_for_unknown_kid(std::time::Duration::from_millis(500)) =>
        {
            state.keys.reload(&state.db).await.map_err(AppError::internal)?;
            state.keys.verify_access(token)
        }
        r => r,
    }
}
