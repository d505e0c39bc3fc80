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

/// The event types of workspace.md.
pub mod kinds {
    pub const STAGE_CHANGED: &str = "stage.changed";
    pub const ARCHIVE_CHANGED: &str = "archive.changed";
    pub const CONNECTOR_CONNECTED: &str = "connector.connected";
    pub const CONNECTOR_DISCONNECTED: &str = "connector.disconnected";
    pub const MEMBER_INVITED: &str = "member.invited";
    pub const MEMBER_REMOVED: &str = "member.removed";
    pub const LLM_CALL: &str = "llm.call";
    pub const PRESENCE_HEARTBEAT: &str = "presence.heartbeat";
}

impl Event {
    /// An event happening now.
    pub fn now(
        project_id: ProjectId,
        tenant_id: TenantId,
        actor_user_id: Option<UserId>,
        kind: &str,
        payload: Value,
    ) -> Event {
        Event {
            project_id,
            tenant_id,
            actor_user_id,
            kind: kind.to_string(),
            payload,
            at: crate::time::now_ms(),
        }
    }

    /// Presence is live only: it is delivered to whoever watches now, never stored or replayed
    /// (a heartbeat per watcher every few seconds would push real events out of the replay
    /// window), so it carries no sequence number.
    pub fn is_ephemeral(&self) -> bool {
        self.kind == kinds::PRESENCE_HEARTBEAT
    }

    /// The SSE `data:` of the event: `{type, projectId, tenantId, actorUserId, at, payload}`.
    pub fn frame(&self) -> Value {
        serde_json::json!({
            "type": self.kind,
            "projectId": self.project_id,
            "tenantId": self.tenant_id,
            "actorUserId": self.actor_user_id,
            "at": crate::time::format_ms(self.at),
            "payload": self.payload,
        })
    }
}
