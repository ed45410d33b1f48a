//! `mfaStatus`, `backupCodes`, `setupMfa`, `verifyMfa`, `disableMfa`, `regenerateBackupCodes`.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::parts;
use super::types::{ActionPayload, Tokens, User};
use crate::domain::Password;
use crate::services::mfa::{self, BackupCodesStatus as BackupCodesView, MfaStatus as MfaStatusView};
use crate::services::sign_in::{self, Verified};

/// Whether two-factor authentication is on for the caller.
#[derive(SimpleObject, Clone)]
pub struct MfaStatus {
    pub enabled: bool,
    /// A TOTP setup was started and awaits its first code.
    pub pending: bool,
    pub enabled_at: Option<DateTime<Utc>>,
    pub backup_codes_remaining: u64,
    pub passkey_count: u64,
}

impl From<MfaStatusView> for MfaStatus {
    fn from(s: MfaStatusView) -> Self {
        Self {
            enabled: s.enabled,
            pending: s.pending,
            enabled_at: s.enabled_at,
            backup_codes_remaining: s.backup_codes_remaining,
            passkey_count: s.passkeys,
        }
    }
}

/// How many backup codes remain (the codes are shown only when generated).
#[derive(SimpleObject, Clone)]
pub struct BackupCodesStatus {
    pub remaining: u64,
    pub total: u64,
    pub generated_at: Option<DateTime<Utc>>,
}

impl From<BackupCodesView> for BackupCodesStatus {
    fn from(s: BackupCodesView) -> Self {
        Self { remaining: s.remaining, total: s.total, generated_at: s.generated_at }
    }
}

/// A new TOTP secret and backup codes, shown once. MFA turns on when `verifyMfa` gets a code.
#[derive(SimpleObject, Clone)]
pub struct MfaSetupPayload {
    /// The secret in base32, for manual entry.
    pub secret: String,
    /// `otpauth://totp/Janua:<email>?secret=…&issuer=Janua…`
    pub otpauth_uri: String,
    /// A `data:image/png;base64,…` QR code of `otpauthUri`.
    pub qr_code: String,
    pub backup_codes: Vec<String>,
}

/// Payload of `verifyMfa`: `enabled` after a setup confirmation; `user` and `tokens` after a
/// sign-in's second step.
#[derive(SimpleObject, Clone)]
pub struct VerifyMfaPayload {
    /// `true` when this call turned MFA on; null after a sign-in's second step.
    pub enabled: Option<bool>,
    pub user: Option<User>,
    pub tokens: Option<Tokens>,
}

/// New backup codes, shown once.
#[derive(SimpleObject, Clone)]
pub struct BackupCodesPayload {
    pub backup_codes: Vec<String>,
}

/// Input of `verifyMfa`.
#[derive(InputObject)]
pub struct VerifyMfaInput {
    /// A TOTP code, or (with `mfaToken`) a backup code.
    pub code: String,
    /// The token `signin` answered; without it, the code confirms the caller's pending setup.
    pub mfa_token: Option<String>,
}

/// Input of `disableMfa`: the password or a current code.
#[derive(InputObject)]
pub struct DisableMfaInput {
    pub password: Option<String>,
    pub code: Option<String>,
}

/// Input of `regenerateBackupCodes`: a fresh factor.
#[derive(InputObject)]
pub struct RegenerateBackupCodesInput {
    /// A current TOTP code or an unused backup code.
    pub code: String,
}

/// MFA queries.
#[derive(Default)]
pub struct MfaQuery;

#[Object]
impl MfaQuery {
    /// The caller's MFA status.
    async fn mfa_status(&self, ctx: &Context<'_>) -> Result<MfaStatus> {
        let (state, rc) = parts(ctx);
        Ok(mfa::status(state, rc).await?.into())
    }

    /// How many of the caller's backup codes remain.
    async fn backup_codes(&self, ctx: &Context<'_>) -> Result<BackupCodesStatus> {
        let (state, rc) = parts(ctx);
        Ok(mfa::backup_codes_status(state, rc).await?.into())
    }
}

/// MFA mutations.
#[derive(Default)]
pub struct MfaMutation;

#[Object]
impl MfaMutation {
    /// Starts TOTP setup: a secret, its `otpauth://` URI and QR code, and 10 backup codes.
    async fn setup_mfa(&self, ctx: &Context<'_>) -> Result<MfaSetupPayload> {
        let (state, rc) = parts(ctx);
        let s = mfa::setup(state, rc).await?;
        Ok(MfaSetupPayload {
            secret: s.secret,
            otpauth_uri: s.otpauth_uri,
            qr_code: s.qr_code,
            backup_codes: s.backup_codes,
        })
    }

    /// Confirms setup (bearer + TOTP code), or finishes a sign-in (`mfaToken` + TOTP or backup code).
    async fn verify_mfa(&self, ctx: &Context<'_>, input: VerifyMfaInput) -> Result<VerifyMfaPayload> {
        let (state, rc) = parts(ctx);
        Ok(match sign_in::verify_mfa(state, rc, &input.code, input.mfa_token.as_deref()).await? {
            Verified::Enabled => VerifyMfaPayload { enabled: Some(true), user: None, tokens: None },
            Verified::SignedIn(a) => {
                VerifyMfaPayload { enabled: None, user: Some(a.user.into()), tokens: Some(a.tokens.into()) }
            }
        })
    }

    /// Turns MFA off, confirmed by the password or a current code.
    async fn disable_mfa(&self, ctx: &Context<'_>, input: DisableMfaInput) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        let password = input.password.map(Password::new);
        mfa::disable(state, rc, password, input.code.as_deref()).await?;
        Ok(ActionPayload { success: true })
    }

    /// Replaces every backup code, confirmed by a current code.
    async fn regenerate_backup_codes(
        &self,
        ctx: &Context<'_>,
        input: RegenerateBackupCodesInput,
    ) -> Result<BackupCodesPayload> {
        let (state, rc) = parts(ctx);
        let backup_codes = mfa::regenerate_backup_codes(state, rc, &input.code).await?;
        Ok(BackupCodesPayload { backup_codes })
    }
}
