//! GraphQL output and input types, built `From` service values. Nothing here can hold a
//! password hash, a stored token hash or a private key.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Enum, ID, InputObject, Json, SimpleObject};
use chrono::{DateTime, Utc};

use crate::domain::page::Page;
use crate::services::sessions::{Device as DeviceView, IssuedTokens, SessionView};
use crate::services::sign_in::{Authenticated, SignInOutcome};
use crate::services::users::UserView;

/// A user account.
#[derive(SimpleObject, Clone)]
pub struct User {
    pub id: ID,
    pub email: String,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    pub locale: Option<String>,
    pub metadata: Option<Json<serde_json::Value>>,
    /// `active`, `suspended` or `deleted`.
    pub status: String,
    pub is_admin: bool,
    pub email_verified: bool,
    pub last_signin_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserView> for User {
    fn from(u: UserView) -> Self {
        Self {
            id: ID(u.id.to_string()),
            email: u.email,
            name: u.name,
            first_name: u.first_name,
            last_name: u.last_name,
            username: u.username,
            avatar_url: u.avatar_url,
            locale: u.locale,
            metadata: u.metadata.map(Json),
            status: u.status,
            is_admin: u.is_admin,
            email_verified: u.email_verified,
            last_signin_at: u.last_signin_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// Tokens issued at sign-in or refresh. The refresh token is shown only here, once.
#[derive(SimpleObject, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Seconds until the refresh token (and its session) expires.
    pub refresh_expires_in: i64,
    pub session_id: ID,
}

impl From<IssuedTokens> for Tokens {
    fn from(t: IssuedTokens) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: "Bearer".into(),
            expires_in: t.expires_in,
            refresh_expires_in: t.refresh_expires_in,
            session_id: ID(t.session_id.to_string()),
        }
    }
}

/// A signed-in user with their tokens.
#[derive(SimpleObject, Clone)]
pub struct AuthPayload {
    pub user: User,
    pub tokens: Tokens,
}

impl From<Authenticated> for AuthPayload {
    fn from(a: Authenticated) -> Self {
        Self { user: a.user.into(), tokens: a.tokens.into() }
    }
}

/// Payload of `signin`: `user` and `tokens`, or — when the account has MFA on — `mfaRequired`
/// with an `mfaToken` for `verifyMfa` / `authenticatePasskey` and the `methods` it accepts.
#[derive(SimpleObject, Clone)]
pub struct SigninPayload {
    pub user: Option<User>,
    pub tokens: Option<Tokens>,
    pub mfa_required: bool,
    /// Short-lived, single-use; present only when `mfaRequired`.
    pub mfa_token: Option<String>,
    /// `totp`, `backup_code`, `passkey`; present only when `mfaRequired`.
    pub methods: Option<Vec<String>>,
}

impl From<SignInOutcome> for SigninPayload {
    fn from(o: SignInOutcome) -> Self {
        match o {
            SignInOutcome::Authenticated(a) => Self {
                user: Some(a.user.clone().into()),
                tokens: Some(a.tokens.into()),
                mfa_required: false,
                mfa_token: None,
                methods: None,
            },
            SignInOutcome::MfaRequired(c) => Self {
                user: None,
                tokens: None,
                mfa_required: true,
                mfa_token: Some(c.mfa_token),
                methods: Some(c.methods),
            },
        }
    }
}

/// Payload of `refresh`.
#[derive(SimpleObject, Clone)]
pub struct RefreshPayload {
    pub tokens: Tokens,
}

/// Payload of `reauthenticate`.
#[derive(SimpleObject, Clone)]
pub struct ReauthenticatePayload {
    /// When the session proved the password; sensitive changes are allowed for the
    /// re-authentication window from then.
    pub authenticated_at: DateTime<Utc>,
}

/// The outcome of an action that returns nothing else.
#[derive(SimpleObject, Clone)]
pub struct ActionPayload {
    pub success: bool,
}

/// Payload of `terminateAllSessions`.
#[derive(SimpleObject, Clone)]
pub struct TerminateAllPayload {
    /// How many sessions were revoked.
    pub terminated: u64,
}

/// The device a session was opened from, parsed from its user agent.
#[derive(SimpleObject, Clone)]
pub struct Device {
    pub browser: Option<String>,
    pub os: Option<String>,
    /// `desktop`, `mobile`, `bot`, `appliance` or `unknown`.
    #[graphql(name = "type")]
    pub kind: String,
}

impl From<DeviceView> for Device {
    fn from(d: DeviceView) -> Self {
        Self { browser: d.browser, os: d.os, kind: d.kind }
    }
}

/// One sign-in on one device.
#[derive(SimpleObject, Clone)]
pub struct Session {
    pub id: ID,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub device: Device,
    /// `password`, `passkey`, `sso`, with `+mfa` when a second factor was used.
    pub auth_method: String,
    pub created_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl From<SessionView> for Session {
    fn from(s: SessionView) -> Self {
        Self {
            id: ID(s.id.to_string()),
            ip_address: s.ip_address,
            user_agent: s.user_agent,
            device: s.device.into(),
            auth_method: s.auth_method,
            created_at: s.created_at,
            last_active_at: s.last_active_at,
            expires_at: s.expires_at,
            revoked_at: s.revoked_at,
            current: s.current,
        }
    }
}

/// Extra fields of every connection.
#[derive(SimpleObject, Clone, Default)]
pub struct ConnectionTotals {
    /// Rows matching the list's filters, over all pages.
    pub total_count: u64,
}

/// A Relay connection with `totalCount`.
pub type Conn<T> = Connection<String, T, ConnectionTotals>;

/// Turns a service page into a connection.
pub fn connection<S, T: async_graphql::OutputType + From<S>>(page: Page<S>) -> Conn<T> {
    let mut c = Connection::with_additional_fields(
        page.has_previous,
        page.has_next,
        ConnectionTotals { total_count: page.total_count },
    );
    c.edges.extend(page.items.into_iter().map(|(cursor, item)| Edge::new(cursor, T::from(item))));
    c
}

/// Input of `signup`.
#[derive(InputObject)]
pub struct SignupInput {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub locale: Option<String>,
}

/// Input of `signin`.
#[derive(InputObject)]
pub struct SigninInput {
    pub email: String,
    pub password: String,
}

/// Input of `reauthenticate`.
#[derive(InputObject)]
pub struct ReauthenticateInput {
    pub password: String,
}

/// Input of `refresh`.
#[derive(InputObject)]
pub struct RefreshInput {
    pub refresh_token: String,
}

/// Input of `terminateAllSessions`.
#[derive(InputObject)]
pub struct TerminateAllInput {
    /// Also revoke the session making the request.
    #[graphql(default)]
    pub include_current: bool,
}

/// What happened to a session.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SessionEventType {
    Created,
    Refreshed,
    Revoked,
    RefreshReuseDetected,
}

/// A session event delivered by `sessionEvents`.
#[derive(SimpleObject, Clone)]
pub struct SessionEvent {
    /// The event id, equal to its audit record's id; pass it as `after` to resume.
    pub id: ID,
    #[graphql(name = "type")]
    pub kind: SessionEventType,
    /// The dotted event name (`session.revoked`, …).
    pub action: String,
    pub session_id: ID,
    pub user_id: ID,
    pub occurred_at: DateTime<Utc>,
}
