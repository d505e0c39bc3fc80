//! API keys and the call log.

use crate::{db_err, rows, SqlStore};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use tokenone_core::ids::ProjectId;
use tokenone_core::keys::{ApiKey, KeyAuth, KeyId, KeyMode};
use tokenone_core::model::{CallRecord, RollupRow, Settled, StorageTier};
use tokenone_core::repo::{CallRepo, KeyRepo};
use tokenone_core::time::Millis;
use tokenone_core::{Error, Result};

fn key(r: &AnyRow) -> Result<ApiKey> {
    let mode: String = rows::get(r, "mode")?;
    let scopes: String = rows::get(r, "scopes")?;
    let rates: String = rows::get(r, "rate_limits")?;
    let ips: String = rows::get(r, "ip_allowlist")?;
    Ok(ApiKey {
        id: rows::parse(r, "id")?,
        project_id: rows::parse(r, "project_id")?,
        tenant_id: rows::parse(r, "tenant_id")?,
        name: rows::get(r, "name")?,
        mode: KeyMode::parse(&mode).ok_or_else(|| Error::internal(anyhow::anyhow!("bad key mode {mode}")))?,
        prefix: rows::get(r, "prefix")?,
        last4: rows::get(r, "last4")?,
        scopes: serde_json::from_str(&scopes).map_err(Error::internal)?,
        rate_limit_per_minute: serde_json::from_str(&rates).map_err(Error::internal)?,
        ip_allowlist: serde_json::from_str(&ips).map_err(Error::internal)?,
        created_at: rows::get(r, "created_at")?,
        created_by: rows::parse_opt(r, "created_by")?,
        last_used_at: rows::get(r, "last_used_at")?,
        expires_at: rows::get(r, "expires_at")?,
        revoked_at: rows::get(r, "revoked_at")?,
    })
}

pub(crate) fn call(r: &AnyRow) -> Result<CallRecord> {
    let reasons: String = rows::get(r, "reasons")?;
    Ok(CallRecord {
        id: rows::parse(r, "id")?,
        at: rows::get(r, "at")?,
        tenant_id: rows::get(r, "tenant_id")?,
        project_id: rows::get(r, "project_id")?,
        key_id: rows::get(r, "key_id")?,
        mode: rows::get(r, "mode")?,
        shape: rows::get(r, "shape")?,
        requested_model: rows::get(r, "requested_model")?,
        requested_tier: rows::get(r, "requested_tier")?,
        needed_tier: rows::get(r, "needed_tier")?,
        delivered_model: rows::get(r, "delivered_model")?,
        provider: rows::get(r, "provider")?,
        tier: rows::get(r, "tier")?,
        routed: rows::get::<i64>(r, "routed")? != 0,
        fallback_used: rows::get::<i64>(r, "fallback_used")? != 0,
        reasons: serde_json::from_str(&reasons).unwrap_or_default(),
        shadow_pick: rows::get(r, "shadow_pick")?,
        stream: rows::get::<i64>(r, "stream")? != 0,
        input_tokens: rows::get(r, "input_tokens")?,
        cached_input_tokens: rows::get(r, "cached_input_tokens")?,
        output_tokens: rows::get(r, "output_tokens")?,
        usage_estimated: rows::get::<i64>(r, "usage_estimated")? != 0,
        burn_tokens: rows::get(r, "burn_tokens")?,
        savings_tokens: rows::get(r, "savings_tokens")?,
        pass_back_tokens: rows::get(r, "pass_back_tokens")?,
        uncollected_tokens: rows::get(r, "uncollected_tokens")?,
        shadow_savings_tokens: rows::get(r, "shadow_savings_tokens")?,
        latency_ms: rows::get(r, "latency_ms")?,
        status: rows::get::<i64>(r, "status")? as u16,
        error_code: rows::get(r, "error_code")?,
    })
}

#[async_trait]
impl KeyRepo for SqlStore {
    async fn insert_key(&self, k: &ApiKey, hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, project_id, tenant_id, name, mode, prefix, last4, key_hash, scopes, rate_limits,
             ip_allowlist, created_at, created_by, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(k.id.to_string())
        .bind(k.project_id.to_string())
        .bind(k.tenant_id.to_string())
        .bind(k.name.clone())
        .bind(k.mode.as_str())
        .bind(k.prefix.clone())
        .bind(k.last4.clone())
        .bind(hash.to_string())
        .bind(serde_json::to_string(&k.scopes).map_err(Error::internal)?)
        .bind(serde_json::to_string(&k.rate_limit_per_minute).map_err(Error::internal)?)
        .bind(serde_json::to_string(&k.ip_allowlist).map_err(Error::internal)?)
        .bind(k.created_at)
        .bind(k.created_by.map(|u| u.to_string()))
        .bind(k.expires_at)
        .execute(self.w())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_keys(&self, project: ProjectId) -> Result<Vec<ApiKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE project_id = $1 ORDER BY created_at, id")
            .bind(project.to_string())
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(key)
            .collect()
    }

    async fn key(&self, project: ProjectId, id: KeyId) -> Result<Option<ApiKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE project_id = $1 AND id = $2")
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(self.r())
            .await
            .map_err(db_err)?
            .map(|r| key(&r))
            .transpose()
    }

    async fn revoke_key(&self, project: ProjectId, id: KeyId, now: Millis) -> Result<Option<ApiKey>> {
        sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE project_id = $1 AND id = $2 AND revoked_at IS NULL")
            .bind(project.to_string())
            .bind(id.to_string())
            .bind(now)
            .execute(self.w())
            .await
            .map_err(db_err)?;
        sqlx::query("SELECT * FROM api_keys WHERE project_id = $1 AND id = $2")
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(self.w())
            .await
            .map_err(db_err)?
            .map(|r| key(&r))
            .transpose()
    }

    async fn key_auth(&self, hash: &str) -> Result<Option<KeyAuth>> {
        let row = sqlx::query(
            "SELECT k.*, p.archived AS project_archived, p.storage_tier AS project_tier
             FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.key_hash = $1",
        )
        .bind(hash.to_string())
        .fetch_optional(self.r())
        .await
        .map_err(db_err)?;
        row.map(|r| {
            Ok(KeyAuth {
                key: key(&r)?,
                project_archived: rows::get::<i64>(&r, "project_archived")? != 0,
                project_cold: StorageTier::parse(&rows::get::<String>(&r, "project_tier")?) == Some(StorageTier::Cold),
            })
        })
        .transpose()
    }

    async fn touch_keys(&self, used: &[(KeyId, Millis)]) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        let mut tx = self.w().begin().await.map_err(db_err)?;
        for (id, at) in used {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            )
            .bind(id.to_string())
            .bind(*at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }
}

#[async_trait]
impl CallRepo for SqlStore {
    async fn settle_calls(&self, batch: &[Settled], ledger_key: &[u8]) -> Result<()> {
        crate::wallet::settle_calls(self, batch, ledger_key).await
    }

    async fn rollups(&self, tenant: Option<tokenone_core::ids::TenantId>, from_day: &str) -> Result<Vec<RollupRow>> {
        sqlx::query("SELECT * FROM rollups_daily WHERE ($1 = '' OR tenant_id = $1) AND day >= $2")
            .bind(tenant.map(|t| t.to_string()).unwrap_or_default())
            .bind(from_day.to_string())
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                Ok(RollupRow {
                    project_id: rows::get(r, "project_id")?,
                    day: rows::get(r, "day")?,
                    mode: rows::get(r, "mode")?,
                    requested_model: rows::get(r, "requested_model")?,
                    delivered_model: rows::get(r, "delivered_model")?,
                    calls: rows::get(r, "calls")?,
                    routed_calls: rows::get(r, "routed_calls")?,
                    shadow_calls: rows::get(r, "shadow_calls")?,
                    input_tokens: rows::get(r, "input_tokens")?,
                    output_tokens: rows::get(r, "output_tokens")?,
                    burn_tokens: rows::get(r, "burn_tokens")?,
                    savings_tokens: rows::get(r, "savings_tokens")?,
                    shadow_savings_tokens: rows::get(r, "shadow_savings_tokens")?,
                    pass_back_tokens: rows::get(r, "pass_back_tokens")?,
                    uncollected_tokens: rows::get(r, "uncollected_tokens")?,
                })
            })
            .collect()
    }

    async fn recent_calls(&self, project: ProjectId, limit: i64) -> Result<Vec<CallRecord>> {
        sqlx::query("SELECT * FROM calls WHERE project_id = $1 AND delivered_model IS NOT NULL ORDER BY at DESC, id DESC LIMIT $2")
            .bind(project.to_string())
            .bind(limit)
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(call)
            .collect()
    }
}
