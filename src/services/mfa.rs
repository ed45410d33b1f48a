//! Second factors: TOTP (RFC 6238) with backup codes, MFA status, and the MFA token that links
//! the password step of a sign-in to its second step.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, Builder, Secret as TotpSecret, Totp};
use uuid::Uuid;

use entities::{backup_code, mfa_factor, passkey, user};

use crate::context::RequestContext;
use crate::domain::{EventType, Password};
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::security::secrets::{constant_time_eq, random_token, sha256_hex};
use crate::services::audit::{self, Change};
use crate::services::auth::Authenticated;
use crate::services::lockout::FailureOutcome;
use crate::services::sessions;
use crate::state::AppState;
use crate::storage::{CeremonyKind, begin_write};

/// How many backup codes a user holds.
pub const BACKUP_CODE_COUNT: usize = 10;
/// TOTP secret length: 160 bits (RFC 4226 recommends it; clients refuse under 112 bits).
const SECRET_BYTES: usize = 20;
/// The issuer shown by authenticator apps.
const ISSUER: &str = "Janua";
/// Backup-code alphabet: no 0/O, 1/I/L, so codes survive being read aloud or retyped.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters of a backup code (2 groups of 5): 31^10 ≈ 2^49.5.
const CODE_LEN: usize = 10;

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

/// The outcome of `verifyMfa`: setup confirmed, or a sign-in completed.
#[derive(Debug)]
pub enum Verified {
    Enabled,
    SignedIn(Box<Authenticated>),
}

/// Which second factor a code was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    Totp,
    BackupCode,
}

impl CodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::BackupCode => "backup_code",
        }
    }
}

/// What the password step of a sign-in hands out when a second factor is needed.
#[derive(Clone)]
pub struct MfaChallenge {
    pub mfa_token: String,
    pub methods: Vec<String>,
    pub expires_in: i64,
}

impl std::fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallenge")
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

/// What the ceremony store keeps for an MFA token (under the SHA-256 of the token).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MfaTicket {
    pub user_id: Uuid,
    pub email: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Extra time an expired ticket is remembered, so its holder hears `TOKEN_EXPIRED`.
const EXPIRED_GRACE: u64 = 120;

/// Issues a short-lived, single-use MFA token bound to `u` (after a correct password).
pub(crate) async fn issue_mfa_token(state: &AppState, u: &user::Model) -> AppResult<MfaChallenge> {
    let mut methods = vec!["totp".to_owned(), "backup_code".to_owned()];
    let passkeys = passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(u.id))
        .count(&state.db)
        .await?;
    if passkeys > 0 {
        methods.push("passkey".to_owned());
    }
    let ttl = state.config.mfa_token_ttl;
    let token = format!("mfa_{}", random_token(32));
    let ticket = MfaTicket {
        user_id: u.id,
        email: u.email.clone(),
        expires_at: Utc::now().timestamp() + ttl as i64,
    };
    put_ticket(state, &token, &ticket).await?;
    Ok(MfaChallenge {
        mfa_token: token,
        methods,
        expires_in: ttl as i64,
    })
}

async fn put_ticket(state: &AppState, token: &str, t: &MfaTicket) -> AppResult<()> {
    let left = (t.expires_at - Utc::now().timestamp()).max(0) as u64;
    let value = serde_json::to_string(t).map_err(AppError::internal)?;
    state
        .ceremonies
        .put(
            CeremonyKind::MfaToken,
            &sha256_hex(token),
            value,
            StdDuration::from_secs(left + EXPIRED_GRACE),
        )
        .await
        .map_err(AppError::internal)
}

/// Takes (consumes) an MFA token: `INVALID_TOKEN` when unknown or used, `TOKEN_EXPIRED` when old.
pub(crate) async fn take_mfa_token(state: &AppState, token: &str) -> AppResult<MfaTicket> {
    if token.is_empty() || token.len() > 200 {
        return Err(ErrorCode::InvalidToken.into());
    }
    let raw = state
        .ceremonies
        .take(CeremonyKind::MfaToken, &sha256_hex(token))
        .await
        .map_err(AppError::internal)?
        .ok_or(ErrorCode::InvalidToken)?;
    let t: MfaTicket = serde_json::from_str(&raw).map_err(AppError::internal)?;
    if t.expires_at <= Utc::now().timestamp() {
        return Err(ErrorCode::TokenExpired.into());
    }
    Ok(t)
}

/// Puts a taken token back (after a wrong code, while attempts remain).
pub(crate) async fn restore_mfa_token(state: &AppState, token: &str, t: &MfaTicket) -> AppResult<()> {
    put_ticket(state, token, t).await
}

/// Reads an MFA token without consuming it (to bind a passkey ceremony to it).
pub(crate) async fn peek_mfa_token(state: &AppState, token: &str) -> AppResult<MfaTicket> {
    let t = take_mfa_token(state, token).await?;
    restore_mfa_token(state, token, &t).await?;
    Ok(t)
}

fn totp_for(secret: Vec<u8>, email: &str) -> AppResult<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(TotpSecret::from(secret))
        .with_issuer(Some(ISSUER))
        .with_account_name(email)
        .build()
        .map_err(AppError::internal)
}

fn new_backup_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..BACKUP_CODE_COUNT)
        .map(|_| {
            let raw: String = (0..CODE_LEN)
                .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect()
}

/// A backup code as stored: upper-case, without dashes or spaces.
fn normalize_backup_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn hash_backup_code(state: &AppState, normalized: &str) -> String {
    state.master_key.keyed_hash("backup-code", normalized.as_bytes())
}

async fn replace_backup_codes(
    txn: &impl ConnectionTrait,
    state: &AppState,
    user_id: Uuid,
) -> AppResult<Vec<String>> {
    backup_code::Entity::delete_many()
        .filter(backup_code::Column::UserId.eq(user_id))
        .exec(txn)
        .await?;
    let codes = new_backup_codes();
    let now = Utc::now();
    let rows = codes.iter().map(|c| backup_code::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        code_hash: Set(hash_backup_code(state, &normalize_backup_code(c))),
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
/// confirms it.
pub async fn setup(state: &AppState, ctx: &RequestContext) -> AppResult<MfaSetup> {
    let actor = ctx.require_user()?;
    let txn = begin_write(&state.db).await?;
    if let Some(f) = factor_of(&txn, actor.user_id).await? {
        if f.enabled {
            return Err(ErrorCode::MfaAlreadyEnabled.into());
        }
        mfa_factor::Entity::delete_by_id(actor.user_id).exec(&txn).await?;
    }
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rng().fill(&mut secret[..]);
    let totp = totp_for(secret.clone(), &actor.email)?;
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
    .insert(&txn)
    .await?;
    let backup_codes = replace_backup_codes(&txn, state, actor.user_id).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            event: EventType::MfaSetupStarted,
            target: Some(("user", actor.user_id.to_string())),
            subject_user: Some(actor.user_id),
            acting_user: None,
            data: serde_json::json!({"user_id": actor.user_id, "method": "totp"}),
        },
    )
    .await?;
    txn.commit().await?;
    state.events_committed();
    Ok(MfaSetup {
        secret: TotpSecret::from(secret).to_base32(),
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
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(false);
    }
    let secret = state
        .master_key
        .open(&f.secret_sealed)
        .map_err(AppError::internal)?;
    let totp = totp_for(secret, email)?;
    let now_step = Utc::now().timestamp() as u64 / 30;
    // ±1 step; compare every candidate so the time taken does not depend on which matched.
    let mut matched = None;
    for step in now_step.saturating_sub(1)..=now_step + 1 {
        let expected = totp.generate(step * 30).to_string();
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) && matched.is_none() {
            matched = Some(step as i64);
        }
    }
    let Some(step) = matched else {
        return Ok(false);
    };
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
    let normalized = normalize_backup_code(code);
    if normalized.len() != CODE_LEN {
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
/// too many. `totp_only` refuses backup codes (setup confirmation).
async fn check_code(
    txn: &impl ConnectionTrait,
    state: &AppState,
    f: &mfa_factor::Model,
    email: &str,
    code: &str,
    totp_only: bool,
) -> AppResult<CodeKind> {
    let key = format!("user:{}", f.user_id);
    if let Some(until) = state.mfa_lockouts.locked_until(&key) {
        return Err(mfa_locked(until));
    }
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
            state.mfa_lockouts.record_success(&key);
            Ok(k)
        }
        None => match state.mfa_lockouts.record_failure(&key) {
            FailureOutcome::LockedUntil(until) => Err(mfa_locked(until)),
            FailureOutcome::Counted => Err(ErrorCode::InvalidMfaCode.into()),
        },
    }
}

fn mfa_locked(until: DateTime<Utc>) -> AppError {
    AppError::new(ErrorCode::AccountLocked).with_details(serde_json::json!({
        "locked_until": until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }))
}

fn require_code(code: &str) -> AppResult<()> {
    if code.trim().is_empty() {
        return Err(AppError::field("code", FieldIssue::Required));
    }
    if code.len() > 64 {
        return Err(AppError::field("code", FieldIssue::TooLong(64)));
    }
    Ok(())
}

/// `verifyMfa`: with an MFA token, finishes a sign-in with a TOTP or backup code; otherwise
/// (bearer) confirms a pending setup with a TOTP code and turns MFA on.
pub async fn verify(
    state: &AppState,
    ctx: &RequestContext,
    code: &str,
    mfa_token: Option<&str>,
) -> AppResult<Verified> {
    require_code(code)?;
    match mfa_token {
        Some(token) => complete_sign_in(state, ctx, token, code)
            .await
            .map(|a| Verified::SignedIn(Box::new(a))),
        None => confirm_setup(state, ctx, code).await.map(|()| Verified::Enabled),
    }
}

async fn confirm_setup(state: &AppState, ctx: &RequestContext, code: &str) -> AppResult<()> {
    let actor = ctx.require_user()?;
    let txn = begin_write(&state.db).await?;
    let f = factor_of(&txn, actor.user_id)
        .await?
        .ok_or(ErrorCode::MfaNotEnabled)?;
    if f.enabled {
        return Err(ErrorCode::MfaAlreadyEnabled.into());
    }
    let checked = check_code(&txn, state, &f, &actor.email, code, true).await;
    if let Err(e) = checked {
        txn.rollback().await?;
        return Err(e);
    }
    let now = Utc::now();
    mfa_factor::Entity::update_many()
        .col_expr(mfa_factor::Column::Enabled, Expr::value(true))
        .col_expr(mfa_factor::Column::EnabledAt, Expr::value(now))
        .filter(mfa_factor::Column::UserId.eq(actor.user_id))
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        ctx,
        Change {
            event: EventType::MfaEnabled,
            target: Some(("user", actor.user_id.to_string())),
            subject_user: Some(actor.user_id),
            acting_user: None,
            data: serde_json::json!({"user_id": actor.user_id, "method": "totp"}),
        },
    )
    .await?;
    txn.commit().await?;
    state.events_committed();
    Ok(())
}

async fn complete_sign_in(
    state: &AppState,
    ctx: &RequestContext,
    token: &str,
    code: &str,
) -> AppResult<Authenticated> {
    let ticket = take_mfa_token(state, token).await?;
    let txn = begin_write(&state.db).await?;
    let f = factor_of(&txn, ticket.user_id)
        .await?
        .filter(|f| f.enabled)
        .ok_or(ErrorCode::MfaNotEnabled)?;
    let kind = match check_code(&txn, state, &f, &ticket.email, code, false).await {
        Ok(k) => k,
        Err(e) => {
            txn.rollback().await?;
            if e.code == ErrorCode::InvalidMfaCode {
                // Attempts remain: the token stays usable until it expires.
                restore_mfa_token(state, token, &ticket).await?;
            }
            return Err(e);
        }
    };
    let out = finish_second_factor(&txn, state, ctx, ticket.user_id, kind.as_str()).await?;
    txn.commit().await?;
    state.events_committed();
    Ok(out)
}

/// Opens the session of a sign-in whose second factor was just verified (`password+mfa`).
pub(crate) async fn finish_second_factor(
    txn: &impl ConnectionTrait,
    state: &AppState,
    ctx: &RequestContext,
    user_id: Uuid,
    factor: &str,
) -> AppResult<Authenticated> {
    let u = user::Entity::find_by_id(user_id)
        .one(txn)
        .await?
        .ok_or(ErrorCode::InvalidToken)?;
    if u.status != "active" {
        return Err(ErrorCode::AccountDisabled.into());
    }
    let mut am: user::ActiveModel = u.into();
    am.last_signin_at = Set(Some(Utc::now()));
    let u = am.update(txn).await?;
    audit::record(
        txn,
        ctx,
        Change {
            event: EventType::UserSignedIn,
            target: Some(("user", u.id.to_string())),
            subject_user: Some(u.id),
            acting_user: Some((Some(u.id), u.email.clone())),
            data: serde_json::json!({"user_id": u.id, "method": "password+mfa", "factor": factor}),
        },
    )
    .await?;
    let tokens = sessions::open_session(txn, state, ctx, u.id, &u.email, "password+mfa").await?;
    metrics::counter!("janua_signins_total", "outcome" => "success").increment(1);
    Ok(Authenticated {
        user: u.into(),
        tokens,
    })
}

/// Turns MFA off; needs the password or a current code (TOTP or backup).
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
    let txn = begin_write(&state.db).await?;
    let f = factor_of(&txn, actor.user_id)
        .await?
        .filter(|f| f.enabled)
        .ok_or(ErrorCode::MfaNotEnabled)?;
    let method = match (password, code) {
        (Some(p), _) => {
            let u = user::Entity::find_by_id(actor.user_id)
                .one(&txn)
                .await?
                .ok_or(ErrorCode::InvalidToken)?;
            // A stolen access token must not become a password oracle: failures count
            // towards the same per-user limit as wrong codes.
            let key = format!("user:{}", actor.user_id);
            if let Some(until) = state.mfa_lockouts.locked_until(&key) {
                return Err(mfa_locked(until));
            }
            let verified = state.passwords.verify(&p, u.password_hash.as_deref()).await?;
            if !verified.ok {
                return Err(match state.mfa_lockouts.record_failure(&key) {
                    FailureOutcome::LockedUntil(until) => mfa_locked(until),
                    FailureOutcome::Counted => ErrorCode::InvalidCredentials.into(),
                });
            }
            state.mfa_lockouts.record_success(&key);
            "password"
        }
        (None, Some(c)) => {
            require_code(c)?;
            match check_code(&txn, state, &f, &actor.email, c, false).await {
                Ok(k) => k.as_str(),
                Err(e) => {
                    txn.rollback().await?;
                    return Err(e);
                }
            }
        }
        (None, None) => unreachable!("checked above"),
    };
    mfa_factor::Entity::delete_by_id(actor.user_id).exec(&txn).await?;
    backup_code::Entity::delete_many()
        .filter(backup_code::Column::UserId.eq(actor.user_id))
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        ctx,
        Change {
            event: EventType::MfaDisabled,
            target: Some(("user", actor.user_id.to_string())),
            subject_user: Some(actor.user_id),
            acting_user: None,
            data: serde_json::json!({"user_id": actor.user_id, "confirmed_with": method}),
        },
    )
    .await?;
    txn.commit().await?;
    state.events_committed();
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
    let txn = begin_write(&state.db).await?;
    let f = factor_of(&txn, actor.user_id)
        .await?
        .filter(|f| f.enabled)
        .ok_or(ErrorCode::MfaNotEnabled)?;
    let kind = match check_code(&txn, state, &f, &actor.email, code, false).await {
        Ok(k) => k,
        Err(e) => {
            txn.rollback().await?;
            return Err(e);
        }
    };
    let codes = replace_backup_codes(&txn, state, actor.user_id).await?;
    audit::record(
        &txn,
        ctx,
        Change {
            event: EventType::BackupCodesRegenerated,
            target: Some(("user", actor.user_id.to_string())),
            subject_user: Some(actor.user_id),
            acting_user: None,
            data: serde_json::json!({"user_id": actor.user_id, "count": codes.len(), "confirmed_with": kind.as_str()}),
        },
    )
    .await?;
    txn.commit().await?;
    state.events_committed();
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
    let passkeys = passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(actor.user_id))
        .count(&state.db)
        .await?;
    Ok(MfaStatus {
        enabled: f.as_ref().is_some_and(|f| f.enabled),
        pending: f.as_ref().is_some_and(|f| !f.enabled),
        enabled_at: f.and_then(|f| f.enabled_at),
        backup_codes_remaining: remaining,
        passkeys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    /// A PNG data URL is what the API promises for `qr_code`.
    fn is_png_data_url(s: &str) -> bool {
        s.strip_prefix("data:image/png;base64,")
            .is_some_and(|b| STANDARD.decode(b).is_ok_and(|png| png.starts_with(b"\x89PNG")))
    }

    #[test]
    fn backup_codes_are_distinct_and_normalize() {
        let codes = new_backup_codes();
        assert_eq!(codes.len(), BACKUP_CODE_COUNT);
        let mut set: Vec<_> = codes.iter().map(|c| normalize_backup_code(c)).collect();
        set.dedup();
        assert_eq!(set.len(), BACKUP_CODE_COUNT);
        assert_eq!(normalize_backup_code("abcde-fghjk"), "ABCDEFGHJK");
        assert_eq!(normalize_backup_code("ABCDEFGHJK"), "ABCDEFGHJK");
    }

    #[test]
    fn totp_uri_names_issuer_and_account() {
        let t = totp_for(vec![7u8; SECRET_BYTES], "ada@example.com").unwrap();
        let uri = t.to_url().unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Janua:ada%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains("issuer=Janua"));
        assert!(is_png_data_url(&format!(
            "data:image/png;base64,{}",
            t.to_qr_base64().unwrap()
        )));
    }
}
