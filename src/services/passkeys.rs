//! Passkeys (WebAuthn): registration, authentication (for a known user, usernameless with
//! discoverable credentials, or as the second step of an MFA sign-in), list, rename, delete.
//!
//! Ceremony state lives in the ceremony store for the configured ceremony TTL under a random
//! ceremony id, and is taken once: a replayed response finds nothing.

use std::time::Duration as StdDuration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::fake::{FakePasskeyDistribution, WebauthnFakeCredentialGenerator};
use webauthn_rs::prelude::{
    AuthenticationResult, Credential, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, WebauthnError,
};
use webauthn_rs_proto::{
    AllowCredentials, AuthenticatorSelectionCriteria, ResidentKeyRequirement, UserVerificationPolicy,
};

use entities::{passkey, user};

use crate::context::RequestContext;
use crate::domain::{Email, EventType};
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::security::secrets::{random_token, sha256_hex};
use crate::services::audit::Change;
use crate::services::authz;
use crate::services::lockout::Attempt;
use crate::services::mfa_token;
use crate::services::unit_of_work::Write;
use crate::state::AppState;
use crate::storage::CeremonyKind;

/// A passkey as its owner sees it (no key material).
#[derive(Clone, Debug)]
pub struct PasskeyView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub discoverable: bool,
}

impl From<passkey::Model> for PasskeyView {
    fn from(m: passkey::Model) -> Self {
        let transports =
            m.transports.and_then(|t| serde_json::from_value::<Vec<String>>(t).ok()).unwrap_or_default();
        Self {
            id: m.id,
            name: m.name,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            transports,
            backup_eligible: m.backup_eligible,
            backup_state: m.backup_state,
            discoverable: m.discoverable,
        }
    }
}

/// Options for the browser (`navigator.credentials.create/get`), and the id of the ceremony
/// to send back with the response.
#[derive(Clone, Debug)]
pub struct CeremonyOptions {
    pub ceremony_id: String,
    pub options: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct RegistrationState {
    user_id: Uuid,
    state: PasskeyRegistration,
}

#[derive(Serialize, Deserialize)]
enum AuthenticationState {
    /// Credentials of one known user were offered.
    Known { user_id: Uuid, state: PasskeyAuthentication },
    /// Usernameless: the authenticator picks a discoverable credential.
    Discoverable { state: DiscoverableAuthentication },
}

#[derive(Serialize, Deserialize)]
struct StoredAuthentication {
    state: AuthenticationState,
    /// SHA-256 of the MFA token this ceremony is the second step of.
    mfa_token_hash: Option<String>,
}

fn ceremony_ttl(state: &AppState) -> StdDuration {
    StdDuration::from_secs(state.config.webauthn_ceremony_ttl)
}

async fn put_ceremony(state: &AppState, kind: CeremonyKind, value: &impl Serialize) -> AppResult<String> {
    let id = random_token(24);
    let json = serde_json::to_string(value).map_err(AppError::internal)?;
    state.ceremonies.put(kind, &id, json, ceremony_ttl(state)).await.map_err(crate::storage::unavailable)?;
    Ok(id)
}

async fn take_ceremony<T: for<'de> Deserialize<'de>>(
    state: &AppState,
    kind: CeremonyKind,
    id: &str,
) -> AppResult<T> {
    if id.is_empty() || id.len() > 100 {
        return Err(ErrorCode::PasskeyCeremonyInvalid.into());
    }
    let raw = state
        .ceremonies
        .take(kind, id)
        .await
        .map_err(crate::storage::unavailable)?
        .ok_or(ErrorCode::PasskeyCeremonyInvalid)?;
    serde_json::from_str(&raw).map_err(AppError::internal)
}

fn to_json(v: &impl Serialize) -> AppResult<serde_json::Value> {
    serde_json::to_value(v).map_err(AppError::internal)
}

/// Maps a refused ceremony to our codes. Refusals an operator can fix (origin, RP id) or must
/// know of (a counter that went back) are logged at `warn` with the origin the browser reported
/// (public, from `clientDataJSON`); never the challenge, the credential or any key material.
fn webauthn_error(e: WebauthnError, ceremony: &'static str, client_data_json: &[u8]) -> AppError {
    let origin = || {
        serde_json::from_slice::<serde_json::Value>(client_data_json)
            .ok()
            .and_then(|v| v["origin"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "(unreadable)".to_owned())
    };
    match e {
        WebauthnError::CredentialPossibleCompromise => {
            tracing::warn!(
                ceremony,
                "passkey refused: its signature counter did not advance (a cloned authenticator?)"
            );
            return ErrorCode::PasskeyCloned.into();
        }
        WebauthnError::InvalidRPOrigin | WebauthnError::CredentialCrossOrigin => tracing::warn!(
            ceremony,
            origin = %origin(),
            "passkey refused: the browser's origin is not allowed (JANUA_WEBAUTHN_ORIGINS)"
        ),
        WebauthnError::InvalidRPIDHash => tracing::warn!(
            ceremony,
            origin = %origin(),
            "passkey refused: the authenticator signed for another relying party id (JANUA_WEBAUTHN_RP_ID)"
        ),
        other => tracing::debug!(ceremony, error = ?other, "passkey response refused"),
    }
    ErrorCode::PasskeyVerificationFailed.into()
}

async fn passkeys_of(db: &impl sea_orm::ConnectionTrait, user_id: Uuid) -> AppResult<Vec<passkey::Model>> {
    Ok(passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .order_by_asc(passkey::Column::CreatedAt)
        .all(db)
        .await?)
}

fn parse_passkey(m: &passkey::Model) -> AppResult<Passkey> {
    serde_json::from_str(&m.credential).map_err(AppError::internal)
}

fn check_name(name: Option<String>) -> AppResult<Option<String>> {
    let name = crate::domain::optional_text("name", name, 100)?;
    Ok(name)
}

/// Starts registering a passkey for the caller. The authenticator is asked for a discoverable
/// (resident) credential so it can later sign in without an email. Needs a recent
/// authentication (`REAUTH_REQUIRED`), as does [`register`].
pub async fn registration_options(state: &AppState, ctx: &RequestContext) -> AppResult<CeremonyOptions> {
    let actor = ctx.require_user()?;
    crate::services::sessions::require_recent_auth(state, ctx).await?;
    let u = user::Entity::find_by_id(actor.user_id).one(&state.db).await?.ok_or(ErrorCode::InvalidToken)?;
    let existing = passkeys_of(&state.db, u.id).await?;
    let exclude = existing
        .iter()
        .map(parse_passkey)
        .map(|p| p.map(|p| p.cred_id().clone()))
        .collect::<AppResult<Vec<_>>>()?;
    let display = u.name.clone().unwrap_or_else(|| u.email.clone());
    let (mut ccr, reg) = state
        .webauthn
        .start_passkey_registration(u.id, &u.email, &display, Some(exclude))
        .map_err(AppError::internal)?;
    // webauthn-rs's passkey registration leaves residentKey "discouraged"; Janua's usernameless
    // sign-in needs the credential stored on the authenticator, so require it.
    let selection = ccr.public_key.authenticator_selection.get_or_insert(AuthenticatorSelectionCriteria {
        authenticator_attachment: None,
        resident_key: None,
        require_resident_key: false,
        user_verification: UserVerificationPolicy::Required,
    });
    selection.resident_key = Some(ResidentKeyRequirement::Required);
    selection.require_resident_key = true;
    let ceremony_id = put_ceremony(
        state,
        CeremonyKind::PasskeyRegistration,
        &RegistrationState { user_id: u.id, state: reg },
    )
    .await?;
    Ok(CeremonyOptions { ceremony_id, options: to_json(&ccr)? })
}

/// Finishes a registration with the authenticator's response.
pub async fn register(
    state: &AppState,
    ctx: &RequestContext,
    ceremony_id: &str,
    credential: serde_json::Value,
    name: Option<String>,
) -> AppResult<PasskeyView> {
    let actor = ctx.require_user()?;
    crate::services::sessions::require_recent_auth(state, ctx).await?;
    let name = check_name(name)?;
    let reg: RegisterPublicKeyCredential = serde_json::from_value(credential)
        .map_err(|_| AppError::field("credential", FieldIssue::InvalidFormat))?;
    let stored: RegistrationState =
        take_ceremony(state, CeremonyKind::PasskeyRegistration, ceremony_id).await?;
    if stored.user_id != actor.user_id {
        return Err(ErrorCode::PasskeyCeremonyInvalid.into());
    }
    let pk = state
        .webauthn
        .finish_passkey_registration(&reg, &stored.state)
        .map_err(|e| webauthn_error(e, "registration", &reg.response.client_data_json))?;
    let cred: Credential = pk.clone().into();
    let transports = reg.response.transports.as_ref().map(to_json).transpose()?;
    let mut w = Write::begin(state, ctx).await?;
    let count = passkeys_of(w.tx(), actor.user_id).await?.len();
    let now = Utc::now();
    let m = passkey::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(actor.user_id),
        credential_id: Set(URL_SAFE_NO_PAD.encode::<&[u8]>(pk.cred_id().as_ref())),
        credential: Set(serde_json::to_string(&pk).map_err(AppError::internal)?),
        name: Set(name.unwrap_or_else(|| format!("Passkey {}", count + 1))),
        sign_count: Set(i64::from(cred.counter)),
        backup_eligible: Set(cred.backup_eligible),
        backup_state: Set(cred.backup_state),
        transports: Set(transports),
        discoverable: Set(true),
        created_at: Set(now),
        last_used_at: Set(None),
    }
    .insert(w.tx())
    .await?;
    w.record(Change {
        event: EventType::PasskeyRegistered,
        target: Some(("passkey", m.id.to_string())),
        subject_user: Some(actor.user_id),
        acting_user: None,
        organization: None,
        data: serde_json::json!({"user_id": actor.user_id, "passkey_id": m.id, "name": m.name}),
    })
    .await?;
    w.commit().await?;
    Ok(m.into())
}

/// Starts an authentication: with `mfa_token`, the second step of that sign-in (the user's
/// passkeys are offered); with `email`, that user's passkeys; otherwise (or for an email with no
/// passkeys, so nothing is revealed) a usernameless challenge for discoverable credentials.
pub async fn authentication_options(
    state: &AppState,
    _ctx: &RequestContext,
    email: Option<&str>,
    mfa_token: Option<&str>,
) -> AppResult<CeremonyOptions> {
    let (user_id, mfa_token_hash) = match (mfa_token, email) {
        (Some(t), _) => (Some(mfa_token::peek(state, t).await?.user_id), Some(sha256_hex(t))),
        (None, Some(e)) => {
            let email = Email::parse(e)?;
            let u =
                user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(&state.db).await?;
            (u.map(|u| u.id), None)
        }
        (None, None) => (None, None),
    };
    let known = match user_id {
        Some(id) => {
            passkeys_of(&state.db, id).await?.iter().map(parse_passkey).collect::<AppResult<Vec<_>>>()?
        }
        None => Vec::new(),
    };
    let (options, auth) = match (user_id, known.is_empty()) {
        (Some(user_id), false) => {
            let (rcr, st) =
                state.webauthn.start_passkey_authentication(&known).map_err(AppError::internal)?;
            (to_json(&rcr)?, AuthenticationState::Known { user_id, state: st })
        }
        _ if mfa_token_hash.is_some() => return Err(ErrorCode::PasskeyVerificationFailed.into()),
        _ => {
            let (mut rcr, st) =
                state.webauthn.start_discoverable_authentication().map_err(AppError::internal)?;
            if let Some(e) = email {
                // An email without passkeys (or without an account) answers like one with
                // passkeys: the same option fields and deterministic fake credential ids.
                rcr.public_key.allow_credentials = fake_credentials(state, e)?;
                rcr.public_key.extensions = None;
                rcr.mediation = None;
            }
            (to_json(&rcr)?, AuthenticationState::Discoverable { state: st })
        }
    };
    let ceremony_id = put_ceremony(
        state,
        CeremonyKind::PasskeyAuthentication,
        &StoredAuthentication { state: auth, mfa_token_hash },
    )
    .await?;
    Ok(CeremonyOptions { ceremony_id, options })
}

/// Credential ids for an email without passkeys, from webauthn-rs's generator keyed from the
/// master key: the same every time, shaped like real ones, telling nothing about the account.
fn fake_credentials(state: &AppState, email: &str) -> AppResult<Vec<AllowCredentials>> {
    let key = state.master_key.keyed_hash("webauthn-fake-credentials", b"");
    let generator = WebauthnFakeCredentialGenerator::<FakePasskeyDistribution>::new(key.as_bytes())
        .map_err(AppError::internal)?;
    Ok(generator
        .generate(email.trim().to_lowercase().as_bytes())
        .map_err(AppError::internal)?
        .into_iter()
        .map(|id| AllowCredentials { type_: "public-key".into(), id, transports: None })
        .collect())
}

/// A passkey assertion that verified against its ceremony and stored credential, not yet
/// recorded (see [`record_use`]).
pub(crate) struct Assertion<'t> {
    pub user_id: Uuid,
    pub passkey_id: Uuid,
    /// The MFA token the ceremony was started for (and the request presented), when this
    /// assertion is the second step of a sign-in; not yet spent.
    pub bound_token: Option<&'t str>,
    passkey: Passkey,
    counter: i64,
    result: AuthenticationResult,
}

/// Verifies an authenticator's assertion for the ceremony `ceremony_id` (taken once), counted
/// per user like a second factor (a slot and a unit of the client's credential limit, taken
/// before verifying). A ceremony started for an MFA sign-in completes only with that token.
pub(crate) async fn verify_assertion<'t>(
    state: &AppState,
    ctx: &RequestContext,
    ceremony_id: &str,
    credential: serde_json::Value,
    mfa_token: Option<&'t str>,
) -> AppResult<Assertion<'t>> {
    let assertion: PublicKeyCredential = serde_json::from_value(credential)
        .map_err(|_| AppError::field("credential", FieldIssue::InvalidFormat))?;
    let stored: StoredAuthentication =
        take_ceremony(state, CeremonyKind::PasskeyAuthentication, ceremony_id).await?;
    // A ceremony started for an MFA sign-in completes only with that sign-in's token.
    let bound_token = match (&stored.mfa_token_hash, mfa_token) {
        (Some(hash), Some(t)) if *hash == sha256_hex(t) => Some(t),
        (Some(_), _) => return Err(ErrorCode::InvalidToken.into()),
        (None, _) => None,
    };
    let mut attempt = Attempt::begin(state, ctx.client_ip).await?;
    let cred_id = URL_SAFE_NO_PAD.encode(assertion.get_credential_id());
    let row = passkey::Entity::find()
        .filter(passkey::Column::CredentialId.eq(cred_id))
        .one(&state.db)
        .await?
        .ok_or(ErrorCode::PasskeyVerificationFailed)?;
    attempt.reserve(&state.mfa_lockouts, format!("passkey:{}", row.user_id)).await.map_err(passkey_locked)?;
    let mut pk = parse_passkey(&row)?;
    let verified = check_assertion(state, stored.state, &row, &pk, &assertion);
    let result = match verified {
        Ok(r) => r,
        Err(e) => return Err(attempt.locks_on_failure().map_or(e, passkey_locked)),
    };
    attempt.succeeded(state).await;
    pk.update_credential(&result);
    let counter = i64::from(result.counter());
    Ok(Assertion { user_id: row.user_id, passkey_id: row.id, bound_token, passkey: pk, counter, result })
}

/// Stores what a verified assertion changed (credential, counter, backup flags, last use) in
/// `txn`. Conditional on the stored counter, so two concurrent assertions cannot both move it
/// (or move it backwards): `PASSKEY_CLONED` otherwise. Authenticators without a counter send 0.
pub(crate) async fn record_use(txn: &impl sea_orm::ConnectionTrait, a: &Assertion<'_>) -> AppResult<()> {
    let mut update = passkey::Entity::update_many()
        .col_expr(
            passkey::Column::Credential,
            Expr::value(serde_json::to_string(&a.passkey).map_err(AppError::internal)?),
        )
        .col_expr(passkey::Column::SignCount, Expr::value(a.counter))
        .col_expr(passkey::Column::BackupState, Expr::value(a.result.backup_state()))
        .col_expr(passkey::Column::BackupEligible, Expr::value(a.result.backup_eligible()))
        .col_expr(passkey::Column::LastUsedAt, Expr::value(Utc::now()))
        .filter(passkey::Column::Id.eq(a.passkey_id));
    if a.counter > 0 {
        update = update.filter(passkey::Column::SignCount.lt(a.counter));
    }
    if update.exec(txn).await?.rows_affected != 1 {
        tracing::warn!(passkey = %a.passkey_id, counter = a.counter, "passkey refused: its signature counter is not above the stored one");
        return Err(ErrorCode::PasskeyCloned.into());
    }
    Ok(())
}

/// Checks an assertion against the ceremony it answers and the stored passkey it names.
fn check_assertion(
    state: &AppState,
    ceremony: AuthenticationState,
    row: &passkey::Model,
    pk: &Passkey,
    assertion: &PublicKeyCredential,
) -> AppResult<AuthenticationResult> {
    match ceremony {
        AuthenticationState::Known { user_id, state: st } => {
            if row.user_id != user_id {
                return Err(ErrorCode::PasskeyVerificationFailed.into());
            }
            state.webauthn.finish_passkey_authentication(assertion, &st)
        }
        AuthenticationState::Discoverable { state: st } => {
            let (user_handle, _) = state
                .webauthn
                .identify_discoverable_authentication(assertion)
                .map_err(|e| webauthn_error(e, "authentication", &assertion.response.client_data_json))?;
            if user_handle != row.user_id {
                return Err(ErrorCode::PasskeyVerificationFailed.into());
            }
            let cred: Credential = pk.clone().into();
            state.webauthn.finish_discoverable_authentication_v2(assertion, st, &cred)
        }
    }
    .map_err(|e| webauthn_error(e, "authentication", &assertion.response.client_data_json))
}

fn passkey_locked(until: DateTime<Utc>) -> AppError {
    AppError::new(ErrorCode::AccountLocked).with_details(serde_json::json!({
        "locked_until": until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }))
}

/// The caller's passkeys, oldest first.
pub async fn list(state: &AppState, ctx: &RequestContext) -> AppResult<Vec<PasskeyView>> {
    let actor = ctx.require_user()?;
    Ok(passkeys_of(&state.db, actor.user_id).await?.into_iter().map(Into::into).collect())
}

fn parse_id(id: &str) -> AppResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| AppError::new(ErrorCode::NotFound))
}

async fn own_passkey(
    txn: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
    id: &str,
) -> AppResult<passkey::Model> {
    let p = passkey::Entity::find_by_id(parse_id(id)?).one(txn).await?.ok_or(ErrorCode::NotFound)?;
    authz::owned_by(user_id, p.user_id)?;
    Ok(p)
}

/// Renames one of the caller's passkeys.
pub async fn rename(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    name: String,
) -> AppResult<PasskeyView> {
    let actor = ctx.require_user()?;
    let name = check_name(Some(name))?.ok_or_else(|| AppError::field("name", FieldIssue::Required))?;
    let mut w = Write::begin(state, ctx).await?;
    let p = own_passkey(w.tx(), actor.user_id, id).await?;
    let old = p.name.clone();
    let mut am: passkey::ActiveModel = p.into();
    am.name = Set(name);
    let p = am.update(w.tx()).await?;
    w.record(
        Change {
            event: EventType::PasskeyRenamed,
            target: Some(("passkey", p.id.to_string())),
            subject_user: Some(actor.user_id),
            acting_user: None,
            organization: None,
            data: serde_json::json!({"user_id": actor.user_id, "passkey_id": p.id, "name": p.name, "previous_name": old}),
        },
    )
    .await?;
    w.commit().await?;
    Ok(p.into())
}

/// Removes one of the caller's passkeys.
pub async fn delete(state: &AppState, ctx: &RequestContext, id: &str) -> AppResult<()> {
    let actor = ctx.require_user()?;
    let mut w = Write::begin(state, ctx).await?;
    let p = own_passkey(w.tx(), actor.user_id, id).await?;
    passkey::Entity::delete_by_id(p.id).exec(w.tx()).await?;
    w.record(Change {
        event: EventType::PasskeyRemoved,
        target: Some(("passkey", p.id.to_string())),
        subject_user: Some(actor.user_id),
        acting_user: None,
        organization: None,
        data: serde_json::json!({"user_id": actor.user_id, "passkey_id": p.id, "name": p.name}),
    })
    .await?;
    w.commit().await?;
    Ok(())
}
