//! Invitations: an organization's admins invite an email address with a role; the mail carries a
//! single-use token (stored only as its SHA-256 hash) that makes the invitee a member once they
//! accept it ([`accept`]). Nobody joins an organization, or shows it their profile and sessions,
//! without consenting; administrators, API keys and SCIM still add members directly.
//!
//! Invitation mails are limited per organization and address, per address across every
//! organization, per organization and per client, in windows of an hour counted in the shared
//! limiter store (Redis when configured), so nobody can mail-bomb an inbox through Janua.

pub mod accept;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use entities::{invitation, organization, user};

use crate::context::RequestContext;
use crate::domain::lists::ListRequest;
use crate::domain::page::Page;
use crate::domain::{Email, EventType, InvitationStatus, OrgRole, UserStatus, optional_text};
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::security::secrets::{random_token, sha256_hex};
use crate::services::audit::Change;
use crate::services::authz::{self, Action, Principal};
use crate::services::mail::{self, MailKind};
use crate::services::orgs::UserRef;
use crate::services::unit_of_work::Write;
use crate::state::AppState;
use crate::storage::keyset::{Keyset, decode_uuid};
use crate::storage::mail_limits;

/// The longest message an inviter may add to the mail.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// Where the link in the mail points, under the public URL (`?token=…` is appended).
pub const ACCEPT_PATH: &str = "/invitations/accept";

/// An invitation as its organization's admins see it (never its token).
#[derive(Clone, Debug, PartialEq)]
pub struct InvitationView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub role: String,
    pub status: InvitationStatus,
    pub message: Option<String>,
    pub invited_by: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub accepted_user_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<invitation::Model> for InvitationView {
    fn from(m: invitation::Model) -> Self {
        Self {
            status: InvitationStatus::of(m.accepted_at, m.revoked_at, m.expires_at, Utc::now()),
            id: m.id,
            organization_id: m.organization_id,
            email: m.email,
            role: m.role,
            message: m.message,
            invited_by: m.invited_by,
            expires_at: m.expires_at,
            accepted_at: m.accepted_at,
            revoked_at: m.revoked_at,
            accepted_user_id: m.accepted_user_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// What an admin asks for.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub organization_id: Uuid,
    pub email: String,
    pub role: String,
    pub message: Option<String>,
}

fn parse_role(role: &str) -> AppResult<OrgRole> {
    OrgRole::parse(role).ok_or_else(|| AppError::field("role", FieldIssue::InvalidFormat))
}

/// Checks that `p` may manage the invitations of `org` for `role` (nobody invites above their
/// own role); a caller who may not see the organization gets `NOT_FOUND`.
pub(crate) async fn authorize_invitations(
    state: &AppState,
    p: &Principal,
    org: Uuid,
    role: OrgRole,
) -> AppResult<organization::Model> {
    let caller_role = authz::role_in(state, p, org).await?;
    authz::authorize(
        p,
        &Action::ManageInvitations { org, role: caller_role, invites_owner: role == OrgRole::Owner },
    )?;
    Ok(organization::Entity::find_by_id(org).one(&state.db).await?.ok_or(ErrorCode::NotFound)?)
}

/// Invites `email` to an organization with `role` (admins and owners; owners only for `owner`;
/// API keys with `members:write`). Replaces the address's open invitation, if any: its token
/// stops working. Someone already a member → `ALREADY_MEMBER`.
pub async fn create_invitation(
    state: &AppState,
    ctx: &RequestContext,
    input: NewInvitation,
) -> AppResult<InvitationView> {
    let role = parse_role(&input.role)?;
    let email = Email::parse(&input.email)?;
    let message = optional_text("message", input.message, MAX_MESSAGE_CHARS)?;
    let p = authz::principal(state, ctx).await?;
    let org = authorize_invitations(state, &p, input.organization_id, role).await?;
    invite(state, ctx, &p, &org, &email, role, message).await
}

/// A person's "add member" (`POST /organizations/{id}/members`): an invitation of the address,
/// or of the address of the user with that id.
pub(crate) async fn invite_member(
    state: &AppState,
    ctx: &RequestContext,
    p: &Principal,
    org_id: Uuid,
    who: UserRef,
    role: OrgRole,
) -> AppResult<InvitationView> {
    let org = authorize_invitations(state, p, org_id, role).await?;
    let email = match who {
        UserRef::Email(e) => Email::parse(&e)?,
        UserRef::Id(id) => {
            let u = user::Entity::find_by_id(id)
                .one(&state.db)
                .await?
                .filter(|u| !UserStatus::Deleted.is(&u.status))
                .ok_or(ErrorCode::NotFound)?;
            Email::parse(&u.email)?
        }
    };
    invite(state, ctx, p, &org, &email, role, None).await
}

/// Creates the invitation and queues its mail, after authorization.
pub(crate) async fn invite(
    state: &AppState,
    ctx: &RequestContext,
    p: &Principal,
    org: &organization::Model,
    email: &Email,
    role: OrgRole,
    message: Option<String>,
) -> AppResult<InvitationView> {
    let invitee = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&state.db)
        .await?
        .filter(|u| !UserStatus::Deleted.is(&u.status));
    if let Some(u) = &invitee
        && crate::services::orgs::member_row(&state.db, org.id, u.id).await?.is_some()
    {
        return Err(ErrorCode::AlreadyMember.into());
    }
    limit_mails(state, ctx, org.id, email).await?;
    let inviter = inviter(state, p).await?;
    let token = random_token(32);
    let now = Utc::now();
    let id = Uuid::now_v7();
    let mut w = Write::begin(state, ctx).await?;
    let open = invitation::Entity::find()
        .filter(invitation::Column::OrganizationId.eq(org.id))
        .filter(invitation::Column::Email.eq(email.as_str()))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .one(w.tx())
        .await?;
    if let Some(old) = &open {
        let mut am: invitation::ActiveModel = old.clone().into();
        am.revoked_at = Set(Some(now));
        am.updated_at = Set(now);
        am.update(w.tx()).await?;
        record_revoked(&mut w, old, "replaced").await?;
    }
    let m = invitation::ActiveModel {
        id: Set(id),
        organization_id: Set(org.id),
        email: Set(email.as_str().to_owned()),
        role: Set(role.as_str().to_owned()),
        token_hash: Set(sha256_hex(&token)),
        message: Set(message),
        invited_by: Set(p.user_id()),
        expires_at: Set(now + state.config.invitation_ttl),
        accepted_at: Set(None),
        revoked_at: Set(None),
        accepted_user_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(w.tx())
    .await?;
    w.record(Change {
        event: EventType::OrganizationInvitationCreated,
        target: Some(("invitation", m.id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: Some(org.id),
        data: serde_json::json!({
            "invitation_id": m.id, "organization_id": org.id, "email": m.email, "role": m.role,
            "invited_by": m.invited_by, "expires_at": m.expires_at, "replaces": open.map(|o| o.id),
        }),
    })
    .await?;
    queue_mail(&mut w, state, &m, &token, org, inviter, invitee.and_then(|u| u.locale)).await?;
    w.commit().await?;
    Ok(m.into())
}

/// The name the mail gives for who invited: the person's name, else their address; `None` for
/// an API key.
async fn inviter(state: &AppState, p: &Principal) -> AppResult<Option<String>> {
    let Some(id) = p.user_id() else {
        return Ok(None);
    };
    Ok(user::Entity::find_by_id(id).one(&state.db).await?.map(|u| u.name.unwrap_or(u.email)))
}

/// Queues the invitation mail in the write (sent after the commit): in the invitee's language
/// when they have an account that names one, else the inviting request's.
async fn queue_mail(
    w: &mut Write<'_>,
    state: &AppState,
    inv: &invitation::Model,
    token: &str,
    org: &organization::Model,
    inviter: Option<String>,
    invitee_locale: Option<String>,
) -> AppResult<()> {
    let locale = mail::locale_for(invitee_locale.as_deref(), w.ctx());
    let kind = MailKind::Invitation {
        link: mail::link(&state.config, ACCEPT_PATH, token),
        organization: org.name.clone(),
        inviter,
        message: inv.message.clone(),
    };
    mail::queue(w, &inv.email, Some(&locale), kind).await
}

/// Takes a unit of every invitation-mail limit that applies, most specific first: the client,
/// this organization and address, the address across organizations, the organization.
async fn limit_mails(state: &AppState, ctx: &RequestContext, org: Uuid, email: &Email) -> AppResult<()> {
    let l = &state.invitation_limits;
    // Addresses are hashed: the limiter store holds no one's address.
    let address = mail_limits::address_key(email.as_str());
    let mut checks = Vec::with_capacity(4);
    if let Some(ip) = ctx.client_ip {
        checks.push((&l.client, mail_limits::ip_key(ip)));
    }
    checks.push((&l.org_address, format!("{org}:{address}")));
    checks.push((&l.address, address));
    checks.push((&l.organization, org.to_string()));
    for (limiter, key) in checks {
        let d = limiter.check(&key).await;
        if !d.allowed {
            metrics::counter!("janua_invitation_mails_limited_total").increment(1);
            return Err(AppError::new(ErrorCode::RateLimited).with_details(serde_json::json!({
                "limit": d.limit, "window_seconds": mail::MAIL_WINDOW.as_secs(), "retry_after": d.retry_after_secs,
            })));
        }
    }
    Ok(())
}

async fn record_revoked(w: &mut Write<'_>, inv: &invitation::Model, reason: &str) -> AppResult<Uuid> {
    w.record(Change {
        event: EventType::OrganizationInvitationRevoked,
        target: Some(("invitation", inv.id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: Some(inv.organization_id),
        data: serde_json::json!({
            "invitation_id": inv.id, "organization_id": inv.organization_id, "email": inv.email,
            "role": inv.role, "reason": reason,
        }),
    })
    .await
}

/// Loads an invitation and checks that the caller manages it (`NOT_FOUND` otherwise, as for an
/// unknown id).
async fn managed(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
) -> AppResult<(invitation::Model, Principal, organization::Model)> {
    let inv = invitation::Entity::find_by_id(id).one(&state.db).await?.ok_or(ErrorCode::NotFound)?;
    let p = authz::principal(state, ctx).await?;
    let role = OrgRole::parse(&inv.role).unwrap_or(OrgRole::Owner);
    let org = authorize_invitations(state, &p, inv.organization_id, role).await?;
    Ok((inv, p, org))
}

fn not_open(inv: &invitation::Model) -> Option<AppError> {
    let reason = match InvitationStatus::of(inv.accepted_at, inv.revoked_at, inv.expires_at, Utc::now()) {
        InvitationStatus::Accepted => "invitation_accepted",
        InvitationStatus::Revoked => "invitation_revoked",
        InvitationStatus::Pending | InvitationStatus::Expired => return None,
    };
    Some(AppError::new(ErrorCode::Conflict).with_details(serde_json::json!({"reason": reason})))
}

/// Sends an open invitation again with a new token and a new expiry; the previous token stops
/// working. An accepted or revoked invitation → `CONFLICT` (`details.reason`).
pub async fn resend_invitation(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
) -> AppResult<InvitationView> {
    let (inv, p, org) = managed(state, ctx, id).await?;
    if let Some(e) = not_open(&inv) {
        return Err(e);
    }
    let email = Email::parse(&inv.email)?;
    limit_mails(state, ctx, inv.organization_id, &email).await?;
    let inviter = inviter(state, &p).await?;
    let invitee_locale = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&state.db)
        .await?
        .and_then(|u| u.locale);
    let token = random_token(32);
    let now = Utc::now();
    let expires_at = now + state.config.invitation_ttl;
    let mut w = Write::begin(state, ctx).await?;
    // Only while still open: an acceptance or revocation meanwhile wins.
    let changed = invitation::Entity::update_many()
        .col_expr(invitation::Column::TokenHash, Expr::value(sha256_hex(&token)))
        .col_expr(invitation::Column::ExpiresAt, Expr::value(expires_at))
        .col_expr(invitation::Column::UpdatedAt, Expr::value(now))
        .filter(invitation::Column::Id.eq(id))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .exec(w.tx())
        .await?
        .rows_affected;
    let m = invitation::Entity::find_by_id(id).one(w.tx()).await?.ok_or(ErrorCode::NotFound)?;
    if changed != 1 {
        return Err(not_open(&m).unwrap_or_else(|| ErrorCode::NotFound.into()));
    }
    w.record(Change {
        event: EventType::OrganizationInvitationResent,
        target: Some(("invitation", id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: Some(m.organization_id),
        data: serde_json::json!({
            "invitation_id": id, "organization_id": m.organization_id, "email": m.email,
            "role": m.role, "expires_at": m.expires_at,
        }),
    })
    .await?;
    queue_mail(&mut w, state, &m, &token, &org, inviter, invitee_locale).await?;
    w.commit().await?;
    Ok(m.into())
}

/// Withdraws an invitation: its token stops working at once. Revoking a revoked invitation
/// answers it as it is; an accepted one → `CONFLICT` (remove the member instead).
pub async fn revoke_invitation(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
) -> AppResult<InvitationView> {
    let (inv, ..) = managed(state, ctx, id).await?;
    if inv.revoked_at.is_some() {
        return Ok(inv.into());
    }
    if let Some(e) = not_open(&inv) {
        return Err(e);
    }
    let now = Utc::now();
    let mut w = Write::begin(state, ctx).await?;
    let changed = invitation::Entity::update_many()
        .col_expr(invitation::Column::RevokedAt, Expr::value(now))
        .col_expr(invitation::Column::UpdatedAt, Expr::value(now))
        .filter(invitation::Column::Id.eq(id))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .exec(w.tx())
        .await?
        .rows_affected;
    let m = invitation::Entity::find_by_id(id).one(w.tx()).await?.ok_or(ErrorCode::NotFound)?;
    if changed != 1 {
        return match not_open(&m) {
            Some(_) if m.revoked_at.is_some() => Ok(m.into()),
            Some(e) => Err(e),
            None => Err(ErrorCode::NotFound.into()),
        };
    }
    record_revoked(&mut w, &m, "revoked").await?;
    w.commit().await?;
    Ok(m.into())
}

/// An organization's invitations, newest first (without `organization_id`: those of every
/// organization the caller administers): by default the open ones (pending and expired), or
/// those of one `status`.
pub async fn list_invitations(
    state: &AppState,
    ctx: &RequestContext,
    organization_id: Option<Uuid>,
    status: Option<&str>,
    req: &ListRequest,
) -> AppResult<Page<InvitationView>> {
    let status = status
        .filter(|s| !s.is_empty())
        .map(|s| {
            InvitationStatus::parse(s).ok_or_else(|| AppError::field("status", FieldIssue::InvalidFormat))
        })
        .transpose()?;
    let p = authz::principal(state, ctx).await?;
    // `None`: every organization (administrators).
    let scope: Option<Vec<Uuid>> = match (organization_id, &p) {
        (Some(org), _) => {
            authorize_invitations(state, &p, org, OrgRole::Admin).await?;
            Some(vec![org])
        }
        (None, _) if p.is_admin() => None,
        (None, Principal::User { id, .. }) => Some(authz::administered_orgs(&state.db, *id).await?),
        (None, Principal::ApiKey { organization_id: Some(org), .. }) => {
            authorize_invitations(state, &p, *org, OrgRole::Admin).await?;
            Some(vec![*org])
        }
        (None, Principal::Anonymous(code)) => return Err((*code).into()),
        // An administrator's key manages no organization's members.
        (None, _) => return Err(ErrorCode::Forbidden.into()),
    };
    let now = Utc::now();
    let open = Condition::all()
        .add(invitation::Column::AcceptedAt.is_null())
        .add(invitation::Column::RevokedAt.is_null());
    let cond = match status {
        None => open,
        Some(InvitationStatus::Pending) => open.add(invitation::Column::ExpiresAt.gt(now)),
        Some(InvitationStatus::Expired) => open.add(invitation::Column::ExpiresAt.lte(now)),
        Some(InvitationStatus::Accepted) => {
            Condition::all().add(invitation::Column::AcceptedAt.is_not_null())
        }
        Some(InvitationStatus::Revoked) => Condition::all()
            .add(invitation::Column::AcceptedAt.is_null())
            .add(invitation::Column::RevokedAt.is_not_null()),
    };
    let mut base = invitation::Entity::find().filter(cond);
    if let Some(orgs) = scope {
        base = base.filter(invitation::Column::OrganizationId.is_in(orgs));
    }
    let keyset = Keyset::<invitation::Entity> {
        column: invitation::Column::Id,
        id: invitation::Column::Id,
        desc: true,
        value_of: |m| m.id.to_string().into(),
        id_of: |m| m.id,
        decode: decode_uuid,
    };
    let page = keyset.page(&state.db, &state.counts, base, req).await?;
    Ok(crate::services::orgs::map_page(page, InvitationView::from))
}
