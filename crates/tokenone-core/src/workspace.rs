//! The delivery workspace's storage needs (workspace.md): stage and archive flags, the stored
//! event history with its per-project sequence, cold-storage moves and restores, and the reads
//! of the export and the handoff. The store crate implements [`WorkspaceRepo`] for SQLite and
//! PostgreSQL; the rules live in `services::workspace` and the server's event hub.

use crate::cold::{ColdRow, ColdTable, Column};
use crate::economics::LedgerEntry;
use crate::error::Result;
use crate::events::Event;
use crate::ids::{ProjectId, TenantId, UserId};
use crate::model::{CallRecord, Stage};
use crate::time::Millis;
use async_trait::async_trait;
use serde_json::{Map, Value};

/// An event as stored, with its per-project sequence number (the SSE `id:`).
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: Event,
}

/// A cold-storage archive as recorded in the database.
#[derive(Debug, Clone)]
pub struct ColdArchiveRecord {
    pub id: uuid::Uuid,
    pub project_id: ProjectId,
    pub tenant_id: TenantId,
    /// The archive file, relative to the blob directory (`storage.cold_dir`).
    pub path: String,
    /// SHA-256 (hex) of the archive file's bytes.
    pub sha256: String,
    pub bytes: i64,
    pub call_rows: i64,
    pub event_rows: i64,
    pub created_at: Millis,
    pub created_by: Option<UserId>,
    pub restored_at: Option<Millis>,
}

/// The primary keys (`id`) of the rows an archive holds, per table.
#[derive(Debug, Clone, Default)]
pub struct ArchivedIds {
    pub calls: Vec<String>,
    pub events: Vec<String>,
}

impl ArchivedIds {
    pub fn of(&mut self, table: ColdTable) -> &mut Vec<String> {
        match table {
            ColdTable::Calls => &mut self.calls,
            ColdTable::Events => &mut self.events,
        }
    }
}

/// Rows to put back, read from an archive as the restore goes (an error rolls it back).
pub type RestoreRows<'a> = &'a mut (dyn Iterator<Item = Result<(ColdTable, ColdRow)>> + Send);

/// A ledger figure of a project's calls: posting kind, number of entries, tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerTotal {
    pub kind: String,
    pub entries: i64,
    pub tokens: i64,
}

#[async_trait]
pub trait WorkspaceRepo: Send + Sync {
    /// Sets the stage if it still is `from` (column-specific); `false` when it was not.
    async fn set_project_stage(&self, project: ProjectId, from: Stage, to: Stage, now: Millis) -> Result<bool>;
    /// Sets the archived flag if it still is `from`; `false` when it was not.
    async fn set_project_archived(&self, project: ProjectId, from: bool, to: bool, now: Millis) -> Result<bool>;

    /// Stores events in one transaction, giving each the next number of its project's sequence
    /// (a counter row per project, updated in the same transaction, so replicas never collide).
    /// Returns the numbers in the order of `events`.
    async fn append_events(&self, events: &[Event]) -> Result<Vec<i64>>;
    /// A project's stored events with a sequence above `after`, oldest first.
    async fn events_after(&self, project: ProjectId, after: i64, limit: i64) -> Result<Vec<StoredEvent>>;
    /// Deletes a project's events older than its newest `keep`.
    async fn prune_events(&self, project: ProjectId, keep: i64) -> Result<u64>;

    /// The columns of an archived table as the database declares them now.
    async fn table_columns(&self, table: ColdTable) -> Result<Vec<Column>>;
    /// A page of a project's rows of `table`, by `id` above `after`, every column as stored.
    async fn cold_rows(
        &self,
        project: ProjectId,
        table: ColdTable,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ColdRow>>;
    /// In one transaction: flips the project hot → cold (`Conflict` if it is not hot), deletes
    /// exactly the archived rows (`Conflict` if any is gone) and records the archive.
    async fn commit_cold_move(&self, archive: &ColdArchiveRecord, ids: &ArchivedIds, now: Millis) -> Result<()>;
    /// The project's archive not yet restored, if any.
    async fn cold_archive(&self, project: ProjectId) -> Result<Option<ColdArchiveRecord>>;
    /// In one transaction: flips the project cold → hot (`Conflict` if it is not cold), inserts
    /// every row `rows` yields (any error, or counts other than the record's, rolls back) and
    /// marks the archive restored.
    async fn commit_cold_restore(&self, archive: &ColdArchiveRecord, rows: RestoreRows<'_>, now: Millis) -> Result<()>;

    /// A page of a project's call log, by id above `after`.
    async fn project_calls_page(&self, project: ProjectId, after: Option<&str>, limit: i64) -> Result<Vec<CallRecord>>;
    /// A page of the ledger entries of a project's calls, by id above `after`.
    async fn project_ledger_page(
        &self,
        project: ProjectId,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LedgerEntry>>;
    /// Ledger totals by posting kind of the project's calls since `since`.
    async fn project_ledger_totals(&self, project: ProjectId, since: Millis) -> Result<Vec<LedgerTotal>>;
    /// The project's connectors as metadata only (no credential column ever), if the
    /// installation has connectors at all; empty otherwise.
    async fn project_connectors(&self, project: ProjectId) -> Result<Vec<Map<String, Value>>>;
}
