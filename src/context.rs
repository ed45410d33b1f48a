//! Who is asking, from where, in which language: built once per request by the HTTP layer
//! and handed to services (which know nothing of HTTP).

use std::net::IpAddr;

use uuid::Uuid;

use crate::error::{AppError, AppResult, ErrorCode, Locale};
use crate::storage::UserStamp;

/// A signed-in user acting through one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserActor {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub email: String,
    /// The stamp of the user's record read with the session's revocation when this request was
    /// authenticated: a cached copy loaded under it is current (`None`: read the database).
    pub stamp: Option<UserStamp>,
}

/// An API key acting for its organization (or, without one, for an administrator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyActor {
    pub key_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub scopes: Vec<String>,
}

/// An organization's SCIM token, provisioning that organization (SCIM routes only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimActor {
    pub token_id: Uuid,
    pub organization_id: Uuid,
}

/// The caller of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Actor {
    #[default]
    Anonymous,
    User(UserActor),
    ApiKey(ApiKeyActor),
    Scim(ScimActor),
}

/// Everything a service needs to know about the request it serves.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub request_id: String,
    pub actor: Actor,
    /// Why a presented credential was refused (an anonymous request with a bad token).
    pub auth_error: Option<ErrorCode>,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub locale: Locale,
}

impl RequestContext {
    /// The signed-in user, or the reason there is none (`AUTHENTICATION_REQUIRED`, or why the
    /// presented token was refused).
    pub fn require_user(&self) -> AppResult<&UserActor> {
        match &self.actor {
            Actor::User(u) => Ok(u),
            // An API key acts for an organization, never as a person.
            Actor::ApiKey(_) | Actor::Scim(_) => Err(AppError::new(ErrorCode::Forbidden)),
            Actor::Anonymous => {
                Err(AppError::new(self.auth_error.unwrap_or(ErrorCode::AuthenticationRequired)))
            }
        }
    }
}

/// A fresh request id: `req_` and 16 random hex digits.
pub fn new_request_id() -> String {
    format!("req_{}", &Uuid::new_v4().simple().to_string()[..16])
}

/// Accepts a client-sent request id when it is sane (1–64 visible ASCII characters).
pub fn sane_request_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// One refresh-token rotation to write (`services::refresh_batch`, which writes them in groups):
/// the request, the token presented, its session and user, and its successor.
pub struct Rotation {
    pub ctx: RequestContext,
    /// The presented token's row, and whether it was already rotated when read (then this is a
    /// replay within the grace period: its successor must exist, nothing is rotated).
    pub token_id: Uuid,
    pub already_rotated: bool,
    pub session_id: Uuid,
    pub session_expires_at: chrono::DateTime<chrono::Utc>,
    pub user_id: Uuid,
    pub email: String,
    /// The successor token (derived from the presented one, so every replay names the same).
    pub successor: String,
}
