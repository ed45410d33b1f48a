//! Event lanes: one task per core serves the pool's live subscribers after every published
//! event, each subscriber's cursor deciding without waiting, the event's shared payload framed
//! and written straight into the subscriber's socket. No task is woken per subscriber.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{oneshot, watch};

use super::fanout::Fanout;
use super::frame::text_frame;
use super::pool::Pool;
use super::socket::Writer;
use crate::graphql::render::{Payload, RequestKey, Subscriber};
use crate::services::subscriptions::{Cursor, Offer};

/// Where a lane writes a subscriber's events: its connection's socket, and the start of its
/// protocol's message (`{"type":"next","id":"1","payload":`) before each payload.
pub struct Sink {
    writer: Arc<Writer>,
    prefix: Box<str>,
    /// Set when the operation ends (the client completed it, or its connection closed).
    gone: AtomicBool,
}

impl Sink {
    /// A sink writing into `writer`, each payload after `prefix`.
    pub fn new(writer: Arc<Writer>, prefix: String) -> Self {
        Self { writer, prefix: prefix.into(), gone: AtomicBool::new(false) }
    }

    /// The operation ended: a lane serving it lets its cursor go at the next event.
    pub(super) fn end(&self) {
        self.gone.store(true, Ordering::Relaxed);
    }
}

/// A live subscriber in the lanes' pool.
pub(super) struct Entry {
    pub(super) cursor: Cursor,
    /// Its subscriber's request key, kept at hand for the pass's memo.
    pub(super) key: RequestKey,
    pub(super) subscriber: Arc<Subscriber>,
    pub(super) sink: Arc<Sink>,
    /// Gives the cursor back to the subscriber's operation (closed when the operation ended).
    pub(super) back: oneshot::Sender<Cursor>,
}

/// An event lane: serves chunks of the pool after every event `published` announces, until the
/// fan-out is gone.
pub(super) async fn lane(
    pool: Arc<Pool<Entry>>,
    fanout: std::sync::Weak<Fanout>,
    mut published: watch::Receiver<i64>,
) {
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
