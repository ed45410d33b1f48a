//! The processes and databases a benchmark run starts: `janua serve` children of this binary
//! and PostgreSQL databases made for one run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// The configuration of a server a bench group runs in its own process, with no limit in its way,
/// over a fresh database: a SQLite file in `dir`, or a new schema of `database_url`. Returns it
/// with the backend's name and the schema.
pub(crate) async fn in_process_config(
    dir: &std::path::Path,
    database_url: Option<&str>,
) -> anyhow::Result<(crate::config::Config, &'static str, Option<String>)> {
    use sea_orm::ConnectionTrait;
    let mut config = crate::config::Config::defaults();
    config.addr = "127.0.0.1:0".parse()?;
    config.master_key = Some(crate::security::secrets::MasterKey::generate().to_base64());
    config.rate_limit_per_minute = 1_000_000_000;
    config.scim_rate_limit_per_minute = 1_000_000_000;
    config.credential_attempts_per_minute = 1_000_000_000;
    config.mail_per_address_per_hour = 1_000_000_000;
    config.mail_per_ip_per_hour = 1_000_000_000;
    config.mail_dir = dir.join("mail");
    match database_url {
        Some(url) => {
            let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let db = sea_orm::Database::connect(url).await?;
            db.execute_unprepared(&format!("CREATE SCHEMA {name}")).await?;
            config.database_url = url.to_owned();
            Ok((config, "PostgreSQL", Some(name)))
        }
        None => {
            config.database_url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
            Ok((config, "SQLite", None))
        }
    }
}

/// Drops a bench's fresh PostgreSQL schema (with everything seeded into it), if it made one.
pub(crate) async fn drop_schema(database_url: Option<&str>, schema: Option<&str>) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait;
    if let (Some(url), Some(name)) = (database_url, schema) {
        let db = sea_orm::Database::connect(url).await?;
        db.execute_unprepared(&format!("DROP SCHEMA {name} CASCADE")).await?;
        db.close().await?;
    }
    Ok(())
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

    /// Drops the database (disconnecting whoever is still on it).
    pub(crate) async fn drop_database(self) -> anyhow::Result<()> {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(&self.admin_url).await?;
        db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await?;
        Ok(())
    }
}

/// A `janua serve` child process; killed (and its temporary directory removed) when dropped.
pub(crate) struct Server {
    child: std::process::Child,
    pub(crate) dir: PathBuf,
    owns_dir: bool,
    pub(crate) base: String,
}

impl Server {
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
            .env("JANUA_MAIL_DIR", dir.join("mail"))
            .env("JANUA_MAIL_PER_ADDRESS_PER_HOUR", "1000000000")
            .env("JANUA_MAIL_PER_IP_PER_HOUR", "1000000000")
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

    /// A `kB` field (`VmRSS:`, `VmHWM:`) of the server's `/proc/<pid>/status` (0 when unreadable).
    pub(crate) fn status_kib(&self, field: &str) -> u64 {
        crate::memory::process_status_kib(&self.child.id().to_string(), field)
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
