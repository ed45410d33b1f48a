//! The unit of work: a change, its audit row and its outbox event commit together or not at
//! all; revocations take effect on the node only once committed.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use uuid::Uuid;

use entities::{audit_log, outbox_event, session, user};
use janua::context::RequestContext;
use janua::domain::EventType;
use janua::services::audit::Change;
use janua::services::unit_of_work::Write;

use crate::helpers::{Backend, TestApp};

crate::on_both_databases!(
    a_change_commits_with_its_audit_row_and_event,
    an_error_rolls_back_the_change_and_its_audit_row,
    revocations_take_effect_only_after_commit
);

/// A user row as the sign-up writes one (active, no password), created now.
pub(crate) fn new_user(id: Uuid, email: &str) -> user::ActiveModel {
    let now = Utc::now();
    user::ActiveModel {
        id: Set(id),
        email: Set(email.into()),
        password_hash: Set(None),
        name: Set(None),
        first_name: Set(None),
        last_name: Set(None),
        username: Set(None),
        avatar_url: Set(None),
        locale: Set(None),
        metadata: Set(None),
        status: Set("active".into()),
        is_admin: Set(false),
        email_verified: Set(false),
        last_signin_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

fn created(id: Uuid) -> Change {
    Change {
        event: EventType::UserCreated,
        target: Some(("user", id.to_string())),
        subject_user: Some(id),
        acting_user: None,
        organization: None,
        data: serde_json::json!({"user_id": id}),
    }
}

async fn rows_of(app: &TestApp, event_id: Uuid) -> (u64, u64) {
    let db = &app.services.state.db;
    let audit = audit_log::Entity::find_by_id(event_id).count(db).await.unwrap();
    let outbox = outbox_event::Entity::find()
        .filter(outbox_event::Column::EventId.eq(event_id))
        .count(db)
        .await
        .unwrap();
    (audit, outbox)
}

async fn a_change_commits_with_its_audit_row_and_event(b: Backend) {
    let mut app = TestApp::spawn(b).await;
    let state = &app.services.state;
    let ctx = RequestContext { request_id: "uow-test".into(), ..RequestContext::default() };
    let id = Uuid::now_v7();
    let mut w = Write::begin(state, &ctx).await.unwrap();
    new_user(id, "uow-commit@example.com").insert(w.tx()).await.unwrap();
    let event = w.record(created(id)).await.unwrap();
    // Nothing is visible outside the transaction before it commits.
    assert_eq!(rows_of(&app, event).await, (0, 0));
    w.commit().await.unwrap();
    assert!(user::Entity::find_by_id(id).one(&state.db).await.unwrap().is_some());
    assert_eq!(rows_of(&app, event).await, (1, 1));
    let audit = audit_log::Entity::find_by_id(event).one(&state.db).await.unwrap().unwrap();
    assert_eq!(audit.request_id.as_deref(), Some("uow-test"));
    assert_eq!(audit.action, "user.created");
    app.stop().await;
}

async fn an_error_rolls_back_the_change_and_its_audit_row(b: Backend) {
    let mut app = TestApp::spawn(b).await;
    let state = &app.services.state;
    let ctx = RequestContext::default();
    let id = Uuid::now_v7();
    let result: Result<(), janua::error::AppError> = async {
        let mut w = Write::begin(state, &ctx).await?;
        new_user(id, "uow-rollback@example.com").insert(w.tx()).await?;
        let event = w.record(created(id)).await?;
        assert!(event != Uuid::nil());
        // The second statement fails (the same primary key again): the write is dropped.
        new_user(id, "uow-rollback-2@example.com").insert(w.tx()).await?;
        w.commit().await
    }
    .await;
    assert!(result.is_err());
    assert!(user::Entity::find_by_id(id).one(&state.db).await.unwrap().is_none());
    let audited = audit_log::Entity::find()
        .filter(audit_log::Column::TargetId.eq(id.to_string()))
        .count(&state.db)
        .await
        .unwrap();
    assert_eq!(audited, 0);
    let events = outbox_event::Entity::find()
        .filter(outbox_event::Column::SubjectUserId.eq(id))
        .count(&state.db)
        .await
        .unwrap();
    assert_eq!(events, 0);
    app.stop().await;
}

async fn revocations_take_effect_only_after_commit(b: Backend) {
    let mut app = TestApp::spawn(b).await;
    let signed = app.signup("uow-revoke@example.com").await;
    let state = &app.services.state;
    let user_id: Uuid = signed["user"]["id"].as_str().unwrap().parse().unwrap();
    let s = session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .one(&state.db)
        .await
        .unwrap()
        .unwrap();
    let ctx = RequestContext::default();
    let revoke = |w: &mut Write<'_>, s: &session::Model| {
        let mut am: session::ActiveModel = s.clone().into();
        am.revoked_at = Set(Some(Utc::now()));
        w.revoked(s.clone());
        am
    };
    // Dropped without commit: neither the row nor this node's revocation list changes.
    {
        let mut w = Write::begin(state, &ctx).await.unwrap();
        revoke(&mut w, &s).update(w.tx()).await.unwrap();
    }
    assert!(!state.revocations.is_revoked(s.id).await.unwrap());
    let row = session::Entity::find_by_id(s.id).one(&state.db).await.unwrap().unwrap();
    assert!(row.revoked_at.is_none());
    let mut w = Write::begin(state, &ctx).await.unwrap();
    revoke(&mut w, &s).update(w.tx()).await.unwrap();
    assert!(!state.revocations.is_revoked(s.id).await.unwrap());
    w.commit().await.unwrap();
    assert!(state.revocations.is_revoked(s.id).await.unwrap());
    app.stop().await;
}
