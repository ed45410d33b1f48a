//! SCIM 2.0 over HTTP (RFC 7644), at `/api/v1/scim/v2` and `/api/v1/scim`: `application/scim+json`
//! in and out (plain JSON accepted), SCIM `ListResponse` and `Error` bodies (never the
//! envelope), ETags, and the organization's SCIM token as the bearer. The rules live in
//! `services::scim`; `request` reads requests, `render` writes answers, this file routes.

mod render;
mod request;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any};
use serde_json::{Value, json};

use render::{error, list_response, listed, not_modified_or, resource, scim_error_status, scim_json};
use request::{ListQuery, Projection, base_of, last_segment, read_body, search_params};

use crate::context::{Actor, RequestContext};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::HttpState;
use crate::http::middleware::{bearer, rate_headers};
use crate::services::scim::resource::Edit;
use crate::services::scim::{ListParams, ListResult, groups, schema, search, tokens, users};

/// The two resource types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    User,
    Group,
}

impl Kind {
    fn endpoint(self) -> &'static str {
        match self {
            Self::User => "/Users",
            Self::Group => "/Groups",
        }
    }
}

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    ServiceProviderConfig,
    Schemas,
    Schema,
    ResourceTypes,
    ResourceType,
    List(Kind),
    Search(Kind),
    Create(Kind),
    Get(Kind),
    Replace(Kind),
    Patch(Kind),
    Delete(Kind),
    SearchAll,
    Unknown,
}

impl Op {
    fn public(self) -> bool {
        matches!(
            self,
            Self::ServiceProviderConfig
                | Self::Schemas
                | Self::Schema
                | Self::ResourceTypes
                | Self::ResourceType
        )
    }
}

/// The SCIM routes, for both prefixes (`/scim/v2` and `/scim`), to merge into `/api/v1`.
/// `e` as a SCIM `Error` (for answers the transport gives before a SCIM handler runs).
pub fn error_response(
    rc: &crate::context::RequestContext,
    e: &crate::error::AppError,
) -> axum::response::Response {
    render::error(rc, e)
}

/// Whether `path` is one of the SCIM endpoints (not the token routes of the REST API).
pub fn is_scim_path(path: &str) -> bool {
    path.starts_with("/api/v1/scim/") && !path.starts_with("/api/v1/scim/tokens")
}

pub fn routes() -> Router<HttpState> {
    let mut r = Router::new();
    for prefix in ["/scim/v2", "/scim"] {
        let at = |p: &str| format!("{prefix}{p}");
        let only = |m: Method, op: Op| on_method(vec![(m, op)]);
        r = r
            .route(&at("/ServiceProviderConfig"), only(Method::GET, Op::ServiceProviderConfig))
            .route(&at("/Schemas"), only(Method::GET, Op::Schemas))
            .route(&at("/Schemas/{id}"), only(Method::GET, Op::Schema))
            .route(&at("/ResourceTypes"), only(Method::GET, Op::ResourceTypes))
            .route(&at("/ResourceTypes/{id}"), only(Method::GET, Op::ResourceType))
            .route(&at("/.search"), only(Method::POST, Op::SearchAll));
        for kind in [Kind::User, Kind::Group] {
            let e = kind.endpoint();
            r = r
                .route(
                    &at(e),
                    on_method(vec![(Method::GET, Op::List(kind)), (Method::POST, Op::Create(kind))]),
                )
                .route(&at(&format!("{e}/.search")), only(Method::POST, Op::Search(kind)))
                .route(
                    &at(&format!("{e}/{{id}}")),
                    on_method(vec![
                        (Method::GET, Op::Get(kind)),
                        (Method::PUT, Op::Replace(kind)),
                        (Method::PATCH, Op::Patch(kind)),
                        (Method::DELETE, Op::Delete(kind)),
                    ]),
                );
        }
    }
    // Anything else under the SCIM prefixes is a SCIM 404 (the `v2` tail included).
    r.route("/scim/v2/{*rest}", any(unknown)).route("/scim/{*rest}", any(unknown))
}

async fn unknown(State(svc): State<HttpState>, req: Request) -> Response {
    serve(svc, req, Op::Unknown).await
}

fn on_method(ops: Vec<(Method, Op)>) -> MethodRouter<HttpState> {
    let mut mr: MethodRouter<HttpState> = MethodRouter::new();
    for (m, op) in ops {
        let h = move |State(svc): State<HttpState>, req: Request| serve(svc, req, op);
        mr = match m {
            Method::GET => mr.get(h),
            Method::POST => mr.post(h),
            Method::PUT => mr.put(h),
            Method::PATCH => mr.patch(h),
            _ => mr.delete(h),
        };
    }
    mr.fallback(|req: Request| async move {
        let rc = context_of(&req);
        error(&rc, &AppError::new(ErrorCode::MethodNotAllowed))
    })
}

fn context_of(req: &Request) -> RequestContext {
    req.extensions().get::<RequestContext>().cloned().unwrap_or_default()
}

/// Serves one SCIM request: its own request limit, the token, the body, the operation.
async fn serve(svc: HttpState, req: Request, op: Op) -> Response {
    let mut rc = context_of(&req);
    let decision = match rc.client_ip {
        Some(ip) => Some(svc.state.scim_rate_limiter.check(ip).await),
        None => None,
    };
    let mut resp = match &decision {
        Some(d) if !d.allowed => {
            let e = AppError::new(ErrorCode::RateLimited).with_details(json!({
                "detail": format!("too many requests; retry in {} s", d.retry_after_secs),
            }));
            let mut r = error(&rc, &e);
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_secs));
            r
        }
        _ => match run(&svc, &mut rc, req, op).await {
            Ok(r) => r,
            Err(e) => {
                e.log(&rc.request_id);
                error(&rc, &e)
            }
        },
    };
    if let Some(d) = &decision {
        rate_headers(resp.headers_mut(), d);
    }
    resp
}

/// One request, read: what it targets and carries.
struct Call<'a> {
    svc: &'a HttpState,
    ctx: &'a RequestContext,
    base: String,
    id: String,
    query: ListQuery,
    body: Value,
    if_match: Option<String>,
    if_none_match: Option<String>,
}

async fn run(svc: &HttpState, rc: &mut RequestContext, req: Request, op: Op) -> AppResult<Response> {
    let (parts, body) = req.into_parts();
    if op == Op::Unknown {
        return Err(scim_error_status(ErrorCode::NotFound, "no SCIM endpoint at this path"));
    }
    if !op.public() {
        let Some(token) = bearer(&parts.headers) else {
            return Err(ErrorCode::AuthenticationRequired.into());
        };
        let actor = tokens::authenticate_scim_token(&svc.state, rc.client_ip, token).await?;
        rc.actor = Actor::Scim(actor);
    }
    let header = |h| parts.headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_owned);
    let (if_match, if_none_match) = (header(header::IF_MATCH), header(header::IF_NONE_MATCH));
    let query = ListQuery::parse(parts.uri.query())?;
    let body = if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
        read_body(svc, &parts.headers, body).await?
    } else {
        Value::Null
    };
    let path = parts.uri.path();
    let call = Call {
        svc,
        ctx: rc,
        base: base_of(svc, path),
        id: last_segment(path),
        query,
        body,
        if_match,
        if_none_match,
    };
    call.answer(op).await
}

impl Call<'_> {
    async fn answer(&self, op: Op) -> AppResult<Response> {
        let (base, id) = (&self.base, &self.id);
        Ok(match op {
            Op::ServiceProviderConfig => scim_json(StatusCode::OK, render::service_provider_config(base)),
            Op::Schemas => {
                let all: Vec<Value> =
                    schema::schemas().iter().map(|s| schema::schema_document(s, base)).collect();
                scim_json(StatusCode::OK, list_response(all.len() as u64, 1, all))
            }
            Op::Schema => {
                let s = schema::schema_by_id(id)
                    .ok_or_else(|| scim_error_status(ErrorCode::NotFound, "no such schema"))?;
                scim_json(StatusCode::OK, schema::schema_document(s, base))
            }
            Op::ResourceTypes => {
                let all: Vec<Value> = schema::resource_types()
                    .iter()
                    .map(|r| schema::resource_type_document(r, base))
                    .collect();
                scim_json(StatusCode::OK, list_response(all.len() as u64, 1, all))
            }
            Op::ResourceType => {
                let r = schema::resource_type_by_id(id)
                    .ok_or_else(|| scim_error_status(ErrorCode::NotFound, "no such resource type"))?;
                scim_json(StatusCode::OK, schema::resource_type_document(r, base))
            }
            Op::List(kind) => {
                let p = self.query.projection();
                listed(self.list(kind, &self.query.params()?, &p).await?, &p)?
            }
            Op::Search(kind) => {
                let (params, p) = search_params(&self.body)?;
                listed(self.list(kind, &params, &p).await?, &p)?
            }
            Op::SearchAll => {
                let (params, p) = search_params(&self.body)?;
                let r =
                    search::search_all(&self.svc.state, self.ctx, base, &params, p.wants("members")).await?;
                listed(r, &p)?
            }
            Op::Create(kind) => resource(StatusCode::CREATED, self.project(self.create(kind).await?)?),
            Op::Get(kind) => {
                not_modified_or(self.project(self.get(kind).await?)?, self.if_none_match.clone())?
            }
            Op::Replace(kind) => {
                resource(StatusCode::OK, self.project(self.edit(kind, Edit::Replace(&self.body)).await?)?)
            }
            Op::Patch(kind) => {
                resource(StatusCode::OK, self.project(self.edit(kind, Edit::Patch(&self.body)).await?)?)
            }
            Op::Delete(kind) => {
                let (state, ctx, m) = (&self.svc.state, self.ctx, self.if_match.as_deref());
                match kind {
                    Kind::User => users::delete_user(state, ctx, id, m).await?,
                    Kind::Group => groups::delete_group(state, ctx, id, m).await?,
                }
                StatusCode::NO_CONTENT.into_response()
            }
            Op::Unknown => unreachable!("answered in run"),
        })
    }

    fn project(&self, doc: Value) -> AppResult<Value> {
        self.query.projection().apply(&doc)
    }

    async fn list(&self, kind: Kind, params: &ListParams, p: &Projection) -> AppResult<ListResult> {
        let (state, ctx, base) = (&self.svc.state, self.ctx, &self.base);
        match kind {
            Kind::User => users::list_users(state, ctx, base, params).await,
            Kind::Group => groups::list_groups(state, ctx, base, params, p.wants("members")).await,
        }
    }

    async fn create(&self, kind: Kind) -> AppResult<Value> {
        let (state, ctx, base) = (&self.svc.state, self.ctx, &self.base);
        match kind {
            Kind::User => users::create_user(state, ctx, base, &self.body).await,
            Kind::Group => groups::create_group(state, ctx, base, &self.body).await,
        }
    }

    async fn get(&self, kind: Kind) -> AppResult<Value> {
        let (state, ctx, base) = (&self.svc.state, self.ctx, &self.base);
        match kind {
            Kind::User => users::get_user(state, ctx, base, &self.id).await,
            Kind::Group => groups::get_group(state, ctx, base, &self.id).await,
        }
    }

    async fn edit(&self, kind: Kind, edit: Edit<'_>) -> AppResult<Value> {
        let (state, ctx, base, m) = (&self.svc.state, self.ctx, &self.base, self.if_match.as_deref());
        match kind {
            Kind::User => users::change_user(state, ctx, base, &self.id, edit, m).await,
            Kind::Group => groups::change_group(state, ctx, base, &self.id, edit, m).await,
        }
    }
}
