//! Subscriptions with each event resolved and serialised once per selection, not once per
//! subscriber.
//!
//! async-graphql resolves every item of a subscription stream for each subscriber on its own; with
//! thousands of dashboards watching the same events that resolution dominated the fan-out.
//! [`Fanout`] keeps async-graphql for parsing, validation and authorization, and splits a
//! subscription in two:
//!
//! 1. **Probe**: the request runs once with [`Feed::Probe`]; the subscription field authorizes the
//!    caller and opens its event stream (replay, filters, per-event rights, revocation) exactly as
//!    over HTTP, then hands that stream back through the probe instead of resolving it. Errors
//!    (bad arguments, no rights) come out of the probe as ordinary responses.
//! 2. **Render**: each event the subscriber's stream lets through is resolved by running the same
//!    request (query, operation, variables) with [`Feed::Render`] of that one event. The result is
//!    serialised to JSON and kept per (request, event) in [`Renders`], so every subscriber with the
//!    same selection shares one resolution and one serialisation; the WebSocket transport
//!    (`http::graphql_ws`) writes those bytes into each subscriber's frame.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::{Data, Request, Response, Variables};
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
    map: HashMap<(RequestKey, i64), Arc<OnceCell<Option<Payload>>>>,
    order: VecDeque<(RequestKey, i64)>,
}

impl Renders {
    /// Keeps at most `capacity` resolved events.
    pub fn new(capacity: usize) -> Self {
        Self { cells: Mutex::new(RenderMap::default()), capacity, resolutions: Default::default() }
    }

    fn cell(&self, key: &RequestKey, seq: i64) -> Arc<OnceCell<Option<Payload>>> {
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

/// A response serialised to JSON, shared by every subscriber with the same selection.
pub type Payload = Arc<str>;

/// What a subscription sends, in order.
pub enum Out {
    /// A response of this subscriber alone: a query's or mutation's result, a refused
    /// subscription.
    Response(Response),
    /// An event, resolved and serialised once for every subscriber with the same selection.
    Shared(Payload),
    /// The subscriber's own session was revoked: this error, then the connection closes.
    Revoked(Response),
}

/// Resolved events kept for sharing.
const RENDERS_KEPT: usize = 4096;

/// The schema as `/graphql/ws` runs it: subscriptions fanned out as above.
pub struct Fanout {
    schema: JanuaSchema,
    renders: Renders,
}

/// One subscription's way from its events to what it sends.
struct Subscriber {
    fanout: Arc<Fanout>,
    template: Template,
    data: Arc<Data>,
}

impl Subscriber {
    /// Runs the subscription request for `item` alone and returns its response.
    async fn resolve(&self, item: StreamItem) -> Option<Response> {
        let request = self.template.request(Feed::Render(item));
        self.fanout.schema.execute_stream_with_session_data(request, self.data.clone()).next().await
    }

    /// What to send for `item`: an event's payload is shared by every subscriber with the same
    /// request; the end is the subscriber's own (its session was revoked).
    async fn respond(self: Arc<Self>, item: StreamItem) -> Option<Out> {
        let StreamItem::Event(e) = &item else { return self.resolve(item).await.map(Out::Revoked) };
        let renders = &self.fanout.renders;
        let cell = renders.cell(&self.template.key, e.seq);
        let payload = cell
            .get_or_init(|| async {
                renders.resolutions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                metrics::counter!("janua_subscription_resolutions_total").increment(1);
                let response = self.resolve(item.clone()).await?;
                serde_json::to_string(&response).ok().map(Payload::from)
            })
            .await;
        payload.clone().map(Out::Shared)
    }
}

impl Fanout {
    pub fn new(schema: JanuaSchema) -> Self {
        Self { schema, renders: Renders::new(RENDERS_KEPT) }
    }

    /// The resolved events it keeps.
    pub fn renders(&self) -> &Renders {
        &self.renders
    }

    /// Runs `request` for a connection with `data`: a query or mutation answers once; a
    /// subscription answers with its events until it ends; a refused one with its errors.
    pub fn open(self: &Arc<Self>, request: Request, data: Arc<Data>) -> BoxStream<'static, Out> {
        let subscriber =
            Arc::new(Subscriber { fanout: self.clone(), template: Template::of(&request), data });
        let slot = Arc::new(Mutex::new(None));
        let probed = self
            .schema
            .execute_stream_with_session_data(
                request.data(Feed::Probe(slot.clone())),
                subscriber.data.clone(),
            )
            .map(Out::Response);
        // Queries and mutations sent over the socket, and refused subscriptions, are answered by
        // the probe itself; an accepted subscription leaves its event stream in the probe.
        let events = stream::once(async move { slot.lock().unwrap_or_else(|e| e.into_inner()).take() })
            .filter_map(|events| async move { events })
            .flatten()
            .filter_map(move |item| subscriber.clone().respond(item));
        probed.chain(events).boxed()
    }
}
