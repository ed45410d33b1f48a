//! Users as the rest of the system sees them (no hash), and the caller's own profile.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use entities::user;

use crate::context::RequestContext;
use crate::error::{AppResult, ErrorCode};
use crate::state::AppState;

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
    Ok(user::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ErrorCode::NotFound)?)
}

/// The signed-in caller's profile.
pub async fn me(state: &AppState, ctx: &RequestContext) -> AppResult<UserView> {
    let actor = ctx.require_user()?;
    let u = user::Entity::find_by_id(actor.user_id)
        .one(&state.db)
        .await?
        .ok_or(ErrorCode::SessionRevoked)?;
    Ok(u.into())
}
