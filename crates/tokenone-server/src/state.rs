//! What every handler can reach: configuration, the store, the services and the metrics.

use crate::metrics::Metrics;
use crate::proxy::keycache::KeyCache;
use crate::proxy::ratelimit::RateLimiter;
use crate::proxy::writer::CallWriter;
use std::sync::{Arc, RwLock};
use tokenone_core::catalogue::Path;
use tokenone_core::repo::Store;
use tokenone_core::services::identity::IdentityService;
use tokenone_core::services::keys::KeyService;
use tokenone_core::services::live::LiveConfig;
use tokenone_core::services::projects::ProjectService;
use tokenone_core::tiers::TierMap;
use tokenone_core::vault::Vault;

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
    pub metrics: Metrics,
    pub started_at: i64,
    pub replica_id: String,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What the proxy routes by: the catalogue of delivery paths and the model tier map.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    pub catalogue: Vec<Path>,
    pub tiers: TierMap,
}

impl Inner {
    /// The routing table in force (cheap: an `Arc` clone).
    pub fn routing(&self) -> Arc<RoutingTable> {
        self.routing.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
