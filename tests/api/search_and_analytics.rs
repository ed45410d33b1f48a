//! User search through its indexes (SQLite FTS5 trigrams, PostgreSQL `pg_trgm`) finds exactly
//! what the plain `LIKE` found, and analytics from the hourly user counters are exact.

use chrono::{DateTime, Duration, Utc};
use entities::user;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp};

crate::on_both_databases!(search_finds_exactly_the_substrings, analytics_counts_are_exact);

fn emails(r: &crate::helpers::Resp) -> Vec<String> {
    let mut v: Vec<String> = r.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .map(|u| u["email"].as_str().or(u["user"]["email"].as_str()).unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// Every user the search finds, through `/users` (following cursors two at a time) and
/// `/admin/users`, which must agree; sorted.
async fn search(app: &TestApp, admin: &str, term: &str) -> Vec<String> {
    let q = urlencoding(term);
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.as_deref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let r = app.rest("GET", &format!("/users?search={q}&limit=2{after}"), Some(admin), None).await;
        assert_eq!(r.status, 200, "{term}: {}", r.body);
        found.extend(emails(&r));
        let total = r.body["pagination"]["total_count"].as_u64().unwrap();
        match r.body["pagination"]["next_cursor"].as_str() {
            Some(c) if r.body["pagination"]["has_next"] == true => cursor = Some(c.to_owned()),
            _ => {
                assert_eq!(total as usize, found.len(), "{term}: total_count");
                break;
            }
        }
    }
    found.sort();
    let all = app.rest("GET", &format!("/admin/users?search={q}&limit=100"), Some(admin), None).await;
    assert_eq!(emails(&all), found, "{term}: /admin/users agrees with /users");
    found
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

async fn signup(app: &TestApp, email: &str, name: &str) -> String {
    let r = app
        .rest(
            "POST",
            "/auth/signup",
            None,
            Some(json!({"email": email, "password": crate::helpers::PASSWORD, "name": name})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["data"]["user"]["id"].as_str().unwrap().to_owned()
}

async fn search_finds_exactly_the_substrings(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("root@example.com").await;
    let db = &app.services.state.db;
    let middle = signup(&app, "mid.dle.person@example.com", "Zoë Q. Public").await;
    let pct = signup(&app, "pct@example.com", "100% sure_thing").await;
    signup(&app, "under_score@example.com", "Under Score").await;
    signup(&app, "ab@example.com", "Ab").await;
    let s = |v: &[&str]| v.iter().map(|e| e.to_string()).collect::<Vec<_>>();
    // Substrings in the middle of an email or a name, in any case; short terms; blanks.
    assert_eq!(search(&app, &admin, "dle.per").await, s(&["mid.dle.person@example.com"]));
    assert_eq!(search(&app, &admin, "q. PUB").await, s(&["mid.dle.person@example.com"]));
    assert_eq!(search(&app, &admin, "ZOË").await, s(&["mid.dle.person@example.com"]));
    assert_eq!(search(&app, &admin, "  sure_THING ").await, s(&["pct@example.com"]));
    assert_eq!(search(&app, &admin, "ab").await, s(&["ab@example.com"]));
    assert_eq!(search(&app, &admin, "b").await, s(&["ab@example.com", "mid.dle.person@example.com"]));
    assert_eq!(search(&app, &admin, "ER S").await, s(&["under_score@example.com"]));
    assert_eq!(search(&app, &admin, "nobody").await, s(&[]));
    // `%`, `_`, `\` and `"` are literal, short or long.
    assert_eq!(search(&app, &admin, "%").await, s(&["pct@example.com"]));
    assert_eq!(search(&app, &admin, "0% s").await, s(&["pct@example.com"]));
    assert_eq!(search(&app, &admin, "_").await, s(&["pct@example.com", "under_score@example.com"]));
    assert_eq!(search(&app, &admin, "r_s").await, s(&["under_score@example.com"]));
    for none in ["r%s", "e_s%", "u_d", "\\", "a\\b", "\"ab\"", "ab*", "under OR pct"] {
        assert_eq!(search(&app, &admin, none).await, s(&[]), "{none}");
    }
    // Many matches: every page, in order, with the total.
    let r = app.rest("GET", "/users?search=EXAMPLE.COM&limit=2&sort=email:asc", Some(&admin), None).await;
    assert_eq!(r.body["pagination"]["total_count"], 5, "{}", r.body);
    assert_eq!(r.body["data"][0]["email"], "ab@example.com");
    assert_eq!(search(&app, &admin, "example.com").await.len(), 5);

    // A changed name is found by its new text only.
    let r = app
        .rest("PUT", &format!("/users/{pct}"), Some(&admin), Some(json!({"name": "Renamed Person"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(search(&app, &admin, "sure_thing").await, s(&[]));
    assert_eq!(search(&app, &admin, "named pers").await, s(&["pct@example.com"]));
    assert_eq!(search(&app, &admin, "person").await, s(&["mid.dle.person@example.com", "pct@example.com"]));
    // A changed email (written as the confirmation link writes it) likewise.
    let id = Uuid::parse_str(&middle).unwrap();
    let mut m: user::ActiveModel = user::Entity::find_by_id(id).one(db).await.unwrap().unwrap().into();
    m.email = Set("fresh.address@example.com".into());
    m.update(db).await.unwrap();
    assert_eq!(search(&app, &admin, "dle.per").await, s(&[]));
    assert_eq!(search(&app, &admin, "sh.add").await, s(&["fresh.address@example.com"]));
    assert_eq!(search(&app, &admin, "zoë q").await, s(&["fresh.address@example.com"]));
    // A deleted user is gone from search; a row removed outright leaves nothing behind, even
    // when the next user takes its place (on SQLite, its rowid).
    assert_eq!(app.rest("DELETE", &format!("/users/{pct}"), Some(&admin), None).await.status, 204);
    assert_eq!(search(&app, &admin, "named pers").await, s(&[]));
    let last = signup(&app, "last.one@example.com", "Transient").await;
    user::Entity::delete_by_id(Uuid::parse_str(&last).unwrap()).exec(db).await.unwrap();
    assert_eq!(search(&app, &admin, "transient").await, s(&[]));
    signup(&app, "next.one@example.com", "Successor").await;
    assert_eq!(search(&app, &admin, "transient").await, s(&[]));
    assert_eq!(search(&app, &admin, "ccess").await, s(&["next.one@example.com"]));
    assert_eq!(search(&app, &admin, "t.one").await, s(&["next.one@example.com"]));

    // Past 5,000 rows found, SQLite pages by the sort index instead of the trigram table: the
    // same rows either way.
    janua::services::bootstrap::seed_users_into(db, 5_001).await.unwrap();
    let total = |q: &'static str| {
        let app = &app;
        let admin = &admin;
        async move {
            let r = app
                .rest("GET", &format!("/users?search={q}&limit=3&sort=email:asc"), Some(admin), None)
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            (r.body["pagination"]["total_count"].as_u64().unwrap(), r.body["data"].as_array().unwrap().len())
        }
    };
    assert_eq!(total("SEED%20USER%204999").await, (1, 1));
    assert_eq!(total("user%204").await, (1_111, 3));
    assert_eq!(total("seed-").await, (5_001, 3));
    assert_eq!(total("ED%20US").await, (5_001, 3));
    let r = app.rest("GET", "/users?search=seed%20user&limit=100&sort=name:asc", Some(&admin), None).await;
    let names: Vec<&str> =
        r.body["data"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names[..3], ["Seed User 0", "Seed User 1", "Seed User 10"]);
    assert!(names.windows(2).all(|w| w[0] < w[1]) && r.body["pagination"]["has_next"] == true);
}

/// A user created at `at`, written as the sign-up writes one.
async fn user_at(db: &sea_orm::DatabaseConnection, at: DateTime<Utc>, status: &str) -> Uuid {
    let id = Uuid::now_v7();
    let mut u = crate::unit_of_work::new_user(id, &format!("{}@example.test", id.simple()));
    u.status = Set(status.into());
    u.created_at = Set(at);
    u.updated_at = Set(at);
    u.insert(db).await.unwrap();
    id
}

/// What analytics counted before the counters: users not deleted created since `since`.
async fn live_since(db: &sea_orm::DatabaseConnection, since: Option<DateTime<Utc>>) -> u64 {
    let mut q = user::Entity::find().filter(user::Column::Status.ne("deleted"));
    if let Some(t) = since {
        q = q.filter(user::Column::CreatedAt.gte(t));
    }
    q.count(db).await.unwrap()
}

async fn analytics_counts_are_exact(b: Backend) {
    let app = TestApp::spawn(b).await;
    let admin = app.admin("root@example.com").await;
    let db = &app.services.state.db;
    let now = Utc::now();
    let hour = |t: DateTime<Utc>| {
        use chrono::DurationRound;
        t.duration_trunc(Duration::hours(1)).unwrap()
    };
    // Around every window's edge, on whole hours, and far away; some deleted or suspended.
    let mut ids = Vec::new();
    for (age, status) in [
        (Duration::days(30) - Duration::minutes(2), "active"),
        (Duration::days(30) + Duration::minutes(2), "active"),
        (Duration::days(7) - Duration::minutes(2), "suspended"),
        (Duration::days(7) + Duration::minutes(2), "active"),
        (Duration::hours(23), "active"),
        (Duration::hours(25), "deleted"),
        (Duration::days(3), "active"),
        (Duration::days(400), "active"),
    ] {
        ids.push(user_at(db, now - age, status).await);
    }
    for t in
        [hour(now - Duration::days(10)), hour(now - Duration::days(2)), hour(now) - Duration::nanoseconds(1)]
    {
        ids.push(user_at(db, t, "active").await);
    }
    signup(&app, "fresh@example.com", "Fresh").await;
    // Changes: a live user deleted (as the API deletes), one removed outright, one revived, one
    // moved in time.
    let deleted = ids[6].to_string();
    let someone = app.rest("DELETE", &format!("/users/{deleted}"), Some(&admin), None).await;
    assert_eq!(someone.status, 204, "{}", someone.body);
    user::Entity::delete_by_id(ids[0]).exec(db).await.unwrap();
    user::Entity::update_many()
        .col_expr(user::Column::Status, sea_orm::sea_query::Expr::value("active"))
        .filter(user::Column::Id.eq(ids[5]))
        .exec(db)
        .await
        .unwrap();
    let mut moved: user::ActiveModel =
        user::Entity::find_by_id(ids[7]).one(db).await.unwrap().unwrap().into();
    moved.created_at = Set(now - Duration::days(5));
    moved.update(db).await.unwrap();

    let today = Utc::now().date_naive();
    let from = today - Duration::days(40);
    let a = app.rest("GET", &format!("/admin/analytics?from={from}&to={today}"), Some(&admin), None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let d: &Value = &a.body["data"];
    let at = Utc::now();
    assert_eq!(d["users_total"], live_since(db, None).await);
    assert_eq!(d["users_total"], 11, "{d}");
    for (field, days) in [("users_new_24h", 1), ("users_new_7d", 7), ("users_new_30d", 30)] {
        assert_eq!(d[field], live_since(db, Some(at - Duration::days(days))).await, "{field}");
    }
    assert_eq!((d["users_new_24h"].as_u64(), d["users_new_7d"].as_u64()), (Some(4), Some(8)), "{d}");
    assert_eq!(d["users_new_30d"], 10, "{d}");
    // The series counts every user created that day, deleted ones too.
    let series = d["series"].as_array().unwrap();
    assert_eq!(series.len(), 41);
    for p in series {
        let day = chrono::NaiveDate::parse_from_str(p["date"].as_str().unwrap(), "%Y-%m-%d").unwrap();
        let start = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
        let n = user::Entity::find()
            .filter(user::Column::CreatedAt.gte(start))
            .filter(user::Column::CreatedAt.lt(start + Duration::days(1)))
            .count(db)
            .await
            .unwrap();
        assert_eq!(p["new_users"], n, "{day}");
    }
    let total: u64 = series.iter().map(|p| p["new_users"].as_u64().unwrap()).sum();
    assert_eq!(total, 12, "every user but the one removed outright");
}
