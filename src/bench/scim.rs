//! `janua bench --only scim` (issue 16): 10,000 SCIM user creates from one client (time and
//! rows/s), then `GET /Users?filter=userName eq "…"` p50/p99 once the organization has
//! 100,000 SCIM users (the rest seeded in bulk). A fresh database: a temporary SQLite file, or a
//! fresh schema of `--database-url`.

use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde_json::json;
use uuid::Uuid;

use entities::{org_member, scim_user, scim_user_email, user};

use super::client::signin;
use super::stats::{elapsed_ms, percentile, sorted};
use crate::app::App;
use crate::services::unit_of_work::Write;

const ADMIN: &str = "bench-admin@example.com";
const ADMIN_PASSWORD: &str = "bench admin passphrase";

/// Seeds SCIM users `from..to` of `org` straight into the tables (accounts, memberships, SCIM
/// rows and their addresses), in batches of 1,000.
async fn seed(db: &sea_orm::DatabaseConnection, org: Uuid, from: u64, to: u64) -> anyhow::Result<()> {
    let now = Utc::now();
    let mut i = from;
    while i < to {
        let end = (i + 1000).min(to);
        let (mut users, mut members, mut rows, mut emails) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for n in i..end {
            let (uid, rid) = (Uuid::now_v7(), Uuid::now_v7());
            let email = format!("seed{n}@bench.example.com");
            users.push(user::ActiveModel {
                id: Set(uid),
                email: Set(email.clone()),
                password_hash: Set(None),
                name: Set(Some(format!("Seed {n}"))),
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
            });
            members.push(org_member::ActiveModel {
                id: Set(Uuid::now_v7()),
                organization_id: Set(org),
                user_id: Set(uid),
                role: Set("member".into()),
                joined_at: Set(now),
            });
            let doc = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": email, "externalId": format!("ext-{n}"), "active": true,
                "emails": [{"value": email, "type": "work", "primary": true}],
            });
            rows.push(scim_user::ActiveModel {
                id: Set(rid),
                organization_id: Set(org),
                user_id: Set(uid),
                external_id: Set(Some(format!("ext-{n}"))),
                user_name: Set(email.clone()),
                user_name_lc: Set(email.clone()),
                display_name: Set(None),
                given_name: Set(None),
                family_name: Set(None),
                active: Set(true),
                locale: Set(None),
                employee_number: Set(None),
                department: Set(None),
                manager_id: Set(None),
                attributes: Set(doc),
                provisioned: Set(true),
                version: Set(1),
                created_at: Set(now),
                updated_at: Set(now),
            });
            emails.push(scim_user_email::ActiveModel {
                id: Set(Uuid::now_v7()),
                scim_user_id: Set(rid),
                value_lc: Set(email),
                kind: Set(Some("work".into())),
                is_primary: Set(true),
            });
        }
        let w = Write::begin_on(db).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        user::Entity::insert_many(users).exec_without_returning(w.tx()).await?;
        org_member::Entity::insert_many(members).exec_without_returning(w.tx()).await?;
        scim_user::Entity::insert_many(rows).exec_without_returning(w.tx()).await?;
        scim_user_email::Entity::insert_many(emails).exec_without_returning(w.tx()).await?;
        w.commit().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        i = end;
    }
    Ok(())
}

/// Runs the SCIM group and prints its lines.
pub async fn run(database_url: Option<&str>, creates: u64, total: u64) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("janua-bench-scim-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let (config, backend, schema) = super::server::in_process_config(&dir, database_url).await?;
    let app = App::build_with_schema(config, schema.as_deref()).await?;
    let state = app.services.state.clone();
    crate::services::bootstrap::create_admin(&state, ADMIN, ADMIN_PASSWORD)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = format!("http://{}", app.local_addr());
    let server = tokio::spawn(app.run());
    let client = reqwest::Client::new();
    let admin = signin(&client, &base, ADMIN, ADMIN_PASSWORD).await?.access;
    let org: serde_json::Value = client
        .post(format!("{base}/api/v1/organizations"))
        .bearer_auth(&admin)
        .json(&json!({"name": "SCIM bench"}))
        .send()
        .await?
        .json()
        .await?;
    let org_id =
        org["data"]["id"].as_str().ok_or_else(|| anyhow::anyhow!("no organization: {org}"))?.to_owned();
    let t: serde_json::Value = client
        .post(format!("{base}/api/v1/organizations/{org_id}/scim/tokens"))
        .bearer_auth(&admin)
        .json(&json!({"name": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    let token = t["data"]["token"].as_str().ok_or_else(|| anyhow::anyhow!("no SCIM token: {t}"))?.to_owned();
    let scim = format!("{base}/api/v1/scim/v2");

    // 10,000 creates, one after another from one client.
    let start = Instant::now();
    for n in 0..creates {
        let email = format!("created{n}@bench.example.com");
        let r = client
            .post(format!("{scim}/Users"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .json(&json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": email, "externalId": format!("c-{n}"), "active": true,
                "name": {"givenName": "Bench", "familyName": format!("User {n}")},
                "emails": [{"value": email, "type": "work", "primary": true}],
            }))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "create {n}: {} {}", r.status(), r.text().await?);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "(scim, {backend}) {creates} creates from one client: {secs:.1} s, {:.0} users/s",
        creates as f64 / secs
    );

    let org_uuid = Uuid::parse_str(&org_id)?;
    let seed_start = Instant::now();
    seed(&state.db, org_uuid, creates, total).await?;
    state.db.execute_unprepared("ANALYZE").await?;
    println!("  seeded to {total} SCIM users in {:.1} s", seed_start.elapsed().as_secs_f64());

    let mut lat = Vec::new();
    for i in 0..1000u64 {
        let n = (i * 7919) % total;
        let name = if n < creates {
            format!("created{n}@bench.example.com")
        } else {
            format!("seed{n}@bench.example.com")
        };
        let t = Instant::now();
        let r = client
            .get(format!("{scim}/Users"))
            .query(&[("filter", format!("userName eq \"{}\"", name.to_uppercase()))])
            .bearer_auth(&token)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "filter: {}", r.status());
        let body: serde_json::Value = r.json().await?;
        anyhow::ensure!(body["totalResults"] == 1, "filter {name}: {body}");
        lat.push(elapsed_ms(t));
    }
    let lat = sorted(lat);
    println!(
        "  GET /Users?filter=userName eq \"…\" at {total} users: p50 {:.2} ms  p99 {:.2} ms (1,000 requests)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    server.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    super::server::drop_schema(database_url, schema.as_deref()).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
