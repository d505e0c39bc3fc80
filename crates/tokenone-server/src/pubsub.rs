//! Redis pub/sub as replicas use it: subscribing and publishing are bounded in time and never
//! fail the caller — a failure is logged (with what the replica does meanwhile) and the caller
//! carries on, retrying later or relying on its fallback.

use std::time::Duration;

/// How long connecting and subscribing may take; the callers block on it (hub start, sync loop).
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one `PUBLISH` may take.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// A pub/sub channel, and for the logs what it carries and what this replica does when Redis
/// fails it.
pub(crate) struct Topic<'a> {
    pub channel: &'a str,
    /// What the messages are ("invalidations", "project events").
    pub carries: &'static str,
    /// What happens while this replica is not subscribed.
    pub unsubscribed: &'static str,
    /// What happens when a message is not published.
    pub unpublished: &'static str,
}

/// Subscribes to the topic's channel on `url`; `None` (logged) when Redis refuses or does not
/// answer in time. Callers retry later.
pub(crate) async fn subscribe(url: &str, topic: &Topic<'_>) -> Option<redis::aio::PubSubStream> {
    let attempt = async {
        let client = redis::Client::open(url)?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(topic.channel).await?;
        Ok::<_, redis::RedisError>(pubsub.into_on_message())
    };
    match tokio::time::timeout(SUBSCRIBE_TIMEOUT, attempt).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot subscribe to {} on Redis; {}; will retry", topic.carries, topic.unsubscribed);
            None
        }
        Err(_) => {
            tracing::warn!(
                "subscribing to {} on Redis timed out; {}; will retry",
                topic.carries,
                topic.unsubscribed
            );
            None
        }
    }
}

/// Publishes `payload` on the topic's channel; a failure or timeout is logged, not returned.
pub(crate) async fn publish(
    mut conn: redis::aio::ConnectionManager,
    topic: &Topic<'_>,
    payload: impl redis::ToRedisArgs,
) {
    let sent = tokio::time::timeout(
        PUBLISH_TIMEOUT,
        redis::cmd("PUBLISH")
            .arg(topic.channel)
            .arg(payload)
            .query_async::<i64>(&mut conn),
    )
    .await;
    match sent {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "publishing {} to Redis failed; {}", topic.carries, topic.unpublished)
        }
        Err(_) => tracing::warn!("publishing {} to Redis timed out; {}", topic.carries, topic.unpublished),
    }
}
