//! Second factors: TOTP setup and confirmation, backup codes, checking a code (also for the
//! second step of a sign-in), disabling, and status. Primitives live in `security::totp`; the MFA token that links
//! the two steps of a sign-in in `services::mfa_token`; the sign-in itself in `services::sign_in`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use uuid::Uuid;

use entities::{backup_code, mfa_factor, passkey, user};

use crate::context::RequestContext;
use crate::domain::{EventType, Password};
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::security::secrets::constant_time_eq;
use crate::security::totp;
use crate::services::audit::Change;
use crate::services::lockout::Attempt;
use crate::services::unit_of_work::Write;
use crate::state::AppState;

/// What `setupMfa` hands out, once.
#[derive(Clone)]
pub struct MfaSetup {
    /// The secret in base32, for manual entry.
    pub secret: String,
    pub otpauth_uri: String,
    /// `data:image/png;base64,…` of the URI as a QR code.
    pub qr_code: String,
    pub backup_codes: Vec<String>,
}

impl std::fmt::Debug for MfaSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaSetup(<redacted>)")
    }
}

/// Whether MFA is on, and what the user has.
#[derive(Clone, Debug)]
pub struct MfaStatus {
    pub enabled: bool,
    /// A setup was started and not yet confirmed.
    pub pending: bool,
    pub enabled_at: Option<DateTime<Utc>>,
    pub backup_codes_remaining: u64,
    pub passkeys: u64,
}

/// How many backup codes remain.
#[derive(Clone, Debug)]
pub struct BackupCodesStatus {
    pub remaining: u64,
    pub total: u64,
    pub generated_at: Option<DateTime<Utc>>,
}

/// Which second factor a code was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    Totp,
    BackupCode,
}

impl CodeKind {
    /// `totp` or `backup_code`, as audited.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::BackupCode => "backup_code",
        }
    }
}

fn hash_backup_code(state: &AppState, normalized: &str) -> String {
    state.master_key.keyed_hash("backup-code", normalized.as_bytes())
}

async fn replace_backup_codes(
    txn: &impl ConnectionTrait,
    state: &AppState,
    user_id: Uuid,
) -> AppResult<Vec<String>> {
    backup_code::Entity::delete_many().filter(backup_code::Column::UserId.eq(user_id)).exec(txn).await?;
    let codes = totp::new_backup_codes();
    let now = Utc::now();
    let rows = codes.iter().map(|c| backup_code::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        code_hash: Set(hash_backup_code(state, &totp::normalize_backup_code(c))),
        used_at: Set(None),
        created_at: Set(now),
    });
    backup_code::Entity::insert_many(rows).exec(txn).await?;
    Ok(codes)
}

async fn factor_of(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Option<mfa_factor::Model>> {
    Ok(mfa_factor::Entity::find_by_id(user_id).one(db).await?)
}

/// Whether `user_id` has TOTP MFA turned on.
pub(crate) async fn is_enabled(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<bool> {
    Ok(factor_of(db, user_id).await?.is_some_and(|f| f.enabled))
}

/// Starts (or restarts) TOTP setup: a new secret and 10 backup codes. MFA stays off until a code
/// confirms it. Needs a recent authentication (`REAUTH_REQUIRED`).
pub async fn setup(state: &AppState, ctx: &RequestContext) -> AppResult<MfaSetup> {
    let actor = ctx.require_user()?;
    crate::services::sessions::require_recent_auth(state, ctx).await?;
    let mut w = Write::begin(state, ctx).await?;
    if let Some(f) = factor_of(w.tx(), actor.user_id).await? {
        if f.enabled {
            return Err(ErrorCode::MfaAlreadyEnabled.into());
        }
        mfa_factor::Entity::delete_by_id(actor.user_id).exec(w.tx()).await?;
    }
    let secret = totp::new_secret();
    let totp = totp::totp(secret.clone(), &actor.email).map_err(AppError::internal)?;
    let otpauth_uri = totp.to_url().map_err(AppError::internal)?;
    let qr = totp.to_qr_base64().map_err(AppError::internal)?;
    let now = Utc::now();
    mfa_factor::ActiveModel {
        user_id: Set(actor.user_id),
        secret_sealed: Set(state.master_key.seal(&secret)),
        enabled: Set(false),
        last_used_step: Set(None),
        created_at: Set(now),
        enabled_at: Set(None),
    }
    .insert(w.tx())
    .await?;
    let backup_codes = replace_backup_codes(w.tx(), state, actor.user_id).await?;
    w.record(Change {
        event: EventType::MfaSetupStarted,
        target: Some(("user", actor.user_id.to_string())),
        subject_user: Some(actor.user_id),
        acting_user: None,
        organization: None,
        data: serde_json::json!({"user_id": actor.user_id, "method": "totp"}),
    })
    .await?;
    w.commit().await?;
    Ok(MfaSetup {
        secret: totp::secret_base32(&secret),
        otpauth_uri,
        qr_code: format!("data:image/png;base64,{qr}"),
        backup_codes,
    })
}

/// Accepts a current TOTP code once: the matched time step must be later than the last one
/// accepted, and is recorded atomically (two requests with the same code: one wins).
async fn accept_totp(
    txn: &impl ConnectionTrait,
    state: &AppState,
    f: &mfa_factor::Model,
    email: &str,
    code: &str,
) -> AppResult<bool> {
    let secret = state.master_key.open(&f.secret_sealed).map_err(AppError::internal)?;
    let totp = totp::totp(secret, email).map_err(AppError::internal)?;
    let Some(step) = totp::matching_step(&totp, code, Utc::now().timestamp() as u64) else {
        return Ok(false);
    };
    let step = step as i64;
    let updated = mfa_factor::Entity::update_many()
        .col_expr(mfa_factor::Column::LastUsedStep, Expr::value(step))
        .filter(mfa_factor::Column::UserId.eq(f.user_id))
        .filter(
            Condition::any()
                .add(mfa_factor::Column::LastUsedStep.is_null())
                .add(mfa_factor::Column::LastUsedStep.lt(step)),
        )
        .exec(txn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Spends a backup code (with or without its dash): each is accepted once.
async fn accept_backup_code(
    txn: &impl ConnectionTrait,
    state: &AppState,
    user_id: Uuid,
    code: &str,
) -> AppResult<bool> {
    let normalized = totp::normalize_backup_code(code);
    if normalized.len() != totp::CODE_LEN {
        return Ok(false);
    }
    let hash = hash_backup_code(state, &normalized);
    let unused = backup_code::Entity::find()
        .filter(backup_code::Column::UserId.eq(user_id))
        .filter(backup_code::Column::UsedAt.is_null())
        .all(txn)
        .await?;
    let mut found = None;
    for c in &unused {
        if constant_time_eq(c.code_hash.as_bytes(), hash.as_bytes()) {
            found = Some(c.id);
        }
    }
    let Some(id) = found else {
        return Ok(false);
    };
    let updated = backup_code::Entity::update_many()
        .col_expr(backup_code::Column::UsedAt, Expr::value(Utc::now()))
        .filter(backup_code::Column::Id.eq(id))
        .filter(backup_code::Column::UsedAt.is_null())
        .exec(txn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Checks a code that may be TOTP or a backup code; counts failures per user and locks after
/// too many (a slot taken before verifying, with a unit of the client's credential limit).
/// `totp_only` refuses backup codes (setup confirmation).
async fn check_code(
    txn: &impl ConnectionTrait,
    state: &AppState,
    ctx: &RequestContext,
    f: &mfa_factor::Model,
    email: &str,
    code: &str,
    totp_only: bool,
) -> AppResult<CodeKind> {
    let mut attempt = Attempt::begin(state, ctx.client_ip).await?;
    attempt.reserve(&state.mfa_lockouts, format!("user:{}", f.user_id)).await.map_err(mfa_locked)?;
    let code = code.trim();
    let kind = if accept_totp(txn, state, f, email, code).await? {
        Some(CodeKind::Totp)
    } else if !totp_only && f.enabled && accept_backup_code(txn, state, f.user_id, code).await? {
        Some(CodeKind::BackupCode)
    } else {
        None
    };
    match kind {
        Some(k) => {
            attempt.succeeded(state).await;
            Ok(k)
        }
        None => match attempt.locks_on_failure() {
            Some(until) => Err(mfa_locked(until)),
            None => Err(ErrorCode::InvalidMfaCode.into()),
        },
    }
}

fn mfa_locked(until: DateTime<Utc>) -> AppError {
    AppError::new(ErrorCode::AccountLocked).with_details(serde_json::json!({
        "locked_until": until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }))
}

/// Refuses an empty or over-long code.
pub(crate) fn require_code(code: &str) -> AppResult<()> {
    if code.trim().is_empty() {
        return Err(AppError::field("code", FieldIssue::Required));
    }
    if code.len() > 64 {
        return Err(AppError::field("code", FieldIssue::TooLong(64)));
    }
    Ok(())
}

/// Checks the second step of a sign-in: a TOTP or backup code of `user_id`'s enabled factor,
/// counted like [`check_code`]. `MFA_NOT_ENABLED` when MFA was turned off meanwhile.
pub(crate) async fn check_second_factor(
    txn: &impl ConnectionTrait,
    state: &AppState,
    ctx: &RequestContext,
    user_id: Uuid,
    email: &str,
    code: &str,
) -> AppResult<CodeKind> {
    let f = factor_of(txn, user_id).await?.filter(|f| f.enabled).ok_or(ErrorCode::MfaNotEnabled)?;
    check_code(txn, state, ctx, &f, email, code, false).await
}

/// Confirms a pending setup with a TOTP code and turns MFA on (`verifyMfa` with a bearer).
pub(crate) async fn confirm_setup(state: &AppState, ctx: &RequestContext, code: &str) -> AppResult<()> {
    let actor = ctx.require_user()?;
    crate::services::sessions::require_recent_auth(state, ctx).await?;
    let mut w = Write::begin(state, ctx).await?;
    let f = factor_of(w.tx(), actor.user_id).await?.ok_or(ErrorCode::MfaNotEnabled)?;
    if f.enabled {
        return Err(ErrorCode::MfaAlreadyEnabled.into());
    }
    let checked = check_code(w.tx(), state, ctx, &f, &actor.email, code, true).await;
    if let Err(e) = checked {
        w.rollback().await?;
        return Err(e);
    }
    let now = Utc::now();
    mfa_factor::Entity::update_many()
        .col_expr(mfa_factor::Column::Enabled, Expr::value(true))
        .col_expr(mfa_factor::Column::EnabledAt, Expr::value(now))
        .filter(mfa_factor::Column::UserId.eq(actor.user_id))
        .exec(w.tx())
        .await?;
    w.record(Change {
        event: EventType::MfaEnabled,
        target: Some(("user", actor.user_id.to_string())),
        subject_user: Some(actor.user_id),
        acting_user: None,
        organization: None,
        data: serde_json::json!({"user_id": actor.user_id, "method": "totp"}),
    })
    .await?;
    w.commit().await?;
    Ok(())
}

/// Turns MFA off; needs a recent authentication (`REAUTH_REQUIRED`) and the password or a
/// current code (TOTP or backup).
pub async fn disable(
    state: &AppState,
    ctx: &RequestContext,
    password: Option<Password>,
    code: Option<&str>,
) -> AppResult<()> {
    let actor = ctx.require_user()?;
    if password.is_none() && code.is_none_or(|c| c.trim().is_empty()) {
        return Err(AppError::field("password", FieldIssue::Required).and_field("code", FieldIssue::Required));
    }
    crate::services::sessions::require_recent_auth(state, ctx).await?;
    let mut w = Write::begin(state, ctx).await?;
    let f = factor_of(w.tx(), actor.user_id).await?.filter(|f| f.enabled).ok_or(ErrorCode::MfaNotEnabled)?;
    let method = match (password, code) {
        (Some(p), _) => {
            let u =
                user::Entity::find_by_id(actor.user_id).one(w.tx()).await?.ok_or(ErrorCode::InvalidToken)?;
            // A stolen access token must not become a password oracle: failures count
            // towards the same per-user limit as wrong codes.
            let mut attempt = Attempt::begin(state, ctx.client_ip).await?;
            let key = format!("user:{}", actor.user_id);
            attempt.reserve(&state.mfa_lockouts, key).await.map_err(mfa_locked)?;
            let verified = state.passwords.verify(&p, u.password_hash.as_deref()).await?;
            if !verified.ok {
                return Err(match attempt.locks_on_failure() {
                    Some(until) => mfa_locked(until),
                    None => ErrorCode::InvalidCredentials.into(),
                });
            }
            attempt.succeeded(state).await;
            "password"
        }
        (None, Some(c)) => {
            require_code(c)?;
            match check_code(w.tx(), state, ctx, &f, &actor.email, c, false).await {
                Ok(k) => k.as_str(),
                Err(e) => {
                    w.rollback().await?;
                    return Err(e);
                }
            }
        }
        (None, None) => unreachable!("checked above"),
    };
    mfa_factor::Entity::delete_by_id(actor.user_id).exec(w.tx()).await?;
    backup_code::Entity::delete_many()
        .filter(backup_code::Column::UserId.eq(actor.user_id))
        .exec(w.tx())
        .await?;
    w.record(Change {
        event: EventType::MfaDisabled,
        target: Some(("user", actor.user_id.to_string())),
        subject_user: Some(actor.user_id),
        acting_user: None,
        organization: None,
        data: serde_json::json!({"user_id": actor.user_id, "confirmed_with": method}),
    })
    .await?;
    w.commit().await?;
    Ok(())
}

/// Replaces every backup code; needs a fresh factor (a current TOTP or an unused backup code).
pub async fn regenerate_backup_codes(
    state: &AppState,
    ctx: &RequestContext,
    code: &str,
) -> AppResult<Vec<String>> {
    let actor = ctx.require_user()?;
    require_code(code)?;
    let mut w = Write::begin(state, ctx).await?;
    let f = factor_of(w.tx(), actor.user_id).await?.filter(|f| f.enabled).ok_or(ErrorCode::MfaNotEnabled)?;
    let kind = match check_code(w.tx(), state, ctx, &f, &actor.email, code, false).await {
        Ok(k) => k,
        Err(e) => {
            w.rollback().await?;
            return Err(e);
        }
    };
    let codes = replace_backup_codes(w.tx(), state, actor.user_id).await?;
    w.record(
        Change {
            event: EventType::BackupCodesRegenerated,
            target: Some(("user", actor.user_id.to_string())),
            subject_user: Some(actor.user_id),
            acting_user: None,
            organization: None,
            data: serde_json::json!({"user_id": actor.user_id, "count": codes.len(), "confirmed_with": kind.as_str()}),
        },
    )
    .await?;
    w.commit().await?;
    Ok(codes)
}

/// How many backup codes remain (codes themselves are never shown again).
pub async fn backup_codes_status(state: &AppState, ctx: &RequestContext) -> AppResult<BackupCodesStatus> {
    let actor = ctx.require_user()?;
    if !is_enabled(&state.db, actor.user_id).await? {
        return Err(ErrorCode::MfaNotEnabled.into());
    }
    let all = backup_code::Entity::find()
        .filter(backup_code::Column::UserId.eq(actor.user_id))
        .all(&state.db)
        .await?;
    Ok(BackupCodesStatus {
        remaining: all.iter().filter(|c| c.used_at.is_none()).count() as u64,
        total: all.len() as u64,
        generated_at: all.iter().map(|c| c.created_at).max(),
    })
}

/// The caller's MFA status.
pub async fn status(state: &AppState, ctx: &RequestContext) -> AppResult<MfaStatus> {
    let actor = ctx.require_user()?;
    let f = factor_of(&state.db, actor.user_id).await?;
    let remaining = match &f {
        Some(f) if f.enabled => {
            backup_code::Entity::find()
                .filter(backup_code::Column::UserId.eq(actor.user_id))
                .filter(backup_code::Column::UsedAt.is_null())
                .count(&state.db)
                .await?
        }
        _ => 0,
    };
    let passkeys =
        passkey::Entity::find().filter(passkey::Column::UserId.eq(actor.user_id)).count(&state.db).await?;
    Ok(MfaStatus {
        enabled: f.as_ref().is_some_and(|f| f.enabled),
        pending: f.as_ref().is_some_and(|f| !f.enabled),
        enabled_at: f.and_then(|f| f.enabled_at),
        backup_codes_remaining: remaining,
        passkeys,
    })
}
