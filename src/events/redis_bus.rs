//! One Redis pub/sub connection per node forwards the cluster's events into the local bus.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::{BusEvent, EventBus};
use crate::storage::{Redis, RedisRevocationStore};

/// Subscribes to the events channel and forwards every event into `bus`, until aborted. When
/// the connection drops (Redis stopped or restarted) it reconnects and subscribes again, once a
/// second; after each (re)subscription it writes the database's revocations back to Redis (a
/// restarted Redis may have lost them).
pub async fn forward_from_redis(redis: Redis, bus: EventBus, revocations: Option<RedisRevocationStore>) {
    let channel = redis.events_channel();
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
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        match msg.get_payload::<String>().map(|p| serde_json::from_str::<BusEvent>(&p)) {
                            Ok(Ok(e)) => {
                                metrics::counter!("janua_events_received_total").increment(1);
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
