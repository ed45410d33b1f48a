//! A WebSocket's TCP socket, shared by its connection task and the event lanes.
//!
//! The connection task reads and answers the client through tungstenite; an event lane
//! ([`super::lanes`]) writes a subscriber's event frames straight into the same socket, without
//! waking the connection. Every byte goes through one [`Writer`], which keeps them in order: what
//! the socket does not take at once waits in a backlog that the connection task writes out, and
//! a client that falls more than [`BACKLOG_LIMIT`] behind is disconnected (it resumes with
//! `after`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Bytes a client may have waiting for it before it is disconnected.
pub const BACKLOG_LIMIT: usize = 1 << 20;

/// The connection is closed, or was closed for falling behind.
#[derive(Debug)]
pub struct Closed;

/// The writing side of a WebSocket's socket.
pub struct Writer {
    tcp: Arc<TcpStream>,
    /// What the socket has not taken yet, in order.
    backlog: Mutex<Vec<u8>>,
    closed: AtomicBool,
    /// Tells the connection task that there is a backlog to write out, or that it must close.
    pub notify: Notify,
}

impl Writer {
    fn new(tcp: Arc<TcpStream>) -> Self {
        Self { tcp, backlog: Mutex::default(), closed: AtomicBool::new(false), notify: Notify::new() }
    }

    fn backlog(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.backlog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the connection closed and tells its task.
    fn fail(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Writes `bytes` after everything written before; what the socket does not take now waits.
    pub fn write(&self, bytes: &[u8]) -> Result<(), Closed> {
        let mut backlog = self.backlog();
        if self.is_closed() {
            return Err(Closed);
        }
        let mut rest = bytes;
        if backlog.is_empty() {
            // Straight to the socket: the runtime's readiness is for the task that drains a
            // backlog (a `WouldBlock` here leaves it to find the socket full itself). A peer that
            // is gone gives `EPIPE`, not a signal: Rust programs start with SIGPIPE ignored.
            match socket2::SockRef::from(&*self.tcp).send(bytes) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(n) => rest = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.fail();
                    return Err(Closed);
                }
            }
        }
        if backlog.len() + rest.len() > BACKLOG_LIMIT {
            metrics::counter!("janua_events_dropped_total", "reason" => "slow_subscriber").increment(1);
            self.fail();
            return Err(Closed);
        }
        backlog.extend_from_slice(rest);
        self.notify.notify_one();
        Ok(())
    }

    /// Whether the connection was closed (by either side, or for falling behind).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the connection: nothing more is written, and the socket is shut down so the
    /// client sees the end even while a lane still holds this writer.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = socket2::SockRef::from(&*self.tcp).shutdown(std::net::Shutdown::Both);
    }

    /// Writes out the backlog as the socket takes it.
    pub fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut backlog = self.backlog();
            if self.is_closed() {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if backlog.is_empty() {
                return Poll::Ready(Ok(()));
            }
            match self.tcp.try_write(&backlog) {
                Ok(n) => {
                    backlog.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(backlog);
                    std::task::ready!(self.tcp.poll_write_ready(cx))?;
                }
                Err(e) => {
                    self.closed.store(true, Ordering::Release);
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

/// The socket as tungstenite sees it: reads through the HTTP server's upgraded connection (which
/// first returns what it had already read), writes through the [`Writer`].
pub struct Socket {
    read: TokioIo<hyper::upgrade::Upgraded>,
    writer: Arc<Writer>,
}

impl Socket {
    pub fn writer(&self) -> &Arc<Writer> {
        &self.writer
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.writer.write(buf) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(Closed) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let drained = std::task::ready!(self.writer.poll_drain(cx));
        self.writer.close();
        Poll::Ready(drained)
    }
}

/// The socket of an accepted upgrade, once the client has the `101` response.
pub type Upgrading = Pin<Box<dyn Future<Output = Option<Socket>> + Send>>;

/// A WebSocket upgrade of the connection `peer` accepted with `protocol`: the `101` response to
/// send, and the socket once the client has it.
pub fn accept(
    req: &mut axum::extract::Request,
    peer: &Peer,
    protocol: &'static str,
) -> Result<(Response, Upgrading), StatusCode> {
    let key = handshake_key(req.headers()).ok_or(StatusCode::BAD_REQUEST)?;
    let on_upgrade = hyper::upgrade::on(&mut *req);
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|_| StatusCode::BAD_REQUEST)?,
    );
    let tcp = peer.tcp.clone();
    let socket = async move {
        let read = TokioIo::new(on_upgrade.await.ok()?);
        let writer = Arc::new(Writer::new(tcp));
        Some(Socket { read, writer })
    };
    Ok((resp, Box::pin(socket)))
}

/// A TCP connection the HTTP server reads and writes, and a WebSocket's [`Writer`] can write
/// into too after an upgrade.
pub struct SharedTcp(Arc<TcpStream>);

impl AsyncRead for SharedTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            std::task::ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
    }
}

/// The server's listener: TCP connections as [`SharedTcp`], each with its [`Peer`].
pub struct Listener(pub tokio::net::TcpListener);

impl Listener {
    /// The next connection (an error is the listener's to retry: too many open files, …).
    pub async fn accept(&self) -> io::Result<(SharedTcp, Peer)> {
        let (tcp, addr) = self.0.accept().await?;
        // Every write is a whole response or frame: sent at once, not held back (Nagle) until the
        // client acknowledges the previous one, which a delayed ACK can put off by 40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let tcp = Arc::new(tcp);
        Ok((SharedTcp(tcp.clone()), Peer { addr, tcp }))
    }

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

/// What a request knows of its connection (`ConnectInfo<Peer>`): the client's address, and the
/// socket (for a WebSocket upgrade).
#[derive(Clone)]
pub struct Peer {
    pub addr: std::net::SocketAddr,
    tcp: Arc<TcpStream>,
}

/// The `Sec-WebSocket-Key` of a valid WebSocket upgrade request (RFC 6455, version 13).
fn handshake_key(h: &HeaderMap) -> Option<String> {
    let has = |name: header::HeaderName, token: &str| {
        h.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return None;
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()) != Some("13") {
        return None;
    }
    h.get(header::SEC_WEBSOCKET_KEY).and_then(|v| v.to_str().ok()).map(str::to_owned)
}
