//! Forgetting, resetting and changing a password. `forgotPassword` answers the same way, after
//! the same work, for every address (the account is looked up later, by the mail worker:
//! `services::account_requests`); a reset revokes every session of the account and clears its
//! lockouts; a change (which proves the current password like a sign-in) revokes the others.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use entities::{account_token, session, user};

use crate::context::RequestContext;
use crate::domain::{Email, EventType, Password, UserStatus};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::services::account_requests::{self, RequestKind};
use crate::services::account_tokens::{self, TokenPurpose};
use crate::services::audit::Change;
use crate::services::lockout::Attempt;
use crate::services::mail::{self, MailKind};
use crate::services::sign_in::{failed_sign_in, locked};
use crate::services::unit_of_work::Write;
use crate::services::{email_verification, sessions, users};
use crate::state::AppState;

/// Asks for a reset link for `email`: the same answer, after the same work, whether or not the
/// address has an account (only a malformed address or a spent mail allowance is refused).
pub async fn forgot_password(state: &AppState, ctx: &RequestContext, email: &str) -> AppResult<()> {
    account_requests::request(state, ctx, RequestKind::PasswordReset, email, None).await
}

/// The sign-up policy applied to a new password, its problems reported on `new_password`.
fn check_new(state: &AppState, password: &Password, email: &str) -> AppResult<()> {
    let email = Email::parse(email).ok();
    state.passwords.check_policy(password, email.as_ref()).map_err(|mut e| {
        if let Some(issue) = e.fields.remove("password") {
            e.fields.insert("new_password".into(), issue);
        }
        e
    })
}

/// Sets a new password with a reset token (single use, 30 minutes): every session of the
/// account is revoked at once (on every node), its lockouts are cleared, its other mailed
/// sign-in and reset links stop working, and it is told by mail.
pub async fn reset_password(
    state: &AppState,
    ctx: &RequestContext,
    token: &str,
    new_password: Password,
) -> AppResult<()> {
    // The token and the policy are checked before a hash is spent.
    let t = account_tokens::find(&state.db, &[TokenPurpose::PasswordReset], token).await?;
    let u =
        users::find_user(&state.db, t.user_id).await.map_err(|_| AppError::new(ErrorCode::InvalidToken))?;
    check_new(state, &new_password, &u.email)?;
    let hash = state.passwords.hash(&new_password).await?;
    let mut w = Write::begin(state, ctx).await?;
    let t = account_tokens::spend(&w, &[TokenPurpose::PasswordReset], token).await?;
    let u = user::Entity::find_by_id(t.user_id).one(w.tx()).await?.ok_or(ErrorCode::InvalidToken)?;
    if !UserStatus::Active.is(&u.status) {
        return Err(ErrorCode::AccountDisabled.into());
    }
    let mut am: user::ActiveModel = u.into();
    am.password_hash = Set(Some(hash));
    am.updated_at = Set(Utc::now());
    let u = am.update(w.tx()).await?;
    w.user_changed(u.id);
    // Following the link proved the address.
    let u = email_verification::mark_verified(&mut w, u).await?;
    account_token::Entity::delete_many()
        .filter(account_token::Column::UserId.eq(u.id))
        .filter(account_token::Column::UsedAt.is_null())
        .filter(
            account_token::Column::Purpose
                .is_in([TokenPurpose::PasswordReset.as_str(), TokenPurpose::MagicLink.as_str()]),
        )
        .exec(w.tx())
        .await?;
    w.record(Change {
        event: EventType::UserPasswordReset,
        target: Some(("user", u.id.to_string())),
        subject_user: Some(u.id),
        acting_user: Some((Some(u.id), u.email.clone())),
        organization: None,
        data: serde_json::json!({"user_id": u.id}),
    })
    .await?;
    users::revoke_all(&mut w, u.id, "password_reset").await?;
    let locale = mail::locale_for(u.locale.as_deref(), ctx);
    mail::queue(&mut w, &u.email, Some(&locale), MailKind::PasswordChanged).await?;
    w.commit().await?;
    state.lockouts.record_success(&u.email).await;
    state.mfa_lockouts.record_success(&format!("user:{}", u.id)).await;
    Ok(())
}

/// Changes the signed-in caller's password. The current password is checked like a sign-in
/// (a unit of the client's credential limit and a lockout slot, a failure audited and counted
/// towards the lockout); then every other session of the account is revoked and the user is
/// told by mail (`security.password.changed`).
pub async fn change_password(
    state: &AppState,
    ctx: &RequestContext,
    current: Password,
    new_password: Password,
) -> AppResult<()> {
    let actor = ctx.require_user()?;
    let u = user::Entity::find_by_id(actor.user_id).one(&state.db).await?.ok_or(ErrorCode::SessionRevoked)?;
    let email = Email::parse(&u.email)?;
    let mut attempt = Attempt::begin(state, ctx.client_ip).await?;
    attempt.reserve(&state.lockouts, email.as_str()).await.map_err(locked)?;
    let verified = state.passwords.verify(&current, u.password_hash.as_deref()).await?;
    if !verified.ok {
        return Err(failed_sign_in(state, ctx, &email, attempt.locks_on_failure()).await);
    }
    attempt.succeeded(state).await;
    check_new(state, &new_password, &u.email)?;
    let hash = state.passwords.hash(&new_password).await?;
    let mut w = Write::begin(state, ctx).await?;
    let mut am: user::ActiveModel = u.into();
    am.password_hash = Set(Some(hash));
    am.updated_at = Set(Utc::now());
    let u = am.update(w.tx()).await?;
    w.user_changed(u.id);
    let others = session::Entity::find()
        .filter(session::Column::UserId.eq(u.id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::Id.ne(actor.session_id))
        .all(w.tx())
        .await?;
    w.record(Change {
        event: EventType::PasswordChanged,
        target: Some(("user", u.id.to_string())),
        subject_user: Some(u.id),
        acting_user: None,
        organization: None,
        data: serde_json::json!({"user_id": u.id, "sessions_revoked": others.len()}),
    })
    .await?;
    for s in &others {
        sessions::revoke_in(&mut w, s, "password_changed").await?;
    }
    let locale = mail::locale_for(u.locale.as_deref(), ctx);
    mail::queue(&mut w, &u.email, Some(&locale), MailKind::PasswordChanged).await?;
    w.commit().await
}
