//! Users as the rest of the system sees them (no hash), and the caller's own profile.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Select, Set,
};
use uuid::Uuid;

use entities::{org_member, organization, session, user};

use crate::context::{RequestContext, UserActor};
use crate::domain::lists::{ListRequest, SortSpec, like_escape, search_term, time_value, trigram_phrase};
use crate::domain::page::Page;
use crate::domain::{EventType, optional_text};
use crate::domain::{OrgRole, UserStatus};
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::services::audit::Change;
use crate::services::authz::{self, Action, Principal};
use crate::services::unit_of_work::Write;
use crate::state::AppState;
use crate::storage::keyset::{CountCache, Keyset, decode_string, decode_time};

/// A user without any secret.
#[derive(Clone, Debug, PartialEq)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    pub locale: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub status: String,
    pub is_admin: bool,
    pub email_verified: bool,
    pub last_signin_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<user::Model> for UserView {
    fn from(m: user::Model) -> Self {
        Self {
            id: m.id,
            email: m.email,
            name: m.name,
            first_name: m.first_name,
            last_name: m.last_name,
            username: m.username,
            avatar_url: m.avatar_url,
            locale: m.locale,
            metadata: m.metadata,
            status: m.status,
            is_admin: m.is_admin,
            email_verified: m.email_verified,
            last_signin_at: m.last_signin_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Loads a user row by id, `NOT_FOUND` when absent.
pub async fn find_user(db: &impl ConnectionTrait, id: Uuid) -> AppResult<user::Model> {
    Ok(user::Entity::find_by_id(id).one(db).await?.ok_or(ErrorCode::NotFound)?)
}

/// The signed-in caller's profile.
pub async fn me(state: &AppState, ctx: &RequestContext) -> AppResult<UserView> {
    let actor = ctx.require_user()?;
    let u = caller(state, actor).await?.ok_or(ErrorCode::SessionRevoked)?;
    Ok(u.as_ref().clone().into())
}

/// The caller's user row, without its password hash: the copy cached under the request's stamp
/// when there is one (no query), else read from the database and cached under that stamp.
/// `None` when the user no longer exists.
pub(crate) async fn caller(state: &AppState, actor: &UserActor) -> AppResult<Option<Arc<user::Model>>> {
    if let Some(stamp) = actor.stamp
        && let Some(u) = state.users.get(actor.user_id, stamp)
    {
        return Ok(Some(u));
    }
    let Some(mut u) = user::Entity::find_by_id(actor.user_id).one(&state.db).await? else {
        return Ok(None);
    };
    u.password_hash = None;
    let u = Arc::new(u);
    if let Some(stamp) = actor.stamp {
        state.users.put(u.clone(), stamp);
    }
    Ok(Some(u))
}

pub use crate::domain::lists::USER_SORTS;

fn user_keyset(sort: &SortSpec) -> Keyset<user::Entity> {
    match sort.field.as_str() {
        "email" => Keyset {
            column: user::Column::Email,
            id: user::Column::Id,
            desc: sort.desc,
            value_of: |m| m.email.clone().into(),
            id_of: |m| m.id,
            decode: decode_string,
        },
        // Users without a name sort as the empty string (name is indexed with id).
        "name" => Keyset {
            column: user::Column::Name,
            id: user::Column::Id,
            desc: sort.desc,
            value_of: |m| m.name.clone().unwrap_or_default().into(),
            id_of: |m| m.id,
            decode: decode_string,
        },
        _ => Keyset {
            column: user::Column::CreatedAt,
            id: user::Column::Id,
            desc: sort.desc,
            value_of: |m| time_value(&m.created_at),
            id_of: |m| m.id,
            decode: decode_time,
        },
    }
}

/// Filters of user lists.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    pub status: Option<String>,
    pub search: Option<String>,
    pub sort: Option<String>,
}

/// A filtered, sorted page of users, optionally only members of `only_orgs`. Deleted users are
/// listed only when asked for by status.
pub async fn page_users(
    db: &impl ConnectionTrait,
    counts: &CountCache,
    only_orgs: Option<Vec<Uuid>>,
    filter: &UserFilter,
    req: &ListRequest,
) -> AppResult<Page<user::Model>> {
    let sort = SortSpec::parse(filter.sort.as_deref(), &USER_SORTS, ("created_at", true))?;
    let mut base = user::Entity::find();
    if sort.field == "name" {
        base = base.filter(user::Column::Name.is_not_null());
    }
    match filter.status.as_deref().filter(|s| !s.is_empty()).map(UserStatus::parse) {
        Some(Some(s)) => base = base.filter(user::Column::Status.eq(s.as_str())),
        Some(None) => return Err(AppError::field("status", FieldIssue::InvalidFormat)),
        None => base = base.filter(user::Column::Status.ne(UserStatus::Deleted.as_str())),
    }
    if let Some(orgs) = only_orgs {
        base = base.filter(
            user::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(org_member::Column::UserId)
                    .from(org_member::Entity)
                    .and_where(Expr::col(org_member::Column::OrganizationId).is_in(orgs))
                    .to_owned(),
            ),
        );
    }
    if let Some(term) = filter.search.as_deref().map(search_term).transpose()?.flatten() {
        base = search_users(db, base, &term).await?;
    }
    user_keyset(&sort).page(db, counts, base, req).await
}

/// Above this many rows found by the SQLite trigram index, a search pages by the sort index
/// instead: matches are then dense enough that the `LIKE` finds a page after a short walk.
const FEW_MATCHES: u64 = 5_000;

/// Users whose email or lower-cased name holds `term` (trimmed, lower-cased) as a substring,
/// `LIKE` wildcards literal. PostgreSQL serves the `LIKE` from trigram indexes on `email` and
/// `lower(name)`. SQLite narrows terms of three characters or more to the rows its FTS5 trigram
/// table `users_search` finds (case folded, so a superset) when those are few; the `LIKE`
/// keeps exactly the rows it matched before either index existed.
async fn search_users(
    db: &impl ConnectionTrait,
    base: Select<user::Entity>,
    term: &str,
) -> AppResult<Select<user::Entity>> {
    let pat = format!("%{}%", like_escape(term));
    let mut base = base.filter(
        Condition::any()
            .add(Expr::col(user::Column::Email).like(LikeExpr::new(pat.clone()).escape('\\')))
            .add(
                Expr::expr(Func::lower(Expr::col(user::Column::Name))).like(LikeExpr::new(pat).escape('\\')),
            ),
    );
    if db.get_database_backend() == DbBackend::Sqlite
        && let Some(phrase) = trigram_phrase(term)
    {
        let probe = sea_orm::Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!(
                "SELECT COUNT(*) AS n FROM (SELECT rowid FROM users_search WHERE users_search MATCH ? LIMIT {})",
                FEW_MATCHES + 1
            ),
            [phrase.clone().into()],
        );
        let found: i64 = match db.query_one_raw(probe).await? {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        if u64::try_from(found).unwrap_or(0) <= FEW_MATCHES {
            base = base.filter(Expr::cust_with_values(
                "\"users\".rowid IN (SELECT rowid FROM users_search WHERE users_search MATCH ?)",
                [phrase],
            ));
        }
    }
    Ok(base)
}

/// Users the caller may list: all for administrators, else members of the organizations the
/// caller administers (or of the API key's organization).
pub async fn list_users(
    state: &AppState,
    ctx: &RequestContext,
    filter: &UserFilter,
    req: &ListRequest,
) -> AppResult<Page<UserView>> {
    let p = authz::principal(state, ctx).await?;
    authz::authorize(&p, &Action::ListUsers)?;
    let scope = authz::user_list_scope(&state.db, &p).await?;
    Ok(crate::services::orgs::map_page(
        page_users(&state.db, &state.counts, scope, filter, req).await?,
        UserView::from,
    ))
}

async fn readable_user(state: &AppState, p: &Principal, id: Uuid) -> AppResult<user::Model> {
    let (via_org_admin, in_key_org) = authz::user_visibility(&state.db, p, id).await?;
    authz::authorize(p, &Action::ReadUser { user: id, via_org_admin, in_key_org })?;
    user::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|u| !UserStatus::Deleted.is(&u.status) || p.is_admin())
        .ok_or_else(|| ErrorCode::NotFound.into())
}

/// One user: oneself, a member of an organization one administers, or anyone for administrators.
pub async fn get_user(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<UserView> {
    let p = authz::principal(state, ctx).await?;
    Ok(readable_user(state, &p, id).await?.into())
}

/// Changes to a user: `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct UserPatch {
    /// A new address: not changed at once, but confirmed by a link mailed to it first.
    pub email: Option<String>,
    pub name: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub username: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub locale: Option<Option<String>>,
    pub metadata: Option<Option<serde_json::Value>>,
    pub status: Option<String>,
    pub is_admin: Option<bool>,
    pub email_verified: Option<bool>,
}

fn check_url(u: Option<String>) -> AppResult<Option<String>> {
    let u = optional_text("avatar_url", u, 2048)?;
    if let Some(v) = &u
        && !(v.starts_with("https://") || v.starts_with("http://"))
    {
        return Err(AppError::field("avatar_url", FieldIssue::InvalidFormat));
    }
    Ok(u)
}

/// Updates a user. Oneself: profile fields; administrators: also status, is_admin, email_verified.
/// Suspending a user revokes every session at once. A new `email` takes effect only once the
/// link mailed to it is followed (`verifyEmail`).
pub async fn update_user(
    state: &AppState,
    ctx: &RequestContext,
    id: Uuid,
    patch: UserPatch,
) -> AppResult<UserView> {
    let p = authz::principal(state, ctx).await?;
    let privileged = patch.status.is_some() || patch.is_admin.is_some() || patch.email_verified.is_some();
    let (via_org_admin, in_key_org) = authz::user_visibility(&state.db, &p, id).await?;
    let visible = via_org_admin || in_key_org;
    authz::authorize(&p, &Action::UpdateUser { user: id, privileged, visible })?;
    let current = user::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|u| !UserStatus::Deleted.is(&u.status))
        .ok_or(ErrorCode::NotFound)?;
    let new_email = match patch.email.as_deref() {
        Some(raw) => {
            crate::services::email_verification::check_email_change(state, ctx, &current, raw).await?
        }
        None => None,
    };
    let mut am: user::ActiveModel = current.clone().into();
    let mut changed = Vec::new();
    macro_rules! text {
        ($field:ident, $name:literal, $max:expr) => {
            if let Some(v) = patch.$field {
                am.$field = Set(optional_text($name, v, $max)?);
                changed.push($name);
            }
        };
    }
    text!(name, "name", 200);
    text!(first_name, "first_name", 100);
    text!(last_name, "last_name", 100);
    if let Some(v) = patch.username {
        am.username = Set(crate::services::auth::check_username(v)?);
        changed.push("username");
    }
    if let Some(v) = patch.avatar_url {
        am.avatar_url = Set(check_url(v)?);
        changed.push("avatar_url");
    }
    if let Some(v) = patch.locale {
        am.locale = Set(crate::services::auth::check_locale(v)?);
        changed.push("locale");
    }
    if let Some(v) = patch.metadata {
        if let Some(m) = &v
            && (!m.is_object() || m.to_string().len() > 16 * 1024)
        {
            return Err(AppError::field("metadata", FieldIssue::InvalidFormat));
        }
        am.metadata = Set(v);
        changed.push("metadata");
    }
    let mut suspend = false;
    if let Some(s) = patch.status {
        match UserStatus::parse(&s) {
            Some(status @ (UserStatus::Active | UserStatus::Suspended)) => {
                suspend = status == UserStatus::Suspended && !UserStatus::Suspended.is(&current.status);
                am.status = Set(status.as_str().into());
                changed.push("status");
            }
            _ => return Err(AppError::field("status", FieldIssue::InvalidFormat)),
        }
    }
    if let Some(v) = patch.is_admin {
        if Some(id) == p.user_id() && !v {
            // An administrator cannot remove their own rights by accident (and leave none).
            return Err(AppError::field("is_admin", FieldIssue::InvalidFormat));
        }
        am.is_admin = Set(v);
        changed.push("is_admin");
    }
    if let Some(v) = patch.email_verified {
        am.email_verified = Set(v);
        changed.push("email_verified");
    }
    am.updated_at = Set(Utc::now());
    let mut w = Write::begin(state, ctx).await?;
    let u = am.update(w.tx()).await?;
    w.user_changed(u.id);
    let mut data = serde_json::json!({"user_id": id, "changed": changed});
    if let Some(new) = &new_email {
        crate::services::email_verification::request_email_change(&mut w, state, &u, new).await?;
        data["email_change_requested"] = serde_json::json!(new.as_str());
    }
    w.record(Change {
        event: EventType::UserUpdated,
        target: Some(("user", id.to_string())),
        subject_user: Some(id),
        acting_user: None,
        organization: None,
        data,
    })
    .await?;
    if suspend {
        revoke_all(&mut w, id, "user_suspended").await?;
    }
    w.commit().await?;
    Ok(u.into())
}

pub(crate) async fn revoke_all(w: &mut Write<'_>, user_id: Uuid, reason: &str) -> AppResult<()> {
    let sessions = session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .all(w.tx())
        .await?;
    for s in &sessions {
        crate::services::sessions::revoke_in(w, s, reason).await?;
    }
    Ok(())
}

/// Deletes a user (oneself or by an administrator): every session is revoked, memberships end,
/// personal data is erased and the email freed; the row and the audit trail stay. The last
/// owner of an organization must hand it over first (`CONFLICT`). Deleting oneself needs a
/// recent authentication (`REAUTH_REQUIRED`).
pub async fn delete_user(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<()> {
    let p = authz::principal(state, ctx).await?;
    let (via_org_admin, in_key_org) = authz::user_visibility(&state.db, &p, id).await?;
    authz::authorize(&p, &Action::DeleteUser { user: id, visible: via_org_admin || in_key_org })?;
    if p.user_id() == Some(id) {
        crate::services::sessions::require_recent_auth(state, ctx).await?;
    }
    let mut w = Write::begin(state, ctx).await?;
    let current = user::Entity::find_by_id(id)
        .one(w.tx())
        .await?
        .filter(|u| !UserStatus::Deleted.is(&u.status))
        .ok_or(ErrorCode::NotFound)?;
    // Organizations are locked in one order, so two deletions over the same ones cannot deadlock.
    let owned: Vec<org_member::Model> = org_member::Entity::find()
        .filter(org_member::Column::UserId.eq(id))
        .filter(org_member::Column::Role.eq(OrgRole::Owner.as_str()))
        .order_by_asc(org_member::Column::OrganizationId)
        .all(w.tx())
        .await?;
    for m in owned {
        if crate::services::orgs::owner_count(w.tx(), m.organization_id).await? <= 1 {
            return Err(AppError::new(ErrorCode::Conflict).with_details(
                serde_json::json!({"reason": "last_owner", "organization_id": m.organization_id}),
            ));
        }
    }
    org_member::Entity::delete_many().filter(org_member::Column::UserId.eq(id)).exec(w.tx()).await?;
    let mut am: user::ActiveModel = current.clone().into();
    am.status = Set(UserStatus::Deleted.as_str().into());
    am.email = Set(format!("deleted+{}@deleted.invalid", id.simple()));
    am.password_hash = Set(None);
    am.name = Set(None);
    am.first_name = Set(None);
    am.last_name = Set(None);
    am.username = Set(None);
    am.avatar_url = Set(None);
    am.metadata = Set(None);
    am.updated_at = Set(Utc::now());
    am.update(w.tx()).await?;
    w.user_changed(id);
    w.record(Change {
        event: EventType::UserDeleted,
        target: Some(("user", id.to_string())),
        subject_user: Some(id),
        acting_user: None,
        organization: None,
        data: serde_json::json!({"user_id": id, "email": current.email}),
    })
    .await?;
    revoke_all(&mut w, id, "user_deleted").await?;
    w.commit().await?;
    Ok(())
}

/// A user's roles: global (`admin`) and per organization.
#[derive(Clone, Debug)]
pub struct UserRoles {
    pub global: Vec<String>,
    pub organizations: Vec<(Uuid, String, String)>,
}

/// The roles of a user the caller may see.
pub async fn user_roles(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<UserRoles> {
    let p = authz::principal(state, ctx).await?;
    let u = readable_user(state, &p, id).await?;
    let rows = org_member::Entity::find()
        .filter(org_member::Column::UserId.eq(id))
        .find_also_related(organization::Entity)
        .all(&state.db)
        .await?;
    Ok(UserRoles {
        global: if u.is_admin { vec!["admin".into()] } else { vec![] },
        organizations: rows.into_iter().filter_map(|(m, o)| o.map(|o| (o.id, o.name, m.role))).collect(),
    })
}

/// A new user row: what differs between sign-up, the first administrator and provisioning; the
/// rest starts empty (active, no avatar, no metadata).
#[derive(Default)]
pub(crate) struct NewUser {
    pub email: String,
    pub password_hash: Option<String>,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub locale: Option<String>,
    pub is_admin: bool,
    pub email_verified: bool,
    /// Signed in at creation (sign-up opens a session at once).
    pub signed_in: bool,
}

/// Inserts a user (a taken email is the database's unique-index conflict).
pub(crate) async fn insert_user(tx: &impl ConnectionTrait, n: NewUser) -> AppResult<user::Model> {
    use sea_orm::{ActiveModelTrait, Set};
    let now = chrono::Utc::now();
    Ok(user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(n.email),
        password_hash: Set(n.password_hash),
        name: Set(n.name),
        first_name: Set(n.first_name),
        last_name: Set(n.last_name),
        username: Set(n.username),
        avatar_url: Set(None),
        locale: Set(n.locale),
        metadata: Set(None),
        status: Set(UserStatus::Active.as_str().into()),
        is_admin: Set(n.is_admin),
        email_verified: Set(n.email_verified),
        last_signin_at: Set(n.signed_in.then_some(now)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(tx)
    .await?)
}
