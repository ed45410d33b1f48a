//! Runs a REST route: maps path, query and body onto the variables of its GraphQL operation,
//! executes it in-process against the same schema, and wraps the result in the envelope.

use std::collections::HashMap;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet, Type};
use async_graphql::{Name, Variables};
use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::casing::{camel_to_snake, to_snake};
use super::envelope;
use super::routes::{Body, RestRoute, Shape};
use crate::context::{Actor, RequestContext};
use crate::domain::bounds::{MAX_CURSOR_CHARS, check_len};
use crate::error::{AppError, ErrorCode, FieldIssue};
use crate::graphql::JanuaSchema;
use crate::graphql::errors::first_error_code;
use crate::state::AppState;

/// The kind of value an input field takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    String,
    Int,
    Boolean,
    Json,
    /// A list of `String` or `ID` (a JSON array of strings).
    StringList,
    Other,
}

/// One field of a route's input object, as the schema declares it.
#[derive(Clone, Debug)]
pub struct InputField {
    /// GraphQL (camelCase) name.
    pub name: String,
    /// REST (snake_case) name.
    pub rest_name: String,
    pub required: bool,
    pub kind: FieldKind,
}

/// A route with its operation parsed and its input fields read from the schema.
pub struct PreparedRoute {
    pub route: RestRoute,
    pub document: ExecutableDocument,
    pub input: Vec<InputField>,
    /// The JSON Schema of the response's `data` (`None` for empty answers).
    pub data_schema: Option<Value>,
    /// The document declares no variables and passed validation against the serving schema
    /// at start ([`RestApi::validate_constant`]): its requests skip validation, which would
    /// answer the same every time.
    pub prevalidated: bool,
}

/// The REST API: every route prepared once at start.
pub struct RestApi {
    pub routes: Vec<PreparedRoute>,
    /// Every list's query parameters ([`super::routes::list_parameters`]).
    list_params: Vec<&'static str>,
}

const OPERATIONS: &str = include_str!("operations.graphql");

impl RestApi {
    /// Parses `operations.graphql` once, splits it into one document per route and reads each
    /// route's input fields from the schema. Fails at start if a route names a missing operation.
    pub async fn prepare(schema: &JanuaSchema, routes: Vec<RestRoute>) -> anyhow::Result<Self> {
        let full = async_graphql::parser::parse_query(OPERATIONS)?;
        let DocumentOperations::Multiple(ops) = &full.operations else {
            anyhow::bail!("operations.graphql must hold named operations");
        };
        let list_params = super::routes::list_parameters(&routes);
        let types = super::shapes::Types::read(schema).await?;
        let mut prepared = Vec::new();
        for route in routes {
            let op = ops.get(route.operation).ok_or_else(|| {
                anyhow::anyhow!("operation {} is not in operations.graphql", route.operation)
            })?;
            let mut used = Vec::new();
            collect_fragments(&op.node.selection_set.node, &full, &mut used);
            let fragments = full
                .fragments
                .iter()
                .filter(|(n, _)| used.contains(*n))
                .map(|(n, f)| (n.clone(), f.clone()))
                .collect();
            let input_type = op
                .node
                .variable_definitions
                .iter()
                .find(|v| v.node.name.node.as_str() == "input")
                .map(|v| base_type_name(&v.node.var_type.node));
            let input = match input_type {
                Some(t) => input_fields(schema, &t).await?,
                None => Vec::new(),
            };
            let document =
                ExecutableDocument { operations: DocumentOperations::Single(op.clone()), fragments };
            let data_schema = match route.shape {
                Shape::Empty => None,
                shape => types.data_schema(&document, shape == Shape::List, route.omit_nulls),
            };
            prepared.push(PreparedRoute { route, document, input, data_schema, prevalidated: false });
        }
        Ok(Self { routes: prepared, list_params })
    }

    /// Validates, against the schema that serves them, the documents that declare no
    /// variables (their validation never depends on the request), and marks those that pass
    /// so that their requests skip it. One that does not pass (a limit configured below what
    /// it needs) stays validated per request, and answers its refusal there.
    pub async fn validate_constant(&mut self, schema: &JanuaSchema) -> anyhow::Result<()> {
        for p in &mut self.routes {
            let DocumentOperations::Single(op) = &p.document.operations else { continue };
            if !op.node.variable_definitions.is_empty() {
                continue;
            }
            let mut request = async_graphql::Request::new("").data(crate::graphql::errors::ValidateOnly);
            request.set_parsed_query(p.document.clone());
            let resp = schema.execute(request).await;
            // Nothing ran: the schema's `ErrorCodes` extension stops before execution.
            anyhow::ensure!(resp.data == async_graphql::Value::Null, "the schema ran {}", p.route.operation);
            p.prevalidated = resp.errors.is_empty();
        }
        Ok(())
    }

    /// Handles one request for route number `index`.
    pub async fn handle(
        &self,
        state: &AppState,
        schema: &JanuaSchema,
        index: usize,
        mut req: Request,
    ) -> Response {
        let prepared = &self.routes[index];
        // Taken, not cloned: the operation gets its own copy below, nothing else reads this one.
        let rc = req.extensions_mut().remove::<RequestContext>().unwrap_or_default();
        // Who may call comes first: an anonymous request learns nothing about its parameters.
        if prepared.route.operator
            && !crate::security::operator::operator_allowed(&state.config, req.headers())
        {
            let mut r = envelope::error_for(&rc, &AppError::new(ErrorCode::AuthenticationRequired));
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        if prepared.route.auth && matches!(rc.actor, Actor::Anonymous) {
            let code = rc.auth_error.unwrap_or(ErrorCode::AuthenticationRequired);
            return envelope::error_for(&rc, &AppError::new(code));
        }
        let loaders = crate::graphql::loaders::Loaders::new(state);
        match self.run(schema, prepared, state.config.body_limit, &rc, loaders, req).await {
            Ok(resp) => resp,
            Err(e) => envelope::error_for(&rc, &e),
        }
    }

    async fn run(
        &self,
        schema: &JanuaSchema,
        p: &PreparedRoute,
        body_limit: usize,
        rc: &RequestContext,
        loaders: crate::graphql::loaders::Loaders,
        req: Request,
    ) -> Result<Response, AppError> {
        let (mut parts, body) = req.into_parts();
        let query = url_decode_pairs(parts.uri.query().unwrap_or_default());
        if p.route.paginated {
            // A list parameter this list does not take is refused, never silently ignored.
            let mut unknown: Option<AppError> = None;
            for name in self.list_params.iter().filter(|n| query.contains_key(**n)) {
                if !matches!(*name, "limit" | "cursor") && !p.route.query_params.contains(name) {
                    unknown = Some(match unknown.take() {
                        Some(e) => e.and_field(name, FieldIssue::InvalidFormat),
                        None => AppError::field(name, FieldIssue::InvalidFormat),
                    });
                }
            }
            if let Some(e) = unknown {
                return Err(e);
            }
        }
        let mut vars = Map::new();
        if let Ok(params) = RawPathParams::from_request_parts(&mut parts, &()).await {
            for (k, v) in params.iter() {
                if p.route.path_params.contains(&k) {
                    vars.insert(k.to_owned(), Value::String(v.to_owned()));
                }
            }
        }
        if p.route.paginated {
            page_variables(&query, &mut vars)?;
        }
        for name in p.route.query_params {
            if let Some(v) = query.get(*name).filter(|v| !v.is_empty()) {
                vars.insert((*name).to_owned(), Value::String(v.clone()));
            }
        }
        if p.route.body != Body::None {
            let bytes = crate::rest::body::read(body, body_limit).await?;
            crate::rest::body::utf8(&bytes)?;
            let parsed: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                crate::security::nesting::check_json(&bytes)?;
                Some(serde_json::from_slice(&bytes).map_err(|_| AppError::new(ErrorCode::BadRequest))?)
            };
            match (parsed, p.route.body) {
                (Some(Value::Object(obj)), _) => {
                    vars.insert("input".into(), Value::Object(map_input(&p.input, obj)?));
                }
                (Some(_), _) => return Err(ErrorCode::BadRequest.into()),
                (None, Body::Input) => {
                    // The body is required: say so, with the required fields it lacks.
                    let missing = AppError::field("body", FieldIssue::Required);
                    return Err(match map_input(&p.input, Map::new()) {
                        Ok(_) => missing,
                        Err(e) => e.and_field("body", FieldIssue::Required),
                    });
                }
                (None, _) => {}
            }
        }

        // The prepared document holds this one operation only, so no operation name is needed.
        let mut request = async_graphql::Request::new("")
            .variables(Variables::from_json(Value::Object(vars)))
            .data(rc.clone())
            .data(loaders);
        if p.route.operator {
            // `handle` has checked the operator bearer.
            request = request.data(crate::graphql::health::OperatorGrant);
        }
        if p.prevalidated {
            request = request.data(crate::graphql::errors::Prevalidated);
        }
        request.set_parsed_query(p.document.clone());
        let resp = schema.execute(request).await;
        if let Some((code, app)) = first_error_code(&resp) {
            if app.is_none() {
                // Messages can quote the client's value: log a bounded prefix of each, never the whole.
                let errors: Vec<String> =
                    resp.errors.iter().map(|e| e.message.chars().take(200).collect()).collect();
                tracing::warn!(
                    request_id = rc.request_id,
                    ?errors,
                    "REST operation failed outside a service"
                );
            }
            return Err(app.unwrap_or_else(|| AppError::new(code)));
        }
        let data = resp.data.into_json().map_err(AppError::internal)?;
        let root = match data {
            Value::Object(m) => m.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let status = p.route.status_of.map_or(p.route.status, |f| f(&root));
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        Ok(match p.route.shape {
            Shape::Empty => envelope::success(rc, StatusCode::NO_CONTENT, Value::Null, None),
            Shape::Object => {
                let mut data = to_snake(root);
                if p.route.omit_nulls
                    && let Value::Object(m) = &mut data
                {
                    m.retain(|_, v| !v.is_null());
                }
                envelope::success(rc, status, data, None)
            }
            Shape::List => {
                let (items, pagination) = connection_to_list(root);
                envelope::success(rc, status, items, Some(pagination))
            }
        })
    }
}

fn collect_fragments(set: &SelectionSet, doc: &ExecutableDocument, out: &mut Vec<Name>) {
    for sel in &set.items {
        match &sel.node {
            Selection::Field(f) => collect_fragments(&f.node.selection_set.node, doc, out),
            Selection::InlineFragment(f) => collect_fragments(&f.node.selection_set.node, doc, out),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.clone();
                if !out.contains(&name) {
                    out.push(name.clone());
                    if let Some(def) = doc.fragments.get(&name) {
                        collect_fragments(&def.node.selection_set.node, doc, out);
                    }
                }
            }
        }
    }
}

fn base_type_name(t: &Type) -> String {
    use async_graphql::parser::types::BaseType;
    match &t.base {
        BaseType::Named(n) => n.to_string(),
        BaseType::List(inner) => base_type_name(inner),
    }
}

async fn input_fields(schema: &JanuaSchema, type_name: &str) -> anyhow::Result<Vec<InputField>> {
    let q = format!(
        r#"{{ __type(name: "{type_name}") {{ inputFields {{ name defaultValue type {{ kind name ofType {{ kind name ofType {{ kind name ofType {{ kind name }} }} }} }} }} }} }}"#
    );
    let resp = schema.execute(q).await;
    anyhow::ensure!(resp.errors.is_empty(), "introspection of {type_name} failed: {:?}", resp.errors);
    let data = resp.data.into_json()?;
    let fields = data["__type"]["inputFields"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("{type_name} is not an input type"))?;
    Ok(fields
        .iter()
        .map(|f| {
            let name = f["name"].as_str().unwrap_or_default().to_owned();
            let non_null = f["type"]["kind"] == "NON_NULL";
            // A non-null field with a default may be left out: GraphQL supplies the default.
            let required = non_null && f["defaultValue"].is_null();
            let t = if non_null { &f["type"]["ofType"] } else { &f["type"] };
            let kind = match (t["kind"].as_str(), t["name"].as_str()) {
                (Some("SCALAR"), Some("String" | "ID")) => FieldKind::String,
                (Some("SCALAR"), Some("Int")) => FieldKind::Int,
                (Some("SCALAR"), Some("Boolean")) => FieldKind::Boolean,
                (Some("SCALAR"), Some("JSON")) => FieldKind::Json,
                (Some("LIST"), _) => {
                    let item = match t["ofType"]["kind"].as_str() {
                        Some("NON_NULL") => &t["ofType"]["ofType"],
                        _ => &t["ofType"],
                    };
                    match (item["kind"].as_str(), item["name"].as_str()) {
                        (Some("SCALAR"), Some("String" | "ID")) => FieldKind::StringList,
                        _ => FieldKind::Other,
                    }
                }
                _ => FieldKind::Other,
            };
            InputField { rest_name: camel_to_snake(&name).into_owned(), name, required, kind }
        })
        .collect())
}

/// Validates a REST body against the input fields and renames its keys for GraphQL. Unknown keys
/// are ignored; every problem is reported at once, by REST field name.
fn map_input(fields: &[InputField], mut body: Map<String, Value>) -> Result<Map<String, Value>, AppError> {
    let mut out = Map::new();
    let mut err: Option<AppError> = None;
    for f in fields {
        let v = body.remove(&f.rest_name).or_else(|| body.remove(&f.name));
        let issue = match (&v, f.kind) {
            (None | Some(Value::Null), _) if f.required => Some(FieldIssue::Required),
            (None | Some(Value::Null), _) => None,
            (Some(Value::String(_)), FieldKind::String) => None,
            (Some(Value::Number(n)), FieldKind::Int)
                if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) =>
            {
                None
            }
            (Some(Value::Bool(_)), FieldKind::Boolean) => None,
            (Some(Value::Array(a)), FieldKind::StringList) if a.iter().all(Value::is_string) => None,
            (Some(_), FieldKind::Json | FieldKind::Other) => None,
            (Some(_), _) => Some(FieldIssue::InvalidFormat),
        };
        match issue {
            Some(i) => {
                err = Some(match err.take() {
                    Some(e) => e.and_field(&f.rest_name, i),
                    None => AppError::field(&f.rest_name, i),
                })
            }
            None => {
                if let Some(v) = v {
                    out.insert(f.name.clone(), v);
                }
            }
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `limit` (1 to 100) → `$first`/`$last`; `cursor` (`n.…` forward, `p.…` backward, at most
/// [`MAX_CURSOR_CHARS`] after its prefix) → `$after`/`$before`.
fn page_variables(params: &HashMap<String, String>, vars: &mut Map<String, Value>) -> Result<(), AppError> {
    let limit = match params.get("limit") {
        None => 20,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => n,
            Ok(_) => return Err(AppError::field("limit", FieldIssue::OutOfRange)),
            Err(_) => return Err(AppError::field("limit", FieldIssue::InvalidFormat)),
        },
    };
    if let Some(c) = params.get("cursor") {
        check_len("cursor", c, MAX_CURSOR_CHARS + 2)?;
    }
    match params.get("cursor").map(String::as_str) {
        Some(c) if c.starts_with("p.") => {
            vars.insert("last".into(), json!(limit));
            vars.insert("before".into(), json!(&c[2..]));
        }
        Some(c) if c.starts_with("n.") => {
            vars.insert("first".into(), json!(limit));
            vars.insert("after".into(), json!(&c[2..]));
        }
        Some(_) => return Err(AppError::field("cursor", FieldIssue::InvalidFormat)),
        None => {
            vars.insert("first".into(), json!(limit));
        }
    }
    Ok(())
}

fn url_decode_pairs(query: &str) -> HashMap<String, String> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn connection_to_list(conn: Value) -> (Value, Value) {
    let info = &conn["pageInfo"];
    let has_next = info["hasNextPage"].as_bool().unwrap_or(false);
    let has_previous = info["hasPreviousPage"].as_bool().unwrap_or(false);
    let cursor = |flag: bool, key: &str, prefix: &str| {
        info[key].as_str().filter(|_| flag).map_or(Value::Null, |c| Value::String(format!("{prefix}{c}")))
    };
    let pagination = json!({
        "has_next": has_next,
        "has_previous": has_previous,
        "next_cursor": cursor(has_next, "endCursor", "n."),
        "previous_cursor": cursor(has_previous, "startCursor", "p."),
        "total_count": conn["totalCount"],
    });
    let items = conn["edges"]
        .as_array()
        .map(|edges| edges.iter().map(|e| to_snake(e["node"].clone())).collect())
        .unwrap_or_default();
    (Value::Array(items), pagination)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documents without variables are validated at start without being run (this
    /// schema has the serving schema's extensions but no state: a resolver that ran would
    /// fail); one that does not validate stays validated per request.
    #[tokio::test]
    async fn constant_documents_are_validated_once_without_running() {
        use crate::graphql::{Mutation, Query, Subscription};
        let bare = crate::graphql::bare_schema();
        let mut api = RestApi::prepare(&bare, super::super::routes::routes()).await.unwrap();
        let schema =
            async_graphql::Schema::build(Query::default(), Mutation::default(), Subscription::default())
                .extension(crate::graphql::errors::ErrorCodes)
                .finish();
        api.validate_constant(&schema).await.unwrap();
        let me = api.routes.iter().find(|p| p.route.operation == "Me").expect("the me route");
        assert!(me.prevalidated);
        assert!(
            api.routes.iter().any(|p| !p.prevalidated),
            "documents with variables are validated per request"
        );
        let broken = api.routes.iter().position(|p| p.prevalidated).unwrap();
        api.routes[broken].document = async_graphql::parser::parse_query("{ noSuchField }").unwrap();
        api.validate_constant(&schema).await.unwrap();
        assert!(!api.routes[broken].prevalidated);
    }

    #[test]
    fn query_decoding() {
        let q = url_decode_pairs("limit=5&cursor=n.ab%2Bc&search=a+b");
        assert_eq!(q["cursor"], "n.ab+c");
        assert_eq!(q["search"], "a b");
    }

    #[test]
    fn input_is_validated_by_schema_fields() {
        let fields = vec![
            InputField {
                name: "email".into(),
                rest_name: "email".into(),
                required: true,
                kind: FieldKind::String,
            },
            InputField {
                name: "firstName".into(),
                rest_name: "first_name".into(),
                required: false,
                kind: FieldKind::String,
            },
        ];
        let body = json!({"first_name": 3, "unknown": true}).as_object().unwrap().clone();
        let e = map_input(&fields, body).unwrap_err();
        assert_eq!(e.fields["email"], FieldIssue::Required);
        assert_eq!(e.fields["first_name"], FieldIssue::InvalidFormat);
        let ok =
            map_input(&fields, json!({"email": "a@b.co", "first_name": "A"}).as_object().unwrap().clone())
                .unwrap();
        assert_eq!(Value::Object(ok), json!({"email": "a@b.co", "firstName": "A"}));
    }
}
