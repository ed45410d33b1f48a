//! Email verification and change: sign-up mails a verification link; `verifyEmail` spends it
//! (or the link that confirms a new address, which only then replaces the old one);
//! `resendVerificationEmail` mails a fresh link (the earlier one stops working).

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use entities::user;

use crate::context::RequestContext;
use crate::domain::{Email, EventType, UserStatus};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::services::account_tokens::{self, TokenPurpose};
use crate::services::audit::Change;
use crate::services::mail::{self, MailKind};
use crate::services::unit_of_work::Write;
use crate::services::users::UserView;
use crate::state::AppState;

/// Queues the verification mail of `u` in the write `w` (a new link; earlier ones stop working).
pub(crate) async fn queue_verification(
    w: &mut Write<'_>,
    state: &AppState,
    u: &user::Model,
) -> AppResult<()> {
    let data = serde_json::json!({"email": u.email});
    let token = account_tokens::issue(w, u.id, TokenPurpose::VerifyEmail, Some(data)).await?;
    let link = mail::link(&state.config, TokenPurpose::VerifyEmail.page(), &token);
    let locale = mail::locale_for(u.locale.as_deref(), w.ctx());
    mail::queue(w, &u.email, Some(&locale), MailKind::VerifyEmail { link }).await
}

/// Marks `u`'s address verified in the write `w` (recording `user.email_verified` when it was
/// not); returns the user as stored.
pub(crate) async fn mark_verified(w: &mut Write<'_>, u: user::Model) -> AppResult<user::Model> {
    if u.email_verified {
        return Ok(u);
    }
    let mut am: user::ActiveModel = u.into();
    am.email_verified = Set(true);
    am.updated_at = Set(Utc::now());
    let u = am.update(w.tx()).await?;
    w.user_changed(u.id);
    w.record(Change {
        event: EventType::UserEmailVerified,
        target: Some(("user", u.id.to_string())),
        subject_user: Some(u.id),
        acting_user: Some((Some(u.id), u.email.clone())),
        organization: None,
        data: serde_json::json!({"user_id": u.id, "email": u.email}),
    })
    .await?;
    Ok(u)
}

/// Spends a token from a verification or email-change mail: verifies the address, or replaces
/// it with the confirmed new one (`CONFLICT` when another account took it meanwhile). A
/// verification link sent to an address the account no longer has is `INVALID_TOKEN`.
pub async fn verify_email(state: &AppState, ctx: &RequestContext, token: &str) -> AppResult<UserView> {
    let mut w = Write::begin(state, ctx).await?;
    let t = account_tokens::spend(&w, &[TokenPurpose::VerifyEmail, TokenPurpose::EmailChange], token).await?;
    let u = user::Entity::find_by_id(t.user_id)
        .one(w.tx())
        .await?
        .filter(|u| !UserStatus::Deleted.is(&u.status))
        .ok_or(ErrorCode::InvalidToken)?;
    let addressed = |key: &str| t.data.as_ref().and_then(|d| d[key].as_str()).map(str::to_owned);
    let u = match account_tokens::purpose_of(&t.purpose) {
        Some(TokenPurpose::EmailChange) => {
            let new = addressed("new_email").ok_or(ErrorCode::InvalidToken)?;
            let old = u.email.clone();
            let mut am: user::ActiveModel = u.into();
            am.email = Set(new.clone());
            am.email_verified = Set(true);
            am.updated_at = Set(Utc::now());
            let u = am.update(w.tx()).await.map_err(|e| match AppError::from(e) {
                e if e.code == ErrorCode::Conflict => email_taken(),
                e => e,
            })?;
            w.user_changed(u.id);
            w.record(Change {
                event: EventType::UserUpdated,
                target: Some(("user", u.id.to_string())),
                subject_user: Some(u.id),
                acting_user: Some((Some(u.id), new.clone())),
                organization: None,
                data: serde_json::json!({"user_id": u.id, "changed": ["email"], "previous_email": old}),
            })
            .await?;
            w.record(Change {
                event: EventType::UserEmailVerified,
                target: Some(("user", u.id.to_string())),
                subject_user: Some(u.id),
                acting_user: Some((Some(u.id), new.clone())),
                organization: None,
                data: serde_json::json!({"user_id": u.id, "email": new}),
            })
            .await?;
            u
        }
        _ => {
            if addressed("email").is_some_and(|e| e != u.email) {
                return Err(ErrorCode::InvalidToken.into());
            }
            mark_verified(&mut w, u).await?
        }
    };
    w.commit().await?;
    Ok(u.into())
}

/// Mails the signed-in caller a fresh verification link (`CONFLICT` with reason
/// `already_verified` when there is nothing to verify); counted against the mail limits.
pub async fn resend_verification(state: &AppState, ctx: &RequestContext) -> AppResult<()> {
    let actor = ctx.require_user()?;
    let u = user::Entity::find_by_id(actor.user_id).one(&state.db).await?.ok_or(ErrorCode::SessionRevoked)?;
    if u.email_verified {
        return Err(AppError::new(ErrorCode::Conflict)
            .with_details(serde_json::json!({"reason": "already_verified"})));
    }
    mail::allow(state, ctx, &u.email).await?;
    let mut w = Write::begin(state, ctx).await?;
    queue_verification(&mut w, state, &u).await?;
    w.commit().await
}

/// Checks a requested email change of `u` to `raw` before the write: `None` when it changes
/// nothing, else the parsed address (422 when malformed, `CONFLICT` when another account has
/// it), counted against the mail limits of the new address.
pub(crate) async fn check_email_change(
    state: &AppState,
    ctx: &RequestContext,
    u: &user::Model,
    raw: &str,
) -> AppResult<Option<Email>> {
    let new = Email::parse(raw)?;
    if new.as_str() == u.email {
        return Ok(None);
    }
    if user::Entity::find().filter(user::Column::Email.eq(new.as_str())).one(&state.db).await?.is_some() {
        return Err(email_taken());
    }
    mail::allow(state, ctx, new.as_str()).await?;
    Ok(Some(new))
}

/// Mails the confirmation of `u`'s new address `new` to that address, in the write `w`; the
/// address changes when the link is followed (`verifyEmail`).
pub(crate) async fn request_email_change(
    w: &mut Write<'_>,
    state: &AppState,
    u: &user::Model,
    new: &Email,
) -> AppResult<()> {
    let data = serde_json::json!({"new_email": new.as_str()});
    let token = account_tokens::issue(w, u.id, TokenPurpose::EmailChange, Some(data)).await?;
    let link = mail::link(&state.config, TokenPurpose::EmailChange.page(), &token);
    let locale = mail::locale_for(u.locale.as_deref(), w.ctx());
    let kind = MailKind::ConfirmEmailChange { link, new_email: new.as_str().to_owned() };
    mail::queue(w, new.as_str(), Some(&locale), kind).await
}

fn email_taken() -> AppError {
    AppError::new(ErrorCode::Conflict).with_details(serde_json::json!({"field": "email"}))
}
