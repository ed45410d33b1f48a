//! `TestApp`: a real server per test, on port 0, with its own database.

use std::io::Write;
use std::sync::OnceLock;

use janua::app::App;
use janua::config::Config;
use janua::events::Dispatcher;
use janua::http::HttpState;
use janua::security::secrets::MasterKey;
use serde_json::{Value, json};

/// Which database a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `JANUA_TEST_DATABASE_URL` is set; otherwise says (once, past the output
    /// capture) that the PostgreSQL tests are skipped.
    pub fn postgres() -> Option<Self> {
        match std::env::var("JANUA_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(Self::Postgres(url)),
            _ => {
                static SAID: OnceLock<()> = OnceLock::new();
                SAID.get_or_init(|| {
                    let _ = writeln!(
                        std::io::stderr(),
                        "\nPostgreSQL tests skipped: JANUA_TEST_DATABASE_URL is not set (they pass without running)."
                    );
                });
                None
            }
        }
    }
}

/// The test Redis (`JANUA_TEST_REDIS_URL`); when unset says (once, past the output capture) that
/// the Redis tests are skipped.
pub fn redis_url() -> Option<String> {
    match std::env::var("JANUA_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            static SAID: OnceLock<()> = OnceLock::new();
            SAID.get_or_init(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\nRedis tests skipped: JANUA_TEST_REDIS_URL is not set (they pass without running)."
                );
            });
            None
        }
    }
}

/// A key prefix of its own for one test (tests share one Redis).
pub fn redis_prefix() -> String {
    format!("janua-test:{}:", uuid::Uuid::new_v4().simple())
}

/// Declares `mod NAME { sqlite(), postgres() }` for each `async fn NAME(Backend)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(b) = $crate::helpers::Backend::postgres() {
                        super::$name(b).await
                    }
                }
            }
        )*
    };
}

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub services: HttpState,
    pub dispatcher: Dispatcher,
    /// The configuration it was built with (a peer node reuses it).
    pub config: Config,
    /// Its PostgreSQL schema, if any (a peer node shares it).
    pub pg_schema: Option<String>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: TempDir,
}

impl Drop for TestApp {
    /// Stops the server and its workers, closing its database connections.
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(format!("janua-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A strong password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// A server with test defaults (generous rate limit, cheap argon2).
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A server whose configuration `tweak` may change.
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        static LOGS: OnceLock<()> = OnceLock::new();
        LOGS.get_or_init(|| {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=off"));
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        });
        let dir = TempDir::new();
        let mut config = Config::defaults();
        config.addr = "127.0.0.1:0".parse().unwrap();
        config.master_key = Some(MasterKey::generate().to_base64());
        config.master_key_file = dir.0.join("janua.key");
        config.rate_limit_per_minute = 100_000;
        config.credential_attempts_per_minute = 100_000;
        config.argon2_memory_kib = 8192;
        config.argon2_iterations = 1;
        // Mails land in the test's own folder unless a test gives an SMTP server.
        config.mail_dir = dir.0.join("mail");
        config.mail_per_address_per_hour = 100_000;
        config.mail_per_ip_per_hour = 100_000;
        config.invitations_per_client_per_hour = 100_000;
        config.invitations_per_address_per_hour = 100_000;
        config.invitations_per_recipient_per_hour = 100_000;
        config.invitations_per_organization_per_hour = 100_000;
        let mut schema = None;
        match &backend {
            Backend::Sqlite => {
                config.database_url = format!("sqlite://{}?mode=rwc", dir.0.join("janua.db").display());
            }
            Backend::Postgres(url) => {
                let name = format!("t_{}", uuid::Uuid::new_v4().simple());
                let db = sea_orm::Database::connect(url.as_str()).await.expect("connect to PostgreSQL");
                use sea_orm::ConnectionTrait;
                db.execute_unprepared(&format!("CREATE SCHEMA {name}")).await.expect("create schema");
                db.close().await.ok();
                config.database_url = url.clone();
                schema = Some(name);
            }
        }
        tweak(&mut config);
        config.db_max_connections.get_or_insert(4);
        Self::start(config, schema, dir).await
    }

    async fn start(config: Config, schema: Option<String>, dir: TempDir) -> Self {
        let app = App::build_with_schema(config.clone(), schema.as_deref()).await.expect("build app");
        let addr = app.local_addr();
        let services = app.services.clone();
        let dispatcher = app.dispatcher.clone();
        let server = tokio::spawn(app.run());
        Self {
            base: format!("http://{addr}"),
            addr,
            client: reqwest::Client::new(),
            services,
            dispatcher,
            config,
            pg_schema: schema,
            server,
            _dir: dir,
        }
    }

    /// A second node on this one's database (same file or schema), master key and settings
    /// (a Redis configured here is shared too). Keep `self` alive while the peer runs.
    pub async fn spawn_peer(&self) -> Self {
        let mut config = self.config.clone();
        config.addr = "127.0.0.1:0".parse().unwrap();
        Self::start(config, self.pg_schema.clone(), TempDir::new()).await
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A JSON request to a REST route; returns status, headers and body.
    pub async fn rest(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method.parse().unwrap(), self.url(&format!("/api/v1{path}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    /// A GraphQL request; returns the whole response body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req =
            self.client.post(self.url("/graphql")).json(&json!({"query": query, "variables": variables}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request").json().await.expect("json")
    }

    /// Signs up `email` over REST; returns the `data` (`{user, tokens}`).
    pub async fn signup(&self, email: &str) -> Value {
        let r = self
            .rest(
                "POST",
                "/auth/signup",
                None,
                Some(json!({"email": email, "password": PASSWORD, "name": "Test User"})),
            )
            .await;
        assert_eq!(r.status, 201, "signup failed: {}", r.body);
        r.body["data"].clone()
    }

    /// Signs in over REST; returns the `data`.
    pub async fn signin(&self, email: &str) -> Value {
        let r = self
            .rest("POST", "/auth/signin", None, Some(json!({"email": email, "password": PASSWORD})))
            .await;
        assert_eq!(r.status, 200, "signin failed: {}", r.body);
        r.body["data"].clone()
    }

    /// Creates an administrator (as `janua admin create` does) and signs in; returns the access token.
    pub async fn admin(&self, email: &str) -> String {
        janua::services::bootstrap::create_admin(&self.services.state, email, PASSWORD)
            .await
            .expect("create admin");
        access(&self.signin(email).await)
    }

    /// Creates an organization as `token`; returns its id.
    pub async fn org(&self, token: &str, name: &str) -> String {
        let r = self.rest("POST", "/organizations", Some(token), Some(json!({"name": name}))).await;
        assert_eq!(r.status, 201, "create organization: {}", r.body);
        r.body["data"]["id"].as_str().unwrap().to_owned()
    }

    /// Makes the account `email` (signed up with [`PASSWORD`]) a member of `org` with `role`,
    /// as a person who administers it: `token` invites, the invitee follows the mailed link
    /// and accepts signed in (or, as an administrator, `token` adds them at once).
    pub async fn add_member(&self, token: &str, org: &str, email: &str, role: &str) {
        let r = self
            .rest(
                "POST",
                &format!("/organizations/{org}/members"),
                Some(token),
                Some(json!({"email": email, "role": role})),
            )
            .await;
        if r.status == 201 {
            return;
        }
        assert_eq!(r.status, 202, "add member: {}", r.body);
        let invitee = access(&self.signin(email).await);
        let invitation_token = crate::mail_folder::invitation_token(self, email).await;
        let r = self
            .rest("POST", "/invitations/accept", Some(&invitee), Some(json!({"token": invitation_token})))
            .await;
        assert_eq!(r.status, 200, "accept the invitation: {}", r.body);
    }

    /// A request with `X-API-Key`.
    pub async fn rest_key(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .client
            .request(method.parse().unwrap(), self.url(&format!("/api/v1{path}")))
            .header("x-api-key", key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    /// Stops the server and its background workers (the database stays open for the test).
    ///
    /// Returns once no statement has run for a while: a worker aborted with the server may still
    /// finish the statement it was running (an abort takes effect at the task's next poll), and
    /// tests that count statements after this must not count it.
    pub async fn stop(&mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
        let queries = &self.services.state.queries;
        let (mut last, mut quiet) = (queries.get(), 0);
        while quiet < 4 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let now = queries.get();
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
        }
    }

    /// Publishes committed events now (instead of waiting for the background loop).
    pub async fn drain_events(&self) {
        self.dispatcher.try_run_once().await.expect("dispatch");
    }
}

/// A response: status, headers, JSON body (or `Null`).
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        Self { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    /// The error code of an error envelope.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// POSTs `body` as JSON to a server the test did not start through [`TestApp`] (a `janua serve`
/// child), with `token` as bearer, and returns the answer's JSON.
pub async fn post_json(client: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> Value {
    let mut r = client.post(url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap().json().await.unwrap()
}

/// Signs `email` up with [`PASSWORD`] at `api` (a server's `…/api/v1`, one the test did not
/// start through [`TestApp`]) and returns the access token.
pub async fn signup_token(client: &reqwest::Client, api: &str, email: &str) -> String {
    let body = json!({"email": email, "password": PASSWORD});
    let v = post_json(client, &format!("{api}/auth/signup"), None, body).await;
    v["data"]["tokens"]["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("signing {email} up: {v}"))
        .to_owned()
}

/// GETs `url` with `token` as bearer and returns the answer's JSON, whatever its status.
pub async fn get_json(client: &reqwest::Client, url: &str, token: Option<&str>) -> Value {
    let mut r = client.get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap().json().await.unwrap()
}

/// The access token of a `{user, tokens}` value.
pub fn access(v: &Value) -> String {
    v["tokens"]["access_token"].as_str().expect("access token").to_owned()
}

/// The refresh token of a `{user, tokens}` value.
pub fn refresh(v: &Value) -> String {
    v["tokens"]["refresh_token"].as_str().expect("refresh token").to_owned()
}

/// A client that shows redirects instead of following them, as a test of a browser hop needs.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client")
}

/// The one-time `code` of an SSO redirect's `Location`.
pub fn code_of(location: &str) -> String {
    let url = reqwest::Url::parse(location).expect("a URL");
    url.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("a code")
}
