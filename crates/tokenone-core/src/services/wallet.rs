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
use crate::repo::Store;
use crate::time::now_ms;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A lease is extended by this many reservations at a time while the balance allows, so a busy
/// tenant touches the database about once per this many calls.
const LEASE_CALLS: u64 = 8;

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
}

pub struct WalletService {
    store: Arc<dyn Store>,
    replica: String,
    cfg: LiveConfig,
    local: Mutex<HashMap<TenantId, Local>>,
    /// One lease extension at a time per tenant on this replica.
    extending: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

impl WalletService {
    pub fn new(store: Arc<dyn Store>, replica: String, cfg: LiveConfig) -> Self {
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
        let ahead = amount.saturating_mul(LEASE_CALLS).max(shortfall);
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
