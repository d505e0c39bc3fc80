//! Connectors, pending OAuth states, and the sealed values the vault rotation re-wraps.

use crate::{db_err, rows, SqlStore};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use tokenone_core::connectors::{ConnectorRecord, OAuthState};
use tokenone_core::ids::ProjectId;
use tokenone_core::repo::{ConnectorRepo, SealedRecord, VaultRepo};
use tokenone_core::time::Millis;
use tokenone_core::{Error, Result};

/// The metadata columns (never `sealed`).
const COLUMNS: &str = "id, tenant_id, project_id, type, category, name, display, status, scopes, created_at, \
                       created_by, last_used_at, revoked_at";

fn connector(r: &AnyRow) -> Result<ConnectorRecord> {
    let scopes: String = rows::get(r, "scopes")?;
    Ok(ConnectorRecord {
        id: rows::parse(r, "id")?,
        tenant_id: rows::parse(r, "tenant_id")?,
        project_id: rows::parse(r, "project_id")?,
        ty: rows::get(r, "type")?,
        category: rows::get(r, "category")?,
        name: rows::get(r, "name")?,
        display: rows::get(r, "display")?,
        status: rows::get(r, "status")?,
        scopes: serde_json::from_str(&scopes).map_err(Error::internal)?,
        created_at: rows::get(r, "created_at")?,
        created_by: rows::parse_opt(r, "created_by")?,
        last_used_at: rows::get(r, "last_used_at")?,
        revoked_at: rows::get(r, "revoked_at")?,
    })
}

fn oauth_state(r: &AnyRow) -> Result<OAuthState> {
    Ok(OAuthState {
        state_hash: rows::get(r, "state_hash")?,
        provider: rows::get(r, "provider")?,
        tenant_id: rows::parse(r, "tenant_id")?,
        project_id: rows::parse(r, "project_id")?,
        user_id: rows::parse(r, "user_id")?,
        sealed_verifier: rows::get(r, "sealed_verifier")?,
        created_at: rows::get(r, "created_at")?,
        expires_at: rows::get(r, "expires_at")?,
    })
}

impl SqlStore {
    async fn connector_row(
        &self,
        project: ProjectId,
        id: uuid::Uuid,
        on_writer: bool,
    ) -> Result<Option<ConnectorRecord>> {
        let q = format!("SELECT {COLUMNS} FROM connectors WHERE project_id = $1 AND id = $2");
        let pool = if on_writer { self.w() } else { self.r() };
        sqlx::query(&q)
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?
            .map(|r| connector(&r))
            .transpose()
    }
}

#[async_trait]
impl ConnectorRepo for SqlStore {
    async fn insert_connector(&self, c: &ConnectorRecord, sealed: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO connectors (id, tenant_id, project_id, type, category, name, display, status, scopes, sealed,
             created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(c.id.to_string())
        .bind(c.tenant_id.to_string())
        .bind(c.project_id.to_string())
        .bind(c.ty.clone())
        .bind(c.category.clone())
        .bind(c.name.clone())
        .bind(c.display.clone())
        .bind(c.status.clone())
        .bind(serde_json::to_string(&c.scopes).map_err(Error::internal)?)
        .bind(sealed.to_vec())
        .bind(c.created_at)
        .bind(c.created_by.map(|u| u.to_string()))
        .execute(self.w())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_connectors(&self, project: ProjectId, include_revoked: bool) -> Result<Vec<ConnectorRecord>> {
        let q = format!(
            "SELECT {COLUMNS} FROM connectors WHERE project_id = $1 AND ($2 = 1 OR status = 'active')
             ORDER BY created_at, id"
        );
        sqlx::query(&q)
            .bind(project.to_string())
            .bind(i64::from(include_revoked))
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(connector)
            .collect()
    }

    async fn connector(&self, project: ProjectId, id: uuid::Uuid) -> Result<Option<ConnectorRecord>> {
        self.connector_row(project, id, false).await
    }

    async fn connector_sealed(&self, project: ProjectId, id: uuid::Uuid) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT sealed FROM connectors WHERE project_id = $1 AND id = $2 AND status = 'active' AND sealed IS NOT NULL",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(self.r())
        .await
        .map_err(db_err)?;
        row.map(|r| rows::get::<Vec<u8>>(&r, "sealed")).transpose()
    }

    async fn revoke_connector(
        &self,
        project: ProjectId,
        id: uuid::Uuid,
        now: Millis,
    ) -> Result<Option<ConnectorRecord>> {
        sqlx::query(
            "UPDATE connectors SET status = 'revoked', sealed = NULL, revoked_at = $3
             WHERE project_id = $1 AND id = $2 AND status = 'active'",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .bind(now)
        .execute(self.w())
        .await
        .map_err(db_err)?;
        self.connector_row(project, id, true).await
    }

    async fn insert_oauth_state(&self, s: &OAuthState) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, provider, tenant_id, project_id, user_id, sealed_verifier, created_at,
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(s.state_hash.clone())
        .bind(s.provider.clone())
        .bind(s.tenant_id.to_string())
        .bind(s.project_id.to_string())
        .bind(s.user_id.to_string())
        .bind(s.sealed_verifier.clone())
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(self.w())
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<OAuthState>> {
        sqlx::query(
            "DELETE FROM oauth_states WHERE state_hash = $1
             RETURNING state_hash, provider, tenant_id, project_id, user_id, sealed_verifier, created_at, expires_at",
        )
        .bind(state_hash.to_string())
        .fetch_optional(self.w())
        .await
        .map_err(db_err)?
        .map(|r| oauth_state(&r))
        .transpose()
    }

    async fn purge_oauth_states(&self, now: Millis) -> Result<()> {
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(now)
            .execute(self.w())
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

/// Every table holding sealed values: (table, primary key column, sealed column).
const SEALED: &[(&str, &str, &str)] = &[
    ("connectors", "id", "sealed"),
    ("oauth_states", "state_hash", "sealed_verifier"),
    ("settings", "key", "sealed"),
    ("server_secrets", "name", "sealed"),
];

#[async_trait]
impl VaultRepo for SqlStore {
    async fn sealed_records(&self) -> Result<Vec<SealedRecord>> {
        let mut out = Vec::new();
        for (table, pk, col) in SEALED {
            let q = format!("SELECT {pk} AS k, {col} AS b FROM {table} WHERE {col} IS NOT NULL ORDER BY {pk}");
            for r in sqlx::query(&q).fetch_all(self.w()).await.map_err(db_err)? {
                out.push(SealedRecord {
                    table,
                    key: rows::get(&r, "k")?,
                    blob: rows::get(&r, "b")?,
                });
            }
        }
        Ok(out)
    }

    async fn replace_sealed(&self, record: &SealedRecord, new: &[u8]) -> Result<bool> {
        let Some((table, pk, col)) = SEALED.iter().find(|(t, ..)| *t == record.table) else {
            return Err(Error::internal(anyhow::anyhow!("no sealed table {}", record.table)));
        };
        let q = format!("UPDATE {table} SET {col} = $1 WHERE {pk} = $2 AND {col} = $3");
        let done = sqlx::query(&q)
            .bind(new.to_vec())
            .bind(record.key.clone())
            .bind(record.blob.clone())
            .execute(self.w())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
