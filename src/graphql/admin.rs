//! Administrator queries: `adminUsers`, `adminOrganizations`, `analytics`, `auditLogs`.

use async_graphql::{Context, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};

use super::orgs::Organization;
use super::parts;
use super::types::{Conn, User, connection};
use crate::domain::bounds::{day, instant};
use crate::domain::lists::ListRequest;
use crate::domain::parse_id;
use crate::services::admin::{self, AdminOrgView, AdminUserView, AuditFilter, DayPoint};
use crate::services::users::UserFilter;

/// A user with counts.
#[derive(SimpleObject, Clone)]
pub struct AdminUser {
    pub user: User,
    pub active_sessions: u64,
    pub organizations: u64,
    /// Registered passkeys.
    pub passkeys: u64,
    /// Whether TOTP is on.
    pub mfa_enabled: bool,
}

impl From<AdminUserView> for AdminUser {
    fn from(v: AdminUserView) -> Self {
        Self {
            user: v.user.into(),
            active_sessions: v.active_sessions,
            organizations: v.organizations,
            passkeys: v.passkeys,
            mfa_enabled: v.mfa_enabled,
        }
    }
}

/// An organization with counts.
#[derive(SimpleObject, Clone)]
pub struct AdminOrganization {
    pub organization: Organization,
    pub members: u64,
}

impl From<AdminOrgView> for AdminOrganization {
    fn from(v: AdminOrgView) -> Self {
        Self { organization: v.organization.into(), members: v.members }
    }
}

/// One day of activity.
#[derive(SimpleObject, Clone)]
pub struct AnalyticsDay {
    pub date: NaiveDate,
    pub new_users: u64,
    pub signins: u64,
    pub signin_failures: u64,
}

impl From<DayPoint> for AnalyticsDay {
    fn from(d: DayPoint) -> Self {
        Self { date: d.date, new_users: d.new_users, signins: d.signins, signin_failures: d.signin_failures }
    }
}

/// Totals and rates.
#[derive(SimpleObject, Clone)]
pub struct Analytics {
    pub users_total: u64,
    #[graphql(name = "usersActive30d")]
    pub users_active_30d: u64,
    #[graphql(name = "usersNew24h")]
    pub users_new_24h: u64,
    #[graphql(name = "usersNew7d")]
    pub users_new_7d: u64,
    #[graphql(name = "usersNew30d")]
    pub users_new_30d: u64,
    pub organizations_total: u64,
    pub active_sessions: u64,
    #[graphql(name = "signins24h")]
    pub signins_24h: u64,
    #[graphql(name = "signinFailures24h")]
    pub signin_failures_24h: u64,
    #[graphql(name = "signinSuccessRate24h")]
    pub signin_success_rate_24h: f64,
    /// Live users with TOTP on.
    pub users_with_mfa: u64,
    /// Live users with at least one passkey.
    pub users_with_passkeys: u64,
    /// Share of live users with TOTP on (0 to 1).
    pub mfa_adoption_rate: f64,
    /// Share of live users with a passkey (0 to 1).
    pub passkey_adoption_rate: f64,
    pub series: Vec<AnalyticsDay>,
}

/// Who acted.
#[derive(SimpleObject, Clone)]
pub struct AuditActor {
    /// `user`, `api_key`, `anonymous` or `system`.
    #[graphql(name = "type")]
    pub kind: String,
    pub id: Option<ID>,
    pub email: Option<String>,
}

/// What was acted on.
#[derive(SimpleObject, Clone)]
pub struct AuditTarget {
    #[graphql(name = "type")]
    pub kind: Option<String>,
    pub id: Option<String>,
}

/// One audit record.
#[derive(SimpleObject, Clone)]
pub struct AuditLog {
    pub id: ID,
    pub action: String,
    pub actor: AuditActor,
    pub organization_id: Option<ID>,
    pub target: AuditTarget,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub metadata: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl From<entities::audit_log::Model> for AuditLog {
    fn from(m: entities::audit_log::Model) -> Self {
        Self {
            id: ID(m.id.to_string()),
            action: m.action,
            actor: AuditActor {
                kind: m.actor_type,
                id: m.actor_id.map(|i| ID(i.to_string())),
                email: m.actor_email,
            },
            organization_id: m.organization_id.map(|i| ID(i.to_string())),
            target: AuditTarget { kind: m.target_type, id: m.target_id },
            ip_address: m.ip_address,
            user_agent: m.user_agent,
            request_id: m.request_id,
            metadata: Json(m.metadata),
            created_at: m.created_at,
        }
    }
}

/// Administrator queries (administrators, or an administrator API key with `admin:read`).
#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Every user, with session and organization counts.
    async fn admin_users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        order_by: Option<String>,
        status: Option<String>,
        search: Option<String>,
    ) -> Result<Conn<AdminUser>> {
        let (state, rc) = parts(ctx);
        let req = ListRequest::parse(first, after, last, before)?;
        let filter = UserFilter { status, search, sort: order_by };
        Ok(connection(admin::admin_users(state, rc, &filter, &req).await?))
    }

    /// Every organization, with member counts.
    async fn admin_organizations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        order_by: Option<String>,
        search: Option<String>,
    ) -> Result<Conn<AdminOrganization>> {
        let (state, rc) = parts(ctx);
        let req = ListRequest::parse(first, after, last, before)?;
        Ok(connection(
            admin::admin_organizations(state, rc, &req, order_by.as_deref(), search.as_deref()).await?,
        ))
    }

    /// Totals, rates and a daily series between `from` and `to` (`YYYY-MM-DD`, years 1970 to 9999,
    /// at most 366 days; default the last 30 days).
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Analytics> {
        let (state, rc) = parts(ctx);
        let a = admin::analytics(state, rc, day("from", from.as_deref())?, day("to", to.as_deref())?).await?;
        Ok(Analytics {
            users_total: a.users_total,
            users_active_30d: a.users_active_30d,
            users_new_24h: a.users_new_24h,
            users_new_7d: a.users_new_7d,
            users_new_30d: a.users_new_30d,
            organizations_total: a.organizations_total,
            active_sessions: a.active_sessions,
            signins_24h: a.signins_24h,
            signin_failures_24h: a.signin_failures_24h,
            signin_success_rate_24h: a.signin_success_rate_24h,
            users_with_mfa: a.users_with_mfa,
            users_with_passkeys: a.users_with_passkeys,
            mfa_adoption_rate: a.mfa_adoption_rate,
            passkey_adoption_rate: a.passkey_adoption_rate,
            series: a.series.into_iter().map(Into::into).collect(),
        })
    }

    /// The audit log, newest first. `action` matches exactly, or by prefix when it ends in `.*`;
    /// `action` and `targetId` have at most 200 characters; `from`/`to` are RFC 3339 instants or
    /// `YYYY-MM-DD` dates in the years 1970 to 9999.
    async fn audit_logs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        action: Option<String>,
        actor_id: Option<ID>,
        organization_id: Option<ID>,
        target_id: Option<String>,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Conn<AuditLog>> {
        let (state, rc) = parts(ctx);
        let req = ListRequest::parse(first, after, last, before)?;
        let f = AuditFilter {
            action,
            actor_id: actor_id.filter(|a| !a.is_empty()).map(|a| parse_id("actor_id", &a)).transpose()?,
            organization_id: organization_id
                .filter(|a| !a.is_empty())
                .map(|a| parse_id("organization_id", &a))
                .transpose()?,
            target_id: target_id.filter(|t| !t.is_empty()),
            from: instant("from", from.as_deref())?,
            to: instant("to", to.as_deref())?,
        };
        Ok(connection(admin::audit_logs(state, rc, &f, &req).await?))
    }
}
