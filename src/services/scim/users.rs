//! SCIM Users (RFC 7643 §4.1): the people an organization's identity provider provisions.
//! A SCIM user is a Janua user seen through one organization: its resource id is the Janua
//! user id, its document (what the provider sent) is kept per organization. Creating one for
//! an email Janua knows links that account; otherwise an account is created (without a
//! password: people sign in through the organization's SSO, a passkey or a reset), at a
//! placeholder address when the provider sent no email.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use entities::{scim_group, scim_group_member, scim_user, scim_user_email, user};

use super::query::{self, Resource};
use super::resource::{Edit, check_if_match, location, meta, parse_id};
use super::schema::{ENTERPRISE_URN, USER};
use super::{ListParams, ListResult, ScimType, document, membership, patch, provisioned_org, scim_error};
use crate::context::RequestContext;
use crate::domain::{Email, EventType};
use crate::error::{AppResult, ErrorCode};
use crate::services::audit::Change;
use crate::services::unit_of_work::Write;
use crate::services::users::{NewUser, insert_user};
use crate::state::AppState;

/// The columns filters and sorting use, read from a stored document.
struct Columns {
    user_name: String,
    display_name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    active: bool,
    locale: Option<String>,
    external_id: Option<String>,
    employee_number: Option<String>,
    department: Option<String>,
    manager_id: Option<String>,
    /// (address lower-cased, type lower-cased, primary)
    emails: Vec<(String, Option<String>, bool)>,
}

fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn columns(doc: &Value) -> Columns {
    let name = doc.get("name").cloned().unwrap_or(Value::Null);
    let ext = doc.get(ENTERPRISE_URN).cloned().unwrap_or(Value::Null);
    let emails = doc
        .get("emails")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    let value = e.get("value")?.as_str()?.to_lowercase();
                    let kind = e.get("type").and_then(Value::as_str).map(str::to_lowercase);
                    Some((value, kind, e.get("primary").and_then(Value::as_bool).unwrap_or(false)))
                })
                .collect()
        })
        .unwrap_or_default();
    Columns {
        user_name: string(doc, "userName").unwrap_or_default(),
        display_name: string(doc, "displayName"),
        given_name: string(&name, "givenName"),
        family_name: string(&name, "familyName"),
        active: doc.get("active").and_then(Value::as_bool).unwrap_or(true),
        locale: string(doc, "locale"),
        external_id: string(doc, "externalId"),
        employee_number: string(&ext, "employeeNumber"),
        department: string(&ext, "department"),
        manager_id: ext.get("manager").and_then(|m| string(m, "value")),
        emails,
    }
}

/// The address of the Janua account: the primary email, else the first, else an email-shaped
/// `userName`.
fn account_email(c: &Columns) -> Option<Email> {
    let primary = c.emails.iter().find(|e| e.2).or(c.emails.first()).map(|e| e.0.as_str());
    primary.and_then(|e| Email::parse(e).ok()).or_else(|| Email::parse(&c.user_name).ok())
}

/// The address of an account provisioned without any email (SCIM requires only `userName`): in
/// the reserved `.invalid` domain (RFC 2606), so it is unique, never delivered to and never
/// anybody's real address. The SCIM resource shows no such email; the account takes a real one
/// when the IdP sends it.
fn placeholder_email() -> String {
    format!("scim-{}@{PLACEHOLDER_DOMAIN}", Uuid::now_v7().simple())
}

/// The domain of [`placeholder_email`] addresses.
pub const PLACEHOLDER_DOMAIN: &str = "provisioned.invalid";

fn display_of(doc: &Value, c: &Columns) -> Option<String> {
    c.display_name.clone().or_else(|| doc.get("name").and_then(|n| string(n, "formatted")))
}

/// The groups of each SCIM user row, in one query: (scim user row id, group id, group name).
async fn groups_of(db: &impl ConnectionTrait, rows: &[Uuid]) -> AppResult<Vec<(Uuid, Uuid, String)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    Ok(scim_group_member::Entity::find()
        .inner_join(scim_group::Entity)
        .filter(scim_group_member::Column::ScimUserId.is_in(rows.to_vec()))
        .select_only()
        .column(scim_group_member::Column::ScimUserId)
        .column(scim_group::Column::Id)
        .column(scim_group::Column::DisplayName)
        .order_by_asc(scim_group::Column::DisplayNameLc)
        .into_tuple()
        .all(db)
        .await?)
}

/// A stored user as its SCIM resource (with `id`, `groups` and `meta`).
fn render(base: &str, row: &scim_user::Model, groups: &[(Uuid, Uuid, String)]) -> Value {
    let mut doc = row.attributes.clone();
    let Some(obj) = doc.as_object_mut() else { return doc };
    obj.insert("id".into(), row.user_id.to_string().into());
    let mine: Vec<Value> = groups
        .iter()
        .filter(|g| g.0 == row.id)
        .map(|(_, id, name)| {
            json!({"value": id.to_string(), "$ref": location(base, "Groups", *id), "display": name, "type": "direct"})
        })
        .collect();
    if !mine.is_empty() {
        obj.insert("groups".into(), mine.into());
    }
    obj.insert(
        "meta".into(),
        meta("User", location(base, "Users", row.user_id), row.created_at, row.updated_at, row.version),
    );
    doc
}

async fn find_row(db: &impl ConnectionTrait, org: Uuid, id: Uuid) -> AppResult<scim_user::Model> {
    Ok(scim_user::Entity::find()
        .filter(scim_user::Column::OrganizationId.eq(org))
        .filter(scim_user::Column::UserId.eq(id))
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?)
}

/// One user, rendered; `If-None-Match` is the caller's business (the version is in `meta`).
pub async fn get_user(state: &AppState, ctx: &RequestContext, base: &str, id: &str) -> AppResult<Value> {
    let org = provisioned_org(state, ctx).await?;
    let row = find_row(&state.db, org, parse_id(id)?).await?;
    let groups = groups_of(&state.db, &[row.id]).await?;
    Ok(render(base, &row, &groups))
}

/// A page of the organization's users matching `params` (one query and one count).
pub async fn list_users(
    state: &AppState,
    ctx: &RequestContext,
    base: &str,
    params: &ListParams,
) -> AppResult<ListResult> {
    let org = provisioned_org(state, ctx).await?;
    let mut q = scim_user::Entity::find().filter(scim_user::Column::OrganizationId.eq(org));
    if let Some(f) = &params.filter {
        q = q.filter(query::condition(Resource::User, f)?);
    }
    let total = q.clone().count(&state.db).await?;
    if params.count == 0 {
        return Ok(ListResult { total, start_index: params.start_index, resources: Vec::new() });
    }
    if let Some(s) = &params.sort_by {
        let c = query::sort_column(Resource::User, s)?;
        q = q.order_by(c, if params.descending { sea_orm::Order::Desc } else { sea_orm::Order::Asc });
    }
    let rows = q
        .order_by_asc(scim_user::Column::UserId)
        .offset(params.start_index.saturating_sub(1))
        .limit(params.count)
        .all(&state.db)
        .await?;
    let groups = groups_of(&state.db, &rows.iter().map(|r| r.id).collect::<Vec<_>>()).await?;
    Ok(ListResult {
        total,
        start_index: params.start_index,
        resources: rows.iter().map(|r| render(base, r, &groups)).collect(),
    })
}

/// Provisions a user (RFC 7644 §3.3): links the Janua account with that email, or creates one;
/// an active user becomes a member of the organization.
pub async fn create_user(
    state: &AppState,
    ctx: &RequestContext,
    base: &str,
    body: &Value,
) -> AppResult<Value> {
    let org = provisioned_org(state, ctx).await?;
    let doc = document::normalise(&USER, body)?;
    let c = columns(&doc);
    let email = account_email(&c);
    let mut w = Write::begin(state, ctx).await?;
    user_name_free(&w, org, &c.user_name, None).await?;
    let existing = match &email {
        Some(e) => user::Entity::find().filter(user::Column::Email.eq(e.as_str())).one(w.tx()).await?,
        None => None,
    };
    let (account, created) = match existing {
        Some(u) => {
            let linked = scim_user::Entity::find()
                .filter(scim_user::Column::OrganizationId.eq(org))
                .filter(scim_user::Column::UserId.eq(u.id))
                .one(w.tx())
                .await?;
            if linked.is_some() {
                return Err(scim_error(
                    ScimType::Uniqueness,
                    "a user with this email is already provisioned",
                ));
            }
            if !may_link(&w, org, &u).await? {
                return Err(scim_error(
                    ScimType::Uniqueness,
                    "an account with this email exists outside this organization's domains",
                ));
            }
            (u, false)
        }
        None => {
            let u = insert_user(
                w.tx(),
                NewUser {
                    email: email.as_ref().map_or_else(placeholder_email, |e| e.as_str().to_owned()),
                    name: display_of(&doc, &c),
                    first_name: c.given_name.clone(),
                    last_name: c.family_name.clone(),
                    locale: c.locale.clone(),
                    ..NewUser::default()
                },
            )
            .await?;
            w.record(Change {
                event: EventType::UserCreated,
                target: Some(("user", u.id.to_string())),
                subject_user: Some(u.id),
                acting_user: None,
                organization: Some(org),
                data: json!({"user_id": u.id, "email": u.email, "via": "scim"}),
            })
            .await?;
            (u, true)
        }
    };
    let now = Utc::now();
    let row = scim_user::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org),
        user_id: Set(account.id),
        provisioned: Set(created),
        version: Set(1),
        created_at: Set(now),
        ..Default::default()
    };
    let row = write_columns(&w, row, &doc, &c).await?;
    if c.active {
        membership::ensure_member(&mut w, org, account.id).await?;
    } else {
        membership::deprovision(&mut w, org, account.id, "scim_deactivated").await?;
    }
    w.record(Change {
        event: EventType::ScimUserProvisioned,
        target: Some(("user", account.id.to_string())),
        subject_user: Some(account.id),
        acting_user: None,
        organization: Some(org),
        data: json!({
            "user_id": account.id, "user_name": c.user_name, "external_id": c.external_id,
            "active": c.active, "account_created": created,
        }),
    })
    .await?;
    w.commit().await?;
    Ok(render(base, &row, &[]))
}

/// Whether the organization may take over an existing account into its provisioning (and so
/// later end its sessions): the person is already a member, or the email's domain is the
/// organization's (its `domain`, or an allowed domain of one of its SSO providers — a domain
/// belongs to one organization only). Otherwise any organization could claim anyone's account.
async fn may_link(w: &Write<'_>, org: Uuid, u: &user::Model) -> AppResult<bool> {
    if crate::services::orgs::member_row(w.tx(), org, u.id).await?.is_some() {
        return Ok(true);
    }
    let Some(domain) = u.email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()) else {
        return Ok(false);
    };
    let o = entities::organization::Entity::find_by_id(org).one(w.tx()).await?;
    if o.and_then(|o| o.domain).is_some_and(|d| d.eq_ignore_ascii_case(&domain)) {
        return Ok(true);
    }
    let providers = entities::sso_provider::Entity::find()
        .filter(entities::sso_provider::Column::OrganizationId.eq(org))
        .all(w.tx())
        .await?;
    Ok(providers.iter().any(|p| {
        crate::services::sso::providers::allowed_domains(p).iter().any(|d| d.eq_ignore_ascii_case(&domain))
    }))
}

/// Refuses a `userName` another user of the organization has (case-insensitively).
async fn user_name_free(w: &Write<'_>, org: Uuid, user_name: &str, except: Option<Uuid>) -> AppResult<()> {
    let mut q = scim_user::Entity::find()
        .filter(scim_user::Column::OrganizationId.eq(org))
        .filter(scim_user::Column::UserNameLc.eq(user_name.to_lowercase()));
    if let Some(id) = except {
        q = q.filter(scim_user::Column::Id.ne(id));
    }
    if q.one(w.tx()).await?.is_some() {
        return Err(scim_error(ScimType::Uniqueness, "another user of this organization has this userName"));
    }
    Ok(())
}

/// Writes the row's document and columns (insert or update) and its email rows.
async fn write_columns(
    w: &Write<'_>,
    mut row: scim_user::ActiveModel,
    doc: &Value,
    c: &Columns,
) -> AppResult<scim_user::Model> {
    let mut stored = doc.clone();
    if let Some(o) = stored.as_object_mut() {
        for k in ["id", "meta", "groups"] {
            o.remove(k);
        }
    }
    row.external_id = Set(c.external_id.clone());
    row.user_name = Set(c.user_name.clone());
    row.user_name_lc = Set(c.user_name.to_lowercase());
    row.display_name = Set(c.display_name.clone());
    row.given_name = Set(c.given_name.clone());
    row.family_name = Set(c.family_name.clone());
    row.active = Set(c.active);
    row.locale = Set(c.locale.clone());
    row.employee_number = Set(c.employee_number.clone());
    row.department = Set(c.department.clone());
    row.manager_id = Set(c.manager_id.clone());
    row.attributes = Set(stored);
    row.updated_at = Set(Utc::now());
    let m = if row.id.is_unchanged() { row.update(w.tx()).await? } else { row.insert(w.tx()).await? };
    scim_user_email::Entity::delete_many()
        .filter(scim_user_email::Column::ScimUserId.eq(m.id))
        .exec(w.tx())
        .await?;
    if !c.emails.is_empty() {
        scim_user_email::Entity::insert_many(c.emails.iter().map(|(v, k, p)| scim_user_email::ActiveModel {
            id: Set(Uuid::now_v7()),
            scim_user_id: Set(m.id),
            value_lc: Set(v.clone()),
            kind: Set(k.clone()),
            is_primary: Set(*p),
        }))
        .exec_without_returning(w.tx())
        .await?;
    }
    Ok(m)
}

/// Replaces or patches a user; deactivating (`active: false`) ends their membership and every
/// session, reactivating restores the membership.
pub async fn change_user(
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
        Edit::Replace(body) => document::normalise(&USER, body)?,
        Edit::Patch(body) => {
            let mut doc = row.attributes.clone();
            if let Some(o) = doc.as_object_mut() {
                o.insert("id".into(), id.to_string().into());
            }
            patch::apply(&USER, &mut doc, body)?;
            doc
        }
    };
    let c = columns(&doc);
    user_name_free(&w, org, &c.user_name, Some(row.id)).await?;
    let was_active = row.active;
    let (version, provisioned, row_id) = (row.version, row.provisioned, row.id);
    let mut am: scim_user::ActiveModel = row.into();
    am.version = Set(version + 1);
    let updated = write_columns(&w, am, &doc, &c).await?;
    if provisioned {
        follow_account(&mut w, id, &doc, &c).await?;
    }
    match (was_active, c.active) {
        (true, false) => {
            membership::deprovision(&mut w, org, id, "scim_deactivated").await?;
            record_deprovisioned(&mut w, org, id, "deactivated").await?;
        }
        (false, true) => membership::ensure_member(&mut w, org, id).await?,
        _ => {}
    }
    w.record(Change {
        event: EventType::ScimUserUpdated,
        target: Some(("user", id.to_string())),
        subject_user: Some(id),
        acting_user: None,
        organization: Some(org),
        data: json!({"user_id": id, "user_name": c.user_name, "external_id": c.external_id, "active": c.active}),
    })
    .await?;
    let groups = groups_of(w.tx(), &[row_id]).await?;
    w.commit().await?;
    Ok(render(base, &updated, &groups))
}

/// Keeps an account this organization's provisioning created in step: name, locale, email.
async fn follow_account(w: &mut Write<'_>, id: Uuid, doc: &Value, c: &Columns) -> AppResult<()> {
    let Some(u) = user::Entity::find_by_id(id).one(w.tx()).await? else { return Ok(()) };
    let mut am: user::ActiveModel = u.clone().into();
    am.name = Set(display_of(doc, c));
    am.first_name = Set(c.given_name.clone());
    am.last_name = Set(c.family_name.clone());
    am.locale = Set(c.locale.clone());
    if let Some(e) = account_email(c).filter(|e| e.as_str() != u.email) {
        let taken = user::Entity::find().filter(user::Column::Email.eq(e.as_str())).one(w.tx()).await?;
        if taken.is_some() {
            return Err(scim_error(ScimType::Uniqueness, "another account has this email"));
        }
        am.email = Set(e.as_str().to_owned());
        am.email_verified = Set(false);
    }
    am.updated_at = Set(Utc::now());
    am.update(w.tx()).await?;
    w.user_changed(id);
    Ok(())
}

async fn record_deprovisioned(w: &mut Write<'_>, org: Uuid, id: Uuid, how: &str) -> AppResult<()> {
    w.record(Change {
        event: EventType::ScimUserDeprovisioned,
        target: Some(("user", id.to_string())),
        subject_user: Some(id),
        acting_user: None,
        organization: Some(org),
        data: json!({"user_id": id, "reason": how}),
    })
    .await?;
    Ok(())
}

/// Deletes a user from the organization's provisioning: the membership ends and every session
/// of theirs is revoked; the account stays (their other organizations keep them).
pub async fn delete_user(
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
    let groups: Vec<Uuid> = scim_group_member::Entity::find()
        .filter(scim_group_member::Column::ScimUserId.eq(row.id))
        .select_only()
        .column(scim_group_member::Column::GroupId)
        .into_tuple()
        .all(w.tx())
        .await?;
    membership::deprovision(&mut w, org, id, "scim_deprovisioned").await?;
    scim_group_member::Entity::delete_many()
        .filter(scim_group_member::Column::ScimUserId.eq(row.id))
        .exec(w.tx())
        .await?;
    scim_user_email::Entity::delete_many()
        .filter(scim_user_email::Column::ScimUserId.eq(row.id))
        .exec(w.tx())
        .await?;
    scim_user::Entity::delete_by_id(row.id).exec(w.tx()).await?;
    super::groups::touch(&w, &groups).await?;
    record_deprovisioned(&mut w, org, id, "deleted").await?;
    w.commit().await
}

/// What an organization's admins see of a member provisioned over SCIM.
#[derive(Clone, Debug)]
pub struct ScimLink {
    pub external_id: Option<String>,
    pub user_name: String,
    pub active: bool,
    /// Display names of the member's SCIM groups.
    pub groups: Vec<String>,
}

/// The SCIM links of `users` in `org`, in two queries (for a page of members).
pub async fn links(
    db: &impl ConnectionTrait,
    org: Uuid,
    users: &[Uuid],
) -> AppResult<std::collections::HashMap<Uuid, ScimLink>> {
    let rows = scim_user::Entity::find()
        .filter(scim_user::Column::OrganizationId.eq(org))
        .filter(scim_user::Column::UserId.is_in(users.to_vec()))
        .all(db)
        .await?;
    let groups = groups_of(db, &rows.iter().map(|r| r.id).collect::<Vec<_>>()).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let names = groups.iter().filter(|g| g.0 == r.id).map(|g| g.2.clone()).collect();
            (
                r.user_id,
                ScimLink {
                    external_id: r.external_id,
                    user_name: r.user_name,
                    active: r.active,
                    groups: names,
                },
            )
        })
        .collect())
}
