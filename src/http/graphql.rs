//! GraphQL over HTTP (`POST /graphql`, `GET /graphql` for queries or the playground) and over
//! WebSocket (`/graphql/ws`, graphql-transport-ws and legacy graphql-ws).

use async_graphql::parser::types::OperationType;
use async_graphql::{Data, ServerError};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::app::Services;
use crate::context::{Actor, RequestContext};
use crate::error::{AppError, ErrorCode};
use crate::graphql::decorate_response;
use crate::graphql::loaders::Loaders;
use crate::http::graphql_ws::{self, Connection, Granted, Limits, SessionGrant};
use crate::http::nesting;
use crate::http::ws_socket;
use crate::services::auth;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

fn json_response(rc: &RequestContext, resp: async_graphql::Response) -> Response {
    let mut r = (StatusCode::OK, axum::Json(resp)).into_response();
    r.headers_mut().insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(rc.locale.tag()));
    r
}

fn request_error(rc: &RequestContext, code: ErrorCode) -> Response {
    let mut resp = async_graphql::Response::from_errors(vec![ServerError::new(
        AppError::new(code).message(rc.locale),
        None,
    )]);
    decorate_response(&mut resp, rc);
    for e in &mut resp.errors {
        if let Some(ext) = e.extensions.as_mut() {
            ext.set("code", code.as_str());
        }
    }
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(resp)).into_response()
}

async fn execute(svc: &Services, rc: RequestContext, request: async_graphql::Request) -> Response {
    let request = request.data(rc.clone()).data(Loaders::new(&svc.state));
    let mut resp = svc.schema.execute(request).await;
    decorate_response(&mut resp, &rc);
    json_response(&rc, resp)
}

/// `POST /graphql`: one JSON request.
pub async fn post(State(svc): State<Services>, req: Request) -> Response {
    let rc = req.extensions().get::<RequestContext>().cloned().unwrap_or_default();
    let Ok(bytes) = axum::body::to_bytes(req.into_body(), svc.state.config.body_limit).await else {
        return request_error(&rc, ErrorCode::PayloadTooLarge);
    };
    if let Err(e) = nesting::check_json(&bytes) {
        return request_error(&rc, e.code);
    }
    let Ok(request) = serde_json::from_slice::<async_graphql::Request>(&bytes) else {
        return request_error(&rc, ErrorCode::BadRequest);
    };
    if let Err(e) = nesting::check_request(&request) {
        return request_error(&rc, e.code);
    }
    execute(&svc, rc, request).await
}

/// `GET /graphql`: the GraphiQL playground for browsers, otherwise a query (never a mutation).
pub async fn get(State(svc): State<Services>, req: Request) -> Response {
    let rc = req.extensions().get::<RequestContext>().cloned().unwrap_or_default();
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let query = req.uri().query().unwrap_or_default();
    if wants_html || query.is_empty() {
        return Html(super::pages::GRAPHIQL_HTML).into_response();
    }
    // Its variables and extensions are JSON read by serde_json, which stops at 128 levels on its
    // own; the document is checked before anything parses it.
    let Ok(mut request) = async_graphql::http::parse_query_string(query) else {
        return request_error(&rc, ErrorCode::BadRequest);
    };
    if let Err(e) = nesting::check_request(&request) {
        return request_error(&rc, e.code);
    }
    let is_mutation = request
        .parsed_query()
        .ok()
        .is_some_and(|doc| doc.operations.iter().any(|(_, op)| op.node.ty != OperationType::Query));
    if is_mutation {
        return request_error(&rc, ErrorCode::MethodNotAllowed);
    }
    execute(&svc, rc, request).await
}

/// Read buffer of a subscription WebSocket, in bytes (larger messages still arrive whole, in
/// several reads).
const WS_READ_BUFFER: usize = 512;

/// `GET /graphql/ws`: subscriptions (and queries and mutations) over graphql-transport-ws or the
/// legacy graphql-ws. The access token comes in `connection_init` (`{"authorization": "Bearer …"}`);
/// a bad token refuses the connection with its error code. The connection lasts as long as that
/// token and its session: it closes when the session is revoked (4403 `SESSION_REVOKED`) or the
/// token expires (4401 `TOKEN_EXPIRED`), and a client renews by reconnecting with a fresh token
/// (one `connection_init` per connection). See [`Connection`].
pub async fn ws(
    State(svc): State<Services>,
    axum::Extension(rc): axum::Extension<RequestContext>,
    mut req: Request,
) -> Response {
    let Some(protocol) = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(graphql_ws::negotiate)
    else {
        return request_error(&rc, ErrorCode::BadRequest);
    };
    let Some(peer) =
        req.extensions().get::<axum::extract::ConnectInfo<ws_socket::Peer>>().map(|c| c.0.clone())
    else {
        return request_error(&rc, ErrorCode::BadRequest);
    };
    let Ok((response, socket)) = ws_socket::accept(&mut req, &peer, protocol.sec_websocket_protocol()) else {
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
    };
    tokio::spawn(async move {
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
                        .map_err(|e| e.code.as_str().to_owned())?;
                    session = Some(SessionGrant { id: user.session_id, expires_at });
                    rc.actor = Actor::User(user);
                }
                let mut data = Data::default();
                data.insert(rc.clone());
                data.insert(Loaders::new(&state));
                Ok(Granted { data, context: rc, session })
            },
        )
        .serve()
        .await
    });
    response
}
