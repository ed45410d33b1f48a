//! Subscription events resolved and serialised once per selection, not once per subscriber: the
//! GraphQL half of the fan-out, which hands the transport bytes and knows nothing of sockets.
//!
//! async-graphql resolves every item of a subscription stream for each subscriber on its own; with
//! thousands of dashboards watching the same events that resolution dominated the fan-out.
//! [`Renderer`] keeps async-graphql for parsing, validation and authorization, and splits a
//! subscription in two:
//!
//! 1. **Probe**: the request runs once with [`Feed::Probe`]; the subscription field authorizes the
//!    caller and opens its event stream (replay, filters, per-event rights, revocation) exactly as
//!    over HTTP, then hands that stream back through the [`Probe`] instead of resolving it. Errors
//!    (bad arguments, no rights) come out of the probe as ordinary responses.
//! 2. **Render**: each event the subscriber's stream lets through is resolved by running the same
//!    request (query, operation, variables) with [`Feed::Render`] of that one event. The result is
//!    serialised to JSON and kept per (request, event) in [`Renders`], so every subscriber with the
//!    same selection shares one resolution and one serialisation ([`Subscriber::payload`]).
//!
//! A transport decides when a subscriber's events are due and where their bytes go: it calls
//! [`Subscriber::payload`] for each event and may skip even that for a subscriber whose
//! [`Subscriber::key`] equals the one it just asked for (the same selection gets the same bytes).

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_graphql::futures_util::stream::{BoxStream, Stream, StreamExt};
use async_graphql::{Data, Request, Response, Variables};
use tokio::sync::OnceCell;

use super::JanuaSchema;
use crate::events::BusEvent;
use crate::services::subscriptions::{EventStream, StreamItem};

/// Where a probe leaves the event stream it opened.
pub(crate) type Slot = Arc<Mutex<Option<EventStream>>>;

/// How a subscription field produces its items; set only by [`Fanout`], never by clients.
pub(crate) enum Feed {
    /// Authorize, open the event stream and leave it here instead of resolving it.
    Probe(Slot),
    /// Resolve this one item, with no authorization and no database access (the subscriber's
    /// own stream already decided that it may see it).
    Render(StreamItem),
}

/// What identifies a selection: the query, the operation and the variables. Interned by
/// [`Keys`] (one `Arc` per distinct text), so two are equal when they are the same `Arc`: a
/// transport compares them for every subscriber of an event without reading the text.
#[derive(Clone)]
pub struct RequestKey(Arc<str>);

impl PartialEq for RequestKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RequestKey {}

impl std::hash::Hash for RequestKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).cast::<u8>().hash(state);
    }
}

/// The node's request keys, one per distinct text; a key nothing else holds any more is let go
/// when the set has doubled since it was last swept.
#[derive(Default)]
struct Keys {
    set: std::collections::HashSet<Arc<str>>,
    swept: usize,
}

impl Keys {
    fn intern(&mut self, text: String) -> RequestKey {
        if let Some(k) = self.set.get(text.as_str()) {
            return RequestKey(k.clone());
        }
        if self.set.len() >= 2 * self.swept.max(64) {
            self.set.retain(|k| Arc::strong_count(k) > 1);
            self.swept = self.set.len();
        }
        let k: Arc<str> = text.into();
        self.set.insert(k.clone());
        RequestKey(k)
    }
}

struct Template {
    key: RequestKey,
    query: String,
    operation_name: Option<String>,
    variables: Variables,
}

impl Template {
    fn of(request: &Request, keys: &Mutex<Keys>) -> Self {
        let vars = serde_json::to_string(&request.variables).unwrap_or_default();
        let op = request.operation_name.as_deref().unwrap_or_default();
        let text = format!("{}\u{0}{op}\u{0}{vars}", request.query);
        Self {
            key: keys.lock().unwrap_or_else(|e| e.into_inner()).intern(text),
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
        self.resolutions.load(Ordering::Relaxed)
    }
}

/// A response serialised to JSON, shared by every subscriber with the same selection.
pub type Payload = Arc<str>;

/// Resolved events kept for sharing.
const RENDERS_KEPT: usize = 4096;

/// The schema as `/graphql/ws` runs it: each event resolved once per selection.
pub struct Renderer {
    schema: JanuaSchema,
    renders: Renders,
    keys: Mutex<Keys>,
}

impl Renderer {
    /// Over `schema`, keeping the last few thousand resolved events.
    pub fn new(schema: JanuaSchema) -> Arc<Self> {
        Arc::new(Self { schema, renders: Renders::new(RENDERS_KEPT), keys: Default::default() })
    }

    /// The resolved events it keeps.
    pub fn renders(&self) -> &Renders {
        &self.renders
    }

    /// Runs `request` with `data` as a probe: its subscriber (for the events to come) and its
    /// own responses — a query's or mutation's result, a refused subscription's errors — after
    /// which an accepted subscription's event stream is in the probe.
    pub fn open(self: &Arc<Self>, request: Request, data: Arc<Data>) -> (Arc<Subscriber>, Probe) {
        let subscriber = Arc::new(Subscriber {
            renderer: self.clone(),
            template: Template::of(&request, &self.keys),
            data,
        });
        let slot: Slot = Arc::new(Mutex::new(None));
        let responses = self.schema.execute_stream_with_session_data(
            request.data(Feed::Probe(slot.clone())),
            subscriber.data.clone(),
        );
        (subscriber, Probe { responses, slot })
    }
}

/// A request's run as a probe: its responses, then the event stream it opened (if any).
pub struct Probe {
    responses: BoxStream<'static, Response>,
    slot: Slot,
}

impl Probe {
    /// The event stream of an accepted subscription, once the responses have ended; `None` for
    /// a query, a mutation or a refused subscription.
    pub fn events(&self) -> Option<EventStream> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Stream for Probe {
    type Item = Response;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        self.responses.poll_next_unpin(cx)
    }
}

/// One subscription's way from its events to the bytes it sends.
pub struct Subscriber {
    renderer: Arc<Renderer>,
    template: Template,
    data: Arc<Data>,
}

impl Subscriber {
    /// Its selection: subscribers with equal keys get the same payload for the same event.
    pub fn key(&self) -> &RequestKey {
        &self.template.key
    }

    /// Runs the subscription request for `item` alone and returns its response.
    async fn resolve(&self, item: StreamItem) -> Option<Response> {
        let request = self.template.request(Feed::Render(item));
        self.renderer.schema.execute_stream_with_session_data(request, self.data.clone()).next().await
    }

    /// The shared payload of event `e`, resolved first if no subscriber with the same request
    /// has; `None` if its resolution failed.
    pub async fn payload(&self, e: Arc<BusEvent>) -> Option<Payload> {
        let renders = &self.renderer.renders;
        let cell = renders.cell(&self.template.key, e.seq);
        if let Some(p) = cell.get() {
            return p.clone();
        }
        let payload = cell
            .get_or_init(|| async {
                renders.resolutions.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("janua_subscription_resolutions_total").increment(1);
                let response = self.resolve(StreamItem::Event(e)).await?;
                serde_json::to_string(&response).ok().map(Payload::from)
            })
            .await;
        payload.clone()
    }

    /// The subscriber's own end (its session was revoked): the error it answers with.
    pub async fn revoked(&self) -> Option<Response> {
        self.resolve(StreamItem::End).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_request_texts_share_one_key_and_unused_keys_are_let_go() {
        let mut keys = Keys::default();
        let a = keys.intern("q\u{0}\u{0}{}".to_owned());
        let b = keys.intern("q\u{0}\u{0}{}".to_owned());
        assert!(a == b);
        assert!(keys.intern("other".to_owned()) != a);
        drop(b);
        for i in 0..200 {
            keys.intern(format!("q{i}"));
        }
        // Swept as the set grew: only keys still held somewhere remain (and the newest).
        assert!(keys.set.len() < 100);
        assert!(keys.set.contains(&a.0));
    }
}
