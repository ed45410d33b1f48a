//! Single-use tokens mailed to a user: 32 random bytes (base64url), stored only as their
//! SHA-256 and found by that hash, each for one purpose, with an expiry. Issuing a token
//! invalidates the user's earlier unspent tokens of the same purpose; spending one is a
//! conditional update, so two requests racing with the same token cannot both succeed.

use chrono::{Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use entities::account_token;

use crate::error::{AppError, AppResult, ErrorCode};
use crate::security::secrets::{random_token, sha256_hex};
use crate::services::unit_of_work::Write;

/// What a token is for (`account_tokens.purpose`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Verifies the address of an account.
    VerifyEmail,
    /// Confirms a new address (the token's data holds it).
    EmailChange,
    /// Sets a new password.
    PasswordReset,
    /// Signs in.
    MagicLink,
}

impl TokenPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::EmailChange => "email_change",
            Self::PasswordReset => "password_reset",
            Self::MagicLink => "magic_link",
        }
    }

    /// How long a token of this purpose works.
    pub fn ttl(self) -> Duration {
        match self {
            Self::VerifyEmail | Self::EmailChange => Duration::hours(24),
            Self::PasswordReset => Duration::minutes(30),
            Self::MagicLink => Duration::minutes(15),
        }
    }

    /// The path of the page the mailed link opens (it shows a button that calls the API, so a
    /// mail scanner fetching the link spends nothing).
    pub fn page(self) -> &'static str {
        match self {
            Self::VerifyEmail => "/verify-email",
            Self::EmailChange => "/confirm-email",
            Self::PasswordReset => "/reset-password",
            Self::MagicLink => "/magic-link",
        }
    }
}

/// Issues a token of `purpose` for `user_id` in the write `w`, carrying `data`; the user's
/// unspent tokens of that purpose stop working. Returns the token (shown only in the mail).
pub async fn issue(
    w: &mut Write<'_>,
    user_id: Uuid,
    purpose: TokenPurpose,
    data: Option<serde_json::Value>,
) -> AppResult<String> {
    account_token::Entity::delete_many()
        .filter(account_token::Column::UserId.eq(user_id))
        .filter(account_token::Column::Purpose.eq(purpose.as_str()))
        .filter(account_token::Column::UsedAt.is_null())
        .exec(w.tx())
        .await?;
    let token = random_token(32);
    let now = Utc::now();
    account_token::Entity::insert(account_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        purpose: Set(purpose.as_str().to_owned()),
        token_hash: Set(sha256_hex(&token)),
        data: Set(data),
        expires_at: Set(now + purpose.ttl()),
        used_at: Set(None),
        created_at: Set(now),
    })
    .exec_without_returning(w.tx())
    .await?;
    Ok(token)
}

/// The live token `token` of one of `purposes`, without spending it: `INVALID_TOKEN` when it
/// is unknown (or tampered with), spent or of another purpose, `TOKEN_EXPIRED` when expired.
pub async fn find(
    db: &impl ConnectionTrait,
    purposes: &[TokenPurpose],
    token: &str,
) -> AppResult<account_token::Model> {
    let invalid = || AppError::new(ErrorCode::InvalidToken);
    if token.is_empty() || token.len() > 200 {
        return Err(invalid());
    }
    let found = account_token::Entity::find()
        .filter(account_token::Column::TokenHash.eq(sha256_hex(token)))
        .one(db)
        .await?
        .filter(|t| purposes.iter().any(|p| p.as_str() == t.purpose))
        .filter(|t| t.used_at.is_none())
        .ok_or_else(invalid)?;
    if found.expires_at <= Utc::now() {
        return Err(ErrorCode::TokenExpired.into());
    }
    Ok(found)
}

/// Spends the live token `token` of one of `purposes` in the write `w` (see [`find`] for the
/// refusals); exactly one of two concurrent spends succeeds.
pub async fn spend(w: &Write<'_>, purposes: &[TokenPurpose], token: &str) -> AppResult<account_token::Model> {
    let t = find(w.tx(), purposes, token).await?;
    let spent = account_token::Entity::update_many()
        .col_expr(account_token::Column::UsedAt, Expr::value(Utc::now()))
        .filter(account_token::Column::Id.eq(t.id))
        .filter(account_token::Column::UsedAt.is_null())
        .exec(w.tx())
        .await?;
    if spent.rows_affected != 1 {
        return Err(ErrorCode::InvalidToken.into());
    }
    Ok(t)
}

/// The purpose of a stored name.
pub fn purpose_of(stored: &str) -> Option<TokenPurpose> {
    [
        TokenPurpose::VerifyEmail,
        TokenPurpose::EmailChange,
        TokenPurpose::PasswordReset,
        TokenPurpose::MagicLink,
    ]
    .into_iter()
    .find(|p| p.as_str() == stored)
}
