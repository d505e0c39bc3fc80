//! Platform administration: settings, levers and their history, runtime versions, the audit log,
//! tenant figures and the call-log export pages.
//!
//! Each change of a setting or lever first bumps its `runtime_versions` row inside the
//! transaction: on PostgreSQL that row lock serialises concurrent changes of the same kind (SQLite
//! has a single writer anyway), so a history row's old value is always the one it replaced.

use crate::keys::call;
use crate::{db_err, rows, SqlStore};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Transaction;
use tokenone_core::admin::{
    ActorRef, CallFilter, LeverChange, StoredLever, StoredSetting, TenantFigures, LEVERS_KIND, SETTINGS_KIND,
};
use tokenone_core::ids::UserId;
use tokenone_core::model::{Actor, AuditEntry, CallRecord};
use tokenone_core::repo::AdminRepo;
use tokenone_core::time::Millis;
use tokenone_core::{Error, Result};

type Tx<'a> = Transaction<'a, sqlx::Any>;

async fn bump(tx: &mut Tx<'_>, kind: &str) -> Result<i64> {
    let row = sqlx::query("UPDATE runtime_versions SET version = version + 1 WHERE kind = $1 RETURNING version")
        .bind(kind.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    match row {
        Some(r) => rows::get(&r, "version"),
        None => Err(Error::internal(anyhow::anyhow!("runtime_versions has no `{kind}` row"))),
    }
}

fn actor_ref(r: &AnyRow, id_col: &str, email_col: &str) -> Result<Option<ActorRef>> {
    let id: Option<String> = rows::get(r, id_col)?;
    let email: Option<String> = rows::get(r, email_col)?;
    Ok(id.map(|id| ActorRef {
        id,
        email: email.unwrap_or_default(),
    }))
}

fn actor(r: &AnyRow) -> Result<Option<Actor>> {
    let id: Option<UserId> = rows::parse_opt(r, "actor_id")?;
    let email: Option<String> = rows::get(r, "actor_email")?;
    Ok(id.map(|id| Actor {
        id,
        email: email.unwrap_or_default(),
    }))
}

/// A JSON text column as a value (a text that is not JSON is kept as a string).
fn json_col(r: &AnyRow, col: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = rows::get(r, col)?;
    Ok(text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t))))
}

fn lever_change(r: &AnyRow) -> Result<LeverChange> {
    Ok(LeverChange {
        id: rows::parse(r, "id")?,
        name: rows::get(r, "name")?,
        at: rows::get(r, "at")?,
        actor: actor(r)?,
        old_value: rows::get(r, "old_value")?,
        new_value: rows::get(r, "new_value")?,
        reason: rows::get(r, "reason")?,
    })
}

fn audit_entry(r: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: rows::parse(r, "id")?,
        at: rows::get(r, "at")?,
        actor: actor(r)?,
        action: rows::get(r, "action")?,
        target: rows::get(r, "target")?,
        old_value: json_col(r, "old_value")?,
        new_value: json_col(r, "new_value")?,
        reason: rows::get(r, "reason")?,
        request_id: rows::get(r, "request_id")?,
    })
}

#[async_trait]
impl AdminRepo for SqlStore {
    async fn settings(&self) -> Result<Vec<StoredSetting>> {
        sqlx::query(
            "SELECT s.key, s.value, s.sealed, s.updated_at, s.updated_by, u.email AS updated_by_email
             FROM settings s LEFT JOIN users u ON u.id = s.updated_by ORDER BY s.key",
        )
        .fetch_all(self.r())
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| {
            Ok(StoredSetting {
                key: rows::get(r, "key")?,
                value: rows::get(r, "value")?,
                sealed: rows::get(r, "sealed")?,
                updated_at: rows::get(r, "updated_at")?,
                updated_by: actor_ref(r, "updated_by", "updated_by_email")?,
            })
        })
        .collect()
    }

    async fn put_setting(&self, s: &StoredSetting, by: UserId) -> Result<i64> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        let version = bump(&mut tx, SETTINGS_KIND).await?;
        sqlx::query(
            "INSERT INTO settings (key, value, sealed, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, sealed = excluded.sealed,
               updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(s.key.clone())
        .bind(s.value.clone())
        .bind(s.sealed.clone())
        .bind(s.updated_at)
        .bind(by.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(version)
    }

    async fn delete_setting(&self, key: &str) -> Result<Option<i64>> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        let deleted = sqlx::query("DELETE FROM settings WHERE key = $1")
            .bind(key.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if deleted == 0 {
            tx.rollback().await.map_err(db_err)?;
            return Ok(None);
        }
        let version = bump(&mut tx, SETTINGS_KIND).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(version))
    }

    async fn runtime_versions(&self) -> Result<Vec<(String, i64)>> {
        sqlx::query("SELECT kind, version FROM runtime_versions")
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| Ok((rows::get(r, "kind")?, rows::get(r, "version")?)))
            .collect()
    }

    async fn levers(&self) -> Result<Vec<StoredLever>> {
        sqlx::query(
            "SELECT l.name, l.value, l.updated_at, l.updated_by, u.email AS updated_by_email
             FROM levers l LEFT JOIN users u ON u.id = l.updated_by ORDER BY l.name",
        )
        .fetch_all(self.r())
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| {
            Ok(StoredLever {
                name: rows::get(r, "name")?,
                value: rows::get(r, "value")?,
                updated_at: rows::get(r, "updated_at")?,
                updated_by: actor_ref(r, "updated_by", "updated_by_email")?,
            })
        })
        .collect()
    }

    async fn put_lever(&self, c: &LeverChange, default_old: &str) -> Result<LeverChange> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        bump(&mut tx, LEVERS_KIND).await?;
        let old: Option<String> = match sqlx::query("SELECT value FROM levers WHERE name = $1")
            .bind(c.name.clone())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
        {
            Some(r) => Some(rows::get(&r, "value")?),
            None => Some(default_old.to_string()),
        };
        let (actor_id, actor_email) = match &c.actor {
            Some(a) => (Some(a.id.to_string()), Some(a.email.clone())),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO levers (name, value, updated_at, updated_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,
               updated_by = excluded.updated_by",
        )
        .bind(c.name.clone())
        .bind(c.new_value.clone())
        .bind(c.at)
        .bind(actor_id.clone())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO lever_history (id, name, at, actor_id, actor_email, old_value, new_value, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(c.id.to_string())
        .bind(c.name.clone())
        .bind(c.at)
        .bind(actor_id)
        .bind(actor_email)
        .bind(old.clone())
        .bind(c.new_value.clone())
        .bind(c.reason.clone())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(LeverChange {
            old_value: old,
            ..c.clone()
        })
    }

    async fn lever_history(&self, name: &str, before: Option<uuid::Uuid>, limit: i64) -> Result<Vec<LeverChange>> {
        let q = match before {
            Some(b) => sqlx::query("SELECT * FROM lever_history WHERE name = $1 AND id < $2 ORDER BY id DESC LIMIT $3")
                .bind(name.to_string())
                .bind(b.to_string())
                .bind(limit),
            None => sqlx::query("SELECT * FROM lever_history WHERE name = $1 ORDER BY id DESC LIMIT $2")
                .bind(name.to_string())
                .bind(limit),
        };
        q.fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(lever_change)
            .collect()
    }

    async fn audit_page(
        &self,
        action: Option<&str>,
        before: Option<uuid::Uuid>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let mut conds = Vec::new();
        let mut n = 0;
        if action.is_some() {
            n += 1;
            conds.push(format!("action = ${n}"));
        }
        if before.is_some() {
            n += 1;
            conds.push(format!("id < ${n}"));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let sql = format!("SELECT * FROM audit_log {filter} ORDER BY id DESC LIMIT ${}", n + 1);
        let mut q = sqlx::query(&sql);
        if let Some(a) = action {
            q = q.bind(a.to_string());
        }
        if let Some(b) = before {
            q = q.bind(b.to_string());
        }
        q.bind(limit)
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(audit_entry)
            .collect()
    }

    async fn tenant_figures(&self) -> Result<Vec<TenantFigures>> {
        sqlx::query(
            "SELECT t.id, t.name, t.created_at,
               (SELECT COUNT(*) FROM users u WHERE u.tenant_id = t.id) AS users,
               (SELECT COUNT(*) FROM projects p WHERE p.tenant_id = t.id) AS projects,
               COALESCE(w.balance_tokens, 0) AS balance_tokens
             FROM tenants t LEFT JOIN wallets w ON w.tenant_id = t.id
             ORDER BY t.created_at, t.id",
        )
        .fetch_all(self.r())
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| {
            Ok(TenantFigures {
                id: rows::get(r, "id")?,
                name: rows::get(r, "name")?,
                created_at: rows::get(r, "created_at")?,
                users: rows::get(r, "users")?,
                projects: rows::get(r, "projects")?,
                balance_tokens: rows::get(r, "balance_tokens")?,
            })
        })
        .collect()
    }

    async fn calls_page(
        &self,
        filter: &CallFilter,
        after: Option<(Millis, uuid::Uuid)>,
        limit: i64,
    ) -> Result<Vec<CallRecord>> {
        let mut conds = vec!["at >= $1".to_string()];
        let mut n = 1;
        if filter.tenant.is_some() {
            n += 1;
            conds.push(format!("tenant_id = ${n}"));
        }
        if filter.mode.is_some() {
            n += 1;
            conds.push(format!("mode = ${n}"));
        }
        if after.is_some() {
            conds.push(format!("(at < ${} OR (at = ${} AND id < ${}))", n + 1, n + 1, n + 2));
            n += 2;
        }
        let sql = format!(
            "SELECT * FROM calls WHERE {} ORDER BY at DESC, id DESC LIMIT ${}",
            conds.join(" AND "),
            n + 1
        );
        let mut q = sqlx::query(&sql).bind(filter.since);
        if let Some(t) = &filter.tenant {
            q = q.bind(t.clone());
        }
        if let Some(m) = &filter.mode {
            q = q.bind(m.clone());
        }
        if let Some((at, id)) = after {
            q = q.bind(at).bind(id.to_string());
        }
        q.bind(limit)
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(call)
            .collect()
    }
}
