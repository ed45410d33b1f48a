//! What administrators see: every user and organization with counts, analytics, the audit log.
//! Every administrator read is itself audited (`admin.action`).

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Days, Duration, DurationRound, NaiveDate, NaiveTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QuerySelect,
};
use uuid::Uuid;

use entities::{audit_log, mfa_factor, org_member, organization, passkey, session, user};

use crate::context::RequestContext;
use crate::domain::EventType;
use crate::domain::UserStatus;
use crate::domain::bounds::{self, MAX_FILTER_CHARS, check_len};
use crate::domain::lists::{ListRequest, like_escape};
use crate::domain::page::Page;
use crate::error::{AppError, AppResult, FieldIssue};
use crate::services::audit::Change;
use crate::services::authz::{self, Action};
use crate::services::orgs::{OrgView, map_page, page_organizations};
use crate::services::unit_of_work::Write;
use crate::services::users::{UserFilter, UserView, page_users};
use crate::state::AppState;
use crate::storage::keyset::{Keyset, decode_uuid};

async fn authorize_and_record(
    state: &AppState,
    ctx: &RequestContext,
    what: &str,
    args: serde_json::Value,
) -> AppResult<()> {
    authorize_admin_read(state, ctx).await?;
    record_admin_read(state, ctx, what, args).await
}

async fn authorize_admin_read(state: &AppState, ctx: &RequestContext) -> AppResult<()> {
    let p = authz::principal(state, ctx).await?;
    authz::authorize(&p, &Action::AdminRead)
}

/// `q`'s row count, as an [`AppResult`].
async fn count<E: EntityTrait>(db: &impl ConnectionTrait, q: sea_orm::Select<E>) -> AppResult<u64>
where
    E::Model: Sync,
{
    Ok(q.count(db).await?)
}

/// The audit record of an administrator's read, once it is authorized.
async fn record_admin_read(
    state: &AppState,
    ctx: &RequestContext,
    what: &str,
    args: serde_json::Value,
) -> AppResult<()> {
    let mut w = Write::begin(state, ctx).await?;
    w.record(Change {
        event: EventType::AdminAction,
        target: None,
        subject_user: None,
        acting_user: None,
        organization: None,
        data: serde_json::json!({"operation": what, "arguments": args}),
    })
    .await?;
    w.commit().await?;
    Ok(())
}

/// A user with the counts administrators look at.
#[derive(Clone, Debug)]
pub struct AdminUserView {
    pub user: UserView,
    pub active_sessions: u64,
    pub organizations: u64,
    /// Registered passkeys.
    pub passkeys: u64,
    /// Whether a TOTP factor is on (confirmed).
    pub mfa_enabled: bool,
}

async fn counts_by<E, C>(
    db: &impl ConnectionTrait,
    col: C,
    ids: &[Uuid],
    extra: sea_orm::Condition,
) -> AppResult<HashMap<Uuid, u64>>
where
    E: EntityTrait,
    C: ColumnTrait,
{
    let rows: Vec<(Uuid, i64)> = E::find()
        .filter(col.is_in(ids.to_vec()))
        .filter(extra)
        .select_only()
        .column(col)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .group_by(col)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|(k, n)| (k, n.max(0) as u64)).collect())
}

/// Every user (filters, sort, search as `/users`) with session and organization counts.
pub async fn admin_users(
    state: &AppState,
    ctx: &RequestContext,
    filter: &UserFilter,
    req: &ListRequest,
) -> AppResult<Page<AdminUserView>> {
    authorize_and_record(
        state,
        ctx,
        "admin_users",
        serde_json::json!({"search": filter.search, "status": filter.status}),
    )
    .await?;
    let page = page_users(&state.db, &state.counts, None, filter, req).await?;
    let ids: Vec<Uuid> = page.items.iter().map(|(_, u)| u.id).collect();
    let active = sea_orm::Condition::all()
        .add(session::Column::RevokedAt.is_null())
        .add(session::Column::ExpiresAt.gt(Utc::now()));
    let sessions = counts_by::<session::Entity, _>(&state.db, session::Column::UserId, &ids, active).await?;
    let orgs = counts_by::<org_member::Entity, _>(
        &state.db,
        org_member::Column::UserId,
        &ids,
        sea_orm::Condition::all(),
    )
    .await?;
    let passkeys =
        counts_by::<passkey::Entity, _>(&state.db, passkey::Column::UserId, &ids, sea_orm::Condition::all())
            .await?;
    let mfa = counts_by::<mfa_factor::Entity, _>(
        &state.db,
        mfa_factor::Column::UserId,
        &ids,
        sea_orm::Condition::all().add(mfa_factor::Column::Enabled.eq(true)),
    )
    .await?;
    Ok(map_page(page, |u| AdminUserView {
        active_sessions: sessions.get(&u.id).copied().unwrap_or(0),
        organizations: orgs.get(&u.id).copied().unwrap_or(0),
        passkeys: passkeys.get(&u.id).copied().unwrap_or(0),
        mfa_enabled: mfa.get(&u.id).is_some_and(|n| *n > 0),
        user: u.into(),
    }))
}

/// An organization with its member count.
#[derive(Clone, Debug)]
pub struct AdminOrgView {
    pub organization: OrgView,
    pub members: u64,
}

/// Every organization with member counts.
pub async fn admin_organizations(
    state: &AppState,
    ctx: &RequestContext,
    req: &ListRequest,
    sort: Option<&str>,
    search: Option<&str>,
) -> AppResult<Page<AdminOrgView>> {
    authorize_and_record(state, ctx, "admin_organizations", serde_json::json!({"search": search})).await?;
    let page = page_organizations(state, None, req, sort, search).await?;
    let ids: Vec<Uuid> = page.items.iter().map(|(_, o)| o.id).collect();
    let members = counts_by::<org_member::Entity, _>(
        &state.db,
        org_member::Column::OrganizationId,
        &ids,
        sea_orm::Condition::all(),
    )
    .await?;
    Ok(map_page(page, |o| AdminOrgView {
        members: members.get(&o.id).copied().unwrap_or(0),
        organization: o,
    }))
}

/// Totals, rates and a per-day series.
#[derive(Clone, Debug, Default)]
pub struct Analytics {
    pub users_total: u64,
    pub users_active_30d: u64,
    pub users_new_24h: u64,
    pub users_new_7d: u64,
    pub users_new_30d: u64,
    pub organizations_total: u64,
    pub active_sessions: u64,
    pub signins_24h: u64,
    pub signin_failures_24h: u64,
    /// Sign-ins that succeeded among all attempts of the last 24 hours (1.0 when none).
    pub signin_success_rate_24h: f64,
    /// Live users with TOTP turned on.
    pub users_with_mfa: u64,
    /// Live users with at least one passkey.
    pub users_with_passkeys: u64,
    /// `users_with_mfa` among all live users (0.0 when there are none).
    pub mfa_adoption_rate: f64,
    /// `users_with_passkeys` among all live users (0.0 when there are none).
    pub passkey_adoption_rate: f64,
    pub series: Vec<DayPoint>,
}

/// One day of the series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayPoint {
    pub date: NaiveDate,
    pub new_users: u64,
    pub signins: u64,
    pub signin_failures: u64,
}

#[derive(FromQueryResult)]
struct DayCount {
    day: String,
    n: i64,
}

fn day_expr(
    backend: DbBackend,
    col: impl sea_orm::sea_query::IntoColumnRef,
) -> sea_orm::sea_query::SimpleExpr {
    match backend {
        DbBackend::Postgres => {
            Expr::cust_with_expr("to_char(($1 AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD')", Expr::col(col))
        }
        _ => Func::cust(Alias::new("substr")).arg(Expr::col(col)).arg(1).arg(10).into(),
    }
}

async fn per_day<E: EntityTrait>(
    db: &impl ConnectionTrait,
    col: E::Column,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    extra: sea_orm::Condition,
) -> AppResult<HashMap<String, u64>> {
    let rows = E::find()
        .filter(col.gte(from))
        .filter(col.lt(to))
        .filter(extra)
        .select_only()
        .column_as(day_expr(db.get_database_backend(), col), "day")
        .column_as(Expr::cust("COUNT(*)"), "n")
        .group_by(Expr::cust("1"))
        .into_model::<DayCount>()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.day, r.n.max(0) as u64)).collect())
}

/// `user_counts_hourly`'s key of the hour `t` falls in (UTC), as its triggers write it; years
/// past 9999 (the end of the last day allowed) sort after every key.
fn hour_key(t: DateTime<Utc>) -> String {
    if t.year() > 9999 { "~".into() } else { t.format("%Y-%m-%dT%H").to_string() }
}

/// The sum of `user_counts_hourly.{column}` (`created` or `live`) over the hours from `from_hour`.
async fn counted_users(db: &impl ConnectionTrait, column: &str, from_hour: Option<String>) -> AppResult<u64> {
    use sea_orm::sea_query::ExprTrait;
    let mut q = sea_orm::sea_query::Query::select();
    q.expr_as(Expr::cust(format!("CAST(COALESCE(SUM({column}), 0) AS BIGINT)")), Alias::new("n"))
        .from(Alias::new("user_counts_hourly"));
    if let Some(h) = from_hour {
        q.and_where(Expr::col(Alias::new("hour")).gte(h));
    }
    let row = db.query_one(&q).await?;
    let n: i64 = row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Users not deleted created at `since` or later, exactly: the hourly counters of every whole
/// hour from the next one on, and the users of the part hour before it from the index on
/// `created_at` (so at most an hour of rows is read, whatever the window).
async fn live_users_since(db: &impl ConnectionTrait, since: DateTime<Utc>) -> AppResult<u64> {
    let hour_start = since.duration_trunc(Duration::hours(1)).unwrap_or(since);
    let next_hour = if hour_start == since { since } else { hour_start + Duration::hours(1) };
    let part = user::Entity::find()
        .filter(user::Column::Status.ne(UserStatus::Deleted.as_str()))
        .filter(user::Column::CreatedAt.gte(since))
        .filter(user::Column::CreatedAt.lt(next_hour))
        .count(db)
        .await?;
    Ok(part + counted_users(db, "live", Some(hour_key(next_hour))).await?)
}

/// Users created per day (deleted ones too) between the midnights `from` and `to`, from the
/// hourly counters.
async fn new_users_per_day(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<HashMap<String, u64>> {
    use sea_orm::sea_query::ExprTrait;
    let hour = || Expr::col(Alias::new("hour"));
    let q = sea_orm::sea_query::Query::select()
        .expr_as(Func::cust(Alias::new("substr")).arg(hour()).arg(1).arg(10), Alias::new("day"))
        .expr_as(Expr::cust("CAST(SUM(created) AS BIGINT)"), Alias::new("n"))
        .from(Alias::new("user_counts_hourly"))
        .and_where(hour().gte(hour_key(from)))
        .and_where(hour().lt(hour_key(to)))
        .group_by_col(Alias::new("day"))
        .to_owned();
    let rows = DayCount::find_by_statement(db.get_database_backend().build(&q)).all(db).await?;
    Ok(rows.into_iter().map(|r| (r.day, u64::try_from(r.n).unwrap_or(0))).collect())
}

/// Analytics over all data, with a daily series from `from` to `to` (years [`bounds::MIN_YEAR`] to
/// [`bounds::MAX_YEAR`], at most 366 days; default the last 30).
pub async fn analytics(
    state: &AppState,
    ctx: &RequestContext,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> AppResult<Analytics> {
    let out_of_range = |field: &str| AppError::field(field, FieldIssue::OutOfRange);
    let to = match to {
        Some(d) => bounds::check_day("to", d)?,
        None => Utc::now().date_naive(),
    };
    let from = match from {
        Some(d) => bounds::check_day("from", d)?,
        None => to.checked_sub_days(Days::new(29)).ok_or_else(|| out_of_range("to"))?,
    };
    if from > to {
        return Err(AppError::field("from", FieldIssue::OutOfRange));
    }
    if (to - from).num_days() > 365 {
        return Err(AppError::field("to", FieldIssue::OutOfRange));
    }
    authorize_admin_read(state, ctx).await?;
    let db = &state.db;
    let now = Utc::now();
    let live = user::Column::Status.ne(UserStatus::Deleted.as_str());
    let users = || user::Entity::find().filter(live.clone());
    let since = |d: i64| now - Duration::days(d);
    let action = |a: EventType, d: DateTime<Utc>| {
        audit_log::Entity::find()
            .filter(audit_log::Column::Action.eq(a.as_str()))
            .filter(audit_log::Column::CreatedAt.gte(d))
    };
    let start = from.and_time(NaiveTime::MIN).and_utc();
    let end = to
        .checked_add_days(Days::new(1))
        .ok_or_else(|| out_of_range("to"))?
        .and_time(NaiveTime::MIN)
        .and_utc();
    let signin_cond = |a: EventType| sea_orm::Condition::all().add(audit_log::Column::Action.eq(a.as_str()));
    let per_action = |a: EventType| {
        per_day::<audit_log::Entity>(db, audit_log::Column::CreatedAt, start, end, signin_cond(a))
    };
    let having = |q: sea_orm::sea_query::SelectStatement| users().filter(user::Column::Id.in_subquery(q));
    let with_mfa = having(
        sea_orm::sea_query::Query::select()
            .column(mfa_factor::Column::UserId)
            .from(mfa_factor::Entity)
            .and_where(mfa_factor::Column::Enabled.eq(true))
            .to_owned(),
    );
    let with_passkeys = having(
        sea_orm::sea_query::Query::select()
            .distinct()
            .column(passkey::Column::UserId)
            .from(passkey::Entity)
            .to_owned(),
    );
    // The figures are independent reads: they run side by side (each on a pooled connection),
    // beside the audit record of this read, so the answer waits for the slowest, not the sum.
    let (
        (),
        signins_24h,
        failures_24h,
        new_users,
        signins,
        failures,
        users_total,
        users_with_mfa,
        users_with_passkeys,
        users_active_30d,
        organizations_total,
        active_sessions,
        users_new_24h,
        users_new_7d,
        users_new_30d,
    ) = tokio::try_join!(
        record_admin_read(state, ctx, "analytics", serde_json::json!({"from": from, "to": to})),
        count(db, action(EventType::UserSignedIn, since(1))),
        count(db, action(EventType::UserSigninFailed, since(1))),
        new_users_per_day(db, start, end),
        per_action(EventType::UserSignedIn),
        per_action(EventType::UserSigninFailed),
        counted_users(db, "live", None),
        count(db, with_mfa),
        count(db, with_passkeys),
        count(db, users().filter(user::Column::LastSigninAt.gte(since(30)))),
        count(db, organization::Entity::find()),
        crate::services::sessions::count_active(db),
        live_users_since(db, since(1)),
        live_users_since(db, since(7)),
        live_users_since(db, since(30)),
    )?;
    let mut series = Vec::new();
    let mut d = from;
    while d <= to {
        let k = d.format("%Y-%m-%d").to_string();
        series.push(DayPoint {
            date: d,
            new_users: new_users.get(&k).copied().unwrap_or(0),
            signins: signins.get(&k).copied().unwrap_or(0),
            signin_failures: failures.get(&k).copied().unwrap_or(0),
        });
        let Some(next) = d.succ_opt() else { break };
        d = next;
    }
    let attempts = signins_24h + failures_24h;
    let share = |n: u64| if users_total == 0 { 0.0 } else { n as f64 / users_total as f64 };
    Ok(Analytics {
        users_total,
        users_with_mfa,
        users_with_passkeys,
        mfa_adoption_rate: share(users_with_mfa),
        passkey_adoption_rate: share(users_with_passkeys),
        users_active_30d,
        users_new_24h,
        users_new_7d,
        users_new_30d,
        organizations_total,
        active_sessions,
        signins_24h,
        signin_failures_24h: failures_24h,
        signin_success_rate_24h: if attempts == 0 { 1.0 } else { signins_24h as f64 / attempts as f64 },
        series,
    })
}

/// Filters of the audit log.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub target_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The audit log, newest first. `action` matches exactly, or as a prefix when it ends with `.*`;
/// `action` and `target_id` have at most [`MAX_FILTER_CHARS`] characters, `from`/`to` the years
/// of [`bounds::check_day`].
pub async fn audit_logs(
    state: &AppState,
    ctx: &RequestContext,
    f: &AuditFilter,
    req: &ListRequest,
) -> AppResult<Page<audit_log::Model>> {
    if let Some(a) = &f.action {
        check_len("action", a, MAX_FILTER_CHARS)?;
    }
    if let Some(t) = &f.target_id {
        check_len("target_id", t, MAX_FILTER_CHARS)?;
    }
    for (field, t) in [("from", f.from), ("to", f.to)] {
        if let Some(t) = t {
            bounds::check_day(field, t.date_naive())?;
        }
    }
    authorize_and_record(state, ctx, "audit_logs", serde_json::json!({"action": f.action})).await?;
    let mut q = audit_log::Entity::find();
    if let Some(a) = f.action.as_deref().filter(|a| !a.is_empty()) {
        q = match a.strip_suffix(".*") {
            // The prefix is matched literally: its `%`, `_` and `\` are not wildcards.
            Some(prefix) => q.filter(sea_orm::sea_query::ExprTrait::like(
                Expr::col(audit_log::Column::Action),
                LikeExpr::new(format!("{}.%", like_escape(prefix))).escape('\\'),
            )),
            None => q.filter(audit_log::Column::Action.eq(a)),
        };
    }
    if let Some(v) = f.actor_id {
        q = q.filter(audit_log::Column::ActorId.eq(v));
    }
    if let Some(v) = f.organization_id {
        q = q.filter(audit_log::Column::OrganizationId.eq(v));
    }
    if let Some(v) = &f.target_id {
        q = q.filter(audit_log::Column::TargetId.eq(v.clone()));
    }
    if let Some(v) = f.from {
        q = q.filter(audit_log::Column::CreatedAt.gte(v));
    }
    if let Some(v) = f.to {
        q = q.filter(audit_log::Column::CreatedAt.lt(v));
    }
    let keyset = Keyset::<audit_log::Entity> {
        column: audit_log::Column::Id,
        id: audit_log::Column::Id,
        desc: true,
        value_of: |m| m.id.to_string().into(),
        id_of: |m| m.id,
        decode: decode_uuid,
    };
    keyset.page(&state.db, &state.counts, q, req).await
}
