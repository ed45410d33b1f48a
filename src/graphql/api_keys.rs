//! `apiKeys`, `createApiKey`, `revokeApiKey`.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::parts;
use crate::domain::parse_id;
use crate::services::api_keys::{self, ApiKeyView};

/// An API key (never its secret).
#[derive(SimpleObject, Clone)]
pub struct ApiKey {
    pub id: ID,
    pub organization_id: Option<ID>,
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyView> for ApiKey {
    fn from(k: ApiKeyView) -> Self {
        Self {
            id: ID(k.id.to_string()),
            organization_id: k.organization_id.map(|o| ID(o.to_string())),
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key and its secret, shown this once.
#[derive(SimpleObject, Clone)]
pub struct CreatedApiKey {
    pub api_key: ApiKey,
    /// Send it as `X-API-Key`. It cannot be shown again.
    pub key: String,
}

/// A new API key. Scopes: `users:read`, `organizations:read`, `organizations:write`,
/// `members:read`, `members:write`, `audit:read` (and `admin:read` for administrator keys).
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_in_days: Option<i32>,
}

fn org(id: Option<ID>) -> Result<Option<uuid::Uuid>> {
    Ok(id.map(|o| parse_id("organization_id", &o)).transpose()?)
}

/// API key queries.
#[derive(Default)]
pub struct ApiKeysQuery;

#[Object]
impl ApiKeysQuery {
    /// An organization's keys (organization admins), or without `organizationId` the
    /// administrators' keys (administrators).
    async fn api_keys(&self, ctx: &Context<'_>, organization_id: Option<ID>) -> Result<Vec<ApiKey>> {
        let (state, rc) = parts(ctx);
        let keys = api_keys::list_api_keys(state, rc, org(organization_id)?).await?;
        Ok(keys.into_iter().map(Into::into).collect())
    }
}

/// API key changes.
#[derive(Default)]
pub struct ApiKeysMutation;

#[Object]
impl ApiKeysMutation {
    /// Creates a key for an organization (or, without one, an administrator key).
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        input: CreateApiKeyInput,
    ) -> Result<CreatedApiKey> {
        let (state, rc) = parts(ctx);
        let (k, key) = api_keys::create_api_key(
            state,
            rc,
            org(organization_id)?,
            &input.name,
            &input.scopes,
            input.expires_in_days,
        )
        .await?;
        Ok(CreatedApiKey { api_key: k.into(), key })
    }

    /// Revokes a key at once.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKey> {
        let (state, rc) = parts(ctx);
        Ok(api_keys::revoke_api_key(state, rc, parse_id("id", &id)?).await?.into())
    }
}
