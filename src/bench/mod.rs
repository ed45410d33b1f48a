//! `janua bench`: starts release servers of this same binary (on a temporary SQLite file, or a
//! fresh PostgreSQL database or schema of `--database-url`), drives them over HTTP from this
//! process, and prints the figures the issues ask for in one run. It is a measurement, not a
//! test: nothing here runs under `cargo test`. One file per group; `server`, `client` and
//! `stats` hold what the groups share.

use std::time::Duration;

mod auth;
mod client;
mod directory;
mod light;
mod mail;
mod mfa;
mod scim;
mod server;
pub mod smtp_sink;
mod stats;
mod subscriptions;
mod timing;
mod webhooks;

/// Benchmark options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Seconds each load phase runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent connections for the `me` and refresh phases.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Port of the server the benchmark starts.
    #[arg(long, default_value_t = 18080)]
    pub port: u16,
    /// Run one group only.
    #[arg(long, value_enum)]
    pub only: Option<BenchGroup>,
    /// List sizes for the directory group.
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    pub users: Vec<u64>,
    /// Database for the auth, directory and subscriptions groups (default: a temporary SQLite file);
    /// a PostgreSQL URL gets a fresh schema per size, or a fresh database for subscriptions.
    #[arg(long)]
    pub database_url: Option<String>,
    /// WebSocket subscribers held open in the subscriptions group.
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: usize,
    /// Revocations measured per placement in the subscriptions group.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Subscriptions group: the clients read every message as a WebSocket message (tungstenite)
    /// instead of as bytes off the socket (their CPU shares the cores with the servers').
    #[arg(long)]
    pub parse_messages: bool,
    /// Subscriptions group: the clients look for messages every this many milliseconds (0: each
    /// message wakes them).
    #[arg(long, default_value_t = 1)]
    pub client_tick_ms: u64,
    /// SCIM group: users created over HTTP, one after another.
    #[arg(long, default_value_t = 10_000)]
    pub scim_creates: u64,
    /// SCIM group: SCIM users in the organization when the filter is timed.
    #[arg(long, default_value_t = 100_000)]
    pub scim_users: u64,
    /// Mail group: forgot-password requests timed per kind of address (known, unknown).
    #[arg(long, default_value_t = 500)]
    pub mail_requests: usize,
    /// Mail group: mails in the backlog the worker sends to the local sink.
    #[arg(long, default_value_t = 2000)]
    pub mails: usize,
    /// Auth group: drive this running server (its base URL) instead of starting one. It must
    /// run with the benchmark's limits out of the way (JANUA_RATE_LIMIT_PER_MINUTE and
    /// JANUA_CREDENTIAL_ATTEMPTS_PER_MINUTE high) and a finite JANUA_LOCKOUT_THRESHOLD.
    #[arg(long)]
    pub url: Option<String>,
    /// Auth group: rounds of the refused sign-in timing (one unknown email, one wrong password
    /// and one locked account each).
    #[arg(long, default_value_t = 200)]
    pub timing_rounds: usize,
    /// Redis for the auth group's server (with `--database-url`: PostgreSQL + Redis), and for
    /// the subscriptions group (two nodes share it); the group is skipped without it.
    #[arg(long, env = "JANUA_BENCH_REDIS_URL")]
    pub redis_url: Option<String>,
}

/// Groups of figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchGroup {
    /// Sign-in, me, refresh, RSS, refused sign-in timing (issues 2, 18, 19).
    Auth,
    /// List latency at scale, analytics (issue 3).
    Directory,
    /// Revocation → event at every WebSocket subscriber, on one node and across two (issue 5).
    Subscriptions,
    /// SCIM creates from one client, and a `userName` filter at 100,000 users (issue 16).
    Scim,
    /// Forgot-password time for known vs unknown addresses, mails/s to a local SMTP sink (issue 17).
    Mail,
}

/// Runs the chosen groups and prints the report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let wants = |g: BenchGroup| args.only.is_none_or(|o| o == g);
    if wants(BenchGroup::Auth) {
        auth::run(&args).await?;
    }
    if wants(BenchGroup::Directory) {
        directory::run(args.database_url.as_deref(), &args.users).await?;
    }
    if wants(BenchGroup::Scim) {
        scim::run(args.database_url.as_deref(), args.scim_creates, args.scim_users).await?;
    }
    if wants(BenchGroup::Mail) {
        mail::run(args.database_url.as_deref(), args.mail_requests, args.mails).await?;
    }
    if wants(BenchGroup::Subscriptions) {
        match &args.redis_url {
            Some(redis) => {
                let load = subscriptions::Load {
                    subscribers: args.subscribers,
                    rounds: args.rounds,
                    parse: args.parse_messages,
                    tick: (args.client_tick_ms > 0).then(|| Duration::from_millis(args.client_tick_ms)),
                };
                let lines =
                    subscriptions::run(load, args.port + 10, redis, args.database_url.as_deref()).await?;
                lines.iter().for_each(|l| println!("{l}"));
            }
            None => println!("(5) subscriptions: skipped (needs --redis-url or JANUA_BENCH_REDIS_URL)"),
        }
    }
    Ok(())
}

/// The cores this machine offers (2 when unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
