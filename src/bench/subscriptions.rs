//! `janua bench --only subscriptions` (issue 5): two `janua` server processes on one database and
//! one Redis, `--subscribers` WebSocket clients held open in this process (so the servers' file
//! descriptors and memory are their own), and the time from a session revocation (a `DELETE
//! /api/v1/sessions/{id}` sent to node A) to its `sessionEvents` message at every subscriber:
//! first with every subscriber on node A, then with every subscriber on node B (via Redis).

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::io::Read;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

use reqwest::Method;

use super::client::{PASSWORD, request, signin, signup};
use super::server::{FreshPostgres, Server, cpu_of};
use super::stats::{percentile, sorted};

const WATCHER: &str = "watcher@example.com";
const SUBSCRIPTION: &str = "subscription { sessionEvents { id type action sessionId userId occurredAt } }";

/// Figures of one placement of the subscribers.
pub struct Placement {
    pub name: &'static str,
    pub subscribers: usize,
    pub connect_secs: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub rss_per_subscriber_kib: f64,
    /// CPU per delivered message: the node's, and this process's (the clients').
    pub server_cpu_us: f64,
    pub client_cpu_us: f64,
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "    {:<28} {} subscribers (connected in {:.1} s): revocation → event p50 {:.1} ms, p99 {:.1} ms, \
             max {:.1} ms; server RSS +{:.1} KiB per subscriber; CPU per delivery: server {:.1} µs, \
             clients {:.1} µs",
            self.name,
            self.subscribers,
            self.connect_secs,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.rss_per_subscriber_kib,
            self.server_cpu_us,
            self.client_cpu_us
        )
    }
}

/// What the subscribers wait for, and when each received it.
#[derive(Default)]
struct Watch {
    /// What a matching message contains: `"type":"REVOKED"`, and the session id when known.
    wanted: std::sync::RwLock<Option<(String, Option<String>)>>,
    arrivals: std::sync::Mutex<Vec<Instant>>,
    done: tokio::sync::Notify,
    expected: std::sync::atomic::AtomicUsize,
}

impl Watch {
    /// Starts waiting for `kind` about `session_id` (any session when `None`) at `n` subscribers.
    /// Called before the request that raises the event: it may arrive before the response.
    fn expect(&self, kind: &str, session_id: Option<&str>, n: usize) {
        self.arrivals.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.expected.store(n, std::sync::atomic::Ordering::SeqCst);
        *self.wanted.write().unwrap_or_else(|e| e.into_inner()) =
            Some((format!("\"type\":\"{kind}\""), session_id.map(str::to_owned)));
    }

    /// Called by a subscriber with what it read and the instant it read it; whether that was
    /// the awaited message.
    fn seen(&self, at: Instant, bytes: &[u8]) -> bool {
        let has = |needle: &str| memchr::memmem::find(bytes, needle.as_bytes()).is_some();
        let matches = self
            .wanted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|(kind, sid)| has(kind) && sid.as_deref().is_none_or(has));
        if matches {
            let mut a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
            a.push(at);
            if a.len() == self.expected.load(std::sync::atomic::Ordering::SeqCst) {
                self.done.notify_one();
            }
        }
        matches
    }

    /// Waits (60 s at most) until every expected subscriber has the message; returns the instants.
    async fn wait(&self, n: usize) -> anyhow::Result<Vec<Instant>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let got = {
                let mut a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
                if a.len() >= n {
                    return Ok(std::mem::take(&mut *a));
                }
                a.len()
            };
            if tokio::time::timeout_at(deadline, self.done.notified()).await.is_err() {
                anyhow::bail!("{got} of {n} subscribers got the event within 60 s");
            }
        }
    }
}

/// One subscriber: connects, authenticates and subscribes; returns its socket for [`Readers`].
async fn subscriber(base: &str, token: &str, parse: bool) -> anyhow::Result<Conn> {
    let mut req = format!("{}/graphql/ws", base.replacen("http", "ws", 1)).into_client_request()?;
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(ws_config()), false).await?;
    let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}});
    ws.send(Message::text(init.to_string())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("connection_ack") => break,
            Some(Ok(Message::Text(t))) => anyhow::bail!("connection refused: {t}"),
            Some(Ok(_)) => continue,
            other => anyhow::bail!("connection closed: {other:?}"),
        }
    }
    let sub = json!({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}});
    ws.send(Message::text(sub.to_string())).await?;
    // The server sends nothing before the first event, so nothing is left in the client's
    // buffer: the socket alone carries on.
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.into_inner() else {
        anyhow::bail!("a plain TCP socket was expected");
    };
    let tcp = mio::net::TcpStream::from_std(tcp.into_std()?);
    Ok(if parse {
        Conn::Parsed(Box::new(WebSocket::from_raw_socket(tcp, Role::Client, Some(ws_config()))))
    } else {
        Conn::Raw { tcp, buf: Vec::with_capacity(1024) }
    })
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(512)
}

/// A subscribed client's socket.
enum Conn {
    /// Frames read as bytes, which keeps the clients' own CPU (on the same cores as the servers)
    /// small; `buf` holds what was read and not yet matched (a message may arrive in two reads).
    Raw { tcp: mio::net::TcpStream, buf: Vec<u8> },
    /// Every frame read as a WebSocket message (tungstenite).
    Parsed(Box<WebSocket<mio::net::TcpStream>>),
}

impl Conn {
    fn source(&mut self) -> &mut mio::net::TcpStream {
        match self {
            Conn::Raw { tcp, .. } => tcp,
            Conn::Parsed(ws) => ws.get_mut(),
        }
    }

    /// Reads all there is, telling `watch` of every message with the instant it was read;
    /// `false` once the connection is closed.
    fn read(&mut self, watch: &Watch) -> bool {
        match self {
            Conn::Raw { tcp, buf } => {
                let mut chunk = [0u8; 1024];
                loop {
                    match tcp.read(&mut chunk) {
                        Ok(0) => return false,
                        Ok(n) => {
                            let at = Instant::now();
                            buf.extend_from_slice(&chunk[..n]);
                            if watch.seen(at, buf) {
                                buf.clear();
                            } else if buf.len() > 4096 {
                                buf.drain(..buf.len() - 1024);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => return false,
                    }
                }
            }
            Conn::Parsed(ws) => loop {
                match ws.read() {
                    Ok(Message::Text(t)) => {
                        watch.seen(Instant::now(), t.as_bytes());
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        return true;
                    }
                    Err(_) => return false,
                }
            },
        }
    }
}

/// The subscribers' sockets, read on a thread of their own (off the runtime that drives the
/// bench's requests) until dropped.
///
/// With a `tick`, the thread wakes every `tick` and reads whatever arrived; otherwise it sleeps
/// in `epoll_wait` and every message may wake it. Clients elsewhere cost the server nothing but
/// the send; here a client woken per message also costs the server the wake-up of its thread
/// (an inter-processor interrupt on a VM) and a preemption by it on the shared cores.
struct Readers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Readers {
    fn start(
        mut conns: Vec<Conn>,
        watch: std::sync::Arc<Watch>,
        tick: Option<Duration>,
    ) -> anyhow::Result<Self> {
        let poll = mio::Poll::new()?;
        for (i, c) in conns.iter_mut().enumerate() {
            poll.registry().register(c.source(), mio::Token(i), mio::Interest::READABLE)?;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new().name("bench-readers".into()).spawn(move || {
            let mut poll = poll;
            let mut events = mio::Events::with_capacity(1024);
            let mut full = false;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let timeout = match tick {
                    // More may be ready than one call returned: take them first.
                    Some(_) if full => Duration::ZERO,
                    Some(t) => {
                        std::thread::sleep(t);
                        Duration::ZERO
                    }
                    None => Duration::from_millis(100),
                };
                poll.poll(&mut events, Some(timeout))?;
                for ev in events.iter() {
                    let conn = &mut conns[ev.token().0];
                    if !conn.read(&watch) {
                        poll.registry().deregister(conn.source())?;
                    }
                }
                full = events.iter().count() == events.capacity();
            }
            Ok(())
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Err(e)) => eprintln!("bench readers: {e:#}"),
                Err(_) => eprintln!("bench readers panicked"),
                Ok(Ok(())) => {}
            }
        }
    }
}

/// The node's Prometheus text.
async fn metrics(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    Ok(client.get(format!("{base}/metrics")).send().await?.text().await?)
}

/// The node's `janua_event_subscribers` gauge.
async fn subscribers_on(client: &reqwest::Client, base: &str) -> anyhow::Result<usize> {
    Ok(metrics(client, base)
        .await?
        .lines()
        .find_map(|l| l.strip_prefix("janua_event_subscribers "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as usize)
}

/// What `base` reports of its events and outbox, for an error about a missing event.
async fn event_metrics(client: &reqwest::Client, base: &str) -> String {
    let Ok(text) = metrics(client, base).await else {
        return format!("{base}: no answer");
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["janua_events_", "janua_outbox_", "janua_redis_", "janua_event_subscribers", "janua_subscri"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    format!("{base}: {}", lines.join("; "))
}

/// Waits until every one of `n` subscribers has the watched message; a failure says `what`, with
/// the event metrics of `nodes`.
async fn arrivals(
    watch: &Watch,
    n: usize,
    what: String,
    client: &reqwest::Client,
    nodes: &[&Server],
) -> anyhow::Result<Vec<Instant>> {
    let e = match watch.wait(n).await {
        Ok(at) => return Ok(at),
        Err(e) => e,
    };
    let mut context = what;
    for node in nodes {
        context += &format!("; {}", event_metrics(client, &node.base).await);
    }
    Err(e.context(context))
}

/// Holds `n` subscribers on `node`, then measures `rounds` revocations sent to `writer`.
async fn place(
    name: &'static str,
    node: &Server,
    writer: &Server,
    client: &reqwest::Client,
    watcher_token: &str,
    load: Load,
) -> anyhow::Result<Placement> {
    let Load { subscribers: n, rounds, parse, tick } = load;
    let rss_before = node.status_kib("VmRSS:");
    let started = Instant::now();
    let watch = std::sync::Arc::new(Watch::default());
    let conns: Vec<Conn> = futures::stream::iter(0..n)
        .map(|_| subscriber(&node.base, watcher_token, parse))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let readers = Readers::start(conns, watch.clone(), tick)?;
    // Every subscription is live once the node counts it, and a first event reaches them all.
    while subscribers_on(client, &node.base).await? < n {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(300), "subscriptions did not all start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let nodes: &[&Server] = if node.base == writer.base { &[node] } else { &[writer, node] };
    // A sign-in through `writer`, once every subscriber has its event. The watcher's sessions are
    // the only ones created while the subscribers listen, and the event may arrive before the
    // response: it is awaited for any session, from before the request.
    let signed_in = || async {
        watch.expect("CREATED", None, n);
        let sid = signin(client, &writer.base, WATCHER, PASSWORD).await?.session_id;
        arrivals(&watch, n, format!("{name}: the sign-in event of {sid}"), client, nodes).await?;
        anyhow::Ok(sid)
    };
    signed_in().await?;
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_per_subscriber_kib = node.status_kib("VmRSS:").saturating_sub(rss_before) as f64 / n as f64;
    let mut lat = Vec::with_capacity(n * rounds);
    // CPU over the revocations' fan-out only (not the sign-ins' password hashing).
    let (mut server_cpu, mut client_cpu) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let sid = signed_in().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        watch.expect("REVOKED", Some(&sid), n);
        let cpu = (node.cpu(), cpu_of("/proc/self/stat"));
        let t0 = Instant::now();
        let url = format!("{}/api/v1/sessions/{sid}", writer.base);
        request(client, Method::DELETE, &url, Some(watcher_token), None).await?;
        let at = arrivals(&watch, n, format!("{name}: the revocation of {sid}"), client, nodes).await?;
        server_cpu += node.cpu().saturating_sub(cpu.0);
        client_cpu += cpu_of("/proc/self/stat").saturating_sub(cpu.1);
        lat.extend(at.into_iter().map(|t| t.saturating_duration_since(t0).as_secs_f64() * 1000.0));
    }
    let deliveries = (n * rounds) as f64;
    let server_cpu_us = server_cpu.as_secs_f64() * 1e6 / deliveries;
    let client_cpu_us = client_cpu.as_secs_f64() * 1e6 / deliveries;
    drop(readers);
    let lat = sorted(lat);
    Ok(Placement {
        name,
        subscribers: n,
        connect_secs,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        max_ms: percentile(&lat, 1.0),
        rss_per_subscriber_kib,
        server_cpu_us,
        client_cpu_us,
    })
}

/// How many subscribers, how many revocations, and how the clients read.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub subscribers: usize,
    pub rounds: usize,
    /// Read every message as a WebSocket message rather than as bytes.
    pub parse: bool,
    /// How often the clients look for messages; `None`: woken by each ([`Readers`]).
    pub tick: Option<Duration>,
}

/// Runs the group and returns its report lines.
pub async fn run(
    load: Load,
    port: u16,
    redis_url: &str,
    database_url: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let Load { rounds, parse, .. } = load;
    let prefix = format!("janua-bench-{}:", uuid::Uuid::new_v4().simple());
    let mut env_a = vec![("REDIS_URL".into(), redis_url.to_owned()), ("JANUA_REDIS_PREFIX".into(), prefix)];
    let fresh_db = match database_url {
        Some(url) => Some(FreshPostgres::create(url).await?),
        None => None,
    };
    if let Some(db) = &fresh_db {
        env_a.push(("DATABASE_URL".into(), db.url.clone()));
    }
    let a = Server::start_with(port, None, &env_a)?;
    a.wait_ready().await?;
    let mut env_b = env_a.clone();
    env_b.push(("JANUA_NO_MIGRATE".into(), "true".into()));
    let b = Server::start_with(port + 1, Some(&a.dir), &env_b)?;
    b.wait_ready().await?;

    let client = reqwest::Client::new();
    let token = signup(&client, &a.base, WATCHER).await?.access;

    let same = place("same node (A → A)", &a, &a, &client, &token, load).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let other = place("other node (A → Redis → B)", &b, &a, &client, &token, load).await?;
    drop((a, b));
    if let Some(db) = fresh_db {
        db.drop_database().await?;
    }
    Ok(vec![
        format!(
            "(5) subscriptions: {} database, Redis bus, clients reading {}; {rounds} revocations per placement \
             (goal p99 < 100 ms at 10,000)",
            if database_url.is_some() { "PostgreSQL" } else { "SQLite" },
            if parse { "WebSocket messages (tungstenite)" } else { "raw frames" }
        ),
        same.to_string(),
        other.to_string(),
    ])
}
