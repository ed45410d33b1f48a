//! Migrations run from empty on each database and every entity round-trips a row.

use chrono::{SubsecRound, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use uuid::Uuid;

use entities::{audit_log, outbox_event, refresh_token, session, signing_key, user};
use migrations::{Migrator, MigratorTrait};

use crate::helpers::{Backend, TestApp};

crate::on_both_databases!(migrations_apply_and_every_entity_round_trips);

async fn migrations_apply_and_every_entity_round_trips(b: Backend) {
    let mut app = TestApp::spawn(b).await;
    let db = &app.services.state.db.clone();
    assert!(Migrator::get_pending_migrations(db).await.unwrap().is_empty());
    let now = Utc::now().trunc_subsecs(6); // PostgreSQL keeps microseconds
    let uid = Uuid::now_v7();
    let u = user::ActiveModel {
        id: Set(uid),
        email: Set("rt@example.com".into()),
        password_hash: Set(None),
        name: Set(Some("Round Trip".into())),
        first_name: Set(None),
        last_name: Set(None),
        username: Set(Some("roundtrip".into())),
        avatar_url: Set(None),
        locale: Set(Some("de".into())),
        metadata: Set(Some(serde_json::json!({"k": [1, 2]}))),
        status: Set("active".into()),
        is_admin: Set(true),
        email_verified: Set(true),
        last_signin_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(user::Entity::find_by_id(uid).one(db).await.unwrap(), Some(u));
    let sid = Uuid::now_v7();
    let s = session::ActiveModel {
        id: Set(sid),
        user_id: Set(uid),
        ip_address: Set(Some("::1".into())),
        user_agent: Set(None),
        device_label: Set(None),
        auth_method: Set("password".into()),
        created_at: Set(now),
        last_active_at: Set(now),
        expires_at: Set(now),
        revoked_at: Set(Some(now)),
        revoked_reason: Set(Some("test".into())),
        authenticated_at: Set(Some(now)),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(session::Entity::find_by_id(sid).one(db).await.unwrap(), Some(s));
    let rid = Uuid::now_v7();
    let r = refresh_token::ActiveModel {
        id: Set(rid),
        session_id: Set(sid),
        token_hash: Set("ab".repeat(32)),
        created_at: Set(now),
        expires_at: Set(now),
        rotated_at: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(refresh_token::Entity::find_by_id(rid).one(db).await.unwrap(), Some(r));
    let k = signing_key::ActiveModel {
        kid: Set("test-kid".into()),
        algorithm: Set("EdDSA".into()),
        public_key: Set(vec![1, 2, 3]),
        private_key_sealed: Set(vec![0, 255]),
        created_at: Set(now),
        retired_at: Set(Some(now)),
        publish_until: Set(Some(now)),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(signing_key::Entity::find_by_id("test-kid").one(db).await.unwrap(), Some(k));
    let aid = Uuid::now_v7();
    let a = audit_log::ActiveModel {
        id: Set(aid),
        action: Set("user.created".into()),
        actor_type: Set("system".into()),
        actor_id: Set(None),
        actor_email: Set(None),
        organization_id: Set(Some(Uuid::now_v7())),
        target_type: Set(Some("user".into())),
        target_id: Set(Some(uid.to_string())),
        ip_address: Set(None),
        user_agent: Set(None),
        request_id: Set(None),
        metadata: Set(serde_json::json!({})),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(audit_log::Entity::find_by_id(aid).one(db).await.unwrap(), Some(a));
    let o = outbox_event::ActiveModel {
        event_id: Set(aid),
        event_type: Set("user.created".into()),
        subject_user_id: Set(Some(uid)),
        organization_id: Set(None),
        payload: Set(serde_json::json!({"id": aid})),
        created_at: Set(now),
        published_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert_eq!(outbox_event::Entity::find_by_id(o.seq).one(db).await.unwrap(), Some(o));
    // Deleting a user cascades to its sessions and their refresh tokens.
    user::Entity::delete_by_id(uid).exec(db).await.unwrap();
    assert!(session::Entity::find_by_id(sid).one(db).await.unwrap().is_none());
    assert!(refresh_token::Entity::find_by_id(rid).one(db).await.unwrap().is_none());
    // And the whole schema goes down and up again (with the server and its workers stopped,
    // so no background query races the DDL).
    app.stop().await;
    Migrator::down(db, None).await.unwrap();
    Migrator::up(db, None).await.unwrap();
}
