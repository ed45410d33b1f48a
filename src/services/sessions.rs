//! Sessions: opening one at sign-in, listing, reading and terminating them.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use uuid::Uuid;

use entities::{refresh_token, session};

use crate::context::{Actor, RequestContext};
use crate::domain::EventType;
use crate::domain::lists::{ListRequest, SESSION_SORTS, SortSpec, time_value};
use crate::domain::page::Page;
use crate::error::{AppResult, ErrorCode};
use crate::security::secrets::{random_token, sha256_hex};
use crate::services::audit::Change;
use crate::services::authz;
use crate::services::unit_of_work::Write;
use crate::state::AppState;
use crate::storage::keyset::{Keyset, decode_time};

/// The browser, OS and kind of device a user agent names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Device {
    pub browser: Option<String>,
    pub os: Option<String>,
    /// `desktop`, `mobile`, `bot`, `appliance` or `unknown`.
    pub kind: String,
}

/// Parses a user agent with woothee.
pub fn parse_device(user_agent: Option<&str>) -> Device {
    let parsed = user_agent.and_then(|ua| woothee::parser::Parser::new().parse(ua));
    let known = |s: &str| (!s.is_empty() && s != "UNKNOWN").then(|| s.to_owned());
    match parsed {
        Some(r) => Device {
            browser: known(r.name),
            os: known(r.os),
            kind: match r.category {
                "pc" => "desktop",
                "smartphone" | "mobilephone" => "mobile",
                "crawler" => "bot",
                "appliance" => "appliance",
                _ => "unknown",
            }
            .to_owned(),
        },
        None => Device { kind: "unknown".into(), ..Device::default() },
    }
}

/// A session as its owner sees it.
#[derive(Clone, Debug)]
pub struct SessionView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub device: Device,
    pub auth_method: String,
    pub created_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Whether this is the session the request came through.
    pub current: bool,
}

impl SessionView {
    fn new(m: session::Model, current_sid: Option<Uuid>) -> Self {
        Self {
            device: parse_device(m.user_agent.as_deref()),
            current: current_sid == Some(m.id),
            id: m.id,
            user_id: m.user_id,
            ip_address: m.ip_address,
            user_agent: m.user_agent,
            auth_method: m.auth_method,
            created_at: m.created_at,
            last_active_at: m.last_active_at,
            expires_at: m.expires_at,
            revoked_at: m.revoked_at,
        }
    }
}

/// Tokens handed to a client at sign-in and refresh. The refresh token exists in clear only here.
#[derive(Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub refresh_expires_in: i64,
    pub session_id: Uuid,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens").field("session_id", &self.session_id).finish_non_exhaustive()
    }
}

/// Opens a session for `user` in the write `w` with its first refresh token, and audits it.
pub(crate) async fn open_session(
    w: &mut Write<'_>,
    state: &AppState,
    ctx: &RequestContext,
    user_id: Uuid,
    email: &str,
    auth_method: &str,
) -> AppResult<IssuedTokens> {
    let now = Utc::now();
    let ttl = state.config.refresh_token_ttl;
    let device = parse_device(ctx.user_agent.as_deref());
    let label = match (&device.browser, &device.os) {
        (Some(b), Some(o)) => Some(format!("{b} on {o}")),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    };
    let s = session::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        ip_address: Set(ctx.client_ip.map(|i| i.to_string())),
        user_agent: Set(ctx.user_agent.clone()),
        device_label: Set(label),
        auth_method: Set(auth_method.to_owned()),
        created_at: Set(now),
        last_active_at: Set(now),
        expires_at: Set(now + Duration::seconds(ttl)),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        authenticated_at: Set(Some(now)),
    }
    .insert(w.tx())
    .await?;
    let refresh = insert_refresh_token(w.tx(), s.id, s.expires_at).await?;
    w.record(Change {
        event: EventType::SessionCreated,
        target: Some(("session", s.id.to_string())),
        subject_user: Some(user_id),
        acting_user: Some((Some(user_id), email.to_owned())),
        organization: None,
        data: serde_json::json!({"session_id": s.id, "user_id": user_id, "auth_method": auth_method}),
    })
    .await?;
    let (access, expires_in) = state.keys.issue_access(user_id, s.id, email)?;
    Ok(IssuedTokens {
        access_token: access,
        refresh_token: refresh,
        expires_in,
        refresh_expires_in: ttl,
        session_id: s.id,
    })
}

/// Refuses a sensitive change (`REAUTH_REQUIRED`) unless the caller's session proved a password
/// or second factor within the configured window (`reauth_window`): a sign-in or
/// [`crate::services::auth::reauthenticate`] counts, a refresh does not. Callers without a
/// session (API keys) pass; their permission checks decide.
pub(crate) async fn require_recent_auth(state: &AppState, ctx: &RequestContext) -> AppResult<()> {
    let Actor::User(actor) = &ctx.actor else {
        return Ok(());
    };
    let s = session::Entity::find_by_id(actor.session_id)
        .one(&state.db)
        .await?
        .filter(|s| s.revoked_at.is_none())
        .ok_or(ErrorCode::SessionRevoked)?;
    let window = Duration::from_std(state.config.reauth_window).unwrap_or(Duration::MAX);
    let proved = s.authenticated_at.unwrap_or(s.created_at);
    if Utc::now() - proved > window {
        return Err(ErrorCode::ReauthRequired.into());
    }
    Ok(())
}

/// Records that the caller's session proved a credential just now.
pub(crate) async fn mark_authenticated(state: &AppState, session_id: Uuid) -> AppResult<DateTime<Utc>> {
    let now = Utc::now();
    let r = session::Entity::update_many()
        .col_expr(session::Column::AuthenticatedAt, Expr::value(now))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(&state.db)
        .await?;
    if r.rows_affected != 1 {
        return Err(ErrorCode::SessionRevoked.into());
    }
    Ok(now)
}

/// Creates a refresh token for a session; stores only its hash.
pub(crate) async fn insert_refresh_token(
    txn: &impl ConnectionTrait,
    session_id: Uuid,
    expires_at: DateTime<Utc>,
) -> AppResult<String> {
    let token = format!("jrt_{}", random_token(32));
    store_refresh_token(txn, session_id, expires_at, &token).await?;
    Ok(token)
}

/// The one successor of a refresh token: derived from it with the master key, so a replay inside
/// the grace period is answered with the successor already issued (nothing about it is stored
/// but its hash, and only a holder of `token` and the server's key can compute it).
pub(crate) fn successor_token(state: &AppState, token: &str) -> String {
    format!("jrt_{}", state.master_key.keyed_hash("refresh-successor", token.as_bytes()))
}

/// Stores the hash of `token` as a live refresh token of the session.
pub(crate) async fn store_refresh_token(
    txn: &impl ConnectionTrait,
    session_id: Uuid,
    expires_at: DateTime<Utc>,
    token: &str,
) -> AppResult<()> {
    refresh_token::Entity::insert(refresh_token_row(session_id, expires_at, token))
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// The row of a live refresh token of the session: the hash of `token`, never the token.
pub(crate) fn refresh_token_row(
    session_id: Uuid,
    expires_at: DateTime<Utc>,
    token: &str,
) -> refresh_token::ActiveModel {
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        session_id: Set(session_id),
        token_hash: Set(sha256_hex(token)),
        created_at: Set(Utc::now()),
        expires_at: Set(expires_at),
        rotated_at: Set(None),
    }
}

/// Marks a session revoked in the write `w` and audits it; once `w` commits, this node
/// refuses its tokens at once.
pub(crate) async fn revoke_in(w: &mut Write<'_>, s: &session::Model, reason: &str) -> AppResult<()> {
    let mut am: session::ActiveModel = s.clone().into();
    am.revoked_at = Set(Some(Utc::now()));
    am.revoked_reason = Set(Some(reason.to_owned()));
    am.update(w.tx()).await?;
    w.record(Change {
        event: EventType::SessionRevoked,
        target: Some(("session", s.id.to_string())),
        subject_user: Some(s.user_id),
        acting_user: None,
        organization: None,
        data: serde_json::json!({"session_id": s.id, "user_id": s.user_id, "reason": reason}),
    })
    .await?;
    w.revoked(s.clone());
    Ok(())
}

fn active_of(user_id: Uuid) -> sea_orm::Select<session::Entity> {
    session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(Utc::now()))
}

fn session_keyset(sort: &SortSpec) -> Keyset<session::Entity> {
    match sort.field.as_str() {
        "last_active_at" => Keyset {
            column: session::Column::LastActiveAt,
            id: session::Column::Id,
            desc: sort.desc,
            value_of: |m| time_value(&m.last_active_at),
            id_of: |m| m.id,
            decode: decode_time,
        },
        _ => Keyset {
            column: session::Column::CreatedAt,
            id: session::Column::Id,
            desc: sort.desc,
            value_of: |m| time_value(&m.created_at),
            id_of: |m| m.id,
            decode: decode_time,
        },
    }
}

/// The caller's active sessions by keyset pages, sorted by one of [`SESSION_SORTS`]
/// (`field:asc|desc`; default newest first).
pub async fn list_sessions(
    state: &AppState,
    ctx: &RequestContext,
    req: &ListRequest,
    sort: Option<&str>,
) -> AppResult<Page<SessionView>> {
    let sort = SortSpec::parse(sort, &SESSION_SORTS, ("created_at", true))?;
    let actor = ctx.require_user()?;
    let page = session_keyset(&sort).page(&state.db, &state.counts, active_of(actor.user_id), req).await?;
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|(c, m)| (c, SessionView::new(m, Some(actor.session_id))))
            .collect(),
        has_next: page.has_next,
        has_previous: page.has_previous,
        total_count: page.total_count,
    })
}

async fn own_session(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<session::Model> {
    let actor = ctx.require_user()?;
    let s = session::Entity::find_by_id(id).one(&state.db).await?.ok_or(ErrorCode::NotFound)?;
    authz::owned_by(actor.user_id, s.user_id)?;
    Ok(s)
}

/// One of the caller's sessions.
pub async fn get_session(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<SessionView> {
    let s = own_session(state, ctx, id).await?;
    Ok(SessionView::new(s, ctx.require_user().ok().map(|a| a.session_id)))
}

/// Revokes one of the caller's sessions (idempotent for an already revoked one).
pub async fn terminate_session(state: &AppState, ctx: &RequestContext, id: Uuid) -> AppResult<()> {
    let s = own_session(state, ctx, id).await?;
    if s.revoked_at.is_some() {
        return Ok(());
    }
    let mut w = Write::begin(state, ctx).await?;
    revoke_in(&mut w, &s, "terminated").await?;
    w.commit().await?;
    Ok(())
}

/// Revokes all the caller's active sessions, keeping the current one unless asked; returns how many.
pub async fn terminate_all(state: &AppState, ctx: &RequestContext, include_current: bool) -> AppResult<u64> {
    let actor = ctx.require_user()?;
    let mut q = active_of(actor.user_id);
    if !include_current {
        q = q.filter(session::Column::Id.ne(actor.session_id));
    }
    let mut w = Write::begin(state, ctx).await?;
    let sessions = q.all(w.tx()).await?;
    for s in &sessions {
        revoke_in(&mut w, s, "terminated_all").await?;
    }
    w.commit().await?;
    Ok(sessions.len() as u64)
}

/// Number of active sessions (for `/metrics`).
pub async fn count_active(db: &impl ConnectionTrait) -> AppResult<u64> {
    Ok(session::Entity::find()
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(Utc::now()))
        .count(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_parsed() {
        let d = parse_device(Some(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        ));
        assert_eq!(d.browser.as_deref(), Some("Chrome"));
        assert_eq!(d.kind, "desktop");
        assert_eq!(parse_device(None).kind, "unknown");
    }
}
