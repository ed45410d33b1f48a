//! SCIM bearer tokens: created by an organization's admins, shown once, stored as SHA-256
//! hashes, revocable, with a throttled `last_used_at`. A token acts for its organization only.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use entities::scim_token;

use crate::context::{RequestContext, ScimActor};
use crate::domain::EventType;
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::security::secrets::{random_token, sha256_hex};
use crate::services::audit::Change;
use crate::services::authz::{self, Action};
use crate::services::lockout::Attempt;
use crate::services::unit_of_work::Write;
use crate::state::AppState;

/// What every SCIM token starts with (secret scanners can look for it).
const PREFIX: &str = "jscim_";

/// A SCIM token without its secret.
#[derive(Clone, Debug)]
pub struct ScimTokenView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<scim_token::Model> for ScimTokenView {
    fn from(m: scim_token::Model) -> Self {
        Self {
            id: m.id,
            organization_id: m.organization_id,
            name: m.name,
            prefix: m.prefix,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            revoked_at: m.revoked_at,
        }
    }
}

async fn authorize_tokens(state: &AppState, ctx: &RequestContext, org: Uuid) -> AppResult<()> {
    let p = authz::principal(state, ctx).await?;
    let role = authz::role_in(state, &p, org).await?;
    authz::authorize(&p, &Action::ManageScimTokens { org, role })
}

/// Creates a token for `organization_id`; returns it with its secret, never shown again.
/// Needs a recent authentication (`REAUTH_REQUIRED`), as for API keys.
pub async fn create_scim_token(
    state: &AppState,
    ctx: &RequestContext,
    organization_id: Uuid,
    name: &str,
) -> AppResult<(ScimTokenView, String)> {
    authorize_tokens(state, ctx, organization_id).await?;
    crate::services::sessions::require_recent_auth(state, ctx).await?;
    let name = crate::domain::optional_text("name", Some(name.to_owned()), 100)?
        .ok_or_else(|| AppError::field("name", FieldIssue::Required))?;
    let secret = format!("{PREFIX}{}", random_token(32));
    let mut w = Write::begin(state, ctx).await?;
    let m = scim_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(organization_id),
        name: Set(name),
        prefix: Set(secret[..PREFIX.len() + 6].to_owned()),
        token_hash: Set(sha256_hex(&secret)),
        created_by: Set(ctx.require_user().ok().map(|u| u.user_id)),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(w.tx())
    .await?;
    w.record(Change {
        event: EventType::ScimTokenCreated,
        target: Some(("scim_token", m.id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: Some(organization_id),
        data: serde_json::json!({"scim_token_id": m.id, "name": m.name, "prefix": m.prefix}),
    })
    .await?;
    w.commit().await?;
    Ok((m.into(), secret))
}

/// An organization's tokens, newest first (revoked ones included, marked).
pub async fn list_scim_tokens(
    state: &AppState,
    ctx: &RequestContext,
    organization_id: Uuid,
) -> AppResult<Vec<ScimTokenView>> {
    authorize_tokens(state, ctx, organization_id).await?;
    Ok(scim_token::Entity::find()
        .filter(scim_token::Column::OrganizationId.eq(organization_id))
        .order_by_desc(scim_token::Column::Id)
        .all(&state.db)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Revokes a token at once: its next SCIM request is answered 401.
pub async fn revoke_scim_token(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<ScimTokenView> {
    let token = scim_token::Entity::find_by_id(id).one(&state.db).await?.ok_or(ErrorCode::NotFound)?;
    authorize_tokens(state, ctx, token.organization_id).await?;
    if token.revoked_at.is_some() {
        return Ok(token.into());
    }
    let mut w = Write::begin(state, ctx).await?;
    let mut am: scim_token::ActiveModel = token.clone().into();
    am.revoked_at = Set(Some(Utc::now()));
    let m = am.update(w.tx()).await?;
    w.record(Change {
        event: EventType::ScimTokenRevoked,
        target: Some(("scim_token", id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: Some(token.organization_id),
        data: serde_json::json!({"scim_token_id": id, "prefix": token.prefix}),
    })
    .await?;
    w.commit().await?;
    Ok(m.into())
}

/// Turns a SCIM bearer token into the organization it acts for. Looked up by its hash (a unique
/// index, so no secret is compared in application code); each lookup takes a unit of the
/// client's credential limit, given back when the token is good. `last_used_at` is written at
/// most once a minute per token, off the request path.
pub async fn authenticate_scim_token(
    state: &AppState,
    client_ip: Option<IpAddr>,
    raw: &str,
) -> AppResult<ScimActor> {
    let invalid = || AppError::new(ErrorCode::InvalidToken);
    let attempt = Attempt::begin(state, client_ip).await?;
    if !raw.starts_with(PREFIX) || raw.len() > 100 {
        return Err(invalid());
    }
    let token = scim_token::Entity::find()
        .filter(scim_token::Column::TokenHash.eq(sha256_hex(raw)))
        .one(&state.db)
        .await?
        .filter(|t| t.revoked_at.is_none())
        .ok_or_else(invalid)?;
    state.api_key_usage.record::<scim_token::Entity>(
        &state.db,
        token.id,
        scim_token::Column::Id,
        scim_token::Column::LastUsedAt,
    );
    attempt.succeeded(state).await;
    Ok(ScimActor { token_id: token.id, organization_id: token.organization_id })
}
