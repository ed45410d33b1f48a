//! GraphQL over HTTP: `POST /graphql`, and `GET /graphql` for queries or the playground (the
//! WebSocket transport is [`super::ws`]).

use async_graphql::parser::types::OperationType;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::context::RequestContext;
use crate::error::{AppError, ErrorCode};
use crate::graphql::loaders::Loaders;
use crate::graphql::{decorate_response, error_response};
use crate::http::HttpState;
use crate::security::nesting;

fn json_response(rc: &RequestContext, resp: async_graphql::Response) -> Response {
    let mut r = (StatusCode::OK, axum::Json(resp)).into_response();
    r.headers_mut().insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(rc.locale.tag()));
    r
}

/// A GraphQL response holding the error `code` alone, decorated like every other, with its
/// status: what the transport answers when a request never reaches the schema.
pub(crate) fn request_error(rc: &RequestContext, code: ErrorCode) -> Response {
    let resp = error_response(AppError::new(code), rc);
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(resp)).into_response()
}

async fn execute(svc: &HttpState, rc: RequestContext, request: async_graphql::Request) -> Response {
    let request = request.data(rc.clone()).data(Loaders::new(&svc.state));
    let mut resp = svc.schema.execute(request).await;
    decorate_response(&mut resp, &rc);
    json_response(&rc, resp)
}

/// `POST /graphql`: one JSON request.
pub async fn post(State(svc): State<HttpState>, req: Request) -> Response {
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
pub async fn get(State(svc): State<HttpState>, req: Request) -> Response {
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
