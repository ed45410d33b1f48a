//! SCIM 2.0 provisioning (RFC 7643, RFC 7644): an organization's identity provider creates,
//! updates and removes its people and groups through the organization's SCIM token.
//!
//! Layers: `schema`, `filter`, `patch` and `document` know SCIM documents only (JSON in, JSON
//! out); `query` turns a parsed filter and sort into database conditions; `users` and `groups`
//! are the write paths (one [`Write`] each, audited as `scim.*`); `membership` keeps the
//! organization's members and roles in step with what was provisioned. The transport is
//! `protocols::scim`.
//!
//! [`Write`]: crate::services::unit_of_work::Write

pub mod document;
pub mod filter;
pub mod groups;
pub mod membership;
pub mod patch;
pub mod query;
pub mod resource;
pub mod schema;
pub mod search;
pub mod tokens;
pub mod users;

use crate::error::{AppError, ErrorCode};

/// The SCIM error `scimType`s of RFC 7644 §3.12 Janua answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
}

impl ScimType {
    /// The RFC's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidFilter => "invalidFilter",
            Self::TooMany => "tooMany",
            Self::Uniqueness => "uniqueness",
            Self::Mutability => "mutability",
            Self::InvalidSyntax => "invalidSyntax",
            Self::InvalidPath => "invalidPath",
            Self::NoTarget => "noTarget",
            Self::InvalidValue => "invalidValue",
        }
    }

    /// Parses the RFC's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::InvalidFilter,
            Self::TooMany,
            Self::Uniqueness,
            Self::Mutability,
            Self::InvalidSyntax,
            Self::InvalidPath,
            Self::NoTarget,
            Self::InvalidValue,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// A SCIM failure as an [`AppError`]: `uniqueness` is a 409 (`CONFLICT`), every other type a
/// 400 (`BAD_REQUEST`); `detail` (English, from the parser or the rule that refused) is sent
/// beside the localized message.
pub fn scim_error(t: ScimType, detail: impl Into<String>) -> AppError {
    let code = if t == ScimType::Uniqueness { ErrorCode::Conflict } else { ErrorCode::BadRequest };
    AppError::new(code).with_details(serde_json::json!({"scimType": t.as_str(), "detail": detail.into()}))
}

/// What a list asks for (RFC 7644 §3.4.2): a parsed filter, a sort, a 1-based start and a count.
#[derive(Clone, Debug)]
pub struct ListParams {
    pub filter: Option<filter::Filter>,
    pub sort_by: Option<String>,
    pub descending: bool,
    pub start_index: u64,
    pub count: u64,
}

impl ListParams {
    /// From the query parameters (or a `.search` body): `startIndex` below 1 counts as 1, a
    /// negative `count` as 0, and `count` above [`MAX_RESULTS`] as [`MAX_RESULTS`].
    pub fn parse(
        filter: Option<&str>,
        sort_by: Option<&str>,
        sort_order: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
    ) -> crate::error::AppResult<Self> {
        let filter = match filter.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => {
                Some(filter::parse_filter(f).map_err(|e| scim_error(ScimType::InvalidFilter, e.message))?)
            }
            None => None,
        };
        let descending = match sort_order.map(str::to_ascii_lowercase).as_deref() {
            None | Some("ascending") => false,
            Some("descending") => true,
            Some(_) => {
                return Err(scim_error(ScimType::InvalidValue, "sortOrder is ascending or descending"));
            }
        };
        Ok(Self {
            filter,
            sort_by: sort_by.map(str::to_owned).filter(|s| !s.trim().is_empty()),
            descending,
            start_index: start_index.unwrap_or(1).max(1) as u64,
            count: count.unwrap_or(MAX_RESULTS as i64).clamp(0, MAX_RESULTS as i64) as u64,
        })
    }
}

/// A page of resources and how many match in all.
#[derive(Clone, Debug)]
pub struct ListResult {
    pub total: u64,
    pub start_index: u64,
    pub resources: Vec<serde_json::Value>,
}

/// The largest page a list answers (`count` above it is lowered to it, as RFC 7644 §3.4.2.4 allows).
pub const MAX_RESULTS: u64 = 200;

/// The organization a SCIM request provisions: the SCIM token's, after the policy says so.
pub async fn provisioned_org(
    state: &crate::state::AppState,
    ctx: &crate::context::RequestContext,
) -> crate::error::AppResult<uuid::Uuid> {
    use crate::services::authz::{self, Action, Principal};
    let p = authz::principal(state, ctx).await?;
    let org = match &p {
        Principal::Scim { organization_id, .. } => *organization_id,
        _ => uuid::Uuid::nil(),
    };
    authz::authorize(&p, &Action::Provision { org })?;
    Ok(org)
}

impl From<patch::PatchError> for AppError {
    fn from(e: patch::PatchError) -> Self {
        let t = ScimType::parse(e.scim_type).unwrap_or(ScimType::InvalidValue);
        scim_error(t, e.message)
    }
}
