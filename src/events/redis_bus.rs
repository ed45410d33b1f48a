//! One Redis pub/sub connection per node forwards the cluster's events into the local bus.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use entities::outbox_event;

use super::{BusEvent, EventBus};
use crate::storage::{Redis, RedisRevocationStore};

/// Subscribes to the events channel and forwards every event into `bus`, until aborted. When
/// the connection drops (Redis stopped or restarted) it reconnects and subscribes again, once a
/// second; after each (re)subscription it writes the database's revocations back to Redis (a
/// restarted Redis may have lost them), and forwards from the outbox every event published
/// since the last one it forwarded (those went out on the channel while this node was not
/// listening), before going on with the channel. Events are forwarded once each, in outbox
/// order: one the channel brings again (seen by position) is skipped.
pub async fn forward_from_redis(
    redis: Redis,
    bus: EventBus,
    revocations: Option<RedisRevocationStore>,
    db: DatabaseConnection,
    since: Option<i64>,
) {
    let channel = redis.events_channel();
    // The outbox position of the last event forwarded: `since` (the newest published when the
    // node started, so the first subscription forwards what was published while it was being
    // made: a socket opened meanwhile misses no revocation), else found at the first one.
    let mut forwarded: Option<i64> = since;
    loop {
        match redis.client().get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    metrics::gauge!("janua_redis_subscriber_connected").set(1.0);
                    tracing::info!("subscribed to the redis event channel");
                    if let Some(r) = &revocations
                        && let Err(e) = r.resync().await
                    {
                        tracing::warn!(error = %e, "writing revocations back to redis failed");
                    }
                    match catch_up(&db, &bus, forwarded).await {
                        Ok(last) => forwarded = Some(last),
                        Err(e) => {
                            // Unknown what was missed: start over (subscribe again, re-read).
                            tracing::warn!(error = %e, "reading missed events from the outbox failed; resubscribing");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        match msg.get_payload::<String>().map(|p| serde_json::from_str::<BusEvent>(&p)) {
                            Ok(Ok(e)) => {
                                metrics::counter!("janua_events_received_total").increment(1);
                                if forwarded.is_some_and(|f| e.seq <= f) {
                                    continue;
                                }
                                forwarded = Some(e.seq);
                                bus.publish(Arc::new(e));
                            }
                            _ => {
                                metrics::counter!("janua_events_dropped_total", "reason" => "malformed")
                                    .increment(1);
                            }
                        }
                    }
                    metrics::gauge!("janua_redis_subscriber_connected").set(0.0);
                    tracing::warn!("redis event subscription ended; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "subscribing to the redis event channel failed"),
            },
            Err(e) => tracing::debug!(error = %e, "redis pub/sub connection failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The outbox position of the newest published event (0: none yet).
pub async fn newest_published(db: &DatabaseConnection) -> Result<i64, sea_orm::DbErr> {
    Ok(outbox_event::Entity::find()
        .filter(outbox_event::Column::PublishedAt.is_not_null())
        .order_by_desc(outbox_event::Column::Seq)
        .one(db)
        .await?
        .map_or(0, |m| m.seq))
}

/// Forwards the published outbox rows after `after` into `bus`, oldest first; returns the
/// position of the last one (on the first subscription, `after` is `None`: nothing is
/// forwarded, and the position is the newest published event).
async fn catch_up(
    db: &DatabaseConnection,
    bus: &EventBus,
    after: Option<i64>,
) -> Result<i64, sea_orm::DbErr> {
    let Some(mut last) = after else {
        return newest_published(db).await;
    };
    loop {
        let rows = outbox_event::Entity::find()
            .filter(outbox_event::Column::Seq.gt(last))
            .filter(outbox_event::Column::PublishedAt.is_not_null())
            .order_by_asc(outbox_event::Column::Seq)
            .limit(CATCH_UP_PAGE)
            .all(db)
            .await?;
        let n = rows.len() as u64;
        if n > 0 {
            metrics::counter!("janua_events_caught_up_total").increment(n);
        }
        for m in rows {
            last = m.seq;
            bus.publish(Arc::new(BusEvent::from(m)));
        }
        if n < CATCH_UP_PAGE {
            return Ok(last);
        }
    }
}

/// Outbox rows read per query while catching up.
const CATCH_UP_PAGE: u64 = 500;
