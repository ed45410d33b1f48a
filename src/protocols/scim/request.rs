//! Reading a SCIM request: list parameters (query string or `.search` body), the projection
//! (`attributes` / `excludedAttributes`), the JSON body, and where the request came in.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use serde_json::Value;

use super::render::SCIM_JSON;
use crate::error::AppResult;
use crate::http::HttpState;
use crate::services::scim::schema::{GROUP, USER};
use crate::services::scim::{ListParams, ScimType, document, scim_error};

const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// Query parameters of a list (RFC 7644 §3.4.2); only the projection for other requests.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

impl ListQuery {
    /// Parses a query string.
    pub(super) fn parse(query: Option<&str>) -> AppResult<Self> {
        serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|_| scim_error(ScimType::InvalidSyntax, "the query string is malformed"))
    }

    /// The list parameters it gives.
    pub(super) fn params(&self) -> AppResult<ListParams> {
        ListParams::parse(
            self.filter.as_deref(),
            self.sort_by.as_deref(),
            self.sort_order.as_deref(),
            int("startIndex", self.start_index.as_deref())?,
            int("count", self.count.as_deref())?,
        )
    }

    /// The projection it asks for.
    pub(super) fn projection(&self) -> Projection {
        Projection { attributes: self.attributes.clone(), excluded: self.excluded_attributes.clone() }
    }
}

/// `attributes` / `excludedAttributes` of a request (RFC 7644 §3.4.2.5).
#[derive(Default)]
pub(super) struct Projection {
    attributes: Option<String>,
    excluded: Option<String>,
}

impl Projection {
    /// A resource as the caller asked for it (its type is read from `meta.resourceType`).
    pub(super) fn apply(&self, doc: &Value) -> AppResult<Value> {
        let rt = if doc["meta"]["resourceType"] == "Group" { &GROUP } else { &USER };
        Ok(document::project(rt, doc, self.attributes.as_deref(), self.excluded.as_deref())?)
    }

    /// Whether attribute `name` is in the answer (so whether it is worth reading).
    pub(super) fn wants(&self, name: &str) -> bool {
        let has = |list: &Option<String>| {
            list.as_deref().is_some_and(|l| {
                l.split(',').any(|a| {
                    a.trim().rsplit(':').next().is_some_and(|a| {
                        a.eq_ignore_ascii_case(name)
                            || a.to_ascii_lowercase().starts_with(&format!("{}.", name.to_ascii_lowercase()))
                    })
                })
            })
        };
        match self.attributes {
            Some(_) => has(&self.attributes),
            None => !has(&self.excluded),
        }
    }
}

fn int(name: &str, v: Option<&str>) -> AppResult<Option<i64>> {
    v.map(|s| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| scim_error(ScimType::InvalidValue, format!("{name} is an integer")))
    })
    .transpose()
}

/// A `.search` body (RFC 7644 §3.4.3) as list parameters and the projection it asks.
pub(super) fn search_params(body: &Value) -> AppResult<(ListParams, Projection)> {
    let Some(obj) = body.as_object() else {
        return Err(scim_error(ScimType::InvalidSyntax, "a SearchRequest is a JSON object"));
    };
    if let Some(s) = obj.get("schemas")
        && !s.as_array().is_some_and(|a| a.iter().any(|u| u.as_str() == Some(SEARCH_URN)))
    {
        return Err(scim_error(ScimType::InvalidValue, "schemas must list the SearchRequest schema"));
    }
    let text = |k: &str| -> AppResult<Option<String>> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Array(a)) => Ok(Some(
                a.iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| scim_error(ScimType::InvalidValue, format!("{k} lists strings")))?
                    .join(","),
            )),
            Some(_) => Err(scim_error(ScimType::InvalidValue, format!("{k} is a string"))),
        }
    };
    let number = |k: &str| -> AppResult<Option<i64>> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| scim_error(ScimType::InvalidValue, format!("{k} is an integer"))),
        }
    };
    let q = Projection { attributes: text("attributes")?, excluded: text("excludedAttributes")? };
    let p = ListParams::parse(
        text("filter")?.as_deref(),
        text("sortBy")?.as_deref(),
        text("sortOrder")?.as_deref(),
        number("startIndex")?,
        number("count")?,
    )?;
    Ok((p, q))
}

/// The JSON body of a POST, PUT or PATCH (`application/scim+json`, or plain JSON).
pub(super) async fn read_body(svc: &HttpState, headers: &HeaderMap, body: Body) -> AppResult<Value> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let media = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if media != SCIM_JSON && media != "application/json" {
            return Err(scim_error(
                ScimType::InvalidSyntax,
                "send application/scim+json (or application/json)",
            ));
        }
    }
    let bytes = crate::rest::body::read(body, svc.state.config.body_limit).await?;
    crate::security::nesting::check_json(&bytes)
        .map_err(|_| scim_error(ScimType::InvalidSyntax, "the body is nested too deeply"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| scim_error(ScimType::InvalidSyntax, format!("the body is not JSON: {e}")))
}

/// The base of resource locations: the public URL and the prefix this request came in by.
pub(super) fn base_of(svc: &HttpState, path: &str) -> String {
    // Under `nest("/api/v1", …)` the path arrives without `/api/v1`.
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let v2 = path == "/scim/v2" || path.starts_with("/scim/v2/");
    let prefix = if v2 { "/api/v1/scim/v2" } else { "/api/v1/scim" };
    format!("{}{prefix}", svc.state.config.public_base())
}

/// The last path segment, percent-decoded (a resource id or a schema URN).
pub(super) fn last_segment(path: &str) -> String {
    let seg = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    percent_decode(seg)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
