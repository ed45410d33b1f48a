//! The MFA token: what links the password step of a sign-in to its second step. Short-lived,
//! single-use, bound to the user; kept in the ceremony store under the SHA-256 of the token, so a
//! dump of the store does not hand out usable tokens.

use std::time::Duration as StdDuration;

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use entities::{passkey, user};

use crate::error::{AppError, AppResult, ErrorCode};
use crate::security::secrets::{random_token, sha256_hex};
use crate::state::AppState;
use crate::storage::CeremonyKind;

/// What the password step of a sign-in hands out when a second factor is needed.
#[derive(Clone)]
pub struct MfaChallenge {
    /// Sent back with the second factor; accepted once.
    pub mfa_token: String,
    /// `totp`, `backup_code`, and `passkey` when the user has one.
    pub methods: Vec<String>,
    /// Seconds the token stays valid.
    pub expires_in: i64,
}

impl std::fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallenge").field("methods", &self.methods).finish_non_exhaustive()
    }
}

/// What the ceremony store keeps for an MFA token (under the SHA-256 of the token).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MfaTicket {
    pub user_id: Uuid,
    pub email: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// An upgraded hash of the password the first step verified, written when the sign-in
    /// completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehash: Option<PendingRehash>,
    /// The first step, when it was not a password (`magic_link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
}

/// A password hash upgrade waiting for the second factor (a hash, never the password).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct PendingRehash {
    /// The new hash.
    pub hash: String,
    /// SHA-256 of the hash it replaces: a password changed meanwhile is not overwritten.
    pub replaces: String,
}

impl std::fmt::Debug for PendingRehash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingRehash(<redacted>)")
    }
}

/// Extra time an expired ticket is remembered, so its holder hears `TOKEN_EXPIRED`.
const EXPIRED_GRACE: u64 = 120;

/// Issues a short-lived, single-use MFA token bound to `u` (after a correct password), keeping
/// the password's pending hash upgrade with it.
pub(crate) async fn issue(
    state: &AppState,
    u: &user::Model,
    rehash: Option<PendingRehash>,
) -> AppResult<MfaChallenge> {
    issue_after(state, u, rehash, None).await
}

/// As [`issue`], after a first step named `first` (a magic link) instead of a password.
pub(crate) async fn issue_after(
    state: &AppState,
    u: &user::Model,
    rehash: Option<PendingRehash>,
    first: Option<&str>,
) -> AppResult<MfaChallenge> {
    let mut methods = vec!["totp".to_owned(), "backup_code".to_owned()];
    let passkeys = passkey::Entity::find().filter(passkey::Column::UserId.eq(u.id)).count(&state.db).await?;
    if passkeys > 0 {
        methods.push("passkey".to_owned());
    }
    let ttl = state.config.mfa_token_ttl;
    let token = format!("mfa_{}", random_token(32));
    let expires_at = Utc::now().timestamp() + ttl as i64;
    let ticket = MfaTicket {
        user_id: u.id,
        email: u.email.clone(),
        expires_at,
        rehash,
        first: first.map(str::to_owned),
    };
    put_ticket(state, &token, &ticket).await?;
    Ok(MfaChallenge { mfa_token: token, methods, expires_in: ttl as i64 })
}

async fn put_ticket(state: &AppState, token: &str, t: &MfaTicket) -> AppResult<()> {
    let left = (t.expires_at - Utc::now().timestamp()).max(0) as u64;
    let value = serde_json::to_string(t).map_err(AppError::internal)?;
    state
        .ceremonies
        .put(CeremonyKind::MfaToken, &sha256_hex(token), value, StdDuration::from_secs(left + EXPIRED_GRACE))
        .await
        .map_err(crate::storage::unavailable)
}

/// Takes (consumes) an MFA token: `INVALID_TOKEN` when unknown or used, `TOKEN_EXPIRED` when old.
pub(crate) async fn take(state: &AppState, token: &str) -> AppResult<MfaTicket> {
    if token.is_empty() || token.len() > 200 {
        return Err(ErrorCode::InvalidToken.into());
    }
    let raw = state
        .ceremonies
        .take(CeremonyKind::MfaToken, &sha256_hex(token))
        .await
        .map_err(crate::storage::unavailable)?
        .ok_or(ErrorCode::InvalidToken)?;
    let t: MfaTicket = serde_json::from_str(&raw).map_err(AppError::internal)?;
    if t.expires_at <= Utc::now().timestamp() {
        return Err(ErrorCode::TokenExpired.into());
    }
    Ok(t)
}

/// Puts a taken token back (after a wrong code, while attempts remain).
pub(crate) async fn restore(state: &AppState, token: &str, t: &MfaTicket) -> AppResult<()> {
    put_ticket(state, token, t).await
}

/// Reads an MFA token without consuming it (to bind a passkey ceremony to it).
pub(crate) async fn peek(state: &AppState, token: &str) -> AppResult<MfaTicket> {
    let t = take(state, token).await?;
    restore(state, token, &t).await?;
    Ok(t)
}
