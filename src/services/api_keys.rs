//! API keys: created by organization admins (or, without an organization, by administrators),
//! shown once, stored as SHA-256 hashes, scoped, revocable, with a throttled `last_used_at`.

use std::net::IpAddr;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use entities::api_key;

use crate::context::{ApiKeyActor, RequestContext};
use crate::domain::EventType;
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::security::secrets::{random_token, sha256_hex};
use crate::services::audit::Change;
use crate::services::authz::{self, Action, Scope};
use crate::services::lockout::Attempt;
use crate::services::unit_of_work::Write;
use crate::state::AppState;

/// An API key without its secret.
#[derive(Clone, Debug)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub organization_id: Option<Uuid>,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: chrono::DateTime<Utc>,
    pub last_used_at: Option<chrono::DateTime<Utc>>,
    pub expires_at: Option<chrono::DateTime<Utc>>,
    pub revoked_at: Option<chrono::DateTime<Utc>>,
}

fn scopes_of(v: &serde_json::Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

impl From<api_key::Model> for ApiKeyView {
    fn from(m: api_key::Model) -> Self {
        Self {
            scopes: scopes_of(&m.scopes),
            id: m.id,
            organization_id: m.organization_id,
            name: m.name,
            prefix: m.prefix,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            expires_at: m.expires_at,
            revoked_at: m.revoked_at,
        }
    }
}

async fn authorize_keys(state: &AppState, ctx: &RequestContext, org: Option<Uuid>) -> AppResult<()> {
    let p = authz::principal(state, ctx).await?;
    match org {
        Some(org) => {
            let role = authz::role_in(state, &p, org).await?;
            authz::authorize(&p, &Action::ManageApiKeys { org, role })
        }
        None => authz::authorize(&p, &Action::ManageAdminApiKeys),
    }
}

/// Creates a key; returns it with its secret, which is never shown again. A user creating one
/// needs a recent authentication (`REAUTH_REQUIRED`).
pub async fn create_api_key(
    state: &AppState,
    ctx: &RequestContext,
    organization_id: Option<Uuid>,
    name: &str,
    scopes: &[String],
    expires_in_days: Option<i32>,
) -> AppResult<(ApiKeyView, String)> {
    authorize_keys(state, ctx, organization_id).await?;
    crate::services::sessions::require_recent_auth(state, ctx).await?;
    let name = crate::domain::optional_text("name", Some(name.to_owned()), 100)?
        .ok_or_else(|| AppError::field("name", FieldIssue::Required))?;
    if scopes.is_empty() || scopes.iter().any(|s| Scope::parse(s).is_none()) {
        return Err(AppError::field("scopes", FieldIssue::InvalidFormat));
    }
    if organization_id.is_some() && scopes.iter().any(|s| s == Scope::AdminRead.as_str()) {
        return Err(AppError::field("scopes", FieldIssue::InvalidFormat));
    }
    let expires_at = match expires_in_days {
        Some(d) if (1..=3650).contains(&d) => Some(Utc::now() + chrono::Duration::days(i64::from(d))),
        Some(_) => return Err(AppError::field("expires_in_days", FieldIssue::OutOfRange)),
        None => None,
    };
    let secret = format!("jk_{}", random_token(32));
    let creator = ctx.require_user().ok().map(|u| u.user_id);
    let mut w = Write::begin(state, ctx).await?;
    let m = api_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(organization_id),
        name: Set(name),
        prefix: Set(secret[..11].to_owned()),
        key_hash: Set(sha256_hex(&secret)),
        scopes: Set(serde_json::json!(scopes)),
        created_by: Set(creator),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
    }
    .insert(w.tx())
    .await?;
    w.record(Change {
        event: EventType::ApiKeyCreated,
        target: Some(("api_key", m.id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: organization_id,
        data: serde_json::json!({"api_key_id": m.id, "name": m.name, "prefix": m.prefix, "scopes": scopes}),
    })
    .await?;
    w.commit().await?;
    Ok((m.into(), secret))
}

/// The keys of an organization (or the administrators' keys), newest first.
pub async fn list_api_keys(
    state: &AppState,
    ctx: &RequestContext,
    organization_id: Option<Uuid>,
) -> AppResult<Vec<ApiKeyView>> {
    authorize_keys(state, ctx, organization_id).await?;
    let q = match organization_id {
        Some(o) => api_key::Entity::find().filter(api_key::Column::OrganizationId.eq(o)),
        None => api_key::Entity::find().filter(api_key::Column::OrganizationId.is_null()),
    };
    Ok(q.order_by_desc(api_key::Column::Id).all(&state.db).await?.into_iter().map(Into::into).collect())
}

/// Revokes a key at once.
pub async fn revoke_api_key(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<ApiKeyView> {
    let key = api_key::Entity::find_by_id(id).one(&state.db).await?.ok_or(ErrorCode::NotFound)?;
    authorize_keys(state, ctx, key.organization_id).await?;
    if key.revoked_at.is_some() {
        return Ok(key.into());
    }
    let mut w = Write::begin(state, ctx).await?;
    let mut am: api_key::ActiveModel = key.clone().into();
    am.revoked_at = Set(Some(Utc::now()));
    let m = am.update(w.tx()).await?;
    w.record(Change {
        event: EventType::ApiKeyRevoked,
        target: Some(("api_key", id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: key.organization_id,
        data: serde_json::json!({"api_key_id": id, "prefix": key.prefix}),
    })
    .await?;
    w.commit().await?;
    Ok(m.into())
}

/// Turns an `X-API-Key` value into an actor. The key is looked up by its hash (a unique index);
/// `last_used_at` is written at most once a minute per key, off the request path. Each lookup
/// takes a unit of the client's credential limit (`RATE_LIMITED` when none is left), given back
/// when the key is good. There is no lockout slot: a key has no account to lock, and locking by
/// its (listed) prefix would let anyone disable an integration.
pub async fn authenticate_api_key(
    state: &AppState,
    client_ip: Option<IpAddr>,
    raw: &str,
) -> AppResult<ApiKeyActor> {
    let invalid = || AppError::new(ErrorCode::InvalidToken);
    let attempt = Attempt::begin(state, client_ip).await?;
    if !raw.starts_with("jk_") || raw.len() > 100 {
        return Err(invalid());
    }
    let key = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(sha256_hex(raw)))
        .one(&state.db)
        .await?
        .ok_or_else(invalid)?;
    let now = Utc::now();
    if key.revoked_at.is_some() || key.expires_at.is_some_and(|e| e <= now) {
        return Err(invalid());
    }
    state.api_key_usage.record::<api_key::Entity>(
        &state.db,
        key.id,
        api_key::Column::Id,
        api_key::Column::LastUsedAt,
    );
    attempt.succeeded(state).await;
    Ok(ApiKeyActor { key_id: key.id, organization_id: key.organization_id, scopes: scopes_of(&key.scopes) })
}
