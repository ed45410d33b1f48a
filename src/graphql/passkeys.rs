//! `passkeys`, `passkeyRegistrationOptions`, `registerPasskey`, `passkeyAuthenticationOptions`,
//! `authenticatePasskey`, `renamePasskey`, `deletePasskey`.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::parts;
use super::types::{ActionPayload, AuthPayload};
use crate::services::passkeys::{self, CeremonyOptions, PasskeyView};
use crate::services::sign_in;

/// A registered passkey (no key material).
#[derive(SimpleObject, Clone)]
pub struct Passkey {
    pub id: ID,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// `usb`, `nfc`, `ble`, `internal`, `hybrid`, as the authenticator reported.
    pub transports: Vec<String>,
    /// Whether the credential may be synced to other devices.
    pub backup_eligible: bool,
    /// Whether it is currently backed up (synced).
    pub backup_state: bool,
    /// Whether it can sign in without an email (a resident credential).
    pub discoverable: bool,
}

impl From<PasskeyView> for Passkey {
    fn from(p: PasskeyView) -> Self {
        Self {
            id: ID(p.id.to_string()),
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            transports: p.transports,
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
            discoverable: p.discoverable,
        }
    }
}

/// WebAuthn options for `navigator.credentials.create/get` (standard JSON, base64url binary
/// fields), and the ceremony id to send back with the authenticator's response.
#[derive(SimpleObject, Clone)]
pub struct PasskeyCeremony {
    pub ceremony_id: String,
    /// `{"publicKey": {…}}` as the WebAuthn JSON serialisation defines it.
    pub options: Json<serde_json::Value>,
}

impl From<CeremonyOptions> for PasskeyCeremony {
    fn from(c: CeremonyOptions) -> Self {
        Self { ceremony_id: c.ceremony_id, options: Json(c.options) }
    }
}

/// Input of `registerPasskey`.
#[derive(InputObject)]
pub struct RegisterPasskeyInput {
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.create`, as JSON.
    pub credential: Json<serde_json::Value>,
    pub name: Option<String>,
}

/// Input of `passkeyAuthenticationOptions`.
#[derive(InputObject, Default)]
pub struct PasskeyAuthenticationOptionsInput {
    /// Offer this user's passkeys; omitted → usernameless (discoverable credentials).
    pub email: Option<String>,
    /// The token `signin` answered, to use a passkey as the second factor.
    pub mfa_token: Option<String>,
}

/// Input of `authenticatePasskey`.
#[derive(InputObject)]
pub struct AuthenticatePasskeyInput {
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.get`, as JSON.
    pub credential: Json<serde_json::Value>,
    /// Required when the ceremony was started with an `mfaToken`.
    pub mfa_token: Option<String>,
}

/// Input of `renamePasskey`.
#[derive(InputObject)]
pub struct RenamePasskeyInput {
    pub name: String,
}

/// Passkey queries.
#[derive(Default)]
pub struct PasskeysQuery;

#[Object]
impl PasskeysQuery {
    /// The caller's passkeys, oldest first.
    async fn passkeys(&self, ctx: &Context<'_>) -> Result<Vec<Passkey>> {
        let (state, rc) = parts(ctx);
        Ok(passkeys::list(state, rc).await?.into_iter().map(Into::into).collect())
    }
}

/// Passkey mutations.
#[derive(Default)]
pub struct PasskeysMutation;

#[Object]
impl PasskeysMutation {
    /// Starts registering a passkey for the caller (a discoverable credential is requested).
    async fn passkey_registration_options(&self, ctx: &Context<'_>) -> Result<PasskeyCeremony> {
        let (state, rc) = parts(ctx);
        Ok(passkeys::registration_options(state, rc).await?.into())
    }

    /// Finishes a registration with the authenticator's response.
    async fn register_passkey(&self, ctx: &Context<'_>, input: RegisterPasskeyInput) -> Result<Passkey> {
        let (state, rc) = parts(ctx);
        Ok(passkeys::register(state, rc, &input.ceremony_id, input.credential.0, input.name).await?.into())
    }

    /// Starts a passkey sign-in: for `email`, usernameless, or as the second step of `mfaToken`.
    async fn passkey_authentication_options(
        &self,
        ctx: &Context<'_>,
        input: Option<PasskeyAuthenticationOptionsInput>,
    ) -> Result<PasskeyCeremony> {
        let (state, rc) = parts(ctx);
        let input = input.unwrap_or_default();
        Ok(passkeys::authentication_options(state, rc, input.email.as_deref(), input.mfa_token.as_deref())
            .await?
            .into())
    }

    /// Finishes a passkey sign-in with the authenticator's assertion.
    async fn authenticate_passkey(
        &self,
        ctx: &Context<'_>,
        input: AuthenticatePasskeyInput,
    ) -> Result<AuthPayload> {
        let (state, rc) = parts(ctx);
        Ok(sign_in::with_passkey(
            state,
            rc,
            &input.ceremony_id,
            input.credential.0,
            input.mfa_token.as_deref(),
        )
        .await?
        .into())
    }

    /// Renames one of the caller's passkeys.
    async fn rename_passkey(&self, ctx: &Context<'_>, id: ID, input: RenamePasskeyInput) -> Result<Passkey> {
        let (state, rc) = parts(ctx);
        Ok(passkeys::rename(state, rc, &id, input.name).await?.into())
    }

    /// Removes one of the caller's passkeys.
    async fn delete_passkey(&self, ctx: &Context<'_>, id: ID) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        passkeys::delete(state, rc, &id).await?;
        Ok(ActionPayload { success: true })
    }
}
