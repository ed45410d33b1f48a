//! `sessions`, `session`, `terminateSession`, `terminateAllSessions`.

use async_graphql::{Context, ID, Object, Result};

use super::parts;
use super::types::{ActionPayload, Conn, Session, TerminateAllInput, TerminateAllPayload, connection};
use crate::domain::lists::ListRequest;
use crate::domain::parse_id;
use crate::services::sessions;

/// The caller's sessions.
#[derive(Default)]
pub struct SessionsQuery;

#[Object]
impl SessionsQuery {
    /// The caller's active sessions; `orderBy` is `created_at` or `last_active_at`, with
    /// `:asc` or `:desc` (default `created_at:desc`, newest first).
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        order_by: Option<String>,
    ) -> Result<Conn<Session>> {
        let (state, rc) = parts(ctx);
        let req = ListRequest::parse(first, after, last, before)?;
        Ok(connection(sessions::list_sessions(state, rc, &req, order_by.as_deref()).await?))
    }

    /// One of the caller's sessions.
    async fn session(&self, ctx: &Context<'_>, id: ID) -> Result<Session> {
        let (state, rc) = parts(ctx);
        Ok(sessions::get_session(state, rc, parse_id("id", &id)?).await?.into())
    }
}

/// Ending sessions.
#[derive(Default)]
pub struct SessionsMutation;

#[Object]
impl SessionsMutation {
    /// Revokes one of the caller's sessions.
    async fn terminate_session(&self, ctx: &Context<'_>, id: ID) -> Result<ActionPayload> {
        let (state, rc) = parts(ctx);
        sessions::terminate_session(state, rc, parse_id("id", &id)?).await?;
        Ok(ActionPayload { success: true })
    }

    /// Revokes all the caller's sessions except the current one (unless `includeCurrent`).
    async fn terminate_all_sessions(
        &self,
        ctx: &Context<'_>,
        input: Option<TerminateAllInput>,
    ) -> Result<TerminateAllPayload> {
        let (state, rc) = parts(ctx);
        let include_current = input.is_some_and(|i| i.include_current);
        let terminated = sessions::terminate_all(state, rc, include_current).await?;
        Ok(TerminateAllPayload { terminated })
    }
}
