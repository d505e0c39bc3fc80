//! The project lifecycle of workspace.md: stage flip, archive, cold-storage tiering, the
//! encrypted export and the handoff document. Handlers authorise with `ProjectGuard`, then call
//! exactly one of these; each re-checks the action against the caller's role.

use super::audit;
use super::live::LiveConfig;
use super::projects::{ProjectAccess, ProjectView};
use crate::cold::{sha256_of, ArchiveHeader, ArchiveReader, ArchiveWriter, ColdTable, ColumnKind};
use crate::economics::LedgerEntry;
use crate::events::{kinds, Event, EventSink};
use crate::export::{KdfParams, Sealer, MIN_PASSPHRASE_CHARS};
use crate::keys::ApiKey;
use crate::model::{CallRecord, Ctx, Member, Project, RollupRow, Stage, StorageTier};
use crate::repo::Store;
use crate::roles::Action;
use crate::secret::Secret;
use crate::time::{format_ms, now_ms};
use crate::workspace::{ArchivedIds, ColdArchiveRecord, LedgerTotal, WorkspaceRepo};
use crate::{Error, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per page when reading history for an archive or an export.
const PAGE: i64 = 1000;
/// Picks shown in the handoff and carried in the export.
const HANDOFF_PICKS: i64 = 20;
const EXPORT_PICKS: i64 = 100;
const MAX_PASSPHRASE_CHARS: usize = 1024;

/// The answer every history route gives while the project is in cold storage.
pub const COLD_MESSAGE: &str =
    "the project's history is in cold storage; restore it first (POST /api/tokenone/projects/{id}/cold/restore)";

#[derive(Clone)]
pub struct WorkspaceService {
    store: Arc<dyn Store>,
    repo: Arc<dyn WorkspaceRepo>,
    cfg: LiveConfig,
    events: Arc<dyn EventSink>,
}

/// 409 while the project's history is in cold storage.
pub fn require_hot(access: &ProjectAccess) -> Result<()> {
    if access.view.project.storage_tier == StorageTier::Cold {
        return Err(Error::conflict(COLD_MESSAGE.replace("{id}", &access.id().to_string())));
    }
    Ok(())
}

fn io_err(e: std::io::Error) -> Error {
    Error::internal(e)
}

fn damaged(what: impl std::fmt::Display) -> Error {
    tracing::error!(error = %what, "cold-storage archive refused");
    Error::conflict("the project's cold-storage archive is missing or damaged (it does not match its recorded checksum); nothing was restored")
}

impl WorkspaceService {
    pub fn new(
        store: Arc<dyn Store>,
        repo: Arc<dyn WorkspaceRepo>,
        cfg: LiveConfig,
        events: Arc<dyn EventSink>,
    ) -> Self {
        WorkspaceService {
            store,
            repo,
            cfg,
            events,
        }
    }

    /// The blob directory of cold archives: `storage.cold_dir`, or `cold/` beside the SQLite file.
    pub fn cold_dir(&self) -> PathBuf {
        let cfg = self.cfg.get();
        if cfg.storage.cold_dir.is_empty() {
            cfg.data_dir().join("cold")
        } else {
            PathBuf::from(&cfg.storage.cold_dir)
        }
    }

    fn publish(&self, ctx: &Ctx, p: &Project, kind: &str, payload: Value) {
        self.events
            .publish(Event::now(p.id, p.tenant_id, Some(ctx.actor.id), kind, payload));
    }

    fn changed(access: &ProjectAccess, now: i64, f: impl FnOnce(&mut Project)) -> ProjectView {
        let mut v = access.view.clone();
        f(&mut v.project);
        v.project.updated_at = now;
        v
    }

    /// `POST .../stage`: to `to`, or flipped when `None`.
    pub async fn set_stage(&self, ctx: &Ctx, access: &ProjectAccess, to: Option<Stage>) -> Result<ProjectView> {
        access.require(Action::Operate)?;
        let p = &access.view.project;
        let from = p.stage;
        let to = to.unwrap_or(match from {
            Stage::Build => Stage::Live,
            Stage::Live => Stage::Build,
        });
        if from == to {
            return Ok(access.view.clone());
        }
        let now = now_ms();
        if !self.repo.set_project_stage(p.id, from, to, now).await? {
            return Err(Error::conflict(
                "the project's stage changed meanwhile; reload and retry",
            ));
        }
        audit(
            &self.store,
            ctx,
            "project.stage_changed",
            format!("project:{}", p.id),
            Some(json!({"stage": from.as_str()})),
            Some(json!({"stage": to.as_str()})),
            None,
        )
        .await?;
        self.publish(
            ctx,
            p,
            kinds::STAGE_CHANGED,
            json!({"from": from.as_str(), "to": to.as_str()}),
        );
        Ok(Self::changed(access, now, |p| p.stage = to))
    }

    /// `POST .../archive`: to `archived`, or toggled when `None`.
    pub async fn set_archived(&self, ctx: &Ctx, access: &ProjectAccess, archived: Option<bool>) -> Result<ProjectView> {
        access.require(Action::Operate)?;
        let p = &access.view.project;
        let from = p.archived;
        let to = archived.unwrap_or(!from);
        if from == to {
            return Ok(access.view.clone());
        }
        let now = now_ms();
        if !self.repo.set_project_archived(p.id, from, to, now).await? {
            return Err(Error::conflict(
                "the project's archive state changed meanwhile; reload and retry",
            ));
        }
        audit(
            &self.store,
            ctx,
            if to { "project.archived" } else { "project.unarchived" },
            format!("project:{}", p.id),
            Some(json!({"archived": from})),
            Some(json!({"archived": to})),
            None,
        )
        .await?;
        self.publish(ctx, p, kinds::ARCHIVE_CHANGED, json!({"archived": to}));
        Ok(Self::changed(access, now, |p| p.archived = to))
    }

    /// `POST .../cold/move`: the archive file is written and synced first; then one transaction
    /// deletes exactly the archived rows, records the archive and flips the tier. A crash before
    /// that transaction leaves the project hot with every row (and a harmless orphan file).
    pub async fn cold_move(&self, ctx: &Ctx, access: &ProjectAccess) -> Result<ProjectView> {
        access.require(Action::Operate)?;
        let p = &access.view.project;
        if p.storage_tier == StorageTier::Cold {
            return Err(Error::conflict("the project is already in cold storage"));
        }
        let now = now_ms();
        let id = uuid::Uuid::now_v7();
        let rel = format!("{}/{}/{}.jsonl.zst", p.tenant_id, p.id, id);
        let path = self.cold_dir().join(&rel);
        let (written, ids) = match self.write_archive(p, id, now, &path).await {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_file(partial(&path));
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let record = ColdArchiveRecord {
            id,
            project_id: p.id,
            tenant_id: p.tenant_id,
            path: rel,
            sha256: written.0,
            bytes: written.1 as i64,
            call_rows: ids.calls.len() as i64,
            event_rows: ids.events.len() as i64,
            created_at: now,
            created_by: Some(ctx.actor.id),
            restored_at: None,
        };
        if let Err(e) = self.repo.commit_cold_move(&record, &ids, now).await {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        audit(
            &self.store,
            ctx,
            "project.cold_moved",
            format!("project:{}", p.id),
            Some(json!({"storageTier": "hot"})),
            Some(json!({
                "storageTier": "cold", "archiveId": id.to_string(), "sha256": record.sha256, "bytes": record.bytes,
                "callRows": record.call_rows, "eventRows": record.event_rows,
            })),
            None,
        )
        .await?;
        Ok(Self::changed(access, now, |p| p.storage_tier = StorageTier::Cold))
    }

    /// Streams the project's rows into the archive file at `path` (through `path.partial`,
    /// synced, then renamed). Returns (sha256, bytes) and the ids written.
    async fn write_archive(
        &self,
        p: &Project,
        id: uuid::Uuid,
        now: i64,
        path: &Path,
    ) -> Result<((String, u64), ArchivedIds)> {
        let mut tables = BTreeMap::new();
        for t in ColdTable::ALL {
            let cols = self.repo.table_columns(t).await?;
            if let Some(c) = cols.iter().find(|c| matches!(c.kind, ColumnKind::Other(_))) {
                return Err(Error::internal(anyhow::anyhow!(
                    "column {}.{} has a type cold archives do not carry",
                    t.as_str(),
                    c.name
                )));
            }
            if !cols.iter().any(|c| c.name == "id") {
                return Err(Error::internal(anyhow::anyhow!(
                    "table {} has no id column",
                    t.as_str()
                )));
            }
            tables.insert(t, cols);
        }
        let header = ArchiveHeader {
            archive_id: id.to_string(),
            project_id: p.id.to_string(),
            tenant_id: p.tenant_id.to_string(),
            created_at: now,
            tables,
        };
        let dir = path
            .parent()
            .ok_or_else(|| Error::internal(anyhow::anyhow!("archive path has no directory")))?;
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let tmp = partial(path);
        let file = std::fs::File::create(&tmp).map_err(io_err)?;
        let mut w = ArchiveWriter::new(BufWriter::new(file), &header).map_err(Error::internal)?;
        let mut ids = ArchivedIds::default();
        for t in ColdTable::ALL {
            let mut after: Option<String> = None;
            loop {
                let page = self.repo.cold_rows(p.id, t, after.as_deref(), PAGE).await?;
                for row in &page {
                    let rid = row
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| Error::internal(anyhow::anyhow!("a {} row has no text id", t.as_str())))?;
                    ids.of(t).push(rid.to_string());
                    w.row(t, row).map_err(Error::internal)?;
                }
                if (page.len() as i64) < PAGE {
                    break;
                }
                after = ids.of(t).last().cloned();
            }
        }
        let done = w.finish().map_err(Error::internal)?;
        let file = done.sink.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io_err)?;
        // The rename itself must survive a crash before the database says "cold".
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
        Ok(((done.sha256, done.bytes), ids))
    }

    /// `POST .../cold/restore`: verifies the archive's checksum, then puts every row back in
    /// one transaction that also flips the tier; any mismatch on the way rolls it all back.
    pub async fn cold_restore(&self, ctx: &Ctx, access: &ProjectAccess) -> Result<ProjectView> {
        access.require(Action::Operate)?;
        let p = &access.view.project;
        if p.storage_tier != StorageTier::Cold {
            return Err(Error::conflict("the project is not in cold storage"));
        }
        let record = self
            .repo
            .cold_archive(p.id)
            .await?
            .ok_or_else(|| Error::conflict("no cold-storage archive is recorded for this project"))?;
        let path = self.cold_dir().join(&record.path);
        let open = || std::fs::File::open(&path).map(BufReader::new).map_err(damaged);
        let sha = sha256_of(open()?).map_err(damaged)?;
        if sha != record.sha256 {
            return Err(damaged(format!(
                "checksum {sha} differs from the recorded {}",
                record.sha256
            )));
        }
        let reader = ArchiveReader::open(open()?, &record.sha256).map_err(damaged)?;
        let h = reader.header();
        if h.project_id != p.id.to_string() || h.archive_id != record.id.to_string() {
            return Err(damaged("the archive belongs to another project or move"));
        }
        let mut rows = reader.map(|r| r.map_err(damaged));
        let now = now_ms();
        self.repo.commit_cold_restore(&record, &mut rows, now).await?;
        // The rows are back: the file is no longer needed (a leftover would be harmless).
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(error = %e, "could not delete a restored cold archive");
        }
        audit(
            &self.store,
            ctx,
            "project.cold_restored",
            format!("project:{}", p.id),
            Some(json!({"storageTier": "cold", "archiveId": record.id.to_string()})),
            Some(json!({"storageTier": "hot", "callRows": record.call_rows, "eventRows": record.event_rows})),
            None,
        )
        .await?;
        Ok(Self::changed(access, now, |p| p.storage_tier = StorageTier::Hot))
    }

    /// `GET .../handoff`: the Markdown handoff document.
    pub async fn handoff(&self, access: &ProjectAccess) -> Result<String> {
        access.require(Action::Read)?;
        require_hot(access)?;
        let data = self.handoff_data(access).await?;
        Ok(render_handoff(&data))
    }

    async fn handoff_data(&self, access: &ProjectAccess) -> Result<HandoffData> {
        let p = access.view.project.clone();
        let now = now_ms();
        let since = now - 29 * 86_400_000;
        let from_day = format_ms(since)[..10].to_string();
        let pid = p.id.to_string();
        let rollups: Vec<RollupRow> = self
            .store
            .rollups(Some(p.tenant_id), &from_day)
            .await?
            .into_iter()
            .filter(|r| r.project_id == pid)
            .collect();
        let cfg = self.cfg.get();
        Ok(HandoffData {
            members: self.store.list_members(p.id).await?,
            keys: self.store.list_keys(p.id).await?,
            connectors: self.repo.project_connectors(p.id).await?,
            rollups,
            ledger: self.repo.project_ledger_totals(p.id, since).await?,
            picks: self.store.recent_calls(p.id, HANDOFF_PICKS).await?,
            base_url: cfg.public_url(),
            models: example_models(&cfg.routing.catalogue),
            from_day,
            to_day: format_ms(now)[..10].to_string(),
            generated_at: format_ms(now),
            project: p,
        })
    }

    /// `POST .../export`: checks the request, derives the key (Argon2id, off the executor) and
    /// audits; the returned [`Export`] then streams the encrypted bundle.
    pub async fn prepare_export(&self, ctx: &Ctx, access: &ProjectAccess, passphrase: Secret) -> Result<Export> {
        access.require(Action::Operate)?;
        let n = passphrase.expose().chars().count();
        if n < MIN_PASSPHRASE_CHARS {
            return Err(Error::invalid(format!(
                "`passphrase` must be at least {MIN_PASSPHRASE_CHARS} characters"
            )));
        }
        if n > MAX_PASSPHRASE_CHARS {
            return Err(Error::invalid(format!(
                "`passphrase` must be at most {MAX_PASSPHRASE_CHARS} characters"
            )));
        }
        require_hot(access)?;
        let sealer = tokio::task::spawn_blocking(move || Sealer::new(passphrase.expose(), KdfParams::default()))
            .await
            .map_err(Error::internal)?
            .map_err(Error::internal)?;
        let now = now_ms();
        let p = &access.view.project;
        audit(
            &self.store,
            ctx,
            "project.exported",
            format!("project:{}", p.id),
            None,
            Some(json!({"format": "t1x", "version": crate::export::VERSION})),
            None,
        )
        .await?;
        Ok(Export {
            file_name: crate::export::file_name(&p.name, &format_ms(now)[..10]),
            sealer,
            service: self.clone(),
            access: access.clone(),
            exported_at: now,
        })
    }
}

fn partial(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".partial");
    PathBuf::from(s)
}

/// An export ready to stream: [`Export::run`] sends the file's bytes, chunk by chunk.
pub struct Export {
    pub file_name: String,
    sealer: Sealer,
    service: WorkspaceService,
    access: ProjectAccess,
    exported_at: i64,
}

/// Where the export's bytes go; `None` once the receiver is gone (client disconnected).
type ExportOut = tokio::sync::mpsc::Sender<std::result::Result<Vec<u8>, std::io::Error>>;

struct BundleWriter {
    sealer: Sealer,
    out: ExportOut,
    pending: Vec<u8>,
}

impl BundleWriter {
    /// Adds plaintext; sends whatever completed chunks it produced. `Err` when the client left.
    async fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() < 16 * 1024 {
            return Ok(());
        }
        let plain = std::mem::take(&mut self.pending);
        let sealed = self.sealer.push(&plain).map_err(Error::internal)?;
        self.send(sealed).await
    }

    async fn json(&mut self, v: &Value) -> Result<()> {
        let bytes = serde_json::to_vec(v).map_err(Error::internal)?;
        self.put(&bytes).await
    }

    async fn send(&mut self, bytes: Vec<u8>) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.out
            .send(Ok(bytes))
            .await
            .map_err(|_| Error::internal(anyhow::anyhow!("export receiver went away")))
    }

    async fn finish(mut self) -> Result<()> {
        let plain = std::mem::take(&mut self.pending);
        let mut sealed = self.sealer.push(&plain).map_err(Error::internal)?;
        sealed.extend(self.sealer.finish().map_err(Error::internal)?);
        self.out
            .send(Ok(sealed))
            .await
            .map_err(|_| Error::internal(anyhow::anyhow!("export receiver went away")))
    }
}

impl Export {
    /// Builds the JSON bundle incrementally (calls and ledger entries page by page) and sends it
    /// encrypted. On a failure the stream ends with an error, so the client's file lacks its
    /// final chunk and never decrypts.
    pub async fn run(self, out: ExportOut) {
        let err_out = out.clone();
        if let Err(e) = self.write(out).await {
            tracing::error!(error = %e, "export failed midway");
            let _ = err_out
                .send(Err(std::io::Error::other("the export failed midway")))
                .await;
        }
    }

    async fn write(self, out: ExportOut) -> Result<()> {
        let svc = &self.service;
        let p = &self.access.view.project;
        let mut w = BundleWriter {
            sealer: self.sealer,
            out,
            pending: Vec::with_capacity(32 * 1024),
        };
        w.put(br#"{"format":"tokenone-export","version":1,"exportedAt":"#)
            .await?;
        w.json(&json!(format_ms(self.exported_at))).await?;
        w.put(br#","project":"#).await?;
        w.json(&project_json(p)).await?;
        w.put(br#","members":"#).await?;
        let members: Vec<Value> = svc.store.list_members(p.id).await?.iter().map(member_json).collect();
        w.json(&Value::Array(members)).await?;
        w.put(br#","keys":"#).await?;
        let keys: Vec<Value> = svc.store.list_keys(p.id).await?.iter().map(key_json).collect();
        w.json(&Value::Array(keys)).await?;
        w.put(br#","connectors":"#).await?;
        let connectors: Vec<Value> = svc
            .repo
            .project_connectors(p.id)
            .await?
            .into_iter()
            .map(connector_json)
            .collect();
        w.json(&Value::Array(connectors)).await?;
        w.put(br#","handoff":"#).await?;
        let handoff = render_handoff(&svc.handoff_data(&self.access).await?);
        w.json(&Value::String(handoff)).await?;
        w.put(br#","picks":"#).await?;
        let picks: Vec<Value> = svc
            .store
            .recent_calls(p.id, EXPORT_PICKS)
            .await?
            .iter()
            .map(pick_json)
            .collect();
        w.json(&Value::Array(picks)).await?;
        w.put(br#","calls":["#).await?;
        let mut after: Option<String> = None;
        let mut first = true;
        loop {
            let page = svc.repo.project_calls_page(p.id, after.as_deref(), PAGE).await?;
            for c in &page {
                if !first {
                    w.put(b",").await?;
                }
                first = false;
                w.json(&call_json(c)).await?;
            }
            if (page.len() as i64) < PAGE {
                break;
            }
            after = page.last().map(|c| c.id.to_string());
        }
        w.put(br#"],"ledger":["#).await?;
        let mut after: Option<String> = None;
        let mut first = true;
        loop {
            let page = svc.repo.project_ledger_page(p.id, after.as_deref(), PAGE).await?;
            for e in &page {
                if !first {
                    w.put(b",").await?;
                }
                first = false;
                w.json(&ledger_json(e)).await?;
            }
            if (page.len() as i64) < PAGE {
                break;
            }
            after = page.last().map(|e| e.id.to_string());
        }
        w.put(b"]}").await?;
        w.finish().await
    }
}

fn opt_time(ms: Option<i64>) -> Value {
    ms.map(|m| Value::String(format_ms(m))).unwrap_or(Value::Null)
}

pub fn project_json(p: &Project) -> Value {
    json!({
        "id": p.id, "tenantId": p.tenant_id, "name": p.name, "description": p.description, "tags": p.tags,
        "stage": p.stage.as_str(), "archived": p.archived, "storageTier": p.storage_tier.as_str(),
        "createdAt": format_ms(p.created_at), "updatedAt": format_ms(p.updated_at), "createdBy": p.created_by,
    })
}

fn member_json(m: &Member) -> Value {
    json!({
        "id": m.id, "userId": m.user_id, "email": m.email, "name": m.name, "role": m.role.as_str(),
        "status": m.status.as_str(), "invitedAt": format_ms(m.invited_at), "joinedAt": opt_time(m.joined_at),
    })
}

/// Key metadata: never the secret (which is not stored) nor its hash.
fn key_json(k: &ApiKey) -> Value {
    json!({
        "id": k.id, "name": k.name, "mode": k.mode.as_str(), "prefix": k.prefix, "last4": k.last4,
        "scopes": k.scopes, "rateLimitPerMinute": k.rate_limit_per_minute,
        "ipAllowlist": k.ip_allowlist.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "createdAt": format_ms(k.created_at), "createdBy": k.created_by, "lastUsedAt": opt_time(k.last_used_at),
        "expiresAt": opt_time(k.expires_at), "revokedAt": opt_time(k.revoked_at),
    })
}

/// Connector metadata, camelCased; the store hands over only metadata columns.
fn connector_json(row: Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (k, v) in row {
        let camel = camel_case(&k);
        let v = match (k.ends_with("_at"), &v) {
            (true, Value::Number(n)) => n.as_i64().map(|ms| Value::String(format_ms(ms))).unwrap_or(v),
            _ => v,
        };
        out.insert(camel, v);
    }
    Value::Object(out)
}

fn camel_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn pick_json(c: &CallRecord) -> Value {
    json!({
        "callId": c.id, "at": format_ms(c.at), "mode": c.mode, "shape": c.shape, "requestedModel": c.requested_model,
        "requestedTier": c.requested_tier, "neededTier": c.needed_tier, "deliveredModel": c.delivered_model,
        "provider": c.provider, "tier": c.tier, "routed": c.routed, "fallbackUsed": c.fallback_used,
        "reasons": c.reasons, "shadowPick": c.shadow_pick, "latencyMs": c.latency_ms, "status": c.status,
        "savingsTokens": c.savings_tokens.to_string(),
    })
}

fn call_json(c: &CallRecord) -> Value {
    json!({
        "id": c.id, "at": format_ms(c.at), "tenantId": c.tenant_id, "projectId": c.project_id, "keyId": c.key_id,
        "mode": c.mode, "shape": c.shape, "requestedModel": c.requested_model, "requestedTier": c.requested_tier,
        "neededTier": c.needed_tier, "deliveredModel": c.delivered_model, "provider": c.provider, "tier": c.tier,
        "routed": c.routed, "fallbackUsed": c.fallback_used, "reasons": c.reasons, "shadowPick": c.shadow_pick,
        "stream": c.stream, "inputTokens": c.input_tokens.to_string(),
        "cachedInputTokens": c.cached_input_tokens.to_string(), "outputTokens": c.output_tokens.to_string(),
        "usageEstimated": c.usage_estimated, "burnTokens": c.burn_tokens.to_string(),
        "savingsTokens": c.savings_tokens.to_string(), "passBackTokens": c.pass_back_tokens.to_string(),
        "uncollectedTokens": c.uncollected_tokens.to_string(),
        "shadowSavingsTokens": c.shadow_savings_tokens.to_string(), "latencyMs": c.latency_ms,
        "status": c.status, "errorCode": c.error_code,
    })
}

fn ledger_json(e: &LedgerEntry) -> Value {
    use crate::economics::ledger::to_hex;
    json!({
        "id": e.id, "tenantId": e.tenant_id, "seq": e.seq.to_string(), "at": format_ms(e.at_ms), "kind": e.kind,
        "callId": e.call_id, "debitAccount": e.debit_account, "creditAccount": e.credit_account,
        "amountTokens": e.amount_tokens.to_string(), "memo": e.memo, "prevHash": to_hex(&e.prev_hash),
        "hash": to_hex(&e.hash), "signature": to_hex(&e.signature),
    })
}

/// A delivered model per shape for the `curl` examples: the catalogue's cheapest enabled one.
fn example_models(catalogue: &[crate::catalogue::Path]) -> [String; 3] {
    let pick = |provider: &str, fallback: &str| {
        catalogue
            .iter()
            .filter(|p| p.enabled && p.provider == provider)
            .min_by_key(|p| p.tier)
            .map(|p| p.public_model.clone())
            .unwrap_or_else(|| fallback.to_string())
    };
    [
        pick("openai", "gpt-4o-mini"),
        pick("anthropic", "claude-3-5-haiku"),
        pick("gemini", "gemini-1.5-flash"),
    ]
}

/// Everything the handoff shows.
pub struct HandoffData {
    pub project: Project,
    pub members: Vec<Member>,
    pub keys: Vec<ApiKey>,
    pub connectors: Vec<Map<String, Value>>,
    /// Roll-up rows of the project over the window.
    pub rollups: Vec<RollupRow>,
    pub ledger: Vec<LedgerTotal>,
    pub picks: Vec<CallRecord>,
    pub base_url: String,
    /// Example models for the OpenAI, Anthropic and Gemini shapes.
    pub models: [String; 3],
    pub from_day: String,
    pub to_day: String,
    pub generated_at: String,
}

/// The handoff's section headings, in their fixed order.
pub const HANDOFF_SECTIONS: [&str; 10] = [
    "## Description",
    "## Status",
    "## Members and roles",
    "## API keys",
    "## Connectors",
    "## Models (last 30 days)",
    "## Burn, savings and pass-back (last 30 days)",
    "## Proxy endpoints",
    "## Recent upstream picks",
    "## Notes",
];

/// Text safe inside a Markdown table cell: one line, no pipes, no HTML.
fn cell(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let escaped = one_line
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "\\`");
    if escaped.trim().is_empty() {
        "—".into()
    } else {
        escaped
    }
}

fn str_field<'a>(row: &'a Map<String, Value>, k: &str) -> &'a str {
    row.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Renders the handoff. Every section is always present, in [`HANDOFF_SECTIONS`] order.
pub fn render_handoff(d: &HandoffData) -> String {
    let p = &d.project;
    let mut s = String::with_capacity(8 * 1024);
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(s, "# Project handoff: {}\n", cell(&p.name));
    let _ = writeln!(s, "Generated {} by TokenOne for project `{}`.\n", d.generated_at, p.id);

    let _ = writeln!(s, "{}\n", HANDOFF_SECTIONS[0]);
    if p.description.trim().is_empty() {
        let _ = writeln!(s, "_No description._\n");
    } else {
        // Quoted, so a description can never open a heading or a section of its own.
        for line in p.description.lines() {
            let _ = writeln!(s, "> {}", line.replace('<', "&lt;"));
        }
        let _ = writeln!(s);
    }
    if !p.tags.is_empty() {
        let _ = writeln!(
            s,
            "Tags: {}\n",
            p.tags.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
        );
    }

    let _ = writeln!(s, "{}\n", HANDOFF_SECTIONS[1]);
    let _ = writeln!(s, "| Field | Value |\n|---|---|");
    let _ = writeln!(s, "| Stage | {} |", p.stage.as_str());
    let _ = writeln!(s, "| Archived | {} |", yes_no(p.archived));
    let _ = writeln!(s, "| Storage tier | {} |", p.storage_tier.as_str());
    let _ = writeln!(s, "| Created | {} |", format_ms(p.created_at));
    let _ = writeln!(s, "| Last updated | {} |\n", format_ms(p.updated_at));

    let _ = writeln!(s, "{}\n", HANDOFF_SECTIONS[2]);
    let _ = writeln!(s, "| Name | Email | Role | Status |\n|---|---|---|---|");
    for m in &d.members {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            cell(&m.name),
            cell(&m.email),
            m.role.as_str(),
            m.status.as_str()
        );
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "{}\n", HANDOFF_SECTIONS[3]);
    let _ = writeln!(
        s,
        "Secrets are never shown: only the prefix and the last four characters.\n"
    );
    let _ = writeln!(
        s,
        "| Name | Mode | Prefix | Last four | Status |\n|---|---|---|---|---|"
    );
    let now = now_ms();
    for k in &d.keys {
        let status = if k.revoked_at.is_some() {
            "revoked"
        } else if k.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        let _ = writeln!(
            s,
            "| {} | {} | `{}` | `{}` | {} |",
            cell(&k.name),
            k.mode.as_str(),
            cell(&k.prefix),
            cell(&k.last4),
            status
        );
    }
    if d.keys.is_empty() {
        let _ = writeln!(s, "| — | — | — | — | — |");
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "{}\n", HANDOFF_SECTIONS[4]);
    let _ = writeln!(s, "| Type | Name | Status |\n|---|---|---|");
    for c in &d.connectors {
        let ty = match str_field(c, "type") {
            "" => str_field(c, "kind"),
            t => t,
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            cell(ty),
            cell(str_field(c, "name")),
            cell(str_field(c, "status"))
        );
    }
    if d.connectors.is_empty() {
        let _ = writeln!(s, "| — | — | — |");
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "{}\n", HANDOFF_SECTIONS[5]);
    let _ = writeln!(s, "From {} to {} (UTC).\n", d.from_day, d.to_day);
    let mut models: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for r in &d.rollups {
        *models
            .entry((r.mode.clone(), r.requested_model.clone(), r.delivered_model.clone()))
            .or_default() += r.calls;
    }
    let mut models: Vec<_> = models.into_iter().collect();
    models.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let _ = writeln!(
        s,
        "| Mode | Requested model | Delivered model | Calls |\n|---|---|---|---|"
    );
    for ((mode, req, del), calls) in &models {
        let _ = writeln!(s, "| {} | {} | {} | {} |", mode, cell(req), cell(del), calls);
    }
    if models.is_empty() {
        let _ = writeln!(s, "| — | — | — | 0 |");
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "{}\n", HANDOFF_SECTIONS[6]);
    let _ = writeln!(
        s,
        "Wallet tokens. `live` calls are charged to the wallet; `dev` calls run on the sandbox and are never charged.\n"
    );
    let _ = writeln!(
        s,
        "| Mode | Calls | Input tokens | Output tokens | Burn | Savings | Pass-back | Net |\n|---|---|---|---|---|---|---|---|"
    );
    for mode in ["live", "dev"] {
        let rows = d.rollups.iter().filter(|r| r.mode == mode);
        let (mut calls, mut inp, mut out, mut burn, mut sav, mut pb) = (0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
        for r in rows {
            calls += r.calls;
            inp += r.input_tokens;
            out += r.output_tokens;
            burn += r.burn_tokens;
            sav += r.savings_tokens;
            pb += r.pass_back_tokens;
        }
        let _ = writeln!(
            s,
            "| {mode} | {calls} | {inp} | {out} | {burn} | {sav} | {pb} | {} |",
            burn - pb
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Ledger postings of this project's calls over the same window:\n");
    let _ = writeln!(s, "| Posting | Entries | Tokens |\n|---|---|---|");
    for l in &d.ledger {
        let _ = writeln!(s, "| {} | {} | {} |", cell(&l.kind), l.entries, l.tokens);
    }
    if d.ledger.is_empty() {
        let _ = writeln!(s, "| — | 0 | 0 |");
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "{}\n", HANDOFF_SECTIONS[7]);
    let base = d.base_url.trim_end_matches('/');
    let [openai, anthropic, gemini] = &d.models;
    let _ = writeln!(
        s,
        "Use a key of this project (`to_live_...` or, for the sandbox, `to_dev_...`) where the vendor's SDK expects its own key; set `TOKENONE_API_KEY` to it for the examples.\n"
    );
    let _ = writeln!(s, "| Shape | Base URL |\n|---|---|");
    let _ = writeln!(s, "| OpenAI | `{base}/v1/openai-proxy/v1` |");
    let _ = writeln!(s, "| Anthropic | `{base}/v1/anthropic-proxy` |");
    let _ = writeln!(s, "| Gemini | `{base}/v1/gemini-proxy` |\n");
    let _ = writeln!(s, "### OpenAI\n\n```sh");
    let _ = writeln!(
        s,
        "curl {base}/v1/openai-proxy/v1/chat/completions \\\n  -H \"Authorization: Bearer $TOKENONE_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"{openai}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'"
    );
    let _ = writeln!(s, "```\n\n### Anthropic\n\n```sh");
    let _ = writeln!(
        s,
        "curl {base}/v1/anthropic-proxy/v1/messages \\\n  -H \"x-api-key: $TOKENONE_API_KEY\" \\\n  -H \"anthropic-version: 2023-06-01\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"{anthropic}\", \"max_tokens\": 256, \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'"
    );
    let _ = writeln!(s, "```\n\n### Gemini\n\n```sh");
    let _ = writeln!(
        s,
        "curl \"{base}/v1/gemini-proxy/v1beta/models/{gemini}:generateContent\" \\\n  -H \"x-goog-api-key: $TOKENONE_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"contents\": [{{\"parts\": [{{\"text\": \"Hello\"}}]}}]}}'"
    );
    let _ = writeln!(s, "```\n");

    let _ = writeln!(s, "{}\n", HANDOFF_SECTIONS[8]);
    let _ = writeln!(
        s,
        "| At | Mode | Requested | Delivered | Provider | Tier | Routed | Reasons |\n|---|---|---|---|---|---|---|---|"
    );
    for c in &d.picks {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            format_ms(c.at),
            cell(&c.mode),
            cell(&c.requested_model),
            cell(c.delivered_model.as_deref().unwrap_or("")),
            cell(c.provider.as_deref().unwrap_or("")),
            cell(c.tier.as_deref().unwrap_or("")),
            yes_no(c.routed),
            cell(&c.reasons.join(", "))
        );
    }
    if d.picks.is_empty() {
        let _ = writeln!(s, "| — | — | — | — | — | — | — | — |");
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "{}\n", HANDOFF_SECTIONS[9]);
    let _ = writeln!(
        s,
        "- Figures come from TokenOne's daily roll-ups and signed ledger; token amounts are wallet tokens.\n- This document never contains secrets: API keys, connector credentials and upstream keys stay in TokenOne."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MemberId, ProjectId, TenantId};
    use crate::keys::{KeyMode, RateOverrides};
    use crate::model::MemberStatus;
    use crate::roles::ProjectRole;

    fn data() -> HandoffData {
        let project = Project {
            id: ProjectId::new(),
            tenant_id: TenantId::new(),
            name: "Checkout | bot".into(),
            description: "Line one\n## Not a heading".into(),
            tags: vec!["eu".into()],
            stage: Stage::Live,
            archived: false,
            storage_tier: StorageTier::Hot,
            created_at: 0,
            updated_at: 0,
            created_by: None,
        };
        HandoffData {
            members: vec![Member {
                id: MemberId::new(),
                project_id: project.id,
                user_id: None,
                email: "a@b.co".into(),
                name: "Ann".into(),
                role: ProjectRole::Owner,
                status: MemberStatus::Active,
                invited_at: 0,
                joined_at: None,
            }],
            keys: vec![ApiKey {
                id: uuid::Uuid::now_v7(),
                project_id: project.id,
                tenant_id: project.tenant_id,
                name: "ci".into(),
                mode: KeyMode::Dev,
                prefix: "to_dev_Ab3xY".into(),
                last4: "wxyz".into(),
                scopes: vec![],
                rate_limit_per_minute: RateOverrides::default(),
                ip_allowlist: vec![],
                created_at: 0,
                created_by: None,
                last_used_at: None,
                expires_at: None,
                revoked_at: None,
            }],
            connectors: vec![],
            rollups: vec![RollupRow {
                mode: "live".into(),
                requested_model: "gpt-4o".into(),
                delivered_model: "gpt-4o-mini".into(),
                calls: 3,
                burn_tokens: 100,
                pass_back_tokens: 10,
                ..Default::default()
            }],
            ledger: vec![],
            picks: vec![],
            base_url: "https://gw.example.com/".into(),
            models: [
                "gpt-4o-mini".into(),
                "claude-3-5-haiku".into(),
                "gemini-1.5-flash".into(),
            ],
            from_day: "2026-01-01".into(),
            to_day: "2026-01-30".into(),
            generated_at: "2026-01-30T00:00:00.000Z".into(),
            project,
        }
    }

    #[test]
    fn sections_in_fixed_order() {
        let md = render_handoff(&data());
        let mut at = 0;
        for h in HANDOFF_SECTIONS {
            let found = md[at..]
                .find(&format!("\n{h}\n"))
                .unwrap_or_else(|| panic!("{h} missing or out of order"));
            at += found + 1;
        }
        // The description cannot open a section of its own.
        assert!(md.contains("> ## Not a heading"));
        assert_eq!(md.matches("\n## ").count(), HANDOFF_SECTIONS.len());
        assert!(md.contains("# Project handoff: Checkout \\| bot"));
        assert!(md.contains("| live | gpt-4o | gpt-4o-mini | 3 |"));
        assert!(md.contains("| live | 3 | 0 | 0 | 100 | 0 | 10 | 90 |"));
        assert!(md.contains("`https://gw.example.com/v1/openai-proxy/v1`"));
        assert!(md.contains("curl https://gw.example.com/v1/anthropic-proxy/v1/messages"));
        assert!(md.contains("| ci | dev | `to_dev_Ab3xY` | `wxyz` | active |"));
    }

    #[test]
    fn camel_cases_columns() {
        assert_eq!(camel_case("last_used_at"), "lastUsedAt");
        assert_eq!(camel_case("name"), "name");
    }
}
