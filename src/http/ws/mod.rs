//! The WebSocket transport of GraphQL, `/graphql/ws`: the sockets ([`socket`]), the protocol
//! connection ([`connection`]) and its terms ([`terms`]), the sessions its connections run under ([`sessions`]), and the
//! fan-out of subscription events — operations ([`fanout`]), the pool of live subscribers
//! ([`pool`]), the event lanes that write to them ([`lanes`]) and the frames they write
//! ([`frame`]). What an event's bytes are is GraphQL's business ([`crate::graphql::render`]);
//! where and when they are written is this module's.

pub mod admission;
pub mod connection;
pub mod fanout;
mod frame;
mod lanes;
mod pool;
pub mod sessions;
pub mod socket;
mod terms;

use async_graphql::Data;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

pub use connection::Connection;
pub use fanout::Fanout;
pub use lanes::Sink;
pub use sessions::SocketSessions;
pub use terms::{Granted, Limits, Refusal, SessionGrant};

use crate::context::{Actor, RequestContext};
use crate::error::ErrorCode;
use crate::graphql::loaders::Loaders;
use crate::http::HttpState;
use crate::http::graphql::request_error;
use crate::services::auth;

/// Read buffer of a subscription WebSocket, in bytes (larger messages still arrive whole, in
/// several reads).
const WS_READ_BUFFER: usize = 512;

/// `GET /graphql/ws`: subscriptions (and queries and mutations) over graphql-transport-ws or the
/// legacy graphql-ws. The access token comes in `connection_init` (`{"authorization": "Bearer …"}`);
/// a bad token refuses the connection with its error code. The connection lasts as long as that
/// token and its session: it closes when the session is revoked (4403 `SESSION_REVOKED`) or the
/// token expires (4401 `TOKEN_EXPIRED`), and a client renews by reconnecting with a fresh token
/// (one `connection_init` per connection). See [`Connection`].
pub async fn endpoint(
    State(svc): State<HttpState>,
    axum::Extension(rc): axum::Extension<RequestContext>,
    mut req: Request,
) -> Response {
    let Some(protocol) = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(connection::negotiate)
    else {
        return request_error(&rc, ErrorCode::BadRequest);
    };
    let Some(peer) = req.extensions().get::<axum::extract::ConnectInfo<socket::Peer>>().map(|c| c.0.clone())
    else {
        return request_error(&rc, ErrorCode::BadRequest);
    };
    let Ok((response, socket)) = socket::accept(&mut req, &peer, protocol.sec_websocket_protocol()) else {
        return request_error(&rc, ErrorCode::BadRequest);
    };
    let fanout = svc.ws.clone();
    let sessions = svc.ws_sessions.clone();
    let state = svc.state.clone();
    // Clients send a few small messages (init, subscribe, complete): a small read buffer keeps
    // an idle subscriber cheap (the 128 KiB default is allocated, and zeroed on every read).
    // A client message is a request like a POST body, and limited the same way.
    let limit = state.config.body_limit;
    let config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let limits = Limits {
        init_timeout: state.config.ws_init_timeout,
        operations_per_second: state.config.ws_operations_per_second,
        operations_burst: state.config.ws_operations_burst,
        max_operations: state.config.ws_max_operations,
    };
    let shutdown = state.shutdown.clone();
    let counts = svc.ws_connections.clone();
    tokio::spawn(async move {
        // The drain waits for the connection to end (it closes with 1001 when it begins).
        let _held = shutdown.hold();
        let Some(socket) = socket.await else { return };
        let ws = WebSocketStream::from_raw_socket(socket, Role::Server, Some(config)).await;
        Connection::new(
            ws,
            protocol,
            fanout,
            sessions,
            limits,
            move |payload: serde_json::Value| async move {
                let token = ["authorization", "Authorization"]
                    .iter()
                    .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
                    .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_owned());
                let mut rc = rc;
                let mut session = None;
                if let Some(token) = token {
                    let (user, expires_at) = auth::authenticate_with_expiry(&state, &token)
                        .await
                        .map_err(|e| Refusal::forbidden(e.code.as_str()))?;
                    session = Some(SessionGrant { id: user.session_id, expires_at });
                    rc.actor = Actor::User(user);
                }
                // A signed-in user counts by id; an anonymous client by its address.
                let key = match &rc.actor {
                    Actor::User(u) => format!("user:{}", u.user_id),
                    _ => format!(
                        "ip:{}",
                        rc.client_ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
                    ),
                };
                let slot = Some(counts.take(key).ok_or_else(Refusal::too_many_connections)?);
                let mut data = Data::default();
                data.insert(rc.clone());
                data.insert(Loaders::new(&state));
                Ok(Granted { data, context: rc, session, slot })
            },
        )
        .until(shutdown)
        .serve()
        .await
    });
    response
}
