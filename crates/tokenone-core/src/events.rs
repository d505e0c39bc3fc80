//! Project events (workspace.md "Live events"): what happened, published by services and the
//! proxy, delivered to SSE watchers. The sink behind the trait decides how far they travel
//! (this process, or every replica through Redis) and how they are kept for replay.

use crate::ids::{ProjectId, TenantId, UserId};
use crate::time::Millis;
use serde_json::Value;

/// One event of a project, before it gets its per-project sequence number.
#[derive(Debug, Clone)]
pub struct Event {
    pub project_id: ProjectId,
    pub tenant_id: TenantId,
    pub actor_user_id: Option<UserId>,
    /// `stage.changed`, `archive.changed`, `connector.connected`, `connector.disconnected`,
    /// `member.invited`, `member.removed`, `llm.call`, `presence.heartbeat`.
    pub kind: String,
    pub payload: Value,
    pub at: Millis,
}

/// Where events go. `publish` never blocks and never fails the caller: a slow or broken
/// delivery must not slow the proxy or fail a request.
pub trait EventSink: Send + Sync {
    fn publish(&self, event: Event);
}

/// Drops every event (tools and tests that need no delivery).
pub struct NoEvents;

impl EventSink for NoEvents {
    fn publish(&self, _event: Event) {}
}
