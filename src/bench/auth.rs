//! The auth group of `janua bench` (issues 2 and 19): against a `janua serve` child of this
//! binary (SQLite, or PostgreSQL with `--database-url`, Redis with `--redis-url`) or a running
//! server (`--url`), driven over HTTP from this process at `--concurrency` connections: sign-in
//! against the argon2 bound, REST `me` against GraphQL `me` and the token-verification bound,
//! refresh rotation, RSS (the `me` phases from the light client of `light`); then the refused
//! sign-in timing (`timing`), and the webhook and MFA phases on the same server. The bounds are measured in the same run.

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use super::client::{PASSWORD, post_api, refresh, signup};
use super::light::Repeater;
use super::server::{FreshPostgres, Server};
use super::stats::{load, on_one_thread};
use super::{BenchArgs, cores};
use crate::security::passwords::PasswordHasher;
use crate::security::tokens::KeyStore;

/// A load worker: its client, the server's base URL, and a string it works with (an email or a token).
type Worker = (reqwest::Client, String, String);

/// One light-client connection per access token, repeating `method path` with it.
async fn repeaters(
    tokens: &[String],
    base: &str,
    method: Method,
    path: &str,
    body: &'static str,
) -> anyhow::Result<Vec<Repeater>> {
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        out.push(
            Repeater::open(base, method.clone(), path, t, bytes::Bytes::from_static(body.as_bytes())).await?,
        );
    }
    Ok(out)
}

/// The server the group drives: one it started (killed when dropped, with its fresh
/// PostgreSQL database when it has one), or a running one (`--url`).
struct Target {
    base: String,
    started: Option<Server>,
    fresh: Option<FreshPostgres>,
}

impl Target {
    /// Starts `janua serve` on `port` over SQLite, or over a fresh database of `--database-url`
    /// (and Redis with `--redis-url`), with `env` added.
    async fn start(args: &BenchArgs, port: u16, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut vars: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let fresh = match &args.database_url {
            Some(url) => Some(FreshPostgres::create(url).await?),
            None => None,
        };
        if let Some(db) = &fresh {
            vars.push(("DATABASE_URL".into(), db.url.clone()));
        }
        if let Some(redis) = &args.redis_url {
            vars.push(("REDIS_URL".into(), redis.clone()));
            let prefix = format!("janua-bench-{}:", uuid::Uuid::new_v4().simple());
            vars.push(("JANUA_REDIS_PREFIX".into(), prefix));
        }
        let server = Server::start_with(port, None, &vars)?;
        server.wait_ready().await?;
        Ok(Self { base: server.base.clone(), started: Some(server), fresh })
    }

    /// Kills the server and drops its database.
    async fn finish(mut self) -> anyhow::Result<()> {
        drop(self.started.take());
        if let Some(db) = self.fresh.take() {
            db.drop_database().await?;
        }
        Ok(())
    }

    /// A `kB` field of the started server's `/proc` status (`None` for a running server).
    fn kib(&self, field: &str) -> Option<f64> {
        self.started.as_ref().map(|s| s.status_kib(field) as f64 / 1024.0)
    }
}

/// `12.3 MB`, or why there is no figure.
fn mb(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a (--url: not our process)".to_owned(), |v| format!("{v:.1} MB"))
}

/// Runs the group and prints its report.
pub(crate) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let cores = cores();
    // The bounds this run divides by, measured here: one argon2 hash, one token verification.
    let hasher = PasswordHasher::new(19456, 2, 1, cores, 12)?;
    let samples = 10;
    // Each thread hashes once untimed first: its working memory is made then and kept, as a hash
    // thread of the server keeps its own (the first hash of a thread also faults it in).
    hasher.time_one_hash();
    let hash_ms =
        (0..samples).map(|_| hasher.time_one_hash().as_secs_f64()).sum::<f64>() / samples as f64 * 1000.0;
    let bound = cores as f64 / (hash_ms / 1000.0);
    // The same hashes on every core at once, nothing else running: what the cores give when
    // they share memory bandwidth and caches (19 MiB a hash), as sign-ins have to.
    let together = {
        let per_core = 10;
        let ready = std::sync::Barrier::new(cores + 1);
        let start = std::thread::scope(|s| {
            for _ in 0..cores {
                s.spawn(|| {
                    hasher.time_one_hash();
                    ready.wait();
                    for _ in 0..per_core {
                        hasher.time_one_hash();
                    }
                });
            }
            ready.wait();
            // The clock starts as the threads pass the barrier; it is read once the scope has
            // joined them.
            std::time::Instant::now()
        });
        (cores * per_core) as f64 / start.elapsed().as_secs_f64()
    };
    let verify_us = KeyStore::time_one_verification(2000)?.as_secs_f64() * 1e6;
    let me_bound = cores as f64 / (verify_us / 1e6);

    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let target = match &args.url {
        Some(url) => Target { base: url.trim_end_matches('/').to_owned(), started: None, fresh: None },
        None => Target::start(args, args.port, &[]).await?,
    };
    let backend = match (&args.url, &args.database_url, &args.redis_url) {
        (Some(url), _, _) => format!("running server {url}"),
        (None, Some(_), Some(_)) => "PostgreSQL + Redis".to_owned(),
        (None, Some(_), None) => "PostgreSQL".to_owned(),
        (None, None, Some(_)) => "SQLite + Redis".to_owned(),
        (None, None, None) => "SQLite".to_owned(),
    };
    let base = target.base.clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = target.kib("VmRSS:");

    // Accounts: one per connection.
    let mut accounts = Vec::new();
    for i in 0..args.concurrency {
        let email = format!("bench-{run_id}-{i}@example.com");
        let tokens = signup(&client, &base, &email).await?;
        accounts.push((email, tokens.access, tokens.refresh));
    }
    let workers = |pick: fn(&(String, String, String)) -> &String| -> Vec<Worker> {
        accounts.iter().map(|a| (client.clone(), base.clone(), pick(a).clone())).collect()
    };

    // (a) sign-in at the same connections as the other phases, each its own account.
    let signin = load(workers(|a| &a.0), args.seconds, |w: Worker| async move {
        let body = json!({"email": w.2, "password": PASSWORD});
        let ok = post_api(&w.0, &w.1, "/auth/signin", None, body).await.is_some();
        (w, ok)
    })
    .await;
    let peak_rss = target.kib("VmHWM:");

    // (b) GET /api/v1/auth/me vs GraphQL `me`, same connections, same tokens, same fields, from
    // the light client on one thread of its own (one connection per worker, the request built
    // once).
    let tokens: Vec<String> = accounts.iter().map(|a| a.1.clone()).collect();
    let (b, t, seconds) = (base.clone(), tokens.clone(), args.seconds);
    let rest_me = on_one_thread(move || async move {
        let conns = repeaters(&t, &b, Method::GET, "/api/v1/auth/me", "").await?;
        Ok(load(conns, seconds, |mut r: Repeater| async move {
            let ok = r.send().await.is_some();
            (r, ok)
        })
        .await)
    })
    .await?;
    let q = r#"{"query":"{ me { id email name firstName lastName username avatarUrl locale metadata status isAdmin emailVerified lastSigninAt createdAt updatedAt } }"}"#;
    let b = base.clone();
    let gql_me = on_one_thread(move || async move {
        let conns = repeaters(&tokens, &b, Method::POST, "/graphql", q).await?;
        Ok(load(conns, seconds, |mut r: Repeater| async move {
            let ok = r
                .send()
                .await
                .is_some_and(|b| serde_json::from_slice::<Value>(&b).is_ok_and(|v| v["errors"].is_null()));
            (r, ok)
        })
        .await)
    })
    .await?;

    // (c) refresh: each worker follows its own rotation chain.
    let refresh = load(workers(|a| &a.2), args.seconds, |mut w: Worker| async move {
        match refresh(&w.0, &w.1, &w.2).await {
            Some(next) => {
                w.2 = next;
                (w, true)
            }
            None => (w, false),
        }
    })
    .await;
    let n = args.concurrency as f64;
    println!(
        "Janua benchmark, auth group ({backend}; {cores} cores, {} s per phase, {} connections)",
        args.seconds, args.concurrency
    );
    println!("bounds measured in this run:");
    println!("    argon2id m=19456 t=2 p=1: {hash_ms:.1} ms/hash → {bound:.1} sign-ins/s on {cores} cores");
    println!(
        "    argon2id on all {cores} cores at once: {together:.1} hashes/s = {:.2} of that bound",
        together / bound
    );
    println!(
        "    access-token verification (Ed25519): {verify_us:.1} µs → {me_bound:.0} req/s on {cores} cores"
    );
    println!("(a) sign-in ({} connections): {signin}", args.concurrency);
    println!(
        "    sign-in / bound = {:.2} (goal ≥ 0.9; / hashes on all cores at once = {:.2}); p99 {:.0} ms vs 1.5 × {n} ÷ bound = {:.0} ms; peak RSS {} (goal ≤ {:.0} MB)",
        signin.rps / bound,
        signin.rps / together,
        signin.p99_ms,
        1.5 * n / bound * 1000.0,
        mb(peak_rss),
        cores as f64 * 19.0 + 40.0,
    );
    println!("(b) REST GET /api/v1/auth/me: {rest_me}");
    println!("    GraphQL me:               {gql_me}");
    println!(
        "    REST / GraphQL = {:.2} (goal ≥ 0.85); REST / verification bound = {:.2} (goal ≥ 0.5)",
        rest_me.rps / gql_me.rps,
        rest_me.rps / me_bound
    );
    println!(
        "(c) refresh ({} chains): {refresh} (goal ≥ 2000 req/s SQLite, ≥ 1500 PostgreSQL)",
        args.concurrency
    );
    println!("(d) idle RSS: {} (goal < 30 MB)", mb(idle_rss));

    // (t) refused sign-ins, on a server with a finite lockout threshold (ours runs with none in
    // the way of the load phases, so the phase gets its own).
    let timing = match &args.url {
        Some(_) => super::timing::phase(&client, &base, &run_id, args.timing_rounds).await?,
        None => {
            let t = Target::start(args, args.port + 2, &[("JANUA_LOCKOUT_THRESHOLD", "5")]).await?;
            let lines = super::timing::phase(&client, &t.base, &run_id, args.timing_rounds).await;
            t.finish().await?;
            lines?
        }
    };
    timing.iter().for_each(|l| println!("{l}"));

    if args.url.is_some() {
        println!("(webhooks, MFA) skipped with --url (they need the server's loopback webhooks)");
        return Ok(());
    }
    let webhooks = super::webhooks::phase(&client, &base, args.seconds).await?;
    let mfa = super::mfa::phase(&base, &client, bound, args.seconds).await?;
    println!("{webhooks}");
    mfa.iter().for_each(|l| println!("{l}"));
    target.finish().await?;
    Ok(())
}
