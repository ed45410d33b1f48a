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
use futures::SinkExt;
use futures::stream::{SelectAll, Stream, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::nesting;
use super::ws_socket::{Socket, Writer};
use crate::graphql::fanout::{Fanout, Operation, Out, Sink};

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

/// Close codes of graphql-transport-ws.
mod close {
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
}

/// The close reason for a message nested deeper than [`nesting::MAX_NESTING`].
const TOO_DEEP: &str = "Invalid message: nested too deeply";

/// `{"type":…,"id":…` — the start of every message about operation `id`.
fn head(kind: &str, id: &str) -> String {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into());
    format!("{{\"type\":\"{kind}\",\"id\":{id}")
}

/// `{"type":…,"id":…,"payload":…}` with `payload` already JSON.
fn message(kind: &str, id: &str, payload: Option<&str>) -> Message {
    let mut s = head(kind, id);
    if let Some(p) = payload {
        s.push_str(",\"payload\":");
        s.push_str(p);
    }
    s.push('}');
    Message::Text(s.into())
}

fn text(v: serde_json::Value) -> Message {
    Message::Text(v.to_string().into())
}

/// A close frame; its reason is cut to the 123 bytes a control frame has room for.
fn close_frame(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code: code.into(), reason: Utf8Bytes::from(&reason[..end]) }))
}

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

/// One connection: its protocol, the data `connection_init` gave it and its operations.
pub struct Connection<Init> {
    socket: WebSocketStream<Socket>,
    writer: Arc<Writer>,
    protocol: Protocol,
    fanout: Arc<Fanout>,
    init: Option<Init>,
    /// How long the client may take to send `connection_init` (graphql-transport-ws closes the
    /// connection with 4408 after it; a legacy client gets `connection_error`).
    init_timeout: Duration,
    data: Option<Arc<Data>>,
    /// The operations, running or with their end not yet sent.
    outgoing: SelectAll<Tagged>,
}

/// What the connection does next.
enum Step {
    Incoming(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    /// A lane left bytes for the socket, or closed the connection.
    Drain,
    Out(Arc<str>, Option<Out>),
    InitTimeout,
}

/// Whether the connection goes on after a message.
type Flow = Result<(), ()>;
const STOP: Flow = Err(());

impl<Init, Fut> Connection<Init>
where
    Init: FnOnce(serde_json::Value) -> Fut + Send,
    Fut: Future<Output = Result<Data, String>> + Send,
{
    /// `init` turns the `connection_init` payload into the connection's data, or refuses it
    /// with a reason.
    pub fn new(
        socket: WebSocketStream<Socket>,
        protocol: Protocol,
        fanout: Arc<Fanout>,
        init_timeout: Duration,
        init: Init,
    ) -> Self {
        Self {
            writer: socket.get_ref().writer().clone(),
            socket,
            protocol,
            fanout,
            init: Some(init),
            init_timeout,
            data: None,
            outgoing: SelectAll::new(),
        }
    }

    /// Serves the connection until either side closes it.
    pub async fn serve(mut self) {
        let deadline = tokio::time::sleep(self.init_timeout);
        tokio::pin!(deadline);
        loop {
            let step = tokio::select! {
                biased;
                Some((id, out)) = self.outgoing.next(), if !self.outgoing.is_empty() => Step::Out(id, out),
                m = self.socket.next() => Step::Incoming(m),
                () = self.writer.notify.notified() => Step::Drain,
                () = &mut deadline, if self.data.is_none() => Step::InitTimeout,
            };
            let flow = match step {
                Step::Out(id, out) => self.send_out(id, out).await,
                Step::Incoming(Some(Ok(Message::Text(t)))) => self.on_message(t.as_bytes()).await,
                Step::Incoming(Some(Ok(Message::Binary(b)))) => self.on_message(&b).await,
                Step::Incoming(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => Ok(()),
                Step::Incoming(_) => STOP,
                Step::Drain => std::future::poll_fn(|cx| self.writer.poll_drain(cx)).await.map_err(|_| ()),
                Step::InitTimeout => {
                    self.refuse(close::INIT_TIMEOUT, "Connection initialisation timeout").await
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
                    Ok(data) => {
                        self.data = Some(Arc::new(data));
                        self.send(text(serde_json::json!({"type": "connection_ack"}))).await
                    }
                    Err(reason) => self.refuse(close::FORBIDDEN, &reason).await,
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

    /// Sends what operation `id` produced; `None` is its end.
    async fn send_out(&mut self, id: Arc<str>, out: Option<Out>) -> Flow {
        let next = next_type(self.protocol);
        match out {
            Some(Out::Shared(payload)) => self.send(message(next, &id, Some(&payload))).await,
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
