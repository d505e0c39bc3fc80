//! What every handler can reach: configuration, the store, the services and the metrics.

use crate::metrics::Metrics;
use std::sync::Arc;
use tokenone_core::repo::Store;
use tokenone_core::services::identity::IdentityService;
use tokenone_core::services::live::LiveConfig;
use tokenone_core::services::projects::ProjectService;
use tokenone_core::vault::Vault;

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub cfg: LiveConfig,
    pub store: Arc<dyn Store>,
    pub vault: Vault,
    pub identity: IdentityService,
    pub projects: ProjectService,
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
