//! Organizations and members: queries, mutations and the `Organization` type (owners and member
//! counts through per-request DataLoaders).

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject, Union,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::invitations::InvitationPayload;
use super::loaders::Loaders;
use super::parts;
use super::types::{ActionPayload, Conn, User, connection};
use crate::domain::OrgRole;
use crate::domain::lists::ListRequest;
use crate::domain::parse_id;
use crate::error::AppError;
use crate::services::orgs::{self, Added, MemberView, NewOrganization, OrgView, OrganizationPatch, UserRef};

/// An organization.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Organization {
    pub id: ID,
    pub name: String,
    pub slug: String,
    pub domain: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    pub uuid: Uuid,
}

impl From<OrgView> for Organization {
    fn from(o: OrgView) -> Self {
        Self {
            id: ID(o.id.to_string()),
            uuid: o.id,
            name: o.name,
            slug: o.slug,
            domain: o.domain,
            description: o.description,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

fn loaders<'a>(ctx: &Context<'a>) -> Result<&'a Loaders> {
    ctx.data::<Loaders>()
}

#[ComplexObject]
impl Organization {
    /// How many members the organization has.
    async fn member_count(&self, ctx: &Context<'_>) -> Result<u64> {
        let members = loaders(ctx)?.members.load_one(self.uuid).await?.unwrap_or_default();
        Ok(members.len() as u64)
    }

    /// The organization's owners.
    async fn owners(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let l = loaders(ctx)?;
        let members = l.members.load_one(self.uuid).await?.unwrap_or_default();
        let ids: Vec<Uuid> =
            members.into_iter().filter(|(_, r)| OrgRole::Owner.is(r)).map(|(u, _)| u).collect();
        let users = l.users.load_many(ids.clone()).await.map_err(|e: AppError| e)?;
        Ok(ids.iter().filter_map(|id| users.get(id).cloned().map(User::from)).collect())
    }
}

/// A member of an organization.
#[derive(SimpleObject, Clone)]
pub struct Member {
    pub user: User,
    /// `owner`, `admin`, `member` or `viewer`.
    pub role: String,
    pub joined_at: DateTime<Utc>,
    /// How the organization's identity provider provisioned this member over SCIM (shown to
    /// the organization's admins; null for others and for members not provisioned).
    pub scim: Option<ScimProvisioning>,
}

/// A member's SCIM provisioning in the organization.
#[derive(SimpleObject, Clone)]
pub struct ScimProvisioning {
    /// The identity provider's id for the person.
    pub external_id: Option<String>,
    pub user_name: String,
    pub active: bool,
    /// The member's SCIM groups (display names).
    pub groups: Vec<String>,
}

impl From<MemberView> for Member {
    fn from(m: MemberView) -> Self {
        Self {
            user: m.user.into(),
            role: m.role,
            joined_at: m.joined_at,
            scim: m.scim.map(|s| ScimProvisioning {
                external_id: s.external_id,
                user_name: s.user_name,
                active: s.active,
                groups: s.groups,
            }),
        }
    }
}

/// What `addMember` did: a `Member` added at once (administrators, API keys), or — when a person
/// who administers the organization adds someone — an invitation, the same for any address.
#[derive(Union, Clone)]
pub enum AddMemberResult {
    Member(Member),
    InvitationPayload(InvitationPayload),
}

impl From<Added> for AddMemberResult {
    fn from(a: Added) -> Self {
        match a {
            Added::Member(m) => Self::Member(m.into()),
            Added::Invited(i) => Self::InvitationPayload(i.into()),
        }
    }
}

/// A new organization; the slug is derived from the name when absent.
#[derive(InputObject)]
pub struct CreateOrganizationInput {
    pub name: String,
    pub slug: Option<String>,
    pub domain: Option<String>,
    pub description: Option<String>,
}

/// Changes to an organization; a field left out stays, `null` clears `domain`/`description`.
#[derive(InputObject)]
pub struct UpdateOrganizationInput {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub domain: MaybeUndefined<String>,
    pub description: MaybeUndefined<String>,
}

/// Who to add, by id or email, and with which role (default `member`).
#[derive(InputObject)]
pub struct AddMemberInput {
    pub user_id: Option<ID>,
    pub email: Option<String>,
    pub role: Option<String>,
}

/// A member's new role.
#[derive(InputObject)]
pub struct UpdateMemberRoleInput {
    pub role: String,
}

fn undefined_to_patch(v: MaybeUndefined<String>) -> Option<Option<String>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(x) => Some(Some(x)),
    }
}

/// Organization queries.
#[derive(Default)]
pub struct OrgsQuery;

#[Object]
impl OrgsQuery {
    /// One organization you belong to.
    async fn organization(&self, ctx: &Context<'_>, id: ID) -> Result<Organization> {
        let (state, rc) = parts(ctx);
        Ok(orgs::get_organization(state, rc, parse_id("id", &id)?).await?.into())
    }

    /// The organizations you belong to. `orderBy`: `created_at|name` with `:asc|:desc`.
    async fn organizations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        order_by: Option<String>,
        search: Option<String>,
    ) -> Result<Conn<Organization>> {
        let (state, rc) = parts(ctx);
        let req = ListRequest::parse(first, after, last, before)?;
        let page = orgs::list_organizations(state, rc, &req, order_by.as_deref(), search.as_deref()).await?;
        let node = ctx.look_ahead().field("edges").field("node");
        if node.field("memberCount").exists() || node.field("owners").exists() {
            let ids: Vec<Uuid> = page.items.iter().map(|(_, o)| o.id).collect();
            loaders(ctx)?.prime_organizations(&ids, node.field("owners").exists()).await?;
        }
        Ok(connection(page))
    }

    /// The members of an organization, in joining order.
    async fn organization_members(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Conn<Member>> {
        let (state, rc) = parts(ctx);
        let req = ListRequest::parse(first, after, last, before)?;
        let org = parse_id("organization_id", &organization_id)?;
        Ok(connection(orgs::list_members(state, rc, org, &req).await?))
    }
}

/// Organization changes.
#[derive(Default)]
pub struct OrgsMutation;

#[Object]
impl OrgsMutation {
    /// Creates an organization; you become its owner.
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationInput,
    ) -> Result<Organization> {
        let (state, rc) = parts(ctx);
        let new = NewOrganization {
            name: input.name,
            slug: input.slug,
            domain: input.domain,
            description: input.description,
        };
        Ok(orgs::create_organization(state, rc, new).await?.into())
    }

    /// Updates an organization (admins and owners).
    async fn update_organization(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateOrganizationInput,
    ) -> Result<Organization> {
        let (state, rc) = parts(ctx);
        let patch = OrganizationPatch {
            name: input.name,
            slug: input.slug,
            domain: undefined_to_patch(input.domain),
            description: undefined_to_patch(input.description),
        };
        Ok(orgs::update_organization(state, rc, parse_id("id", &id)?, patch).await?.into())
    }

    /// Adds a user to an organization. Administrators and API keys with `members:write` add an
    /// existing account at once (a `Member`); a person who administers the organization invites
    /// the address instead (an `InvitationPayload`, whether or not it has an account).
    async fn add_member(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
        input: AddMemberInput,
    ) -> Result<AddMemberResult> {
        let (state, rc) = parts(ctx);
        let who = match (input.user_id, input.email) {
            (Some(id), _) => UserRef::Id(parse_id("user_id", &id)?),
            (None, Some(e)) => UserRef::Email(e),
            (None, None) => {
                return Err(AppError::field("user_id", crate::error::FieldIssue::Required).into());
            }
        };
        let org = parse_id("organization_id", &organization_id)?;
        let role = input.role.unwrap_or_else(|| OrgRole::Member.as_str().into());
        Ok(orgs::add_member(state, rc, org, who, &role).await?.into())
    }

    /// Changes a member's role (the last owner cannot be demoted).
    async fn update_member_role(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
        user_id: ID,
        input: UpdateMemberRoleInput,
    ) -> Result<Member> {
        let (state, rc) = parts(ctx);
        let (org, user) = (parse_id("organization_id", &organization_id)?, parse_id("user_id", &user_id)?);
        Ok(orgs::update_member_role(state, rc, org, user, &input.role).await?.into())
    }

    /// Removes a member, or leaves (the last owner cannot).
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        organization_id: ID,
        user_id: ID,
    ) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        let (org, user) = (parse_id("organization_id", &organization_id)?, parse_id("user_id", &user_id)?);
        orgs::remove_member(state, rc, org, user).await?;
        Ok(ActionPayload { success: true })
    }
}
