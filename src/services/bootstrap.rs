//! Command-line operations on the database: the first administrator, synthetic users.

use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use entities::user;

use crate::context::RequestContext;
use crate::domain::UserStatus;
use crate::domain::{Email, EventType, Password};
use crate::error::{AppError, AppResult};
use crate::services::audit::Change;
use crate::services::unit_of_work::Write;
use crate::services::users::{NewUser, insert_user};
use crate::state::AppState;

/// Creates an administrator, or grants administrator rights to an existing account (its password
/// is then left unchanged). Returns the user id and whether the account is new.
pub async fn create_admin(state: &AppState, email: &str, password: &str) -> AppResult<(Uuid, bool)> {
    let email = Email::parse(email)?;
    let ctx = RequestContext { request_id: "cli".into(), ..Default::default() };
    let existing = user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(&state.db).await?;
    let mut w = Write::begin(state, &ctx).await?;
    let (id, created) = match existing {
        Some(u) => {
            let mut am: user::ActiveModel = u.clone().into();
            am.is_admin = Set(true);
            am.updated_at = Set(Utc::now());
            am.update(w.tx()).await?;
            w.user_changed(u.id);
            (u.id, false)
        }
        None => {
            let pw = Password::new(password.to_owned());
            state.passwords.check_policy(&pw, Some(&email))?;
            let hash = state.passwords.hash(&pw).await?;
            let u = insert_user(
                w.tx(),
                NewUser {
                    email: email.as_str().to_owned(),
                    password_hash: Some(hash),
                    is_admin: true,
                    email_verified: true,
                    ..NewUser::default()
                },
            )
            .await?;
            (u.id, true)
        }
    };
    w.record(Change {
        event: if created { EventType::UserCreated } else { EventType::UserUpdated },
        target: Some(("user", id.to_string())),
        subject_user: Some(id),
        acting_user: Some((None, "cli".into())),
        organization: None,
        data: serde_json::json!({"user_id": id, "is_admin": true, "via": "janua admin create"}),
    })
    .await?;
    w.commit().await?;
    Ok((id, created))
}

/// Inserts `n` synthetic users (no password, so they cannot sign in) in batches, spread over the
/// last year; returns how many were inserted.
pub async fn seed_users(state: &AppState, n: u64) -> AppResult<u64> {
    seed_users_into(&state.db, n).await
}

/// [`seed_users`] on a bare connection.
pub async fn seed_users_into(db: &sea_orm::DatabaseConnection, n: u64) -> AppResult<u64> {
    const BATCH: u64 = 1000;
    let start = Utc::now();
    let tag = &Uuid::new_v4().simple().to_string()[..8];
    let mut done = 0;
    while done < n {
        let count = BATCH.min(n - done);
        let rows: Vec<user::ActiveModel> = (done..done + count)
            .map(|i| {
                let created = start - Duration::seconds(((i * 7919) % (365 * 86400)) as i64);
                user::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    email: Set(format!("seed-{tag}-{i}@example.test")),
                    password_hash: Set(None),
                    name: Set(Some(format!("Seed User {i}"))),
                    first_name: Set(None),
                    last_name: Set(None),
                    username: Set(None),
                    avatar_url: Set(None),
                    locale: Set(None),
                    metadata: Set(None),
                    status: Set(if i % 50 == 0 { UserStatus::Suspended } else { UserStatus::Active }
                        .as_str()
                        .into()),
                    is_admin: Set(false),
                    email_verified: Set(i % 3 == 0),
                    last_signin_at: Set(None),
                    created_at: Set(created),
                    updated_at: Set(created),
                }
            })
            .collect();
        let w = Write::begin_on(db).await?;
        user::Entity::insert_many(rows).exec_without_returning(w.tx()).await?;
        w.commit().await?;
        done += count;
    }
    Ok(done)
}

/// Maps a policy failure of the CLI into a readable error.
pub fn describe(e: &AppError) -> String {
    match (&e.internal, e.fields.is_empty()) {
        (Some(cause), _) => format!("{}: {cause}", e.code),
        (None, false) => format!("{}: {:?}", e.code, e.fields),
        (None, true) => e.code.to_string(),
    }
}
