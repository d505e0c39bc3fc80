//! The wallet: balance, ledger, top-ups and ledger verification.

use crate::dto::ErrorEnvelope;
use crate::error::{ApiResult, Data};
use crate::extract::{
    page_cursor, page_limit, parse_id, split_page, ApiJson, ApiQuery, AuthUser, PageQuery, PlatformAdmin,
};
use crate::state::AppState;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use tokenone_core::economics::ledger::to_hex;
use tokenone_core::economics::LedgerEntry;
use tokenone_core::ids::TenantId;
use tokenone_core::services::ledger::{LedgerService, Topup, VerifyResult};
use tokenone_core::time::format_ms;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceDto {
    pub tenant_id: String,
    pub balance_tokens: String,
    /// Set aside for calls in flight (leased by replicas).
    pub reserved_tokens: String,
    pub available_tokens: String,
    /// The balance at `topupUsdPerToken`.
    pub usd_equivalent: String,
    pub updated_at: String,
}

#[utoipa::path(get, path = "/api/wallet/balance", tag = "wallet", security(("bearer" = [])),
    responses((status = 200, body = BalanceDto), (status = 401, body = ErrorEnvelope)))]
pub async fn balance(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Data<BalanceDto>> {
    let w = state.ledger.wallet(auth.user.tenant_id).await?;
    let usd = LedgerService::usd_equivalent(&w, &state.levers());
    Ok(Data(BalanceDto {
        tenant_id: w.tenant_id.to_string(),
        balance_tokens: w.balance_tokens.to_string(),
        reserved_tokens: w.leased_tokens.to_string(),
        available_tokens: (w.balance_tokens - w.leased_tokens).max(0).to_string(),
        usd_equivalent: usd.to_string(),
        updated_at: format_ms(w.updated_at),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntryDto {
    pub id: String,
    pub tenant_id: String,
    pub seq: String,
    pub at: String,
    pub kind: String,
    pub call_id: Option<String>,
    pub debit_account: String,
    pub credit_account: String,
    pub amount_tokens: String,
    pub memo: String,
    pub prev_hash: String,
    pub hash: String,
    pub signature: String,
}

impl From<&LedgerEntry> for LedgerEntryDto {
    fn from(e: &LedgerEntry) -> Self {
        LedgerEntryDto {
            id: e.id.to_string(),
            tenant_id: e.tenant_id.to_string(),
            seq: e.seq.to_string(),
            at: format_ms(e.at_ms),
            kind: e.kind.clone(),
            call_id: e.call_id.map(|c| c.to_string()),
            debit_account: e.debit_account.clone(),
            credit_account: e.credit_account.clone(),
            amount_tokens: e.amount_tokens.to_string(),
            memo: e.memo.clone(),
            prev_hash: to_hex(&e.prev_hash),
            hash: to_hex(&e.hash),
            signature: to_hex(&e.signature),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerPage {
    pub items: Vec<LedgerEntryDto>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/wallet/ledger", tag = "wallet", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "newest first", body = LedgerPage), (status = 403, description = "tenant owner/admin only", body = ErrorEnvelope)))]
pub async fn ledger(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Data<LedgerPage>> {
    let limit = page_limit(q.limit)?;
    let before = page_cursor::<u64>(q.cursor.as_deref())?;
    let entries = state.ledger.page(&auth.user, before, limit + 1).await?;
    let (entries, next_cursor) = split_page(entries, limit, |e| e.seq.to_string());
    let items = entries.iter().map(LedgerEntryDto::from).collect();
    Ok(Data(LedgerPage { items, next_cursor }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TopupBody {
    /// USD as a decimal string, converted at `topupUsdPerToken` (rounded down).
    pub usd: Option<String>,
    /// Wallet tokens as an integer string.
    pub tokens: Option<String>,
    pub reason: String,
    pub idempotency_key: String,
}

#[utoipa::path(post, path = "/api/admin/wallets/{tenantId}/topup", tag = "admin", security(("bearer" = [])),
    params(("tenantId" = String, Path, description = "tenant id")), request_body = TopupBody,
    responses((status = 200, description = "credited (or the first answer replayed for the same key and body)"),
              (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "the key was used with another body", body = ErrorEnvelope)))]
pub async fn topup(
    State(state): State<AppState>,
    admin: PlatformAdmin,
    Path(tenant): Path<String>,
    ApiJson(b): ApiJson<TopupBody>,
) -> ApiResult<Data<serde_json::Value>> {
    let tenant: TenantId = parse_id(&tenant, "tenant")?;
    let t = Topup {
        usd: b.usd,
        tokens: b.tokens,
        reason: b.reason,
        idempotency_key: b.idempotency_key,
    };
    let answer = state.ledger.topup(&admin.0.ctx(), tenant, t, &state.levers()).await?;
    Ok(Data(answer))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyDto {
    pub ok: bool,
    pub tenants_checked: u64,
    pub entries_checked: u64,
    #[schema(value_type = Option<Object>)]
    pub first_bad: Option<serde_json::Value>,
}

#[utoipa::path(get, path = "/api/admin/ledger/verify", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = VerifyDto), (status = 403, body = ErrorEnvelope)))]
pub async fn verify(State(state): State<AppState>, _admin: PlatformAdmin) -> ApiResult<Data<VerifyDto>> {
    let VerifyResult {
        ok,
        tenants_checked,
        entries_checked,
        first_bad,
    } = state.ledger.verify().await?;
    let first_bad = first_bad.map(|b| serde_json::to_value(b).unwrap_or_default());
    Ok(Data(VerifyDto {
        ok,
        tenants_checked,
        entries_checked,
        first_bad,
    }))
}
