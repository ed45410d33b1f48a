//! Sign-in's password hash upgrade: written with the sign-in it belongs to — for an MFA user,
//! when the second factor completes it, never at the password step.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;

use entities::user;
use janua::domain::Password;
use janua::security::passwords::PasswordHasher;

use crate::helpers::{Backend, PASSWORD, TestApp};
use crate::mfa::{enable_mfa, mfa_token};

crate::on_both_databases!(an_mfa_users_rehash_commits_with_the_completed_sign_in);

async fn stored_hash(app: &TestApp, email: &str) -> String {
    let u = user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(&app.services.state.db)
        .await
        .unwrap()
        .unwrap();
    u.password_hash.unwrap()
}

async fn an_mfa_users_rehash_commits_with_the_completed_sign_in(b: Backend) {
    let mut app = TestApp::spawn(b).await;
    let email = "rehash@example.com";
    let (_, totp, _) = enable_mfa(&app, email).await;
    // A hash under older (cheaper) parameters: the next correct password upgrades it.
    let old =
        PasswordHasher::new(4096, 1, 1, 1, 8).unwrap().hash(&Password::new(PASSWORD.into())).await.unwrap();
    let u = user::Entity::find().filter(user::Column::Email.eq(email)).one(&app.services.state.db).await;
    let mut am: user::ActiveModel = u.unwrap().unwrap().into();
    am.password_hash = Set(Some(old.clone()));
    am.update(&app.services.state.db).await.unwrap();

    let token = mfa_token(&app, email).await;
    assert_eq!(stored_hash(&app, email).await, old, "the password step alone writes nothing");
    let r =
        app.rest("POST", "/mfa/verify", None, Some(json!({"mfa_token": token, "code": totp.code(0)}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let upgraded = stored_hash(&app, email).await;
    assert_ne!(upgraded, old, "the completed sign-in stores the upgraded hash");
    assert!(upgraded.starts_with("$argon2id$v=19$m=8192,"), "{upgraded}");
    // The upgraded hash verifies the same password.
    let again = mfa_token(&app, email).await;
    assert!(again.starts_with("mfa_"));
    app.stop().await;
}
