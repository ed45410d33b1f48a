//! Invitations (issue 17 item 6): an admin invites an address, the mail arrives, the invitee
//! follows its link and accepts — signing up on the way, or signed in as their account — and
//! becomes a member with the role. Every refusal, the person's `POST /members` as an invitation,
//! trusted provisioning adding directly, who may invite, isolation between organizations, the
//! audit trail and the mail limits.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, Resp, TestApp, access, redis_prefix, redis_url};
use crate::smtp_sink::{Mail, SmtpSink, drain, inbox, with_sink};

crate::on_both_databases!(
    an_invitee_without_an_account_signs_up_on_the_way,
    an_invitee_with_an_account_accepts_signed_in,
    used_expired_tampered_revoked_and_replaced_tokens_are_refused,
    a_persons_add_member_is_an_invitation_the_same_for_any_address,
    administrators_and_api_keys_add_directly,
    who_may_invite_and_organizations_stay_apart,
    invitations_over_graphql_never_show_a_token,
    invitation_mails_are_limited,
    invitation_rows_round_trip_with_one_open_per_address,
);

const ACCEPT: &str = "/invitations/accept";

/// The mails to `to` the sink received, once every mail queued for `to` is delivered (under
/// load an SMTP exchange may fail and be retried moments later), in the order they were queued.
async fn mails_to(app: &TestApp, sink: &SmtpSink, to: &str) -> Vec<Mail> {
    use entities::mail_outbox;
    use sea_orm::PaginatorTrait;
    for _ in 0..100 {
        drain(app).await;
        let pending = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::ToAddress.eq(to))
            .filter(mail_outbox::Column::Status.eq("pending"))
            .count(&app.services.state.db)
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        sink.wait_for(sink.count() + 1, std::time::Duration::from_millis(100)).await;
    }
    let mut mails = inbox(app, sink, to).await;
    // Message-IDs carry the queued mail's id, a UUIDv7: their order is the order of queuing.
    mails.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    mails
}

/// The newest invitation mail to `to`.
async fn invitation_mail(app: &TestApp, sink: &SmtpSink, to: &str) -> Mail {
    mails_to(app, sink, to)
        .await
        .into_iter()
        .rfind(|m| m.text.contains(ACCEPT))
        .unwrap_or_else(|| panic!("no invitation mail to {to}"))
}

/// The token of the newest invitation mail to `to`, as the link a person follows carries it.
async fn invitation_token(app: &TestApp, sink: &SmtpSink, to: &str) -> String {
    invitation_mail(app, sink, to).await.token()
}

/// An owner and their organization.
async fn owner_and_org(app: &TestApp, owner: &str, name: &str) -> (String, String) {
    let token = access(&app.signup(owner).await);
    let org = app.org(&token, name).await;
    (token, org)
}

async fn invite(app: &TestApp, token: &str, org: &str, email: &str, role: &str) -> Resp {
    app.rest(
        "POST",
        "/invitations",
        Some(token),
        Some(json!({"organization_id": org, "email": email, "role": role})),
    )
    .await
}

async fn accept(app: &TestApp, bearer: Option<&str>, body: Value) -> Resp {
    app.rest("POST", ACCEPT, bearer, Some(body)).await
}

/// The role of `email` in `org`, as its owner sees the member list (`None`: not a member).
async fn role_of(app: &TestApp, owner: &str, org: &str, email: &str) -> Option<String> {
    let r = app.rest("GET", &format!("/organizations/{org}/members?limit=100"), Some(owner), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"]["email"] == email)
        .map(|m| m["role"].as_str().unwrap().to_owned())
}

/// Audit actions recorded for `org`, oldest first.
async fn audit_actions(app: &TestApp, org: &str) -> Vec<(String, Value)> {
    use entities::audit_log;
    let org: uuid::Uuid = org.parse().unwrap();
    audit_log::Entity::find()
        .filter(audit_log::Column::OrganizationId.eq(org))
        .order_by_asc(audit_log::Column::Id)
        .all(&app.services.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.action, a.metadata))
        .collect()
}

fn invalid(r: &Resp, what: &str) {
    assert_eq!((r.status, r.code()), (400, "INVITATION_INVALID"), "{what}: {}", r.body);
}

/// Someone with no account is invited: the mail arrives (in their language), they follow its
/// link and accept with a password, and are a member with the role who can sign in.
async fn an_invitee_without_an_account_signs_up_on_the_way(b: Backend) {
    let (app, sink) = with_sink(b, |_| {}).await;
    let (owner, org) = owner_and_org(&app, "owner@example.com", "Acme").await;
    let r = app
        .client
        .post(app.url("/api/v1/invitations"))
        .bearer_auth(&owner)
        .header("accept-language", "de")
        .json(&json!({"organization_id": org, "email": "  New.Person@Example.COM ", "role": "admin", "message": "Willkommen!"}))
        .send()
        .await
        .unwrap();
    let r = Resp::from(r).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let inv = &r.body["data"]["invitation"];
    assert_eq!(inv["email"], "new.person@example.com");
    assert_eq!((inv["role"].as_str(), inv["status"].as_str()), (Some("admin"), Some("pending")), "{inv}");
    assert_eq!(inv["organization_id"], org.as_str());
    assert!(inv["invited_by"].is_string() && inv["accepted_at"].is_null(), "{inv}");
    let week = chrono::DateTime::parse_from_rfc3339(inv["expires_at"].as_str().unwrap()).unwrap().to_utc()
        - chrono::Utc::now();
    assert!((week.num_hours() - 7 * 24).abs() <= 1, "expires in 7 days: {week}");

    // The mail, as the invitee's mail client shows it.
    let mail = invitation_mail(&app, &sink, "new.person@example.com").await;
    assert!(mail.subject.contains("Acme") && mail.subject.contains("eingeladen"), "{}", mail.subject);
    assert!(mail.text.contains("Willkommen!") && mail.html.contains("Willkommen!"), "{}", mail.text);
    assert!(mail.link().starts_with("http://localhost:8000/invitations/accept?token="), "{}", mail.text);
    let token = mail.token();
    assert!(!r.body.to_string().contains(&token), "the answer never holds the token");

    // The link opens a page that spends nothing (a mail scanner may fetch it); its button does.
    let link = reqwest::Url::parse(&mail.link()).unwrap();
    let page =
        app.client.get(app.url(&format!("{}?{}", link.path(), link.query().unwrap()))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("/api/v1/invitations/accept") && !html.contains(&token), "{html}");
    let r = app
        .rest("GET", &format!("/invitations?organization_id={org}&status=pending"), Some(&owner), None)
        .await;
    assert_eq!(r.body["pagination"]["total_count"], 1, "still pending: {}", r.body);

    // Without a password there is no account to make.
    let r = accept(&app, None, json!({"token": token})).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["error"]["details"]["fields"]["password"].is_string(), "{}", r.body);
    let r = accept(&app, None, json!({"token": token, "password": "short"})).await;
    assert_eq!(r.status, 422, "sign-up's password policy: {}", r.body);
    let r = accept(&app, None, json!({"token": token, "password": PASSWORD, "name": "New Person"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["user"]["email"], "new.person@example.com");
    assert_eq!(d["user"]["name"], "New Person");
    assert_eq!(d["user"]["email_verified"], true, "the invitee proved the mailbox");
    assert_eq!((d["organization"]["id"].as_str(), d["role"].as_str()), (Some(org.as_str()), Some("admin")));
    let fresh = access(d);
    assert_eq!(app.rest("GET", "/auth/me", Some(&fresh), None).await.status, 200);
    assert_eq!(role_of(&app, &owner, &org, "new.person@example.com").await.as_deref(), Some("admin"));
    app.signin("new.person@example.com").await;

    // Single use.
    invalid(&accept(&app, None, json!({"token": token, "password": PASSWORD})).await, "reused");
    let r = app
        .rest("GET", &format!("/invitations?organization_id={org}&status=accepted"), Some(&owner), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"][0]["status"], "accepted");
    assert_eq!(r.body["data"][0]["accepted_user_id"], d["user"]["id"]);
    let r = app.rest("GET", &format!("/invitations?organization_id={org}"), Some(&owner), None).await;
    assert_eq!(r.body["pagination"]["total_count"], 0, "nothing open: {}", r.body);

    // Audited and evented, in the organization's trail; the token is in no row.
    let actions = audit_actions(&app, &org).await;
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    for a in
        ["organization.invitation.created", "organization.member.added", "organization.invitation.accepted"]
    {
        assert!(names.contains(&a), "{a} in {names:?}");
    }
    let accepted = actions.iter().find(|(a, _)| a == "organization.invitation.accepted").unwrap();
    assert_eq!(accepted.1["new_account"], true);
    let rows =
        format!("{:?}", entities::audit_log::Entity::find().all(&app.services.state.db).await.unwrap());
    let events =
        format!("{:?}", entities::outbox_event::Entity::find().all(&app.services.state.db).await.unwrap());
    assert!(!rows.contains(&token) && !events.contains(&token));
    assert!(events.contains("organization.invitation.accepted") && events.contains("user.created"));
}

/// Someone who has an account accepts signed in as it; nobody else can, not even signed in.
async fn an_invitee_with_an_account_accepts_signed_in(b: Backend) {
    let (app, sink) = with_sink(b, |_| {}).await;
    let (owner, org) = owner_and_org(&app, "owner@example.com", "Acme").await;
    let bob = access(&app.signup("bob@example.com").await);
    let carol = access(&app.signup("carol@example.com").await);
    assert_eq!(invite(&app, &owner, &org, "Bob@example.com", "member").await.status, 201);
    let token = invitation_token(&app, &sink, "bob@example.com").await;

    let r = accept(&app, None, json!({"token": token, "password": PASSWORD})).await;
    assert_eq!((r.status, r.code()), (401, "INVITATION_SIGN_IN_REQUIRED"), "no bearer: {}", r.body);
    let r = accept(&app, Some(&carol), json!({"token": token})).await;
    assert_eq!((r.status, r.code()), (403, "INVITATION_EMAIL_MISMATCH"), "another account: {}", r.body);
    let r = accept(&app, Some("not-a-jwt"), json!({"token": token})).await;
    assert_eq!(r.status, 401, "a refused bearer is not a sign-up: {}", r.body);
    assert_eq!(role_of(&app, &owner, &org, "carol@example.com").await, None);
    assert_eq!(role_of(&app, &owner, &org, "bob@example.com").await, None, "not before accepting");

    let r = accept(&app, Some(&bob), json!({"token": token})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["role"], "member");
    assert!(r.body["data"].get("tokens").is_none(), "the invitee keeps their session: {}", r.body);
    assert_eq!(r.body["data"]["user"]["email_verified"], true);
    assert_eq!(role_of(&app, &owner, &org, "bob@example.com").await.as_deref(), Some("member"));
    let r = app.rest("GET", &format!("/organizations/{org}"), Some(&bob), None).await;
    assert_eq!(r.status, 200, "a member now: {}", r.body);
    invalid(&accept(&app, Some(&bob), json!({"token": token})).await, "reused");

    // Inviting a member is a conflict with its own code.
    let r = invite(&app, &owner, &org, "bob@example.com", "admin").await;
    assert_eq!((r.status, r.code()), (409, "ALREADY_MEMBER"), "{}", r.body);
    let actions = audit_actions(&app, &org).await;
    let accepted = actions.iter().find(|(a, _)| a == "organization.invitation.accepted").unwrap();
    assert_eq!(accepted.1["new_account"], false);
}

/// Used, expired, tampered, revoked, resent-old and replaced tokens all get the one answer.
async fn used_expired_tampered_revoked_and_replaced_tokens_are_refused(b: Backend) {
    use entities::invitation;
    use sea_orm::{ActiveModelTrait, Set};
    let (app, sink) = with_sink(b, |_| {}).await;
    let (owner, org) = owner_and_org(&app, "owner@example.com", "Acme").await;
    let signup = |token: &str| json!({"token": token, "password": PASSWORD});
    let mut refusals = Vec::new();

    // Tampered.
    invite(&app, &owner, &org, "t@example.com", "member").await;
    let token = invitation_token(&app, &sink, "t@example.com").await;
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for t in [tampered.as_str(), "", &"x".repeat(10_000), "not-a-token"] {
        let r = accept(&app, None, signup(t)).await;
        invalid(&r, "tampered");
        refusals.push(r.body["error"].clone());
    }

    // Expired: past `expires_at` it is refused and listed as expired; a resend revives it.
    let r = invite(&app, &owner, &org, "e@example.com", "member").await;
    let id: uuid::Uuid = r.body["data"]["invitation"]["id"].as_str().unwrap().parse().unwrap();
    let expired = invitation_token(&app, &sink, "e@example.com").await;
    let db = &app.services.state.db;
    let row = invitation::Entity::find_by_id(id).one(db).await.unwrap().unwrap();
    let mut am: invitation::ActiveModel = row.into();
    am.expires_at = Set(chrono::Utc::now() - chrono::Duration::minutes(1));
    am.update(db).await.unwrap();
    let r = accept(&app, None, signup(&expired)).await;
    invalid(&r, "expired");
    refusals.push(r.body["error"].clone());
    let r = app
        .rest("GET", &format!("/invitations?organization_id={org}&status=expired"), Some(&owner), None)
        .await;
    assert_eq!(r.body["data"][0]["id"], id.to_string(), "{}", r.body);
    let r = app.rest("POST", &format!("/invitations/{id}/resend"), Some(&owner), None).await;
    assert_eq!((r.status, &r.body["data"]["invitation"]["status"]), (200, &json!("pending")), "{}", r.body);
    let revived = invitation_token(&app, &sink, "e@example.com").await;
    assert_ne!(revived, expired);
    invalid(&accept(&app, None, signup(&expired)).await, "the expired token after a resend");

    // Resent: the old token dies, the new one works (once).
    invite(&app, &owner, &org, "r@example.com", "viewer").await;
    let old = invitation_token(&app, &sink, "r@example.com").await;
    let id = app.rest("GET", &format!("/invitations?organization_id={org}"), Some(&owner), None).await.body["data"]
        [0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.rest("POST", &format!("/invitations/{id}/resend"), Some(&owner), None).await.status, 200);
    assert_eq!(mails_to(&app, &sink, "r@example.com").await.len(), 2, "mailed again");
    let new = invitation_token(&app, &sink, "r@example.com").await;
    let r = accept(&app, None, signup(&old)).await;
    invalid(&r, "resent-old");
    refusals.push(r.body["error"].clone());
    assert_eq!(accept(&app, None, signup(&new)).await.status, 200);
    let r = accept(&app, None, signup(&new)).await;
    invalid(&r, "used");
    refusals.push(r.body["error"].clone());
    let r = app.rest("POST", &format!("/invitations/{id}/resend"), Some(&owner), None).await;
    assert_eq!((r.status, &r.body["error"]["details"]["reason"]), (409, &json!("invitation_accepted")));
    let r = app.rest("DELETE", &format!("/invitations/{id}"), Some(&owner), None).await;
    assert_eq!((r.status, &r.body["error"]["details"]["reason"]), (409, &json!("invitation_accepted")));

    // Revoked: at once, and idempotently; a revoked invitation is not resent.
    invite(&app, &owner, &org, "v@example.com", "member").await;
    let revoked = invitation_token(&app, &sink, "v@example.com").await;
    let id = app.rest("GET", &format!("/invitations?organization_id={org}"), Some(&owner), None).await.body["data"]
        [0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.rest("DELETE", &format!("/invitations/{id}"), Some(&owner), None).await;
    assert_eq!((r.status, &r.body["data"]["invitation"]["status"]), (200, &json!("revoked")), "{}", r.body);
    assert_eq!(app.rest("DELETE", &format!("/invitations/{id}"), Some(&owner), None).await.status, 200);
    let r = accept(&app, None, signup(&revoked)).await;
    invalid(&r, "revoked");
    refusals.push(r.body["error"].clone());
    let r = app.rest("POST", &format!("/invitations/{id}/resend"), Some(&owner), None).await;
    assert_eq!((r.status, &r.body["error"]["details"]["reason"]), (409, &json!("invitation_revoked")));
    let revocations = audit_actions(&app, &org).await;
    assert!(
        revocations.iter().any(|(a, m)| a == "organization.invitation.revoked" && m["reason"] == "revoked"),
        "{revocations:?}"
    );

    // Replaced: a new invitation of the same address ends the open one.
    invite(&app, &owner, &org, "p@example.com", "member").await;
    let first = invitation_token(&app, &sink, "p@example.com").await;
    let r = invite(&app, &owner, &org, "p@example.com", "admin").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let second = invitation_token(&app, &sink, "p@example.com").await;
    let r = accept(&app, None, signup(&first)).await;
    invalid(&r, "replaced");
    refusals.push(r.body["error"].clone());
    let open = app.rest("GET", &format!("/invitations?organization_id={org}"), Some(&owner), None).await;
    let open_for_p: Vec<&Value> =
        open.body["data"].as_array().unwrap().iter().filter(|i| i["email"] == "p@example.com").collect();
    assert_eq!(open_for_p.len(), 1, "one open invitation per address: {}", open.body);
    assert_eq!(open_for_p[0]["role"], "admin");
    let r = accept(&app, None, signup(&second)).await;
    assert_eq!((r.status, &r.body["data"]["role"]), (200, &json!("admin")), "{}", r.body);

    // Nobody learns which: one code and one message for all of them.
    assert!(refusals.windows(2).all(|w| w[0] == w[1]), "{refusals:?}");
    let trail = audit_actions(&app, &org).await;
    assert!(
        trail.iter().any(|(a, m)| a == "organization.invitation.revoked" && m["reason"] == "replaced"),
        "{trail:?}"
    );
    assert!(trail.iter().any(|(a, _)| a == "organization.invitation.resent"), "{trail:?}");
}

/// A person's `POST /organizations/{id}/members` invites: 202 with the same body whether or not
/// the address has an account (by `user_id`, that user's address); no membership before the
/// invitee accepts.
async fn a_persons_add_member_is_an_invitation_the_same_for_any_address(b: Backend) {
    let (app, sink) = with_sink(b, |_| {}).await;
    let (owner, org) = owner_and_org(&app, "owner@example.com", "Acme").await;
    let known = app.signup("known@example.com").await;
    let members = format!("/organizations/{org}/members");
    let add = |body: Value| app.rest("POST", &members, Some(&owner), Some(body));
    let shape = |r: &Resp| {
        let mut v = r.body["data"].clone();
        for k in ["id", "email", "expires_at", "created_at", "updated_at"] {
            v["invitation"][k] = json!("…");
        }
        v
    };
    let a = add(json!({"email": "known@example.com", "role": "member"})).await;
    let b = add(json!({"email": "unknown@example.com", "role": "member"})).await;
    assert_eq!((a.status, b.status), (202, 202), "{} / {}", a.body, b.body);
    assert_eq!(shape(&a), shape(&b), "the same answer for a known and an unknown address");
    assert!(a.body["data"].get("user").is_none(), "no profile of the invitee: {}", a.body);
    assert_eq!(role_of(&app, &owner, &org, "known@example.com").await, None, "no membership yet");
    assert!(mails_to(&app, &sink, "unknown@example.com").await.iter().any(|m| m.text.contains(ACCEPT)));

    // By user id: that user's address.
    let other = app.signup("by-id@example.com").await;
    let r = add(json!({"user_id": other["user"]["id"], "role": "viewer"})).await;
    assert_eq!((r.status, &r.body["data"]["invitation"]["email"]), (202, &json!("by-id@example.com")));
    let r = add(json!({"user_id": uuid::Uuid::now_v7(), "role": "viewer"})).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // The invitee accepts: now a member, with the role.
    let token = invitation_token(&app, &sink, "known@example.com").await;
    let r = accept(&app, Some(&access(&known)), json!({"token": token})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(role_of(&app, &owner, &org, "known@example.com").await.as_deref(), Some("member"));
    let r = add(json!({"email": "known@example.com", "role": "admin"})).await;
    assert_eq!((r.status, r.code()), (409, "ALREADY_MEMBER"), "{}", r.body);

    // Over GraphQL: the union says which.
    let q = r#"mutation($org: ID!, $email: String!) { addMember(organizationId: $org, input: {email: $email}) {
        __typename ... on InvitationPayload { invitation { email status role } } ... on Member { role } } }"#;
    let g = app.gql(Some(&owner), q, json!({"org": org, "email": "gql@example.com"})).await;
    assert_eq!(g["data"]["addMember"]["__typename"], "InvitationPayload", "{g}");
    assert_eq!(g["data"]["addMember"]["invitation"]["role"], "member", "{g}");
}

/// Administrators and API keys with `members:write` still add an existing account at once
/// (201 with the member); a key may invite too (no inviter named).
async fn administrators_and_api_keys_add_directly(b: Backend) {
    let (app, sink) = with_sink(b, |_| {}).await;
    let (owner, org) = owner_and_org(&app, "owner@example.com", "Acme").await;
    let root = app.admin("root@example.com").await;
    app.signup("direct@example.com").await;
    app.signup("keyed@example.com").await;
    let r = app
        .rest(
            "POST",
            &format!("/organizations/{org}/members"),
            Some(&root),
            Some(json!({"email": "direct@example.com", "role": "admin"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        (r.body["data"]["user"]["email"].as_str(), r.body["data"]["role"].as_str()),
        (Some("direct@example.com"), Some("admin"))
    );
    let r = app
        .rest(
            "POST",
            &format!("/organizations/{org}/api-keys"),
            Some(&owner),
            Some(json!({"name": "sync", "scopes": ["members:write", "members:read"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.body["data"]["key"].as_str().unwrap().to_owned();
    let r = app
        .rest_key(
            "POST",
            &format!("/organizations/{org}/members"),
            &key,
            Some(json!({"email": "keyed@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(role_of(&app, &owner, &org, "keyed@example.com").await.as_deref(), Some("member"));
    // An unknown address cannot be added directly: there is no account.
    let r = app
        .rest_key(
            "POST",
            &format!("/organizations/{org}/members"),
            &key,
            Some(json!({"email": "nobody@example.com"})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // A key invites such an address instead.
    let r = app
        .rest_key(
            "POST",
            "/invitations",
            &key,
            Some(json!({"organization_id": org, "email": "nobody@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["data"]["invitation"]["invited_by"].is_null(), "{}", r.body);
    let mail = invitation_mail(&app, &sink, "nobody@example.com").await;
    assert!(mail.subject.starts_with("You are invited"), "no inviter named: {}", mail.subject);
    let r = app.rest_key("GET", &format!("/invitations?organization_id={org}"), &key, None).await;
    assert_eq!((r.status, &r.body["pagination"]["total_count"]), (200, &json!(1)), "{}", r.body);
    // A key never invites an owner.
    let r = app
        .rest_key(
            "POST",
            "/invitations",
            &key,
            Some(json!({"organization_id": org, "email": "o@example.com", "role": "owner"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
}

/// Viewers and members cannot invite, admins invite up to admin, owners anyone; each
/// organization's invitations are its own.
async fn who_may_invite_and_organizations_stay_apart(b: Backend) {
    let (app, sink) = with_sink(b, |_| {}).await;
    let (owner, org) = owner_and_org(&app, "owner@example.com", "Acme").await;
    let (other_owner, other_org) = owner_and_org(&app, "other@example.com", "Elsewhere").await;
    let mut tokens = std::collections::HashMap::new();
    for role in ["viewer", "member", "admin"] {
        let email = format!("{role}@example.com");
        let t = access(&app.signup(&email).await);
        assert_eq!(invite(&app, &owner, &org, &email, role).await.status, 201);
        let token = invitation_token(&app, &sink, &email).await;
        assert_eq!(accept(&app, Some(&t), json!({"token": token})).await.status, 200);
        tokens.insert(role, t);
    }
    for role in ["viewer", "member"] {
        let r = invite(&app, &tokens[role], &org, "x@example.com", "viewer").await;
        assert_eq!((r.status, r.code()), (403, "INSUFFICIENT_PERMISSIONS"), "{role}: {}", r.body);
        let r =
            app.rest("GET", &format!("/invitations?organization_id={org}"), Some(&tokens[role]), None).await;
        assert_eq!(r.status, 403, "{role} lists: {}", r.body);
    }
    let admin = &tokens["admin"];
    assert_eq!(invite(&app, admin, &org, "a@example.com", "admin").await.status, 201, "admin invites admin");
    let r = invite(&app, admin, &org, "o@example.com", "owner").await;
    assert_eq!((r.status, r.code()), (403, "INSUFFICIENT_PERMISSIONS"), "not above one's own: {}", r.body);
    let r = app
        .rest(
            "POST",
            &format!("/organizations/{org}/members"),
            Some(admin),
            Some(json!({"email": "o@example.com", "role": "owner"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = invite(&app, &owner, &org, "o@example.com", "owner").await;
    assert_eq!(r.status, 201, "owners invite owners: {}", r.body);
    let owner_inv = r.body["data"]["invitation"]["id"].as_str().unwrap().to_owned();
    for (m, path) in [
        ("POST", format!("/invitations/{owner_inv}/resend")),
        ("DELETE", format!("/invitations/{owner_inv}")),
    ] {
        assert_eq!(
            app.rest(m, &path, Some(admin), None).await.status,
            403,
            "an admin manages no owner invitation"
        );
    }
    let r = invite(&app, &owner, &org, "bad", "member").await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = invite(&app, &owner, &org, "x@example.com", "superuser").await;
    assert_eq!(r.status, 422, "{}", r.body);

    // Another organization's owner sees none of it, and cannot act on it.
    let r = invite(&app, &other_owner, &org, "y@example.com", "member").await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = app.rest("GET", &format!("/invitations?organization_id={org}"), Some(&other_owner), None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    for (m, path) in [
        ("POST", format!("/invitations/{owner_inv}/resend")),
        ("DELETE", format!("/invitations/{owner_inv}")),
    ] {
        assert_eq!(app.rest(m, &path, Some(&other_owner), None).await.status, 404, "{m} {path}");
    }
    let r = app.rest("GET", "/invitations", Some(&other_owner), None).await;
    assert_eq!(r.body["pagination"]["total_count"], 0, "only its own organizations: {}", r.body);
    assert_eq!(invite(&app, &other_owner, &other_org, "a@example.com", "member").await.status, 201);
    let r = app.rest("GET", "/invitations", Some(&owner), None).await;
    assert!(
        r.body["data"].as_array().unwrap().iter().all(|i| i["organization_id"] == org.as_str()),
        "{}",
        r.body
    );
    // An invitation of one organization makes a member of that one only.
    let token = invitation_token(&app, &sink, "a@example.com").await;
    let r = accept(&app, None, json!({"token": token, "password": PASSWORD})).await;
    assert_eq!(
        r.body["data"]["organization"]["id"],
        other_org.as_str(),
        "the newest mail is Elsewhere's: {}",
        r.body
    );
    assert_eq!(role_of(&app, &owner, &org, "a@example.com").await, None);
}

/// The GraphQL operations, and no token in any invitation type.
async fn invitations_over_graphql_never_show_a_token(b: Backend) {
    let (app, sink) = with_sink(b, |_| {}).await;
    let (owner, org) = owner_and_org(&app, "owner@example.com", "Acme").await;
    let types = app
        .gql(None, r#"{ __schema { types { name fields { name } inputFields { name } } } }"#, json!({}))
        .await;
    for t in types["data"]["__schema"]["types"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        if name.contains("Invitation") || name == "AddMemberResult" {
            let fields: Vec<&str> =
                t["fields"].as_array().into_iter().flatten().filter_map(|f| f["name"].as_str()).collect();
            assert!(
                !fields.iter().any(|f| f.to_lowercase().contains("token") && *f != "tokens"),
                "{name}: {fields:?}"
            );
            assert!(!fields.contains(&"tokenHash"), "{name}");
        }
    }
    let create = r#"mutation($input: CreateInvitationInput!) { createInvitation(input: $input) { invitation { id email role status } } }"#;
    let g = app
        .gql(
            Some(&owner),
            create,
            json!({"input": {"organizationId": org, "email": "g@example.com", "message": "hi"}}),
        )
        .await;
    assert_eq!(g["data"]["createInvitation"]["invitation"]["role"], "member", "{g}");
    let id = g["data"]["createInvitation"]["invitation"]["id"].as_str().unwrap().to_owned();
    let list = r#"query($org: ID) { invitations(organizationId: $org, first: 10) { totalCount edges { node { id status message } } } }"#;
    let g = app.gql(Some(&owner), list, json!({"org": org})).await;
    assert_eq!(g["data"]["invitations"]["totalCount"], 1, "{g}");
    assert_eq!(g["data"]["invitations"]["edges"][0]["node"]["message"], "hi");
    let g = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { resendInvitation(id: $id) { invitation { status } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(g["data"]["resendInvitation"]["invitation"]["status"], "pending", "{g}");
    let token = invitation_token(&app, &sink, "g@example.com").await;
    let accept = r#"mutation($input: AcceptInvitationInput!) { acceptInvitation(input: $input) {
        user { email emailVerified } tokens { accessToken } organization { id name } role } }"#;
    let g = app.gql(None, accept, json!({"input": {"token": "nope", "password": PASSWORD}})).await;
    assert_eq!(g["errors"][0]["extensions"]["code"], "INVITATION_INVALID", "{g}");
    let g = app.gql(None, accept, json!({"input": {"token": token, "password": PASSWORD}})).await;
    assert_eq!(g["data"]["acceptInvitation"]["organization"]["name"], "Acme", "{g}");
    assert!(g["data"]["acceptInvitation"]["tokens"]["accessToken"].is_string(), "{g}");
    let g = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { revokeInvitation(id: $id) { invitation { status } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(g["errors"][0]["extensions"]["code"], "CONFLICT", "accepted: {g}");
    // Every refusal of `acceptInvitation` has its message in each language.
    for (lang, word) in
        [("es", "invitación"), ("fr", "invitation"), ("de", "Einladung"), ("en", "invitation")]
    {
        let r = app
            .client
            .post(app.url("/api/v1/invitations/accept"))
            .header("accept-language", lang)
            .json(&json!({"token": "nope"}))
            .send()
            .await
            .unwrap();
        let r = Resp::from(r).await;
        assert!(r.body["error"]["message"].as_str().unwrap().contains(word), "{lang}: {}", r.body);
    }
}

/// Invitation mails are limited per organization and address, per address across
/// organizations, per organization and per client (429 with `Retry-After`); with Redis, two
/// nodes count together.
async fn invitation_mails_are_limited(b: Backend) {
    let limits = |c: &mut janua::config::Config| {
        c.invitations_per_address_per_hour = 2;
        c.invitations_per_recipient_per_hour = 3;
        c.invitations_per_organization_per_hour = 5;
        c.invitations_per_client_per_hour = 1000;
    };
    let (app, sink) = with_sink(b.clone(), limits).await;
    let (owner, org) = owner_and_org(&app, "owner@example.com", "Acme").await;
    let (other, other_org) = owner_and_org(&app, "other@example.com", "Elsewhere").await;
    assert_eq!(invite(&app, &owner, &org, "victim@example.com", "member").await.status, 201);
    let r = invite(&app, &owner, &org, "victim@example.com", "member").await;
    let id = r.body["data"]["invitation"]["id"].as_str().unwrap().to_owned();
    let r = app.rest("POST", &format!("/invitations/{id}/resend"), Some(&owner), None).await;
    assert_eq!((r.status, r.code()), (429, "RATE_LIMITED"), "a third mail to one address: {}", r.body);
    assert!(r.header("retry-after").parse::<u64>().unwrap() > 3000, "{:?}", r.headers);
    assert_eq!(r.body["error"]["details"]["window_seconds"], 3600);
    let r = app
        .rest(
            "POST",
            &format!("/organizations/{org}/members"),
            Some(&owner),
            Some(json!({"email": "victim@example.com"})),
        )
        .await;
    assert_eq!(r.status, 429, "the person's add member too: {}", r.body);
    // Another organization may still invite that address — up to the address's own limit.
    assert_eq!(invite(&app, &other, &other_org, "victim@example.com", "member").await.status, 201);
    assert_eq!(invite(&app, &other, &other_org, "victim@example.com", "member").await.status, 429);
    assert_eq!(mails_to(&app, &sink, "victim@example.com").await.len(), 3, "three mails, not more");
    // The organization's own limit.
    for n in 0..3 {
        assert_eq!(invite(&app, &owner, &org, &format!("p{n}@example.com"), "member").await.status, 201);
    }
    assert_eq!(
        invite(&app, &owner, &org, "p9@example.com", "member").await.status,
        429,
        "the organization's sixth"
    );

    // Per client.
    let (app, _sink) = with_sink(b.clone(), |c| c.invitations_per_client_per_hour = 2).await;
    let (owner, org) = owner_and_org(&app, "owner@example.com", "Acme").await;
    for n in 0..2 {
        assert_eq!(invite(&app, &owner, &org, &format!("c{n}@example.com"), "member").await.status, 201);
    }
    assert_eq!(
        invite(&app, &owner, &org, "c2@example.com", "member").await.status,
        429,
        "the client's third"
    );

    // Two nodes behind one Redis count together.
    let Some(url) = redis_url() else { return };
    let prefix = redis_prefix();
    let (a, _sink) = with_sink(b, |c| {
        c.redis_url = Some(url);
        c.redis_prefix = prefix;
        c.invitations_per_address_per_hour = 2;
    })
    .await;
    let node_b = a.spawn_peer().await;
    let (owner, org) = owner_and_org(&a, "owner@example.com", "Acme").await;
    assert_eq!(invite(&a, &owner, &org, "shared@example.com", "member").await.status, 201);
    assert_eq!(invite(&node_b, &owner, &org, "shared@example.com", "member").await.status, 201);
    assert_eq!(invite(&a, &owner, &org, "shared@example.com", "member").await.status, 429);
    assert_eq!(invite(&node_b, &owner, &org, "shared@example.com", "member").await.status, 429);
}

/// The table migrates on both databases, a row round-trips, the database keeps one open
/// invitation per organization and address, and rows go with their organization (and keep no
/// deleted inviter).
async fn invitation_rows_round_trip_with_one_open_per_address(b: Backend) {
    use chrono::SubsecRound;
    use entities::{invitation, organization, user};
    use sea_orm::{ActiveModelTrait, Set};
    let app = TestApp::spawn(b).await;
    let (owner, org) = owner_and_org(&app, "owner@example.com", "Acme").await;
    let inviter: uuid::Uuid = app.rest("GET", "/auth/me", Some(&owner), None).await.body["data"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let org: uuid::Uuid = org.parse().unwrap();
    let db = &app.services.state.db;
    let now = chrono::Utc::now().trunc_subsecs(6); // PostgreSQL keeps microseconds
    let row = |email: &str, hash: &str| invitation::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        organization_id: Set(org),
        email: Set(email.into()),
        role: Set("admin".into()),
        token_hash: Set(hash.into()),
        message: Set(Some("Hello".into())),
        invited_by: Set(Some(inviter)),
        expires_at: Set(now),
        accepted_at: Set(None),
        revoked_at: Set(None),
        accepted_user_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let a = row("rt@example.com", &"a".repeat(64)).insert(db).await.unwrap();
    assert_eq!(invitation::Entity::find_by_id(a.id).one(db).await.unwrap(), Some(a.clone()));
    assert!(row("rt@example.com", &"b".repeat(64)).insert(db).await.is_err(), "a second open invitation");
    assert!(row("other@example.com", &"a".repeat(64)).insert(db).await.is_err(), "a token hash twice");
    let mut revoked: invitation::ActiveModel = a.clone().into();
    revoked.revoked_at = Set(Some(now));
    revoked.update(db).await.unwrap();
    let b = row("rt@example.com", &"b".repeat(64)).insert(db).await.unwrap();
    // The inviter's account goes: the invitation stays, naming nobody.
    let u = user::Entity::find_by_id(inviter).one(db).await.unwrap().unwrap();
    let mut other_owner = user::ActiveModel::from(u);
    other_owner.id = Set(uuid::Uuid::now_v7());
    other_owner.email = Set("second@example.com".into());
    let second = other_owner.insert(db).await.unwrap();
    let mut by_second: invitation::ActiveModel = b.into();
    by_second.invited_by = Set(Some(second.id));
    let b = by_second.update(db).await.unwrap();
    user::Entity::delete_by_id(second.id).exec(db).await.unwrap();
    assert_eq!(invitation::Entity::find_by_id(b.id).one(db).await.unwrap().unwrap().invited_by, None);
    // The organization goes: so do its invitations.
    organization::Entity::delete_by_id(org).exec(db).await.unwrap();
    assert!(invitation::Entity::find().all(db).await.unwrap().is_empty());
}
