//! Faults with real processes (issue 18 item 5): a private PostgreSQL restarted and its
//! connections terminated under load, a `janua serve` SIGKILLed during a sign-up flood, SQLite
//! on a full disk, a private Redis killed under load between two nodes. Each test starts its own
//! database or Redis process (never the shared ones) and skips with a printed reason when the
//! binaries (or, for the full disk, a small filesystem) are missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use janua::security::secrets::MasterKey;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Resp, TempDir};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub use crate::process::free_port;

fn skip(reason: &str) {
    eprintln!("\nfault test skipped: {reason}");
}

/// A `janua serve` child process.
pub struct Janua {
    child: Child,
    pub base: String,
    port: u16,
    env: Vec<(String, String)>,
}

impl Drop for Janua {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Janua {
    /// Starts `janua serve` with `env` (on top of generous limits and cheap hashing) and
    /// waits until `/ready` answers 200.
    pub async fn start(env: &[(&str, String)], client: &reqwest::Client) -> Self {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        Self::spawn(free_port(), env, client).await
    }

    async fn spawn(port: u16, env: Vec<(String, String)>, client: &reqwest::Client) -> Self {
        let mut cmd = crate::process::serve_on(port);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start janua");
        let base = format!("http://127.0.0.1:{port}");
        crate::process::wait_ready(client, &base).await;
        Self { child, base, port, env }
    }

    /// SIGKILLs the process (no shutdown of any kind).
    pub fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL janua");
        self.child.wait().unwrap();
    }

    /// Starts the same configuration again on the same port.
    pub async fn restart(mut self, client: &reqwest::Client) -> Self {
        self.sigkill();
        let (port, env) = (self.port, std::mem::take(&mut self.env));
        drop(self);
        Self::spawn(port, env, client).await
    }

    pub async fn call(
        &self,
        client: &reqwest::Client,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Resp, reqwest::Error> {
        let mut req = client.request(method.parse().unwrap(), format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Ok(Resp::from(req.send().await?).await)
    }
}

/// A private PostgreSQL cluster in a temp dir on a free port, run as `postgres`.
pub struct PrivatePg {
    pub dir: PathBuf,
    pub port: u16,
}

impl PrivatePg {
    /// `None` (with the reason printed) when the binaries are missing or initdb fails.
    pub fn start() -> Option<Self> {
        if !Path::new(PG_BIN).join("initdb").exists()
            || Command::new("runuser").arg("--help").output().is_err()
        {
            skip(&format!("no PostgreSQL binaries in {PG_BIN} (or no runuser)"));
            return None;
        }
        let dir = std::env::temp_dir().join(format!("janua-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("chown").arg("postgres:postgres").arg(&dir).status().is_ok_and(|s| s.success());
        let init = ok
            && Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(Path::new(PG_BIN).join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-D"])
                .arg(dir.join("data"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !init {
            let _ = std::fs::remove_dir_all(&dir);
            skip("initdb of a private PostgreSQL failed (not root, or no postgres user)");
            return None;
        }
        let pg = Self { dir, port: free_port() };
        pg.ctl(&["start", "-w"]);
        Some(pg)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `pg_ctl <args>` on the cluster; asserts it succeeded.
    pub fn ctl(&self, args: &[&str]) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100",
            self.port,
            self.dir.display()
        );
        let st = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-o", &opts])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "pg_ctl {args:?}");
    }

    /// Runs one SQL statement through psql; returns its output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(Path::new(PG_BIN).join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                sql,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the load saw: responses by status (and code for 5xx), transport errors, and the
/// sign-ups that got a 201.
#[derive(Default)]
struct Tally {
    by_status: BTreeMap<String, usize>,
    bad: Vec<String>,
    created: Vec<String>,
    transport_errors: usize,
}

impl Tally {
    fn note(&mut self, what: &str, r: &Result<Resp, reqwest::Error>) {
        match r {
            Ok(r) => {
                let key =
                    if r.status >= 500 { format!("{} {}", r.status, r.code()) } else { r.status.to_string() };
                *self.by_status.entry(key).or_default() += 1;
                let fine = r.status < 500
                    || (r.status == 503
                        && r.code() == "SERVICE_UNAVAILABLE"
                        && r.headers.get("retry-after").is_some());
                if !fine {
                    self.bad.push(format!("{what}: {} {}", r.status, r.body));
                }
            }
            Err(e) => {
                self.transport_errors += 1;
                self.bad.push(format!("{what}: transport error {e}"));
            }
        }
    }
}

/// Several clients signing up, signing in, writing and reading until `stop`.
async fn drive_load(
    node: Arc<Janua>,
    client: reqwest::Client,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    clients: usize,
) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (node, client, stop, tally) = (node.clone(), client.clone(), stop.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let mut token: Option<(String, String)> = None;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let email = format!("load{c}-{i}@example.com");
                let r = node
                    .call(
                        &client,
                        "POST",
                        "/auth/signup",
                        None,
                        Some(json!({"email": email, "password": PASSWORD})),
                    )
                    .await;
                tally.lock().unwrap().note("signup", &r);
                if let Ok(r) = &r
                    && r.status == 201
                {
                    tally.lock().unwrap().created.push(email.clone());
                    let t = r.body["data"]["tokens"]["access_token"].as_str().unwrap().to_owned();
                    let id = r.body["data"]["user"]["id"].as_str().unwrap().to_owned();
                    token = Some((t, id));
                }
                if let Some((t, id)) = &token {
                    let r = node.call(&client, "GET", "/auth/me", Some(t), None).await;
                    tally.lock().unwrap().note("me", &r);
                    let r = node
                        .call(
                            &client,
                            "PUT",
                            &format!("/users/{id}"),
                            Some(t),
                            Some(json!({"name": format!("N{i}")})),
                        )
                        .await;
                    tally.lock().unwrap().note("update", &r);
                }
                let r = node
                    .call(
                        &client,
                        "POST",
                        "/auth/signin",
                        None,
                        Some(json!({"email": "steady@example.com", "password": PASSWORD})),
                    )
                    .await;
                tally.lock().unwrap().note("signin", &r);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn ready_status(client: &reqwest::Client, node: &Janua) -> u16 {
    client.get(format!("{}/ready", node.base)).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// PostgreSQL restarted (`pg_ctl restart -m fast`), its Janua connections terminated
/// (`pg_terminate_backend`) and stopped for two seconds, all under load from four clients:
/// every response is 2xx/4xx or a 503 `SERVICE_UNAVAILABLE` with `Retry-After` (never a 500),
/// `/ready` says 503 while it is down, Janua recovers without a restart, and every sign-up
/// that got a 201 can sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load_gives_503_then_recovers() {
    let Some(pg) = PrivatePg::start() else { return };
    let (dir, client) = (TempDir::new(), reqwest::Client::new());
    let node = Arc::new(
        Janua::start(
            &[
                ("DATABASE_URL", pg.url()),
                ("JANUA_MASTER_KEY", MasterKey::generate().to_base64()),
                ("JANUA_MAIL_DIR", dir.0.join("mail").display().to_string()),
            ],
            &client,
        )
        .await,
    );
    let r = node
        .call(
            &client,
            "POST",
            "/auth/signup",
            None,
            Some(json!({"email": "steady@example.com", "password": PASSWORD})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let load = tokio::spawn(drive_load(node.clone(), client.clone(), stop.clone(), tally.clone(), 4));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = tally.lock().unwrap().by_status.values().sum::<usize>();
    assert!(before > 0, "the load runs");
    let terminated =
        pg.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pg_ = &pg;
    tokio::task::block_in_place(|| pg_.ctl(&["restart", "-m", "fast", "-w"]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Down for a while: /ready says so, requests get 503s.
    tokio::task::block_in_place(|| pg_.ctl(&["stop", "-m", "fast", "-w"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready_down = ready_status(&client, &node).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    tokio::task::block_in_place(|| pg_.ctl(&["start", "-w"]));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();

    // Back without restarting Janua.
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready_status(&client, &node).await != 200 {
        assert!(Instant::now() < deadline, "/ready back to 200 once PostgreSQL is back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = node
        .call(
            &client,
            "POST",
            "/auth/signup",
            None,
            Some(json!({"email": "after@example.com", "password": PASSWORD})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "a sign-up after recovery: {}", r.body);

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    // No half-written sign-up: every 201 can sign in.
    let mut present = 0;
    for email in &tally.created {
        let r = node
            .call(&client, "POST", "/auth/signin", None, Some(json!({"email": email, "password": PASSWORD})))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{email} got a 201 and must sign in: {}", r.body);
        present += 1;
    }
    eprintln!(
        "\nPostgreSQL faults under load: responses by status {:?}; {} connections terminated; /ready while down: {}; \
         sign-ups with 201: {}, able to sign in afterwards: {present}; transport errors: {}",
        tally.by_status,
        terminated,
        ready_down,
        tally.created.len(),
        tally.transport_errors
    );
    assert_eq!(ready_down, 503, "/ready is 503 while PostgreSQL is down");
    assert!(tally.by_status.contains_key("503 SERVICE_UNAVAILABLE"), "the outage was seen as 503s");
    assert!(
        tally.bad.is_empty(),
        "{} responses were neither 2xx/4xx nor a 503 SERVICE_UNAVAILABLE with Retry-After: {:#?}",
        tally.bad.len(),
        &tally.bad[..tally.bad.len().min(10)]
    );
}

/// Signs up from `clients` clients until `stop`; the emails that got a 201.
async fn signup_flood(
    base: String,
    client: reqwest::Client,
    clients: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tag: &str,
) -> (Vec<String>, usize) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (base, client, stop, tag) = (base.clone(), client.clone(), stop.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let (mut created, mut failed) = (Vec::new(), 0);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let email = format!("{tag}{c}-{i}@example.com");
                let r = client
                    .post(format!("{base}/api/v1/auth/signup"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 201 => {
                        // Only a complete 201 counts: the body read to its end.
                        if r.bytes().await.is_ok() {
                            created.push(email);
                        }
                    }
                    _ => {
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (created, failed)
        }));
    }
    let (mut created, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (c, f) = t.await.unwrap();
        created.extend(c);
        failed += f;
    }
    (created, failed)
}

/// SIGKILL of `janua serve` in the middle of a sign-up flood from four clients, then a restart
/// on the same database: every sign-up that got a 201 signs in.
async fn sigkill_during_signup_flood(database_url: String, label: &str) {
    let (dir, client) = (TempDir::new(), reqwest::Client::new());
    let mut node = Janua::start(
        &[
            ("DATABASE_URL", database_url),
            ("JANUA_MASTER_KEY", MasterKey::generate().to_base64()),
            ("JANUA_MAIL_DIR", dir.0.join("mail").display().to_string()),
        ],
        &client,
    )
    .await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = tokio::spawn(signup_flood(node.base.clone(), client.clone(), 4, stop.clone(), "flood"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    node.sigkill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (created, failed) = flood.await.unwrap();
    assert!(!created.is_empty(), "sign-ups went through before the kill");
    let node = node.restart(&client).await;
    let mut present = 0;
    for email in &created {
        let r = node
            .call(&client, "POST", "/auth/signin", None, Some(json!({"email": email, "password": PASSWORD})))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{email} got a 201 before the SIGKILL: {}", r.body);
        present += 1;
    }
    eprintln!(
        "\nSIGKILL during a sign-up flood ({label}): {} sign-ups got a 201, {present} present after restart; \
         {failed} requests cut off or refused by the kill",
        created.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_signup_flood_on_sqlite_loses_no_201() {
    let dir = TempDir::new();
    sigkill_during_signup_flood(format!("sqlite://{}?mode=rwc", dir.0.join("janua.db").display()), "SQLite")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_signup_flood_on_postgres_loses_no_201() {
    let Some(pg) = PrivatePg::start() else { return };
    sigkill_during_signup_flood(pg.url(), "PostgreSQL").await;
}

/// A small tmpfs mounted for one test; unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(at: PathBuf, size: &str) -> Option<Self> {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(at))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `path` to the last byte; returns the bytes written.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let mut written = 0;
    for chunk in [65536usize, 4096, 512, 1] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() && f.flush().is_ok() {
            written += chunk as u64;
        }
    }
    let _ = f.sync_all();
    written
}

/// SQLite on a full disk: writes get a 503 `SERVICE_UNAVAILABLE` with `details.reason`
/// `storage_full` and a `Retry-After` (never a 500), Janua keeps running, and once space is
/// freed writes work again; the database passes `PRAGMA integrity_check` and holds what was
/// written before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_gives_a_clear_error_and_stays_intact() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let (dir, client) = (TempDir::new(), reqwest::Client::new());
    let Some(fs) = SmallFs::mount(dir.0.join("small"), "4m") else {
        skip("cannot mount a tmpfs (needs root / CAP_SYS_ADMIN)");
        return;
    };
    let db_path = fs.0.join("janua.db");
    let url = format!("sqlite://{}?mode=rwc", db_path.display());
    let mut node = Janua::start(
        &[
            ("DATABASE_URL", url.clone()),
            ("JANUA_MASTER_KEY", MasterKey::generate().to_base64()),
            ("JANUA_MAIL_DIR", dir.0.join("mail").display().to_string()),
        ],
        &client,
    )
    .await;
    let signup = |email: String| {
        let (client, base) = (client.clone(), node.base.clone());
        async move {
            Resp::from(
                client
                    .post(format!("{base}/api/v1/auth/signup"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    assert_eq!(signup("before@example.com".into()).await.status, 201);

    let filler = fs.0.join("filler");
    let filled = fill(&filler);
    let (mut by_status, mut first_full) = (BTreeMap::<String, usize>::new(), None);
    for i in 0..400 {
        let r = signup(format!("full{i}@example.com")).await;
        let reason = r.body["error"]["details"]["reason"].as_str().unwrap_or("").to_owned();
        let key = if r.status >= 500 {
            format!("{} {} {reason}", r.status, r.code())
        } else {
            r.status.to_string()
        };
        *by_status.entry(key).or_default() += 1;
        assert!(
            r.status == 201 || r.status == 503,
            "a full disk gives a 201 or a 503, never {}: {}",
            r.status,
            r.body
        );
        if r.status == 503 {
            assert_eq!(r.code(), "SERVICE_UNAVAILABLE");
            // Mostly `storage_full`; a writer that meets the lock of one failing on the full
            // disk (SQLITE_BUSY) gets `database_unavailable`.
            assert!(reason == "storage_full" || reason == "database_unavailable", "{}", r.body);
            assert!(r.headers.get("retry-after").is_some());
            first_full.get_or_insert(i);
            if by_status.get("503 SERVICE_UNAVAILABLE storage_full").copied().unwrap_or(0) >= 5 {
                break;
            }
        }
    }
    assert!(first_full.is_some(), "the full disk was met within 400 sign-ups: {by_status:?}");
    assert!(node.child.try_wait().unwrap().is_none(), "janua still runs on a full disk");
    let health = client.get(format!("{}/health", node.base)).send().await.unwrap().status();
    assert_eq!(health, 200);

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = signup("after@example.com".into()).await;
        if r.status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "writes work again once space is freed: {} {}", r.status, r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = node
        .call(
            &client,
            "POST",
            "/auth/signin",
            None,
            Some(json!({"email": "after@example.com", "password": PASSWORD})),
        )
        .await
        .unwrap();
    // Janua itself sees it (it was committed, not left in a transaction SQLite kept open).
    assert_eq!(r.status, 200, "the sign-up after freeing space signs in: {}", r.body);
    node.sigkill();
    let db = janua::storage::connect(&url, None).await.unwrap();
    let check = db
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA integrity_check"))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    let users = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT count(*) FROM users WHERE email IN ('before@example.com', 'after@example.com')",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    db.close().await.unwrap();
    eprintln!(
        "\nSQLite on a full disk: filler {filled} bytes; sign-ups by status {by_status:?} (first 503 after {} sign-ups); \
         integrity_check: {check}; earlier and later users present: {users}/2",
        first_full.unwrap()
    );
    assert_eq!(check, "ok");
    assert_eq!(users, 2);
}

/// A private `redis-server` on `port` (no persistence).
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_next(ws: &mut Ws, within: Duration) -> Option<Value> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??.ok()?;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] != "ka" && v["type"] != "ping" && v["type"] != "pong" {
                return Some(v);
            }
        }
    }
}

/// Two nodes on one database and a private Redis: an `auditEvents` subscriber on node B gets
/// all 300 changes made on node A exactly once and in order, across a SIGKILL of Redis and its
/// restart on the same port about five seconds later (the events committed meanwhile wait in
/// the outbox and go out once Redis answers; B re-reads what it missed from the outbox).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_loses_no_event_between_nodes() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err() {
        skip("no redis-server binary");
        return;
    }
    let port = free_port();
    let mut redis = PrivateRedis::start(port);
    let (dir, client, key) = (TempDir::new(), reqwest::Client::new(), MasterKey::generate().to_base64());
    let env = [
        ("DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.0.join("janua.db").display())),
        ("JANUA_MASTER_KEY", key),
        ("JANUA_MAIL_DIR", dir.0.join("mail").display().to_string()),
        ("REDIS_URL", format!("redis://127.0.0.1:{port}/")),
        ("JANUA_REDIS_PREFIX", format!("faults{}:", uuid::Uuid::new_v4().simple())),
    ];
    // One after the other: the first creates and migrates the database.
    let a = Janua::start(&env, &client).await;
    let b = Janua::start(&env, &client).await;
    let s = a
        .call(
            &client,
            "POST",
            "/auth/signup",
            None,
            Some(json!({"email": "owner@example.com", "password": PASSWORD})),
        )
        .await
        .unwrap();
    assert_eq!(s.status, 201, "{}", s.body);
    let token = s.body["data"]["tokens"]["access_token"].as_str().unwrap().to_owned();
    let r = a
        .call(&client, "POST", "/organizations", Some(&token), Some(json!({"name": "Watched"})))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let org = r.body["data"]["id"].as_str().unwrap().to_owned();

    let mut req = format!("ws://127.0.0.1:{}/graphql/ws", b.port).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connects");
    let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}});
    ws.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(ws_next(&mut ws, Duration::from_secs(10)).await.unwrap()["type"], "connection_ack");
    let sub = json!({"id": "1", "type": "subscribe", "payload": {
        "query": "subscription { auditEvents(action: \"organization.updated\") { id action data } }"}});
    ws.send(Message::text(sub.to_string())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 300 changes on A, paced over about ten seconds; Redis is SIGKILLed at ~2 s and
    // restarted on the same port ~5 s later.
    const N: usize = 300;
    let writer = {
        let (client, base, token, org) = (client.clone(), a.base.clone(), token.clone(), org.clone());
        tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..N {
                let r = client
                    .put(format!("{base}/api/v1/organizations/{org}"))
                    .bearer_auth(&token)
                    .json(&json!({"description": format!("change {i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200, "change {i}: {}", r.text().await.unwrap_or_default());
                ok += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ok
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.sigkill();
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let redis = PrivateRedis::start(redis.port);
    let outage = killed_at.elapsed();

    let mut ids = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while ids.len() < N {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(msg) = ws_next(&mut ws, left).await else { break };
        assert_eq!(msg["type"], "next", "{msg}");
        ids.push(msg["payload"]["data"]["auditEvents"]["id"].as_str().unwrap().to_owned());
    }
    let sent = writer.await.unwrap();
    // Anything more (a duplicate) within another second?
    let extra = ws_next(&mut ws, Duration::from_secs(1)).await;
    drop(redis);

    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    let in_order = ids.windows(2).all(|w| w[0] < w[1]);
    eprintln!(
        "\nRedis SIGKILLed under load (outage {:.1} s): {sent} changes made on node A, {} events received on node B \
         ({} distinct, in order: {in_order}); extra after the last: {}",
        outage.as_secs_f64(),
        ids.len(),
        unique.len(),
        extra.is_some()
    );
    assert_eq!(sent, N);
    assert_eq!(ids.len(), N, "every change reaches the subscriber on the other node");
    assert_eq!(unique.len(), N, "no duplicate");
    assert!(extra.is_none(), "nothing more after the 300: {extra:?}");
    // Event ids are UUIDv7 made in commit order on one node: received in order means sorted.
    assert!(in_order, "in order");
}
