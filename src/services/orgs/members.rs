//! The members of an organization: listing, adding (or inviting), role changes, removal.

use super::*;

/// The members of an organization, oldest first.
pub async fn list_members(
    state: &AppState,
    ctx: &RequestContext,
    org_id: Uuid,
    req: &ListRequest,
) -> AppResult<Page<MemberView>> {
    let p = authz::principal(state, ctx).await?;
    let (_, role) =
        authorized_org(state, &p, org_id, |role| Action::ReadMembers { org: org_id, role }).await?;
    let administers = p.is_admin() || role.is_some_and(|r| r >= OrgRole::Admin);
    let keyset = Keyset::<org_member::Entity> {
        column: org_member::Column::Id,
        id: org_member::Column::Id,
        desc: false,
        value_of: |m| m.id.to_string().into(),
        id_of: |m| m.id,
        decode: decode_uuid,
    };
    let base = org_member::Entity::find().filter(org_member::Column::OrganizationId.eq(org_id));
    let page = keyset.page(&state.db, &state.counts, base, req).await?;
    let ids: Vec<Uuid> = page.items.iter().map(|(_, m)| m.user_id).collect();
    let users: std::collections::HashMap<Uuid, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let mut links = if administers {
        crate::services::scim::users::links(&state.db, org_id, &users.keys().copied().collect::<Vec<_>>())
            .await?
    } else {
        Default::default()
    };
    let Page { items, has_next, has_previous, total_count } = page;
    let items = items
        .into_iter()
        .filter_map(|(c, m)| {
            let u = users.get(&m.user_id)?;
            let scim = links.remove(&m.user_id);
            Some((c, MemberView { user: u.clone().into(), role: m.role, joined_at: m.joined_at, scim }))
        })
        .collect();
    Ok(Page { items, has_next, has_previous, total_count })
}

pub(crate) async fn member_row(
    db: &impl ConnectionTrait,
    org: Uuid,
    user_id: Uuid,
) -> AppResult<Option<org_member::Model>> {
    Ok(org_member::Entity::find()
        .filter(org_member::Column::OrganizationId.eq(org))
        .filter(org_member::Column::UserId.eq(user_id))
        .one(db)
        .await?)
}

/// The organization's owners, counted after locking its row for the rest of `txn`
/// (`SELECT … FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already serialises writers):
/// two owners leaving at once cannot both see the other one still there.
pub(crate) async fn owner_count(db: &impl ConnectionTrait, org: Uuid) -> AppResult<u64> {
    organization::Entity::find_by_id(org).lock_exclusive().one(db).await?;
    Ok(org_member::Entity::find()
        .filter(org_member::Column::OrganizationId.eq(org))
        .filter(org_member::Column::Role.eq(OrgRole::Owner.as_str()))
        .count(db)
        .await?)
}

fn parse_role(role: &str) -> AppResult<OrgRole> {
    OrgRole::parse(role).ok_or_else(|| AppError::field("role", FieldIssue::InvalidFormat))
}

fn last_owner() -> AppError {
    AppError::new(ErrorCode::Conflict).with_details(serde_json::json!({"reason": "last_owner"}))
}

/// What adding a member did: added them at once (administrators, API keys) or invited them
/// (a person administering the organization: membership once the invitee accepts).
#[derive(Clone, Debug)]
pub enum Added {
    Member(MemberView),
    Invited(InvitationView),
}

/// Adds a user (by id or email) with a role. Trusted provisioning (administrators, API keys
/// with `members:write`) adds an existing account at once; a person who administers the
/// organization makes an invitation instead, with the same answer whether or not the address
/// has an account.
pub async fn add_member(
    state: &AppState,
    ctx: &RequestContext,
    org_id: Uuid,
    user_ref: UserRef,
    role: &str,
) -> AppResult<Added> {
    let new_role = parse_role(role)?;
    let p = authz::principal(state, ctx).await?;
    if !authz::adds_members_directly(&p) {
        return Ok(Added::Invited(
            invitations::invite_member(state, ctx, &p, org_id, user_ref, new_role).await?,
        ));
    }
    let caller_role = authz::role_in(state, &p, org_id).await?;
    authz::authorize(
        &p,
        &Action::ManageMembers {
            org: org_id,
            role: caller_role,
            touches_owner: new_role == OrgRole::Owner,
            is_self: false,
        },
    )?;
    find_org(&state.db, org_id).await?;
    let target = match user_ref {
        UserRef::Id(id) => user::Entity::find_by_id(id).one(&state.db).await?,
        UserRef::Email(e) => {
            let e = crate::domain::Email::parse(&e)?;
            user::Entity::find().filter(user::Column::Email.eq(e.as_str())).one(&state.db).await?
        }
    }
    .filter(|u| !UserStatus::Deleted.is(&u.status))
    .ok_or(ErrorCode::NotFound)?;
    let mut w = Write::begin(state, ctx).await?;
    if member_row(w.tx(), org_id, target.id).await?.is_some() {
        return Err(AppError::new(ErrorCode::Conflict).with_details(serde_json::json!({"field": "user_id"})));
    }
    let m = insert_member(w.tx(), org_id, target.id, new_role).await?;
    w.record(Change {
        event: EventType::OrganizationMemberAdded,
        target: Some(("user", target.id.to_string())),
        subject_user: Some(target.id),
        acting_user: None,
        organization: Some(org_id),
        data: serde_json::json!({"organization_id": org_id, "user_id": target.id, "role": m.role}),
    })
    .await?;
    w.commit().await?;
    Ok(Added::Member(MemberView { user: target.into(), role: m.role, joined_at: m.joined_at, scim: None }))
}

/// Who to add: a user id or an email address.
#[derive(Debug, Clone)]
pub enum UserRef {
    Id(Uuid),
    Email(String),
}

/// Changes a member's role; the last owner cannot be demoted.
pub async fn update_member_role(
    state: &AppState,
    ctx: &RequestContext,
    org_id: Uuid,
    user_id: Uuid,
    role: &str,
) -> AppResult<MemberView> {
    let new_role = parse_role(role)?;
    let p = authz::principal(state, ctx).await?;
    let caller_role = authz::role_in(state, &p, org_id).await?;
    let mut w = Write::begin(state, ctx).await?;
    let current = member_row(w.tx(), org_id, user_id).await?;
    let touches_owner =
        new_role == OrgRole::Owner || current.as_ref().is_some_and(|m| OrgRole::Owner.is(&m.role));
    authz::authorize(
        &p,
        &Action::ManageMembers { org: org_id, role: caller_role, touches_owner, is_self: false },
    )?;
    let current = current.ok_or(ErrorCode::NotFound)?;
    if OrgRole::Owner.is(&current.role)
        && new_role != OrgRole::Owner
        && owner_count(w.tx(), org_id).await? <= 1
    {
        return Err(last_owner());
    }
    let old = current.role.clone();
    let mut am: org_member::ActiveModel = current.into();
    am.role = Set(new_role.as_str().into());
    let m = am.update(w.tx()).await?;
    w.record(Change {
        event: EventType::OrganizationMemberRoleChanged,
        target: Some(("user", user_id.to_string())),
        subject_user: Some(user_id),
        acting_user: None,
        organization: Some(org_id),
        data: serde_json::json!({"organization_id": org_id, "user_id": user_id, "from": old, "to": m.role}),
    })
    .await?;
    let u = user::Entity::find_by_id(user_id).one(w.tx()).await?.ok_or(ErrorCode::NotFound)?;
    w.commit().await?;
    Ok(MemberView { user: u.into(), role: m.role, joined_at: m.joined_at, scim: None })
}

/// Removes a member (or lets one leave); the last owner cannot.
pub async fn remove_member(
    state: &AppState,
    ctx: &RequestContext,
    org_id: Uuid,
    user_id: Uuid,
) -> AppResult<()> {
    let p = authz::principal(state, ctx).await?;
    let caller_role = authz::role_in(state, &p, org_id).await?;
    let mut w = Write::begin(state, ctx).await?;
    let current = member_row(w.tx(), org_id, user_id).await?;
    let is_self = p.user_id() == Some(user_id);
    let touches_owner = current.as_ref().is_some_and(|m| OrgRole::Owner.is(&m.role)) && !is_self;
    authz::authorize(&p, &Action::ManageMembers { org: org_id, role: caller_role, touches_owner, is_self })?;
    let current = current.ok_or(ErrorCode::NotFound)?;
    if OrgRole::Owner.is(&current.role) && owner_count(w.tx(), org_id).await? <= 1 {
        return Err(last_owner());
    }
    org_member::Entity::delete_by_id(current.id).exec(w.tx()).await?;
    w.record(Change {
        event: EventType::OrganizationMemberRemoved,
        target: Some(("user", user_id.to_string())),
        subject_user: Some(user_id),
        acting_user: None,
        organization: Some(org_id),
        data: serde_json::json!({"organization_id": org_id, "user_id": user_id, "role": current.role}),
    })
    .await?;
    w.commit().await?;
    Ok(())
}

/// Members (user id, role) of each of `orgs`, in one query (the DataLoader behind `owners`).
pub async fn members_of(db: &impl ConnectionTrait, orgs: &[Uuid]) -> AppResult<Vec<org_member::Model>> {
    Ok(org_member::Entity::find()
        .filter(org_member::Column::OrganizationId.is_in(orgs.to_vec()))
        .all(db)
        .await?)
}

/// Inserts a membership row (the caller audits it as it sees fit).
pub(crate) async fn insert_member(
    tx: &impl ConnectionTrait,
    organization_id: Uuid,
    user_id: Uuid,
    role: OrgRole,
) -> AppResult<org_member::Model> {
    Ok(org_member::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(organization_id),
        user_id: Set(user_id),
        role: Set(role.as_str().into()),
        joined_at: Set(Utc::now()),
    }
    .insert(tx)
    .await?)
}
