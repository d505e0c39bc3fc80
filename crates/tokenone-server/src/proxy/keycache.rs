//! The proxy's view of API keys: looked up by secret hash and cached for at most one second, so
//! a revocation reaches every replica within a second without a database read per call.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokenone_core::keys::{KeyAuth, KeyId};
use tokenone_core::repo::Store;
use tokenone_core::Result;

const TTL: Duration = Duration::from_millis(900);
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    auth: Option<Arc<KeyAuth>>,
    fetched: Instant,
}

#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, Entry>>,
}

impl KeyCache {
    /// The key with this hash (`None`: unknown), fresh within the TTL.
    pub async fn get(&self, store: &dyn Store, hash: &str) -> Result<Option<Arc<KeyAuth>>> {
        {
            let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = map.get(hash) {
                if e.fetched.elapsed() < TTL {
                    return Ok(e.auth.clone());
                }
            }
        }
        let auth = store.key_auth(hash).await?.map(Arc::new);
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| e.fetched.elapsed() < TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(
            hash.to_string(),
            Entry {
                auth: auth.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(auth)
    }

    /// Forgets a key at once (this replica); other replicas follow within the TTL.
    pub fn invalidate_key(&self, id: KeyId) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| e.auth.as_ref().is_none_or(|a| a.key.id != id));
    }

    /// Forgets everything (a project changed state: archived, cold).
    pub fn clear(&self) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
