//! `janua` as a child process, for the tests that need a real process to kill, signal or run
//! beside another (faults, shutdown, crash recovery, key rotation): a free port, the command
//! with the test settings every child shares, its database settings over a temp dir, and the
//! wait until it is ready.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::TempDir;

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `janua <args>` with what every child shares: cheap hashing, limits no test reaches, loopback
/// webhooks allowed, and its logs hidden unless `JANUA_TEST_CHILD_LOGS` is set (then shown, at
/// that filter, to see a failure's cause).
pub fn janua(args: &[&str]) -> Command {
    let logs = std::env::var("JANUA_TEST_CHILD_LOGS").ok();
    let out = || if logs.is_some() { Stdio::inherit() } else { Stdio::null() };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_janua"));
    cmd.args(args)
        .env("JANUA_RATE_LIMIT_PER_MINUTE", "1000000000")
        .env("JANUA_CREDENTIAL_ATTEMPTS_PER_MINUTE", "1000000000")
        .env("JANUA_LOCKOUT_THRESHOLD", "1000000")
        .env("JANUA_MAIL_PER_ADDRESS_PER_HOUR", "1000000000")
        .env("JANUA_MAIL_PER_IP_PER_HOUR", "1000000000")
        .env("JANUA_ARGON2_MEMORY_KIB", "8192")
        .env("JANUA_ARGON2_ITERATIONS", "1")
        .env("JANUA_WEBHOOK_ALLOW_LOOPBACK", "true")
        .env("RUST_LOG", logs.clone().filter(|l| l != "1").unwrap_or_else(|| "error".into()))
        .stdout(out())
        .stderr(out());
    cmd
}

/// `janua serve` on `port`.
pub fn serve_on(port: u16) -> Command {
    let mut cmd = janua(&["serve"]);
    cmd.env("JANUA_ADDR", format!("127.0.0.1:{port}"));
    cmd
}

/// The SQLite file of `dir` as a database URL.
pub fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.0.join("janua.db").display())
}

/// Points `cmd` at the SQLite database, key file and mail folder of `dir`, opened with `key`.
pub fn over_sqlite<'a>(cmd: &'a mut Command, dir: &TempDir, key: &str) -> &'a mut Command {
    cmd.env("DATABASE_URL", sqlite_url(dir))
        .env("JANUA_MASTER_KEY", key)
        .env("JANUA_MASTER_KEY_FILE", dir.0.join("janua.key"))
        .env("JANUA_MAIL_DIR", dir.0.join("mail"))
}

/// Waits until `base`'s `/ready` answers 200 (at most a minute).
pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/ready")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "janua did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
