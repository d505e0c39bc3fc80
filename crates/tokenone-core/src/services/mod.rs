//! Plain async services: handlers parse and authorise, then call exactly one of these.

pub mod admin;
pub mod connectors;
pub mod identity;
pub mod keys;
pub mod ledger;
pub mod live;
pub mod projects;
pub mod router;
pub mod secrets;
pub mod summary;
pub mod vault;
pub mod wallet;
pub mod workspace;

use crate::model::{AuditEntry, Ctx};
use crate::repo::Store;
use std::sync::Arc;

/// Appends an audit row for a change made in `ctx`.
pub async fn audit(
    store: &Arc<dyn Store>,
    ctx: &Ctx,
    action: &str,
    target: String,
    old_value: Option<serde_json::Value>,
    new_value: Option<serde_json::Value>,
    reason: Option<String>,
) -> crate::Result<()> {
    store
        .append_audit(&AuditEntry {
            id: crate::ids::AuditId::new(),
            at: crate::time::now_ms(),
            actor: Some(ctx.actor.clone()),
            action: action.into(),
            target,
            old_value,
            new_value,
            reason,
            request_id: ctx.request_id.clone(),
        })
        .await
}
