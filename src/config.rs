//! Configuration: every setting is a flag and an environment variable, with a default that
//! gives a working server on an embedded SQLite file.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Server configuration (`janua --help` lists it all). Every field is a global flag, accepted
/// before and after any subcommand.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, global = true, env = "JANUA_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,
    /// Database: `sqlite://file.db?mode=rwc` (created and migrated at start) or `postgres://…`.
    #[arg(long, global = true, env = "DATABASE_URL", default_value = "sqlite://janua.db?mode=rwc")]
    pub database_url: String,
    /// Largest number of database connections (default: 8 for SQLite, 20 for PostgreSQL).
    #[arg(long, global = true, env = "JANUA_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Do not run pending migrations at start.
    #[arg(long, global = true, env = "JANUA_NO_MIGRATE")]
    pub no_migrate: bool,
    /// Token issuer (`iss`), also the base of the OpenID configuration.
    #[arg(long, global = true, env = "JANUA_ISSUER", default_value = "http://localhost:8000")]
    pub issuer: String,
    /// Token audience (`aud`).
    #[arg(long, global = true, env = "JANUA_AUDIENCE", default_value = "janua")]
    pub audience: String,
    /// Access-token lifetime in seconds.
    #[arg(long, global = true, env = "JANUA_ACCESS_TOKEN_TTL", default_value_t = 900)]
    pub access_token_ttl: i64,
    /// Refresh-token (and session) lifetime in seconds.
    #[arg(long, global = true, env = "JANUA_REFRESH_TOKEN_TTL", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl: i64,
    /// Seconds during which a just-rotated refresh token may be presented again (concurrent tabs).
    #[arg(long, global = true, env = "JANUA_REFRESH_REUSE_GRACE", default_value_t = 5)]
    pub refresh_reuse_grace: i64,
    /// How long an invitation's link stays valid (a resend starts it again).
    #[arg(long, global = true, env = "JANUA_INVITATION_TTL", default_value = "7d", value_parser = parse_duration)]
    pub invitation_ttl: Duration,
    /// Invitation mails (new or resent) an organization may send one address per hour.
    #[arg(long, global = true, env = "JANUA_INVITATIONS_PER_ADDRESS_PER_HOUR", default_value_t = 3)]
    pub invitations_per_address_per_hour: u32,
    /// Invitation mails one address may receive per hour, from every organization together.
    #[arg(long, global = true, env = "JANUA_INVITATIONS_PER_RECIPIENT_PER_HOUR", default_value_t = 10)]
    pub invitations_per_recipient_per_hour: u32,
    /// Invitation mails one organization may send per hour.
    #[arg(long, global = true, env = "JANUA_INVITATIONS_PER_ORGANIZATION_PER_HOUR", default_value_t = 200)]
    pub invitations_per_organization_per_hour: u32,
    /// Invitation mails one client (IP address, IPv6 /64) may cause per hour.
    #[arg(long, global = true, env = "JANUA_INVITATIONS_PER_CLIENT_PER_HOUR", default_value_t = 100)]
    pub invitations_per_client_per_hour: u32,
    /// argon2id memory cost in KiB (OWASP: 19456).
    #[arg(long, global = true, env = "JANUA_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,
    /// argon2id passes (OWASP: 2).
    #[arg(long, global = true, env = "JANUA_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id lanes (OWASP: 1).
    #[arg(long, global = true, env = "JANUA_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// Hashes computed at once (default: the number of cores).
    #[arg(long, global = true, env = "JANUA_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Minimum password length.
    #[arg(long, global = true, env = "JANUA_PASSWORD_MIN_LENGTH", default_value_t = 12)]
    pub password_min_length: usize,
    /// Requests per minute per client IP (IPv6: per /64).
    #[arg(long, global = true, env = "JANUA_RATE_LIMIT_PER_MINUTE", default_value_t = 60)]
    pub rate_limit_per_minute: u32,
    /// SCIM requests per minute per client IP (an identity provider syncing a directory sends
    /// many; counted apart from `JANUA_RATE_LIMIT_PER_MINUTE`).
    #[arg(long, global = true, env = "JANUA_SCIM_RATE_LIMIT_PER_MINUTE", default_value_t = 1200)]
    pub scim_rate_limit_per_minute: u32,
    /// Credential checks per minute per client IP (IPv6: per /64) — passwords, second factors,
    /// passkey assertions, API keys; a check that succeeds gives its unit back.
    #[arg(long, global = true, env = "JANUA_CREDENTIAL_ATTEMPTS_PER_MINUTE", default_value_t = 30)]
    pub credential_attempts_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` is believed (comma-separated IPs).
    #[arg(long, global = true, env = "JANUA_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
    /// Failed sign-ins in a row before an account is locked.
    #[arg(long, global = true, env = "JANUA_LOCKOUT_THRESHOLD", default_value_t = 5)]
    pub lockout_threshold: i32,
    /// Lockout duration in seconds.
    #[arg(long, global = true, env = "JANUA_LOCKOUT_SECONDS", default_value_t = 900)]
    pub lockout_seconds: i64,
    /// WebAuthn relying-party id (the registrable domain passkeys are bound to).
    #[arg(long, global = true, env = "JANUA_WEBAUTHN_RP_ID", default_value = "localhost")]
    pub webauthn_rp_id: String,
    /// WebAuthn origins allowed to run ceremonies (comma-separated; the first is the primary).
    #[arg(
        long,
        global = true,
        env = "JANUA_WEBAUTHN_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:8000"
    )]
    pub webauthn_origins: Vec<String>,
    /// WebAuthn relying-party name shown by authenticators.
    #[arg(long, global = true, env = "JANUA_WEBAUTHN_RP_NAME", default_value = "Janua")]
    pub webauthn_rp_name: String,
    /// Seconds a WebAuthn ceremony may take between options and response.
    #[arg(long, global = true, env = "JANUA_WEBAUTHN_CEREMONY_TTL", default_value_t = 300)]
    pub webauthn_ceremony_ttl: u64,
    /// Seconds an MFA token (between password and second factor) stays valid.
    #[arg(long, global = true, env = "JANUA_MFA_TOKEN_TTL", default_value_t = 300)]
    pub mfa_token_ttl: u64,
    /// How recent a session's last password or second-factor check must be for sensitive changes
    /// (passkeys, MFA on or off, deleting one's account, API keys); else `REAUTH_REQUIRED`.
    #[arg(long, global = true, env = "JANUA_REAUTH_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub reauth_window: Duration,
    /// Wrong second-factor codes in a row before the user's MFA is locked for the lockout duration.
    #[arg(long, global = true, env = "JANUA_MFA_MAX_ATTEMPTS", default_value_t = 5)]
    pub mfa_max_attempts: i32,
    /// Master key (base64, 32 bytes) sealing secrets at rest; when unset, read from (or created in) `--master-key-file`.
    #[arg(long, global = true, env = "JANUA_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// File holding the master key when `JANUA_MASTER_KEY` is unset.
    #[arg(long, global = true, env = "JANUA_MASTER_KEY_FILE", default_value = "janua.key")]
    pub master_key_file: PathBuf,
    /// Maximum request body size in bytes.
    #[arg(long, global = true, env = "JANUA_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// How long a `/graphql/ws` connection may stay open without `connection_init`.
    #[arg(long, global = true, env = "JANUA_WS_INIT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub ws_init_timeout: Duration,
    /// Operations (`subscribe`/`start`) a `/graphql/ws` connection may send per second on average;
    /// one beyond the allowance is answered with `RATE_LIMITED` (the connection stays open).
    #[arg(long, global = true, env = "JANUA_WS_OPERATIONS_PER_SECOND", default_value_t = 20)]
    pub ws_operations_per_second: u32,
    /// Operations a `/graphql/ws` connection may send at once before the per-second allowance applies.
    #[arg(long, global = true, env = "JANUA_WS_OPERATIONS_BURST", default_value_t = 40)]
    pub ws_operations_burst: u32,
    /// Maximum GraphQL query depth.
    #[arg(long, global = true, env = "JANUA_GRAPHQL_MAX_DEPTH", default_value_t = 15)]
    pub graphql_max_depth: usize,
    /// Maximum GraphQL query complexity.
    #[arg(long, global = true, env = "JANUA_GRAPHQL_MAX_COMPLEXITY", default_value_t = 1000)]
    pub graphql_max_complexity: usize,
    /// Most aliased fields one GraphQL document may hold (fragments included); beyond,
    /// `VALIDATION_ERROR` before anything runs.
    #[arg(long, global = true, env = "JANUA_GRAPHQL_MAX_ALIASES", default_value_t = 30)]
    pub graphql_max_aliases: usize,
    /// Whether GraphQL introspection (`__schema`, `__type`) answers; GraphiQL's documentation and
    /// completion need it. Off, a document asking them is refused (`VALIDATION_ERROR`).
    #[arg(long, global = true, env = "JANUA_GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphql_introspection: bool,
    /// Most requests in one batched `POST /graphql` (a JSON array); 0 refuses batches.
    #[arg(long, global = true, env = "JANUA_GRAPHQL_BATCH_LIMIT", default_value_t = 10)]
    pub graphql_batch_limit: usize,
    /// Bytes the request line and headers of a request may take together (431 beyond; at least 8192).
    #[arg(long, global = true, env = "JANUA_HEADER_LIMIT", default_value_t = 64 * 1024)]
    pub header_limit: usize,
    /// How long a client has to send a request's line and headers (the connection is closed after).
    #[arg(long, global = true, env = "JANUA_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// How long a client has to send a whole request body (408 `REQUEST_TIMEOUT` after).
    #[arg(long, global = true, env = "JANUA_BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// Origins allowed to call the API from a browser (comma-separated, e.g.
    /// `https://app.example.com`); none by default: no CORS headers are sent.
    #[arg(long, global = true, env = "JANUA_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// `/graphql/ws` connections one user (an anonymous client: one IP address) may hold at once on
    /// this node; one more is closed with 4429.
    #[arg(long, global = true, env = "JANUA_WS_MAX_CONNECTIONS_PER_USER", default_value_t = 16)]
    pub ws_max_connections_per_user: usize,
    /// Operations one `/graphql/ws` connection may run at once; one more is answered with an
    /// `error` message (`RATE_LIMITED`).
    #[arg(long, global = true, env = "JANUA_WS_MAX_OPERATIONS", default_value_t = 32)]
    pub ws_max_operations: usize,
    /// Webhook request timeout (`15s`; units ms, s, m, h, d).
    #[arg(long, global = true, env = "JANUA_WEBHOOK_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,
    /// Delays before each webhook retry, comma-separated; a delivery fails after the last one.
    #[arg(
        long,
        global = true,
        env = "JANUA_WEBHOOK_RETRY_SCHEDULE",
        default_value = "1m,5m,30m,2h,8h,24h",
        value_delimiter = ',',
        value_parser = parse_duration
    )]
    pub webhook_retry_schedule: Vec<Duration>,
    /// A webhook endpoint failing for this long without a success is disabled.
    #[arg(long, global = true, env = "JANUA_WEBHOOK_DISABLE_AFTER", default_value = "5d", value_parser = parse_duration)]
    pub webhook_disable_after: Duration,
    /// Development only: allow `http://` webhook URLs to loopback hosts and delivery to loopback addresses.
    #[arg(long, global = true, env = "JANUA_WEBHOOK_ALLOW_LOOPBACK")]
    pub webhook_allow_loopback: bool,
    /// Allow webhook delivery to private, link-local and other non-public addresses.
    #[arg(long, global = true, env = "JANUA_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Webhook requests in flight at once on this node.
    #[arg(long, global = true, env = "JANUA_WEBHOOK_CONCURRENCY", default_value_t = 64)]
    pub webhook_concurrency: usize,
    /// Webhook requests in flight at once to one endpoint, from every node together; each
    /// delivery is retried on its own schedule, so a failing event never holds up later ones.
    #[arg(long, global = true, env = "JANUA_WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT", default_value_t = 8)]
    pub webhook_max_in_flight_per_endpoint: usize,
    /// How long a stopping server (SIGTERM, Ctrl-C) lets requests in flight, webhook attempts
    /// and mail sends finish before it hands what is left back and exits.
    #[arg(long, global = true, env = "JANUA_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// How often a node re-reads the signing keys (a `janua keys rotate` elsewhere reaches it
    /// within this); a retired key stays published this much longer than its last token lives.
    #[arg(long, global = true, env = "JANUA_KEY_REFRESH_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub key_refresh_interval: Duration,
    /// The address browsers and identity providers reach this server at (SAML entity ids, the
    /// ACS and OIDC callback URLs, SP metadata); unset, the issuer.
    #[arg(long, global = true, env = "JANUA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The product name mails are signed with (subjects, texts).
    #[arg(long, global = true, env = "JANUA_PRODUCT_NAME", default_value = "Janua")]
    pub product_name: String,
    /// The SMTP server mails go through: `smtp://user:pass@host:587` (STARTTLS: required when
    /// the URL has credentials, else used when offered; `?tls=required|opportunistic|none`
    /// chooses), `smtps://user:pass@host:465` (implicit TLS). Unset, each mail is written to
    /// `JANUA_MAIL_DIR` and its file named in the log.
    #[arg(long, global = true, env = "JANUA_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of every mail (`Name <address>` or an address).
    #[arg(long, global = true, env = "JANUA_MAIL_FROM", default_value = "Janua <no-reply@localhost>")]
    pub mail_from: String,
    /// Where mails are written (one `.eml` file each) when no SMTP server is configured.
    #[arg(long, global = true, env = "JANUA_MAIL_DIR", default_value = "./mail")]
    pub mail_dir: PathBuf,
    /// Timeout of each exchange with the SMTP server.
    #[arg(long, global = true, env = "JANUA_SMTP_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub smtp_timeout: Duration,
    /// Delays before each retry of a mail the SMTP server did not take (temporary failures,
    /// connection errors), comma-separated; the mail fails after the last one.
    #[arg(
        long,
        global = true,
        env = "JANUA_MAIL_RETRY_SCHEDULE",
        default_value = "30s,1m,5m,15m,1h,4h,12h",
        value_delimiter = ',',
        value_parser = parse_duration
    )]
    pub mail_retry_schedule: Vec<Duration>,
    /// Mails this node hands to the SMTP server at once.
    #[arg(long, global = true, env = "JANUA_MAIL_CONCURRENCY", default_value_t = 8)]
    pub mail_concurrency: usize,
    /// Refuse password and passkey sign-in (403 `EMAIL_NOT_VERIFIED`) until the account's email
    /// is verified.
    #[arg(long, global = true, env = "JANUA_REQUIRE_EMAIL_VERIFICATION")]
    pub require_email_verification: bool,
    /// Mails the account routes (verification, reset, magic link, email change) send to one
    /// address per hour; more requests are answered 429.
    #[arg(long, global = true, env = "JANUA_MAIL_PER_ADDRESS_PER_HOUR", default_value_t = 5)]
    pub mail_per_address_per_hour: u32,
    /// Mail-sending requests per client IP (IPv6: per /64) per hour.
    #[arg(long, global = true, env = "JANUA_MAIL_PER_IP_PER_HOUR", default_value_t = 30)]
    pub mail_per_ip_per_hour: u32,
    /// Development only: allow SSO metadata, discovery, JWKS and token requests to loopback
    /// addresses (and `http://` to loopback hosts).
    #[arg(long, global = true, env = "JANUA_SSO_ALLOW_LOOPBACK")]
    pub sso_allow_loopback: bool,
    /// Allow SSO requests to private and other non-public addresses (an IdP on the internal
    /// network, e.g. ADFS or Keycloak); off, organization admins cannot make Janua reach them.
    #[arg(long, global = true, env = "JANUA_SSO_ALLOW_PRIVATE")]
    pub sso_allow_private: bool,
    /// Timeout of each request to an identity provider.
    #[arg(long, global = true, env = "JANUA_SSO_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub sso_timeout: Duration,
    /// Clock skew allowed on SAML and OIDC validity windows.
    #[arg(long, global = true, env = "JANUA_SSO_CLOCK_SKEW", default_value = "60s", value_parser = parse_duration)]
    pub sso_clock_skew: Duration,
    /// How long a started SSO sign-in (SAML request, OIDC state) may take to come back.
    #[arg(long, global = true, env = "JANUA_SSO_REQUEST_TTL", default_value = "10m", value_parser = parse_duration)]
    pub sso_request_ttl: Duration,
    /// Redis shared by every node (`redis://host:6379/`): revocations, lockouts, rate limits,
    /// ceremony state and the event bus are then cluster-wide; unset, they stay in process.
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// With Redis, how long (ms) a node may answer a session's requests from its last look at
    /// Redis without a round trip: revocations and user changes reach every node's kept checks
    /// before the call that made them returns (or wait this long when a node does not answer).
    /// 0 keeps nothing. Every node of a cluster must use the same value.
    #[arg(long, global = true, env = "JANUA_SESSION_LEASE_MS", default_value_t = 1000)]
    pub session_lease_ms: u64,
    /// Prefix of every Redis key and channel (several deployments, or tests, may share one Redis).
    #[arg(long, global = true, env = "JANUA_REDIS_PREFIX", default_value = "janua:")]
    pub redis_prefix: String,
    /// Bearer token that `/metrics` and `/api/v1/health/detailed` require (`Authorization: Bearer
    /// …`); unset, they are open to anyone who reaches the address (bind it to a private network).
    #[arg(long, global = true, env = "JANUA_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Log format.
    #[arg(long, global = true, env = "JANUA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// The public base URL, without a trailing slash.
    pub fn public_base(&self) -> &str {
        self.public_url.as_deref().unwrap_or(&self.issuer).trim_end_matches('/')
    }

    /// The configuration with every default, as `janua serve` with no flags and no environment.
    pub fn defaults() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            config: Config,
        }
        Wrap::parse_from(["janua"]).config
    }
}

/// Parses `250ms`, `15s`, `5m`, `2h`, `5d` (a bare number is seconds).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("`{raw}` is not a duration like 15s, 5m, 2h"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{raw}`: the unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_webhook_defaults() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 weeks").is_err());
        let c = Config::defaults();
        let mins: Vec<u64> = c.webhook_retry_schedule.iter().map(|d| d.as_secs() / 60).collect();
        assert_eq!(mins, [1, 5, 30, 120, 480, 1440]);
        assert_eq!(c.webhook_timeout, Duration::from_secs(15));
        assert_eq!(c.webhook_disable_after, Duration::from_secs(5 * 86400));
    }
}
