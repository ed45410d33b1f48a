//! SCIM Groups (RFC 7643 §4.2): an organization's groups and their members (its SCIM users).
//! A group may carry an organization role (`urn:janua:params:scim:schemas:extension:2.0:Group`
//! `role`): its members hold that role in Janua (the highest of their groups').

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use entities::{scim_group, scim_group_member, scim_user};

use super::query::{self, Resource};
use super::resource::{Edit, check_if_match, location, meta, parse_id};
use super::schema::{GROUP, JANUA_GROUP_URN};
use super::{ListParams, ListResult, ScimType, document, membership, patch, provisioned_org, scim_error};
use crate::context::RequestContext;
use crate::domain::{EventType, OrgRole};
use crate::error::{AppResult, ErrorCode};
use crate::services::audit::Change;
use crate::services::unit_of_work::Write;
use crate::state::AppState;

/// A group's members as (user id, display), for rendering.
type Members = BTreeMap<Uuid, Vec<(Uuid, String)>>;

async fn members_of(db: &impl ConnectionTrait, groups: &[Uuid]) -> AppResult<Members> {
    let mut out = Members::new();
    if groups.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(Uuid, Uuid, String, Option<String>)> = scim_group_member::Entity::find()
        .filter(scim_group_member::Column::GroupId.is_in(groups.to_vec()))
        .join(
            sea_orm::JoinType::InnerJoin,
            scim_group_member::Entity::belongs_to(scim_user::Entity)
                .from(scim_group_member::Column::ScimUserId)
                .to(scim_user::Column::Id)
                .into(),
        )
        .select_only()
        .column(scim_group_member::Column::GroupId)
        .column(scim_group_member::Column::UserId)
        .column(scim_user::Column::UserName)
        .column(scim_user::Column::DisplayName)
        .order_by_asc(scim_group_member::Column::UserId)
        .into_tuple()
        .all(db)
        .await?;
    for (g, u, user_name, display) in rows {
        out.entry(g).or_default().push((u, display.unwrap_or(user_name)));
    }
    Ok(out)
}

fn render(base: &str, row: &scim_group::Model, members: &Members) -> Value {
    let mut doc = row.attributes.clone();
    let Some(obj) = doc.as_object_mut() else { return doc };
    obj.insert("id".into(), row.id.to_string().into());
    if let Some(m) = members.get(&row.id).filter(|m| !m.is_empty()) {
        let list: Vec<Value> = m
            .iter()
            .map(|(u, display)| {
                json!({"value": u.to_string(), "$ref": location(base, "Users", *u), "display": display, "type": "User"})
            })
            .collect();
        obj.insert("members".into(), list.into());
    }
    obj.insert(
        "meta".into(),
        meta("Group", location(base, "Groups", row.id), row.created_at, row.updated_at, row.version),
    );
    doc
}

async fn find_row(db: &impl ConnectionTrait, org: Uuid, id: Uuid) -> AppResult<scim_group::Model> {
    Ok(scim_group::Entity::find_by_id(id)
        .filter(scim_group::Column::OrganizationId.eq(org))
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?)
}

/// One group, rendered with its members.
pub async fn get_group(state: &AppState, ctx: &RequestContext, base: &str, id: &str) -> AppResult<Value> {
    let org = provisioned_org(state, ctx).await?;
    let row = find_row(&state.db, org, parse_id(id)?).await?;
    let members = members_of(&state.db, &[row.id]).await?;
    Ok(render(base, &row, &members))
}

/// A page of the organization's groups matching `params`; `with_members: false` (the caller
/// excluded `members`) skips reading them.
pub async fn list_groups(
    state: &AppState,
    ctx: &RequestContext,
    base: &str,
    params: &ListParams,
    with_members: bool,
) -> AppResult<ListResult> {
    let org = provisioned_org(state, ctx).await?;
    let mut q = scim_group::Entity::find().filter(scim_group::Column::OrganizationId.eq(org));
    if let Some(f) = &params.filter {
        q = q.filter(query::condition(Resource::Group, f)?);
    }
    let total = q.clone().count(&state.db).await?;
    if params.count == 0 {
        return Ok(ListResult { total, start_index: params.start_index, resources: Vec::new() });
    }
    if let Some(s) = &params.sort_by {
        let c = query::sort_column(Resource::Group, s)?;
        q = q.order_by(c, if params.descending { sea_orm::Order::Desc } else { sea_orm::Order::Asc });
    }
    let rows = q
        .order_by_asc(scim_group::Column::Id)
        .offset(params.start_index.saturating_sub(1))
        .limit(params.count)
        .all(&state.db)
        .await?;
    let members = if with_members {
        members_of(&state.db, &rows.iter().map(|r| r.id).collect::<Vec<_>>()).await?
    } else {
        Members::new()
    };
    Ok(ListResult {
        total,
        start_index: params.start_index,
        resources: rows.iter().map(|r| render(base, r, &members)).collect(),
    })
}

/// What a group document says, checked against the organization.
struct Parsed {
    display_name: String,
    external_id: Option<String>,
    role: Option<OrgRole>,
    /// Member user id → their SCIM row id.
    members: BTreeMap<Uuid, Uuid>,
    stored: Value,
}

async fn parse(w: &Write<'_>, org: Uuid, doc: &Value) -> AppResult<Parsed> {
    let display_name = doc.get("displayName").and_then(Value::as_str).unwrap_or_default().to_owned();
    let external_id = doc.get("externalId").and_then(Value::as_str).map(str::to_owned);
    let role = match doc.get(JANUA_GROUP_URN).and_then(|e| e.get("role")).and_then(Value::as_str) {
        None => None,
        Some(r) => match OrgRole::parse(&r.to_ascii_lowercase()) {
            Some(OrgRole::Owner) | None => {
                return Err(scim_error(ScimType::InvalidValue, "role is one of admin, member, viewer"));
            }
            some => some,
        },
    };
    let mut wanted = BTreeSet::new();
    for m in doc.get("members").and_then(Value::as_array).into_iter().flatten() {
        let v = m.get("value").and_then(Value::as_str).unwrap_or_default();
        let id = Uuid::parse_str(v).map_err(|_| {
            scim_error(ScimType::InvalidValue, format!("member '{v}' is not a user of this organization"))
        })?;
        wanted.insert(id);
    }
    let mut members = BTreeMap::new();
    for chunk in wanted.iter().copied().collect::<Vec<_>>().chunks(500) {
        let found: Vec<(Uuid, Uuid)> = scim_user::Entity::find()
            .filter(scim_user::Column::OrganizationId.eq(org))
            .filter(scim_user::Column::UserId.is_in(chunk.to_vec()))
            .select_only()
            .column(scim_user::Column::UserId)
            .column(scim_user::Column::Id)
            .into_tuple()
            .all(w.tx())
            .await?;
        members.extend(found);
    }
    if let Some(missing) = wanted.iter().find(|u| !members.contains_key(u)) {
        return Err(scim_error(
            ScimType::InvalidValue,
            format!("member '{missing}' is not a user of this organization"),
        ));
    }
    let mut stored = doc.clone();
    if let Some(o) = stored.as_object_mut() {
        for k in ["id", "meta", "members"] {
            o.remove(k);
        }
    }
    Ok(Parsed { display_name, external_id, role, members, stored })
}

async fn name_free(w: &Write<'_>, org: Uuid, name: &str, except: Option<Uuid>) -> AppResult<()> {
    let mut q = scim_group::Entity::find()
        .filter(scim_group::Column::OrganizationId.eq(org))
        .filter(scim_group::Column::DisplayNameLc.eq(name.to_lowercase()));
    if let Some(id) = except {
        q = q.filter(scim_group::Column::Id.ne(id));
    }
    if q.one(w.tx()).await?.is_some() {
        return Err(scim_error(
            ScimType::Uniqueness,
            "another group of this organization has this displayName",
        ));
    }
    Ok(())
}

/// Sets the group's member rows to `wanted`; returns the user ids added and removed (whose
/// `groups` changed, so their versions move too).
async fn set_members(
    w: &Write<'_>,
    org: Uuid,
    group: Uuid,
    wanted: &BTreeMap<Uuid, Uuid>,
) -> AppResult<(Vec<Uuid>, Vec<Uuid>)> {
    let current: BTreeSet<Uuid> = scim_group_member::Entity::find()
        .filter(scim_group_member::Column::GroupId.eq(group))
        .select_only()
        .column(scim_group_member::Column::UserId)
        .into_tuple::<Uuid>()
        .all(w.tx())
        .await?
        .into_iter()
        .collect();
    let added: Vec<Uuid> = wanted.keys().filter(|u| !current.contains(u)).copied().collect();
    let removed: Vec<Uuid> = current.iter().filter(|u| !wanted.contains_key(u)).copied().collect();
    for chunk in removed.chunks(500) {
        scim_group_member::Entity::delete_many()
            .filter(scim_group_member::Column::GroupId.eq(group))
            .filter(scim_group_member::Column::UserId.is_in(chunk.to_vec()))
            .exec(w.tx())
            .await?;
    }
    for chunk in added.chunks(500) {
        scim_group_member::Entity::insert_many(chunk.iter().map(|u| scim_group_member::ActiveModel {
            id: Set(Uuid::now_v7()),
            group_id: Set(group),
            scim_user_id: Set(wanted[u]),
            user_id: Set(*u),
        }))
        .exec_without_returning(w.tx())
        .await?;
    }
    touch_users(w, org, &added).await?;
    touch_users(w, org, &removed).await?;
    Ok((added, removed))
}

/// Moves the version (and `lastModified`) of the SCIM users of `org` whose `groups` changed: a
/// user's ETag is the version of everything rendered, its groups included (RFC 7644 §3.14).
async fn touch_users(w: &Write<'_>, org: Uuid, users: &[Uuid]) -> AppResult<()> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    for chunk in users.chunks(500) {
        scim_user::Entity::update_many()
            .col_expr(scim_user::Column::Version, Expr::col(scim_user::Column::Version).add(1))
            .col_expr(scim_user::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(scim_user::Column::OrganizationId.eq(org))
            .filter(scim_user::Column::UserId.is_in(chunk.to_vec()))
            .exec(w.tx())
            .await?;
    }
    Ok(())
}

/// Creates a group with its members (who take its role, if it has one).
pub async fn create_group(
    state: &AppState,
    ctx: &RequestContext,
    base: &str,
    body: &Value,
) -> AppResult<Value> {
    let org = provisioned_org(state, ctx).await?;
    let doc = document::normalise(&GROUP, body)?;
    let mut w = Write::begin(state, ctx).await?;
    let p = parse(&w, org, &doc).await?;
    name_free(&w, org, &p.display_name, None).await?;
    let now = Utc::now();
    let row = scim_group::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org),
        display_name: Set(p.display_name.clone()),
        display_name_lc: Set(p.display_name.to_lowercase()),
        external_id: Set(p.external_id.clone()),
        role: Set(p.role.map(|r| r.as_str().to_owned())),
        attributes: Set(p.stored.clone()),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(w.tx())
    .await?;
    let (added, _) = set_members(&w, org, row.id, &p.members).await?;
    if p.role.is_some() {
        membership::apply_group_roles(&mut w, org, &added).await?;
    }
    w.record(Change {
        event: EventType::ScimGroupCreated,
        target: Some(("scim_group", row.id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: Some(org),
        data: json!({
            "group_id": row.id, "display_name": row.display_name, "external_id": row.external_id,
            "role": row.role, "members": added.len(),
        }),
    })
    .await?;
    let members = members_of(w.tx(), &[row.id]).await?;
    w.commit().await?;
    Ok(render(base, &row, &members))
}

/// Replaces or patches a group; members added or removed gain or lose its role.
pub async fn change_group(
    state: &AppState,
    ctx: &RequestContext,
    base: &str,
    id: &str,
    change: Edit<'_>,
    if_match: Option<&str>,
) -> AppResult<Value> {
    let org = provisioned_org(state, ctx).await?;
    let id = parse_id(id)?;
    let mut w = Write::begin(state, ctx).await?;
    let row = find_row(w.tx(), org, id).await?;
    check_if_match(if_match, row.version)?;
    let doc = match change {
        Edit::Replace(body) => document::normalise(&GROUP, body)?,
        Edit::Patch(body) => {
            let members = members_of(w.tx(), &[row.id]).await?;
            let mut doc = render("", &row, &members);
            if let Some(o) = doc.as_object_mut() {
                o.remove("meta");
                if let Some(Value::Array(ms)) = o.get_mut("members") {
                    for m in ms {
                        if let Some(m) = m.as_object_mut() {
                            m.remove("$ref");
                            m.remove("display");
                        }
                    }
                }
            }
            patch::apply(&GROUP, &mut doc, body)?;
            doc
        }
    };
    let p = parse(&w, org, &doc).await?;
    name_free(&w, org, &p.display_name, Some(row.id)).await?;
    let old_role = row.role.clone();
    let renamed = row.display_name != p.display_name;
    let version = row.version;
    let mut am: scim_group::ActiveModel = row.into();
    am.display_name = Set(p.display_name.clone());
    am.display_name_lc = Set(p.display_name.to_lowercase());
    am.external_id = Set(p.external_id.clone());
    am.role = Set(p.role.map(|r| r.as_str().to_owned()));
    am.attributes = Set(p.stored.clone());
    am.version = Set(version + 1);
    am.updated_at = Set(Utc::now());
    let updated = am.update(w.tx()).await?;
    let (added, removed) = set_members(&w, org, id, &p.members).await?;
    if renamed {
        // Every member shows the group's name (`groups[].display`).
        let kept: Vec<Uuid> = p.members.keys().filter(|u| !added.contains(u)).copied().collect();
        touch_users(&w, org, &kept).await?;
    }
    let affected: Vec<Uuid> = if old_role != updated.role {
        // The role itself changed: every member, current and former, is looked at again.
        p.members.keys().copied().chain(removed.iter().copied()).collect()
    } else if updated.role.is_some() {
        added.iter().chain(removed.iter()).copied().collect()
    } else {
        Vec::new()
    };
    membership::apply_group_roles(&mut w, org, &affected).await?;
    w.record(Change {
        event: EventType::ScimGroupUpdated,
        target: Some(("scim_group", id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: Some(org),
        data: json!({
            "group_id": id, "display_name": updated.display_name, "role": updated.role,
            "members_added": added, "members_removed": removed,
        }),
    })
    .await?;
    let members = members_of(w.tx(), &[id]).await?;
    w.commit().await?;
    Ok(render(base, &updated, &members))
}

/// Deletes a group; its members lose its role.
pub async fn delete_group(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    if_match: Option<&str>,
) -> AppResult<()> {
    let org = provisioned_org(state, ctx).await?;
    let id = parse_id(id)?;
    let mut w = Write::begin(state, ctx).await?;
    let row = find_row(w.tx(), org, id).await?;
    check_if_match(if_match, row.version)?;
    let (_, removed) = set_members(&w, org, id, &BTreeMap::new()).await?;
    scim_group::Entity::delete_by_id(id).exec(w.tx()).await?;
    if row.role.is_some() {
        membership::apply_group_roles(&mut w, org, &removed).await?;
    }
    w.record(Change {
        event: EventType::ScimGroupDeleted,
        target: Some(("scim_group", id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: Some(org),
        data: json!({"group_id": id, "display_name": row.display_name, "members_removed": removed.len()}),
    })
    .await?;
    w.commit().await
}

/// Moves the version of `groups` whose members changed outside a group write (a user deleted).
pub(crate) async fn touch(w: &Write<'_>, groups: &[Uuid]) -> AppResult<()> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    if groups.is_empty() {
        return Ok(());
    }
    scim_group::Entity::update_many()
        .col_expr(scim_group::Column::Version, Expr::col(scim_group::Column::Version).add(1))
        .col_expr(scim_group::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(scim_group::Column::Id.is_in(groups.to_vec()))
        .exec(w.tx())
        .await?;
    Ok(())
}
