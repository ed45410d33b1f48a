//! The auth group of `janua bench` (issue 2): sign-in throughput against the argon2 bound,
//! REST `me` against GraphQL `me`, refresh rotation, RSS; then the webhook and MFA phases on
//! the same server.

use std::time::Duration;

use serde_json::{Value, json};

use super::client::{PASSWORD, post_api, refresh, signup};
use super::server::Server;
use super::stats::load;
use super::{BenchArgs, cores};
use crate::security::passwords::PasswordHasher;

/// A load worker: its client, the server's base URL, and a string it works with (an email or a token).
type Worker = (reqwest::Client, String, String);

/// Runs the group and prints its report.
pub(crate) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let cores = cores();
    let hasher = PasswordHasher::new(19456, 2, 1, cores, 12)?;
    let samples = 10;
    let hash_ms =
        (0..samples).map(|_| hasher.time_one_hash().as_secs_f64()).sum::<f64>() / samples as f64 * 1000.0;
    let bound = cores as f64 / (hash_ms / 1000.0);

    let server = Server::start(args.port)?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    server.wait_ready().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = server.status_kib("VmRSS:");

    // Accounts: one per worker.
    let mut accounts = Vec::new();
    for i in 0..args.concurrency {
        let email = format!("bench{i}@example.com");
        let tokens = signup(&client, &server.base, &email).await?;
        accounts.push((email, tokens.access, tokens.refresh));
    }
    let workers = |pick: fn(&(String, String, String)) -> &String| -> Vec<Worker> {
        accounts.iter().map(|a| (client.clone(), server.base.clone(), pick(a).clone())).collect()
    };

    // (a) sign-in throughput against the argon2 bound.
    let signin_workers: Vec<Worker> = (0..cores * 2)
        .map(|i| (client.clone(), server.base.clone(), accounts[i % accounts.len()].0.clone()))
        .collect();
    let signin = load(signin_workers, args.seconds, |w: Worker| async move {
        let body = json!({"email": w.2, "password": PASSWORD});
        let ok = post_api(&w.0, &w.1, "/auth/signin", None, body).await.is_some();
        (w, ok)
    })
    .await;
    let peak_rss = server.status_kib("VmHWM:");

    // (b) GET /api/v1/auth/me vs GraphQL `me`, same connections, same tokens, same fields.
    let rest_me = load(workers(|a| &a.1), args.seconds, |w: Worker| async move {
        let r = w.0.get(format!("{}/api/v1/auth/me", w.1)).bearer_auth(&w.2).send().await;
        let ok = match r {
            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
            _ => false,
        };
        (w, ok)
    })
    .await;
    let gql_me = load(workers(|a| &a.1), args.seconds, |w: Worker| async move {
        let q = json!({"query": "{ me { id email name firstName lastName username avatarUrl locale metadata status isAdmin emailVerified lastSigninAt createdAt updatedAt } }"});
        let r = w.0.post(format!("{}/graphql", w.1)).bearer_auth(&w.2).json(&q).send().await;
        let ok = match r {
            Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["errors"].is_null()),
            Err(_) => false,
        };
        (w, ok)
    })
    .await;

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
    let webhooks = super::webhooks::phase(&client, &server.base, args.seconds).await?;

    let mfa = super::mfa::phase(&server.base, &client, bound, args.seconds).await?;
    println!(
        "Janua benchmark ({} cores, {} s per phase, {} connections)",
        cores, args.seconds, args.concurrency
    );
    println!("(a) argon2id m=19456 t=2 p=1: {hash_ms:.1} ms/hash → bound {bound:.1} sign-ins/s");
    println!("    sign-in ({} clients): {signin}", cores * 2);
    println!(
        "    sign-in / bound = {:.2} (goal ≥ 0.9); peak RSS {:.1} MB",
        signin.rps / bound,
        peak_rss as f64 / 1024.0
    );
    println!("(b) REST GET /api/v1/auth/me: {rest_me}");
    println!("    GraphQL me:               {gql_me}");
    println!("    REST / GraphQL = {:.2} (goal ≥ 0.85)", rest_me.rps / gql_me.rps);
    println!("(c) refresh: {refresh} (goal ≥ 2000 req/s)");
    println!("(d) idle RSS: {:.1} MB (goal < 30 MB)", idle_rss as f64 / 1024.0);
    println!("{webhooks}");
    mfa.iter().for_each(|l| println!("{l}"));
    Ok(())
}
