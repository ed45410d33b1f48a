//! The OpenAPI 3.1 document, generated from the same prepared table the adapter runs: paths and
//! methods, path and query parameters (with the bounds of `domain::bounds`), request bodies from
//! the schema's input types, and each response's `data` from its operation's selection set.

use serde_json::{Map, Value, json};

use super::adapter::{FieldKind, PreparedRoute, RestApi};
use super::routes::{Body, RestRoute, Shape};
use crate::domain::bounds::{MAX_CURSOR_CHARS, MAX_FILTER_CHARS, MAX_SEARCH_CHARS, MAX_YEAR, MIN_YEAR};
use crate::domain::page::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::error::ErrorCode;

/// A `YYYY-MM-DD` date (optionally followed by an RFC 3339 time when `instant`) whose year is in
/// [`MIN_YEAR`]`..=`[`MAX_YEAR`] (1970 to 9999).
fn date_pattern(instant: bool) -> String {
    debug_assert_eq!((MIN_YEAR, MAX_YEAR), (1970, 9999), "the pattern spells these years");
    let day = "(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])";
    if instant { format!("^{day}(T[0-9:.]+(Z|[+-][0-9]{{2}}:[0-9]{{2}}))?$") } else { format!("^{day}$") }
}

/// The schema and description of query parameter `name` of `r`.
fn query_param(r: &RestRoute, name: &str) -> (Value, String) {
    match name {
        "sort" => {
            let values: Vec<String> = r
                .sorts
                .iter()
                .flat_map(|f| [(*f).to_owned(), format!("{f}:asc"), format!("{f}:desc")])
                .collect();
            (json!({"type": "string", "enum": values}), "`field:asc|desc` (`:asc` when omitted)".into())
        }
        "status" if r.operation == "Invitations" => (
            json!({"type": "string", "enum": crate::domain::InvitationStatus::ALL.map(|s| s.as_str())}),
            "Only invitations of this status (omitted: the open ones, pending and expired)".into(),
        ),
        "status" => (
            json!({"type": "string", "enum": crate::domain::UserStatus::ALL.map(|s| s.as_str())}),
            "Only users of this status (deleted users are listed only when asked for)".into(),
        ),
        "search" => (
            json!({"type": "string", "maxLength": MAX_SEARCH_CHARS}),
            format!("Case-insensitive text match (at most {MAX_SEARCH_CHARS} characters)"),
        ),
        "action" => (
            json!({"type": "string", "maxLength": MAX_FILTER_CHARS}),
            "An audit action, exactly, or a prefix ending in `.*`".into(),
        ),
        "target_id" => (json!({"type": "string", "maxLength": MAX_FILTER_CHARS}), "The target's id".into()),
        "actor_id" | "organization_id" => {
            (json!({"type": "string", "format": "uuid"}), format!("Only rows with this `{name}`"))
        }
        "from" | "to" if r.paginated => (
            json!({"type": "string", "pattern": date_pattern(true)}),
            format!("An RFC 3339 instant or `YYYY-MM-DD` (years {MIN_YEAR} to {MAX_YEAR})"),
        ),
        "from" | "to" => (
            json!({"type": "string", "format": "date", "pattern": date_pattern(false)}),
            format!("`YYYY-MM-DD`, years {MIN_YEAR} to {MAX_YEAR}; at most 366 days apart"),
        ),
        _ => (json!({"type": "string"}), String::new()),
    }
}

fn parameters(r: &RestRoute) -> Vec<Value> {
    let mut out: Vec<Value> = r
        .path_params
        .iter()
        .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if r.paginated {
        out.push(json!({
            "name": "limit", "in": "query",
            "description": format!("Page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}); more is a 422"),
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        }));
        out.push(json!({
            "name": "cursor", "in": "query",
            "description": "`next_cursor` or `previous_cursor` of a previous page",
            "schema": {"type": "string", "pattern": "^[np]\\.", "maxLength": MAX_CURSOR_CHARS + 2},
        }));
    }
    for name in r.query_params {
        let (schema, description) = query_param(r, name);
        out.push(json!({"name": name, "in": "query", "description": description, "schema": schema}));
    }
    out
}

fn request_body(p: &PreparedRoute) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in &p.input {
        let schema = match f.kind {
            FieldKind::String => json!({"type": "string"}),
            FieldKind::Int => json!({"type": "integer"}),
            FieldKind::Boolean => json!({"type": "boolean"}),
            FieldKind::StringList => json!({"type": "array", "items": {"type": "string"}}),
            FieldKind::Json | FieldKind::Other => json!({}),
        };
        props.insert(f.rest_name.clone(), schema);
        if f.required {
            required.push(json!(f.rest_name));
        }
    }
    json!({
        "required": p.route.body == Body::Input,
        "content": {"application/json": {"schema": {"type": "object", "properties": props, "required": required}}},
    })
}

fn success_envelope(p: &PreparedRoute) -> Value {
    let mut props = json!({
        "success": {"const": true},
        "data": p.data_schema.clone().unwrap_or_else(|| json!({})),
        "message": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "request_id": {"type": "string"},
    });
    let mut required = vec!["success", "data", "message", "timestamp", "request_id"];
    if p.route.shape == Shape::List {
        props["pagination"] = json!({"$ref": "#/components/schemas/Pagination"});
        required.push("pagination");
    }
    json!({"type": "object", "properties": props, "required": required})
}

fn operation(p: &PreparedRoute) -> Value {
    let r = &p.route;
    let error = json!({
        "description": "Error envelope",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
    });
    let mut responses = Map::new();
    let ok = if r.shape == Shape::Empty {
        json!({"description": "Done, no content"})
    } else {
        json!({
            "description": "Success envelope",
            "content": {"application/json": {"schema": success_envelope(p)}},
        })
    };
    responses.insert(r.status.to_string(), ok.clone());
    if let Some((status, description)) = r.alternate {
        let mut other = ok;
        other["description"] = json!(description);
        responses.insert(status.to_string(), other);
    }
    responses.insert("default".into(), error);
    let mut op = json!({
        "tags": [r.tag],
        "summary": r.summary,
        "description": format!("Runs the GraphQL operation `{}`.", r.operation),
        "operationId": r.operation,
        "parameters": parameters(r),
        "responses": responses,
    });
    if r.body != Body::None {
        op["requestBody"] = request_body(p);
    }
    if r.auth {
        op["security"] = json!([{"bearer": []}, {"api_key": []}]);
    } else if r.operator {
        op["security"] = json!([{"operator": []}]);
    }
    op
}

/// The SSO routes a browser or an IdP calls, served beside the table (not JSON, or not only):
/// the SP metadata, the ACS's form binding and the OIDC callback; and `?email=` discovery.
fn sso_protocol_routes(paths: &mut Map<String, Value>) {
    let error = json!({"description": "`SSO_ERROR` with `details.reason`, or another error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}});
    let code = json!({
        "description": "The provider has no return URL: the one-time code for `POST /sso/exchange`",
        "content": {"application/json": {"schema": {"type": "object", "properties": {
            "success": {"const": true},
            "data": {"type": "object", "properties": {"code": {"type": "string"}, "expires_in": {"type": "integer"}},
                "required": ["code", "expires_in"]},
        }, "required": ["success", "data"]}}},
    });
    let redirect = json!({"description": "To the provider's return URL with `?code=` (single use, 60 s)",
        "headers": {"Location": {"schema": {"type": "string"}}}});
    paths.insert(
        "/api/v1/sso/saml/metadata/{provider_id}".into(),
        json!({"get": {
            "tags": ["sso"],
            "summary": "This SP's SAML metadata for one provider (entity id, ACS, NameID formats)",
            "operationId": "SsoSpMetadata",
            "parameters": [{"name": "provider_id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}],
            "responses": {
                "200": {"description": "SAML metadata", "content": {"application/samlmetadata+xml": {"schema": {"type": "string"}}}},
                "default": error,
            },
        }}),
    );
    let callback_params: Vec<Value> = ["code", "state", "error"]
        .iter()
        .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string"}}))
        .collect();
    paths.insert(
        "/api/v1/sso/oidc/callback".into(),
        json!({"get": {
            "tags": ["sso"],
            "summary": "Where the OIDC provider sends the browser back",
            "operationId": "SsoOidcCallback",
            "parameters": callback_params,
            "responses": {"303": redirect, "200": code, "default": error.clone()},
        }}),
    );
    if let Some(acs) = paths.get_mut("/api/v1/sso/saml").and_then(|p| p.get_mut("post")) {
        acs["requestBody"]["content"]["application/x-www-form-urlencoded"] = json!({"schema": {
            "type": "object",
            "properties": {"SAMLResponse": {"type": "string"}, "RelayState": {"type": "string"}},
            "required": ["SAMLResponse"],
        }});
        acs["responses"]["303"] = redirect;
    }
    if let Some(params) = paths
        .get_mut("/api/v1/sso/providers")
        .and_then(|p| p.get_mut("get"))
        .and_then(|list| list["parameters"].as_array_mut())
    {
        {
            params.push(json!({"name": "email", "in": "query", "schema": {"type": "string", "format": "email"},
                "description": "Public discovery: answers as `GET /sso/providers/discover` (no organization needed)"}));
        }
    }
}

/// The SCIM 2.0 protocol routes (RFC 7644), served by `protocols::scim` at `/api/v1/scim/v2`
/// (and the same under `/api/v1/scim`): SCIM bodies, not the envelope.
fn scim_protocol_routes(paths: &mut Map<String, Value>) {
    let scim = |schema: &str| json!({"application/scim+json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}});
    let error =
        json!({"description": "A SCIM Error (`status`, `scimType`, `detail`)", "content": scim("ScimError")});
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let list_params: Vec<Value> =
        ["filter", "sortBy", "sortOrder", "startIndex", "count", "attributes", "excludedAttributes"]
            .iter()
            .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string"}}))
            .collect();
    let public = json!([]);
    let bearer = json!([{"scimToken": []}]);
    #[rustfmt::skip]
    let routes: [(&str, &str, &str, u16, bool); 18] = [
        ("/ServiceProviderConfig", "get", "What this SCIM server implements", 200, false),
        ("/Schemas", "get", "The schemas of Users, the enterprise extension, Groups and Janua's group extension", 200, false),
        ("/Schemas/{id}", "get", "One schema, by URN", 200, false),
        ("/ResourceTypes", "get", "User and Group", 200, false),
        ("/ResourceTypes/{id}", "get", "One resource type", 200, false),
        ("/Users", "get", "The organization's users (filter, sort, startIndex/count, attributes)", 200, true),
        ("/Users", "post", "Provision a user (links the Janua account with that email, or creates one)", 201, true),
        ("/Users/.search", "post", "Search users with a SearchRequest body", 200, true),
        ("/Users/{id}", "get", "One user (ETag; If-None-Match answers 304)", 200, true),
        ("/Users/{id}", "put", "Replace a user (If-Match honoured: 412 on a stale version)", 200, true),
        ("/Users/{id}", "patch", "Patch a user (add/replace/remove; active:false ends the membership and every session)", 200, true),
        ("/Users/{id}", "delete", "Deprovision a user (membership and sessions end; the account stays)", 204, true),
        ("/Groups", "get", "The organization's groups", 200, true),
        ("/Groups", "post", "Create a group (its Janua role extension gives its members that role)", 201, true),
        ("/Groups/.search", "post", "Search groups with a SearchRequest body", 200, true),
        ("/Groups/{id}", "patch", "Patch a group (members add/remove/replace)", 200, true),
        ("/Groups/{id}", "delete", "Delete a group", 204, true),
        ("/.search", "post", "Search users and groups at once (users first)", 200, true),
    ];
    for (path, method, summary, status, auth) in routes {
        let mut op = json!({
            "tags": ["scim"],
            "summary": summary,
            "operationId": format!("Scim{}{}", method.to_uppercase(), path.replace(['/', '{', '}', '.'], "_")),
            "security": if auth { bearer.clone() } else { public.clone() },
            // Any other status (403, 413, 429, …) is a SCIM Error too (RFC 7644 §3.12).
            "responses": {"400": error.clone(), "401": error.clone(), "404": error.clone(), "default": error.clone()},
        });
        if path.contains("{id}") {
            op["parameters"] = id.clone();
        } else if method == "get" && (path == "/Users" || path == "/Groups") {
            op["parameters"] = list_params.clone().into();
        }
        if matches!(method, "post" | "put" | "patch") {
            op["requestBody"] = json!({"required": true, "content": scim("ScimResource")});
            op["responses"]["409"] = error.clone();
            op["responses"]["412"] = error.clone();
        }
        op["responses"][status.to_string()] = if status == 204 {
            json!({"description": "Done"})
        } else {
            json!({"description": "A SCIM resource or ListResponse", "content": scim("ScimResource")})
        };
        if method == "post" && (path == "/Users" || path == "/Groups") {
            // Stateful fuzzing: from the created resource to the operations on it.
            let links: Map<String, Value> = ["GET", "PUT", "PATCH", "DELETE"]
                .iter()
                .map(|m| {
                    let target = format!("Scim{m}_{}__id_", &path[1..]);
                    (
                        target.clone(),
                        json!({"operationId": target, "parameters": {"id": "$response.body#/id"}}),
                    )
                })
                .collect();
            op["responses"]["201"]["links"] = links.into();
        }
        paths.entry(format!("/api/v1/scim/v2{path}")).or_insert_with(|| json!({}))[method] = op;
    }
    if let Some(g) = paths.get("/api/v1/scim/v2/Users/{id}").cloned() {
        // Groups/{id} reads and replaces like Users/{id}.
        let groups = paths.entry("/api/v1/scim/v2/Groups/{id}".to_owned()).or_insert_with(|| json!({}));
        for m in ["get", "put"] {
            let mut op = g[m].clone();
            op["operationId"] = format!("Scim{}_Groups__id_", m.to_uppercase()).into();
            op["summary"] = format!("{} a group", if m == "get" { "One" } else { "Replace" }).into();
            groups[m] = op;
        }
    }
}

/// Where the id a link passes on sits in a route's `data`: `/data/id`, else `/data/<name>/id`
/// of the object named like the parameter (`user_id` → `user`), else of the only nested object
/// with an `id`.
fn id_pointer(data: &Value, param: &str) -> Option<String> {
    let props = data.get("properties")?.as_object()?;
    if param == "id" && props.contains_key("id") {
        return Some("/data/id".into());
    }
    let has_id = |v: &Value| v.get("properties").is_some_and(|p| p.get("id").is_some());
    if let Some(name) = param.strip_suffix("_id")
        && props.get(name).is_some_and(has_id)
    {
        return Some(format!("/data/{name}/id"));
    }
    let mut nested = props.iter().filter(|(_, v)| has_id(v));
    match (nested.next(), nested.next()) {
        (Some((name, _)), None) if param == "id" => Some(format!("/data/{name}/id")),
        _ => None,
    }
}

/// Links made by hand where the created resource is read elsewhere than under its create
/// path: operation → (pointer in its 201 response, operations given that id as `id`).
const EXTRA_LINKS: &[(&str, &str, &[&str])] = &[
    ("Signup", "/data/user/id", &["User", "UpdateUser", "UserRoles", "DeleteUser"]),
    ("CreateAdminApiKey", "/data/api_key/id", &["RevokeApiKey"]),
    ("CreateOrganizationApiKey", "/data/api_key/id", &["RevokeApiKey"]),
    ("CreateScimToken", "/data/id", &["RevokeScimToken"]),
];

/// OpenAPI `links` from every create (a 201) to the operations on what it made: those whose
/// path is the create's path, then `/{param}` (that param from the response), then anything,
/// with no path parameter the create's request does not give (e.g. `POST /organizations` →
/// `GET /organizations/{id}`, `POST /organizations/{id}/api-keys`; `POST /webhooks` →
/// `POST /webhooks/{id}/test`). Stateful fuzzing follows them to reach the successful paths.
fn create_links(api: &RestApi) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    let param_of = |segment: &str| segment.strip_prefix('{')?.strip_suffix('}').map(str::to_owned);
    for c in api.routes.iter().filter(|p| p.route.status == 201) {
        let Some(data) = &c.data_schema else { continue };
        let mut links = Map::new();
        for t in &api.routes {
            let Some(rest) = t.route.path.strip_prefix(c.route.path).and_then(|r| r.strip_prefix('/')) else {
                continue;
            };
            let Some(new) = param_of(rest.split('/').next().unwrap_or_default()) else { continue };
            let known = |n: &&str| *n == new || c.route.path_params.contains(n);
            if !t.route.path_params.iter().all(known) {
                continue;
            }
            let Some(pointer) = id_pointer(data, &new) else { continue };
            let mut params = Map::new();
            for n in t.route.path_params {
                let source = if *n == new {
                    format!("$response.body#{pointer}")
                } else {
                    format!("$request.path.{n}")
                };
                params.insert((*n).to_owned(), source.into());
            }
            links.insert(
                t.route.operation.to_owned(),
                json!({"operationId": t.route.operation, "parameters": params}),
            );
        }
        for (_, pointer, targets) in EXTRA_LINKS.iter().filter(|(from, ..)| *from == c.route.operation) {
            for t in *targets {
                links.insert(
                    (*t).to_owned(),
                    json!({"operationId": t, "parameters": {"id": format!("$response.body#{pointer}")}}),
                );
            }
        }
        if !links.is_empty() {
            out.push((
                format!("/api/v1{}", c.route.path),
                c.route.method.as_str().to_lowercase(),
                links.into(),
            ));
        }
    }
    out
}

/// Builds the document for every prepared route.
pub fn document(api: &RestApi) -> Value {
    let mut paths = Map::new();
    for p in &api.routes {
        let path = paths.entry(format!("/api/v1{}", p.route.path)).or_insert_with(|| json!({}));
        path[p.route.method.as_str().to_lowercase()] = operation(p);
    }
    for (path, method, links) in create_links(api) {
        paths[&path][&method]["responses"]["201"]["links"] = links;
    }
    sso_protocol_routes(&mut paths);
    scim_protocol_routes(&mut paths);
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Janua",
            "description": "REST compatibility layer: every route runs a GraphQL operation of /graphql.",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
        "components": {
            "schemas": {
                "ScimError": {
                    "type": "object",
                    "properties": {
                        "schemas": {"type": "array", "items": {"const": "urn:ietf:params:scim:api:messages:2.0:Error"}},
                        "status": {"type": "string"},
                        "scimType": {"type": "string", "enum": ["invalidFilter", "tooMany", "uniqueness", "mutability", "invalidSyntax", "invalidPath", "noTarget", "invalidValue"]},
                        "detail": {"type": "string"},
                    },
                    "required": ["schemas", "status"],
                },
                "ScimResource": {
                    "type": "object",
                    "description": "A SCIM User, Group, ListResponse or discovery document (RFC 7643); GET /api/v1/scim/v2/Schemas describes every attribute",
                    "properties": {"schemas": {"type": "array", "items": {"type": "string"}}},
                    "required": ["schemas"],
                },
                "ErrorEnvelope": {
                    "type": "object",
                    "properties": {
                        "success": {"const": false},
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string", "enum": codes},
                                "message": {"type": "string"},
                                "details": {"type": "object"},
                            },
                            "required": ["code", "message"],
                        },
                        "timestamp": {"type": "string", "format": "date-time"},
                        "request_id": {"type": "string"},
                    },
                    "required": ["success", "error", "timestamp", "request_id"],
                },
                "Pagination": {
                    "type": "object",
                    "properties": {
                        "has_next": {"type": "boolean"},
                        "has_previous": {"type": "boolean"},
                        "next_cursor": {"type": ["string", "null"], "description": "null on the last page"},
                        "previous_cursor": {"type": ["string", "null"], "description": "null on the first page"},
                        "total_count": {"type": "integer", "minimum": 0},
                    },
                    "required": ["has_next", "has_previous", "next_cursor", "previous_cursor", "total_count"],
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "scimToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An organization's SCIM token (`jscim_…`), on the SCIM routes only",
                },
                "operator": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`JANUA_METRICS_TOKEN`, when the server sets one (else open)",
                },
            },
        },
    })
}
