//! Runtime state that admins change while replicas run — stored settings, commercial levers and
//! the smart-router switch — and how every replica picks a change up within a second: a replica
//! applies its own change at once and publishes the kind on Redis (`tokenone:invalidate`); every
//! replica also polls `runtime_versions` a few times a second, so a lost message or a replica
//! without Redis is at most one poll behind.

use crate::pubsub;
use crate::state::AppState;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokenone_core::admin::{LEVERS_KIND, ROUTER_KIND, SETTINGS_KIND};
use tokenone_core::config::Config;
use tokenone_core::economics::Levers;
use tokenone_core::services::admin::AdminService;
use tokenone_core::Result;

/// The Redis channel carrying invalidations; the payload is the kind that changed.
pub const CHANNEL: &str = "tokenone:invalidate";
const POLL: Duration = Duration::from_millis(300);
const RESUBSCRIBE: Duration = Duration::from_secs(5);
const TOPIC: pubsub::Topic<'static> = pubsub::Topic {
    channel: CHANNEL,
    carries: "invalidations",
    unsubscribed: "polling only",
    unpublished: "replicas will poll",
};

/// What this replica has loaded: the version of each kind, and a lock that keeps reloads in
/// order (a slow older reload never overwrites a newer one).
#[derive(Default)]
pub struct Runtime {
    seen: Mutex<BTreeMap<String, i64>>,
    reload: tokio::sync::Mutex<()>,
}

impl Runtime {
    fn seen(&self, kind: &str) -> Option<i64> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(kind).copied()
    }
    fn mark(&self, kind: &str, version: i64) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind.to_string(), version);
    }
}

/// The effective configuration and levers at start. A database that cannot be read here is
/// logged and the base configuration and default levers are used; the sync loop retries.
pub async fn initial(admin: &AdminService) -> (Config, Levers) {
    let cfg = match admin.effective().await {
        Ok(e) => e.config,
        Err(e) => {
            tracing::error!(error = %e, "stored settings could not be loaded at start; using the configuration file and environment");
            admin.base().clone()
        }
    };
    let levers = match admin.load_levers().await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "commercial levers could not be loaded at start; using the defaults");
            Levers::default()
        }
    };
    (cfg, levers)
}

/// Reloads `kinds` from the database into the state, recording the versions loaded.
pub async fn reload(state: &AppState, kinds: &[&str]) -> Result<()> {
    let _order = state.runtime.reload.lock().await;
    // The versions are read before the data: a version is only marked seen once data at least
    // as new is in force.
    let versions = state.admin.versions().await?;
    for kind in kinds {
        match *kind {
            SETTINGS_KIND => {
                let eff = state.admin.effective().await?;
                apply_config(state, eff.config);
            }
            LEVERS_KIND => {
                let levers = state.admin.load_levers().await?;
                *state.levers.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(levers);
            }
            ROUTER_KIND => {
                let (mode, pct, _) = state.router_service.current().await?;
                *state.router.write().unwrap_or_else(|p| p.into_inner()) = (mode, pct);
            }
            _ => continue,
        }
        if let Some(v) = versions.get(*kind) {
            state.runtime.mark(kind, *v);
        }
    }
    Ok(())
}

fn apply_config(state: &AppState, cfg: Config) {
    let current = state.routing();
    if current.catalogue != cfg.routing.catalogue {
        let mut table = (*current).clone();
        table.catalogue = cfg.routing.catalogue.clone();
        *state.routing.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
    }
    state.cfg.set(cfg);
}

/// After a change made on this replica: apply it here now, and tell the others.
pub async fn changed(state: &AppState, kind: &str) {
    if let Err(e) = reload(state, &[kind]).await {
        tracing::error!(error = %e, kind, "reloading after a change failed; the sync loop will retry");
    }
    publish(state, kind).await;
}

async fn publish(state: &AppState, kind: &str) {
    if let Some(conn) = state.redis.clone() {
        pubsub::publish(conn, &TOPIC, kind).await;
    }
}

/// Reloads whatever kinds moved since this replica last loaded them.
async fn catch_up(state: &AppState) -> Result<()> {
    let versions = state.admin.versions().await?;
    let moved: Vec<&str> = [SETTINGS_KIND, LEVERS_KIND, ROUTER_KIND]
        .into_iter()
        .filter(|k| versions.get(*k).copied() != state.runtime.seen(k))
        .collect();
    if !moved.is_empty() {
        reload(state, &moved).await?;
    }
    Ok(())
}

/// The replica's sync loop (runs until the server stops).
pub async fn sync(state: AppState) {
    let redis_url = state.admin.base().redis.url.expose().to_string();
    let mut sub: Option<redis::aio::PubSubStream> = None;
    let mut last_attempt: Option<Instant> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if sub.is_none() && !redis_url.is_empty() && last_attempt.is_none_or(|t| t.elapsed() >= RESUBSCRIBE) {
            last_attempt = Some(Instant::now());
            sub = pubsub::subscribe(&redis_url, &TOPIC).await;
        }
        let lost = tokio::select! {
            _ = tick.tick() => false,
            msg = async {
                match sub.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            } => msg.is_none(),
        };
        if lost {
            tracing::warn!("invalidation subscription closed; resubscribing");
            sub = None;
        }
        if let Err(e) = catch_up(&state).await {
            tracing::warn!(error = %e, "checking runtime versions failed");
        }
    }
}
