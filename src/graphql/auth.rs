//! `me`, `signup`, `signin`, `refresh`, `reauthenticate`, `signout`.

use async_graphql::{Context, Object, Result};

use super::parts;
use super::types::{
    ActionPayload, AuthPayload, ReauthenticateInput, ReauthenticatePayload, RefreshInput, RefreshPayload,
    SigninInput, SigninPayload, SignupInput, User,
};
use crate::domain::Password;
use crate::services::{auth, sign_in, users};

/// Queries about the caller.
#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let (state, rc) = parts(ctx);
        Ok(users::me(state, rc).await?.into())
    }
}

/// Sign-up, sign-in, refresh and sign-out.
#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates an account and signs it in.
    async fn signup(&self, ctx: &Context<'_>, input: SignupInput) -> Result<AuthPayload> {
        let (state, rc) = parts(ctx);
        let input = auth::SignUp {
            email: input.email,
            password: Password::new(input.password),
            name: input.name,
            first_name: input.first_name,
            last_name: input.last_name,
            username: input.username,
            locale: input.locale,
        };
        Ok(auth::sign_up(state, rc, input).await?.into())
    }

    /// Signs in with email and password. With MFA on, answers `mfaRequired` and an `mfaToken`
    /// instead of tokens; finish with `verifyMfa` or `authenticatePasskey`.
    async fn signin(&self, ctx: &Context<'_>, input: SigninInput) -> Result<SigninPayload> {
        let (state, rc) = parts(ctx);
        Ok(sign_in::sign_in(state, rc, &input.email, Password::new(input.password)).await?.into())
    }

    /// Exchanges a refresh token for new tokens (the old refresh token stops working).
    async fn refresh(&self, ctx: &Context<'_>, input: RefreshInput) -> Result<RefreshPayload> {
        let (state, rc) = parts(ctx);
        let tokens = auth::refresh(state, rc, &input.refresh_token).await?;
        Ok(RefreshPayload { tokens: tokens.into() })
    }

    /// Confirms the password on the current session, so sensitive changes (passkeys, MFA on or
    /// off, deleting one's account, API keys) are allowed again for the re-authentication window.
    async fn reauthenticate(
        &self,
        ctx: &Context<'_>,
        input: ReauthenticateInput,
    ) -> Result<ReauthenticatePayload> {
        let (state, rc) = parts(ctx);
        let at = auth::reauthenticate(state, rc, Password::new(input.password)).await?;
        Ok(ReauthenticatePayload { authenticated_at: at })
    }

    /// Revokes the current session.
    async fn signout(&self, ctx: &Context<'_>) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        auth::sign_out(state, rc).await?;
        Ok(ActionPayload { success: true })
    }
}
