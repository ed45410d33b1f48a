//! What provisioning does to an organization's members: an active SCIM user is a member, a
//! deactivated or deleted one is not (and every session of theirs ends at once); a member's
//! role follows the roles of the groups they are in. Owners are never demoted by a group, and
//! the last owner is never deprovisioned.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use uuid::Uuid;

use entities::{org_member, scim_group, scim_group_member};

use crate::domain::{EventType, OrgRole};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::services::audit::Change;
use crate::services::orgs::{insert_member, member_row, owner_count};
use crate::services::unit_of_work::Write;

/// The role `user` holds through the role-carrying groups of `org` they are in (the highest),
/// or `None` when no such group has them.
pub async fn group_role(w: &Write<'_>, org: Uuid, user: Uuid) -> AppResult<Option<OrgRole>> {
    let roles: Vec<Option<String>> = scim_group::Entity::find()
        .inner_join(scim_group_member::Entity)
        .filter(scim_group::Column::OrganizationId.eq(org))
        .filter(scim_group_member::Column::UserId.eq(user))
        .filter(scim_group::Column::Role.is_not_null())
        .select_only()
        .column(scim_group::Column::Role)
        .into_tuple()
        .all(w.tx())
        .await?;
    Ok(roles.into_iter().flatten().filter_map(|r| OrgRole::parse(&r)).max())
}

/// Makes `user` a member of `org` (an active SCIM user), with the role their groups give or
/// `member`; an existing membership keeps its role.
pub async fn ensure_member(w: &mut Write<'_>, org: Uuid, user: Uuid) -> AppResult<()> {
    if member_row(w.tx(), org, user).await?.is_some() {
        return Ok(());
    }
    let role = group_role(w, org, user).await?.unwrap_or(OrgRole::Member);
    let m = insert_member(w.tx(), org, user, role).await?;
    w.record(Change {
        event: EventType::OrganizationMemberAdded,
        target: Some(("user", user.to_string())),
        subject_user: Some(user),
        acting_user: None,
        organization: Some(org),
        data: serde_json::json!({"organization_id": org, "user_id": user, "role": m.role, "via": "scim"}),
    })
    .await?;
    Ok(())
}

/// Ends `user`'s membership of `org` and revokes every session of theirs (deactivated or
/// deleted by the identity provider). The last owner cannot be deprovisioned (`CONFLICT`).
pub async fn deprovision(w: &mut Write<'_>, org: Uuid, user: Uuid, reason: &str) -> AppResult<()> {
    if let Some(m) = member_row(w.tx(), org, user).await? {
        if OrgRole::Owner.is(&m.role) && owner_count(w.tx(), org).await? <= 1 {
            return Err(AppError::new(ErrorCode::Conflict).with_details(serde_json::json!({
                "reason": "last_owner",
                "detail": "the last owner of the organization cannot be deprovisioned",
            })));
        }
        org_member::Entity::delete_by_id(m.id).exec(w.tx()).await?;
        w.record(Change {
            event: EventType::OrganizationMemberRemoved,
            target: Some(("user", user.to_string())),
            subject_user: Some(user),
            acting_user: None,
            organization: Some(org),
            data: serde_json::json!({"organization_id": org, "user_id": user, "role": m.role, "via": "scim"}),
        })
        .await?;
    }
    crate::services::users::revoke_all(w, user, reason).await
}

/// Sets the role of each of `users` who is a member of `org` to what their role-carrying groups
/// give (`member` when none does any more). Called for the people whose role-carrying groups
/// changed; owners keep their role.
pub async fn apply_group_roles(w: &mut Write<'_>, org: Uuid, users: &[Uuid]) -> AppResult<()> {
    for &user in users {
        let Some(m) = member_row(w.tx(), org, user).await? else { continue };
        if OrgRole::Owner.is(&m.role) {
            continue;
        }
        let role = group_role(w, org, user).await?.unwrap_or(OrgRole::Member);
        if role.is(&m.role) {
            continue;
        }
        let from = m.role.clone();
        let mut am: org_member::ActiveModel = m.into();
        am.role = Set(role.as_str().into());
        am.update(w.tx()).await?;
        w.record(Change {
            event: EventType::OrganizationMemberRoleChanged,
            target: Some(("user", user.to_string())),
            subject_user: Some(user),
            acting_user: None,
            organization: Some(org),
            data: serde_json::json!({
                "organization_id": org, "user_id": user, "from": from, "to": role.as_str(), "via": "scim",
            }),
        })
        .await?;
    }
    Ok(())
}
