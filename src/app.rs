//! `App::build(config)` wires storage, keys, services, schema and routes; `App::run` serves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, get, on};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Config;
use crate::context::RequestContext;
use crate::domain::webhooks::AddressPolicy;
use crate::error::{AppError, ErrorCode};
use crate::events::{Dispatcher, EventBus};
use crate::graphql::build_schema;
use crate::http::serve::{ServeLimits, serve};
use crate::http::ws::socket::Listener;
use crate::http::ws::{Fanout, SocketSessions};
use crate::http::{
    HttpState, account_pages, dashboard, graphql as gql_http, invitation_page, middleware, pages,
    ws as ws_http,
};
use crate::protocols::{health, scim, sso, well_known};
use crate::rest::{RestApi, envelope, openapi, routes};
use crate::security::master_key::open_master_key;
use crate::security::passwords::PasswordHasher;
use crate::security::tokens::KeyStore;
use crate::services::account_tokens::TokenPurpose;
use crate::state::{AppState, Inner};
use crate::storage::invitation_limits::InvitationLimits;
use crate::storage::mail_limits::{KeyedLimit, MemoryKeyedLimiter, RedisKeyedLimiter};
use crate::storage::rate_limits::{IpRateLimiter, RateLimit, RedisRateLimiter, WindowRateLimiter};
use crate::storage::request_look::RequestLook;
use crate::storage::{
    self, CeremonyStore, LockoutStore, MemoryCeremonyStore, MemoryLockoutStore, MemoryRevocationStore, Redis,
    RedisCeremonyStore, RedisLockoutStore, RedisRevocationStore, RevocationStore,
};
use crate::workers::mail::{self as mail_worker, MailWorker};
use crate::workers::webhooks::{self as webhook_worker, WebhookWorker};

/// A built server, bound to its port, not yet serving.
pub struct App {
    pub services: HttpState,
    pub dispatcher: Dispatcher,
    pub webhooks: WebhookWorker,
    pub mail: MailWorker,
    listener: TcpListener,
    router: Router,
}

impl App {
    /// A SCIM path's refusals are SCIM `Error`s, whichever layer refuses them.
    fn protocol_error(path: &str, rc: &RequestContext, e: &AppError) -> Option<Response> {
        scim::is_scim_path(path).then(|| scim::error_response(rc, e))
    }

    /// Connects and migrates the database, loads keys, builds the schema and routes, binds.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_schema(config, None).await
    }

    /// The application state alone (database migrated, keys loaded), for command-line tasks.
    pub async fn build_offline(config: Config) -> anyhow::Result<AppState> {
        build_state(config, None).await
    }

    /// As [`App::build`], with the database objects in a PostgreSQL schema (tests isolate by it).
    pub async fn build_with_schema(config: Config, pg_schema: Option<&str>) -> anyhow::Result<Self> {
        let state = build_state(config.clone(), pg_schema).await?;
        let schema = build_schema(state.clone());
        // Input types are read from a schema without the request limits (introspection is deep).
        let mut rest = RestApi::prepare(&crate::graphql::bare_schema(), routes::routes()).await?;
        rest.validate_constant(&schema).await?;
        let rest = Arc::new(rest);
        let openapi = Arc::new(serde_json::to_string_pretty(&openapi::document(&rest))?);
        let dispatcher = Dispatcher::new(state.db.clone(), state.bus.clone(), state.outbox_wake.clone())
            .with_redis(state.redis.clone())
            .with_write_gate(state.write_gate.clone());
        let ws = Fanout::new(schema.clone(), &state.bus);
        let ws_sessions = SocketSessions::new(state.revocations.clone(), &state.bus);
        let ws_connections =
            crate::http::ws::admission::ConnectionCounts::new(config.ws_max_connections_per_user);
        let services = HttpState {
            state,
            schema,
            ws,
            ws_sessions,
            ws_connections,
            rest,
            openapi,
            protocol_error: Self::protocol_error,
        };
        health::prometheus();
        let router = router(services.clone());
        let listener = TcpListener::bind(config.addr).await?;
        Ok(Self {
            dispatcher,
            webhooks: WebhookWorker::new(services.state.clone()),
            mail: MailWorker::new(services.state.clone()),
            services,
            listener,
            router,
        })
    }

    /// The bound address (port 0 in tests becomes a real port here).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until the process is stopped, with the background workers running.
    ///
    /// SIGTERM or Ctrl-C (or [`crate::shutdown::Shutdown::begin`]) drains: the listener closes,
    /// requests in flight finish, WebSocket connections close with 1001, the webhook and mail
    /// workers finish or hand back their attempts; within `JANUA_SHUTDOWN_GRACE` (plus the time to
    /// record what was handed back) this returns `Ok`, and the process exits 0.
    pub async fn run(self) -> anyhow::Result<()> {
        let state = self.services.state.clone();
        let addr = self.local_addr();
        let shutdown = state.shutdown.clone();
        // Dropping (or aborting) this future stops the workers too, like a killed process.
        let mut workers = vec![
            self.dispatcher.spawn(Duration::from_millis(500)),
            tokio::spawn(housekeeping(state.clone())),
            tokio::spawn(refresh_keys(state.clone())),
        ];
        if let Some(redis) = state.redis.clone() {
            // Read before the first request is served: events published from here on reach
            // this node's sockets even if its subscription is made after them.
            let since = crate::events::newest_published(&state.db).await.ok();
            workers.push(tokio::spawn(crate::events::forward_from_redis(
                redis,
                state.bus.clone(),
                state.redis_revocations.clone(),
                state.db.clone(),
                since,
            )));
        }
        if let Some(revocations) = &state.redis_revocations {
            workers.push(tokio::spawn(revocations.leases().clone().serve()));
        }
        let _workers = AbortOnDrop(workers);
        // These finish their attempts (or hand them back) when the server shuts down.
        let mut draining = AbortOnDrop(vec![
            self.webhooks.spawn(Duration::from_secs(1)),
            self.mail.spawn(Duration::from_secs(1)),
        ]);
        tracing::info!(%addr, "Janua is serving");
        let base = format!("http://{addr}");
        tracing::info!("open {base}/ in a browser; its pages:");
        for (path, title, _) in pages::PAGES {
            tracing::info!("  {title}: {base}{path}");
        }
        let grace = state.config.shutdown_grace;
        let signal = {
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    () = shutdown_signal() => {
                        tracing::info!(grace_ms = grace.as_millis() as u64, "shutting down: draining");
                    }
                    _ = shutdown.begun() => {}
                }
                shutdown.begin(tokio::time::Instant::now() + grace);
            }
        };
        let limits = ServeLimits {
            header_read_timeout: state.config.header_read_timeout,
            header_limit: state.config.header_limit,
        };
        let serve = serve(Listener(self.listener), self.router, limits, signal);
        tokio::pin!(serve);
        tokio::select! {
            r = &mut serve => r?,
            () = shutdown.overdue() => tracing::warn!("requests still in flight when the shutdown grace ran out"),
        }
        let deadline = shutdown.deadline().unwrap_or_else(tokio::time::Instant::now);
        if !shutdown.connections_ended(deadline).await {
            tracing::warn!("WebSocket connections still open when the shutdown grace ran out");
        }
        // The workers hand back what is left at the deadline: give them a moment to record it.
        for w in &mut draining.0 {
            let _ = tokio::time::timeout_at(deadline + HAND_BACK_TIME, w).await;
        }
        let drained = deadline.checked_sub(grace).map_or(Duration::ZERO, |began| began.elapsed());
        tracing::info!(drain_ms = drained.as_millis() as u64, "stopped");
        Ok(())
    }
}

/// How long, after the shutdown grace, the workers have to record what they hand back.
const HAND_BACK_TIME: Duration = Duration::from_secs(5);

/// Connects and migrates the database, loads the keys and builds every shared part.
async fn build_state(config: Config, pg_schema: Option<&str>) -> anyhow::Result<AppState> {
    let queries = storage::QueryCounter::default();
    let (db, writer) = storage::connect_with_writer(
        &config.database_url,
        pg_schema,
        config.db_max_connections,
        queries.clone(),
    )
    .await?;
    if !config.no_migrate {
        storage::migrate(&db).await?;
    }
    let master = open_master_key(&db, config.master_key.as_deref(), &config.master_key_file).await?;
    let keys = KeyStore::load(
        &db,
        master.clone(),
        config.issuer.clone(),
        config.audience.clone(),
        config.access_token_ttl,
    )
    .await?;
    let concurrency = config
        .hash_concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let passwords = PasswordHasher::new(
        config.argon2_memory_kib,
        config.argon2_iterations,
        config.argon2_parallelism,
        concurrency,
        config.password_min_length,
    )?;
    let redis =
        config.redis_url.as_deref().map(|url| Redis::connect(url, &config.redis_prefix)).transpose()?;
    let Backends {
        revocations,
        redis_revocations,
        lockouts,
        mfa_lockouts,
        ceremonies,
        rate_limiter,
        request_look,
        scim_rate_limiter,
        credential_limiter,
    } = backends(&config, &db, redis.as_ref()).await?;
    let (mail_address_limiter, mail_ip_limiter) = mail_limiters(&config, redis.as_ref());
    let invitation_limits =
        InvitationLimits::new(&config, redis.as_ref(), crate::services::mail::MAIL_WINDOW);
    let bus = EventBus::new(4096);
    let outbox_wake = Arc::new(Notify::new());
    let state = AppState::new(Inner {
        passwords,
        keys,
        redis,
        redis_revocations,
        revocations,
        lockouts,
        mfa_lockouts,
        webauthn: Arc::new(build_webauthn(&config)?),
        ceremonies,
        rate_limiter,
        request_look,
        scim_rate_limiter,
        credential_limiter,
        invitation_limits,
        bus: bus.clone(),
        outbox_wake: outbox_wake.clone(),
        db: db.clone(),
        started_at: Instant::now(),
        api_key_usage: Default::default(),
        counts: Default::default(),
        queries,
        users: Default::default(),
        // The rotations' conditional updates keep each token rotated once across groups.
        refresh_batch: storage::groups::GroupQueue::for_database(&db),
        write_gate: storage::WriteGate::for_database(&db, writer),
        master_key: master,
        webhook_wake: Arc::new(Notify::new()),
        webhook_client: webhook_worker::client(&config)?,
        sso_client: crate::security::outbound::guarded_client(
            AddressPolicy {
                allow_loopback: config.sso_allow_loopback,
                allow_private: config.sso_allow_private,
            },
            config.sso_timeout,
            8,
            concat!("Janua-SSO/", env!("CARGO_PKG_VERSION")),
        )?,
        documents: Default::default(),
        webhook_running: Arc::default(),
        mail_wake: Arc::new(Notify::new()),
        mail_running: Arc::default(),
        shutdown: Default::default(),
        smtp: mail_worker::smtp_transport(&config)?,
        mail_address_limiter,
        mail_ip_limiter,
        config,
    });
    Ok(state)
}

/// The mail limits (per address, per IP): in Redis when it is set, so every node counts together.
fn mail_limiters(config: &Config, redis: Option<&Redis>) -> (Arc<dyn KeyedLimit>, Arc<dyn KeyedLimit>) {
    let (per_address, per_ip) = (config.mail_per_address_per_hour, config.mail_per_ip_per_hour);
    let window = crate::services::mail::MAIL_WINDOW;
    match redis {
        Some(r) => (
            Arc::new(RedisKeyedLimiter::new(r.clone(), "maillimit_addr", per_address, window)),
            Arc::new(RedisKeyedLimiter::new(r.clone(), "maillimit_ip", per_ip, window)),
        ),
        None => (
            Arc::new(MemoryKeyedLimiter::new(per_address, window)),
            Arc::new(MemoryKeyedLimiter::new(per_ip, window)),
        ),
    }
}

/// The stores that are in process on one node, or in Redis when `REDIS_URL` is set.
struct Backends {
    revocations: Arc<dyn RevocationStore>,
    redis_revocations: Option<RedisRevocationStore>,
    lockouts: Arc<dyn LockoutStore>,
    mfa_lockouts: Arc<dyn LockoutStore>,
    ceremonies: Arc<dyn CeremonyStore>,
    rate_limiter: Arc<dyn RateLimit>,
    request_look: Option<RequestLook>,
    scim_rate_limiter: Arc<dyn RateLimit>,
    credential_limiter: Arc<dyn RateLimit>,
}

async fn backends(
    config: &Config,
    db: &sea_orm::DatabaseConnection,
    redis: Option<&Redis>,
) -> anyhow::Result<Backends> {
    let (threshold, mfa_max, seconds) =
        (config.lockout_threshold, config.mfa_max_attempts, config.lockout_seconds);
    Ok(match redis {
        Some(r) => {
            let rev = RedisRevocationStore::load(r.clone(), db.clone())
                .await?
                .with_lease(Duration::from_millis(config.session_lease_ms));
            let limiter = RedisRateLimiter::new(r.clone(), config.rate_limit_per_minute);
            Backends {
                request_look: Some(RequestLook::new(limiter.clone(), rev.clone())),
                revocations: Arc::new(rev.clone()),
                redis_revocations: Some(rev),
                lockouts: Arc::new(RedisLockoutStore::new(r.clone(), "lockout", threshold, seconds)),
                mfa_lockouts: Arc::new(RedisLockoutStore::new(r.clone(), "mfa_lockout", mfa_max, seconds)),
                ceremonies: Arc::new(RedisCeremonyStore::new(r.clone())),
                rate_limiter: Arc::new(limiter),
                scim_rate_limiter: Arc::new(RedisRateLimiter::scim(
                    r.clone(),
                    config.scim_rate_limit_per_minute,
                )),
                credential_limiter: Arc::new(RedisRateLimiter::credentials(
                    r.clone(),
                    config.credential_attempts_per_minute,
                )),
            }
        }
        None => Backends {
            revocations: Arc::new(MemoryRevocationStore::load(db).await?),
            redis_revocations: None,
            lockouts: Arc::new(MemoryLockoutStore::new(threshold, seconds)),
            mfa_lockouts: Arc::new(MemoryLockoutStore::new(mfa_max, seconds)),
            ceremonies: Arc::new(MemoryCeremonyStore::new()),
            rate_limiter: Arc::new(IpRateLimiter::new(config.rate_limit_per_minute)),
            request_look: None,
            scim_rate_limiter: Arc::new(IpRateLimiter::new(config.scim_rate_limit_per_minute)),
            credential_limiter: Arc::new(WindowRateLimiter::new(config.credential_attempts_per_minute)),
        },
    })
}

/// Background tasks that end with the server.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The WebAuthn relying party from the configuration (id, name, allowed origins).
fn build_webauthn(config: &Config) -> anyhow::Result<webauthn_rs::Webauthn> {
    use webauthn_rs::prelude::Url;
    let mut origins = config.webauthn_origins.iter().map(|o| Url::parse(o.trim()));
    let first = origins
        .next()
        .ok_or_else(|| anyhow::anyhow!("JANUA_WEBAUTHN_ORIGINS must name at least one origin"))??;
    let mut b = webauthn_rs::WebauthnBuilder::new(&config.webauthn_rp_id, &first)?
        .rp_name(&config.webauthn_rp_name)
        .timeout(Duration::from_secs(config.webauthn_ceremony_ttl));
    for o in origins {
        b = b.append_allowed_origin(&o?);
    }
    Ok(b.build()?)
}

async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        state.rate_limiter.purge();
        state.scim_rate_limiter.purge();
        state.credential_limiter.purge();
        state.mail_address_limiter.purge();
        state.mail_ip_limiter.purge();
        state.invitation_limits.purge();
        state.revocations.purge_expired();
        state.users.purge_expired();
        state.lockouts.purge();
        state.mfa_lockouts.purge();
        state.ceremonies.purge_expired();
    }
}

/// Re-reads the signing keys every `JANUA_KEY_REFRESH_INTERVAL`: a key rotated on another node
/// (or by `janua keys rotate`) is published and signs here within that interval, and a retired
/// key leaves the JWKS once its `publish_until` has passed.
async fn refresh_keys(state: AppState) {
    let every = state.config.key_refresh_interval.max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let before = state.keys.signing_kid();
        match state.keys.reload(&state.db).await {
            Ok(()) if state.keys.signing_kid() != before => {
                tracing::info!(kid = %state.keys.signing_kid(), "signing with a new key");
            }
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "reloading signing keys failed"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn context_of_parts(parts: &axum::http::request::Parts) -> RequestContext {
    parts.extensions.get::<RequestContext>().cloned().unwrap_or_default()
}

fn context_of(req: &Request) -> RequestContext {
    req.extensions().get::<RequestContext>().cloned().unwrap_or_default()
}

async fn home(req: Request) -> Response {
    if pages::wants_home_page(req.headers()) {
        return crate::http::headers::html(pages::home_html(), false);
    }
    not_found(req).await
}

async fn not_found(req: Request) -> Response {
    envelope::error_for(&context_of(&req), &AppError::new(ErrorCode::NotFound))
}

async fn method_not_allowed(req: Request) -> Response {
    envelope::error_for(&context_of(&req), &AppError::new(ErrorCode::MethodNotAllowed))
}

fn filter(m: &axum::http::Method) -> MethodFilter {
    match *m {
        axum::http::Method::GET => MethodFilter::GET,
        axum::http::Method::PUT => MethodFilter::PUT,
        axum::http::Method::PATCH => MethodFilter::PATCH,
        axum::http::Method::DELETE => MethodFilter::DELETE,
        _ => MethodFilter::POST,
    }
}

/// Every route: REST (from the table), GraphQL, protocol routes, pages.
pub fn router(svc: HttpState) -> Router {
    let mut api: Router<HttpState> = Router::new();
    let mut by_path: Vec<(&'static str, MethodRouter<HttpState>)> = Vec::new();
    let index_of = |op: &str| svc.rest.routes.iter().position(|p| p.route.operation == op);
    let (discover, complete_oidc) = (index_of("SsoProviderForEmail"), index_of("CompleteOidcSso"));
    for (index, p) in svc.rest.routes.iter().enumerate() {
        let op = p.route.operation;
        let handler = move |State(svc): State<HttpState>, req: Request| async move {
            // Three SSO paths answer two shapes (API.md §3): chosen by the request, then run
            // through the table like every route — except the IdP's HTML form POST.
            match op {
                "CompleteSamlSso" if sso::is_form_post(req.headers()) => {
                    return sso::acs_form(svc, req).await;
                }
                "SsoProviders"
                    if req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv.starts_with("email="))) =>
                {
                    if let Some(i) = discover {
                        return svc.rest.handle(&svc.state, &svc.schema, i, req).await;
                    }
                }
                "StartOidcSso" => {
                    let (parts, body) = req.into_parts();
                    let limit = svc.state.config.body_limit;
                    let bytes = match crate::rest::body::read(body, limit).await {
                        Ok(b) => b,
                        Err(e) => return envelope::error_for(&context_of_parts(&parts), &e),
                    };
                    let has_code = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .is_ok_and(|v| v.get("code").is_some_and(|c| !c.is_null()));
                    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
                    let i = if has_code { complete_oidc.unwrap_or(index) } else { index };
                    return svc.rest.handle(&svc.state, &svc.schema, i, req).await;
                }
                _ => {}
            }
            svc.rest.handle(&svc.state, &svc.schema, index, req).await
        };
        match by_path.iter_mut().find(|(path, _)| *path == p.route.path) {
            Some((_, mr)) => *mr = std::mem::take(mr).on(filter(&p.route.method), handler),
            None => by_path.push((p.route.path, on(filter(&p.route.method), handler))),
        }
    }
    for (path, mr) in by_path {
        api = api.route(path, mr.fallback(method_not_allowed));
    }
    api = api
        .route("/sso/saml/metadata/{provider_id}", get(sso::metadata).fallback(method_not_allowed))
        .route("/sso/oidc/callback", get(sso::oidc_callback).fallback(method_not_allowed))
        .merge(scim::routes());

    let cors = crate::http::headers::cors(&svc.state.config).unwrap_or_else(|e| {
        tracing::error!(error = %e, "JANUA_CORS_ORIGINS refused; no CORS headers are sent");
        None
    });
    let router = Router::new()
        .nest("/api/v1", api)
        .route("/graphql", get(gql_http::get).post(gql_http::post).fallback(method_not_allowed))
        .route("/graphql/ws", get(ws_http::endpoint))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/.well-known/jwks.json", get(well_known::jwks))
        .route("/.well-known/openid-configuration", get(well_known::openid_configuration))
        .route("/openapi.json", get(openapi_json))
        .route("/", get(home))
        .route("/docs", get(pages::docs))
        .route(TokenPurpose::VerifyEmail.page(), get(account_pages::verify_email))
        .route(TokenPurpose::EmailChange.page(), get(account_pages::confirm_email))
        .route(TokenPurpose::PasswordReset.page(), get(account_pages::reset_password))
        .route(TokenPurpose::MagicLink.page(), get(account_pages::magic_link))
        .route(invitation_page::PATH, get(invitation_page::accept_invitation))
        .route("/assets/{file}", get(pages::asset))
        .route(dashboard::PATH, get(dashboard::page))
        .route(dashboard::ASSETS, get(dashboard::asset))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(svc.clone(), middleware::request_context))
        .layer(axum::middleware::from_fn_with_state(svc.clone(), crate::http::headers::security_headers))
        .with_state(svc);
    match cors {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

async fn openapi_json(State(svc): State<HttpState>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(svc.openapi.as_str().to_owned()))
        .expect("static headers are valid")
}
