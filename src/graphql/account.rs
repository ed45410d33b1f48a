//! Account mail: `verifyEmail`, `resendVerificationEmail`, `forgotPassword`, `resetPassword`,
//! `changePassword`, `requestMagicLink`, `verifyMagicLink`.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};

use super::parts;
use super::types::{ActionPayload, SigninPayload, Tokens, User};
use crate::domain::Password;
use crate::services::{email_verification, magic_links, passwords};

/// Input of `verifyEmail`.
#[derive(InputObject)]
pub struct VerifyEmailInput {
    /// The token of a verification or email-change mail.
    pub token: String,
}

/// Payload of `verifyEmail`: the user, verified (with the new address, for an email change).
#[derive(SimpleObject, Clone)]
pub struct VerifyEmailPayload {
    pub user: User,
}

/// Input of `forgotPassword`.
#[derive(InputObject)]
pub struct ForgotPasswordInput {
    pub email: String,
}

/// Input of `resetPassword`.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The token of a password-reset mail.
    pub token: String,
    pub new_password: String,
}

/// Input of `changePassword`.
#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub current_password: String,
    pub new_password: String,
}

/// Input of `requestMagicLink`.
#[derive(InputObject)]
pub struct RequestMagicLinkInput {
    pub email: String,
    /// Where the client goes after signing in; only a URL on Janua's public origin.
    pub redirect_url: Option<String>,
}

/// Input of `verifyMagicLink`.
#[derive(InputObject)]
pub struct VerifyMagicLinkInput {
    /// The token of a magic-link mail.
    pub token: String,
}

/// Payload of `verifyMagicLink`: as `signin` (`user` and `tokens`, or `mfaRequired` with an
/// `mfaToken`), with the `redirectUrl` the link was requested with.
#[derive(SimpleObject, Clone)]
pub struct MagicLinkPayload {
    pub user: Option<User>,
    pub tokens: Option<Tokens>,
    pub mfa_required: bool,
    /// Short-lived, single-use; present only when `mfaRequired`.
    pub mfa_token: Option<String>,
    /// `totp`, `backup_code`, `passkey`; present only when `mfaRequired`.
    pub methods: Option<Vec<String>>,
    pub redirect_url: Option<String>,
}

/// Mutations of the mailed account flows.
#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Spends the token of a verification mail (the address is verified) or of an email-change
    /// mail (the new address replaces the old one).
    async fn verify_email(&self, ctx: &Context<'_>, input: VerifyEmailInput) -> Result<VerifyEmailPayload> {
        let (state, rc) = parts(ctx);
        Ok(VerifyEmailPayload {
            user: email_verification::verify_email(state, rc, &input.token).await?.into(),
        })
    }

    /// Mails the signed-in user a new verification link (earlier links stop working).
    async fn resend_verification_email(&self, ctx: &Context<'_>) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        email_verification::resend_verification(state, rc).await?;
        Ok(ActionPayload { success: true })
    }

    /// Mails a password-reset link when the address has an account; the same answer either way.
    async fn forgot_password(&self, ctx: &Context<'_>, input: ForgotPasswordInput) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        passwords::forgot_password(state, rc, &input.email).await?;
        Ok(ActionPayload { success: true })
    }

    /// Sets a new password with a reset token; every session of the account is revoked.
    async fn reset_password(&self, ctx: &Context<'_>, input: ResetPasswordInput) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        passwords::reset_password(state, rc, &input.token, Password::new(input.new_password)).await?;
        Ok(ActionPayload { success: true })
    }

    /// Changes the caller's password (the current one is checked like a sign-in); the caller's
    /// other sessions are revoked.
    async fn change_password(&self, ctx: &Context<'_>, input: ChangePasswordInput) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        let (current, new) = (Password::new(input.current_password), Password::new(input.new_password));
        passwords::change_password(state, rc, current, new).await?;
        Ok(ActionPayload { success: true })
    }

    /// Mails a sign-in link when the address has an account; the same answer either way.
    async fn request_magic_link(
        &self,
        ctx: &Context<'_>,
        input: RequestMagicLinkInput,
    ) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        magic_links::request_magic_link(state, rc, &input.email, input.redirect_url).await?;
        Ok(ActionPayload { success: true })
    }

    /// Signs in with a magic-link token (single use, 15 minutes). With MFA on, answers
    /// `mfaRequired` and an `mfaToken`; finish with `verifyMfa` or `authenticatePasskey`.
    async fn verify_magic_link(
        &self,
        ctx: &Context<'_>,
        input: VerifyMagicLinkInput,
    ) -> Result<MagicLinkPayload> {
        let (state, rc) = parts(ctx);
        let (outcome, redirect_url) = magic_links::verify_magic_link(state, rc, &input.token).await?;
        let p = SigninPayload::from(outcome);
        Ok(MagicLinkPayload {
            user: p.user,
            tokens: p.tokens,
            mfa_required: p.mfa_required,
            mfa_token: p.mfa_token,
            methods: p.methods,
            redirect_url,
        })
    }
}
