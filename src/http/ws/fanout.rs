//! What one operation of a `/graphql/ws` connection sends, and how a live subscription moves
//! from its connection's task to the event lanes and back.
//!
//! The GraphQL side ([`Renderer`]) answers the request and turns each event into shared bytes;
//! this side decides when a subscriber's events are due and where those bytes are written.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use async_graphql::futures_util::future::{BoxFuture, FutureExt};
use async_graphql::futures_util::stream::{Stream, StreamExt};
use async_graphql::{Data, Request, Response};
use tokio::sync::oneshot;

use super::lanes::{Entry, Sink, lane};
use super::pool::Pool;
use crate::events::EventBus;
use crate::graphql::JanuaSchema;
use crate::graphql::render::{Payload, Probe, Renderer, Renders, Subscriber};
use crate::services::subscriptions::{Cursor, EventStream, StreamItem};

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

/// The schema as `/graphql/ws` runs it: each event resolved once per selection, and written by
/// the event lanes to every caught-up subscriber.
pub struct Fanout {
    renderer: Arc<Renderer>,
    pool: Arc<Pool<Entry>>,
    /// Events the lanes wrote since start.
    pub(super) lane_writes: AtomicU64,
    /// Subscribers handed to the lanes since start.
    adopted: AtomicU64,
}

impl Fanout {
    /// With one event lane per core, woken by every event `bus` publishes (spawned on the
    /// current runtime).
    pub fn new(schema: JanuaSchema, bus: &EventBus) -> Arc<Self> {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = Arc::new(Pool::<Entry>::default());
        let fanout = Arc::new(Self {
            renderer: Renderer::new(schema),
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
        self.renderer.renders()
    }

    /// Runs `request` for a connection with `data`: a query or mutation answers once; a
    /// subscription answers with its events until it ends; a refused one with its errors.
    /// With a `sink`, a lane writes its events there once it is caught up.
    pub fn open(self: &Arc<Self>, request: Request, data: Arc<Data>, sink: Option<Arc<Sink>>) -> Operation {
        let (subscriber, probe) = self.renderer.open(request, data);
        Operation { fanout: self.clone(), subscriber, sink, phase: Phase::Probe(probe), pending: None }
    }

    /// Hands a caught-up subscriber to the lanes.
    fn adopt(&self, entry: Entry) {
        self.pool.adopt(entry);
        self.adopted.fetch_add(1, Ordering::Relaxed);
    }
}

enum Phase {
    /// The request's own responses: a query's result, a refused subscription's errors.
    Probe(Probe),
    /// An accepted subscription's events, waited for by the connection's task.
    Live(Box<EventStream>),
    /// Served by an event lane, which hands the cursor back when it needs the task again.
    Lane(oneshot::Receiver<Cursor>),
    Done,
}

/// What one operation of a connection sends: its probe's responses, then its events — from the
/// connection's task while it replays or waits, from a lane once it is live.
pub struct Operation {
    fanout: Arc<Fanout>,
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
            sink.end();
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
                Phase::Probe(probe) => match std::task::ready!(probe.poll_next_unpin(cx)) {
                    Some(r) => return Poll::Ready(Some(Out::Response(r))),
                    None => this.phase = probe.events().map_or(Phase::Done, |e| Phase::Live(Box::new(e))),
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
                            key: this.subscriber.key().clone(),
                            subscriber: this.subscriber.clone(),
                            sink: sink.clone(),
                            back,
                        };
                        this.fanout.adopt(entry);
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
                            let subscriber = this.subscriber.clone();
                            this.pending =
                                Some(async move { subscriber.revoked().await.map(Out::Revoked) }.boxed());
                        }
                        None => this.phase = Phase::Done,
                    }
                }
                Phase::Done => return Poll::Ready(None),
            }
        }
    }
}
