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
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_graphql::futures_util::future::{BoxFuture, FutureExt};
use async_graphql::futures_util::stream::{BoxStream, Stream, StreamExt};
use async_graphql::{Data, Request, Response, Variables};
use tokio::sync::{Notify, OnceCell, oneshot, watch};

use super::JanuaSchema;
use crate::events::{BusEvent, EventBus};
use crate::http::ws_socket::Writer;
use crate::services::subscriptions::{Cursor, EventStream, Offer, StreamItem};

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
        self.resolutions.load(Ordering::Relaxed)
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
    lanes: Lanes,
    lane_writes: std::sync::atomic::AtomicU64,
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

    /// The shared payload of event `e`, resolved first if no subscriber with the same request
    /// has; `None` if its resolution failed.
    async fn payload(&self, e: Arc<BusEvent>) -> Option<Payload> {
        let renders = &self.fanout.renders;
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

    /// The subscriber's own end (its session was revoked).
    async fn revoked(self: Arc<Self>) -> Option<Out> {
        self.resolve(StreamItem::End).await.map(Out::Revoked)
    }
}

enum Phase {
    /// The request's own responses: a query's result, a refused subscription's errors.
    Probe(BoxStream<'static, Response>, Slot),
    /// An accepted subscription's events, waited for by the connection's task.
    Live(Box<EventStream>),
    /// Served by an event lane, which hands the cursor back when it needs the task again.
    Lane(oneshot::Receiver<Cursor>),
    Done,
}

/// What one operation of a connection sends: its probe's responses, then its events — from the
/// connection's task while it replays or waits, from a lane once it is live.
pub struct Operation {
    subscriber: Arc<Subscriber>,
    /// Where a lane may write this operation's events.
    sink: Option<Arc<Sink>>,
    phase: Phase,
    /// A resolution under way (the first subscriber of a request to see an event, or the end).
    pending: Option<BoxFuture<'static, Option<Out>>>,
}

impl Drop for Operation {
    fn drop(&mut self) {
        // A lane serving it lets its cursor go at the next event.
        if let Some(sink) = &self.sink {
            sink.gone.store(true, Ordering::Relaxed);
        }
    }
}

impl Stream for Operation {
    type Item = Out;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Out>> {
        let this = &mut *self;
        loop {
            if let Some(pending) = &mut this.pending {
                let out = std::task::ready!(pending.as_mut().poll(cx));
                this.pending = None;
                match out {
                    Some(out) => return Poll::Ready(Some(out)),
                    None => continue,
                }
            }
            match &mut this.phase {
                Phase::Probe(responses, slot) => match std::task::ready!(responses.poll_next_unpin(cx)) {
                    Some(r) => return Poll::Ready(Some(Out::Response(r))),
                    None => {
                        let events = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                        this.phase = events.map_or(Phase::Done, |e| Phase::Live(Box::new(e)));
                    }
                },
                Phase::Lane(returned) => match std::task::ready!(returned.poll_unpin(cx)) {
                    Ok(cursor) => this.phase = Phase::Live(Box::new(EventStream::new(cursor))),
                    // The lane let it go: the connection is closed.
                    Err(_) => this.phase = Phase::Done,
                },
                Phase::Live(events) => {
                    // Caught up and between items: a lane serves it from here.
                    if let Some(sink) = &this.sink
                        && let Some(cursor) = events.take_live()
                    {
                        let (back, returned) = oneshot::channel();
                        let entry =
                            Entry { cursor, subscriber: this.subscriber.clone(), sink: sink.clone(), back };
                        this.subscriber.fanout.lanes.adopt(entry);
                        this.phase = Phase::Lane(returned);
                        continue;
                    }
                    match std::task::ready!(events.poll_next_unpin(cx)) {
                        Some(StreamItem::Event(e)) => {
                            let subscriber = this.subscriber.clone();
                            this.pending =
                                Some(async move { subscriber.payload(e).await.map(Out::Shared) }.boxed());
                        }
                        Some(StreamItem::End) => {
                            this.phase = Phase::Done;
                            this.pending = Some(this.subscriber.clone().revoked().boxed());
                        }
                        None => this.phase = Phase::Done,
                    }
                }
                Phase::Done => return Poll::Ready(None),
            }
        }
    }
}

impl Fanout {
    /// With one event lane per core, woken by every event `bus` publishes (spawned on the
    /// current runtime).
    pub fn new(schema: JanuaSchema, bus: &EventBus) -> Arc<Self> {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        let lanes: Vec<Arc<Lane>> = (0..n).map(|_| Arc::new(Lane::default())).collect();
        let fanout = Arc::new(Self {
            schema,
            renders: Renders::new(RENDERS_KEPT),
            lanes: Lanes { lanes: lanes.clone(), turn: Default::default() },
            lane_writes: Default::default(),
        });
        for lane in lanes {
            tokio::spawn(lane.run(Arc::downgrade(&fanout), bus.published()));
        }
        fanout
    }

    /// How many events the lanes wrote since start (the rest went through connection tasks).
    pub fn lane_writes(&self) -> u64 {
        self.lane_writes.load(Ordering::Relaxed)
    }

    /// The resolved events it keeps.
    pub fn renders(&self) -> &Renders {
        &self.renders
    }

    /// Runs `request` for a connection with `data`: a query or mutation answers once; a
    /// subscription answers with its events until it ends; a refused one with its errors.
    /// With a `sink`, a lane writes its events there once it is caught up.
    pub fn open(self: &Arc<Self>, request: Request, data: Arc<Data>, sink: Option<Arc<Sink>>) -> Operation {
        let subscriber =
            Arc::new(Subscriber { fanout: self.clone(), template: Template::of(&request), data });
        // Queries and mutations sent over the socket, and refused subscriptions, are answered by
        // the probe itself; an accepted subscription leaves its event stream in the slot.
        let slot: Slot = Arc::new(Mutex::new(None));
        let probed = self.schema.execute_stream_with_session_data(
            request.data(Feed::Probe(slot.clone())),
            subscriber.data.clone(),
        );
        Operation { subscriber, sink, phase: Phase::Probe(probed, slot), pending: None }
    }
}

/// Where a lane writes a subscriber's events: its connection's socket, and the start of its
/// protocol's message (`{"type":"next","id":"1","payload":`) before each payload.
pub struct Sink {
    pub writer: Arc<Writer>,
    pub prefix: Box<str>,
    /// Set when the operation ends (the client completed it, or its connection closed).
    gone: AtomicBool,
}

impl Sink {
    pub fn new(writer: Arc<Writer>, prefix: String) -> Self {
        Self { writer, prefix: prefix.into(), gone: AtomicBool::new(false) }
    }
}

/// A live subscriber in a lane.
struct Entry {
    cursor: Cursor,
    subscriber: Arc<Subscriber>,
    sink: Arc<Sink>,
    /// Gives the cursor back to the subscriber's operation (closed when the operation ended).
    back: oneshot::Sender<Cursor>,
}

/// The event lanes of a node (at least one); a subscriber goes to the next in turn.
struct Lanes {
    lanes: Vec<Arc<Lane>>,
    turn: std::sync::atomic::AtomicUsize,
}

impl Lanes {
    fn adopt(&self, entry: Entry) {
        let i = self.turn.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let lane = &self.lanes[i];
        lane.inbox.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
        lane.wake.notify_one();
    }
}

/// Serves its live subscribers from one task: for every event, each subscriber's cursor decides
/// without waiting, and the event's shared payload is framed and written straight into the
/// subscriber's socket. No task is woken per subscriber.
#[derive(Default)]
struct Lane {
    inbox: Mutex<Vec<Entry>>,
    wake: Notify,
}

/// What becomes of an entry after a pass.
enum Fate {
    Keep,
    /// Its operation needs the cursor back (end, rights to read again, lag).
    Return,
    /// Its operation or connection is gone.
    Drop,
}

/// Subscribers served between two yields to the runtime.
const LANE_BATCH: usize = 256;

impl Lane {
    async fn run(self: Arc<Self>, fanout: std::sync::Weak<Fanout>, mut published: watch::Receiver<i64>) {
        let mut entries: Vec<Entry> = Vec::new();
        let mut pass =
            Pass { now: std::time::Instant::now(), memo: None, frame: Vec::with_capacity(1024), written: 0 };
        loop {
            tokio::select! {
                changed = published.changed() => if changed.is_err() { return },
                () = self.wake.notified() => {}
            }
            let Some(fanout) = fanout.upgrade() else { return };
            entries.extend(self.inbox.lock().unwrap_or_else(|e| e.into_inner()).drain(..));
            (pass.now, pass.written) = (std::time::Instant::now(), 0);
            let mut i = 0;
            while i < entries.len() {
                match serve(&mut entries[i], &mut pass).await {
                    Fate::Keep => i += 1,
                    Fate::Return => {
                        let e = entries.swap_remove(i);
                        let _ = e.back.send(e.cursor);
                    }
                    Fate::Drop => {
                        entries.swap_remove(i);
                    }
                }
                if i % LANE_BATCH == LANE_BATCH - 1 {
                    tokio::task::yield_now().await;
                }
            }
            pass.memo = None;
            fanout.lane_writes.fetch_add(pass.written, Ordering::Relaxed);
            metrics::counter!("janua_subscription_lane_writes_total").increment(pass.written);
        }
    }
}

/// The payload last sent in a pass: subscribers with the same request share it without the
/// render cache's lock.
type Memo = Option<(RequestKey, i64, Option<Payload>)>;

/// Sends a live subscriber everything its cursor lets through now.
async fn serve(entry: &mut Entry, pass: &mut Pass) -> Fate {
    if entry.sink.gone.load(Ordering::Relaxed) || entry.sink.writer.is_closed() {
        return Fate::Drop;
    }
    loop {
        let e = match entry.cursor.poll_live(pass.now) {
            Offer::Deliver(e) => e,
            Offer::Idle => return Fate::Keep,
            Offer::Slow => return Fate::Return,
        };
        let key = &entry.subscriber.template.key;
        let payload = match &pass.memo {
            Some((k, seq, p)) if *seq == e.seq && k == key => p.clone(),
            _ => {
                let seq = e.seq;
                let p = entry.subscriber.payload(e).await;
                pass.memo = Some((key.clone(), seq, p.clone()));
                p
            }
        };
        let Some(payload) = payload else { continue };
        text_frame(&mut pass.frame, &entry.sink.prefix, &payload);
        if entry.sink.writer.write(&pass.frame).is_err() {
            return Fate::Drop;
        }
        pass.written += 1;
    }
}

/// What a lane's pass over its subscribers carries from one to the next.
struct Pass {
    now: std::time::Instant,
    memo: Memo,
    frame: Vec<u8>,
    written: u64,
}

/// A server's WebSocket text frame (unmasked, final) holding `prefix`, `payload` and `}`.
fn text_frame(out: &mut Vec<u8>, prefix: &str, payload: &str) {
    let len = prefix.len() + payload.len() + 1;
    out.clear();
    out.push(0x81);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(payload.as_bytes());
    out.push(b'}');
}
