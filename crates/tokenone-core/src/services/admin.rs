//! Platform administration (admin.md): runtime settings layered over the configuration, the
//! commercial levers with their history, the audit log, tenants and the call-log export.
//!
//! Settings and levers live in the database; every change bumps a version in `runtime_versions`
//! so that every replica reloads them (the server's runtime sync). The effective configuration is
//! always `base.with_overrides(stored settings)`, with `base` the file and environment layers.

use super::audit;
use crate::admin::{ActorRef, CallFilter, LeverChange, StoredSetting, TenantFigures};
use crate::config::Config;
use crate::economics::levers::lever_description;
use crate::economics::{parse_lever, Levers, LEVER_NAMES};
use crate::model::{AuditEntry, CallRecord, Ctx};
use crate::repo::Store;
use crate::settings::{self, SettingDef};
use crate::time::{now_ms, Millis};
use crate::vault::Vault;
use crate::{validate, Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The call-log export's query, as the client sent it.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExportParams<'a> {
    pub days: Option<i64>,
    pub limit: Option<i64>,
    pub tenant: Option<&'a str>,
    pub mode: Option<&'a str>,
    pub format: Option<&'a str>,
}

/// What an accepted export streams: the filter, at most `limit` rows, CSV or JSON.
#[derive(Debug, Clone)]
pub struct ExportPlan {
    pub filter: CallFilter,
    pub limit: i64,
    pub csv: bool,
}

/// A setting as `GET /admin/settings` shows it (secrets already masked).
#[derive(Debug, Clone)]
pub struct SettingView {
    pub key: String,
    pub value: Value,
    pub secret: bool,
    pub is_default: bool,
    pub description: String,
    pub updated_at: Option<Millis>,
    pub updated_by: Option<ActorRef>,
}

/// A lever as the admin API shows it.
#[derive(Debug, Clone)]
pub struct LeverView {
    pub name: String,
    pub value: Value,
    pub description: String,
    pub updated_at: Option<Millis>,
    pub updated_by: Option<ActorRef>,
}

/// The effective configuration and the stored keys it applies.
pub struct Effective {
    pub config: Config,
    pub overridden: Vec<String>,
}

#[derive(Clone)]
pub struct AdminService {
    store: Arc<dyn Store>,
    vault: Vault,
    base: Arc<Config>,
}

fn parse_json_text(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(Error::internal)
}

impl AdminService {
    /// `base` is the configuration of the file and environment layers, before stored settings.
    pub fn new(store: Arc<dyn Store>, vault: Vault, base: Config) -> Self {
        AdminService {
            store,
            vault,
            base: Arc::new(base),
        }
    }

    pub fn base(&self) -> &Config {
        &self.base
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Opens a stored setting: its JSON value (plaintext for secrets).
    fn decode(&self, row: &StoredSetting) -> Result<Value> {
        match (&row.sealed, &row.value) {
            (Some(blob), _) => {
                let plain = self
                    .vault
                    .open(&settings::seal_aad(&row.key), blob)
                    .map_err(|e| Error::internal(anyhow::anyhow!("setting `{}` does not open: {e}", row.key)))?;
                serde_json::from_slice(&plain).map_err(Error::internal)
            }
            (None, Some(text)) => parse_json_text(text),
            (None, None) => Err(Error::internal(anyhow::anyhow!("setting `{}` has no value", row.key))),
        }
    }

    /// The stored settings that are registered and open, by key.
    async fn stored(&self) -> Result<BTreeMap<String, (StoredSetting, Value)>> {
        let mut out = BTreeMap::new();
        for row in self.store.settings().await? {
            if settings::lookup(&row.key).is_none() {
                tracing::warn!(key = %row.key, "ignoring a stored setting that is no longer registered");
                continue;
            }
            match self.decode(&row) {
                Ok(v) => {
                    out.insert(row.key.clone(), (row, v));
                }
                Err(e) => tracing::error!(key = %row.key, error = %e, "ignoring a stored setting that cannot be read"),
            }
        }
        Ok(out)
    }

    /// `base` with `overrides` applied. When they do not apply together (stored by an older
    /// version, or two racing changes), each is applied on its own and the ones that fail are
    /// skipped (and logged), so one bad value never takes the others down.
    fn layer(&self, overrides: &BTreeMap<String, Value>) -> Effective {
        if let Ok(config) = self.base.with_overrides(overrides.iter().map(|(k, v)| (k.as_str(), v))) {
            return Effective {
                config,
                overridden: overrides.keys().cloned().collect(),
            };
        }
        let mut config = (*self.base).clone();
        let mut overridden = Vec::new();
        for (k, v) in overrides {
            match config.with_overrides([(k.as_str(), v)]) {
                Ok(c) => {
                    config = c;
                    overridden.push(k.clone());
                }
                Err(e) => tracing::error!(key = %k, error = %e, "stored setting not applied"),
            }
        }
        Effective { config, overridden }
    }

    /// The configuration in force: the base with every stored setting applied.
    pub async fn effective(&self) -> Result<Effective> {
        let stored = self.stored().await?;
        let overrides = stored.into_iter().map(|(k, (_, v))| (k, v)).collect();
        Ok(self.layer(&overrides))
    }

    fn view(def: &SettingDef, cfg: &Config, row: Option<&StoredSetting>) -> SettingView {
        let raw = settings::value_in(cfg, &def.key).unwrap_or(Value::Null);
        SettingView {
            key: def.key.clone(),
            value: settings::display(def, &raw),
            secret: def.secret(),
            is_default: row.is_none(),
            description: def.description.clone(),
            updated_at: row.map(|r| r.updated_at),
            updated_by: row.and_then(|r| r.updated_by.clone()),
        }
    }

    /// `GET /admin/settings`: every registered key with its effective value.
    pub async fn list_settings(&self) -> Result<Vec<SettingView>> {
        let stored = self.stored().await?;
        let overrides = stored.iter().map(|(k, (_, v))| (k.clone(), v.clone())).collect();
        let eff = self.layer(&overrides);
        Ok(settings::registry()
            .iter()
            .map(|d| Self::view(d, &eff.config, stored.get(&d.key).map(|(r, _)| r)))
            .collect())
    }

    fn def(key: &str) -> Result<&'static SettingDef> {
        settings::lookup(key).ok_or_else(|| Error::invalid(format!("unknown setting `{key}`")))
    }

    /// `POST /admin/settings`: validates against the type and the whole configuration, stores
    /// (sealed when secret), audits with masked values.
    pub async fn set_setting(&self, ctx: &Ctx, key: &str, value: &Value) -> Result<SettingView> {
        let def = Self::def(key)?;
        let canonical = def.parse(value).map_err(Error::invalid)?;
        let stored = self.stored().await?;
        let mut overrides: BTreeMap<String, Value> = stored.iter().map(|(k, (_, v))| (k.clone(), v.clone())).collect();
        let before = self.layer(&overrides);
        overrides.insert(key.to_string(), canonical.clone());
        let after = self
            .base
            .with_overrides(overrides.iter().map(|(k, v)| (k.as_str(), v)))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let text = canonical.to_string();
        let now = now_ms();
        let row = if def.secret() {
            StoredSetting {
                key: key.to_string(),
                value: None,
                sealed: Some(self.vault.seal(&settings::seal_aad(key), text.as_bytes())),
                updated_at: now,
                updated_by: None,
            }
        } else {
            StoredSetting {
                key: key.to_string(),
                value: Some(text),
                sealed: None,
                updated_at: now,
                updated_by: None,
            }
        };
        self.store.put_setting(&row, ctx.actor.id).await?;
        let old_view = Self::view(def, &before.config, stored.get(key).map(|(r, _)| r));
        let written = StoredSetting {
            updated_by: Some(ActorRef {
                id: ctx.actor.id.to_string(),
                email: ctx.actor.email.clone(),
            }),
            ..row
        };
        let view = Self::view(def, &after, Some(&written));
        audit(
            &self.store,
            ctx,
            "settings.update",
            format!("setting:{key}"),
            Some(old_view.value),
            Some(view.value.clone()),
            None,
        )
        .await?;
        Ok(view)
    }

    /// `DELETE /admin/settings/:key`: back to the file/environment/default value.
    pub async fn reset_setting(&self, ctx: &Ctx, key: &str) -> Result<SettingView> {
        let def = Self::def(key)?;
        let mut stored = self.stored().await?;
        let overrides: BTreeMap<String, Value> = stored.iter().map(|(k, (_, v))| (k.clone(), v.clone())).collect();
        let before = self.layer(&overrides);
        let old_row = stored.remove(key);
        let deleted = self.store.delete_setting(key).await?;
        let overrides: BTreeMap<String, Value> = stored.into_iter().map(|(k, (_, v))| (k, v)).collect();
        let after = self.layer(&overrides);
        let view = Self::view(def, &after.config, None);
        if deleted.is_some() {
            let old = Self::view(def, &before.config, old_row.as_ref().map(|(r, _)| r));
            audit(
                &self.store,
                ctx,
                "settings.reset",
                format!("setting:{key}"),
                Some(old.value),
                Some(view.value.clone()),
                None,
            )
            .await?;
        }
        Ok(view)
    }

    /// Every `runtime_versions` counter.
    pub async fn versions(&self) -> Result<BTreeMap<String, i64>> {
        Ok(self.store.runtime_versions().await?.into_iter().collect())
    }

    /// The levers in force: defaults overridden by the stored values (an unreadable stored value
    /// is logged and left at its default).
    pub async fn load_levers(&self) -> Result<Levers> {
        let mut valid = Vec::new();
        for row in self.store.levers().await? {
            let parsed = serde_json::from_str::<Value>(&row.value)
                .map_err(|e| e.to_string())
                .and_then(|v| parse_lever(&row.name, &v).map(|_| v));
            match parsed {
                Ok(v) => valid.push((row.name, v)),
                Err(e) => tracing::error!(lever = %row.name, error = %e, "stored lever ignored"),
            }
        }
        Levers::from_stored(valid).map_err(|e| Error::internal(anyhow::anyhow!(e)))
    }

    fn known_lever(name: &str) -> Result<&'static str> {
        LEVER_NAMES
            .iter()
            .copied()
            .find(|n| *n == name)
            .ok_or_else(|| Error::not_found("lever"))
    }

    /// The five levers (defaults where never set).
    pub async fn list_levers(&self) -> Result<Vec<LeverView>> {
        let stored: BTreeMap<String, _> = self
            .store
            .levers()
            .await?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let defaults = Levers::default();
        let mut out = Vec::new();
        for name in LEVER_NAMES {
            let row = stored.get(name);
            let value = match row {
                Some(r) => parse_json_text(&r.value)?,
                None => defaults.value(name).unwrap_or(Value::Null),
            };
            out.push(LeverView {
                name: name.to_string(),
                value,
                description: lever_description(name).unwrap_or_default().to_string(),
                updated_at: row.map(|r| r.updated_at),
                updated_by: row.and_then(|r| r.updated_by.clone()),
            });
        }
        Ok(out)
    }

    /// One lever; an unknown name is 404.
    pub async fn lever(&self, name: &str) -> Result<LeverView> {
        let name = Self::known_lever(name)?;
        self.list_levers()
            .await?
            .into_iter()
            .find(|l| l.name == name)
            .ok_or_else(|| Error::not_found("lever"))
    }

    /// `PUT /admin/commercial-levers/:name`: validated, stored normalised with a history row,
    /// audited with old value, new value, reason and actor.
    pub async fn set_lever(&self, ctx: &Ctx, name: &str, value: &Value, reason: &str) -> Result<LeverView> {
        let name = Self::known_lever(name)?;
        let reason = reason.trim();
        if validate::len(reason) < 3 {
            return Err(Error::invalid("`reason` must be at least 3 characters"));
        }
        validate::text("reason", reason, 3, 500)?;
        let canonical = parse_lever(name, value).map_err(Error::invalid)?;
        let default_old = Levers::default().value(name).unwrap_or(Value::Null).to_string();
        let change = LeverChange {
            id: crate::ids::new_uuid(),
            name: name.to_string(),
            at: now_ms(),
            actor: Some(ctx.actor.clone()),
            old_value: None,
            new_value: canonical.to_string(),
            reason: reason.to_string(),
        };
        let written = self.store.put_lever(&change, &default_old).await?;
        let old = written.old_value.as_deref().map(parse_json_text).transpose()?;
        audit(
            &self.store,
            ctx,
            "lever.update",
            format!("lever:{name}"),
            old,
            Some(canonical),
            Some(reason.to_string()),
        )
        .await?;
        self.lever(name).await
    }

    /// A lever's history, newest first.
    pub async fn lever_history(&self, name: &str, before: Option<uuid::Uuid>, limit: i64) -> Result<Vec<LeverChange>> {
        let name = Self::known_lever(name)?;
        self.store.lever_history(name, before, limit).await
    }

    pub async fn audit_log(
        &self,
        action: Option<&str>,
        before: Option<uuid::Uuid>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        self.store.audit_page(action, before, limit).await
    }

    pub async fn tenants(&self) -> Result<Vec<TenantFigures>> {
        self.store.tenant_figures().await
    }

    /// Checks an export's tenant and writes its audit row (before any row is sent).
    /// `GET /api/admin/commercial-levers/llm-call-log/export`: checks the query, audits the
    /// export (with the parameters it runs under) and returns what to stream.
    pub async fn start_export(&self, ctx: &Ctx, q: ExportParams<'_>) -> Result<ExportPlan> {
        let days = validate::in_range(q.days, 30, 1, 365, "days")?;
        let limit = validate::in_range(q.limit, 1000, 1, 100_000, "limit")?;
        let tenant = match q.tenant {
            None | Some("all") => None,
            Some(t) => {
                let id: crate::ids::TenantId = t
                    .parse()
                    .map_err(|_| Error::invalid("`tenant` must be a tenant id or `all`"))?;
                if self.store.tenant(id).await?.is_none() {
                    return Err(Error::not_found("tenant"));
                }
                Some(id.to_string())
            }
        };
        let csv = match q.format {
            None | Some("json") => false,
            Some("csv") => true,
            Some(_) => return Err(Error::invalid("`format` must be `json` or `csv`")),
        };
        let mode = match q.mode {
            None | Some("all") => None,
            Some(m @ ("live" | "dev")) => Some(m.to_string()),
            Some(_) => return Err(Error::invalid("`mode` must be `live`, `dev` or `all`")),
        };
        let params = serde_json::json!({
            "days": days, "limit": limit, "tenant": tenant.as_deref().unwrap_or("all"),
            "format": if csv { "csv" } else { "json" }, "mode": mode.as_deref().unwrap_or("all"),
        });
        audit(
            &self.store,
            ctx,
            "calllog.export",
            "calls".into(),
            None,
            Some(params),
            None,
        )
        .await?;
        Ok(ExportPlan {
            filter: CallFilter {
                since: now_ms() - days * 86_400_000,
                tenant,
                mode,
            },
            limit,
            csv,
        })
    }

    /// One page of an export, newest first, after the position of the previous page.
    pub async fn export_page(
        &self,
        filter: &CallFilter,
        after: Option<(Millis, uuid::Uuid)>,
        limit: i64,
    ) -> Result<Vec<CallRecord>> {
        self.store.calls_page(filter, after, limit).await
    }
}
