//! The wallet on the hot path: balance leases. A replica carves a slice of a tenant's available
//! balance out of the database in one atomic conditional update (`extend_lease`) and makes
//! per-call reservations against it in memory, so a call costs no database round trip unless its
//! lease runs short. Settlement debits the lease (at most what it holds: the rest is
//! uncollected), the call writer persists it with the ledger postings in one transaction, and
//! unused lease goes back when the tenant goes idle or the replica stops. Leases of a replica
//! that died expire and are released by the sweeper, so nobody pays for unrecorded work.
//!
//! Invariant: every token a replica may debit was first added to `wallets.leased_tokens` by a
//! conditional update that kept `leased_tokens <= balance_tokens`; so no number of replicas can
//! overdraw a wallet.

use super::live::LiveConfig;
use crate::economics::{Posting, MAX_TOKENS};
use crate::ids::TenantId;
use crate::model::LiveSettlement;
use crate::repo::WalletRepo;
use crate::time::now_ms;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A lease is extended by this many reservations at a time while the balance allows, so a busy
/// tenant touches the database about once per this many calls (about once a second at a few
/// hundred calls per second). Near the end of a balance the extension falls back to exactly the
/// shortfall, and an idle lease goes back after a few seconds, so a large slice strands nothing.
const LEASE_CALLS: u64 = 256;
/// A tenant that needs a new slice within a second of the last one gets twice as many
/// reservations next time, up to this many ("sized to recent spend", operations.md): at a few
/// thousand calls per second the database is touched every second or two, not every 80 ms.
const MAX_LEASE_CALLS: u64 = 4096;

/// A reservation against this replica's lease of a tenant's balance.
#[derive(Debug)]
pub struct Hold {
    pub tenant: TenantId,
    pub lease: uuid::Uuid,
    pub amount: u64,
}

struct Local {
    lease: uuid::Uuid,
    /// Leased tokens not yet debited or returned.
    granted: u64,
    /// Of `granted`, reserved by calls in flight.
    held: u64,
    last_used: Instant,
    /// Reservations the next extension leases ahead ([`LEASE_CALLS`]..=[`MAX_LEASE_CALLS`]).
    ahead_calls: u64,
    last_extended: Option<Instant>,
}

pub struct WalletService {
    store: Arc<dyn WalletRepo>,
    replica: String,
    cfg: LiveConfig,
    local: Mutex<HashMap<TenantId, Local>>,
    /// One lease extension at a time per tenant on this replica.
    extending: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

impl WalletService {
    pub fn new(store: Arc<dyn WalletRepo>, replica: String, cfg: LiveConfig) -> Self {
        WalletService {
            store,
            replica,
            cfg,
            local: Mutex::new(HashMap::new()),
            extending: Mutex::new(HashMap::new()),
        }
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Local>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ttl_ms(&self) -> i64 {
        self.cfg.get().wallet.reservation_ttl_seconds.max(1) as i64 * 1000
    }

    /// Reserves `amount` if this replica's lease covers it.
    fn try_hold(&self, tenant: TenantId, amount: u64) -> std::result::Result<Hold, u64> {
        let mut map = self.locked();
        let l = map.entry(tenant).or_insert_with(|| Local {
            lease: uuid::Uuid::now_v7(),
            granted: 0,
            held: 0,
            last_used: Instant::now(),
            ahead_calls: LEASE_CALLS,
            last_extended: None,
        });
        l.last_used = Instant::now();
        let free = l.granted.saturating_sub(l.held);
        if free >= amount {
            l.held += amount;
            Ok(Hold {
                tenant,
                lease: l.lease,
                amount,
            })
        } else {
            Err(amount - free)
        }
    }

    fn lease_id(&self, tenant: TenantId) -> uuid::Uuid {
        self.locked()
            .get(&tenant)
            .map(|l| l.lease)
            .unwrap_or_else(uuid::Uuid::now_v7)
    }

    /// Carves `amount` more out of the database into this replica's lease.
    async fn extend(&self, tenant: TenantId, amount: u64) -> Result<bool> {
        if amount == 0 || amount > MAX_TOKENS {
            return Ok(amount == 0);
        }
        let lease = self.lease_id(tenant);
        let now = now_ms();
        let ok = self
            .store
            .extend_lease(tenant, lease, &self.replica, amount, now, now + self.ttl_ms())
            .await?;
        if ok {
            if let Some(l) = self.locked().get_mut(&tenant) {
                l.granted += amount;
            }
        }
        Ok(ok)
    }

    /// How many reservations to lease ahead now: doubled while extensions come within a second
    /// of each other, back to the minimum after ten quiet seconds.
    fn ahead_calls(&self, tenant: TenantId) -> u64 {
        let mut map = self.locked();
        let Some(l) = map.get_mut(&tenant) else {
            return LEASE_CALLS;
        };
        let now = Instant::now();
        l.ahead_calls = match l.last_extended.map(|t| now.duration_since(t)) {
            Some(d) if d < Duration::from_secs(1) => (l.ahead_calls * 2).min(MAX_LEASE_CALLS),
            Some(d) if d > Duration::from_secs(10) => LEASE_CALLS,
            _ => l.ahead_calls,
        };
        l.last_extended = Some(now);
        l.ahead_calls
    }

    fn extension_lock(&self, tenant: TenantId) -> Arc<tokio::sync::Mutex<()>> {
        self.extending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant)
            .or_default()
            .clone()
    }

    /// Holds `amount` wallet tokens for a call, or `InsufficientFunds` when the wallet's
    /// available balance (across all replicas) cannot cover it.
    pub async fn reserve(&self, tenant: TenantId, amount: u64) -> Result<Hold> {
        if let Ok(h) = self.try_hold(tenant, amount) {
            return Ok(h);
        }
        let lock = self.extension_lock(tenant);
        let _guard = lock.lock().await;
        let shortfall = match self.try_hold(tenant, amount) {
            Ok(h) => return Ok(h),
            Err(s) => s,
        };
        // Lease ahead for the next calls while the balance allows; near the end, exactly what
        // this call lacks (so the last tokens are not stranded in a slice too big to carve).
        let ahead = amount.saturating_mul(self.ahead_calls(tenant)).max(shortfall);
        let mut got = false;
        if ahead > shortfall {
            got = self.extend(tenant, ahead).await?;
        }
        if !got {
            got = self.extend(tenant, shortfall).await?;
        }
        if !got {
            return Err(Error::InsufficientFunds(
                "the wallet balance cannot cover this call".into(),
            ));
        }
        self.try_hold(tenant, amount)
            .map_err(|_| Error::InsufficientFunds("the wallet balance cannot cover this call".into()))
    }

    /// Releases a hold without debiting anything (the call delivered nothing).
    pub fn void(&self, hold: Hold) {
        if let Some(l) = self.locked().get_mut(&hold.tenant) {
            l.held = l.held.saturating_sub(hold.amount);
        }
    }

    /// Settles a hold: releases it, debits `burn` from the lease (at most what the lease can
    /// get: the rest is uncollected), credits `pass_back`. Returns the postings for the ledger.
    pub async fn settle(&self, hold: Hold, burn: u64, pass_back: u64) -> LiveSettlement {
        let tenant = hold.tenant;
        let lease = hold.lease;
        let need_more = {
            let mut map = self.locked();
            match map.get_mut(&tenant) {
                Some(l) => {
                    l.held = l.held.saturating_sub(hold.amount);
                    // Tokens held for other calls stay theirs.
                    burn.saturating_sub(l.granted.saturating_sub(l.held))
                }
                None => burn,
            }
        };
        if need_more > 0 {
            let lock = self.extension_lock(tenant);
            let _guard = lock.lock().await;
            if let Err(e) = self.extend(tenant, need_more).await {
                tracing::warn!(error = %e, "could not extend a lease at settlement; the shortfall is uncollected");
            }
        }
        let debited = {
            let mut map = self.locked();
            match map.get_mut(&tenant) {
                Some(l) => {
                    let d = burn.min(l.granted.saturating_sub(l.held));
                    l.granted -= d;
                    d
                }
                None => 0,
            }
        };
        let uncollected = burn - debited;
        let mut postings = Vec::new();
        if debited > 0 {
            postings.push(Posting::burn(tenant, debited));
        }
        if uncollected > 0 {
            postings.push(Posting::uncollected(tenant, uncollected));
        }
        if pass_back > 0 {
            postings.push(Posting::pass_back(tenant, pass_back));
        }
        LiveSettlement {
            lease_id: lease,
            postings,
            debited,
            credited: pass_back,
        }
    }

    /// Gives back the lease of tenants idle for `idle` with nothing in flight.
    pub async fn return_idle(&self, idle: Duration) {
        let giving: Vec<(TenantId, uuid::Uuid, u64)> = {
            let mut map = self.locked();
            map.iter_mut()
                .filter(|(_, l)| l.held == 0 && l.granted > 0 && l.last_used.elapsed() >= idle)
                .map(|(t, l)| {
                    let amount = std::mem::take(&mut l.granted);
                    (*t, l.lease, amount)
                })
                .collect()
        };
        for (tenant, lease, amount) in giving {
            if let Err(e) = self.store.return_lease(tenant, lease, amount, now_ms()).await {
                // Not lost: the lease expires and the sweeper releases it.
                tracing::warn!(error = %e, "returning a lease failed");
            }
        }
    }

    /// Gives back every unheld lease (shutdown, after in-flight calls settled).
    pub async fn return_all(&self) {
        self.return_idle(Duration::ZERO).await;
    }

    /// Keeps this replica's leases alive.
    pub async fn renew(&self) -> Result<()> {
        self.store.renew_leases(&self.replica, now_ms() + self.ttl_ms()).await
    }

    /// Releases leases that expired (their replica died).
    pub async fn sweep(&self) -> Result<u64> {
        self.store.sweep_leases(now_ms()).await
    }
}

#[cfg(test)]
mod tests {
    //! The lease logic against an in-memory wallet table, under random interleavings of
    //! reserve / settle / void on two replicas: no overdraft, leases never exceed the balance,
    //! and once everything is settled and returned the balance equals its movements.

    use super::*;
    use crate::config::Config;
    use crate::economics::{LedgerEntry, PostingKind};
    use crate::model::{TopupOutcome, TopupRequest, WalletRow};
    use async_trait::async_trait;
    use proptest::prelude::*;

    #[derive(Default)]
    struct Table {
        balance: i64,
        leased: i64,
    }

    #[derive(Default)]
    struct FakeRepo(Mutex<Table>);

    impl FakeRepo {
        fn get(&self) -> (i64, i64) {
            let t = self.0.lock().unwrap();
            (t.balance, t.leased)
        }
        /// What the call writer does with a settlement.
        fn apply(&self, s: &LiveSettlement) {
            let mut t = self.0.lock().unwrap();
            t.balance = t.balance - s.debited as i64 + s.credited as i64;
            t.leased -= s.debited as i64;
            assert!(t.balance >= 0, "overdraft: {}", t.balance);
            assert!(
                t.leased >= 0 && t.leased <= t.balance,
                "leased {} of {}",
                t.leased,
                t.balance
            );
        }
    }

    #[async_trait]
    impl WalletRepo for FakeRepo {
        async fn wallet(&self, _t: TenantId) -> Result<Option<WalletRow>> {
            Ok(None)
        }
        async fn extend_lease(
            &self,
            _t: TenantId,
            _l: uuid::Uuid,
            _r: &str,
            amount: u64,
            _n: i64,
            _e: i64,
        ) -> Result<bool> {
            let mut t = self.0.lock().unwrap();
            if t.balance - t.leased >= amount as i64 {
                t.leased += amount as i64;
                Ok(true)
            } else {
                Ok(false)
            }
        }
        async fn return_lease(&self, _t: TenantId, _l: uuid::Uuid, amount: u64, _n: i64) -> Result<()> {
            let mut t = self.0.lock().unwrap();
            t.leased -= amount as i64;
            assert!(t.leased >= 0);
            Ok(())
        }
        async fn renew_leases(&self, _r: &str, _e: i64) -> Result<()> {
            Ok(())
        }
        async fn sweep_leases(&self, _n: i64) -> Result<u64> {
            Ok(0)
        }
        async fn topup(
            &self,
            _r: &TopupRequest,
            _k: &[u8],
            _a: &(dyn Fn(uuid::Uuid, u64, i64) -> serde_json::Value + Send + Sync),
        ) -> Result<TopupOutcome> {
            Err(Error::invalid("not in this fake"))
        }
        async fn ledger_page(&self, _t: TenantId, _b: Option<u64>, _l: i64) -> Result<Vec<LedgerEntry>> {
            Ok(vec![])
        }
        async fn ledger_chain(&self, _t: TenantId) -> Result<Vec<LedgerEntry>> {
            Ok(vec![])
        }
        async fn wallet_tenants(&self) -> Result<Vec<TenantId>> {
            Ok(vec![])
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Reserve { replica: usize, amount: u64 },
        Settle { nth: usize, burn: u64, pass_back: u64 },
        Void { nth: usize },
        ReturnIdle { replica: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..2usize, 1..400u64).prop_map(|(replica, amount)| Op::Reserve { replica, amount }),
            (0..8usize, 0..600u64, 0..50u64).prop_map(|(nth, burn, pass_back)| Op::Settle { nth, burn, pass_back }),
            (0..8usize).prop_map(|nth| Op::Void { nth }),
            (0..2usize).prop_map(|replica| Op::ReturnIdle { replica }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn leases_never_overdraw(initial in 0..3000i64, ops in proptest::collection::vec(op(), 1..60)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let repo = Arc::new(FakeRepo(Mutex::new(Table { balance: initial, leased: 0 })));
                let cfg = LiveConfig::new(Config::default());
                let replicas = [
                    WalletService::new(repo.clone(), "a".into(), cfg.clone()),
                    WalletService::new(repo.clone(), "b".into(), cfg),
                ];
                let tenant = TenantId::new();
                let mut holds: Vec<(usize, Hold)> = Vec::new();
                let (mut debited, mut credited) = (0i64, 0i64);
                for op in ops {
                    match op {
                        Op::Reserve { replica, amount } => {
                            if let Ok(h) = replicas[replica].reserve(tenant, amount).await {
                                holds.push((replica, h));
                            }
                        }
                        Op::Settle { nth, burn, pass_back } if !holds.is_empty() => {
                            let (r, h) = holds.remove(nth % holds.len());
                            let s = replicas[r].settle(h, burn, pass_back).await;
                            assert_eq!(s.debited + s.postings.iter().filter(|p| p.kind == PostingKind::Uncollected).map(|p| p.amount).sum::<u64>(), burn);
                            repo.apply(&s);
                            debited += s.debited as i64;
                            credited += s.credited as i64;
                        }
                        Op::Void { nth } if !holds.is_empty() => {
                            let (r, h) = holds.remove(nth % holds.len());
                            replicas[r].void(h);
                        }
                        Op::ReturnIdle { replica } => replicas[replica].return_idle(std::time::Duration::ZERO).await,
                        _ => {}
                    }
                    let (balance, leased) = repo.get();
                    assert!(balance >= 0 && leased >= 0 && leased <= balance, "balance {balance}, leased {leased}");
                }
                for (r, h) in holds.drain(..) {
                    replicas[r].void(h);
                }
                for r in &replicas {
                    r.return_all().await;
                }
                let (balance, leased) = repo.get();
                assert_eq!(leased, 0, "every lease returned");
                assert_eq!(balance, initial - debited + credited, "balance equals its movements");
            });
        }
    }
}
