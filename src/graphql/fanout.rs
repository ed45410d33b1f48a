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

/// What identifies a selection: the query, the operation and the variables. Interned by
/// [`Keys`] (one `Arc` per distinct text), so two are equal when they are the same `Arc`: a lane
/// compares them for every subscriber of an event without reading the text.
#[derive(Clone)]
struct RequestKey(Arc<str>);

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
    keys: Mutex<Keys>,
    pool: Arc<Pool<Entry>>,
    lane_writes: std::sync::atomic::AtomicU64,
    /// Subscribers handed to the lanes since start.
    adopted: std::sync::atomic::AtomicU64,
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
                        let entry = Entry {
                            cursor,
                            key: this.subscriber.template.key.clone(),
                            subscriber: this.subscriber.clone(),
                            sink: sink.clone(),
                            back,
                        };
                        this.subscriber.fanout.pool.adopt(entry);
                        this.subscriber.fanout.adopted.fetch_add(1, Ordering::Relaxed);
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
        let pool = Arc::new(Pool::<Entry>::default());
        let fanout = Arc::new(Self {
            schema,
            renders: Renders::new(RENDERS_KEPT),
            keys: Default::default(),
            pool: pool.clone(),
            lane_writes: Default::default(),
            adopted: Default::default(),
        });
        for _ in 0..n {
            tokio::spawn(lane(pool.clone(), Arc::downgrade(&fanout), bus.published()));
        }
        fanout
    }

    /// How many times a caught-up subscriber was handed to the lanes since start.
    pub fn adopted(&self) -> u64 {
        self.adopted.load(Ordering::Relaxed)
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
            Arc::new(Subscriber { fanout: self.clone(), template: Template::of(&request, &self.keys), data });
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

/// A live subscriber in the lanes' pool.
struct Entry {
    cursor: Cursor,
    /// Its subscriber's request key, kept at hand for the pass's memo.
    key: RequestKey,
    subscriber: Arc<Subscriber>,
    sink: Arc<Sink>,
    /// Gives the cursor back to the subscriber's operation (closed when the operation ended).
    back: oneshot::Sender<Cursor>,
}

/// The live subscribers of a node, in chunks that the event lanes (one task per core) take in
/// turn. After every published event each chunk is served once, by whichever lane takes it: the
/// pass ends when the lanes together are through, however the cores were shared out among them
/// and everything else the node runs.
struct Pool<T> {
    state: Mutex<PoolState<T>>,
    /// Rings when subscribers arrive.
    wake: Notify,
}

struct PoolState<T> {
    /// Newly live subscribers, not yet in a chunk.
    inbox: Vec<T>,
    /// Chunks to serve: not yet served since the last published event a lane has seen.
    todo: Vec<Chunk<T>>,
    /// Chunks served since then.
    done: Vec<Chunk<T>>,
    /// The last published position a lane has seen.
    seen: i64,
}

/// Subscribers a lane serves between two looks at the pool (and yields to the runtime).
const CHUNK: usize = 64;

struct Chunk<T> {
    entries: Vec<T>,
    /// `seen` when a lane took it: served again if an event was published since.
    taken_at: i64,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        let state = PoolState { inbox: Vec::new(), todo: Vec::new(), done: Vec::new(), seen: i64::MIN };
        Self { state: Mutex::new(state), wake: Notify::new() }
    }
}

impl<T> Pool<T> {
    fn adopt(&self, entry: T) {
        self.lock().inbox.push(entry);
        self.wake.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands back the chunk a lane `served` (if any), notes that it has `seen` the bus up to
    /// there (if it looked), and gives it the next chunk to serve; `None` when the pass is over.
    fn next(&self, seen: Option<i64>, served: Option<Chunk<T>>) -> Option<Chunk<T>> {
        let mut s = self.lock();
        let s = &mut *s;
        if let Some(seen) = seen
            && seen > s.seen
        {
            s.seen = seen;
            s.todo.append(&mut s.done);
        }
        if let Some(c) = served
            && !c.entries.is_empty()
        {
            if c.taken_at < s.seen { s.todo.push(c) } else { s.done.push(c) }
        }
        while !s.inbox.is_empty() {
            let entries = s.inbox.split_off(s.inbox.len().saturating_sub(CHUNK));
            s.todo.push(Chunk { entries, taken_at: i64::MIN });
        }
        let mut c = s.todo.pop()?;
        c.taken_at = s.seen;
        Some(c)
    }
}

/// An event lane: serves chunks of the pool after every event `bus` publishes, each subscriber's
/// cursor deciding without waiting, the event's shared payload framed and written straight into
/// the subscriber's socket. No task is woken per subscriber.
async fn lane(pool: Arc<Pool<Entry>>, fanout: std::sync::Weak<Fanout>, mut published: watch::Receiver<i64>) {
    let mut pass =
        Pass { now: std::time::Instant::now(), memo: None, frame: Vec::with_capacity(1024), written: 0 };
    loop {
        tokio::select! {
            changed = published.changed() => if changed.is_err() { return },
            () = pool.wake.notified() => {}
        }
        let Some(fanout) = fanout.upgrade() else { return };
        let mut chunk = pool.next(Some(*published.borrow_and_update()), None);
        while let Some(mut c) = chunk {
            pass.now = std::time::Instant::now();
            serve_chunk(&mut c.entries, &mut pass).await;
            chunk = pool.next(None, Some(c));
            if chunk.is_some() {
                tokio::task::yield_now().await;
            }
        }
        pass.memo = None;
        fanout.lane_writes.fetch_add(pass.written, Ordering::Relaxed);
        metrics::counter!("janua_subscription_lane_writes_total").increment(pass.written);
        pass.written = 0;
    }
}

/// Serves every entry of a chunk; those whose operation needs its cursor back or is gone leave.
async fn serve_chunk(entries: &mut Vec<Entry>, pass: &mut Pass) {
    let mut i = 0;
    while i < entries.len() {
        match serve(&mut entries[i], pass).await {
            Fate::Keep => i += 1,
            Fate::Return => {
                let e = entries.swap_remove(i);
                let _ = e.back.send(e.cursor);
            }
            Fate::Drop => {
                entries.swap_remove(i);
            }
        }
    }
}

/// What becomes of an entry after it is served.
enum Fate {
    Keep,
    /// Its operation needs the cursor back (end, rights to read again, lag).
    Return,
    /// Its operation or connection is gone.
    Drop,
}

/// The payload last sent in a pass: subscribers with the same request share it without the
/// render cache's lock.
type Memo = Option<(RequestKey, i64, Option<Payload>)>;

/// Sends a live subscriber everything its cursor lets through now.
async fn serve(entry: &mut Entry, pass: &mut Pass) -> Fate {
    // A closed connection drops its operations (which sets `gone`); until then, writing to it
    // fails.
    if entry.sink.gone.load(Ordering::Relaxed) {
        return Fate::Drop;
    }
    loop {
        let e = match entry.cursor.poll_live(pass.now) {
            Offer::Deliver(e) => e,
            Offer::Idle => return Fate::Keep,
            Offer::Slow => return Fate::Return,
        };
        let key = &entry.key;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item, served in one pass to the end (a lane's loop, without the serving).
    fn pass(pool: &Pool<u32>, seen: Option<i64>) -> Vec<u32> {
        let mut served = Vec::new();
        let mut chunk = pool.next(seen, None);
        while let Some(c) = chunk {
            served.extend(&c.entries);
            chunk = pool.next(None, Some(c));
        }
        served.sort();
        served
    }

    #[test]
    fn every_subscriber_is_served_once_per_published_event() {
        let pool = Pool::<u32>::default();
        (0..150).for_each(|i| pool.adopt(i));
        // New subscribers are served at once, in chunks, then not again until an event.
        assert_eq!(pass(&pool, None), (0..150).collect::<Vec<_>>());
        let chunks = |pool: &Pool<u32>| {
            let s = pool.lock();
            s.todo.len() + s.done.len()
        };
        assert_eq!(chunks(&pool), 3);
        assert!(pass(&pool, None).is_empty());
        assert_eq!(pass(&pool, Some(1)), (0..150).collect::<Vec<_>>());
        // Another lane that wakes for the same event finds the pass done.
        assert!(pass(&pool, Some(1)).is_empty());
    }

    #[test]
    fn a_chunk_taken_before_an_event_is_served_again() {
        let pool = Pool::<u32>::default();
        (0..100).for_each(|i| pool.adopt(i));
        assert_eq!(pass(&pool, Some(1)).len(), 100);
        // Lane A takes a chunk; event 2 is published and lane B serves the rest.
        let held = pool.next(Some(2), None).expect("a chunk");
        let rest = pass(&pool, Some(3));
        assert_eq!(held.entries.len() + rest.len(), 100);
        // A hands its chunk back after event 3 was seen: it may have missed it, so it is served again.
        let again = pool.next(None, Some(held)).expect("served again");
        let mut again_entries = again.entries.clone();
        assert!(pool.next(None, Some(again)).is_none());
        again_entries.sort();
        assert!(again_entries.iter().all(|e| !rest.contains(e)));
    }

    #[test]
    fn a_served_chunk_left_empty_is_let_go() {
        let pool = Pool::<u32>::default();
        pool.adopt(7);
        let mut c = pool.next(None, None).expect("a chunk");
        c.entries.clear();
        assert!(pool.next(Some(1), Some(c)).is_none());
        let s = pool.lock();
        assert!(s.todo.is_empty() && s.done.is_empty());
    }

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
