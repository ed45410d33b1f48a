//! GraphQL over HTTP (the GraphQL Foundation's specification): `POST /graphql` with an
//! `application/json` body (one request, or a batch as a JSON array of at most
//! `JANUA_GRAPHQL_BATCH_LIMIT`), and `GET /graphql` for queries or the playground (the
//! WebSocket transport is [`super::ws`]).
//!
//! The response media type follows `Accept`: `application/graphql-response+json` when the
//! client prefers it — then a request that fails before execution (a document that does not
//! parse or validate, variables that do not coerce, the limits) is a 400 without `data` — and
//! otherwise `application/json` under the specification's legacy rules (such a response is a
//! 200). A request the transport refuses before the schema sees it has its code's status under
//! either: 400 for a body that is not a GraphQL request, 413, 415 for a POST that is not
//! `application/json`, 405 for a mutation over GET.
//!
//! The request types are async-graphql's (`Request`, its query-string reader); the body is read
//! here rather than by async-graphql-axum's extractor, which reads without a size bound, takes a
//! POST without a content type for JSON and answers every response as
//! `application/graphql-response+json` with a 200 — the three things the specification and the
//! limits ask otherwise.

use async_graphql::parser::types::OperationType;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::context::RequestContext;
use crate::error::{AppError, ErrorCode};
use crate::graphql::loaders::Loaders;
use crate::graphql::{decorate_response, error_response, is_request_error};
use crate::http::HttpState;
use crate::rest::body;
use crate::security::nesting;

/// `application/graphql-response+json`.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// The media type a response is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `application/graphql-response+json`: request errors are 4xx.
    GraphqlResponse,
    /// `application/json` (legacy): every GraphQL response is a 200.
    Json,
}

impl Media {
    /// The media type `Accept` prefers: `application/graphql-response+json` when it is named with
    /// a q-value at least that of `application/json` (or of a wildcard standing for it); else
    /// `application/json`, which is also the answer to no `Accept` at all.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let (mut gr, mut json) = (None::<f32>, None::<f32>);
        let mut wildcard = None::<f32>;
        for v in headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()) {
            for range in v.split(',') {
                let mut parts = range.split(';');
                let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                    .next()
                    .unwrap_or(1.0);
                let slot = match media.as_str() {
                    GRAPHQL_RESPONSE_JSON => &mut gr,
                    "application/json" => &mut json,
                    "*/*" | "application/*" => &mut wildcard,
                    _ => continue,
                };
                *slot = Some(slot.map_or(q, |s: f32| s.max(q)));
            }
        }
        match gr {
            Some(q) if q > 0.0 && q >= json.or(wildcard).unwrap_or(0.0) => Self::GraphqlResponse,
            _ => Self::Json,
        }
    }

    fn content_type(self) -> HeaderValue {
        match self {
            Self::GraphqlResponse => HeaderValue::from_static(GRAPHQL_RESPONSE_JSON),
            Self::Json => HeaderValue::from_static("application/json"),
        }
    }
}

/// `resp` as JSON: without `data` when it failed before execution (GraphQL's own rule for
/// request errors).
fn response_json(resp: &async_graphql::Response) -> Value {
    let mut v = serde_json::to_value(resp).unwrap_or(Value::Null);
    if is_request_error(resp)
        && let Value::Object(o) = &mut v
    {
        o.remove("data");
    }
    v
}

fn write(rc: &RequestContext, media: Media, status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, media.content_type());
    h.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(rc.locale.tag()));
    r
}

/// A GraphQL response holding the error `code` alone, decorated like every other, with its
/// status: what the transport answers when a request never reaches the schema.
pub(crate) fn request_error(rc: &RequestContext, code: ErrorCode) -> Response {
    refuse(rc, Media::Json, AppError::new(code))
}

/// As [`request_error`], for an error with details, in `media`.
fn refuse(rc: &RequestContext, media: Media, e: AppError) -> Response {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let resp = error_response(e, rc);
    write(rc, media, status, &response_json(&resp))
}

/// Runs one request with the caller's context and its own loaders.
async fn run(
    svc: &HttpState,
    rc: &RequestContext,
    request: async_graphql::Request,
) -> async_graphql::Response {
    let request = request.data(rc.clone()).data(Loaders::new(&svc.state));
    let mut resp = svc.schema.execute(request).await;
    decorate_response(&mut resp, rc);
    resp
}

/// The answer to one request: under `application/graphql-response+json`, 400 for a request
/// error; otherwise 200.
async fn execute(
    svc: &HttpState,
    rc: &RequestContext,
    media: Media,
    request: async_graphql::Request,
) -> Response {
    let resp = run(svc, rc, request).await;
    let status = if media == Media::GraphqlResponse && is_request_error(&resp) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    write(rc, media, status, &response_json(&resp))
}

/// The parameters of one request, read strictly (GraphQL over HTTP §"Request Parameters"):
/// `query` a string, `operationName` a string or null, `variables` and `extensions` maps or null.
#[derive(Deserialize)]
struct Params {
    query: Option<String>,
    #[serde(rename = "operationName", default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
    #[serde(default)]
    extensions: Option<Map<String, Value>>,
}

/// One request of a body: `BAD_REQUEST` unless its parameters are well typed and it has a query.
fn request_of(v: Value) -> Result<async_graphql::Request, AppError> {
    let p: Params = serde_json::from_value(v).map_err(|_| AppError::new(ErrorCode::BadRequest))?;
    let query = p.query.ok_or_else(|| AppError::new(ErrorCode::BadRequest))?;
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = p.operation_name {
        request = request.operation_name(name);
    }
    if let Some(vars) = p.variables {
        request = request.variables(async_graphql::Variables::from_json(Value::Object(vars)));
    }
    for (k, v) in p.extensions.unwrap_or_default() {
        request.extensions.insert(k, async_graphql::Value::from_json(v).unwrap_or_default());
    }
    nesting::check_request(&request)?;
    Ok(request)
}

/// Whether a POST's `Content-Type` is one `/graphql` reads: `application/json`, in UTF-8.
fn json_body(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case("application/json")
        && parts.all(|p| match p.trim().split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
                v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            _ => true,
        })
}

/// `POST /graphql`: one JSON request, or a batch (a JSON array).
pub async fn post(State(svc): State<HttpState>, req: Request) -> Response {
    let rc = req.extensions().get::<RequestContext>().cloned().unwrap_or_default();
    let media = Media::negotiate(req.headers());
    if !json_body(req.headers()) {
        return refuse(&rc, media, AppError::new(ErrorCode::UnsupportedMediaType));
    }
    let bytes = match body::read(req.into_body(), svc.state.config.body_limit).await {
        Ok(b) => b,
        Err(e) => return refuse(&rc, media, e),
    };
    if let Err(e) = body::utf8(&bytes) {
        return refuse(&rc, media, e);
    }
    if let Err(e) = nesting::check_json(&bytes) {
        return refuse(&rc, media, e);
    }
    let parsed = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => v,
        Err(_) => return refuse(&rc, media, AppError::new(ErrorCode::BadRequest)),
    };
    match parsed {
        Value::Array(items) => batch(&svc, &rc, media, items).await,
        single => match request_of(single) {
            Ok(request) => execute(&svc, &rc, media, request).await,
            Err(e) => refuse(&rc, media, e),
        },
    }
}

/// A batch: each request run in turn, the answers in one array (a 200: each holds its own
/// errors). Empty or longer than `JANUA_GRAPHQL_BATCH_LIMIT` (`details.max_batch`), or with a
/// member that is not a request: 400 `BAD_REQUEST`, nothing run.
async fn batch(svc: &HttpState, rc: &RequestContext, media: Media, items: Vec<Value>) -> Response {
    let limit = svc.state.config.graphql_batch_limit;
    if items.is_empty() || items.len() > limit {
        let e = AppError::new(ErrorCode::BadRequest).with_details(serde_json::json!({ "max_batch": limit }));
        return refuse(rc, media, e);
    }
    let requests: Result<Vec<_>, _> = items.into_iter().map(request_of).collect();
    let requests = match requests {
        Ok(r) => r,
        Err(e) => return refuse(rc, media, e),
    };
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        answers.push(response_json(&run(svc, rc, request).await));
    }
    write(rc, media, StatusCode::OK, &Value::Array(answers))
}

/// `GET /graphql`: the GraphiQL playground for browsers, otherwise a query (never a mutation:
/// 405).
pub async fn get(State(svc): State<HttpState>, req: Request) -> Response {
    let rc = req.extensions().get::<RequestContext>().cloned().unwrap_or_default();
    let media = Media::negotiate(req.headers());
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let query = req.uri().query().unwrap_or_default();
    if wants_html || query.is_empty() {
        return super::pages::graphiql();
    }
    // Its variables and extensions are JSON read by serde_json, which stops at 128 levels on its
    // own; the document is checked before anything parses it.
    let Ok(mut request) = async_graphql::http::parse_query_string(query) else {
        return refuse(&rc, media, AppError::new(ErrorCode::BadRequest));
    };
    if let Err(e) = nesting::check_request(&request) {
        return refuse(&rc, media, e);
    }
    let is_mutation = request
        .parsed_query()
        .ok()
        .is_some_and(|doc| doc.operations.iter().any(|(_, op)| op.node.ty != OperationType::Query));
    if is_mutation {
        let mut r = refuse(&rc, media, AppError::new(ErrorCode::MethodNotAllowed));
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    execute(&svc, &rc, media, request).await
}
