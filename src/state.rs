//! Everything a request may need, built once by `App::build` and passed (never global).

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use crate::config::Config;
use crate::events::EventBus;
use crate::security::passwords::PasswordHasher;
use crate::security::secrets::MasterKey;
use crate::security::tokens::KeyStore;
use crate::storage::rate_limits::RateLimit;
use crate::storage::{CeremonyStore, LockoutStore, Redis, RevocationStore};

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    pub config: Config,
    pub db: DatabaseConnection,
    pub passwords: PasswordHasher,
    pub keys: KeyStore,
    /// The shared Redis, when `REDIS_URL` is set.
    pub redis: Option<Redis>,
    pub revocations: Arc<dyn RevocationStore>,
    /// The Redis revocation store itself (resynchronised when Redis comes back).
    pub redis_revocations: Option<crate::storage::RedisRevocationStore>,
    pub lockouts: Arc<dyn LockoutStore>,
    /// Wrong second-factor codes per user (key `user:<id>`), locked after too many.
    pub mfa_lockouts: Arc<dyn LockoutStore>,
    /// Seals secrets stored in the database (TOTP secrets, webhook signing secrets).
    pub master_key: MasterKey,
    /// The WebAuthn relying party (id, origins).
    pub webauthn: Arc<webauthn_rs::Webauthn>,
    /// WebAuthn ceremony state and MFA tokens: short-lived, taken once.
    pub ceremonies: Arc<dyn CeremonyStore>,
    pub rate_limiter: Arc<dyn RateLimit>,
    /// `rate_limiter` and the revocation store in one Redis round trip (with Redis).
    pub request_look: Option<crate::storage::request_look::RequestLook>,
    /// SCIM requests per client (`JANUA_SCIM_RATE_LIMIT_PER_MINUTE`), instead of `rate_limiter`.
    pub scim_rate_limiter: Arc<dyn RateLimit>,
    /// Credential checks per client (sign-in, second factors, passkey assertions, API keys),
    /// taken before each check and given back when it succeeds.
    pub credential_limiter: Arc<dyn RateLimit>,
    /// Invitation mails per client, organization and address, address, and organization.
    pub invitation_limits: crate::storage::invitation_limits::InvitationLimits,
    pub bus: EventBus,
    /// Wakes the outbox dispatcher after a commit that wrote events.
    pub outbox_wake: Arc<Notify>,
    pub started_at: Instant,
    /// When each API key's and SCIM token's `last_used_at` was last written.
    pub api_key_usage: crate::storage::UsageThrottle,
    /// Row counts of large lists.
    pub counts: crate::storage::keyset::CountCache,
    /// Database statements executed (every query, for `/metrics` and tests).
    pub queries: crate::storage::QueryCounter,
    /// Write transactions of this process in turn (SQLite; `storage::WriteGate`).
    pub write_gate: crate::storage::WriteGate,
    /// Refresh-token rotations of this process, written in groups (`services::refresh_batch`).
    pub refresh_batch:
        crate::storage::groups::GroupQueue<crate::context::Rotation, crate::error::AppResult<bool>>,
    /// Callers of recent requests, served while their stamp holds (`storage::user_cache`).
    pub users: crate::storage::UserCache,
    /// Wakes the webhook worker (new deliveries to fan out or send).
    pub webhook_wake: Arc<Notify>,
    /// The HTTP client of webhook deliveries: no proxy, no redirects, refuses non-public addresses.
    pub webhook_client: reqwest::Client,
    /// The HTTP client of SSO (metadata, discovery, JWKS, token and userinfo requests): no
    /// proxy, no redirects, only to addresses `JANUA_SSO_ALLOW_*` allow.
    pub sso_client: reqwest::Client,
    /// OIDC discovery documents and JWKS, per URL.
    pub documents: crate::storage::documents::DocumentCache,
    /// Held by a webhook worker run, so runs in this process (the loop's and a test's) take turns.
    pub webhook_running: Arc<tokio::sync::Mutex<()>>,
    /// Wakes the mail worker (a write queued mail).
    pub mail_wake: Arc<Notify>,
    /// Held by a mail worker run, so runs in this process take turns.
    pub mail_running: Arc<tokio::sync::Mutex<()>>,
    /// The graceful-shutdown signal every part of the server watches.
    pub shutdown: crate::shutdown::Shutdown,
    /// The SMTP client (`JANUA_SMTP_URL`); without one, mails are written to `JANUA_MAIL_DIR`.
    pub smtp: Option<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>,
    /// Mail-sending requests per recipient address (`JANUA_MAIL_PER_ADDRESS_PER_HOUR`).
    pub mail_address_limiter: Arc<dyn crate::storage::mail_limits::KeyedLimit>,
    /// Mail-sending requests per client IP (`JANUA_MAIL_PER_IP_PER_HOUR`).
    pub mail_ip_limiter: Arc<dyn crate::storage::mail_limits::KeyedLimit>,
}

impl AppState {
    /// Wraps the parts.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Tells the dispatcher and the webhook worker that events were committed.
    pub fn events_committed(&self) {
        self.outbox_wake.notify_one();
        self.webhook_wake.notify_one();
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
