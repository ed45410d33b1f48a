//! `janua bench`: starts a release server of this same binary on a temporary SQLite file (or
//! measures `--url`), drives it over HTTP from this process, and prints the figures the issues
//! ask for in one run. It is a measurement, not a test: nothing here runs under `cargo test`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::security::passwords::PasswordHasher;

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
    /// Database for the directory and subscriptions groups (default: a temporary SQLite file);
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
    /// Redis for the subscriptions group (two nodes share it); the group is skipped without it.
    #[arg(long, env = "JANUA_BENCH_REDIS_URL")]
    pub redis_url: Option<String>,
}

/// Groups of figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchGroup {
    /// Sign-in, me, refresh, RSS (issue 2).
    Auth,
    /// List latency at scale, analytics (issue 3).
    Directory,
    /// Revocation → event at every WebSocket subscriber, on one node and across two (issue 5).
    Subscriptions,
}

/// CPU time (user + system) of a process, from its `/proc/<pid>/stat`.
pub(crate) fn cpu_of(stat_path: &str) -> Duration {
    let ticks = std::fs::read_to_string(stat_path)
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) in parentheses.
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // Linux reports in clock ticks of 1/100 s (USER_HZ).
    Duration::from_millis(ticks * 10)
}

/// A PostgreSQL database made for one run, dropped afterwards.
pub(crate) struct FreshPostgres {
    admin_url: String,
    name: String,
    pub(crate) url: String,
}

impl FreshPostgres {
    /// Creates a database named `janua_bench_…` on the server of `url`.
    pub(crate) async fn create(url: &str) -> anyhow::Result<Self> {
        use sea_orm::ConnectionTrait;
        let name = format!("janua_bench_{}", uuid::Uuid::new_v4().simple());
        let db = sea_orm::Database::connect(url).await?;
        db.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
        db.close().await?;
        let (server, rest) =
            url.rsplit_once('/').ok_or_else(|| anyhow::anyhow!("not a database URL: {url}"))?;
        let query = rest.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
        Ok(Self { admin_url: url.to_owned(), url: format!("{server}/{name}{query}"), name })
    }

    pub(crate) async fn drop_database(self) -> anyhow::Result<()> {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(&self.admin_url).await?;
        db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await?;
        Ok(())
    }
}

pub(crate) struct Server {
    child: std::process::Child,
    pub(crate) dir: PathBuf,
    owns_dir: bool,
    pub(crate) base: String,
}

impl Server {
    fn start(port: u16) -> anyhow::Result<Self> {
        Self::start_with(port, None, &[])
    }

    /// Starts `janua serve` on `port` over `dir` (its database and master key; a new temporary
    /// directory when `None`), with `env` added to the benchmark defaults.
    pub(crate) fn start_with(
        port: u16,
        dir: Option<&std::path::Path>,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let (dir, owns_dir) = match dir {
            Some(d) => (d.to_path_buf(), false),
            None => {
                let d = std::env::temp_dir().join(format!("janua-bench-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&d)?;
                (d, true)
            }
        };
        let child = std::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .env("JANUA_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()))
            .env("JANUA_MASTER_KEY_FILE", dir.join("janua.key"))
            .env("JANUA_RATE_LIMIT_PER_MINUTE", "1000000000")
            .env("JANUA_CREDENTIAL_ATTEMPTS_PER_MINUTE", "1000000000")
            .env("JANUA_LOCKOUT_THRESHOLD", "1000000")
            .env("JANUA_WEBHOOK_ALLOW_LOOPBACK", "true")
            .env("RUST_LOG", "warn")
            // The servers run with their own defaults, whatever runtime this process was given.
            .env_remove("TOKIO_WORKER_THREADS")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .spawn()?;
        Ok(Self { child, dir, owns_dir, base: format!("http://127.0.0.1:{port}") })
    }

    /// Waits until `/ready` answers 200 (30 s at most).
    pub(crate) async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client.get(format!("{}/ready", self.base)).send().await.map(|r| r.status().is_success()).ok()
            != Some(true)
        {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// CPU time the server process has used (user + system).
    pub(crate) fn cpu(&self) -> Duration {
        cpu_of(&format!("/proc/{}/stat", self.child.id()))
    }

    pub(crate) fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
            })
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Latency figures of one load phase.
struct Phase {
    requests: usize,
    errors: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests, {} errors)",
            self.rps, self.p50_ms, self.p99_ms, self.requests, self.errors
        )
    }
}

/// Runs `workers` loops of `step` for `seconds`; a step takes the worker's state and gives it
/// back with whether the request succeeded.
async fn load<S, F, Fut>(workers: Vec<S>, seconds: u64, step: F) -> Phase
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = (S, bool)> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in workers {
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut w = w;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (next, ok) = step(w).await;
                w = next;
                if !ok {
                    errors += 1;
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.await.unwrap_or_default();
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    Phase {
        requests: all.len(),
        errors,
        rps: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
    }
}

/// The value at quantile `q` (0–1) of `sorted` (0 when empty).
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

/// Sends `method url` (with a bearer token and a JSON body when given); a non-2xx answer is an
/// error naming the status and body. Returns the JSON answer (`Null` when empty).
pub(crate) async fn request(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let mut req = client.request(method.clone(), url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await?;
    let status = r.status();
    let text = r.text().await?;
    anyhow::ensure!(status.is_success(), "{method} {url}: {status} {text}");
    Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
}

async fn post(client: &reqwest::Client, url: &str, body: &Value, bearer: Option<&str>) -> Option<Value> {
    request(client, reqwest::Method::POST, url, bearer, Some(body)).await.ok()
}

/// Runs the chosen groups and prints the report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let wants = |g: BenchGroup| args.only.is_none_or(|o| o == g);
    if wants(BenchGroup::Auth) {
        run_auth(&args).await?;
    }
    if wants(BenchGroup::Directory) {
        crate::bench_directory::run(args.database_url.as_deref(), &args.users).await?;
    }
    if wants(BenchGroup::Subscriptions) {
        match &args.redis_url {
            Some(redis) => {
                let load = crate::bench_subscriptions::Load {
                    subscribers: args.subscribers,
                    rounds: args.rounds,
                    parse: args.parse_messages,
                    tick: (args.client_tick_ms > 0).then(|| Duration::from_millis(args.client_tick_ms)),
                };
                let lines = crate::bench_subscriptions::run(
                    load,
                    args.port + 10,
                    redis,
                    args.database_url.as_deref(),
                )
                .await?;
                lines.iter().for_each(|l| println!("{l}"));
            }
            None => println!("(5) subscriptions: skipped (needs --redis-url or JANUA_BENCH_REDIS_URL)"),
        }
    }
    Ok(())
}

async fn run_auth(args: &BenchArgs) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
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
    let n_users = args.concurrency;
    let mut accounts = Vec::new();
    for i in 0..n_users {
        let email = format!("bench{i}@example.com");
        let body = json!({"email": email, "password": "bench passphrase 2026"});
        let v = post(&client, &format!("{}/api/v1/auth/signup", server.base), &body, None)
            .await
            .ok_or_else(|| anyhow::anyhow!("signup failed"))?;
        let access = v["data"]["tokens"]["access_token"].as_str().unwrap_or_default().to_owned();
        let refresh = v["data"]["tokens"]["refresh_token"].as_str().unwrap_or_default().to_owned();
        accounts.push((email, access, refresh));
    }

    // (a) sign-in throughput against the argon2 bound.
    let signin_workers: Vec<_> = (0..cores * 2)
        .map(|i| (client.clone(), server.base.clone(), accounts[i % accounts.len()].0.clone()))
        .collect();
    let signin = load(signin_workers, args.seconds, |w: (reqwest::Client, String, String)| async move {
        let body = json!({"email": w.2, "password": "bench passphrase 2026"});
        let ok = post(&w.0, &format!("{}/api/v1/auth/signin", w.1), &body, None).await.is_some();
        (w, ok)
    })
    .await;
    let peak_rss = server.status_kib("VmHWM:");

    // (b) GET /api/v1/auth/me vs GraphQL `me`, same connections, same tokens, same fields.
    let me_workers = |accounts: &[(String, String, String)]| -> Vec<(reqwest::Client, String, String)> {
        accounts.iter().map(|a| (client.clone(), server.base.clone(), a.1.clone())).collect()
    };
    let rest_me =
        load(me_workers(&accounts), args.seconds, |w: (reqwest::Client, String, String)| async move {
            let r = w.0.get(format!("{}/api/v1/auth/me", w.1)).bearer_auth(&w.2).send().await;
            let ok = match r {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            (w, ok)
        })
        .await;
    let gql_me = load(me_workers(&accounts), args.seconds, |w: (reqwest::Client, String, String)| async move {
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
    let refresh_workers: Vec<_> =
        accounts.iter().map(|a| (client.clone(), server.base.clone(), a.2.clone())).collect();
    let refresh =
        load(refresh_workers, args.seconds, |mut w: (reqwest::Client, String, String)| async move {
            let body = json!({"refresh_token": w.2});
            match post(&w.0, &format!("{}/api/v1/auth/refresh", w.1), &body, None).await {
                Some(v) => {
                    w.2 = v["data"]["tokens"]["refresh_token"].as_str().unwrap_or_default().to_owned();
                    (w, true)
                }
                None => (w, false),
            }
        })
        .await;
    let webhooks = crate::bench_webhooks::phase(&client, &server.base, args.seconds).await?;

    let mfa = crate::bench_mfa::phase(&server.base, &client, bound, args.seconds).await?;
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
