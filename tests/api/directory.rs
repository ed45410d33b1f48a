//! Users, organizations, members, API keys, administration and lists — REST and GraphQL.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, access};

crate::on_both_databases!(
    organizations_and_members,
    users_update_suspend_delete_and_roles,
    lists_sort_filter_search_and_validate,
    pagination_is_stable_under_concurrent_inserts,
    organizations_with_owners_cost_constant_queries,
    admin_reads_analytics_and_audit_logs,
    api_keys_are_shown_once_scoped_and_revocable,
);

async fn organizations_and_members(b: Backend) {
    let app = TestApp::spawn(b).await;
    let owner = access(&app.signup("owner@example.com").await);
    let other = access(&app.signup("other@example.com").await);
    app.signup("joiner@example.com").await;

    let r = app
        .rest(
            "POST",
            "/organizations",
            Some(&owner),
            Some(json!({"name": "Acme Corp!", "domain": "Acme.COM"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["slug"], "acme-corp");
    assert_eq!(r.body["data"]["domain"], "acme.com");
    assert_eq!(r.body["data"]["member_count"], 1);
    let org = r.body["data"]["id"].as_str().unwrap().to_owned();
    // Duplicate slug and domain are conflicts, naming the field.
    let dup = app.rest("POST", "/organizations", Some(&other), Some(json!({"name": "Acme Corp"}))).await;
    assert_eq!(
        (dup.status, dup.code(), dup.body["error"]["details"]["field"].as_str()),
        (409, "CONFLICT", Some("slug"))
    );
    let dup = app
        .rest("POST", "/organizations", Some(&other), Some(json!({"name": "Other", "domain": "acme.com"})))
        .await;
    assert_eq!((dup.status, dup.body["error"]["details"]["field"].as_str()), (409, Some("domain")));
    // A non-member cannot tell the organization exists.
    assert_eq!(app.rest("GET", &format!("/organizations/{org}"), Some(&other), None).await.status, 404);

    // GraphQL sees the same organization, with its owner through the loader.
    let g = app
        .gql(
            Some(&owner),
            "query($id: ID!) { organization(id: $id) { slug memberCount owners { email } } }",
            json!({"id": org}),
        )
        .await;
    assert_eq!(g["data"]["organization"]["owners"][0]["email"], "owner@example.com", "{g}");

    app.add_member(&owner, &org, "joiner@example.com", "viewer").await;
    let joiner = access(&app.signin("joiner@example.com").await);
    let members = app.rest("GET", &format!("/organizations/{org}/members"), Some(&joiner), None).await;
    assert_eq!(members.body["pagination"]["total_count"], 2, "{}", members.body);
    assert_eq!(members.body["data"][0]["role"], "owner");
    assert_eq!(members.body["data"][1]["user"]["email"], "joiner@example.com");
    let joiner_id = members.body["data"][1]["user"]["id"].as_str().unwrap().to_owned();
    let owner_id = members.body["data"][0]["user"]["id"].as_str().unwrap().to_owned();
    // A viewer may read but not change.
    let r = app
        .rest("PUT", &format!("/organizations/{org}"), Some(&joiner), Some(json!({"description": "x"})))
        .await;
    assert_eq!((r.status, r.code()), (403, "INSUFFICIENT_PERMISSIONS"));
    let again = app
        .rest(
            "POST",
            &format!("/organizations/{org}/members"),
            Some(&owner),
            Some(json!({"email": "joiner@example.com"})),
        )
        .await;
    assert_eq!(again.status, 409);

    // Promote to admin through GraphQL, then the admin updates the organization.
    let g = app
        .gql(
            Some(&owner),
            "mutation($o: ID!, $u: ID!) { updateMemberRole(organizationId: $o, userId: $u, input: {role: \"admin\"}) { role } }",
            json!({"o": org, "u": joiner_id}),
        )
        .await;
    assert_eq!(g["data"]["updateMemberRole"]["role"], "admin", "{g}");
    let r = app
        .rest(
            "PUT",
            &format!("/organizations/{org}"),
            Some(&joiner),
            Some(json!({"description": "Rockets", "domain": null})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["data"]["description"].clone(), r.body["data"]["domain"].clone()),
        (200, json!("Rockets"), Value::Null)
    );
    // An admin cannot touch the owner; the last owner can neither be demoted nor leave.
    let r = app
        .rest(
            "PUT",
            &format!("/organizations/{org}/members/{owner_id}"),
            Some(&joiner),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = app
        .rest(
            "PUT",
            &format!("/organizations/{org}/members/{owner_id}"),
            Some(&owner),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!((r.status, r.body["error"]["details"]["reason"].as_str()), (409, Some("last_owner")));
    let r = app.rest("DELETE", &format!("/organizations/{org}/members/{owner_id}"), Some(&owner), None).await;
    assert_eq!(r.status, 409);
    // Members may leave.
    let r =
        app.rest("DELETE", &format!("/organizations/{org}/members/{joiner_id}"), Some(&joiner), None).await;
    assert_eq!(r.status, 204);
    assert_eq!(app.rest("GET", &format!("/organizations/{org}"), Some(&joiner), None).await.status, 404);
    let bad = app
        .rest(
            "POST",
            &format!("/organizations/{org}/members"),
            Some(&owner),
            Some(json!({"email": "joiner@example.com", "role": "emperor"})),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (422, "VALIDATION_ERROR"));

    // Every change is in the audit log, attributed to the organization.
    use entities::audit_log;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let actions: Vec<String> = audit_log::Entity::find()
        .filter(audit_log::Column::OrganizationId.eq(uuid::Uuid::parse_str(&org).unwrap()))
        .all(&app.services.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    for a in [
        "organization.created",
        "organization.member.added",
        "organization.member.role_changed",
        "organization.updated",
        "organization.member.removed",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} missing from {actions:?}");
    }
}

async fn users_update_suspend_delete_and_roles(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("root@example.com").await;
    let s = app.signup("user@example.com").await;
    let user = access(&s);
    let id = s["user"]["id"].as_str().unwrap().to_owned();
    let r = app
        .rest(
            "PUT",
            &format!("/users/{id}"),
            Some(&user),
            Some(json!({"first_name": "Ann", "metadata": {"theme": "dark", "camelKey": 1}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["first_name"], "Ann");
    assert_eq!(r.body["data"]["metadata"]["camelKey"], 1, "metadata keys are left alone");
    let r = app.rest("PUT", &format!("/users/{id}"), Some(&user), Some(json!({"is_admin": true}))).await;
    assert_eq!((r.status, r.code()), (403, "INSUFFICIENT_PERMISSIONS"));
    let r = app
        .rest("PUT", &format!("/users/{id}"), Some(&user), Some(json!({"avatar_url": "javascript:alert(1)"})))
        .await;
    assert_eq!(r.status, 422);

    let roles = app.rest("GET", &format!("/users/{id}/roles"), Some(&admin), None).await;
    assert_eq!(roles.body["data"], json!({"global": [], "organizations": []}));
    let org = app.org(&user, "Ann's Org").await;
    let roles = app.rest("GET", &format!("/users/{id}/roles"), Some(&user), None).await;
    assert_eq!(roles.body["data"]["organizations"][0]["role"], "owner");
    assert_eq!(roles.body["data"]["organizations"][0]["organization_id"], org.as_str());

    // An administrator suspends the user: every session stops at once.
    let r =
        app.rest("PUT", &format!("/users/{id}"), Some(&admin), Some(json!({"status": "suspended"}))).await;
    assert_eq!((r.status, r.body["data"]["status"].as_str()), (200, Some("suspended")));
    let r = app.rest("GET", "/auth/me", Some(&user), None).await;
    assert_eq!((r.status, r.code()), (401, "SESSION_REVOKED"));
    app.rest("PUT", &format!("/users/{id}"), Some(&admin), Some(json!({"status": "active"}))).await;

    // Deleting the last owner of an organization is refused until it is handed over.
    let r = app.rest("DELETE", &format!("/users/{id}"), Some(&admin), None).await;
    assert_eq!((r.status, r.body["error"]["details"]["reason"].as_str()), (409, Some("last_owner")));
    let g = app
        .gql(Some(&admin), "query($id: ID!) { userRoles(userId: $id) { global } }", json!({"id": id}))
        .await;
    assert_eq!(g["data"]["userRoles"]["global"], json!([]));
    let me = app.gql(Some(&admin), "{ me { id } }", json!({})).await;
    let admin_id = me["data"]["me"]["id"].as_str().unwrap().to_owned();
    let g = app
        .gql(Some(&admin), "query($id: ID!) { userRoles(userId: $id) { global } }", json!({"id": admin_id}))
        .await;
    assert_eq!(g["data"]["userRoles"]["global"], json!(["admin"]));
    let s2 = app.signin("user@example.com").await;
    let user2 = access(&s2);
    let admin_uid = admin_id.clone();
    app.add_member(&user2, &org, "root@example.com", "owner").await;
    let _ = admin_uid;
    let r = app.rest("DELETE", &format!("/users/{id}"), Some(&user2), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(app.rest("GET", "/auth/me", Some(&user2), None).await.status, 401);
    assert_eq!(app.rest("GET", &format!("/users/{id}"), Some(&user2), None).await.status, 401);
    let gone = app.rest("GET", &format!("/users/{id}"), Some(&admin), None).await;
    assert_eq!(gone.body["data"]["status"], "deleted");
    assert!(gone.body["data"]["first_name"].is_null(), "personal data erased");
    // The email is free again, and the audit trail still names the old account.
    app.signup("user@example.com").await;
    let logs = app
        .rest("GET", &format!("/admin/audit-logs?action=user.deleted&target_id={id}"), Some(&admin), None)
        .await;
    assert!(logs.body["data"][0]["metadata"]["attributes"].is_null());
    assert_eq!(logs.body["data"][0]["metadata"]["email"], "user@example.com", "{}", logs.body);
}

async fn lists_sort_filter_search_and_validate(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("admin@example.com").await;
    for (email, name) in
        [("carol@example.com", "Carol"), ("alice@example.com", "Alice"), ("bob@example.com", "Bob_x")]
    {
        let r = app
            .rest(
                "POST",
                "/auth/signup",
                None,
                Some(json!({"email": email, "password": crate::helpers::PASSWORD, "name": name})),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let emails = |r: &crate::helpers::Resp| -> Vec<String> {
        r.body["data"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_owned()).collect()
    };
    let r = app.rest("GET", "/users?sort=email:asc", Some(&admin), None).await;
    assert_eq!(
        emails(&r),
        ["admin@example.com", "alice@example.com", "bob@example.com", "carol@example.com"]
    );
    let r = app.rest("GET", "/users?sort=name:desc&limit=2", Some(&admin), None).await;
    assert_eq!(emails(&r), ["carol@example.com", "bob@example.com"]);
    let r = app.rest("GET", "/users?search=ALI", Some(&admin), None).await;
    assert_eq!(emails(&r), ["alice@example.com"]);
    let r = app.rest("GET", "/users?search=b_x", Some(&admin), None).await;
    assert_eq!(emails(&r), ["bob@example.com"], "LIKE wildcards in the search are literal");
    let r = app.rest("GET", "/users?status=suspended", Some(&admin), None).await;
    assert_eq!(r.body["pagination"]["total_count"], 0);
    for bad in ["sort=password_hash:asc", "sort=email:up", "status=zombie", "limit=500"] {
        let r = app.rest("GET", &format!("/users?{bad}"), Some(&admin), None).await;
        assert_eq!((r.status, r.code()), (422, "VALIDATION_ERROR"), "{bad}");
    }
    let g = app
        .gql(Some(&admin), "{ users(first: 2, orderBy: \"email:asc\") { totalCount edges { node { email } } pageInfo { hasNextPage endCursor } } }", json!({}))
        .await;
    assert_eq!(g["data"]["users"]["totalCount"], 4, "{g}");
    assert_eq!(g["data"]["users"]["edges"][1]["node"]["email"], "alice@example.com");
    assert_eq!(g["data"]["users"]["pageInfo"]["hasNextPage"], true);
}

async fn pagination_is_stable_under_concurrent_inserts(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("admin@example.com").await;
    janua::services::bootstrap::seed_users(&app.services.state, 60).await.unwrap();
    let before: u64 = app.rest("GET", "/users", Some(&admin), None).await.body["pagination"]["total_count"]
        .as_u64()
        .unwrap();
    // Walk the list oldest first while new users keep arriving.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/users?sort=created_at:asc&limit=7&cursor={c}"),
            None => "/users?sort=created_at:asc&limit=7".into(),
        };
        let r = app.rest("GET", &path, Some(&admin), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        seen.extend(r.body["data"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        janua::services::bootstrap::seed_users(&app.services.state, 3).await.unwrap();
        match r.body["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no user repeated");
    assert!(seen.len() as u64 >= before, "no user that existed at the start was skipped");
}

async fn organizations_with_owners_cost_constant_queries(b: Backend) {
    let mut app = TestApp::spawn(b).await;
    let few = access(&app.signup("few@example.com").await);
    let many = access(&app.signup("many@example.com").await);
    for i in 0..3 {
        app.org(&few, &format!("Few {i:03}")).await;
    }
    for i in 0..63 {
        app.org(&many, &format!("Many {i:03}")).await;
    }
    // Measure with the server and its background workers stopped, so the process-wide query
    // counter sees only this request: the same operation the HTTP handler runs, in-process.
    app.stop().await;
    let state = app.services.state.clone();
    let q =
        "{ organizations(first: 100) { totalCount edges { node { name memberCount owners { email } } } } }";
    let count = |token: String| {
        let (state, schema) = (state.clone(), app.services.schema.clone());
        async move {
            let mut user = janua::services::auth::authenticate(&state, &token).await.unwrap();
            // Both read the caller from the database, however recently it was cached.
            user.stamp = None;
            let rc = janua::context::RequestContext {
                actor: janua::context::Actor::User(user),
                request_id: "req_count".into(),
                ..Default::default()
            };
            let request =
                async_graphql::Request::new(q).data(rc).data(janua::graphql::loaders::Loaders::new(&state));
            let before = state.queries.get();
            let r = schema.execute(request).await;
            assert!(r.errors.is_empty(), "{:?}", r.errors);
            let n = r.data.into_json().unwrap()["organizations"]["edges"].as_array().unwrap().len();
            (n, state.queries.get() - before)
        }
    };
    let (n_few, q_few) = count(few).await;
    let (n_many, q_many) = count(many).await;
    assert_eq!((n_few, n_many), (3, 63));
    assert_eq!(q_few, q_many, "queries for 3 organizations ({q_few}) and for 63 ({q_many}) must be the same");
    assert!(q_many <= 8, "{q_many} queries");
}

async fn admin_reads_analytics_and_audit_logs(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("admin@example.com").await;
    let u = access(&app.signup("someone@example.com").await);
    app.org(&u, "Someone Inc").await;
    app.rest(
        "POST",
        "/auth/signin",
        None,
        Some(json!({"email": "someone@example.com", "password": "wrong password 1"})),
    )
    .await;
    let r = app.rest("GET", "/admin/users", Some(&admin), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let someone = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["user"]["email"] == "someone@example.com")
        .unwrap()
        .clone();
    assert_eq!((someone["active_sessions"].as_u64(), someone["organizations"].as_u64()), (Some(1), Some(1)));
    let r = app.rest("GET", "/admin/organizations", Some(&admin), None).await;
    assert_eq!(r.body["data"][0]["members"], 1);
    let today = chrono::Utc::now().date_naive();
    let from = (today - chrono::Duration::days(2)).to_string();
    let a = app.rest("GET", &format!("/admin/analytics?from={from}&to={today}"), Some(&admin), None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let d = &a.body["data"];
    assert_eq!(d["users_total"], 2);
    assert_eq!(d["organizations_total"], 1);
    assert_eq!(d["signin_failures_24h"], 1);
    assert!(d["signins_24h"].as_u64().unwrap() >= 1);
    let series = d["series"].as_array().unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(series[2]["date"], today.to_string());
    assert_eq!(series[2]["new_users"], 2);
    assert_eq!(series[2]["signin_failures"], 1);
    let bad = app.rest("GET", "/admin/analytics?from=yesterday", Some(&admin), None).await;
    assert_eq!(bad.status, 422);

    let logs = app.rest("GET", "/admin/audit-logs?action=organization.*&limit=5", Some(&admin), None).await;
    assert_eq!(logs.body["data"][0]["action"], "organization.created", "{}", logs.body);
    assert_eq!(logs.body["data"][0]["actor"]["type"], "user");
    let all = app.rest("GET", "/admin/audit-logs?limit=100", Some(&admin), None).await;
    let actions: Vec<_> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap().to_owned())
        .collect();
    // The admin reads themselves were audited (newest first).
    assert_eq!(actions[0], "admin.action");
    assert!(actions.iter().filter(|a| *a == "admin.action").count() >= 4);
    // Plain users are refused.
    assert_eq!(app.rest("GET", "/admin/users", Some(&u), None).await.code(), "FORBIDDEN");
}

async fn api_keys_are_shown_once_scoped_and_revocable(b: Backend) {
    let app = TestApp::spawn(b).await;
    let owner = access(&app.signup("keys@example.com").await);
    let org = app.org(&owner, "Keyed").await;
    let r = app
        .rest(
            "POST",
            &format!("/organizations/{org}/api-keys"),
            Some(&owner),
            Some(json!({"name": "ci", "scopes": ["users:read", "organizations:read"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.body["data"]["key"].as_str().unwrap().to_owned();
    let key_id = r.body["data"]["api_key"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(r.body["data"]["api_key"]["prefix"].as_str().unwrap()));
    let list = app.rest("GET", &format!("/organizations/{org}/api-keys"), Some(&owner), None).await;
    assert!(!list.body.to_string().contains(&key), "the secret is never listed");
    assert_eq!(list.body["data"][0]["scopes"], json!(["users:read", "organizations:read"]));

    let r = app.rest_key("GET", &format!("/organizations/{org}"), &key, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.rest_key("GET", "/users", &key, None).await;
    assert_eq!((r.status, r.body["data"][0]["email"].as_str()), (200, Some("keys@example.com")));
    let r =
        app.rest_key("PUT", &format!("/organizations/{org}"), &key, Some(json!({"name": "Hacked"}))).await;
    assert_eq!((r.status, r.code()), (403, "INSUFFICIENT_PERMISSIONS"));
    let bad = app.rest_key("GET", "/users", "jk_not-a-real-key", None).await;
    assert_eq!((bad.status, bad.code()), (401, "INVALID_TOKEN"));
    let bad_scope = app
        .rest(
            "POST",
            &format!("/organizations/{org}/api-keys"),
            Some(&owner),
            Some(json!({"name": "x", "scopes": ["admin:read"]})),
        )
        .await;
    assert_eq!(bad_scope.status, 422);

    // last_used_at is recorded (off the request path).
    for _ in 0..50 {
        let l = app.rest("GET", &format!("/organizations/{org}/api-keys"), Some(&owner), None).await;
        if l.body["data"][0]["last_used_at"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let l = app.rest("GET", &format!("/organizations/{org}/api-keys"), Some(&owner), None).await;
    assert!(l.body["data"][0]["last_used_at"].is_string());

    let r = app.rest("DELETE", &format!("/api-keys/{key_id}"), Some(&owner), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["data"]["revoked_at"].is_string());
    let r = app.rest_key("GET", &format!("/organizations/{org}"), &key, None).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"));
}
