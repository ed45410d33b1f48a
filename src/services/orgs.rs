//! Organizations and their members.

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    Set,
};
use uuid::Uuid;

use entities::{org_member, organization, user};

use crate::context::RequestContext;
use crate::domain::UserStatus;
use crate::domain::lists::{ListRequest, SortSpec, like_pattern, time_value};
use crate::domain::page::Page;
use crate::domain::{EventType, optional_text};
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::services::audit::Change;
use crate::services::authz::{self, Action, OrgRole, Principal};
use crate::services::invitations::{self, InvitationView};
use crate::services::unit_of_work::Write;
use crate::services::users::UserView;
use crate::state::AppState;
use crate::storage::keyset::{Keyset, decode_string, decode_time, decode_uuid};

mod members;
pub use members::*;

/// An organization as clients see it.
#[derive(Clone, Debug, PartialEq)]
pub struct OrgView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub domain: Option<String>,
    pub description: Option<String>,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

impl From<organization::Model> for OrgView {
    fn from(m: organization::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            slug: m.slug,
            domain: m.domain,
            description: m.description,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A member of an organization.
#[derive(Clone, Debug)]
pub struct MemberView {
    pub user: UserView,
    pub role: String,
    pub joined_at: chrono::DateTime<Utc>,
    /// How the organization's identity provider provisioned them (shown to its admins only).
    pub scim: Option<crate::services::scim::users::ScimLink>,
}

/// Fields of a new organization.
#[derive(Debug, Default)]
pub struct NewOrganization {
    pub name: String,
    pub slug: Option<String>,
    pub domain: Option<String>,
    pub description: Option<String>,
}

/// Changes to an organization: `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub domain: Option<Option<String>>,
    pub description: Option<Option<String>>,
}

/// Derives a slug from a name: lower-case ASCII letters and digits joined by single dashes.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(63).collect::<String>().trim_end_matches('-').to_owned()
}

fn check_slug(s: &str) -> AppResult<String> {
    let s = s.trim().to_lowercase();
    let ok = (2..=63).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok { Ok(s) } else { Err(AppError::field("slug", FieldIssue::InvalidFormat)) }
}

fn check_domain(d: &str) -> AppResult<String> {
    let d = d.trim().trim_end_matches('.').to_lowercase();
    let ok = d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok { Ok(d) } else { Err(AppError::field("domain", FieldIssue::InvalidFormat)) }
}

fn check_name(n: &str) -> AppResult<String> {
    optional_text("name", Some(n.to_owned()), 200)?
        .ok_or_else(|| AppError::field("name", FieldIssue::Required))
}

async fn taken(
    db: &impl ConnectionTrait,
    slug: Option<&str>,
    domain: Option<&str>,
    except: Option<Uuid>,
) -> AppResult<()> {
    for (field, col, value) in
        [("slug", organization::Column::Slug, slug), ("domain", organization::Column::Domain, domain)]
    {
        let Some(value) = value else { continue };
        let mut q = organization::Entity::find().filter(col.eq(value));
        if let Some(id) = except {
            q = q.filter(organization::Column::Id.ne(id));
        }
        if q.one(db).await?.is_some() {
            return Err(AppError::new(ErrorCode::Conflict).with_details(serde_json::json!({"field": field})));
        }
    }
    Ok(())
}

async fn find_org(db: &impl ConnectionTrait, id: Uuid) -> AppResult<organization::Model> {
    Ok(organization::Entity::find_by_id(id).one(db).await?.ok_or(ErrorCode::NotFound)?)
}

/// Loads the organization and the caller's role in it, after checking `action` allows it.
/// A missing organization and one the caller may not see look the same (404).
async fn authorized_org(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    action: impl Fn(Option<OrgRole>) -> Action,
) -> AppResult<(organization::Model, Option<OrgRole>)> {
    let role = authz::role_in(state, p, id).await?;
    authz::authorize(p, &action(role))?;
    let org = find_org(&state.db, id).await?;
    Ok((org, role))
}

/// Creates an organization; the creator becomes its owner.
pub async fn create_organization(
    state: &AppState,
    ctx: &RequestContext,
    input: NewOrganization,
) -> AppResult<OrgView> {
    let p = authz::principal(state, ctx).await?;
    authz::authorize(&p, &Action::CreateOrganization)?;
    let owner = p.user_id().ok_or(ErrorCode::Forbidden)?;
    let name = check_name(&input.name)?;
    let slug = match input.slug.filter(|s| !s.trim().is_empty()) {
        Some(s) => check_slug(&s)?,
        None => check_slug(&slugify(&name)).map_err(|_| AppError::field("slug", FieldIssue::Required))?,
    };
    let domain = input.domain.filter(|d| !d.trim().is_empty()).map(|d| check_domain(&d)).transpose()?;
    let description = optional_text("description", input.description, 2000)?;
    taken(&state.db, Some(&slug), domain.as_deref(), None).await?;
    let now = Utc::now();
    let mut w = Write::begin(state, ctx).await?;
    let org = organization::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        slug: Set(slug),
        domain: Set(domain),
        description: Set(description),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(w.tx())
    .await?;
    insert_member(w.tx(), org.id, owner, OrgRole::Owner).await?;
    w.record(
        Change {
            event: EventType::OrganizationCreated,
            target: Some(("organization", org.id.to_string())),
            subject_user: Some(owner),
            acting_user: None,
            organization: Some(org.id),
            data: serde_json::json!({"organization_id": org.id, "name": org.name, "slug": org.slug, "owner_id": owner}),
        },
    )
    .await?;
    w.commit().await?;
    Ok(org.into())
}

/// One organization the caller belongs to (or any, for administrators).
pub async fn get_organization(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<OrgView> {
    let p = authz::principal(state, ctx).await?;
    let (org, _) = authorized_org(state, &p, id, |role| Action::ReadOrganization { org: id, role }).await?;
    Ok(org.into())
}

/// Updates an organization (admins and owners).
pub async fn update_organization(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
    patch: OrganizationPatch,
) -> AppResult<OrgView> {
    let p = authz::principal(state, ctx).await?;
    let (org, _) = authorized_org(state, &p, id, |role| Action::UpdateOrganization { org: id, role }).await?;
    let mut am: organization::ActiveModel = org.clone().into();
    let mut changed = serde_json::Map::new();
    if let Some(n) = patch.name {
        am.name = Set(check_name(&n)?);
        changed.insert("name".into(), true.into());
    }
    let slug = patch.slug.map(|s| check_slug(&s)).transpose()?;
    if let Some(s) = &slug {
        am.slug = Set(s.clone());
        changed.insert("slug".into(), true.into());
    }
    let domain = match patch.domain {
        Some(Some(d)) if !d.trim().is_empty() => Some(Some(check_domain(&d)?)),
        Some(_) => Some(None),
        None => None,
    };
    if let Some(d) = &domain {
        am.domain = Set(d.clone());
        changed.insert("domain".into(), true.into());
    }
    if let Some(d) = patch.description {
        am.description = Set(optional_text("description", d, 2000)?);
        changed.insert("description".into(), true.into());
    }
    taken(&state.db, slug.as_deref(), domain.clone().flatten().as_deref(), Some(id)).await?;
    am.updated_at = Set(Utc::now());
    let mut w = Write::begin(state, ctx).await?;
    let org = am.update(w.tx()).await?;
    w.record(Change {
        event: EventType::OrganizationUpdated,
        target: Some(("organization", id.to_string())),
        subject_user: None,
        acting_user: None,
        organization: Some(id),
        data: serde_json::json!({"organization_id": id, "changed": changed}),
    })
    .await?;
    w.commit().await?;
    Ok(org.into())
}

fn org_keyset(sort: &SortSpec) -> Keyset<organization::Entity> {
    match sort.field.as_str() {
        "name" => Keyset {
            column: organization::Column::Name,
            id: organization::Column::Id,
            desc: sort.desc,
            value_of: |m| m.name.clone().into(),
            id_of: |m| m.id,
            decode: decode_string,
        },
        _ => Keyset {
            column: organization::Column::CreatedAt,
            id: organization::Column::Id,
            desc: sort.desc,
            value_of: |m| time_value(&m.created_at),
            id_of: |m| m.id,
            decode: decode_time,
        },
    }
}

pub use crate::domain::lists::ORG_SORTS;

/// A filtered, sorted page of organizations (`None` scope: every organization).
pub async fn page_organizations(
    state: &AppState,
    only: Option<Vec<Uuid>>,
    req: &ListRequest,
    sort: Option<&str>,
    search: Option<&str>,
) -> AppResult<Page<OrgView>> {
    let sort = SortSpec::parse(sort, &ORG_SORTS, ("created_at", true))?;
    let mut base = organization::Entity::find();
    if let Some(ids) = only {
        base = base.filter(organization::Column::Id.is_in(ids));
    }
    if let Some(pat) = search.map(like_pattern).transpose()?.flatten() {
        base = base.filter(
            sea_orm::Condition::any()
                .add(
                    Expr::expr(Func::lower(Expr::col(organization::Column::Name)))
                        .like(LikeExpr::new(pat.clone()).escape('\\')),
                )
                .add(Expr::col(organization::Column::Slug).like(LikeExpr::new(pat.clone()).escape('\\')))
                .add(Expr::col(organization::Column::Domain).like(LikeExpr::new(pat).escape('\\'))),
        );
    }
    let page = org_keyset(&sort).page(&state.db, &state.counts, base, req).await?;
    Ok(map_page(page, OrgView::from))
}

/// Maps the items of a page.
pub fn map_page<A, B>(p: Page<A>, f: impl Fn(A) -> B) -> Page<B> {
    Page {
        items: p.items.into_iter().map(|(c, a)| (c, f(a))).collect(),
        has_next: p.has_next,
        has_previous: p.has_previous,
        total_count: p.total_count,
    }
}

/// The organizations the caller belongs to (an API key: its own organization).
pub async fn list_organizations(
    state: &AppState,
    ctx: &RequestContext,
    req: &ListRequest,
    sort: Option<&str>,
    search: Option<&str>,
) -> AppResult<Page<OrgView>> {
    let p = authz::principal(state, ctx).await?;
    let ids = match &p {
        Principal::User { id, .. } => {
            org_member::Entity::find()
                .filter(org_member::Column::UserId.eq(*id))
                .select_only()
                .column(org_member::Column::OrganizationId)
                .into_tuple::<Uuid>()
                .all(&state.db)
                .await?
        }
        Principal::ApiKey { organization_id: Some(org), .. } => {
            authz::authorize(&p, &Action::ReadOrganization { org: *org, role: None })
                .map_err(|_| AppError::new(ErrorCode::Forbidden))?; // no scope: may not list, rather than "not found"
            vec![*org]
        }
        Principal::ApiKey { .. } | Principal::Scim { .. } => return Err(ErrorCode::Forbidden.into()),
        Principal::Anonymous(code) => return Err((*code).into()),
    };
    page_organizations(state, Some(ids), req, sort, search).await
}
