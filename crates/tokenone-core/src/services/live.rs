//! The configuration in force, shared by every service and swappable at run time (stored
//! settings change it without a restart).

use crate::config::Config;
use std::sync::{Arc, RwLock};

#[derive(Clone)]
pub struct LiveConfig(Arc<RwLock<Arc<Config>>>);

impl LiveConfig {
    pub fn new(cfg: Config) -> Self {
        LiveConfig(Arc::new(RwLock::new(Arc::new(cfg))))
    }

    /// A snapshot; cheap (an `Arc` clone under an uncontended read lock).
    pub fn get(&self) -> Arc<Config> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, cfg: Config) {
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Arc::new(cfg);
    }
}
