//! THE permission policy: who may do what to which resource. Every service asks here; no role
//! check lives anywhere else. Decisions are pure functions of the facts gathered by the caller.
//!
//! Refusals follow one rule: a caller who may not even see a resource gets `NOT_FOUND` (no
//! existence leak); one who sees it but may not change it gets `INSUFFICIENT_PERMISSIONS`;
//! administrator-only areas answer `FORBIDDEN`; anonymous callers `AUTHENTICATION_REQUIRED`.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use entities::{org_member, organization};

use crate::context::{Actor, RequestContext};
use crate::domain::UserStatus;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::state::AppState;

pub use crate::domain::OrgRole;

/// Organizations where `user` holds an administering role (owner or admin): the only source
/// of an organization admin's view of people, sessions and audit events.
pub async fn administered_orgs(db: &impl sea_orm::ConnectionTrait, user: Uuid) -> AppResult<Vec<Uuid>> {
    Ok(org_member::Entity::find()
        .filter(org_member::Column::UserId.eq(user))
        .filter(org_member::Column::Role.is_in(OrgRole::ADMINISTERING.map(OrgRole::as_str)))
        .select_only()
        .column(org_member::Column::OrganizationId)
        .into_tuple::<Uuid>()
        .all(db)
        .await?)
}

/// The users a caller may list: `None` for all (administrators, administrator keys), else the
/// organizations whose members it sees (those it administers, or the key's organization).
pub async fn user_list_scope(
    db: &impl sea_orm::ConnectionTrait,
    p: &Principal,
) -> AppResult<Option<Vec<Uuid>>> {
    match p {
        _ if p.is_admin() => Ok(None),
        Principal::User { id, .. } => {
            let orgs = administered_orgs(db, *id).await?;
            if orgs.is_empty() {
                return Err(ErrorCode::Forbidden.into());
            }
            Ok(Some(orgs))
        }
        Principal::ApiKey { organization_id: Some(org), .. } => Ok(Some(vec![*org])),
        Principal::ApiKey { .. } => Ok(None),
        Principal::Scim { .. } => Err(ErrorCode::Forbidden.into()),
        Principal::Anonymous(c) => Err((*c).into()),
    }
}

/// Facts the policy needs about the caller's view of user `target`: whether the caller
/// administers an organization `target` belongs to, and whether an API key with `users:read`
/// belongs to one (or is an administrator key).
pub async fn user_visibility(
    db: &impl sea_orm::ConnectionTrait,
    p: &Principal,
    target: Uuid,
) -> AppResult<(bool, bool)> {
    let target_orgs: Vec<Uuid> = org_member::Entity::find()
        .filter(org_member::Column::UserId.eq(target))
        .select_only()
        .column(org_member::Column::OrganizationId)
        .into_tuple()
        .all(db)
        .await?;
    let via_org_admin = match p.user_id() {
        Some(me) if !target_orgs.is_empty() => {
            let mine = administered_orgs(db, me).await?;
            target_orgs.iter().any(|o| mine.contains(o))
        }
        _ => false,
    };
    // A key sees the users of its organization only with `users:read`.
    let in_key_org = match p {
        Principal::ApiKey { organization_id: Some(org), scopes, .. } => {
            target_orgs.contains(org) && scopes.contains(&Scope::UsersRead)
        }
        Principal::ApiKey { organization_id: None, scopes, .. } => scopes.contains(&Scope::UsersRead),
        _ => false,
    };
    Ok((via_org_admin, in_key_org))
}

/// A personal resource (a session, a passkey, a personal webhook endpoint) is its owner's
/// alone: to anyone else, administrators included, it does not exist.
pub fn owned_by(caller: Uuid, owner: Uuid) -> AppResult<()> {
    if caller == owner { Ok(()) } else { Err(ErrorCode::NotFound.into()) }
}

/// What an API key may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    UsersRead,
    OrganizationsRead,
    OrganizationsWrite,
    MembersRead,
    MembersWrite,
    AuditRead,
    AdminRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 7] = [
        Self::UsersRead,
        Self::OrganizationsRead,
        Self::OrganizationsWrite,
        Self::MembersRead,
        Self::MembersWrite,
        Self::AuditRead,
        Self::AdminRead,
    ];

    /// The scope string (`users:read`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsersRead => "users:read",
            Self::OrganizationsRead => "organizations:read",
            Self::OrganizationsWrite => "organizations:write",
            Self::MembersRead => "members:read",
            Self::MembersWrite => "members:write",
            Self::AuditRead => "audit:read",
            Self::AdminRead => "admin:read",
        }
    }

    /// Parses a scope string.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// The caller, with the facts the policy needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Anonymous(ErrorCode),
    User {
        id: Uuid,
        is_admin: bool,
    },
    ApiKey {
        id: Uuid,
        organization_id: Option<Uuid>,
        scopes: Vec<Scope>,
    },
    /// An organization's SCIM token: it provisions that organization and does nothing else.
    Scim {
        token: Uuid,
        organization_id: Uuid,
    },
}

impl Principal {
    /// Whether this is a global administrator (a user, or an administrator's key for reads).
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::User { is_admin: true, .. })
    }

    /// The user id, for user principals.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Self::User { id, .. } => Some(*id),
            _ => None,
        }
    }

    fn key_allows(&self, org: Option<Uuid>, scope: Scope) -> bool {
        match self {
            Self::ApiKey { organization_id, scopes, .. } => {
                scopes.contains(&scope)
                    && (organization_id.is_none() || org.is_none() || *organization_id == org)
            }
            _ => false,
        }
    }
}

/// An action on a resource, with what the caller's relation to it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// List users (the service narrows the list to what the caller may see).
    ListUsers,
    /// Read a user; `via_org_admin`: the caller administers an organization the user belongs to;
    /// `in_key_org`: the user belongs to the API key's organization.
    ReadUser {
        user: Uuid,
        via_org_admin: bool,
        in_key_org: bool,
    },
    /// Update a user; `privileged`: status, is_admin or email_verified change.
    UpdateUser {
        user: Uuid,
        privileged: bool,
        visible: bool,
    },
    DeleteUser {
        user: Uuid,
        visible: bool,
    },
    CreateOrganization,
    /// Read an organization (and its member list) where the caller has `role`.
    ReadOrganization {
        org: Uuid,
        role: Option<OrgRole>,
    },
    UpdateOrganization {
        org: Uuid,
        role: Option<OrgRole>,
    },
    ReadMembers {
        org: Uuid,
        role: Option<OrgRole>,
    },
    /// Add, re-role or remove a member whose role is or becomes `touches_owner`.
    ManageMembers {
        org: Uuid,
        role: Option<OrgRole>,
        touches_owner: bool,
        is_self: bool,
    },
    /// Invite people to an organization, list, resend and revoke its invitations;
    /// `invites_owner`: the invitation is (or would be) for the owner role.
    ManageInvitations {
        org: Uuid,
        role: Option<OrgRole>,
        invites_owner: bool,
    },
    ManageApiKeys {
        org: Uuid,
        role: Option<OrgRole>,
    },
    /// An organization's webhook endpoints.
    ManageWebhooks {
        org: Uuid,
        role: Option<OrgRole>,
    },
    /// An organization's SSO providers (configuration, secrets sealed).
    ManageSso {
        org: Uuid,
        role: Option<OrgRole>,
    },
    /// An organization's SCIM tokens.
    ManageScimTokens {
        org: Uuid,
        role: Option<OrgRole>,
    },
    /// Provision an organization's users and groups over SCIM.
    Provision {
        org: Uuid,
    },
    /// Administrator API keys (no organization).
    ManageAdminApiKeys,
    /// Read an organization's audit log.
    ReadOrgAudit {
        org: Uuid,
        role: Option<OrgRole>,
    },
    /// Administrator reads (`/admin/*`).
    AdminRead,
}

fn deny(code: ErrorCode) -> AppResult<()> {
    Err(AppError::new(code))
}

/// Decides whether `p` may do `a`.
pub fn authorize(p: &Principal, a: &Action) -> AppResult<()> {
    use Action::*;
    use ErrorCode::{Forbidden, InsufficientPermissions as Insufficient, NotFound};
    if let Principal::Anonymous(code) = p {
        return deny(*code);
    }
    // A SCIM token provisions its own organization, and that is all it can do (administrators
    // included: provisioning is the identity provider's, through its token).
    if let Principal::Scim { organization_id, .. } = p {
        return match a {
            Provision { org } if org == organization_id => Ok(()),
            Provision { .. } => deny(NotFound),
            _ => deny(Forbidden),
        };
    }
    if let Provision { .. } = a {
        return deny(Forbidden);
    }
    if p.is_admin() {
        return Ok(());
    }
    let uid = p.user_id();
    let at_least = |role: &Option<OrgRole>, min: OrgRole| role.is_some_and(|r| r >= min);
    let ok = match a {
        ListUsers => uid.is_some() || p.key_allows(None, Scope::UsersRead),
        ReadUser { user, via_org_admin, in_key_org } => {
            uid == Some(*user) || *via_org_admin || (*in_key_org && p.key_allows(None, Scope::UsersRead))
        }
        UpdateUser { user, privileged, visible } => {
            if uid != Some(*user) {
                return deny(if *visible { Insufficient } else { NotFound });
            }
            if *privileged {
                return deny(Insufficient);
            }
            true
        }
        DeleteUser { user, visible } => {
            if uid != Some(*user) {
                return deny(if *visible { Insufficient } else { NotFound });
            }
            true
        }
        CreateOrganization => uid.is_some(),
        ReadOrganization { org, role } => {
            role.is_some() || p.key_allows(Some(*org), Scope::OrganizationsRead)
        }
        ReadMembers { org, role } => role.is_some() || p.key_allows(Some(*org), Scope::MembersRead),
        UpdateOrganization { org, role } => {
            if role.is_none() && !p.key_allows(Some(*org), Scope::OrganizationsRead) {
                return deny(NotFound);
            }
            at_least(role, OrgRole::Admin) || p.key_allows(Some(*org), Scope::OrganizationsWrite)
        }
        ManageMembers { org, role, touches_owner, is_self } => {
            if role.is_none() && !p.key_allows(Some(*org), Scope::MembersRead) {
                return deny(NotFound);
            }
            if *touches_owner {
                at_least(role, OrgRole::Owner)
            } else {
                // Anyone may leave; admins manage the rest; a members:write key manages non-owners.
                (*is_self && role.is_some())
                    || at_least(role, OrgRole::Admin)
                    || p.key_allows(Some(*org), Scope::MembersWrite)
            }
        }
        // Nobody invites above their own role: owners invite owners, admins (and a members:write
        // key) everyone else.
        ManageInvitations { org, role, invites_owner } => {
            if role.is_none() && !p.key_allows(Some(*org), Scope::MembersRead) {
                return deny(NotFound);
            }
            if *invites_owner {
                at_least(role, OrgRole::Owner)
            } else {
                at_least(role, OrgRole::Admin) || p.key_allows(Some(*org), Scope::MembersWrite)
            }
        }
        ManageApiKeys { role, .. }
        | ManageWebhooks { role, .. }
        | ManageSso { role, .. }
        | ManageScimTokens { role, .. } => {
            if matches!(p, Principal::ApiKey { .. }) {
                return deny(Forbidden);
            }
            if role.is_none() {
                return deny(NotFound);
            }
            at_least(role, OrgRole::Admin)
        }
        ReadOrgAudit { org, role } => {
            if role.is_none() && !p.key_allows(Some(*org), Scope::AuditRead) {
                return deny(NotFound);
            }
            at_least(role, OrgRole::Admin) || p.key_allows(Some(*org), Scope::AuditRead)
        }
        ManageAdminApiKeys => return deny(Forbidden),
        Provision { .. } => false,
        AdminRead => {
            return if matches!(p, Principal::ApiKey { organization_id: None, .. })
                && p.key_allows(None, Scope::AdminRead)
            {
                Ok(())
            } else {
                deny(Forbidden)
            };
        }
    };
    if ok {
        return Ok(());
    }
    // Refused: hide what the caller cannot see, else say the role is not enough.
    match a {
        ReadUser { .. } | ReadOrganization { .. } | ReadMembers { .. } => deny(NotFound),
        ListUsers | CreateOrganization => deny(Forbidden),
        _ => deny(Insufficient),
    }
}

/// Whether adding a member adds them at once rather than inviting them: only trusted
/// provisioning does — administrators and API keys (SCIM provisions through its own routes). A
/// person who administers an organization invites, so nobody joins one without consenting.
pub fn adds_members_directly(p: &Principal) -> bool {
    p.is_admin() || matches!(p, Principal::ApiKey { .. } | Principal::Scim { .. })
}

/// Resolves the caller of a request: a user's admin flag and status are read from the database
/// (a suspended or deleted user is refused even with a live token).
pub async fn principal(state: &AppState, ctx: &RequestContext) -> AppResult<Principal> {
    match &ctx.actor {
        Actor::Anonymous => {
            Ok(Principal::Anonymous(ctx.auth_error.unwrap_or(ErrorCode::AuthenticationRequired)))
        }
        Actor::User(u) => {
            let row = crate::services::users::caller(state, u).await?.ok_or(ErrorCode::SessionRevoked)?;
            if !UserStatus::Active.is(&row.status) {
                return Err(ErrorCode::AccountDisabled.into());
            }
            Ok(Principal::User { id: row.id, is_admin: row.is_admin })
        }
        Actor::ApiKey(k) => Ok(Principal::ApiKey {
            id: k.key_id,
            organization_id: k.organization_id,
            scopes: k.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        }),
        Actor::Scim(t) => Ok(Principal::Scim { token: t.token_id, organization_id: t.organization_id }),
    }
}

/// The role of a user principal in `org`, if any. An organization that does not exist is
/// `NOT_FOUND` for every caller who is not a member of it (administrators and API keys
/// included), so no write goes on to refer to it (found by API fuzzing: an administrator's
/// SCIM token or API key for an unknown organization was a foreign-key 500, a webhook was made).
pub async fn role_in(state: &AppState, p: &Principal, org: Uuid) -> AppResult<Option<OrgRole>> {
    if let Some(uid) = p.user_id()
        && let Some(m) = org_member::Entity::find()
            .filter(org_member::Column::OrganizationId.eq(org))
            .filter(org_member::Column::UserId.eq(uid))
            .one(&state.db)
            .await?
    {
        return Ok(OrgRole::parse(&m.role));
    }
    if organization::Entity::find_by_id(org).one(&state.db).await?.is_none() {
        return Err(ErrorCode::NotFound.into());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(
            OrgRole::Owner > OrgRole::Admin
                && OrgRole::Admin > OrgRole::Member
                && OrgRole::Member > OrgRole::Viewer
        );
    }

    #[test]
    fn organization_decisions() {
        let org = Uuid::now_v7();
        let user = Principal::User { id: Uuid::now_v7(), is_admin: false };
        let code = |p: &Principal, a: Action| authorize(p, &a).err().map(|e| e.code);
        assert_eq!(code(&user, Action::ReadOrganization { org, role: None }), Some(ErrorCode::NotFound));
        assert_eq!(code(&user, Action::ReadOrganization { org, role: Some(OrgRole::Viewer) }), None);
        assert_eq!(
            code(&user, Action::UpdateOrganization { org, role: Some(OrgRole::Member) }),
            Some(ErrorCode::InsufficientPermissions)
        );
        assert_eq!(code(&user, Action::UpdateOrganization { org, role: Some(OrgRole::Admin) }), None);
        let touch_owner =
            |role| Action::ManageMembers { org, role: Some(role), touches_owner: true, is_self: false };
        assert_eq!(code(&user, touch_owner(OrgRole::Admin)), Some(ErrorCode::InsufficientPermissions));
        assert_eq!(code(&user, touch_owner(OrgRole::Owner)), None);
        let key = Principal::ApiKey {
            id: Uuid::now_v7(),
            organization_id: Some(org),
            scopes: vec![Scope::OrganizationsRead],
        };
        assert_eq!(code(&key, Action::ReadOrganization { org, role: None }), None);
        assert_eq!(
            code(&key, Action::ReadOrganization { org: Uuid::now_v7(), role: None }),
            Some(ErrorCode::NotFound)
        );
        assert_eq!(
            code(&key, Action::UpdateOrganization { org, role: None }),
            Some(ErrorCode::InsufficientPermissions)
        );
        assert_eq!(code(&key, Action::AdminRead), Some(ErrorCode::Forbidden));
        let invite = |role, invites_owner| Action::ManageInvitations { org, role, invites_owner };
        assert_eq!(code(&user, invite(None, false)), Some(ErrorCode::NotFound));
        assert_eq!(
            code(&user, invite(Some(OrgRole::Member), false)),
            Some(ErrorCode::InsufficientPermissions)
        );
        assert_eq!(code(&user, invite(Some(OrgRole::Admin), false)), None);
        assert_eq!(code(&user, invite(Some(OrgRole::Admin), true)), Some(ErrorCode::InsufficientPermissions));
        assert_eq!(code(&user, invite(Some(OrgRole::Owner), true)), None);
        assert!(!adds_members_directly(&user) && adds_members_directly(&key));
        assert_eq!(
            code(&Principal::Anonymous(ErrorCode::AuthenticationRequired), Action::CreateOrganization),
            Some(ErrorCode::AuthenticationRequired)
        );
    }
}
