//! Money outside the proxy: wallet balances, the ledger, idempotent top-ups and verification.

use super::audit;
use crate::economics::ledger::verify_chain;
use crate::economics::{topup_tokens_for_usd, LedgerEntry, Levers, MAX_TOKENS};
use crate::ids::TenantId;
use crate::model::{Ctx, TopupOutcome, TopupRequest, User, WalletRow};
use crate::repo::Store;
use crate::roles::TenantRole;
use crate::time::now_ms;
use crate::tokens::sha256_hex;
use crate::{validate, Error, Result};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::Arc;

/// A top-up as asked: exactly one of `usd` / `tokens`.
pub struct Topup {
    pub usd: Option<String>,
    pub tokens: Option<String>,
    pub reason: String,
    pub idempotency_key: String,
}

/// The first bad entry `verify` found.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FirstBadEntry {
    pub tenant_id: String,
    pub seq: u64,
    pub reason: String,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResult {
    pub ok: bool,
    pub tenants_checked: u64,
    pub entries_checked: u64,
    pub first_bad: Option<FirstBadEntry>,
}

#[derive(Clone)]
pub struct LedgerService {
    store: Arc<dyn Store>,
    key: Arc<Vec<u8>>,
}

impl LedgerService {
    pub fn new(store: Arc<dyn Store>, ledger_key: Vec<u8>) -> Self {
        LedgerService {
            store,
            key: Arc::new(ledger_key),
        }
    }

    pub async fn wallet(&self, tenant: TenantId) -> Result<WalletRow> {
        self.store
            .wallet(tenant)
            .await?
            .ok_or_else(|| Error::not_found("wallet"))
    }

    /// A page of the caller's tenant ledger; tenant owners and admins only.
    pub async fn page(&self, user: &User, before_seq: Option<u64>, limit: i64) -> Result<Vec<LedgerEntry>> {
        if user.tenant_role == TenantRole::Member {
            return Err(Error::forbidden("the ledger is for the tenant's owners and admins"));
        }
        self.store.ledger_page(user.tenant_id, before_seq, limit).await
    }

    /// The balance in USD at the top-up rate.
    pub fn usd_equivalent(w: &WalletRow, levers: &Levers) -> Decimal {
        (Decimal::from(w.balance_tokens) * levers.token_usd_rate.topup_usd_per_token).normalize()
    }

    /// `POST /api/admin/wallets/:tenantId/topup`. The same key with the same body replays the
    /// first answer; with another body it is 409; concurrent duplicates credit once.
    pub async fn topup(&self, ctx: &Ctx, tenant: TenantId, t: Topup, levers: &Levers) -> Result<Value> {
        validate::text("reason", t.reason.trim(), 3, 500)?;
        validate::text("idempotencyKey", &t.idempotency_key, 1, 200)?;
        let amount = match (&t.usd, &t.tokens) {
            (Some(usd), None) => {
                let usd = Decimal::from_str(usd.trim())
                    .map_err(|_| Error::invalid("`usd` must be a decimal string such as \"10.00\""))?;
                if usd <= Decimal::ZERO {
                    return Err(Error::invalid("`usd` must be greater than zero"));
                }
                topup_tokens_for_usd(usd, levers).map_err(|e| Error::invalid(format!("`usd`: {e}")))?
            }
            (None, Some(tokens)) => {
                let n: u64 = tokens
                    .trim()
                    .parse()
                    .map_err(|_| Error::invalid("`tokens` must be a positive integer string"))?;
                n
            }
            _ => return Err(Error::invalid("give exactly one of `usd` and `tokens`")),
        };
        if amount == 0 || amount > MAX_TOKENS {
            return Err(Error::invalid(
                "the top-up must be at least 1 and at most 9223372036854775807 tokens",
            ));
        }
        if self.store.tenant(tenant).await?.is_none() {
            return Err(Error::not_found("tenant"));
        }
        let canonical = json!({
            "tenantId": tenant.to_string(), "usd": t.usd, "tokens": t.tokens, "reason": t.reason,
        });
        let req = TopupRequest {
            tenant_id: tenant,
            amount_tokens: amount,
            idempotency_key: format!("topup:{}", t.idempotency_key),
            request_hash: sha256_hex(&canonical.to_string()),
            memo: t.reason.chars().take(500).collect(),
            at: now_ms(),
        };
        let key = t.idempotency_key.clone();
        let answer = move |entry_id: uuid::Uuid, seq: u64, balance: i64| {
            json!({
                "tenantId": tenant.to_string(),
                "creditedTokens": amount.to_string(),
                "balanceTokens": balance.to_string(),
                "ledgerEntryId": entry_id.to_string(),
                "seq": seq.to_string(),
                "idempotencyKey": key,
            })
        };
        match self.store.topup(&req, &self.key, &answer).await? {
            TopupOutcome::Replayed(v) => Ok(v),
            TopupOutcome::KeyReused => Err(Error::conflict("this idempotency key was used for a different top-up")),
            TopupOutcome::Applied(answer) => {
                audit(
                    &self.store,
                    ctx,
                    "wallet.topup",
                    format!("tenant:{tenant}"),
                    None,
                    Some(json!({"tokens": amount.to_string()})),
                    Some(t.reason.clone()),
                )
                .await?;
                Ok(answer)
            }
        }
    }

    /// Recomputes every chain and signature and checks each wallet against its postings.
    pub async fn verify(&self) -> Result<VerifyResult> {
        let mut result = VerifyResult {
            ok: true,
            tenants_checked: 0,
            entries_checked: 0,
            first_bad: None,
        };
        for tenant in self.store.wallet_tenants().await? {
            let chain = self.store.ledger_chain(tenant).await?;
            let wallet = self.store.wallet(tenant).await?;
            let expected = wallet.map(|w| w.balance_tokens.max(0) as u64);
            result.tenants_checked += 1;
            match verify_chain(&chain, &self.key, expected) {
                Ok(r) => result.entries_checked += r.entries,
                Err(bad) => {
                    result.entries_checked += chain.len() as u64;
                    result.ok = false;
                    result.first_bad = Some(FirstBadEntry {
                        tenant_id: tenant.to_string(),
                        seq: bad.seq,
                        reason: bad.reason.to_string(),
                    });
                    return Ok(result);
                }
            }
        }
        Ok(result)
    }
}
