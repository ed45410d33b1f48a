//! `janua bench --only directory`: list latency at 10,000 and 1,000,000 users (issue figures):
//! p50 of the first page, a page deep in the list (by cursor) and a search, and the latency of
//! `GET /api/v1/admin/analytics`. Each size gets a fresh database (a temporary SQLite file, or a
//! fresh schema of `--database-url`), is seeded in bulk, then served in-process over loopback.

use std::time::{Duration, Instant};

use entities::user;
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder, QuerySelect};

use super::client::signin;
use super::stats::{elapsed_ms, percentile, sorted};

use crate::app::App;
use crate::config::Config;
use crate::domain::lists::{encode_cursor, time_value};
use crate::security::secrets::MasterKey;

const ADMIN: &str = "bench-admin@example.com";
const ADMIN_PASSWORD: &str = "bench admin passphrase";

/// Latencies of one list size.
pub struct SizeFigures {
    pub users: u64,
    pub seed_secs: f64,
    pub first_page_ms: f64,
    pub deep_page_ms: f64,
    pub search_ms: f64,
    pub analytics_ms: f64,
}

/// The median latency of `n` authenticated GETs of `url`.
async fn p50(client: &reqwest::Client, url: &str, token: &str, n: usize) -> anyhow::Result<f64> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client.get(url).bearer_auth(token).send().await?;
        anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
        r.bytes().await?;
        v.push(elapsed_ms(t));
    }
    Ok(percentile(&sorted(v), 0.5))
}

/// Seeds `users` users into a fresh database and measures.
pub async fn measure(database_url: Option<&str>, users: u64, samples: usize) -> anyhow::Result<SizeFigures> {
    let dir = std::env::temp_dir().join(format!("janua-bench-dir-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut config = Config::defaults();
    config.addr = "127.0.0.1:0".parse()?;
    config.master_key = Some(MasterKey::generate().to_base64());
    config.rate_limit_per_minute = 1_000_000_000;
    config.credential_attempts_per_minute = 1_000_000_000;
    let schema = match database_url {
        Some(url) => {
            let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let db = sea_orm::Database::connect(url).await?;
            db.execute_unprepared(&format!("CREATE SCHEMA {name}")).await?;
            config.database_url = url.to_owned();
            Some(name)
        }
        None => {
            config.database_url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
            None
        }
    };
    let app = App::build_with_schema(config, schema.as_deref()).await?;
    let state = app.services.state.clone();
    let seed_start = Instant::now();
    crate::services::bootstrap::seed_users_into(&state.db, users)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let seed_secs = seed_start.elapsed().as_secs_f64();
    if state.db.get_database_backend() == sea_orm::DbBackend::Postgres {
        state.db.execute_unprepared("ANALYZE users").await?;
        // The bulk load updated each hourly counter row once per user it counts: compact the
        // dead versions, as autovacuum does over time for writes spread out like real sign-ups.
        state.db.execute_unprepared("VACUUM (FULL, ANALYZE) user_counts_hourly").await?;
    } else {
        state.db.execute_unprepared("ANALYZE").await?;
    }
    crate::services::bootstrap::create_admin(&state, ADMIN, ADMIN_PASSWORD)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The row in the middle of the default order (created_at desc, id desc) gives the deep cursor.
    let middle = user::Entity::find()
        .order_by_desc(user::Column::CreatedAt)
        .order_by_desc(user::Column::Id)
        .offset(users / 2)
        .limit(1)
        .one(&state.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no middle row"))?;
    let deep_cursor = format!("n.{}", encode_cursor(time_value(&middle.created_at), middle.id));
    let base = format!("http://{}", app.local_addr());
    let server = tokio::spawn(app.run());
    let client = reqwest::Client::new();
    let token = signin(&client, &base, ADMIN, ADMIN_PASSWORD).await?.access;
    let users_url = format!("{base}/api/v1/admin/users?limit=20");
    let figures = SizeFigures {
        users,
        seed_secs,
        first_page_ms: p50(&client, &users_url, &token, samples).await?,
        deep_page_ms: p50(&client, &format!("{users_url}&cursor={deep_cursor}"), &token, samples).await?,
        search_ms: p50(
            &client,
            &format!("{users_url}&search=seed%20user%20{}", users / 3),
            &token,
            samples.min(9),
        )
        .await?,
        analytics_ms: p50(&client, &format!("{base}/api/v1/admin/analytics"), &token, samples.min(9)).await?,
    };
    server.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    super::server::drop_schema(database_url, schema.as_deref()).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(figures)
}

/// Measures each size and prints the table with the large ÷ small ratios.
pub async fn run(database_url: Option<&str>, sizes: &[u64]) -> anyhow::Result<()> {
    let backend = if database_url.is_some() { "PostgreSQL" } else { "SQLite" };
    println!("(directory, {backend}) p50 over 31 requests; search and analytics over 9");
    let mut all = Vec::new();
    for &n in sizes {
        let f = measure(database_url, n, 31).await?;
        println!(
            "  {:>9} users (seeded in {:>6.1} s): first page {:>8.2} ms  deep page {:>8.2} ms  search {:>9.2} ms  analytics {:>9.2} ms",
            f.users, f.seed_secs, f.first_page_ms, f.deep_page_ms, f.search_ms, f.analytics_ms
        );
        all.push(f);
    }
    if let (Some(small), Some(large)) = (all.first(), all.last())
        && all.len() > 1
    {
        println!(
            "  ratio {}÷{}: first page {:.2}, deep page {:.2} (goal ≤ 1.5), search {:.2}",
            large.users,
            small.users,
            large.first_page_ms / small.first_page_ms,
            large.deep_page_ms / small.deep_page_ms,
            large.search_ms / small.search_ms
        );
    }
    Ok(())
}
