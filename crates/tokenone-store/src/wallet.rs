//! Wallets, leases, the ledger and roll-ups. Every movement of money is one transaction that
//! writes the ledger entries and the balances together; the ledger head row of a tenant is the
//! lock that orders its chain across replicas.

use crate::{db_err, rows, Backend, SqlStore};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Transaction;
use std::collections::BTreeMap;
use tokenone_core::economics::ledger::{chain_next, from_hex, to_hex, GENESIS_PREV_HASH};
use tokenone_core::economics::{LedgerEntry, NewEntry, Posting};
use tokenone_core::ids::TenantId;
use tokenone_core::model::{Settled, TopupOutcome, TopupRequest, WalletRow};
use tokenone_core::repo::WalletRepo;
use tokenone_core::time::Millis;
use tokenone_core::{Error, Result};

type Tx<'a> = Transaction<'a, sqlx::Any>;

pub(crate) fn entry(r: &AnyRow) -> Result<LedgerEntry> {
    let hex = |col: &str| -> Result<[u8; 32]> {
        let s: String = rows::get(r, col)?;
        from_hex(&s).ok_or_else(|| Error::internal(anyhow::anyhow!("ledger column {col} is not a 32-byte hex digest")))
    };
    Ok(LedgerEntry {
        id: rows::parse(r, "id")?,
        tenant_id: rows::parse(r, "tenant_id")?,
        seq: rows::get::<i64>(r, "seq")?.max(0) as u64,
        at_ms: rows::get(r, "at")?,
        kind: rows::get(r, "kind")?,
        call_id: rows::parse_opt(r, "call_id")?,
        debit_account: rows::get(r, "debit_account")?,
        credit_account: rows::get(r, "credit_account")?,
        amount_tokens: rows::get::<i64>(r, "amount_tokens")?.max(0) as u64,
        memo: rows::get(r, "memo")?,
        prev_hash: hex("prev_hash")?,
        hash: hex("hash")?,
        signature: hex("signature")?,
    })
}

/// Locks the tenant's chain head (creating it) and returns the last (seq, hash). One statement:
/// the no-op `DO UPDATE` takes the row lock on PostgreSQL (a concurrent appender waits for this
/// transaction, then reads the head it left); SQLite's single writer serialises anyway.
async fn lock_head(tx: &mut Tx<'_>, tenant: TenantId) -> Result<(u64, [u8; 32])> {
    let r = sqlx::query(
        "INSERT INTO ledger_heads (tenant_id, seq, hash) VALUES ($1, 0, $2)
         ON CONFLICT (tenant_id) DO UPDATE SET seq = ledger_heads.seq RETURNING seq, hash",
    )
    .bind(tenant.to_string())
    .bind(to_hex(&GENESIS_PREV_HASH))
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err)?;
    let seq = rows::get::<i64>(&r, "seq")?.max(0) as u64;
    let hash: String = rows::get(&r, "hash")?;
    let hash = from_hex(&hash).ok_or_else(|| Error::internal(anyhow::anyhow!("bad ledger head hash")))?;
    Ok((seq, hash))
}

async fn save_head(tx: &mut Tx<'_>, tenant: TenantId, head: (u64, [u8; 32])) -> Result<()> {
    sqlx::query("UPDATE ledger_heads SET seq = $2, hash = $3 WHERE tenant_id = $1")
        .bind(tenant.to_string())
        .bind(head.0 as i64)
        .bind(to_hex(&head.1))
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn day_of(ms: Millis) -> String {
    tokenone_core::time::format_ms(ms)[..10].to_string()
}

const CALL_COLUMNS: &str = "id, at, tenant_id, project_id, key_id, mode, shape, requested_model, requested_tier,
    needed_tier, delivered_model, provider, tier, routed, fallback_used, reasons, shadow_pick, stream, input_tokens,
    cached_input_tokens, output_tokens, usage_estimated, burn_tokens, savings_tokens, pass_back_tokens,
    uncollected_tokens, latency_ms, status, error_code, shadow_savings_tokens";
const CALL_COLS: usize = 30;
const LEDGER_COLS: usize = 13;

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_call<'q>(q: AnyQuery<'q>, c: &tokenone_core::model::CallRecord) -> Result<AnyQuery<'q>> {
    Ok(q.bind(c.id.to_string())
        .bind(c.at)
        .bind(c.tenant_id.clone())
        .bind(c.project_id.clone())
        .bind(c.key_id.clone())
        .bind(c.mode.clone())
        .bind(c.shape.clone())
        .bind(c.requested_model.clone())
        .bind(c.requested_tier.clone())
        .bind(c.needed_tier.clone())
        .bind(c.delivered_model.clone())
        .bind(c.provider.clone())
        .bind(c.tier.clone())
        .bind(c.routed as i64)
        .bind(c.fallback_used as i64)
        .bind(serde_json::to_string(&c.reasons).map_err(Error::internal)?)
        .bind(c.shadow_pick.clone())
        .bind(c.stream as i64)
        .bind(c.input_tokens)
        .bind(c.cached_input_tokens)
        .bind(c.output_tokens)
        .bind(c.usage_estimated as i64)
        .bind(c.burn_tokens)
        .bind(c.savings_tokens)
        .bind(c.pass_back_tokens)
        .bind(c.uncollected_tokens)
        .bind(c.latency_ms)
        .bind(c.status as i64)
        .bind(c.error_code.clone())
        .bind(c.shadow_savings_tokens))
}

fn bind_entry<'q>(q: AnyQuery<'q>, e: &LedgerEntry) -> AnyQuery<'q> {
    q.bind(e.id.to_string())
        .bind(e.tenant_id.to_string())
        .bind(e.seq as i64)
        .bind(e.at_ms)
        .bind(e.kind.clone())
        .bind(e.call_id.map(|c| c.to_string()))
        .bind(e.debit_account.clone())
        .bind(e.credit_account.clone())
        .bind(e.amount_tokens as i64)
        .bind(e.memo.clone())
        .bind(to_hex(&e.prev_hash))
        .bind(to_hex(&e.hash))
        .bind(to_hex(&e.signature))
}

/// One roll-up row's increments.
#[derive(Default)]
struct RollupDelta {
    calls: i64,
    routed: i64,
    shadow: i64,
    input: i64,
    output: i64,
    burn: i64,
    savings: i64,
    shadow_savings: i64,
    pass_back: i64,
    uncollected: i64,
}

/// The call writer's batch: see `CallRepo::settle_calls`. Few statements per batch, however
/// many calls: call rows and ledger entries go in multi-row inserts, and wallet, lease and
/// roll-up movements are summed per row and applied once, the wallets last (their row locks
/// are what a replica extending a lease waits for).
pub(crate) async fn settle_calls(store: &SqlStore, batch: &[Settled], key: &[u8]) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    if !settle_batch(store, batch, key, Fresh::Assumed).await? {
        // Some calls were already written (a retry after a commit whose answer was lost): the
        // transaction was rolled back; write again, skipping those calls and their money.
        settle_batch(store, batch, key, Fresh::Returned).await?;
    }
    Ok(())
}

/// How the writer learns which calls of a batch are new.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fresh {
    /// All of them, checked by the inserted-row count (the usual case: no rows come back, so on
    /// SQLite no message per row crosses from its worker thread).
    Assumed,
    /// The ids the insert returns.
    Returned,
}

/// One attempt at a batch: `true` when it is written; `false` (rolled back) only when
/// `Fresh::Assumed` found a call already written.
async fn settle_batch(store: &SqlStore, batch: &[Settled], key: &[u8], how: Fresh) -> Result<bool> {
    let mut tx = store.w().begin().await.map_err(db_err)?;
    // 1. The call rows; the ids that were new (a retried batch finds its calls written, with
    //    their money: those are skipped entirely).
    let mut fresh: std::collections::HashSet<String> = std::collections::HashSet::new();
    for chunk in crate::row_chunks(batch) {
        let returning = if how == Fresh::Returned { " RETURNING id" } else { "" };
        let sql = format!(
            "INSERT INTO calls ({CALL_COLUMNS}) VALUES {} ON CONFLICT (id) DO NOTHING{returning}",
            crate::values(store.kind(), chunk.len(), CALL_COLS)
        );
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = bind_call(q, &s.record)?;
        }
        match how {
            Fresh::Assumed => {
                let done = q.execute(&mut *tx).await.map_err(db_err)?;
                if done.rows_affected() != chunk.len() as u64 {
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(false);
                }
            }
            Fresh::Returned => {
                for r in q.fetch_all(&mut *tx).await.map_err(db_err)? {
                    fresh.insert(rows::get::<String>(&r, "id")?);
                }
            }
        }
    }
    let new_calls: Vec<&Settled> = match how {
        Fresh::Assumed => batch.iter().collect(),
        Fresh::Returned => batch
            .iter()
            .filter(|s| fresh.contains(&s.record.id.to_string()))
            .collect(),
    };
    // 2. Ledger postings, chained per tenant (heads locked in a fixed order).
    let mut by_tenant: BTreeMap<String, Vec<&Settled>> = BTreeMap::new();
    for s in &new_calls {
        if s.money.as_ref().is_some_and(|m| !m.postings.is_empty()) {
            by_tenant.entry(s.record.tenant_id.clone()).or_default().push(s);
        }
    }
    let mut entries: Vec<LedgerEntry> = Vec::new();
    for (tenant, calls) in &by_tenant {
        let t: TenantId = tenant
            .parse()
            .map_err(|_| Error::internal(anyhow::anyhow!("bad tenant id")))?;
        let mut head = lock_head(&mut tx, t).await?;
        let new: Vec<NewEntry> = calls
            .iter()
            .flat_map(|s| {
                let c = &s.record;
                s.money
                    .iter()
                    .flat_map(|m| m.postings.iter())
                    .map(move |p| NewEntry::from_posting(t, p, Some(c.id), c.at, ""))
            })
            .collect();
        entries.extend(chain(&mut head, new, key));
        save_head(&mut tx, t, head).await?;
    }
    insert_entries(store.kind(), &mut tx, &entries).await?;
    // 3. Roll-ups, one upsert per row touched.
    let mut rollups: BTreeMap<(String, String, String, String, String, String), RollupDelta> = BTreeMap::new();
    for s in &new_calls {
        let c = &s.record;
        if !c.delivered() {
            continue;
        }
        let k = (
            c.tenant_id.clone(),
            c.project_id.clone(),
            day_of(c.at),
            c.mode.clone(),
            c.requested_model.clone(),
            c.delivered_model.clone().unwrap_or_default(),
        );
        let d = rollups.entry(k).or_default();
        d.calls += 1;
        d.routed += c.routed as i64;
        d.shadow += c.shadow_pick.is_some() as i64;
        d.input += c.input_tokens;
        d.output += c.output_tokens;
        d.burn += c.burn_tokens;
        d.savings += c.savings_tokens;
        d.shadow_savings += c.shadow_savings_tokens;
        d.pass_back += c.pass_back_tokens;
        d.uncollected += c.uncollected_tokens;
    }
    for (k, d) in &rollups {
        rollup(&mut tx, k, d).await?;
    }
    // 4. Leases and wallets, summed, wallets last.
    let mut leases: BTreeMap<String, i64> = BTreeMap::new();
    let mut wallets: BTreeMap<String, (i64, i64, Millis)> = BTreeMap::new();
    for s in &new_calls {
        if let Some(m) = &s.money {
            *leases.entry(m.lease_id.to_string()).or_default() += m.debited as i64;
            let w = wallets.entry(s.record.tenant_id.clone()).or_insert((0, 0, 0));
            w.0 += m.debited as i64;
            w.1 += m.credited as i64;
            w.2 = w.2.max(s.record.at);
        }
    }
    for (lease, debited) in &leases {
        sqlx::query("UPDATE wallet_leases SET consumed = consumed + $2 WHERE id = $1")
            .bind(lease.clone())
            .bind(*debited)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    for (tenant, (debited, credited, at)) in &wallets {
        sqlx::query(
            "UPDATE wallets SET balance_tokens = balance_tokens - $2 + $3, leased_tokens = leased_tokens - $2, updated_at = $4
             WHERE tenant_id = $1",
        )
        .bind(tenant.clone())
        .bind(*debited)
        .bind(*credited)
        .bind(*at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(true)
}

/// Chains `new` onto `head` (advancing it) and signs each entry.
fn chain(head: &mut (u64, [u8; 32]), new: Vec<NewEntry>, key: &[u8]) -> Vec<LedgerEntry> {
    new.into_iter()
        .map(|n| {
            let e = chain_next(*head, n, key);
            *head = (e.seq, e.hash);
            e
        })
        .collect()
}

/// Inserts chained entries, many per statement.
async fn insert_entries(backend: Backend, tx: &mut Tx<'_>, entries: &[LedgerEntry]) -> Result<()> {
    for chunk in crate::row_chunks(entries) {
        let sql = format!(
            "INSERT INTO ledger_entries (id, tenant_id, seq, at, kind, call_id, debit_account, credit_account,
             amount_tokens, memo, prev_hash, hash, signature) VALUES {}",
            crate::values(backend, chunk.len(), LEDGER_COLS)
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = bind_entry(q, e);
        }
        q.execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}

async fn rollup(tx: &mut Tx<'_>, k: &(String, String, String, String, String, String), d: &RollupDelta) -> Result<()> {
    sqlx::query(
        "INSERT INTO rollups_daily (tenant_id, project_id, day, mode, requested_model, delivered_model, calls, routed_calls,
         shadow_calls, input_tokens, output_tokens, burn_tokens, savings_tokens, shadow_savings_tokens, pass_back_tokens,
         uncollected_tokens)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (tenant_id, project_id, day, mode, requested_model, delivered_model) DO UPDATE SET
           calls = rollups_daily.calls + excluded.calls,
           routed_calls = rollups_daily.routed_calls + excluded.routed_calls,
           shadow_calls = rollups_daily.shadow_calls + excluded.shadow_calls,
           input_tokens = rollups_daily.input_tokens + excluded.input_tokens,
           output_tokens = rollups_daily.output_tokens + excluded.output_tokens,
           burn_tokens = rollups_daily.burn_tokens + excluded.burn_tokens,
           savings_tokens = rollups_daily.savings_tokens + excluded.savings_tokens,
           shadow_savings_tokens = rollups_daily.shadow_savings_tokens + excluded.shadow_savings_tokens,
           pass_back_tokens = rollups_daily.pass_back_tokens + excluded.pass_back_tokens,
           uncollected_tokens = rollups_daily.uncollected_tokens + excluded.uncollected_tokens",
    )
    .bind(k.0.clone())
    .bind(k.1.clone())
    .bind(k.2.clone())
    .bind(k.3.clone())
    .bind(k.4.clone())
    .bind(k.5.clone())
    .bind(d.calls)
    .bind(d.routed)
    .bind(d.shadow)
    .bind(d.input)
    .bind(d.output)
    .bind(d.burn)
    .bind(d.savings)
    .bind(d.shadow_savings)
    .bind(d.pass_back)
    .bind(d.uncollected)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn wallet_row(r: &AnyRow) -> Result<WalletRow> {
    Ok(WalletRow {
        tenant_id: rows::parse(r, "tenant_id")?,
        balance_tokens: rows::get(r, "balance_tokens")?,
        leased_tokens: rows::get(r, "leased_tokens")?,
        updated_at: rows::get(r, "updated_at")?,
    })
}

#[async_trait]
impl WalletRepo for SqlStore {
    async fn wallet(&self, tenant: TenantId) -> Result<Option<WalletRow>> {
        sqlx::query("SELECT * FROM wallets WHERE tenant_id = $1")
            .bind(tenant.to_string())
            .fetch_optional(self.r())
            .await
            .map_err(db_err)?
            .map(|r| wallet_row(&r))
            .transpose()
    }

    async fn extend_lease(
        &self,
        tenant: TenantId,
        lease: uuid::Uuid,
        replica: &str,
        amount: u64,
        now: Millis,
        expires_at: Millis,
    ) -> Result<bool> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        // Rows are locked lease first, wallet second, as the call writer, `return_lease` and the
        // sweeper do: the opposite order deadlocked against the writer on PostgreSQL (each waited
        // for the other's row until the deadlock detector aborted one a second later).
        sqlx::query(
            "INSERT INTO wallet_leases (id, tenant_id, replica_id, amount, created_at, expires_at) VALUES ($1, $2, $3, 0, $4, $5)
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(lease.to_string())
        .bind(tenant.to_string())
        .bind(replica.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // The check and the carve are one conditional update: concurrent replicas cannot both
        // take the last tokens. When it takes nothing, dropping `tx` rolls the lease row back.
        let took = sqlx::query(
            "UPDATE wallets SET leased_tokens = leased_tokens + $2, updated_at = $3
             WHERE tenant_id = $1 AND balance_tokens - leased_tokens >= $2",
        )
        .bind(tenant.to_string())
        .bind(amount as i64)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if took != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE wallet_leases SET amount = amount + $2 WHERE id = $1")
            .bind(lease.to_string())
            .bind(amount as i64)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn return_lease(&self, tenant: TenantId, lease: uuid::Uuid, amount: u64, now: Millis) -> Result<()> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        // Only what the lease row still holds can be returned (a swept lease holds nothing).
        let row = sqlx::query(
            "SELECT amount - consumed - returned AS open FROM wallet_leases WHERE id = $1 AND released_at IS NULL",
        )
        .bind(lease.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let open = match row {
            Some(r) => rows::get::<i64>(&r, "open")?.max(0) as u64,
            None => 0,
        };
        let amount = amount.min(open) as i64;
        if amount > 0 {
            sqlx::query("UPDATE wallet_leases SET returned = returned + $2 WHERE id = $1")
                .bind(lease.to_string())
                .bind(amount)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query("UPDATE wallets SET leased_tokens = leased_tokens - $2, updated_at = $3 WHERE tenant_id = $1")
                .bind(tenant.to_string())
                .bind(amount)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn renew_leases(&self, replica: &str, expires_at: Millis) -> Result<()> {
        sqlx::query("UPDATE wallet_leases SET expires_at = $2 WHERE replica_id = $1 AND released_at IS NULL")
            .bind(replica.to_string())
            .bind(expires_at)
            .execute(self.w())
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn sweep_leases(&self, now: Millis) -> Result<u64> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        let expired = sqlx::query(
            "SELECT id, tenant_id, amount - consumed - returned AS open FROM wallet_leases
             WHERE released_at IS NULL AND expires_at < $1",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut released = 0u64;
        for r in &expired {
            let id: String = rows::get(r, "id")?;
            let tenant: String = rows::get(r, "tenant_id")?;
            let open = rows::get::<i64>(r, "open")?.max(0);
            let marked = sqlx::query(
                "UPDATE wallet_leases SET released_at = $2, returned = returned + $3 WHERE id = $1 AND released_at IS NULL",
            )
            .bind(id)
            .bind(now)
            .bind(open)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            if marked == 1 && open > 0 {
                sqlx::query(
                    "UPDATE wallets SET leased_tokens = leased_tokens - $2, updated_at = $3 WHERE tenant_id = $1",
                )
                .bind(tenant)
                .bind(open)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                released += open as u64;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(released)
    }

    async fn topup(
        &self,
        req: &TopupRequest,
        key: &[u8],
        answer: &(dyn Fn(uuid::Uuid, u64, i64) -> serde_json::Value + Send + Sync),
    ) -> Result<TopupOutcome> {
        let mut tx = self.w().begin().await.map_err(db_err)?;
        // The key row is written first, in the same transaction as the credit: of concurrent
        // duplicates exactly one inserts it (PostgreSQL makes the others wait on the unique index).
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (key, scope, request_hash, response, created_at) VALUES ($1, 'topup', $2, '', $3)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(req.idempotency_key.clone())
        .bind(req.request_hash.clone())
        .bind(req.at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if inserted == 0 {
            let r = sqlx::query("SELECT request_hash, response FROM idempotency_keys WHERE key = $1")
                .bind(req.idempotency_key.clone())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            let hash: String = rows::get(&r, "request_hash")?;
            if hash != req.request_hash {
                return Ok(TopupOutcome::KeyReused);
            }
            let response: String = rows::get(&r, "response")?;
            let v = serde_json::from_str(&response).map_err(Error::internal)?;
            return Ok(TopupOutcome::Replayed(v));
        }
        let mut head = lock_head(&mut tx, req.tenant_id).await?;
        let posting = Posting::topup(req.tenant_id, req.amount_tokens);
        let new = vec![NewEntry::from_posting(
            req.tenant_id,
            &posting,
            None,
            req.at,
            req.memo.clone(),
        )];
        let mut entries = chain(&mut head, new, key);
        insert_entries(self.kind(), &mut tx, &entries).await?;
        save_head(&mut tx, req.tenant_id, head).await?;
        let updated = sqlx::query(
            "UPDATE wallets SET balance_tokens = balance_tokens + $2, updated_at = $3 WHERE tenant_id = $1 RETURNING balance_tokens",
        )
        .bind(req.tenant_id.to_string())
        .bind(req.amount_tokens as i64)
        .bind(req.at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(updated) = updated else {
            return Err(Error::not_found("tenant"));
        };
        let balance: i64 = rows::get(&updated, "balance_tokens")?;
        let entry = entries
            .pop()
            .ok_or_else(|| Error::internal(anyhow::anyhow!("no ledger entry")))?;
        let response = answer(entry.id, entry.seq, balance);
        // Stored before commit: a concurrent duplicate that waited on the key sees the answer.
        sqlx::query("UPDATE idempotency_keys SET response = $2 WHERE key = $1")
            .bind(req.idempotency_key.clone())
            .bind(response.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(TopupOutcome::Applied(response))
    }

    async fn ledger_page(&self, tenant: TenantId, before_seq: Option<u64>, limit: i64) -> Result<Vec<LedgerEntry>> {
        sqlx::query("SELECT * FROM ledger_entries WHERE tenant_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3")
            .bind(tenant.to_string())
            .bind(before_seq.map(|s| s as i64).unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(entry)
            .collect()
    }

    async fn ledger_chain(&self, tenant: TenantId) -> Result<Vec<LedgerEntry>> {
        // Ordered as stored (insertion order), so a reordered `seq` shows up in verification.
        sqlx::query("SELECT * FROM ledger_entries WHERE tenant_id = $1 ORDER BY seq")
            .bind(tenant.to_string())
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(entry)
            .collect()
    }

    async fn wallet_tenants(&self) -> Result<Vec<TenantId>> {
        sqlx::query("SELECT tenant_id FROM wallets ORDER BY tenant_id")
            .fetch_all(self.r())
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| rows::parse(r, "tenant_id"))
            .collect()
    }
}
