//! The smart-router switch (admin.md): `off` / `shadow` / `on` with a rollout percentage,
//! audited, effective on every replica within a second.

use super::audit;
use crate::model::Ctx;
use crate::repo::{RouterState, RouterStats, Store};
use crate::routing::RouterMode;
use crate::time::now_ms;
use crate::{Error, Result};
use serde_json::json;
use std::str::FromStr;
use std::sync::Arc;

#[derive(Clone)]
pub struct RouterService {
    store: Arc<dyn Store>,
}

impl RouterService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        RouterService { store }
    }

    /// The stored switch as (mode, rollout); an unreadable mode falls back to the default.
    pub async fn current(&self) -> Result<(RouterMode, u8, RouterState)> {
        let s = self.store.router_state().await?;
        let mode = RouterMode::from_str(&s.mode).unwrap_or_default();
        Ok((mode, s.rollout_pct, s))
    }

    pub async fn stats_24h(&self) -> Result<RouterStats> {
        self.store.router_stats(now_ms() - 86_400_000).await
    }

    /// `POST /api/admin/smart-router-flip`.
    pub async fn flip(&self, ctx: &Ctx, mode: &str, rollout_pct: Option<i64>, reason: &str) -> Result<RouterState> {
        let m = RouterMode::from_str(mode).map_err(|_| Error::invalid("`mode` must be off, shadow or on"))?;
        let pct = rollout_pct.unwrap_or(100);
        if !(0..=100).contains(&pct) {
            return Err(Error::invalid("`rolloutPct` must be 0 to 100"));
        }
        if reason.trim().chars().count() < 3 {
            return Err(Error::invalid("`reason` must be at least 3 characters"));
        }
        let (old_mode, old_pct, _) = self.current().await?;
        let state = RouterState {
            mode: m.as_str().into(),
            rollout_pct: pct as u8,
            updated_at: now_ms(),
            updated_by: Some(ctx.actor.email.clone()),
            reason: Some(reason.trim().to_string()),
        };
        self.store.set_router_state(&state).await?;
        audit(
            &self.store,
            ctx,
            "router.flip",
            "smart-router".into(),
            Some(json!({"mode": old_mode.as_str(), "rolloutPct": old_pct})),
            Some(json!({"mode": m.as_str(), "rolloutPct": pct})),
            Some(reason.trim().to_string()),
        )
        .await?;
        Ok(state)
    }
}
