//! Accepting an invitation with the token of its mail. The token is single use and works while
//! the invitation is open and not expired; an unknown, used, expired or revoked token is one
//! answer, `INVITATION_INVALID`, so nobody learns which.
//!
//! Who joins: when the invited address has an account, only that account, signed in (a bearer
//! whose account has that address; another account → `INVITATION_EMAIL_MISMATCH`; no bearer →
//! `INVITATION_SIGN_IN_REQUIRED`, since the invitee proved the mailbox, not the password). When
//! it has none, the invitee signs up on the way with a password (the sign-up policy) and an
//! optional name, and are signed in. Either way the address counts as verified: the invitee
//! proved the mailbox.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use entities::{invitation, organization, user};

use crate::context::{Actor, RequestContext};
use crate::domain::{
    AuthMethod, Email, EventType, InvitationStatus, OrgRole, Password, UserStatus, optional_text,
};
use crate::error::{AppError, AppResult, ErrorCode, FieldIssue};
use crate::security::secrets::sha256_hex;
use crate::services::audit::Change;
use crate::services::authz;
use crate::services::email_verification::mark_verified;
use crate::services::lockout::Attempt;
use crate::services::orgs::{OrgView, insert_member, member_row};
use crate::services::sessions::{IssuedTokens, open_session};
use crate::services::unit_of_work::Write;
use crate::services::users::{NewUser, UserView, insert_user};
use crate::state::AppState;

/// What the invitee sends.
#[derive(Debug)]
pub struct Acceptance {
    pub token: String,
    /// For a new account.
    pub name: Option<String>,
    /// For a new account (required then).
    pub password: Option<Password>,
}

/// The new member: who, in which organization, with which role; tokens when the acceptance
/// created the account (a signed-in invitee keeps their session).
#[derive(Debug)]
pub struct Accepted {
    pub user: UserView,
    pub tokens: Option<IssuedTokens>,
    pub organization: OrgView,
    pub role: String,
}

/// Who joins.
enum Joiner {
    /// The signed-in account of the invited address.
    Existing(Box<user::Model>),
    /// A new account: its display name and password hash.
    New { name: Option<String>, hash: String },
}

fn invalid() -> AppError {
    AppError::new(ErrorCode::InvitationInvalid)
}

/// Accepts an invitation: its invitee becomes a member with its role (and, without an account,
/// gets one). Each attempt takes a unit of the client's credential limit, given back when the
/// token is good.
pub async fn accept_invitation(
    state: &AppState,
    ctx: &RequestContext,
    input: Acceptance,
) -> AppResult<Accepted> {
    let attempt = Attempt::begin(state, ctx.client_ip).await?;
    if input.token.is_empty() || input.token.len() > 200 {
        return Err(invalid());
    }
    let hash = sha256_hex(&input.token);
    let now = Utc::now();
    let inv = invitation::Entity::find()
        .filter(invitation::Column::TokenHash.eq(hash.as_str()))
        .one(&state.db)
        .await?
        .filter(|i| {
            InvitationStatus::of(i.accepted_at, i.revoked_at, i.expires_at, now) == InvitationStatus::Pending
        })
        .ok_or_else(invalid)?;
    attempt.succeeded(state).await;
    let role =
        OrgRole::parse(&inv.role).ok_or_else(|| AppError::internal("an invitation with no known role"))?;
    let org =
        organization::Entity::find_by_id(inv.organization_id).one(&state.db).await?.ok_or_else(invalid)?;
    let joiner = joiner(state, ctx, &inv, input).await?;

    let mut w = Write::begin(state, ctx).await?;
    let (u, created) = match joiner {
        // The token came from the mailbox: the address is the account's, proven.
        Joiner::Existing(u) => (mark_verified(&mut w, *u).await?, false),
        Joiner::New { name, hash } => (create_account(&mut w, &inv.email, name, hash).await?, true),
    };
    // Single use: only the request that closes the invitation, with this very token (a resend
    // replaces it), goes on.
    let closed = invitation::Entity::update_many()
        .col_expr(invitation::Column::AcceptedAt, Expr::value(now))
        .col_expr(invitation::Column::AcceptedUserId, Expr::value(u.id))
        .col_expr(invitation::Column::UpdatedAt, Expr::value(now))
        .filter(invitation::Column::Id.eq(inv.id))
        .filter(invitation::Column::TokenHash.eq(hash))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .filter(invitation::Column::ExpiresAt.gt(now))
        .exec(w.tx())
        .await?
        .rows_affected;
    if closed != 1 {
        return Err(invalid());
    }
    if member_row(w.tx(), org.id, u.id).await?.is_some() {
        return Err(ErrorCode::AlreadyMember.into());
    }
    let m = insert_member(w.tx(), org.id, u.id, role).await?;
    let acting = Some((Some(u.id), u.email.clone()));
    w.record(Change {
        event: EventType::OrganizationMemberAdded,
        target: Some(("user", u.id.to_string())),
        subject_user: Some(u.id),
        acting_user: acting.clone(),
        organization: Some(org.id),
        data: serde_json::json!({
            "organization_id": org.id, "user_id": u.id, "role": m.role, "invitation_id": inv.id,
        }),
    })
    .await?;
    w.record(Change {
        event: EventType::OrganizationInvitationAccepted,
        target: Some(("invitation", inv.id.to_string())),
        subject_user: Some(u.id),
        acting_user: acting,
        organization: Some(org.id),
        data: serde_json::json!({
            "invitation_id": inv.id, "organization_id": org.id, "user_id": u.id, "email": inv.email,
            "role": m.role, "new_account": created,
        }),
    })
    .await?;
    let tokens = if created {
        Some(open_session(&mut w, state, ctx, u.id, &u.email, AuthMethod::Password.as_str()).await?)
    } else {
        None
    };
    w.commit().await?;
    Ok(Accepted { user: u.into(), tokens, organization: org.into(), role: m.role })
}

/// Decides who joins, before the write: the signed-in account of the invited address, or a new
/// account (its fields checked and its password hashed).
async fn joiner(
    state: &AppState,
    ctx: &RequestContext,
    inv: &invitation::Model,
    input: Acceptance,
) -> AppResult<Joiner> {
    match &ctx.actor {
        Actor::User(_) => {
            let p = authz::principal(state, ctx).await?;
            let id = p.user_id().ok_or(ErrorCode::Forbidden)?;
            let me = user::Entity::find_by_id(id).one(&state.db).await?.ok_or(ErrorCode::SessionRevoked)?;
            if me.email != inv.email {
                return Err(ErrorCode::InvitationEmailMismatch.into());
            }
            Ok(Joiner::Existing(Box::new(me)))
        }
        // An API key or a SCIM token acts for an organization, never as a person.
        Actor::ApiKey(_) | Actor::Scim(_) => Err(ErrorCode::Forbidden.into()),
        // A bearer was presented but refused (expired, revoked): say so rather than sign up.
        Actor::Anonymous if ctx.auth_error.is_some() => {
            Err(ctx.auth_error.unwrap_or(ErrorCode::AuthenticationRequired).into())
        }
        Actor::Anonymous => {
            let existing = user::Entity::find()
                .filter(user::Column::Email.eq(inv.email.as_str()))
                .one(&state.db)
                .await?
                .filter(|u| !UserStatus::Deleted.is(&u.status));
            if existing.is_some() {
                return Err(ErrorCode::InvitationSignInRequired.into());
            }
            let email = Email::parse(&inv.email)?;
            let mut err: Option<AppError> = None;
            let name = match optional_text("name", input.name, 200) {
                Ok(n) => n,
                Err(e) => {
                    err = Some(e);
                    None
                }
            };
            let password = input.password.filter(|p| !p.expose().is_empty());
            let policy = match &password {
                None => Err(AppError::field("password", FieldIssue::Required)),
                Some(p) => state.passwords.check_policy(p, Some(&email)),
            };
            if let Err(e) = policy {
                err = Some(match err {
                    Some(mut prev) => {
                        prev.fields.extend(e.fields);
                        prev
                    }
                    None => e,
                });
            }
            if let Some(e) = err {
                return Err(e);
            }
            let password = password.expect("no error means a password was given");
            let hash = state.passwords.hash(&password).await?;
            Ok(Joiner::New { name, hash })
        }
    }
}

/// Creates the invitee's account in the write (their address verified: they proved the
/// mailbox) and records `user.created`. An account made with that address meanwhile →
/// `INVITATION_SIGN_IN_REQUIRED`.
async fn create_account(
    w: &mut Write<'_>,
    email: &str,
    name: Option<String>,
    hash: String,
) -> AppResult<user::Model> {
    let u = insert_user(
        w.tx(),
        NewUser {
            email: email.to_owned(),
            password_hash: Some(hash),
            name,
            email_verified: true,
            signed_in: true,
            ..NewUser::default()
        },
    )
    .await
    .map_err(|e| match e {
        e if e.code == ErrorCode::Conflict => ErrorCode::InvitationSignInRequired.into(),
        e => e,
    })?;
    w.record(Change {
        event: EventType::UserCreated,
        target: Some(("user", u.id.to_string())),
        subject_user: Some(u.id),
        acting_user: Some((Some(u.id), u.email.clone())),
        organization: None,
        data: serde_json::json!({"user_id": u.id, "email": u.email, "method": "invitation", "email_verified": true}),
    })
    .await?;
    Ok(u)
}
