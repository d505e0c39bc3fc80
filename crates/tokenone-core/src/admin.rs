//! Records of platform administration as the services and the store exchange them: stored
//! settings and levers, lever history, audit rows, tenant figures, call-log export pages.

use crate::model::Actor;
use crate::time::Millis;

/// Kinds of runtime state with a version counter in `runtime_versions`.
pub const SETTINGS_KIND: &str = "settings";
pub const LEVERS_KIND: &str = "levers";
/// The smart-router switch (`router_state`); its store bumps this version with every flip.
pub const ROUTER_KIND: &str = "router";

/// Who last changed something, as lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorRef {
    pub id: String,
    pub email: String,
}

/// One row of `settings`: a non-secret value as JSON text, or a secret sealed by the vault.
#[derive(Debug, Clone)]
pub struct StoredSetting {
    pub key: String,
    pub value: Option<String>,
    pub sealed: Option<Vec<u8>>,
    pub updated_at: Millis,
    pub updated_by: Option<ActorRef>,
}

/// One row of `levers`: the canonical JSON text of the value.
#[derive(Debug, Clone)]
pub struct StoredLever {
    pub name: String,
    pub value: String,
    pub updated_at: Millis,
    pub updated_by: Option<ActorRef>,
}

/// One row of `lever_history`.
#[derive(Debug, Clone)]
pub struct LeverChange {
    pub id: uuid::Uuid,
    pub name: String,
    pub at: Millis,
    pub actor: Option<Actor>,
    /// JSON text; the value in force before (the default when the lever was never set).
    pub old_value: Option<String>,
    pub new_value: String,
    pub reason: String,
}

/// A tenant with its figures (`GET /admin/tenants`).
#[derive(Debug, Clone)]
pub struct TenantFigures {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
    pub users: i64,
    pub projects: i64,
    pub balance_tokens: i64,
}

/// Which calls an export reads.
#[derive(Debug, Clone)]
pub struct CallFilter {
    /// Calls at or after this time.
    pub since: Millis,
    pub tenant: Option<String>,
    /// `live` or `dev`; `None` for both.
    pub mode: Option<String>,
}
