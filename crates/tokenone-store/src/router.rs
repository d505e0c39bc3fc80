//! The smart-router switch and its last-24-hours figures.

use crate::{db_err, rows, SqlStore};
use async_trait::async_trait;
use tokenone_core::repo::{RouterRepo, RouterState, RouterStats};
use tokenone_core::time::Millis;
use tokenone_core::{Error, Result};

#[async_trait]
impl RouterRepo for SqlStore {
    async fn router_state(&self) -> Result<RouterState> {
        let r = sqlx::query("SELECT mode, rollout_pct, updated_at, updated_by, reason FROM router_state WHERE id = 1")
            .fetch_optional(self.r())
            .await
            .map_err(db_err)?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("router_state has no row")))?;
        Ok(RouterState {
            mode: rows::get(&r, "mode")?,
            rollout_pct: rows::get::<i64>(&r, "rollout_pct")?.clamp(0, 100) as u8,
            updated_at: rows::get(&r, "updated_at")?,
            updated_by: rows::get(&r, "updated_by")?,
            reason: rows::get(&r, "reason")?,
        })
    }

    async fn set_router_state(&self, s: &RouterState) -> Result<()> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        sqlx::query("UPDATE router_state SET mode = $1, rollout_pct = $2, updated_at = $3, updated_by = $4, reason = $5 WHERE id = 1")
            .bind(s.mode.clone())
            .bind(s.rollout_pct as i64)
            .bind(s.updated_at)
            .bind(s.updated_by.clone())
            .bind(s.reason.clone())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("UPDATE runtime_versions SET version = version + 1 WHERE kind = 'router'")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn router_stats(&self, since: Millis) -> Result<RouterStats> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS calls,
                    CAST(COALESCE(SUM(routed), 0) AS BIGINT) AS routed_calls,
                    CAST(COALESCE(SUM(CASE WHEN shadow_pick IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS shadow_calls,
                    CAST(COALESCE(SUM(savings_tokens), 0) AS BIGINT) AS savings_tokens,
                    CAST(COALESCE(SUM(shadow_savings_tokens), 0) AS BIGINT) AS shadow_savings_tokens
             FROM calls WHERE at >= $1 AND delivered_model IS NOT NULL AND status < 400",
        ) // the filter is `CallRecord::delivered`
        .bind(since)
        .fetch_one(self.r())
        .await
        .map_err(db_err)?;
        Ok(RouterStats {
            calls: rows::get(&r, "calls")?,
            routed_calls: rows::get(&r, "routed_calls")?,
            shadow_calls: rows::get(&r, "shadow_calls")?,
            savings_tokens: rows::get(&r, "savings_tokens")?,
            shadow_savings_tokens: rows::get(&r, "shadow_savings_tokens")?,
        })
    }
}
