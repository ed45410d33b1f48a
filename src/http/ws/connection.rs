//! The GraphQL WebSocket protocols on `/graphql/ws`: graphql-transport-ws ([graphql-ws]) and the
//! legacy graphql-ws ([subscriptions-transport-ws]).
//!
//! One task per connection reads the client's messages and writes what its operations send. An
//! event's payload arrives already serialised and shared by every subscriber with the same
//! selection ([`Fanout`]); the connection only wraps it in its own `next`/`data` message, so a
//! delivery costs one small copy and one write.
//!
//! [graphql-ws]: https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md
//! [subscriptions-transport-ws]: https://github.com/apollographql/subscriptions-transport-ws/blob/master/PROTOCOL.md

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::ClientMessage;
pub use async_graphql::http::WebSocketProtocols as Protocol;
use chrono::{DateTime, Utc};
use futures::SinkExt;
use futures::stream::{SelectAll, Stream, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::fanout::{Fanout, Operation, Out};
use super::frame::{close_frame, head, message, text};
use super::lanes::Sink;
use super::sessions::{SocketSessions, Watch};
use super::socket::{Socket, Writer};
use super::terms::{Bucket, Granted, Limits, Refusal, close};
use crate::context::RequestContext;
use crate::error::{AppError, ErrorCode};
use crate::security::nesting;
use crate::shutdown::Shutdown;

/// The first protocol of a `Sec-WebSocket-Protocol` header that Janua speaks.
pub fn negotiate(header: &str) -> Option<Protocol> {
    header.split(',').find_map(|p| p.trim().parse().ok())
}

/// The message type of an operation's result.
fn next_type(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::GraphQLWS => "next",
        Protocol::SubscriptionsTransportWS => "data",
    }
}

/// The close code of a server shutting down (RFC 6455: going away).
const GOING_AWAY: u16 = 1001;

/// The close reason for a message nested deeper than [`nesting::MAX_NESTING`].
const TOO_DEEP: &str = "Invalid message: nested too deeply";

/// An operation of the connection under its id; `None` once it ended or was stopped.
struct Tagged {
    id: Arc<str>,
    operation: Option<Operation>,
    /// Wakes the connection's poll of this operation when the client stops it.
    waker: Option<Waker>,
}

impl Tagged {
    /// Drops the operation (and its event stream) now; the connection forgets it at its next poll.
    fn stop(&mut self) {
        self.operation = None;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

impl Stream for Tagged {
    /// What operation `id` sends; `None` for its natural end (a `complete` is due).
    type Item = (Arc<str>, Option<Out>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(operation) = &mut this.operation else { return Poll::Ready(None) };
        match operation.poll_next_unpin(cx) {
            Poll::Ready(Some(out)) => Poll::Ready(Some((this.id.clone(), Some(out)))),
            Poll::Ready(None) => {
                this.operation = None;
                Poll::Ready(Some((this.id.clone(), None)))
            }
            Poll::Pending => {
                if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    this.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// How long the subscriptions of a connection whose session was revoked have to send their
/// last message (the revocation event and the `SESSION_REVOKED` error) before it closes anyway.
const REVOKED_GRACE: Duration = Duration::from_secs(2);

/// The session of a connection, as the connection watches it.
struct Session {
    watch: Watch,
    /// When the access token expires.
    expires: Instant,
}

/// Completes when `session` is revoked; never without one.
async fn revoked(session: Option<&Session>) {
    match session {
        Some(s) => s.watch.revoked().await,
        None => std::future::pending().await,
    }
}

/// The instant of the monotonic clock at wall-clock time `t` (now if it is past).
fn instant_at(t: DateTime<Utc>) -> Instant {
    Instant::now() + (t - Utc::now()).to_std().unwrap_or_default()
}

/// One connection: its protocol, the data `connection_init` gave it and its operations.
///
/// A connection lives no longer than the access token and the session it was authenticated
/// by: every operation is checked against the session's revocation (as HTTP checks every
/// request) and the token's expiry before it runs, and the connection closes when the session is
/// revoked — 4403 `SESSION_REVOKED`, woken by [`SocketSessions`] even when no subscription runs —
/// or when the token expires (4401 `TOKEN_EXPIRED`); the legacy protocol gets `connection_error`
/// and a normal close instead. graphql-transport-ws allows one `connection_init` per connection,
/// so a client renews by reconnecting with its new access token (and `after` to resume its
/// subscriptions). Operations beyond [`Limits`] are answered with `RATE_LIMITED`.
pub struct Connection<Init> {
    socket: WebSocketStream<Socket>,
    writer: Arc<Writer>,
    protocol: Protocol,
    fanout: Arc<Fanout>,
    sessions: Arc<SocketSessions>,
    init: Option<Init>,
    limits: Limits,
    opened: Instant,
    bucket: Bucket,
    data: Option<Arc<Data>>,
    context: RequestContext,
    session: Option<Session>,
    /// The connection's place in its user's count.
    _slot: Option<super::admission::Slot>,
    /// Set when the session was revoked while operations were running: the connection closes
    /// when they have ended, or at this instant.
    ending: Option<Instant>,
    /// The operations, running or with their end not yet sent.
    outgoing: SelectAll<Tagged>,
    /// The server's shutdown: the connection closes with 1001 (going away) when it begins.
    shutdown: Option<Shutdown>,
}

/// Completes when the server's shutdown begins; never without one.
async fn going_away(shutdown: Option<&Shutdown>) {
    match shutdown {
        Some(s) => {
            s.begun().await;
        }
        None => std::future::pending().await,
    }
}

/// What the connection does next.
enum Step {
    Incoming(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    /// A lane left bytes for the socket, or closed the connection.
    Drain,
    Out(Arc<str>, Option<Out>),
    /// The last operation was let go.
    Idle,
    /// The session was revoked.
    Revoked,
    Due(Due),
    /// The server is shutting down.
    GoingAway,
}

/// What the connection's one timer is set for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    /// No `connection_init` in time.
    Init,
    /// The revoked session's operations had their grace.
    Revoked,
    /// The access token expired.
    Expired,
}

/// Whether the connection goes on after a message.
type Flow = Result<(), ()>;
const STOP: Flow = Err(());

impl<Init, Fut> Connection<Init>
where
    Init: FnOnce(serde_json::Value) -> Fut + Send,
    Fut: Future<Output = Result<Granted, Refusal>> + Send,
{
    /// `init` turns the `connection_init` payload into what the connection is granted, or
    /// refuses it with a reason.
    pub fn new(
        socket: WebSocketStream<Socket>,
        protocol: Protocol,
        fanout: Arc<Fanout>,
        sessions: Arc<SocketSessions>,
        limits: Limits,
        init: Init,
    ) -> Self {
        let now = Instant::now();
        Self {
            writer: socket.get_ref().writer().clone(),
            socket,
            protocol,
            fanout,
            sessions,
            init: Some(init),
            limits,
            opened: now,
            bucket: Bucket::new(limits.operations_per_second, limits.operations_burst, now),
            data: None,
            context: RequestContext::default(),
            session: None,
            _slot: None,
            ending: None,
            outgoing: SelectAll::new(),
            shutdown: None,
        }
    }

    /// Closes the connection with 1001 (going away) when `shutdown` begins.
    pub fn until(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// What the timer is due for next, and when.
    fn due(&self) -> Option<(Instant, Due)> {
        if self.data.is_none() {
            return Some((self.opened + self.limits.init_timeout, Due::Init));
        }
        let expiry = self.session.as_ref().map(|s| (s.expires, Due::Expired));
        match (self.ending.map(|at| (at, Due::Revoked)), expiry) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Serves the connection until either side closes it.
    pub async fn serve(mut self) {
        let timer = tokio::time::sleep_until(self.opened + self.limits.init_timeout);
        tokio::pin!(timer);
        loop {
            if self.ending.is_some() && self.outgoing.is_empty() {
                let _ = self.refuse(close::FORBIDDEN, ErrorCode::SessionRevoked.as_str()).await;
                break;
            }
            let due = self.due();
            if let Some((at, _)) = due
                && timer.deadline() != at
            {
                timer.as_mut().reset(at);
            }
            let step = tokio::select! {
                biased;
                () = revoked(self.session.as_ref()), if self.ending.is_none() => Step::Revoked,
                () = going_away(self.shutdown.as_ref()) => Step::GoingAway,
                () = &mut timer, if due.is_some() => Step::Due(due.map_or(Due::Init, |d| d.1)),
                out = self.outgoing.next(), if !self.outgoing.is_empty() => match out {
                    Some((id, out)) => Step::Out(id, out),
                    None => Step::Idle,
                },
                m = self.socket.next() => Step::Incoming(m),
                () = self.writer.notify.notified() => Step::Drain,
            };
            let flow = match step {
                Step::Out(id, out) => self.send_out(id, out).await,
                Step::Idle => Ok(()),
                Step::Incoming(Some(Ok(Message::Text(t)))) => self.on_message(t.as_bytes()).await,
                Step::Incoming(Some(Ok(Message::Binary(_)))) => {
                    self.refuse_frame(close::UNSUPPORTED_DATA, "Binary messages are not accepted").await
                }
                Step::Incoming(Some(Err(WsError::Capacity(_)))) => {
                    self.refuse_frame(close::TOO_BIG, "Message too big").await
                }
                Step::Incoming(Some(Err(WsError::Utf8(_)))) => {
                    self.refuse_frame(close::INVALID_PAYLOAD, "Invalid UTF-8").await
                }
                Step::Incoming(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => Ok(()),
                Step::Incoming(_) => STOP,
                Step::Drain => std::future::poll_fn(|cx| self.writer.poll_drain(cx)).await.map_err(|_| ()),
                Step::Revoked => {
                    // Running subscriptions end by themselves on the same event, after sending
                    // it and the error; the connection closes when they are done (or soon).
                    self.ending = Some(Instant::now() + REVOKED_GRACE);
                    Ok(())
                }
                Step::Due(Due::Init) => {
                    self.refuse(close::INIT_TIMEOUT, "Connection initialisation timeout").await
                }
                Step::Due(Due::Revoked) => {
                    self.refuse(close::FORBIDDEN, ErrorCode::SessionRevoked.as_str()).await
                }
                // Both protocols: a WebSocket close, 1001 going away (RFC 6455 §7.4.1).
                Step::GoingAway => {
                    let _ = self.send(close_frame(GOING_AWAY, "server shutting down")).await;
                    STOP
                }
                Step::Due(Due::Expired) => {
                    self.refuse(close::UNAUTHORIZED, ErrorCode::TokenExpired.as_str()).await
                }
            };
            if flow.is_err() {
                break;
            }
        }
        // Lanes holding this connection's writer let it go at their next event.
        self.writer.close();
    }

    async fn send(&mut self, m: Message) -> Flow {
        self.socket.send(m).await.map_err(|_| ())
    }

    /// Ends the connection: graphql-transport-ws with a close code, legacy with
    /// `connection_error` (that protocol has no codes) and a normal close.
    async fn refuse(&mut self, code: u16, reason: &str) -> Flow {
        if self.protocol == Protocol::SubscriptionsTransportWS {
            let _ = self
                .send(text(serde_json::json!({"type": "connection_error", "payload": {"message": reason}})))
                .await;
            let _ = self.send(close_frame(1000, reason)).await;
        } else {
            let _ = self.send(close_frame(code, reason)).await;
        }
        STOP
    }

    /// Closes the connection with an RFC 6455 code (both protocols: the frame itself was refused).
    async fn refuse_frame(&mut self, code: u16, reason: &str) -> Flow {
        let _ = self.send(close_frame(code, reason)).await;
        STOP
    }

    /// Accepts what `connection_init` granted: the session is watched from now on (registered
    /// before the store is asked again, so a revocation is seen by one or the other).
    async fn grant(&mut self, granted: Granted) -> Flow {
        if let Some(s) = granted.session {
            let expires = instant_at(s.expires_at);
            if expires <= Instant::now() {
                return self.refuse(close::FORBIDDEN, ErrorCode::TokenExpired.as_str()).await;
            }
            let watch = self.sessions.watch(s.id);
            match self.sessions.is_revoked(s.id).await {
                Ok(false) => self.session = Some(Session { watch, expires }),
                Ok(true) => return self.refuse(close::FORBIDDEN, ErrorCode::SessionRevoked.as_str()).await,
                Err(_) => return self.refuse(close::FORBIDDEN, ErrorCode::InternalError.as_str()).await,
            }
        }
        self.context = granted.context;
        self._slot = granted.slot;
        self.data = Some(Arc::new(granted.data));
        self.send(text(serde_json::json!({"type": "connection_ack"}))).await
    }

    /// Answers operation `id` with `error` alone (it does not run).
    async fn answer_error(&mut self, id: &str, error: AppError) -> Flow {
        let response = crate::graphql::error_response(error, &self.context);
        let payload = serde_json::to_string(&response).map_err(|_| ())?;
        self.send(message(next_type(self.protocol), id, Some(&payload))).await
    }

    /// Whether operation `id` may run: within the connection's allowance (else it is answered
    /// with `RATE_LIMITED` and completed), and its session neither revoked nor expired (else it
    /// is answered with that error and the connection closes). `None` lets it run.
    async fn admit(&mut self, id: &str) -> Option<Flow> {
        let now = Instant::now();
        if !self.bucket.take(now) {
            metrics::counter!("janua_ws_operations_limited_total").increment(1);
            return Some(self.refuse_operation(id, AppError::new(ErrorCode::RateLimited)).await);
        }
        let (sid, expires) = self.session.as_ref().map(|s| (s.watch.session(), s.expires))?;
        let refused = if self.ending.is_some() {
            ErrorCode::SessionRevoked
        } else if now >= expires {
            ErrorCode::TokenExpired
        } else {
            match self.sessions.is_revoked(sid).await {
                Ok(false) => return None,
                Ok(true) => ErrorCode::SessionRevoked,
                Err(e) => return Some(self.refuse_operation(id, AppError::internal(e)).await),
            }
        };
        let _ = self.answer_error(id, AppError::new(refused)).await;
        let code = if refused == ErrorCode::TokenExpired { close::UNAUTHORIZED } else { close::FORBIDDEN };
        Some(self.refuse(code, refused.as_str()).await)
    }

    /// Answers operation `id` with `error` and completes it; the connection goes on.
    async fn refuse_operation(&mut self, id: &str, error: AppError) -> Flow {
        self.answer_error(id, error).await?;
        self.send(message("complete", id, None)).await
    }

    /// Every message is checked for nesting before it is parsed, and a `subscribe`/`start`
    /// payload before its document is: input nested deeper than [`nesting::MAX_NESTING`] closes
    /// the connection with 4400, as any invalid message does (legacy: `connection_error`).
    async fn on_message(&mut self, bytes: &[u8]) -> Flow {
        if nesting::check_json(bytes).is_err() {
            return self.refuse(close::BAD_REQUEST, TOO_DEEP).await;
        }
        let msg = match serde_json::from_slice::<ClientMessage>(bytes) {
            Ok(m) => m,
            Err(e) => return self.refuse(close::BAD_REQUEST, &format!("Invalid message: {e}")).await,
        };
        match msg {
            ClientMessage::ConnectionInit { payload } => {
                let Some(init) = self.init.take() else {
                    return self.refuse(close::TOO_MANY_INITS, "Too many initialisation requests").await;
                };
                match init(payload.unwrap_or_default()).await {
                    Ok(granted) => self.grant(granted).await,
                    Err(r) => self.refuse(r.code, &r.reason).await,
                }
            }
            ClientMessage::Start { id, payload } => {
                let Some(data) = self.data.clone() else {
                    return self.refuse(close::UNAUTHORIZED, "Unauthorized").await;
                };
                if nesting::check_request(&payload).is_err() {
                    return self.refuse(close::BAD_REQUEST, TOO_DEEP).await;
                }
                let id: Arc<str> = id.into();
                if self.running(&id) {
                    if self.protocol == Protocol::GraphQLWS {
                        return self
                            .refuse(close::DUPLICATE_ID, &format!("Subscriber for {id} already exists"))
                            .await;
                    }
                    // The legacy protocol lets a client restart an operation under its id.
                    self.stop(&id);
                }
                if self.outgoing.iter().filter(|t| t.operation.is_some()).count()
                    >= self.limits.max_operations
                {
                    metrics::counter!("janua_ws_operations_limited_total").increment(1);
                    let max = self.limits.max_operations;
                    let e = AppError::new(ErrorCode::RateLimited)
                        .with_details(serde_json::json!({ "max_operations": max }));
                    return self
                        .answer_request_error(&id, crate::graphql::error_response(e, &self.context))
                        .await;
                }
                if let Some(flow) = self.admit(&id).await {
                    return flow;
                }
                // A lane writes this prefix, the shared payload and `}`: the same message as below.
                let prefix = head(next_type(self.protocol), &id) + ",\"payload\":";
                let sink = Arc::new(Sink::new(self.writer.clone(), prefix));
                let operation = self.fanout.open(payload, data, Some(sink));
                self.outgoing.push(Tagged { id, operation: Some(operation), waker: None });
                Ok(())
            }
            ClientMessage::Stop { id } => {
                if self.running(&id) {
                    self.stop(&id);
                    self.send(message("complete", &id, None)).await
                } else {
                    Ok(())
                }
            }
            ClientMessage::ConnectionTerminate => STOP,
            ClientMessage::Ping { .. } => self.send(text(serde_json::json!({"type": "pong"}))).await,
            ClientMessage::Pong { .. } => Ok(()),
        }
    }

    /// Whether operation `id` is running: neither ended nor stopped.
    fn running(&self, id: &str) -> bool {
        self.outgoing.iter().any(|t| &*t.id == id && t.operation.is_some())
    }

    /// Stops operation `id` (its `complete` is the caller's to send).
    fn stop(&mut self, id: &str) {
        for t in self.outgoing.iter_mut().filter(|t| &*t.id == id) {
            t.stop();
        }
    }

    /// Answers operation `id`, refused before it ran, with graphql-transport-ws's `error`
    /// message (its last: no `complete` follows); the legacy protocol's `data` and `complete`.
    async fn answer_request_error(&mut self, id: &str, r: async_graphql::Response) -> Flow {
        if self.protocol != Protocol::GraphQLWS {
            let payload = serde_json::to_string(&r).map_err(|_| ())?;
            self.send(message(next_type(self.protocol), id, Some(&payload))).await?;
            return self.send(message("complete", id, None)).await;
        }
        let errors = serde_json::to_string(&r.errors).map_err(|_| ())?;
        self.send(message("error", id, Some(&errors))).await
    }

    /// Sends what operation `id` produced; `None` is its end.
    async fn send_out(&mut self, id: Arc<str>, out: Option<Out>) -> Flow {
        let next = next_type(self.protocol);
        match out {
            Some(Out::Shared(payload)) => self.send(message(next, &id, Some(&payload))).await,
            Some(Out::Response(r)) if crate::graphql::is_request_error(&r) => {
                let flow = self.answer_request_error(&id, r).await;
                self.stop(&id);
                flow
            }
            Some(Out::Response(r)) => {
                let payload = serde_json::to_string(&r).map_err(|_| ())?;
                self.send(message(next, &id, Some(&payload))).await
            }
            Some(Out::Revoked(r)) => {
                // The connection was authenticated by the revoked session: every operation on it
                // ends, with the error to say why.
                let payload = serde_json::to_string(&r).map_err(|_| ())?;
                self.send(message(next, &id, Some(&payload))).await?;
                self.refuse(close::FORBIDDEN, "SESSION_REVOKED").await
            }
            None => self.send(message("complete", &id, None)).await,
        }
    }
}
