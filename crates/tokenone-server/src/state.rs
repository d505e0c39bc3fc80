//! What every handler can reach: configuration, the store, the services and the metrics.

use crate::metrics::Metrics;
use crate::proxy::keycache::KeyCache;
use crate::proxy::ratelimit::RateLimiter;
use crate::proxy::writer::CallWriter;
use std::sync::{Arc, RwLock};
use tokenone_core::catalogue::Path;
use tokenone_core::economics::Levers;
use tokenone_core::repo::Store;
use tokenone_core::routing::{Breakers, RouterMode};
use tokenone_core::services::connectors::ConnectorService;
use tokenone_core::services::identity::IdentityService;
use tokenone_core::services::keys::KeyService;
use tokenone_core::services::ledger::LedgerService;
use tokenone_core::services::live::LiveConfig;
use tokenone_core::services::projects::ProjectService;
use tokenone_core::services::router::RouterService;
use tokenone_core::services::summary::SummaryService;
use tokenone_core::services::wallet::WalletService;
use tokenone_core::vault::Vault;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub cfg: LiveConfig,
    pub store: Arc<dyn Store>,
    pub vault: Vault,
    pub identity: IdentityService,
    pub projects: ProjectService,
    pub keys: KeyService,
    pub key_cache: KeyCache,
    pub rate_limiter: RateLimiter,
    pub writer: CallWriter,
    pub http: reqwest::Client,
    pub routing: RwLock<Arc<RoutingTable>>,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub wallet: WalletService,
    pub ledger: LedgerService,
    pub summary: SummaryService,
    pub levers: RwLock<Arc<Levers>>,
    /// The smart-router switch in force: mode and rollout percentage.
    pub router: RwLock<(RouterMode, u8)>,
    /// Circuit breakers of delivery paths (this replica's view).
    pub breakers: Breakers,
    /// Project events (SSE); the proxy publishes `llm.call` here.
    pub events: Arc<dyn tokenone_core::events::EventSink>,
    /// The event hub behind `events`: SSE watchers subscribe here.
    pub hub: crate::hub::EventHub,
    /// Stage, archive, cold storage, export and handoff (workspace.md).
    pub workspace: tokenone_core::services::workspace::WorkspaceService,
    /// Cancelled when the server starts shutting down: long-lived streams (SSE) end then.
    pub shutdown: tokio_util::sync::CancellationToken,
    pub router_service: RouterService,
    /// Settlement tasks; shutdown waits for them before the writer's last flush.
    pub tasks: TaskTracker,
    pub metrics: Metrics,
    pub started_at: i64,
    pub replica_id: String,
    /// Settings, levers, audit log, tenants and the call-log export (admin.md).
    pub admin: tokenone_core::services::admin::AdminService,
    /// Connectors: catalogue, OAuth round trips, database connect, list and revoke.
    pub connectors: ConnectorService,
    /// Which stored settings and levers this replica has loaded.
    pub runtime: crate::runtime::Runtime,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What the proxy routes by: the catalogue of delivery paths (the tier map is a lever).
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    pub catalogue: Vec<Path>,
}

impl Inner {
    /// The routing table in force (cheap: an `Arc` clone).
    pub fn routing(&self) -> Arc<RoutingTable> {
        self.routing.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The smart-router switch in force.
    pub fn router_mode(&self) -> (RouterMode, u8) {
        *self.router.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The commercial levers in force.
    pub fn levers(&self) -> Arc<Levers> {
        self.levers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
