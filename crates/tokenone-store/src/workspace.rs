//! The delivery workspace: stage and archive flags, stored events with their per-project
//! sequence, cold-storage moves and restores (rows read and written column by column, with the
//! types the database declares, so a round trip is exact), and the export's reads.

use crate::{db_err, keys, rows, Backend, SqlStore};
use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use tokenone_core::cold::{blob_of, blob_value, ColdRow, ColdTable, Column, ColumnKind};
use tokenone_core::economics::LedgerEntry;
use tokenone_core::events::Event;
use tokenone_core::ids::ProjectId;
use tokenone_core::model::{CallRecord, Stage};
use tokenone_core::time::Millis;
use tokenone_core::workspace::{ArchivedIds, ColdArchiveRecord, LedgerTotal, RestoreRows, StoredEvent, WorkspaceRepo};
use tokenone_core::{Error, Result};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// Ids per `DELETE ... IN (...)` statement (well under both databases' parameter limits).
const DELETE_CHUNK: usize = 500;

/// Columns of a connector that are metadata; anything else (the sealed credential above all)
/// never leaves the store through this path.
const CONNECTOR_METADATA: [&str; 11] = [
    "id",
    "type",
    "category",
    "name",
    "display",
    "status",
    "scopes",
    "created_at",
    "created_by",
    "last_used_at",
    "revoked_at",
];

fn stored_event(r: &AnyRow) -> Result<StoredEvent> {
    let payload: String = rows::get(r, "payload")?;
    Ok(StoredEvent {
        seq: rows::get(r, "seq")?,
        event: Event {
            project_id: rows::parse(r, "project_id")?,
            tenant_id: rows::parse(r, "tenant_id")?,
            actor_user_id: rows::parse_opt(r, "actor_user_id")?,
            kind: rows::get(r, "type")?,
            payload: serde_json::from_str(&payload).map_err(Error::internal)?,
            at: rows::get(r, "at")?,
        },
    })
}

fn archive(r: &AnyRow) -> Result<ColdArchiveRecord> {
    Ok(ColdArchiveRecord {
        id: rows::parse(r, "id")?,
        project_id: rows::parse(r, "project_id")?,
        tenant_id: rows::parse(r, "tenant_id")?,
        path: rows::get(r, "path")?,
        sha256: rows::get(r, "sha256")?,
        bytes: rows::get(r, "bytes")?,
        call_rows: rows::get(r, "call_rows")?,
        event_rows: rows::get(r, "event_rows")?,
        created_at: rows::get(r, "created_at")?,
        created_by: rows::parse_opt(r, "created_by")?,
        restored_at: rows::get(r, "restored_at")?,
    })
}

/// One column's value as an archive carries it.
fn value_of(r: &AnyRow, c: &Column) -> Result<Value> {
    let name = c.name.as_str();
    let bad = |e: sqlx::Error| Error::internal(anyhow::anyhow!("column {name}: {e}"));
    Ok(match &c.kind {
        ColumnKind::Int => r
            .try_get::<Option<i64>, _>(name)
            .map_err(bad)?
            .map(Value::from)
            .unwrap_or(Value::Null),
        ColumnKind::Text => r
            .try_get::<Option<String>, _>(name)
            .map_err(bad)?
            .map(Value::from)
            .unwrap_or(Value::Null),
        ColumnKind::Blob => r
            .try_get::<Option<Vec<u8>>, _>(name)
            .map_err(bad)?
            .map(|b| blob_value(&b))
            .unwrap_or(Value::Null),
        ColumnKind::Other(t) => {
            return Err(Error::internal(anyhow::anyhow!(
                "column {name} has type {t}, which archives do not carry"
            )))
        }
    })
}

fn restore_err(m: impl std::fmt::Display) -> Error {
    tracing::error!(error = %m, "cold restore refused a row");
    Error::conflict("the project's cold-storage archive does not fit the database; nothing was restored")
}

/// Binds an archived value to a column of `kind`, with NULLs typed for that column.
fn bind_value<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    kind: &ColumnKind,
    v: &Value,
) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>> {
    Ok(match (kind, v) {
        (ColumnKind::Int, Value::Null) => q.bind(None::<i64>),
        (ColumnKind::Int, Value::Number(n)) => q.bind(n.as_i64().ok_or_else(|| restore_err("not a 64-bit integer"))?),
        (ColumnKind::Text, Value::Null) => q.bind(None::<String>),
        (ColumnKind::Text, Value::String(s)) => q.bind(s.clone()),
        (ColumnKind::Blob, Value::Null) => q.bind(None::<Vec<u8>>),
        (ColumnKind::Blob, v) => q.bind(blob_of(v).ok_or_else(|| restore_err("not a blob"))?),
        (k, v) => return Err(restore_err(format!("value {v} does not fit a {k:?} column"))),
    })
}

impl SqlStore {
    async fn columns_of(&self, table: &str) -> Result<Vec<Column>> {
        let sql = match self.kind() {
            Backend::Sqlite => "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
            Backend::Postgres => {
                "SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
            }
        };
        sqlx::query(sql)
            .bind(table.to_string())
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                let ty: String = rows::get(r, "type")?;
                Ok(Column {
                    name: rows::get(r, "name")?,
                    kind: ColumnKind::of_declared(&ty),
                })
            })
            .collect()
    }

    async fn has_table(&self, table: &str) -> Result<bool> {
        let sql = match self.kind() {
            Backend::Sqlite => "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = $1",
            Backend::Postgres => {
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
            }
        };
        let r = sqlx::query(sql)
            .bind(table.to_string())
            .fetch_one(self.r())
            .await
            .map_err(db_err)?;
        Ok(rows::get::<i64>(&r, "n")? > 0)
    }
}

/// Inserts `(event, seq)` pairs, many rows per statement.
async fn insert_events(backend: crate::Backend, tx: &mut Tx<'_>, rows: &[(&Event, i64)]) -> Result<()> {
    for chunk in crate::row_chunks(rows) {
        let sql = format!(
            "INSERT INTO project_events (id, project_id, seq, tenant_id, type, actor_user_id, at, payload) VALUES {}",
            crate::values(backend, chunk.len(), 8)
        );
        let mut q = sqlx::query(&sql);
        for (e, seq) in chunk {
            q = q
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(e.project_id.to_string())
                .bind(*seq)
                .bind(e.tenant_id.to_string())
                .bind(e.kind.clone())
                .bind(e.actor_user_id.map(|u| u.to_string()))
                .bind(e.at)
                .bind(e.payload.to_string());
        }
        q.execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

#[async_trait]
impl WorkspaceRepo for SqlStore {
    async fn set_project_stage(&self, project: ProjectId, from: Stage, to: Stage, now: Millis) -> Result<bool> {
        let n = sqlx::query("UPDATE projects SET stage = $3, updated_at = $4 WHERE id = $1 AND stage = $2")
            .bind(project.to_string())
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(now)
            .execute(self.w())
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(n == 1)
    }

    async fn set_project_archived(&self, project: ProjectId, from: bool, to: bool, now: Millis) -> Result<bool> {
        let n = sqlx::query("UPDATE projects SET archived = $3, updated_at = $4 WHERE id = $1 AND archived = $2")
            .bind(project.to_string())
            .bind(from as i64)
            .bind(to as i64)
            .bind(now)
            .execute(self.w())
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(n == 1)
    }

    async fn append_events(&self, events: &[Event]) -> Result<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // Per project, in a fixed order: replicas lock counter rows in the same order, so two
        // batches never deadlock.
        let mut by_project: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            by_project.entry(e.project_id.to_string()).or_default().push(i);
        }
        let mut seqs = vec![0i64; events.len()];
        let mut rows: Vec<(&Event, i64)> = Vec::with_capacity(events.len());
        let mut tx = self.w().begin().await.map_err(db_err)?;
        for (project, idx) in &by_project {
            // One statement: creates the counter or advances it (holding its row lock on
            // PostgreSQL until the commit), and returns the last seq taken.
            let r = sqlx::query(
                "INSERT INTO project_event_counters (project_id, seq) VALUES ($1, $2)
                 ON CONFLICT (project_id) DO UPDATE SET seq = project_event_counters.seq + excluded.seq RETURNING seq",
            )
            .bind(project.clone())
            .bind(idx.len() as i64)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            let last: i64 = rows::get(&r, "seq")?;
            let first = last - idx.len() as i64 + 1;
            for (k, &i) in idx.iter().enumerate() {
                let seq = first + k as i64;
                rows.push((&events[i], seq));
                seqs[i] = seq;
            }
        }
        insert_events(self.kind(), &mut tx, &rows).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(seqs)
    }

    async fn events_after(&self, project: ProjectId, after: i64, limit: i64) -> Result<Vec<StoredEvent>> {
        sqlx::query("SELECT * FROM project_events WHERE project_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(project.to_string())
            .bind(after)
            .bind(limit)
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(stored_event)
            .collect()
    }

    async fn prune_events(&self, project: ProjectId, keep: i64) -> Result<u64> {
        let n = sqlx::query(
            "DELETE FROM project_events WHERE project_id = $1
             AND seq <= (SELECT seq FROM project_event_counters WHERE project_id = $1) - $2",
        )
        .bind(project.to_string())
        .bind(keep)
        .execute(self.w())
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(n)
    }

    async fn table_columns(&self, table: ColdTable) -> Result<Vec<Column>> {
        self.columns_of(table.as_str()).await
    }

    async fn cold_rows(
        &self,
        project: ProjectId,
        table: ColdTable,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ColdRow>> {
        let cols = self.columns_of(table.as_str()).await?;
        let sql = format!(
            "SELECT * FROM {} WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            table.as_str()
        );
        sqlx::query(&sql)
            .bind(project.to_string())
            .bind(after.unwrap_or("").to_string())
            .bind(limit)
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                let mut row = Map::new();
                for c in &cols {
                    row.insert(c.name.clone(), value_of(r, c)?);
                }
                Ok(row)
            })
            .collect()
    }

    async fn commit_cold_move(&self, a: &ColdArchiveRecord, ids: &ArchivedIds, now: Millis) -> Result<()> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        // First, so concurrent moves of one project queue on its row (PostgreSQL) and the second
        // finds it cold.
        let flipped = sqlx::query(
            "UPDATE projects SET storage_tier = 'cold', updated_at = $2 WHERE id = $1 AND storage_tier = 'hot'",
        )
        .bind(a.project_id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if flipped != 1 {
            return Err(Error::conflict("the project is already in cold storage"));
        }
        for (table, list) in [(ColdTable::Calls, &ids.calls), (ColdTable::Events, &ids.events)] {
            let mut deleted = 0u64;
            for chunk in list.chunks(DELETE_CHUNK) {
                // The project id first, then the ids, in the order they are bound.
                let sql = format!(
                    "DELETE FROM {} WHERE project_id = {} AND id IN ({})",
                    table.as_str(),
                    crate::placeholders(self.kind(), 1, 1),
                    crate::placeholders(self.kind(), 2, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(a.project_id.to_string());
                for id in chunk {
                    q = q.bind(id.clone());
                }
                deleted += q.execute(&mut *tx).await.map_err(db_err)?.rows_affected();
            }
            if deleted != list.len() as u64 {
                return Err(Error::conflict(
                    "the project's history changed during the move; nothing was moved, retry",
                ));
            }
        }
        sqlx::query(
            "INSERT INTO cold_archives (id, project_id, tenant_id, path, sha256, bytes, call_rows, event_rows, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(a.id.to_string())
        .bind(a.project_id.to_string())
        .bind(a.tenant_id.to_string())
        .bind(a.path.clone())
        .bind(a.sha256.clone())
        .bind(a.bytes)
        .bind(a.call_rows)
        .bind(a.event_rows)
        .bind(a.created_at)
        .bind(a.created_by.map(|u| u.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn cold_archive(&self, project: ProjectId) -> Result<Option<ColdArchiveRecord>> {
        sqlx::query(
            "SELECT * FROM cold_archives WHERE project_id = $1 AND restored_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(project.to_string())
        .fetch_optional(self.w())
        .await
        .map_err(db_err)?
        .map(|r| archive(&r))
        .transpose()
    }

    async fn commit_cold_restore(&self, a: &ColdArchiveRecord, rows: RestoreRows<'_>, now: Millis) -> Result<()> {
        let mut current: HashMap<ColdTable, HashMap<String, ColumnKind>> = HashMap::new();
        for t in ColdTable::ALL {
            let cols = self.columns_of(t.as_str()).await?;
            current.insert(t, cols.into_iter().map(|c| (c.name, c.kind)).collect());
        }
        let pid = Value::String(a.project_id.to_string());
        let mut tx = self.w().begin().await.map_err(db_err)?;
        let flipped = sqlx::query(
            "UPDATE projects SET storage_tier = 'hot', updated_at = $2 WHERE id = $1 AND storage_tier = 'cold'",
        )
        .bind(a.project_id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if flipped != 1 {
            return Err(Error::conflict("the project is not in cold storage"));
        }
        let mut sql_cache: HashMap<(ColdTable, Vec<String>), String> = HashMap::new();
        let mut counts: BTreeMap<ColdTable, i64> = BTreeMap::new();
        for item in rows {
            let (table, row) = item?;
            if row.get("project_id") != Some(&pid) {
                return Err(restore_err("a row of another project"));
            }
            // Every table of `ColdTable::ALL` was loaded above.
            let kinds = &current[&table];
            let names: Vec<String> = row.keys().cloned().collect();
            for n in &names {
                if !kinds.contains_key(n) {
                    return Err(restore_err(format!("column {}.{n} no longer exists", table.as_str())));
                }
            }
            let sql = sql_cache.entry((table, names.clone())).or_insert_with(|| {
                format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    table.as_str(),
                    names.join(", "),
                    crate::values(self.kind(), 1, names.len())
                )
            });
            let mut q = sqlx::query(sql.as_str());
            for n in &names {
                q = bind_value(q, &kinds[n], &row[n])?;
            }
            q.execute(&mut *tx).await.map_err(|e| match db_err(e) {
                // The row is already there: the archive does not match the hot tables.
                Error::Conflict(_) => restore_err("a row of the archive is already present"),
                e => e,
            })?;
            *counts.entry(table).or_default() += 1;
        }
        let got = (
            counts.get(&ColdTable::Calls).copied().unwrap_or(0),
            counts.get(&ColdTable::Events).copied().unwrap_or(0),
        );
        if got != (a.call_rows, a.event_rows) {
            return Err(restore_err(format!(
                "row counts {got:?} differ from the recorded ({}, {})",
                a.call_rows, a.event_rows
            )));
        }
        let marked = sqlx::query("UPDATE cold_archives SET restored_at = $2 WHERE id = $1 AND restored_at IS NULL")
            .bind(a.id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if marked != 1 {
            return Err(Error::conflict("this archive has already been restored"));
        }
        tx.commit().await.map_err(db_err)
    }

    async fn project_calls_page(&self, project: ProjectId, after: Option<&str>, limit: i64) -> Result<Vec<CallRecord>> {
        sqlx::query("SELECT * FROM calls WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3")
            .bind(project.to_string())
            .bind(after.unwrap_or("").to_string())
            .bind(limit)
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(keys::call)
            .collect()
    }

    async fn project_ledger_page(
        &self,
        project: ProjectId,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LedgerEntry>> {
        sqlx::query(
            "SELECT l.* FROM ledger_entries l JOIN calls c ON c.id = l.call_id
             WHERE c.project_id = $1 AND l.id > $2 ORDER BY l.id LIMIT $3",
        )
        .bind(project.to_string())
        .bind(after.unwrap_or("").to_string())
        .bind(limit)
        .fetch_all(self.r())
        .await
        .map_err(db_err)?
        .iter()
        .map(crate::wallet::entry)
        .collect()
    }

    async fn project_ledger_totals(&self, project: ProjectId, since: Millis) -> Result<Vec<LedgerTotal>> {
        sqlx::query(
            "SELECT l.kind AS kind, COUNT(*) AS entries, CAST(COALESCE(SUM(l.amount_tokens), 0) AS BIGINT) AS tokens
             FROM ledger_entries l JOIN calls c ON c.id = l.call_id
             WHERE c.project_id = $1 AND l.at >= $2 GROUP BY l.kind ORDER BY l.kind",
        )
        .bind(project.to_string())
        .bind(since)
        .fetch_all(self.r())
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| {
            Ok(LedgerTotal {
                kind: rows::get(r, "kind")?,
                entries: rows::get(r, "entries")?,
                tokens: rows::get(r, "tokens")?,
            })
        })
        .collect()
    }

    async fn project_connectors(&self, project: ProjectId) -> Result<Vec<Map<String, Value>>> {
        if !self.has_table("connectors").await? {
            return Ok(Vec::new());
        }
        let cols: Vec<Column> = self
            .columns_of("connectors")
            .await?
            .into_iter()
            .filter(|c| CONNECTOR_METADATA.contains(&c.name.as_str()))
            .filter(|c| matches!(c.kind, ColumnKind::Int | ColumnKind::Text))
            .collect();
        if cols.is_empty() {
            return Ok(Vec::new());
        }
        let order = if cols.iter().any(|c| c.name == "created_at") {
            "created_at, id"
        } else {
            "id"
        };
        let list: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        let sql = format!(
            "SELECT {} FROM connectors WHERE project_id = $1 ORDER BY {order}",
            list.join(", ")
        );
        sqlx::query(&sql)
            .bind(project.to_string())
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                let mut row = Map::new();
                for c in &cols {
                    let mut v = value_of(r, c)?;
                    if c.name == "scopes" {
                        if let Some(list) = v.as_str().and_then(|s| serde_json::from_str::<Value>(s).ok()) {
                            v = list;
                        }
                    }
                    row.insert(c.name.clone(), v);
                }
                Ok(row)
            })
            .collect()
    }
}
