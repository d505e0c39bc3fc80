//! The wallet rules (economics.md, "Wallet") as an in-memory model: reserve before delivery,
//! settle exactly once after it, void abandoned holds; and the double-entry postings each money
//! movement produces. The server's lease logic and the property tests share it.

use super::MAX_TOKENS;
use crate::ids::TenantId;
use std::collections::BTreeMap;
use std::fmt;

/// Ledger account names.
pub mod accounts {
    use crate::ids::TenantId;

    pub const REVENUE: &str = "platform:revenue";
    pub const TOPUPS: &str = "platform:topups";
    pub const PASSBACK: &str = "platform:passback";

    pub fn wallet(tenant: TenantId) -> String {
        format!("tenant:{tenant}:wallet")
    }
    pub fn receivable(tenant: TenantId) -> String {
        format!("tenant:{tenant}:receivable")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostingKind {
    Topup,
    Burn,
    PassBack,
    Uncollected,
}

impl PostingKind {
    /// The `kind` of the ledger entry.
    pub fn as_str(self) -> &'static str {
        match self {
            PostingKind::Topup => "topup",
            PostingKind::Burn => "burn",
            PostingKind::PassBack => "pass_back",
            PostingKind::Uncollected => "uncollected",
        }
    }
}

impl fmt::Display for PostingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One double-entry movement: `amount` leaves `debit_account` (its balance goes down) and enters
/// `credit_account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub kind: PostingKind,
    pub debit_account: String,
    pub credit_account: String,
    pub amount: u64,
}

impl Posting {
    /// Top-up: the platform's top-ups account pays the wallet.
    pub fn topup(tenant: TenantId, amount: u64) -> Posting {
        Posting {
            kind: PostingKind::Topup,
            debit_account: accounts::TOPUPS.into(),
            credit_account: accounts::wallet(tenant),
            amount,
        }
    }
    /// Burn: the wallet pays the platform's revenue.
    pub fn burn(tenant: TenantId, amount: u64) -> Posting {
        Posting {
            kind: PostingKind::Burn,
            debit_account: accounts::wallet(tenant),
            credit_account: accounts::REVENUE.into(),
            amount,
        }
    }
    /// Pass-back: the platform's pass-back account pays the wallet.
    pub fn pass_back(tenant: TenantId, amount: u64) -> Posting {
        Posting {
            kind: PostingKind::PassBack,
            debit_account: accounts::PASSBACK.into(),
            credit_account: accounts::wallet(tenant),
            amount,
        }
    }
    /// Uncollected burn: the tenant's receivable owes the platform's revenue.
    pub fn uncollected(tenant: TenantId, amount: u64) -> Posting {
        Posting {
            kind: PostingKind::Uncollected,
            debit_account: accounts::receivable(tenant),
            credit_account: accounts::REVENUE.into(),
            amount,
        }
    }
}

/// Credits minus debits of `account` over `postings`.
pub fn account_balance<'a>(postings: impl IntoIterator<Item = &'a Posting>, account: &str) -> i128 {
    postings.into_iter().fold(0i128, |sum, p| {
        let mut sum = sum;
        if p.credit_account == account {
            sum += i128::from(p.amount);
        }
        if p.debit_account == account {
            sum -= i128::from(p.amount);
        }
        sum
    })
}

/// A reservation on a wallet. Ids are issued in increasing order and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HoldId(pub u64);

/// A reservation the available balance cannot cover (402 `insufficient_funds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("insufficient funds: {available} tokens available, {requested} requested")]
pub struct Insufficient {
    pub available: u64,
    pub requested: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// This wallet never issued the hold.
    #[error("unknown hold")]
    UnknownHold,
    /// The hold was already settled or voided: a call settles exactly once.
    #[error("hold already settled or voided")]
    Closed,
    /// The operation would take the balance past [`MAX_TOKENS`].
    #[error("balance would exceed the maximum")]
    Overflow,
    /// A top-up of nothing.
    #[error("amount must be greater than zero")]
    ZeroAmount,
}

/// What settling a hold did to the wallet, and the postings that record it (zero amounts are not
/// posted). The balance moved by `credited - debited`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleOutcome {
    /// The part of the burn the balance covered.
    pub debited: u64,
    /// The part it did not (posted to the tenant's receivable).
    pub uncollected: u64,
    /// The pass-back.
    pub credited: u64,
    pub postings: Vec<Posting>,
}

/// One tenant's wallet: a balance and the open holds against it. The balance is never negative
/// (the type cannot be) and never above [`MAX_TOKENS`]; `reserved` is the sum of open holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    tenant: TenantId,
    balance: u64,
    reserved: u64,
    holds: BTreeMap<HoldId, u64>,
    next_hold: u64,
}

impl Wallet {
    /// An empty wallet.
    pub fn new(tenant: TenantId) -> Wallet {
        Wallet::with_balance(tenant, 0)
    }

    /// A wallet whose balance is already recorded elsewhere (loaded from the store, or a lease
    /// carved out of it); capped at [`MAX_TOKENS`].
    pub fn with_balance(tenant: TenantId, balance: u64) -> Wallet {
        Wallet {
            tenant,
            balance: balance.min(MAX_TOKENS),
            reserved: 0,
            holds: BTreeMap::new(),
            next_hold: 1,
        }
    }

    pub fn tenant(&self) -> TenantId {
        self.tenant
    }
    pub fn balance(&self) -> u64 {
        self.balance
    }
    /// Sum of the open holds. A settlement that debits more than its own hold can leave this
    /// above the balance; `available` is then zero.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }
    pub fn available(&self) -> u64 {
        self.balance.saturating_sub(self.reserved)
    }
    /// The amount of an open hold.
    pub fn hold(&self, hold: HoldId) -> Option<u64> {
        self.holds.get(&hold).copied()
    }
    pub fn open_holds(&self) -> usize {
        self.holds.len()
    }

    /// Credits `amount` to the wallet.
    pub fn topup(&mut self, amount: u64) -> Result<Posting, WalletError> {
        if amount == 0 {
            return Err(WalletError::ZeroAmount);
        }
        let balance = self
            .balance
            .checked_add(amount)
            .filter(|&b| b <= MAX_TOKENS)
            .ok_or(WalletError::Overflow)?;
        self.balance = balance;
        Ok(Posting::topup(self.tenant, amount))
    }

    /// Holds `amount` for a call, or refuses it when `balance - reserved < amount`; the check
    /// and the hold are one step (`&mut self`).
    pub fn reserve(&mut self, amount: u64) -> Result<HoldId, Insufficient> {
        let available = self.available();
        if available < amount {
            return Err(Insufficient {
                available,
                requested: amount,
            });
        }
        let id = HoldId(self.next_hold);
        // available >= amount, so reserved + amount <= balance <= MAX_TOKENS; and a wallet
        // cannot issue 2^64 holds.
        self.reserved += amount;
        self.next_hold += 1;
        self.holds.insert(id, amount);
        Ok(id)
    }

    /// Why `hold` is not open.
    fn not_open(&self, hold: HoldId) -> WalletError {
        if hold.0 > 0 && hold.0 < self.next_hold {
            WalletError::Closed
        } else {
            WalletError::UnknownHold
        }
    }

    /// Closes an open hold and releases its amount.
    fn release(&mut self, hold: HoldId) -> Result<u64, WalletError> {
        let amount = self.holds.remove(&hold).ok_or_else(|| self.not_open(hold))?;
        // An open hold's amount is part of `reserved`.
        self.reserved -= amount;
        Ok(amount)
    }

    /// Settles a delivered call, once: releases the hold, debits `burn` (at most what the balance
    /// holds beyond the other calls' holds — tokens held for other calls stay theirs, as in the
    /// lease service; the shortfall is uncollected), then credits `pass_back`. A second settle or
    /// void of the same hold is `Closed` and changes nothing.
    pub fn settle(&mut self, hold: HoldId, burn: u64, pass_back: u64) -> Result<SettleOutcome, WalletError> {
        let Some(&amount) = self.holds.get(&hold) else {
            return Err(self.not_open(hold));
        };
        let others = self.reserved - amount;
        let debited = burn.min(self.balance.saturating_sub(others));
        let uncollected = burn - debited;
        let balance = (self.balance - debited)
            .checked_add(pass_back)
            .filter(|&b| b <= MAX_TOKENS)
            .ok_or(WalletError::Overflow)?;
        self.release(hold)?;
        self.balance = balance;
        let postings = [
            Posting::burn(self.tenant, debited),
            Posting::uncollected(self.tenant, uncollected),
            Posting::pass_back(self.tenant, pass_back),
        ]
        .into_iter()
        .filter(|p| p.amount > 0)
        .collect();
        Ok(SettleOutcome {
            debited,
            uncollected,
            credited: pass_back,
            postings,
        })
    }

    /// Releases a hold without moving money: a call that delivered nothing, or one whose hold
    /// outlived `wallet.reservation_ttl_seconds`.
    pub fn void(&mut self, hold: HoldId) -> Result<(), WalletError> {
        self.release(hold).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tenant() -> TenantId {
        TenantId(uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
    }

    #[test]
    fn account_names() {
        let t = tenant();
        assert_eq!(
            accounts::wallet(t),
            "tenant:01900000-0000-7000-8000-000000000001:wallet"
        );
        assert_eq!(
            accounts::receivable(t),
            "tenant:01900000-0000-7000-8000-000000000001:receivable"
        );
    }

    #[test]
    fn reserve_settle_void() {
        let mut w = Wallet::new(tenant());
        assert_eq!(
            w.reserve(1),
            Err(Insufficient {
                available: 0,
                requested: 1
            })
        );
        // A zero reservation always fits.
        let zero = w.reserve(0).unwrap();
        w.void(zero).unwrap();
        assert_eq!(w.topup(0), Err(WalletError::ZeroAmount));
        assert_eq!(w.topup(20_000).unwrap(), Posting::topup(tenant(), 20_000));

        let a = w.reserve(10_500).unwrap();
        assert_eq!((w.balance(), w.reserved(), w.available()), (20_000, 10_500, 9_500));
        assert_eq!(
            w.reserve(9_501),
            Err(Insufficient {
                available: 9_500,
                requested: 9_501
            })
        );
        let b = w.reserve(9_500).unwrap();
        assert_eq!(w.available(), 0);

        // The first worked example: burn 10500, pass back 6102.
        let out = w.settle(a, 10_500, 6_102).unwrap();
        assert_eq!((out.debited, out.uncollected, out.credited), (10_500, 0, 6_102));
        assert_eq!(
            out.postings,
            vec![Posting::burn(tenant(), 10_500), Posting::pass_back(tenant(), 6_102)]
        );
        assert_eq!((w.balance(), w.reserved(), w.available()), (15_602, 9_500, 6_102));

        // Exactly once: settle or void again is refused and changes nothing.
        let before = w.clone();
        assert_eq!(w.settle(a, 10_500, 6_102), Err(WalletError::Closed));
        assert_eq!(w.void(a), Err(WalletError::Closed));
        assert_eq!(w, before);

        // A call that delivered nothing releases its hold.
        w.void(b).unwrap();
        assert_eq!(w.settle(b, 1, 0), Err(WalletError::Closed));
        assert_eq!(w.settle(HoldId(99), 1, 0), Err(WalletError::UnknownHold));
        assert_eq!(w.void(HoldId(0)), Err(WalletError::UnknownHold));
        assert_eq!((w.balance(), w.reserved(), w.open_holds()), (15_602, 0, 0));
    }

    #[test]
    fn a_burn_beyond_the_balance_is_uncollected() {
        let mut w = Wallet::with_balance(tenant(), 100);
        let a = w.reserve(60).unwrap();
        let b = w.reserve(40).unwrap();
        // The call ran longer than its reservation: burn 150 of a balance of 100, of which 40
        // are held for the other call and stay its own.
        let out = w.settle(a, 150, 30).unwrap();
        assert_eq!((out.debited, out.uncollected, out.credited), (60, 90, 30));
        assert_eq!(
            out.postings,
            vec![
                Posting::burn(tenant(), 60),
                Posting::uncollected(tenant(), 90),
                Posting::pass_back(tenant(), 30)
            ]
        );
        // The balance moved by -(150 - 90) + 30; the other hold is still covered.
        assert_eq!((w.balance(), w.reserved(), w.available()), (70, 40, 30));
        let out = w.settle(b, 80, 0).unwrap();
        assert_eq!((out.debited, out.uncollected), (70, 10));
        assert_eq!(w.balance(), 0);
    }

    #[test]
    fn overflow_is_refused_without_effect() {
        let mut w = Wallet::with_balance(tenant(), u64::MAX);
        assert_eq!(w.balance(), MAX_TOKENS);
        assert_eq!(w.topup(1), Err(WalletError::Overflow));
        let h = w.reserve(5).unwrap();
        let before = w.clone();
        assert_eq!(w.settle(h, 0, 1), Err(WalletError::Overflow));
        assert_eq!(w, before);
        w.settle(h, 1, 1).unwrap();
        assert_eq!(w.balance(), MAX_TOKENS);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Topup(u64),
        Reserve(u64),
        Settle(usize, u64, u64),
        Void(usize),
    }

    /// Mostly modest amounts, sometimes absurd ones, so both ordinary flows and the edges run.
    fn amount() -> impl Strategy<Value = u64> {
        prop_oneof![8 => 0u64..5_000, 1 => Just(MAX_TOKENS), 1 => any::<u64>()]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => amount().prop_map(Op::Topup),
            3 => amount().prop_map(Op::Reserve),
            3 => (any::<usize>(), amount(), amount()).prop_map(|(i, b, p)| Op::Settle(i, b, p)),
            1 => any::<usize>().prop_map(Op::Void),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any interleaving of top-ups, reservations, settlements (double ones included) and voids:
        /// no overdraft, holds only within the available balance, each hold closed at most once,
        /// and the balance always equal to the wallet's postings.
        #[test]
        fn wallet_rules_hold_under_any_interleaving(ops in prop::collection::vec(op(), 0..60)) {
            let t = tenant();
            let account = accounts::wallet(t);
            let mut w = Wallet::new(t);
            let mut postings: Vec<Posting> = Vec::new();
            // Every hold issued, with whether it is still open.
            let mut issued: Vec<(HoldId, u64, bool)> = Vec::new();
            for op in ops {
                let before = w.clone();
                match op {
                    Op::Topup(amount) => match w.topup(amount) {
                        Ok(p) => {
                            prop_assert_eq!(w.balance(), before.balance() + amount);
                            postings.push(p);
                        }
                        Err(_) => prop_assert_eq!(&w, &before),
                    },
                    Op::Reserve(amount) => match w.reserve(amount) {
                        Ok(id) => {
                            prop_assert!(amount <= before.available());
                            prop_assert!(w.reserved() <= w.balance());
                            prop_assert!(issued.iter().all(|(h, _, _)| *h != id));
                            issued.push((id, amount, true));
                        }
                        Err(e) => {
                            prop_assert!(amount > before.available());
                            prop_assert_eq!(e.available, before.available());
                            prop_assert_eq!(&w, &before);
                        }
                    },
                    Op::Settle(i, burn, pass_back) => {
                        let Some(&(id, _, open)) = issued.get(i % issued.len().max(1)) else { continue };
                        match w.settle(id, burn, pass_back) {
                            Ok(out) => {
                                prop_assert!(open, "a hold settled twice");
                                issued.iter_mut().find(|h| h.0 == id).unwrap().2 = false;
                                prop_assert_eq!(out.debited + out.uncollected, burn);
                                let others = before.reserved() - before.hold(id).unwrap_or(0);
                                prop_assert_eq!(out.debited, burn.min(before.balance() - others));
                                prop_assert_eq!(out.credited, pass_back);
                                prop_assert_eq!(w.balance(), before.balance() - out.debited + pass_back);
                                postings.extend(out.postings);
                            }
                            Err(WalletError::Closed) => {
                                prop_assert!(!open);
                                prop_assert_eq!(&w, &before);
                            }
                            Err(e) => {
                                prop_assert_eq!(e, WalletError::Overflow);
                                prop_assert_eq!(&w, &before);
                            }
                        }
                    }
                    Op::Void(i) => {
                        let Some(&(id, _, open)) = issued.get(i % issued.len().max(1)) else { continue };
                        match w.void(id) {
                            Ok(()) => {
                                prop_assert!(open);
                                issued.iter_mut().find(|h| h.0 == id).unwrap().2 = false;
                                prop_assert_eq!(w.balance(), before.balance());
                            }
                            Err(e) => {
                                prop_assert_eq!(e, WalletError::Closed);
                                prop_assert!(!open);
                                prop_assert_eq!(&w, &before);
                            }
                        }
                    }
                }
                prop_assert!(w.balance() <= MAX_TOKENS);
                prop_assert!(w.reserved() <= w.balance(), "holds are always covered");
                prop_assert_eq!(w.reserved(), issued.iter().filter(|h| h.2).map(|h| h.1).sum::<u64>());
                prop_assert_eq!(i128::from(w.balance()), account_balance(&postings, &account));
                prop_assert!(postings.iter().all(|p| p.amount > 0 && p.debit_account != p.credit_account));
            }
        }
    }
}
