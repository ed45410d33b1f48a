//! `user`, `users`, `userRoles`, `updateUser`, `deleteUser`.

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, Result, SimpleObject};

use super::parts;
use super::types::{ActionPayload, Conn, User, connection};
use crate::domain::lists::ListRequest;
use crate::domain::parse_id;
use crate::services::users::{self, UserFilter, UserPatch};

/// A user's membership of one organization.
#[derive(SimpleObject, Clone)]
pub struct OrganizationRole {
    pub organization_id: ID,
    pub organization_name: String,
    pub role: String,
}

/// A user's roles.
#[derive(SimpleObject, Clone)]
pub struct UserRoles {
    /// `["admin"]` for administrators, else empty.
    pub global: Vec<String>,
    pub organizations: Vec<OrganizationRole>,
}

/// Changes to a user; a field left out stays as it is, `null` clears it.
#[derive(InputObject, Default)]
pub struct UpdateUserInput {
    /// A new address: it takes effect only once the confirmation link mailed to it is followed
    /// (`verifyEmail`); until then the user keeps the current one.
    pub email: Option<String>,
    pub name: MaybeUndefined<String>,
    pub first_name: MaybeUndefined<String>,
    pub last_name: MaybeUndefined<String>,
    pub username: MaybeUndefined<String>,
    pub avatar_url: MaybeUndefined<String>,
    pub locale: MaybeUndefined<String>,
    pub metadata: MaybeUndefined<Json<serde_json::Value>>,
    /// Administrators only: `active` or `suspended` (suspending revokes every session).
    pub status: Option<String>,
    /// Administrators only.
    pub is_admin: Option<bool>,
    /// Administrators only.
    pub email_verified: Option<bool>,
}

fn patch<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(x) => Some(Some(x)),
    }
}

/// User queries.
#[derive(Default)]
pub struct UsersQuery;

#[Object]
impl UsersQuery {
    /// One user: yourself, a member of an organization you administer, or anyone for administrators.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<User> {
        let (state, rc) = parts(ctx);
        Ok(users::get_user(state, rc, parse_id("id", &id)?).await?.into())
    }

    /// Users you may see: all for administrators, else the members of organizations you administer.
    /// `orderBy`: `created_at|email|name` with `:asc|:desc`; `search` matches email and name.
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        order_by: Option<String>,
        status: Option<String>,
        search: Option<String>,
    ) -> Result<Conn<User>> {
        let (state, rc) = parts(ctx);
        let req = ListRequest::parse(first, after, last, before)?;
        let filter = UserFilter { status, search, sort: order_by };
        Ok(connection(users::list_users(state, rc, &filter, &req).await?))
    }

    /// A user's global and organization roles.
    async fn user_roles(&self, ctx: &Context<'_>, user_id: ID) -> Result<UserRoles> {
        let (state, rc) = parts(ctx);
        let r = users::user_roles(state, rc, parse_id("user_id", &user_id)?).await?;
        Ok(UserRoles {
            global: r.global,
            organizations: r
                .organizations
                .into_iter()
                .map(|(id, name, role)| OrganizationRole {
                    organization_id: ID(id.to_string()),
                    organization_name: name,
                    role,
                })
                .collect(),
        })
    }
}

/// User changes.
#[derive(Default)]
pub struct UsersMutation;

#[Object]
impl UsersMutation {
    /// Updates a user (yourself; administrators anyone, including status and rights).
    async fn update_user(&self, ctx: &Context<'_>, id: ID, input: UpdateUserInput) -> Result<User> {
        let (state, rc) = parts(ctx);
        let p = UserPatch {
            email: input.email,
            name: patch(input.name),
            first_name: patch(input.first_name),
            last_name: patch(input.last_name),
            username: patch(input.username),
            avatar_url: patch(input.avatar_url),
            locale: patch(input.locale),
            metadata: patch(input.metadata).map(|m| m.map(|j| j.0)),
            status: input.status,
            is_admin: input.is_admin,
            email_verified: input.email_verified,
        };
        Ok(users::update_user(state, rc, parse_id("id", &id)?, p).await?.into())
    }

    /// Deletes a user: sessions revoked, personal data erased, audit trail kept.
    async fn delete_user(&self, ctx: &Context<'_>, id: ID) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        users::delete_user(state, rc, parse_id("id", &id)?).await?;
        Ok(ActionPayload { success: true })
    }
}
