//! The money of TokenOne, as pure functions and in-memory models: the commercial levers, the
//! settlement formulas, the wallet rules and the hash-chained ledger (economics.md). No I/O.
//!
//! Every amount of wallet tokens stays within [`MAX_TOKENS`] (`i64::MAX`), so it fits the signed
//! 64-bit integer columns of both databases; every USD figure is an exact `rust_decimal::Decimal`.

pub mod ledger;
pub mod levers;
pub mod settle;
pub mod wallet;

pub use ledger::{chain_next, verify_chain, BadEntry, FirstBad, LedgerEntry, NewEntry, VerifyReport};
pub use levers::{parse_lever, BenchmarkCeilings, Ceiling, Levers, TokenUsdRate, LEVER_NAMES};
pub use settle::{price_call, reservation_tokens, topup_tokens_for_usd, Settlement, TopupError, Usage};
pub use wallet::{HoldId, Insufficient, Posting, PostingKind, SettleOutcome, Wallet, WalletError};

/// The largest amount of wallet tokens any figure may hold: a signed 64-bit column's maximum.
pub const MAX_TOKENS: u64 = i64::MAX as u64;
