//! `invitations`, `createInvitation`, `resendInvitation`, `revokeInvitation`, `acceptInvitation`.
//! No output type carries an invitation's token: it travels only in the mail, and back in
//! `acceptInvitation`'s input.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::orgs::Organization;
use super::parts;
use super::types::{Conn, Tokens, User, connection};
use crate::domain::lists::ListRequest;
use crate::domain::{OrgRole, Password, parse_id};
use crate::services::invitations::accept::{self, Acceptance, Accepted};
use crate::services::invitations::{self, InvitationView, NewInvitation};

/// An invitation to an organization (never its token).
#[derive(SimpleObject, Clone)]
pub struct Invitation {
    pub id: ID,
    pub organization_id: ID,
    /// The invited address (lower-cased).
    pub email: String,
    /// The role the invitee joins with: `owner`, `admin`, `member` or `viewer`.
    pub role: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    /// The inviter's note, shown in the mail.
    pub message: Option<String>,
    /// The person who invited (null for an API key).
    pub invited_by: Option<ID>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The account that accepted.
    pub accepted_user_id: Option<ID>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<InvitationView> for Invitation {
    fn from(v: InvitationView) -> Self {
        let id = |u: uuid::Uuid| ID(u.to_string());
        Self {
            id: id(v.id),
            organization_id: id(v.organization_id),
            email: v.email,
            role: v.role,
            status: v.status.as_str().to_owned(),
            message: v.message,
            invited_by: v.invited_by.map(id),
            expires_at: v.expires_at,
            accepted_at: v.accepted_at,
            revoked_at: v.revoked_at,
            accepted_user_id: v.accepted_user_id.map(id),
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

/// An invitation made, resent or revoked.
#[derive(SimpleObject, Clone)]
pub struct InvitationPayload {
    pub invitation: Invitation,
}

impl From<InvitationView> for InvitationPayload {
    fn from(v: InvitationView) -> Self {
        Self { invitation: v.into() }
    }
}

/// Who to invite where, with which role (default `member`).
#[derive(InputObject)]
pub struct CreateInvitationInput {
    pub organization_id: ID,
    pub email: String,
    pub role: Option<String>,
    /// A note for the mail (at most 1000 characters).
    pub message: Option<String>,
}

/// The token of the invitation mail; `password` (and `name`) when the address has no account.
#[derive(InputObject)]
pub struct AcceptInvitationInput {
    pub token: String,
    pub name: Option<String>,
    pub password: Option<String>,
}

/// The new member. `tokens` when the acceptance created the account (a signed-in invitee keeps
/// their session).
#[derive(SimpleObject, Clone)]
pub struct AcceptInvitationPayload {
    pub user: User,
    pub tokens: Option<Tokens>,
    pub organization: Organization,
    pub role: String,
}

impl From<Accepted> for AcceptInvitationPayload {
    fn from(a: Accepted) -> Self {
        Self {
            user: a.user.into(),
            tokens: a.tokens.map(Into::into),
            organization: a.organization.into(),
            role: a.role,
        }
    }
}

/// Invitation queries.
#[derive(Default)]
pub struct InvitationsQuery;

#[Object]
impl InvitationsQuery {
    /// An organization's invitations, newest first (its admins; without `organizationId`: those
    /// of every organization you administer): the open ones (pending and expired) unless
    /// `status` (`pending`, `expired`, `accepted`, `revoked`) says otherwise.
    #[allow(clippy::too_many_arguments)]
    async fn invitations(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
        status: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Conn<Invitation>> {
        let (state, rc) = parts(ctx);
        let req = ListRequest::parse(first, after, last, before)?;
        let org = organization_id.map(|o| parse_id("organization_id", &o)).transpose()?;
        Ok(connection(invitations::list_invitations(state, rc, org, status.as_deref(), &req).await?))
    }
}

/// Inviting, and accepting an invitation.
#[derive(Default)]
pub struct InvitationsMutation;

#[Object]
impl InvitationsMutation {
    /// Invites an address to an organization (its admins; `owner` only by owners). Replaces the
    /// address's open invitation; a member already → `ALREADY_MEMBER`.
    async fn create_invitation(
        &self,
        ctx: &Context<'_>,
        input: CreateInvitationInput,
    ) -> Result<InvitationPayload> {
        let (state, rc) = parts(ctx);
        let new = NewInvitation {
            organization_id: parse_id("organization_id", &input.organization_id)?,
            email: input.email,
            role: input.role.unwrap_or_else(|| OrgRole::Member.as_str().into()),
            message: input.message,
        };
        Ok(invitations::create_invitation(state, rc, new).await?.into())
    }

    /// Sends an invitation again with a new link and expiry (the previous link stops working).
    async fn resend_invitation(&self, ctx: &Context<'_>, id: ID) -> Result<InvitationPayload> {
        let (state, rc) = parts(ctx);
        Ok(invitations::resend_invitation(state, rc, parse_id("id", &id)?).await?.into())
    }

    /// Withdraws an invitation: its link stops working at once.
    async fn revoke_invitation(&self, ctx: &Context<'_>, id: ID) -> Result<InvitationPayload> {
        let (state, rc) = parts(ctx);
        Ok(invitations::revoke_invitation(state, rc, parse_id("id", &id)?).await?.into())
    }

    /// Accepts an invitation with its mail's token: signed in as the invited address's account,
    /// or, when the address has none, signing up with `password` on the way.
    async fn accept_invitation(
        &self,
        ctx: &Context<'_>,
        input: AcceptInvitationInput,
    ) -> Result<AcceptInvitationPayload> {
        let (state, rc) = parts(ctx);
        let input =
            Acceptance { token: input.token, name: input.name, password: input.password.map(Password::new) };
        Ok(accept::accept_invitation(state, rc, input).await?.into())
    }
}
