//! `scimTokens`, `createScimToken`, `revokeScimToken`: the bearer tokens an organization's
//! identity provider provisions it with (the SCIM protocol itself is served at `/api/v1/scim`).

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::parts;
use crate::domain::parse_id;
use crate::services::scim::tokens::{self, ScimTokenView};

/// A SCIM token (never its secret).
#[derive(SimpleObject, Clone)]
pub struct ScimToken {
    pub id: ID,
    pub organization_id: ID,
    pub name: String,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ScimTokenView> for ScimToken {
    fn from(t: ScimTokenView) -> Self {
        Self {
            id: ID(t.id.to_string()),
            organization_id: ID(t.organization_id.to_string()),
            name: t.name,
            prefix: t.prefix,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A new SCIM token and its secret, shown this once.
#[derive(SimpleObject, Clone)]
pub struct CreatedScimToken {
    pub id: ID,
    pub organization_id: ID,
    pub name: String,
    pub prefix: String,
    /// Give it to the identity provider as its SCIM bearer token. It cannot be shown again.
    pub token: String,
    pub created_at: DateTime<Utc>,
}

/// A new SCIM token.
#[derive(InputObject)]
pub struct CreateScimTokenInput {
    /// What the token is for (e.g. the identity provider's name).
    pub name: String,
}

/// SCIM token queries.
#[derive(Default)]
pub struct ScimQuery;

#[Object]
impl ScimQuery {
    /// An organization's SCIM tokens, newest first (organization admins).
    async fn scim_tokens(&self, ctx: &Context<'_>, organization_id: ID) -> Result<Vec<ScimToken>> {
        let (state, rc) = parts(ctx);
        let org = parse_id("organization_id", &organization_id)?;
        Ok(tokens::list_scim_tokens(state, rc, org).await?.into_iter().map(Into::into).collect())
    }
}

/// SCIM token changes.
#[derive(Default)]
pub struct ScimMutation;

#[Object]
impl ScimMutation {
    /// Creates a SCIM token for an organization (organization admins, recent sign-in).
    async fn create_scim_token(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
        input: CreateScimTokenInput,
    ) -> Result<CreatedScimToken> {
        let (state, rc) = parts(ctx);
        let org = parse_id("organization_id", &organization_id)?;
        let (t, token) = tokens::create_scim_token(state, rc, org, &input.name).await?;
        Ok(CreatedScimToken {
            id: ID(t.id.to_string()),
            organization_id: ID(t.organization_id.to_string()),
            name: t.name,
            prefix: t.prefix,
            token,
            created_at: t.created_at,
        })
    }

    /// Revokes a SCIM token at once.
    async fn revoke_scim_token(&self, ctx: &Context<'_>, id: ID) -> Result<ScimToken> {
        let (state, rc) = parts(ctx);
        Ok(tokens::revoke_scim_token(state, rc, parse_id("id", &id)?).await?.into())
    }
}
