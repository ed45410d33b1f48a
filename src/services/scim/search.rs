//! `POST /.search` (RFC 7644 §3.4.3): one search over Users and Groups. The filter applies to
//! both; a type whose attributes it does not name contributes no resources (a filter neither
//! type understands is `invalidFilter`). Users come first, then groups; `startIndex`/`count`
//! page over that order, each part one indexed query. A `sortBy` one type has not leaves that
//! type in its default order.

use serde_json::Value;

use super::query::{self, Resource};
use super::{ListParams, ListResult, groups, users};
use crate::context::RequestContext;
use crate::error::AppResult;
use crate::state::AppState;

/// `sort_by` when `r` can sort on it: a type without the attribute keeps its default order
/// (RFC 7644 §3.4.2.3 leaves that to the service provider), so `sortBy=userName` still searches
/// groups.
fn sortable(r: Resource, sort_by: &str) -> Option<String> {
    query::sort_column(r, sort_by).is_ok().then(|| sort_by.to_owned())
}

fn is_invalid_filter(e: &crate::error::AppError) -> bool {
    e.details.as_ref().is_some_and(|d| d["scimType"] == "invalidFilter")
}

/// One type's part, or an empty part when the filter names attributes it does not have.
fn part(r: AppResult<ListResult>) -> AppResult<Option<ListResult>> {
    match r {
        Ok(r) => Ok(Some(r)),
        Err(e) if is_invalid_filter(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Searches users and groups of the token's organization at once: one count and one page of
/// each type (the users' total places the groups' part).
pub async fn search_all(
    state: &AppState,
    ctx: &RequestContext,
    base: &str,
    p: &ListParams,
    with_members: bool,
) -> AppResult<ListResult> {
    let start = p.start_index.max(1);
    let (users_sort, groups_sort) = match &p.sort_by {
        None => (None, None),
        Some(s) => {
            let (u, g) = (sortable(Resource::User, s), sortable(Resource::Group, s));
            if u.is_none() && g.is_none() {
                // Neither type sorts on it: say why, as a users' list would.
                query::sort_column(Resource::User, s)?;
            }
            (u, g)
        }
    };
    let users = part(
        users::list_users(
            state,
            ctx,
            base,
            &ListParams { start_index: start, sort_by: users_sort, ..p.clone() },
        )
        .await,
    )?;
    let users_apply = users.is_some();
    let (u, mut resources): (u64, Vec<Value>) = match users {
        Some(r) => (r.total, r.resources),
        None => (0, Vec::new()),
    };
    let groups_part = ListParams {
        start_index: start.saturating_sub(u).max(1),
        count: if start > u { p.count } else { p.count.saturating_sub(resources.len() as u64) },
        sort_by: groups_sort,
        ..p.clone()
    };
    let groups = part(groups::list_groups(state, ctx, base, &groups_part, with_members).await)?;
    let g = match groups {
        Some(r) => {
            resources.extend(r.resources);
            r.total
        }
        None if !users_apply => {
            // Neither type understands the filter: say why, as a users' list would.
            return users::list_users(state, ctx, base, p).await;
        }
        None => 0,
    };
    Ok(ListResult { total: u + g, start_index: start, resources })
}
