//! The proxy's view of API keys: looked up by secret hash and cached for at most 0.9 s, so a
//! revocation reaches every replica within a second without a database read per call.
//!
//! A busy key never waits for the database: once an entry is older than [`REFRESH_AFTER`], the
//! next call starts one background refresh and is served from the cache (still within the TTL).
//! Only a key unseen for [`TTL`] is looked up on the request path, and then once: concurrent
//! calls for it wait for that one lookup instead of each reading the database (at saturation that
//! herd once grew the SQLite read pool to its maximum on every expiry).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokenone_core::keys::{KeyAuth, KeyId};
use tokenone_core::repo::Store;
use tokenone_core::Result;

/// An entry is never served older than this (measured from when its lookup started).
const TTL: Duration = Duration::from_millis(900);
/// An entry older than this is refreshed in the background on its next use.
const REFRESH_AFTER: Duration = Duration::from_millis(450);
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    auth: Option<Arc<KeyAuth>>,
    fetched: Instant,
    refreshing: bool,
}

#[derive(Default)]
struct Inner {
    entries: RwLock<HashMap<String, Entry>>,
    /// One lock per hash being looked up on the request path (single flight).
    loading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Bumped by every invalidation: a lookup that started before it does not store its answer.
    generation: AtomicU64,
}

#[derive(Default, Clone)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

enum Cached {
    Fresh(Option<Arc<KeyAuth>>),
    /// Fresh, and this caller should start the background refresh.
    Refresh(Option<Arc<KeyAuth>>),
    Missing,
}

impl KeyCache {
    /// The key with this hash (`None`: unknown), fresh within the TTL.
    pub async fn get(&self, store: &Arc<dyn Store>, hash: &str) -> Result<Option<Arc<KeyAuth>>> {
        match self.cached(hash) {
            Cached::Fresh(a) => return Ok(a),
            Cached::Refresh(a) => {
                let (cache, store, hash) = (self.clone(), store.clone(), hash.to_string());
                tokio::spawn(async move {
                    if let Err(e) = cache.load(&store, &hash).await {
                        tracing::warn!(error = %e, "refreshing an API key failed");
                    }
                    cache.end_refresh(&hash);
                });
                return Ok(a);
            }
            Cached::Missing => {}
        }
        let lock = {
            let mut loading = self.inner.loading.lock().unwrap_or_else(|p| p.into_inner());
            loading.entry(hash.to_string()).or_default().clone()
        };
        let guard = lock.lock().await;
        // Whoever held the lock before may have loaded it meanwhile.
        let out = match self.cached(hash) {
            Cached::Fresh(a) | Cached::Refresh(a) => Ok(a),
            Cached::Missing => self.load(store, hash).await,
        };
        drop(guard);
        let mut loading = self.inner.loading.lock().unwrap_or_else(|p| p.into_inner());
        // The map's own reference and ours: nobody else waits, so the lock can go.
        if loading.get(hash).is_some_and(|l| Arc::strong_count(l) <= 2) {
            loading.remove(hash);
        }
        out
    }

    fn cached(&self, hash: &str) -> Cached {
        {
            let map = self.inner.entries.read().unwrap_or_else(|p| p.into_inner());
            match map.get(hash) {
                Some(e) if e.fetched.elapsed() < REFRESH_AFTER || (e.refreshing && e.fetched.elapsed() < TTL) => {
                    return Cached::Fresh(e.auth.clone())
                }
                Some(e) if e.fetched.elapsed() < TTL => {}
                _ => return Cached::Missing,
            }
        }
        // Due for a refresh: exactly one caller marks it and starts it.
        let mut map = self.inner.entries.write().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(hash) {
            Some(e) if e.fetched.elapsed() < TTL => {
                if e.refreshing {
                    Cached::Fresh(e.auth.clone())
                } else {
                    e.refreshing = true;
                    Cached::Refresh(e.auth.clone())
                }
            }
            _ => Cached::Missing,
        }
    }

    /// Reads the key and stores it, unless an invalidation happened meanwhile.
    async fn load(&self, store: &Arc<dyn Store>, hash: &str) -> Result<Option<Arc<KeyAuth>>> {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let started = Instant::now();
        let auth = store.key_auth(hash).await?.map(Arc::new);
        let mut map = self.inner.entries.write().unwrap_or_else(|p| p.into_inner());
        if self.inner.generation.load(Ordering::Acquire) != generation {
            return Ok(auth);
        }
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
                fetched: started,
                refreshing: false,
            },
        );
        Ok(auth)
    }

    /// A failed refresh leaves the entry to expire; the next call after that looks it up.
    fn end_refresh(&self, hash: &str) {
        let mut map = self.inner.entries.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(hash) {
            e.refreshing = false;
        }
    }

    /// Forgets a key at once (this replica); other replicas follow within the TTL.
    pub fn invalidate_key(&self, id: KeyId) {
        let mut map = self.inner.entries.write().unwrap_or_else(|p| p.into_inner());
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        map.retain(|_, e| e.auth.as_ref().is_none_or(|a| a.key.id != id));
    }

    /// Forgets everything (a project changed state: archived, cold).
    pub fn clear(&self) {
        let mut map = self.inner.entries.write().unwrap_or_else(|p| p.into_inner());
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }
}
