//! `/api/admin/*` (admin.md), platform admins only: settings, commercial levers and their
//! history, the call-log export, runtime status, tenants and the audit log.

use crate::dto::ErrorEnvelope;
use crate::error::{ApiResult, Data};
use crate::extract::{page_cursor, page_limit, split_page, ApiJson, ApiQuery, PageQuery, PlatformAdmin};
use crate::proxy::upstream;
use crate::runtime;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use tokenone_core::admin::{ActorRef, CallFilter, LEVERS_KIND, SETTINGS_KIND};
use tokenone_core::catalogue::PROVIDERS;
use tokenone_core::model::{Actor, AuditEntry, CallRecord};
use tokenone_core::services::admin::{AdminService, ExportParams, ExportPlan, LeverView, SettingView};
use tokenone_core::time::{format_ms, now_ms, Millis};
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct ActorDto {
    pub id: String,
    pub email: String,
}

impl From<ActorRef> for ActorDto {
    fn from(a: ActorRef) -> Self {
        ActorDto {
            id: a.id,
            email: a.email,
        }
    }
}

impl From<Actor> for ActorDto {
    fn from(a: Actor) -> Self {
        ActorDto {
            id: a.id.to_string(),
            email: a.email,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingDto {
    /// The configuration path it overrides, e.g. `ratelimit.openai_per_minute`.
    pub key: String,
    /// The effective value; a secret shows as `"••••" + last 4`, or null when unset.
    #[schema(value_type = Object)]
    pub value: Value,
    pub secret: bool,
    /// No stored value: the configuration file, environment or built-in default applies.
    pub is_default: bool,
    pub description: String,
    pub updated_at: Option<String>,
    pub updated_by: Option<ActorDto>,
}

impl From<SettingView> for SettingDto {
    fn from(v: SettingView) -> Self {
        SettingDto {
            key: v.key,
            value: v.value,
            secret: v.secret,
            is_default: v.is_default,
            description: v.description,
            updated_at: v.updated_at.map(format_ms),
            updated_by: v.updated_by.map(ActorDto::from),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSettingBody {
    pub key: String,
    /// Of the setting's type: string, boolean, whole number (or decimal string), array.
    #[schema(value_type = Object)]
    pub value: Value,
}

#[utoipa::path(get, path = "/api/admin/settings", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "every registered setting", body = [SettingDto]),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_settings(State(state): State<AppState>, _admin: PlatformAdmin) -> ApiResult<Data<Vec<SettingDto>>> {
    let list = state.admin.list_settings().await?;
    Ok(Data(list.into_iter().map(SettingDto::from).collect()))
}

#[utoipa::path(post, path = "/api/admin/settings", tag = "admin", security(("bearer" = [])), request_body = SetSettingBody,
    responses((status = 200, body = SettingDto),
              (status = 400, description = "unknown key, wrong type or invalid configuration", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn set_setting(
    State(state): State<AppState>,
    admin: PlatformAdmin,
    ApiJson(b): ApiJson<SetSettingBody>,
) -> ApiResult<Data<SettingDto>> {
    let view = state.admin.set_setting(&admin.0.ctx(), &b.key, &b.value).await?;
    runtime::changed(&state, SETTINGS_KIND).await;
    Ok(Data(view.into()))
}

#[utoipa::path(delete, path = "/api/admin/settings/{key}", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "setting key")),
    responses((status = 200, description = "the setting back at its default", body = SettingDto),
              (status = 400, description = "unknown key", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn reset_setting(
    State(state): State<AppState>,
    admin: PlatformAdmin,
    Path(key): Path<String>,
) -> ApiResult<Data<SettingDto>> {
    let view = state.admin.reset_setting(&admin.0.ctx(), &key).await?;
    runtime::changed(&state, SETTINGS_KIND).await;
    Ok(Data(view.into()))
}

// ---------------------------------------------------------------------------------------------
// Commercial levers

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeverDto {
    pub name: String,
    /// Canonical form: numbers as decimal strings.
    #[schema(value_type = Object)]
    pub value: Value,
    pub description: String,
    /// Null while the lever has its default value.
    pub updated_at: Option<String>,
    pub updated_by: Option<ActorDto>,
}

impl From<LeverView> for LeverDto {
    fn from(v: LeverView) -> Self {
        LeverDto {
            name: v.name,
            value: v.value,
            description: v.description,
            updated_at: v.updated_at.map(format_ms),
            updated_by: v.updated_by.map(ActorDto::from),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLeverBody {
    /// Numbers may be JSON numbers or decimal strings.
    #[schema(value_type = Object)]
    pub value: Value,
    /// At least 3 characters after trimming.
    pub reason: String,
}

#[utoipa::path(get, path = "/api/admin/commercial-levers", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "the five levers", body = [LeverDto]),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_levers(State(state): State<AppState>, _admin: PlatformAdmin) -> ApiResult<Data<Vec<LeverDto>>> {
    let list = state.admin.list_levers().await?;
    Ok(Data(list.into_iter().map(LeverDto::from).collect()))
}

#[utoipa::path(get, path = "/api/admin/commercial-levers/{name}", tag = "admin", security(("bearer" = [])),
    params(("name" = String, Path, description = "lever name")),
    responses((status = 200, body = LeverDto), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_lever(
    State(state): State<AppState>,
    _admin: PlatformAdmin,
    Path(name): Path<String>,
) -> ApiResult<Data<LeverDto>> {
    Ok(Data(state.admin.lever(&name).await?.into()))
}

#[utoipa::path(put, path = "/api/admin/commercial-levers/{name}", tag = "admin", security(("bearer" = [])),
    params(("name" = String, Path, description = "lever name")), request_body = SetLeverBody,
    responses((status = 200, body = LeverDto), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn set_lever(
    State(state): State<AppState>,
    admin: PlatformAdmin,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<SetLeverBody>,
) -> ApiResult<Data<LeverDto>> {
    let view = state
        .admin
        .set_lever(&admin.0.ctx(), &name, &b.value, &b.reason)
        .await?;
    runtime::changed(&state, LEVERS_KIND).await;
    Ok(Data(view.into()))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeverHistoryItem {
    pub at: String,
    pub actor: Option<ActorDto>,
    #[schema(value_type = Object)]
    pub old_value: Option<Value>,
    #[schema(value_type = Object)]
    pub new_value: Value,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeverHistoryPage {
    pub items: Vec<LeverHistoryItem>,
    pub next_cursor: Option<String>,
}

fn json_text(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

#[utoipa::path(get, path = "/api/admin/commercial-levers/{name}/history", tag = "admin", security(("bearer" = [])),
    params(("name" = String, Path, description = "lever name"), PageQuery),
    responses((status = 200, description = "newest first", body = LeverHistoryPage), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn lever_history(
    State(state): State<AppState>,
    _admin: PlatformAdmin,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Data<LeverHistoryPage>> {
    let limit = page_limit(q.limit)?;
    let before = page_cursor(q.cursor.as_deref())?;
    let rows = state.admin.lever_history(&name, before, limit + 1).await?;
    let (rows, next_cursor) = split_page(rows, limit, |r| r.id.to_string());
    let items = rows
        .into_iter()
        .map(|r| LeverHistoryItem {
            at: format_ms(r.at),
            actor: r.actor.map(ActorDto::from),
            old_value: r.old_value.as_deref().map(json_text),
            new_value: json_text(&r.new_value),
            reason: r.reason,
        })
        .collect();
    Ok(Data(LeverHistoryPage { items, next_cursor }))
}

// ---------------------------------------------------------------------------------------------
// Call-log export

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// 1..=365, default 30.
    pub days: Option<i64>,
    /// 1..=100000, default 1000.
    pub limit: Option<i64>,
    /// A tenant id or `all` (default).
    pub tenant: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// `live`, `dev` or `all` (default).
    pub mode: Option<String>,
}

/// Rows fetched per database round trip; memory stays at one page whatever the limit.
const EXPORT_PAGE: i64 = 500;

const EXPORT_COLUMNS: [&str; 25] = [
    "id",
    "at",
    "tenantId",
    "projectId",
    "keyId",
    "mode",
    "shape",
    "requestedModel",
    "requestedTier",
    "deliveredModel",
    "provider",
    "tier",
    "routed",
    "fallbackUsed",
    "inputTokens",
    "cachedInputTokens",
    "outputTokens",
    "usageEstimated",
    "burnTokens",
    "savingsTokens",
    "passBackTokens",
    "uncollectedTokens",
    "latencyMs",
    "status",
    "errorCode",
];

/// One exported call in JSON: token figures as decimal strings.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportRow<'a> {
    id: String,
    at: String,
    tenant_id: &'a str,
    project_id: &'a str,
    key_id: &'a str,
    mode: &'a str,
    shape: &'a str,
    requested_model: &'a str,
    requested_tier: Option<&'a str>,
    delivered_model: Option<&'a str>,
    provider: Option<&'a str>,
    tier: Option<&'a str>,
    routed: bool,
    fallback_used: bool,
    input_tokens: String,
    cached_input_tokens: String,
    output_tokens: String,
    usage_estimated: bool,
    burn_tokens: String,
    savings_tokens: String,
    pass_back_tokens: String,
    uncollected_tokens: String,
    latency_ms: i64,
    status: u16,
    error_code: Option<&'a str>,
}

impl<'a> From<&'a CallRecord> for ExportRow<'a> {
    fn from(c: &'a CallRecord) -> Self {
        ExportRow {
            id: c.id.to_string(),
            at: format_ms(c.at),
            tenant_id: &c.tenant_id,
            project_id: &c.project_id,
            key_id: &c.key_id,
            mode: &c.mode,
            shape: &c.shape,
            requested_model: &c.requested_model,
            requested_tier: c.requested_tier.as_deref(),
            delivered_model: c.delivered_model.as_deref(),
            provider: c.provider.as_deref(),
            tier: c.tier.as_deref(),
            routed: c.routed,
            fallback_used: c.fallback_used,
            input_tokens: c.input_tokens.to_string(),
            cached_input_tokens: c.cached_input_tokens.to_string(),
            output_tokens: c.output_tokens.to_string(),
            usage_estimated: c.usage_estimated,
            burn_tokens: c.burn_tokens.to_string(),
            savings_tokens: c.savings_tokens.to_string(),
            pass_back_tokens: c.pass_back_tokens.to_string(),
            uncollected_tokens: c.uncollected_tokens.to_string(),
            latency_ms: c.latency_ms,
            status: c.status,
            error_code: c.error_code.as_deref(),
        }
    }
}

/// A text cell, RFC 4180 quoted when needed; a cell a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`.
pub fn csv_text(out: &mut String, raw: &str) {
    let guarded;
    let cell = if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{raw}");
        guarded.as_str()
    } else {
        raw
    };
    if cell.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&cell.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(cell);
    }
}

fn csv_row(out: &mut String, c: &CallRecord) {
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    let texts = [
        c.id.to_string(),
        format_ms(c.at),
        c.tenant_id.clone(),
        c.project_id.clone(),
        c.key_id.clone(),
        c.mode.clone(),
        c.shape.clone(),
        c.requested_model.clone(),
        opt(&c.requested_tier),
        opt(&c.delivered_model),
        opt(&c.provider),
        opt(&c.tier),
    ];
    for t in &texts {
        csv_text(out, t);
        out.push(',');
    }
    let ints = |out: &mut String, xs: &[i64]| {
        for x in xs {
            out.push_str(&x.to_string());
            out.push(',');
        }
    };
    out.push_str(if c.routed { "true," } else { "false," });
    out.push_str(if c.fallback_used { "true," } else { "false," });
    ints(out, &[c.input_tokens, c.cached_input_tokens, c.output_tokens]);
    out.push_str(if c.usage_estimated { "true," } else { "false," });
    ints(
        out,
        &[
            c.burn_tokens,
            c.savings_tokens,
            c.pass_back_tokens,
            c.uncollected_tokens,
            c.latency_ms,
            i64::from(c.status),
        ],
    );
    csv_text(out, c.error_code.as_deref().unwrap_or(""));
    out.push_str("\r\n");
}

enum Stage {
    Start,
    Rows,
    Done,
}

/// The state of a streaming export between chunks.
struct Export {
    admin: AdminService,
    filter: CallFilter,
    csv: bool,
    remaining: i64,
    after: Option<(Millis, uuid::Uuid)>,
    /// The first page, fetched before answering so that a failing database is a proper 5xx.
    prefetched: Option<Vec<CallRecord>>,
    wrote_row: bool,
    stage: Stage,
}

impl Export {
    fn page_size(&self) -> i64 {
        self.remaining.min(EXPORT_PAGE)
    }

    /// The next chunk of the body: the header with the first page, then a page per chunk, the
    /// trailer with the last.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        let mut buf = String::new();
        match self.stage {
            Stage::Done => return None,
            Stage::Start => {
                if self.csv {
                    buf.push_str(&EXPORT_COLUMNS.join(","));
                    buf.push_str("\r\n");
                } else {
                    buf.push_str("{\"success\":true,\"data\":[");
                }
                self.stage = Stage::Rows;
            }
            Stage::Rows => {}
        }
        let asked = self.page_size();
        let page = match self.prefetched.take() {
            Some(p) => p,
            None if asked > 0 => match self.admin.export_page(&self.filter, self.after, asked).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "call-log export failed midway; cutting the stream");
                    self.stage = Stage::Done;
                    return Some(Err(std::io::Error::other("export failed")));
                }
            },
            None => Vec::new(),
        };
        for c in &page {
            if self.csv {
                csv_row(&mut buf, c);
            } else {
                if self.wrote_row {
                    buf.push(',');
                }
                match serde_json::to_string(&ExportRow::from(c)) {
                    Ok(s) => buf.push_str(&s),
                    Err(e) => {
                        tracing::error!(error = %e, "serialising an exported call failed");
                        self.stage = Stage::Done;
                        return Some(Err(std::io::Error::other("export failed")));
                    }
                }
            }
            self.wrote_row = true;
        }
        self.remaining -= page.len() as i64;
        if let Some(last) = page.last() {
            self.after = Some((last.at, last.id));
        }
        if (page.len() as i64) < asked || self.remaining <= 0 {
            if !self.csv {
                buf.push_str("]}");
            }
            self.stage = Stage::Done;
        }
        Some(Ok(Bytes::from(buf)))
    }
}

#[utoipa::path(get, path = "/api/admin/commercial-levers/llm-call-log/export", tag = "admin", security(("bearer" = [])),
    params(ExportQuery),
    responses((status = 200, description = "newest first; `{success, data: [rows]}` for json, `text/csv` for csv; streamed"),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, description = "no such tenant", body = ErrorEnvelope)))]
pub async fn export_calls(
    State(state): State<AppState>,
    admin: PlatformAdmin,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let ExportPlan { filter, limit, csv } = state
        .admin
        .start_export(
            &admin.0.ctx(),
            ExportParams {
                days: q.days,
                limit: q.limit,
                tenant: q.tenant.as_deref(),
                mode: q.mode.as_deref(),
                format: q.format.as_deref(),
            },
        )
        .await?;
    let first = state.admin.export_page(&filter, None, limit.min(EXPORT_PAGE)).await?;
    let export = Export {
        admin: state.admin.clone(),
        filter,
        csv,
        remaining: limit,
        after: None,
        prefetched: Some(first),
        wrote_row: false,
        stage: Stage::Start,
    };
    let stream = futures::stream::unfold(export, |mut ex| async move { ex.next_chunk().await.map(|c| (c, ex)) });
    let mut resp = Body::from_stream(stream).into_response();
    let headers = resp.headers_mut();
    if csv {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        let date = &format_ms(now_ms())[..10];
        let disposition = format!("attachment; filename=\"tokenone-call-log-{date}.csv\"");
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
    } else {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// Runtime status

#[derive(Serialize, ToSchema)]
pub struct DatabaseStatus {
    /// `sqlite` or `postgres`.
    pub backend: String,
    pub ok: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RedisStatus {
    pub configured: bool,
    /// Answered PING.
    pub ok: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    pub name: String,
    /// Has a base URL and an API key.
    pub configured: bool,
    pub base_url: String,
    /// `closed`, `open` or `half_open`: the worst breaker among the provider's delivery paths.
    pub circuit: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouterStatus {
    pub mode: String,
    pub rollout_pct: i64,
}

#[derive(Serialize, ToSchema)]
pub struct RateLimitStatus {
    pub anthropic: u32,
    pub openai: u32,
    pub gemini: u32,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStatus {
    pub version: String,
    pub started_at: String,
    pub uptime_seconds: i64,
    pub replica_id: String,
    pub database: DatabaseStatus,
    pub redis: RedisStatus,
    pub providers: Vec<ProviderStatus>,
    pub router: RouterStatus,
    pub levers_version: i64,
    pub rate_limits: RateLimitStatus,
    pub settings_overridden: Vec<String>,
}

async fn redis_ok(state: &AppState) -> bool {
    let Some(mut conn) = state.redis.clone() else {
        return false;
    };
    let cmd = redis::cmd("PING");
    let ping = cmd.query_async::<String>(&mut conn);
    matches!(tokio::time::timeout(Duration::from_secs(1), ping).await, Ok(Ok(_)))
}

#[utoipa::path(get, path = "/api/admin/runtime-config/status", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "this replica's view; no secret values", body = RuntimeStatus),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn runtime_status(State(state): State<AppState>, _admin: PlatformAdmin) -> ApiResult<Data<RuntimeStatus>> {
    let cfg = state.cfg.get();
    let db_ok = state.store.ready().await.is_ok();
    let versions = state.admin.versions().await?;
    let (mode, rollout_pct) = state.router_mode();
    let overridden = state.admin.effective().await?.overridden;
    let now = now_ms();
    let routing = state.routing();
    let instant = std::time::Instant::now();
    let providers = PROVIDERS
        .iter()
        .map(|name| {
            let base_url = upstream::provider(&cfg, name)
                .map(|p| shown_url(&p.base_url))
                .unwrap_or_default();
            // A provider's circuit is the worst of its delivery paths' breakers.
            let circuit = routing
                .catalogue
                .iter()
                .filter(|p| p.provider == *name)
                .map(|p| state.breakers.state(&p.id, instant))
                .max_by_key(|s| match *s {
                    "open" => 2,
                    "half_open" => 1,
                    _ => 0,
                })
                .unwrap_or("closed");
            ProviderStatus {
                name: name.to_string(),
                configured: upstream::configured(&cfg, name),
                base_url,
                circuit: circuit.to_string(),
            }
        })
        .collect();
    Ok(Data(RuntimeStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: format_ms(state.started_at),
        uptime_seconds: ((now - state.started_at) / 1000).max(0),
        replica_id: state.replica_id.clone(),
        database: DatabaseStatus {
            backend: state.store.backend().to_string(),
            ok: db_ok,
        },
        redis: RedisStatus {
            configured: !state.admin.base().redis.url.is_empty(),
            ok: redis_ok(&state).await,
        },
        providers,
        router: RouterStatus {
            mode: mode.as_str().to_string(),
            rollout_pct: rollout_pct.into(),
        },
        levers_version: versions.get(LEVERS_KIND).copied().unwrap_or(0),
        rate_limits: RateLimitStatus {
            anthropic: cfg.ratelimit.anthropic_per_minute,
            openai: cfg.ratelimit.openai_per_minute,
            gemini: cfg.ratelimit.gemini_per_minute,
        },
        settings_overridden: overridden,
    }))
}

// ---------------------------------------------------------------------------------------------
// Tenants and the audit log

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDto {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub users: i64,
    pub projects: i64,
    pub balance_tokens: String,
}

#[utoipa::path(get, path = "/api/admin/tenants", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [TenantDto]), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn tenants(State(state): State<AppState>, _admin: PlatformAdmin) -> ApiResult<Data<Vec<TenantDto>>> {
    let list = state.admin.tenants().await?;
    Ok(Data(
        list.into_iter()
            .map(|t| TenantDto {
                id: t.id,
                name: t.name,
                created_at: format_ms(t.created_at),
                users: t.users,
                projects: t.projects,
                balance_tokens: t.balance_tokens.to_string(),
            })
            .collect(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// 1..=200, default 50.
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page (the last row's id).
    pub cursor: Option<String>,
    /// Only rows of this action, e.g. `settings.update`.
    pub action: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditItem {
    pub id: String,
    pub at: String,
    pub actor: Option<ActorDto>,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub old_value: Option<Value>,
    #[schema(value_type = Object)]
    pub new_value: Option<Value>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

impl From<AuditEntry> for AuditItem {
    fn from(e: AuditEntry) -> Self {
        AuditItem {
            id: e.id.to_string(),
            at: format_ms(e.at),
            actor: e.actor.map(ActorDto::from),
            action: e.action,
            target: e.target,
            old_value: e.old_value,
            new_value: e.new_value,
            reason: e.reason,
            request_id: e.request_id,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub items: Vec<AuditItem>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/admin/audit-log", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "newest first", body = AuditPage), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn audit_log(
    State(state): State<AppState>,
    _admin: PlatformAdmin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Data<AuditPage>> {
    let limit = page_limit(q.limit)?;
    let before = page_cursor(q.cursor.as_deref())?;
    let action = q.action.as_deref().filter(|a| !a.is_empty());
    let rows = state.admin.audit_log(action, before, limit + 1).await?;
    let (rows, next_cursor) = split_page(rows, limit, |r| r.id.to_string());
    let items = rows.into_iter().map(AuditItem::from).collect();
    Ok(Data(AuditPage { items, next_cursor }))
}

/// A base URL as the runtime status shows it: credentials an operator put in it (user info, a
/// query such as `?key=`) are masked.
fn shown_url(raw: &str) -> String {
    let Ok(mut u) = url::Url::parse(raw) else {
        return "(not a valid URL)".into();
    };
    if !u.username().is_empty() || u.password().is_some() {
        // Both fail only for URLs that cannot carry credentials, which then have none to hide.
        let _ = u.set_username("****");
        let _ = u.set_password(None);
    }
    if u.query().is_some() {
        u.set_query(Some("****"));
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_urls_hide_credentials() {
        assert_eq!(shown_url("https://api.openai.com/v1"), "https://api.openai.com/v1");
        assert_eq!(
            shown_url("https://user:s3cret@proxy.example/v1?key=abc"),
            "https://****@proxy.example/v1?****"
        );
        assert_eq!(shown_url("http://k:v@h/"), "http://****@h/");
        assert_eq!(shown_url("not a url with sk-123"), "(not a valid URL)");
    }

    #[test]
    fn csv_cells_are_quoted_and_guarded() {
        let cell = |s: &str| {
            let mut out = String::new();
            csv_text(&mut out, s);
            out
        };
        assert_eq!(cell("gpt-4o"), "gpt-4o");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("\tx"), "'\tx");
        assert_eq!(cell("\rx"), "\"'\rx\"");
        assert_eq!(cell("=a,\"b\""), "\"'=a,\"\"b\"\"\"");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn csv_rows_have_every_column() {
        let mut out = String::new();
        csv_row(&mut out, &CallRecord::default());
        assert_eq!(out.trim_end().split(',').count(), EXPORT_COLUMNS.len());
        assert!(out.ends_with("\r\n"));
    }

    /// The CSV writer and the JSON row list their columns separately: every CSV cell must be the
    /// JSON field of the column's name (distinct values, so a swap of two columns shows).
    #[test]
    fn csv_cells_match_the_json_fields_by_name() {
        let c = CallRecord {
            at: 1_700_000_000_123,
            tenant_id: "t-1".into(),
            project_id: "p-2".into(),
            key_id: "k-3".into(),
            mode: "live".into(),
            shape: "openai".into(),
            requested_model: "gpt-4o".into(),
            requested_tier: Some("balanced".into()),
            delivered_model: Some("gpt-4o-mini".into()),
            provider: Some("openai".into()),
            tier: None,
            routed: true,
            fallback_used: false,
            input_tokens: 11,
            cached_input_tokens: 12,
            output_tokens: 13,
            usage_estimated: true,
            burn_tokens: 14,
            savings_tokens: 15,
            pass_back_tokens: 16,
            uncollected_tokens: 17,
            latency_ms: 18,
            status: 299,
            error_code: Some("e-19".into()),
            ..CallRecord::default()
        };
        let mut out = String::new();
        csv_row(&mut out, &c);
        let cells: Vec<&str> = out.trim_end().split(',').collect();
        let json = serde_json::to_value(ExportRow::from(&c)).expect("serializes");
        assert_eq!(json.as_object().map(|o| o.len()), Some(EXPORT_COLUMNS.len()));
        for (col, cell) in EXPORT_COLUMNS.iter().zip(&cells) {
            let want = match &json[*col] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                v => v.to_string(),
            };
            assert_eq!(*cell, want, "column {col}");
        }
    }
}
