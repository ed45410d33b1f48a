//! Subscriptions over WebSocket with each event resolved once per selection, not once per
//! subscriber.
//!
//! async-graphql resolves every item of a subscription stream for each subscriber on its own; with
//! thousands of dashboards watching the same events that resolution dominated the fan-out. The
//! [`WsExecutor`] keeps async-graphql for the protocol, parsing, validation and authorization, and
//! splits a subscription in two:
//!
//! 1. **Probe**: the request runs once with [`Feed::Probe`]; the subscription field authorizes the
//!    caller and opens its event stream (replay, filters, per-event rights, revocation) exactly as
//!    over HTTP, then hands that stream back through the probe instead of resolving it. Errors
//!    (bad arguments, no rights) come out of the probe as ordinary responses.
//! 2. **Render**: each event the subscriber's stream lets through is resolved by running the same
//!    request (query, operation, variables) with [`Feed::Render`] of that one event. The result is
//!    kept per (request, event) in [`Renders`], so every subscriber with the same selection shares
//!    one resolution.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::{Data, Executor, Request, Response, Variables};
use tokio::sync::OnceCell;

use super::JanuaSchema;
use crate::services::subscriptions::StreamItem;

/// How a subscription field produces its items; set only by [`WsExecutor`], never by clients.
pub(crate) enum Feed {
    /// Authorize, open the event stream and leave it here instead of resolving it.
    Probe(Arc<Mutex<Option<BoxStream<'static, StreamItem>>>>),
    /// Resolve this one item, with no authorization and no database access (the subscriber's
    /// own stream already decided that it may see it).
    Render(StreamItem),
}

/// What identifies a selection: the query, the operation and the variables.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RequestKey(Arc<str>);

struct Template {
    key: RequestKey,
    query: String,
    operation_name: Option<String>,
    variables: Variables,
}

impl Template {
    fn of(request: &Request) -> Self {
        let vars = serde_json::to_string(&request.variables).unwrap_or_default();
        let op = request.operation_name.as_deref().unwrap_or_default();
        Self {
            key: RequestKey(format!("{}\u{0}{op}\u{0}{vars}", request.query).into()),
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables: request.variables.clone(),
        }
    }

    fn request(&self, feed: Feed) -> Request {
        let mut r = Request::new(self.query.clone()).variables(self.variables.clone()).data(feed);
        if let Some(op) = &self.operation_name {
            r = r.operation_name(op.clone());
        }
        r
    }
}

/// Resolved events, per (request, outbox position); the oldest are forgotten first.
pub struct Renders {
    cells: Mutex<RenderMap>,
    capacity: usize,
    resolutions: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct RenderMap {
    map: HashMap<(RequestKey, i64), Arc<OnceCell<Option<Response>>>>,
    order: VecDeque<(RequestKey, i64)>,
}

impl Renders {
    /// Keeps at most `capacity` resolved events.
    pub fn new(capacity: usize) -> Self {
        Self { cells: Mutex::new(RenderMap::default()), capacity, resolutions: Default::default() }
    }

    fn cell(&self, key: &RequestKey, seq: i64) -> Arc<OnceCell<Option<Response>>> {
        let mut m = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.map.get(&(key.clone(), seq)) {
            return c.clone();
        }
        let c = Arc::new(OnceCell::new());
        m.map.insert((key.clone(), seq), c.clone());
        m.order.push_back((key.clone(), seq));
        while m.order.len() > self.capacity {
            if let Some(old) = m.order.pop_front() {
                m.map.remove(&old);
            }
        }
        c
    }

    /// How many times an event has been resolved since start.
    pub fn resolutions(&self) -> u64 {
        self.resolutions.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A response has no `Clone`; events carry data (and errors only if resolution failed).
fn copy(r: &Response) -> Response {
    let mut out = Response::new(r.data.clone());
    out.errors = r.errors.clone();
    out.extensions = r.extensions.clone();
    out
}

/// The executor behind `/graphql/ws`: the schema, with subscriptions fanned out as above.
#[derive(Clone)]
pub struct WsExecutor {
    schema: JanuaSchema,
    renders: Arc<Renders>,
}

/// Resolved events kept for sharing.
const RENDERS_KEPT: usize = 4096;

impl WsExecutor {
    pub fn new(schema: JanuaSchema) -> Self {
        Self { schema, renders: Arc::new(Renders::new(RENDERS_KEPT)) }
    }

    /// The resolved events it keeps.
    pub fn renders(&self) -> &Renders {
        &self.renders
    }
}

/// One subscription's way from its events to responses.
struct Subscriber {
    executor: WsExecutor,
    template: Template,
    data: Arc<Data>,
}

impl Subscriber {
    /// Runs the subscription request for `item` alone and returns its response.
    async fn resolve(&self, item: StreamItem) -> Option<Response> {
        let request = self.template.request(Feed::Render(item));
        self.executor.schema.execute_stream_with_session_data(request, self.data.clone()).next().await
    }

    /// The response for `item`: an event's is shared by every subscriber with the same request;
    /// the end is the subscriber's own (its session was revoked).
    async fn respond(self: Arc<Self>, item: StreamItem) -> Option<Response> {
        let StreamItem::Event(e) = &item else { return self.resolve(item).await };
        let renders = &self.executor.renders;
        let cell = renders.cell(&self.template.key, e.seq);
        let rendered = cell
            .get_or_init(|| async {
                renders.resolutions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                metrics::counter!("janua_subscription_resolutions_total").increment(1);
                self.resolve(item.clone()).await
            })
            .await;
        rendered.as_ref().map(copy)
    }
}

impl Executor for WsExecutor {
    fn execute(&self, request: Request) -> impl Future<Output = Response> + Send {
        let schema = self.schema.clone();
        async move { schema.execute(request).await }
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let data = session_data.unwrap_or_default();
        let subscriber =
            Arc::new(Subscriber { executor: self.clone(), template: Template::of(&request), data });
        let slot = Arc::new(Mutex::new(None));
        let probed = self.schema.execute_stream_with_session_data(
            request.data(Feed::Probe(slot.clone())),
            subscriber.data.clone(),
        );
        // Queries and mutations sent over the socket, and refused subscriptions, are answered by
        // the probe itself; an accepted subscription leaves its event stream in the probe.
        let events = stream::once(async move { slot.lock().unwrap_or_else(|e| e.into_inner()).take() })
            .filter_map(|events| async move { events })
            .flatten()
            .filter_map(move |item| subscriber.clone().respond(item));
        probed.chain(events).boxed()
    }
}
