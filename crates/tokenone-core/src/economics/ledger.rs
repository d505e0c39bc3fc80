//! The append-only ledger (economics.md, "Ledger"): one hash chain per tenant, each entry signed
//! with the server's ledger key, and the verification that finds the first bad entry.
//!
//! `hash = SHA-256(prev_hash || canonical)` and `signature = HMAC-SHA256(ledger key, hash)`, with
//! `prev_hash` 32 zero bytes for the genesis entry (`seq` 1). The canonical encoding (version 1)
//! is the concatenation, in this order, of:
//!
//! | field | bytes |
//! |---|---|
//! | domain tag | the string `tokenone.ledger.v1` |
//! | `id` | 16 bytes (the UUID's bytes) |
//! | `tenant_id` | 16 bytes |
//! | `seq` | u64, big-endian |
//! | `at_ms` | i64, big-endian |
//! | `kind` | string |
//! | `call_id` | `0x00`, or `0x01` and 16 bytes |
//! | `debit_account` | string |
//! | `credit_account` | string |
//! | `amount_tokens` | u64, big-endian |
//! | `memo` | string |
//!
//! where a string is its UTF-8 length as a big-endian u64, then its UTF-8 bytes. Every field is
//! fixed-width or length-prefixed, so no two different entries encode to the same bytes.

use super::wallet::{accounts, Posting};
use super::MAX_TOKENS;
use crate::ids::TenantId;
use crate::time::Millis;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `prev_hash` of a chain's first entry.
pub const GENESIS_PREV_HASH: [u8; 32] = [0; 32];

/// The head `(seq, hash)` of a chain with no entries yet: seq 0 means "no previous entry".
pub const GENESIS_HEAD: (u64, [u8; 32]) = (0, GENESIS_PREV_HASH);

const DOMAIN_TAG: &str = "tokenone.ledger.v1";

/// One row of a tenant's ledger. Rows are never updated or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub tenant_id: TenantId,
    /// 1 for the tenant's first entry, then one more per entry.
    pub seq: u64,
    pub at_ms: Millis,
    /// A posting kind (`topup`, `burn`, `pass_back`, `uncollected`).
    pub kind: String,
    pub call_id: Option<Uuid>,
    /// Loses `amount_tokens`.
    pub debit_account: String,
    /// Gains `amount_tokens`.
    pub credit_account: String,
    pub amount_tokens: u64,
    pub memo: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub signature: [u8; 32],
}

/// The fields of an entry before it is chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub at_ms: Millis,
    pub kind: String,
    pub call_id: Option<Uuid>,
    pub debit_account: String,
    pub credit_account: String,
    pub amount_tokens: u64,
    pub memo: String,
}

impl NewEntry {
    /// The entry recording `posting` of `tenant`'s wallet, with a fresh id.
    pub fn from_posting(
        tenant_id: TenantId,
        posting: &Posting,
        call_id: Option<Uuid>,
        at_ms: Millis,
        memo: impl Into<String>,
    ) -> NewEntry {
        NewEntry {
            id: crate::ids::new_uuid(),
            tenant_id,
            at_ms,
            kind: posting.kind.as_str().into(),
            call_id,
            debit_account: posting.debit_account.clone(),
            credit_account: posting.credit_account.clone(),
            amount_tokens: posting.amount,
            memo: memo.into(),
        }
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

impl LedgerEntry {
    /// This entry as a chain head `(seq, hash)`, for `chain_next`.
    pub fn head(&self) -> (u64, [u8; 32]) {
        (self.seq, self.hash)
    }

    /// The canonical encoding (module docs): every field but the three digests.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(
            160 + self.kind.len() + self.debit_account.len() + self.credit_account.len() + self.memo.len(),
        );
        put_str(&mut buf, DOMAIN_TAG);
        buf.extend_from_slice(self.id.as_bytes());
        buf.extend_from_slice(self.tenant_id.0.as_bytes());
        buf.extend_from_slice(&self.seq.to_be_bytes());
        buf.extend_from_slice(&self.at_ms.to_be_bytes());
        put_str(&mut buf, &self.kind);
        match self.call_id {
            None => buf.push(0),
            Some(call) => {
                buf.push(1);
                buf.extend_from_slice(call.as_bytes());
            }
        }
        put_str(&mut buf, &self.debit_account);
        put_str(&mut buf, &self.credit_account);
        buf.extend_from_slice(&self.amount_tokens.to_be_bytes());
        put_str(&mut buf, &self.memo);
        buf
    }

    /// `SHA-256(prev_hash || canonical)` of the entry as it stands.
    pub fn compute_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.prev_hash);
        h.update(self.canonical_bytes());
        h.finalize().into()
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

/// `HMAC-SHA256(key, hash)`.
pub fn sign(key: &[u8], hash: &[u8; 32]) -> [u8; 32] {
    let mut m = mac(key);
    m.update(hash);
    m.finalize().into_bytes().into()
}

/// Whether `signature` is the key's signature of `hash` (constant-time comparison).
pub fn signature_ok(key: &[u8], hash: &[u8; 32], signature: &[u8; 32]) -> bool {
    let mut m = mac(key);
    m.update(hash);
    m.verify_slice(signature).is_ok()
}

/// The entry that follows the chain head `(seq, hash)` (the same tenant's latest entry's seq and
/// hash; `GENESIS_HEAD`, or any seq 0, before the first), hashed and signed with `key`.
pub fn chain_next(head: (u64, [u8; 32]), entry: NewEntry, key: &[u8]) -> LedgerEntry {
    let (seq, prev_hash) = match head {
        (0, _) => (1, GENESIS_PREV_HASH),
        // A chain cannot reach 2^64 entries; were it to, the repeated seq fails verification.
        (seq, hash) => (seq.saturating_add(1), hash),
    };
    let mut e = LedgerEntry {
        id: entry.id,
        tenant_id: entry.tenant_id,
        seq,
        at_ms: entry.at_ms,
        kind: entry.kind,
        call_id: entry.call_id,
        debit_account: entry.debit_account,
        credit_account: entry.credit_account,
        amount_tokens: entry.amount_tokens,
        memo: entry.memo,
        prev_hash,
        hash: [0; 32],
        signature: [0; 32],
    };
    e.hash = e.compute_hash();
    e.signature = sign(key, &e.hash);
    e
}

/// What a verified chain holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    /// Credits minus debits of the tenant's wallet account.
    pub wallet_balance: u64,
}

/// Why an entry is bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadEntry {
    #[error("entry of another tenant in the chain")]
    OtherTenant,
    #[error("sequence number out of order (expected {expected}): a row is missing or moved")]
    Seq { expected: u64 },
    #[error("previous hash does not match the previous entry: a row is missing or moved")]
    PrevHash,
    #[error("hash does not match the entry's content: the row was edited")]
    Hash,
    #[error("signature does not verify")]
    Signature,
    #[error("wallet balance goes below zero")]
    NegativeBalance,
    #[error("wallet balance exceeds the maximum")]
    BalanceTooLarge,
    #[error("wallet balance {recorded} differs from its postings ({postings})")]
    Balance { recorded: u64, postings: u64 },
}

/// The first bad entry of a chain. A wallet balance that differs from the postings is reported
/// at the last entry's `seq` (0 for an empty chain): it is where the chain stops agreeing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger entry {seq}: {reason}")]
pub struct FirstBad {
    pub seq: u64,
    pub reason: BadEntry,
}

/// Verifies one tenant's chain, `entries` ordered by `seq` as stored: sequence, links, hashes,
/// signatures, and that the wallet never goes below zero; then, when given, that the recorded
/// wallet balance equals the postings.
pub fn verify_chain(
    entries: &[LedgerEntry],
    key: &[u8],
    expected_wallet_balance: Option<u64>,
) -> Result<VerifyReport, FirstBad> {
    let mut prev_hash = GENESIS_PREV_HASH;
    let mut balance: i128 = 0;
    let mut last_seq = 0;
    let wallet = entries.first().map(|e| accounts::wallet(e.tenant_id));
    for (i, e) in entries.iter().enumerate() {
        let bad = |reason| FirstBad { seq: e.seq, reason };
        let expected = i as u64 + 1;
        if e.tenant_id != entries[0].tenant_id {
            return Err(bad(BadEntry::OtherTenant));
        }
        if e.seq != expected {
            return Err(bad(BadEntry::Seq { expected }));
        }
        if e.prev_hash != prev_hash {
            return Err(bad(BadEntry::PrevHash));
        }
        if e.compute_hash() != e.hash {
            return Err(bad(BadEntry::Hash));
        }
        if !signature_ok(key, &e.hash, &e.signature) {
            return Err(bad(BadEntry::Signature));
        }
        if Some(&e.credit_account) == wallet.as_ref() {
            balance += i128::from(e.amount_tokens);
        }
        if Some(&e.debit_account) == wallet.as_ref() {
            balance -= i128::from(e.amount_tokens);
        }
        if balance < 0 {
            return Err(bad(BadEntry::NegativeBalance));
        }
        if balance > i128::from(MAX_TOKENS) {
            return Err(bad(BadEntry::BalanceTooLarge));
        }
        prev_hash = e.hash;
        last_seq = e.seq;
    }
    // 0 <= balance <= MAX_TOKENS, checked above for every entry.
    let postings = u64::try_from(balance).unwrap_or(u64::MAX);
    if let Some(recorded) = expected_wallet_balance {
        if recorded != postings {
            return Err(FirstBad {
                seq: last_seq,
                reason: BadEntry::Balance { recorded, postings },
            });
        }
    }
    Ok(VerifyReport {
        entries: entries.len() as u64,
        wallet_balance: postings,
    })
}

/// Lowercase hex of a digest, as the store and the API keep it.
pub fn to_hex(bytes: &[u8; 32]) -> String {
    crate::tokens::hex(bytes)
}

/// A digest from 64 hex digits (either case).
pub fn from_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::economics::wallet::{Posting, Wallet};
    use proptest::prelude::*;

    const KEY: &[u8] = b"ledger key for tests, 32 bytes!!";

    fn tenant() -> TenantId {
        TenantId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
    }

    fn entry(n: u128, posting: &Posting, call: Option<Uuid>) -> NewEntry {
        NewEntry {
            id: Uuid::from_u128(0x0190_0000_0000_7000_9000_0000_0000_0000 + n),
            call_id: call,
            ..NewEntry::from_posting(
                tenant(),
                posting,
                None,
                1_750_000_000_000 + n as i64,
                format!("entry {n}"),
            )
        }
    }

    fn head_of(last: Option<&LedgerEntry>) -> (u64, [u8; 32]) {
        last.map_or(GENESIS_HEAD, LedgerEntry::head)
    }

    /// Top-up 20000, then the first worked example (burn 10500, pass back 6102), then a call that
    /// burns 12000 of the remaining 15602, and one more top-up.
    fn chain() -> Vec<LedgerEntry> {
        let t = tenant();
        let call = |n: u128| Some(Uuid::from_u128(0xca11 + n));
        let postings = [
            (Posting::topup(t, 20_000), None),
            (Posting::burn(t, 10_500), call(1)),
            (Posting::pass_back(t, 6_102), call(1)),
            (Posting::burn(t, 12_000), call(2)),
            (Posting::topup(t, 1_000), None),
        ];
        let mut out: Vec<LedgerEntry> = Vec::new();
        for (n, (p, c)) in postings.iter().enumerate() {
            let next = chain_next(head_of(out.last()), entry(n as u128, p, *c), KEY);
            out.push(next);
        }
        out
    }

    const BALANCE: u64 = 20_000 - 10_500 + 6_102 - 12_000 + 1_000;

    /// A stored head chains exactly as the entry it stands for; seq 0 is the genesis whatever
    /// its hash.
    #[test]
    fn a_stored_head_chains_like_its_entry() {
        let c = chain();
        let next = entry(9, &Posting::topup(tenant(), 5), None);
        let from_head = chain_next((c[4].seq, c[4].hash), next.clone(), KEY);
        assert_eq!(from_head.seq, 6);
        assert_eq!(from_head.prev_hash, c[4].hash);
        let mut longer = c.clone();
        longer.push(from_head);
        assert_eq!(verify_chain(&longer, KEY, None).unwrap().entries, 6);
        let first = chain_next((0, [7; 32]), next.clone(), KEY);
        assert_eq!(first, chain_next(GENESIS_HEAD, next, KEY));
        assert_eq!((first.seq, first.prev_hash), (1, GENESIS_PREV_HASH));
    }

    #[test]
    fn a_chain_links_and_verifies() {
        let c = chain();
        assert_eq!(c[0].seq, 1);
        assert_eq!(c[0].prev_hash, GENESIS_PREV_HASH);
        for w in c.windows(2) {
            assert_eq!(w[1].seq, w[0].seq + 1);
            assert_eq!(w[1].prev_hash, w[0].hash);
        }
        assert_eq!(c[1].kind, "burn");
        assert_eq!(c[1].debit_account, accounts::wallet(tenant()));
        assert_eq!(c[1].credit_account, "platform:revenue");
        let report = verify_chain(&c, KEY, Some(BALANCE)).unwrap();
        assert_eq!(
            report,
            VerifyReport {
                entries: 5,
                wallet_balance: BALANCE
            }
        );
        assert_eq!(verify_chain(&c, KEY, None).unwrap(), report);
        assert_eq!(
            verify_chain(&[], KEY, Some(0)).unwrap(),
            VerifyReport {
                entries: 0,
                wallet_balance: 0
            }
        );
    }

    /// The encoding is pinned: a change to it breaks every stored chain, so it must be deliberate.
    #[test]
    fn canonical_encoding_is_the_documented_one() {
        let e = chain_next(
            GENESIS_HEAD,
            NewEntry {
                id: Uuid::from_u128(1),
                tenant_id: TenantId(Uuid::from_u128(2)),
                at_ms: -1,
                kind: "burn".into(),
                call_id: Some(Uuid::from_u128(3)),
                debit_account: "a".into(),
                credit_account: "bc".into(),
                amount_tokens: 258,
                memo: String::new(),
            },
            KEY,
        );
        let mut want = Vec::new();
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 18]);
        want.extend_from_slice(b"tokenone.ledger.v1");
        want.extend_from_slice(&[0; 15]);
        want.push(1); // id
        want.extend_from_slice(&[0; 15]);
        want.push(2); // tenant
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]); // seq
        want.extend_from_slice(&[0xff; 8]); // at_ms = -1
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 4]);
        want.extend_from_slice(b"burn");
        want.push(1);
        want.extend_from_slice(&[0; 15]);
        want.push(3); // call id
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(b"a");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend_from_slice(b"bc");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]); // 258
        want.extend_from_slice(&[0; 8]); // empty memo
        assert_eq!(e.canonical_bytes(), want);

        let mut hashed = GENESIS_PREV_HASH.to_vec();
        hashed.extend_from_slice(&want);
        let hash: [u8; 32] = Sha256::digest(&hashed).into();
        assert_eq!(e.hash, hash);
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(KEY).unwrap();
        m.update(&hash);
        assert_eq!(e.signature.as_slice(), m.finalize().into_bytes().as_slice());
        assert_eq!(from_hex(&to_hex(&e.hash)), Some(e.hash));
        assert_eq!(from_hex(&to_hex(&e.hash).to_uppercase()), Some(e.hash));
        assert_eq!(from_hex("00"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_hash() {
        let base = chain_next(GENESIS_HEAD, entry(0, &Posting::topup(tenant(), 1), None), KEY);
        let mut a = base.clone();
        a.debit_account = "platform:top".into();
        a.credit_account = format!("ups{}", base.credit_account);
        let mut b = base.clone();
        b.kind = "topupx".into();
        b.memo = base.memo[1..].to_string();
        let mut c = base.clone();
        c.call_id = Some(Uuid::nil());
        for edited in [a, b, c] {
            assert_ne!(edited.canonical_bytes(), base.canonical_bytes());
            assert_ne!(edited.compute_hash(), base.hash);
        }
    }

    fn bad(seq: u64, reason: BadEntry) -> Result<VerifyReport, FirstBad> {
        Err(FirstBad { seq, reason })
    }

    #[test]
    fn an_edited_field_is_found() {
        let edits: [fn(&mut LedgerEntry); 10] = [
            |e| e.amount_tokens += 1,
            |e| e.memo.push('!'),
            |e| e.kind = "topup".into(),
            |e| e.call_id = None,
            |e| e.debit_account = "platform:passback".into(),
            |e| e.credit_account = "platform:topups".into(),
            |e| e.at_ms += 1,
            |e| e.id = Uuid::nil(),
            |e| e.hash[0] ^= 1,
            |e| e.prev_hash[31] ^= 1,
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut c = chain();
            edit(&mut c[1]);
            let got = verify_chain(&c, KEY, None).unwrap_err();
            assert_eq!(got.seq, 2, "edit {i}");
            assert!(
                matches!(got.reason, BadEntry::Hash | BadEntry::PrevHash),
                "edit {i}: {got}"
            );
        }
    }

    #[test]
    fn an_edit_rehashed_without_the_key_fails_the_signature() {
        let mut c = chain();
        c[3].amount_tokens = 1;
        c[3].hash = c[3].compute_hash();
        assert_eq!(verify_chain(&c, KEY, None), bad(4, BadEntry::Signature));
        // Even re-linking the rest of the chain does not help without the key.
        for i in 4..c.len() {
            c[i].prev_hash = c[i - 1].hash;
            c[i].hash = c[i].compute_hash();
        }
        assert_eq!(verify_chain(&c, KEY, None), bad(4, BadEntry::Signature));
        // With the key it verifies again, and only the balance gives the rewrite away.
        let mut resigned: Vec<LedgerEntry> = Vec::new();
        for e in &c {
            let mut e = e.clone();
            if let Some(p) = resigned.last() {
                e.prev_hash = p.hash;
            }
            e.hash = e.compute_hash();
            e.signature = sign(KEY, &e.hash);
            resigned.push(e);
        }
        assert!(verify_chain(&resigned, KEY, None).is_ok());
        assert_eq!(
            verify_chain(&resigned, KEY, Some(BALANCE)),
            bad(
                5,
                BadEntry::Balance {
                    recorded: BALANCE,
                    postings: BALANCE + 12_000 - 1
                }
            )
        );
    }

    #[test]
    fn a_removed_row_is_found() {
        let mut c = chain();
        c.remove(2);
        assert_eq!(verify_chain(&c, KEY, None), bad(4, BadEntry::Seq { expected: 3 }));
        let mut c = chain();
        c.remove(0);
        assert_eq!(verify_chain(&c, KEY, None), bad(2, BadEntry::Seq { expected: 1 }));
        // The last row leaves no gap; the balance finds it.
        let mut c = chain();
        c.pop();
        assert!(verify_chain(&c, KEY, None).is_ok());
        assert_eq!(
            verify_chain(&c, KEY, Some(BALANCE)),
            bad(
                4,
                BadEntry::Balance {
                    recorded: BALANCE,
                    postings: BALANCE - 1_000
                }
            )
        );
    }

    #[test]
    fn a_removed_row_with_renumbered_seqs_breaks_the_links() {
        let mut c = chain();
        c.remove(2);
        for (i, e) in c.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        // Renumbered rows no longer link to their new predecessors.
        assert_eq!(verify_chain(&c, KEY, None), bad(3, BadEntry::PrevHash));
    }

    #[test]
    fn reordered_rows_are_found() {
        let mut c = chain();
        c.swap(1, 2);
        assert_eq!(verify_chain(&c, KEY, None), bad(3, BadEntry::Seq { expected: 2 }));
        // Swapping the seqs back into order leaves the links broken.
        let mut c = chain();
        c.swap(1, 2);
        c[1].seq = 2;
        c[2].seq = 3;
        assert_eq!(verify_chain(&c, KEY, None), bad(2, BadEntry::PrevHash));
    }

    #[test]
    fn a_bad_signature_is_found() {
        let mut c = chain();
        c[2].signature[7] ^= 0x80;
        assert_eq!(verify_chain(&c, KEY, None), bad(3, BadEntry::Signature));
        assert_eq!(
            verify_chain(&chain(), b"another key", None),
            bad(1, BadEntry::Signature)
        );
    }

    #[test]
    fn a_balance_that_differs_from_the_postings_is_found() {
        assert_eq!(
            verify_chain(&chain(), KEY, Some(BALANCE + 1)),
            bad(
                5,
                BadEntry::Balance {
                    recorded: BALANCE + 1,
                    postings: BALANCE
                }
            )
        );
        assert_eq!(
            verify_chain(&[], KEY, Some(5)),
            bad(
                0,
                BadEntry::Balance {
                    recorded: 5,
                    postings: 0
                }
            )
        );
    }

    #[test]
    fn a_wallet_below_zero_or_another_tenant_is_found() {
        let t = tenant();
        let first = chain_next(GENESIS_HEAD, entry(0, &Posting::topup(t, 10), None), KEY);
        let second = chain_next(first.head(), entry(1, &Posting::burn(t, 11), None), KEY);
        assert_eq!(
            verify_chain(&[first.clone(), second], KEY, None),
            bad(2, BadEntry::NegativeBalance)
        );
        let stranger = TenantId(Uuid::from_u128(99));
        let other = chain_next(
            first.head(),
            NewEntry::from_posting(stranger, &Posting::topup(stranger, 1), None, 0, ""),
            KEY,
        );
        assert_eq!(verify_chain(&[first, other], KEY, None), bad(2, BadEntry::OtherTenant));
    }

    proptest! {
        /// A ledger written from any run of wallet operations verifies, its balance is the
        /// wallet's, and any edit of any entry is found at that entry.
        #[test]
        fn wallet_postings_chain_and_verify(
            ops in prop::collection::vec((0u8..3, 1u64..10_000, 0u64..10_000), 1..40),
            victim in any::<prop::sample::Index>(),
        ) {
            let t = tenant();
            let mut w = Wallet::new(t);
            let mut ledger: Vec<LedgerEntry> = Vec::new();
            let post = |ledger: &mut Vec<LedgerEntry>, p: &Posting| {
                let next = chain_next(head_of(ledger.last()), NewEntry::from_posting(t, p, None, 0, ""), KEY);
                ledger.push(next);
            };
            for (op, a, b) in ops {
                match op {
                    0 => {
                        let p = w.topup(a).unwrap();
                        post(&mut ledger, &p);
                    }
                    1 => {
                        if let Ok(h) = w.reserve(a / 2) {
                            let out = w.settle(h, a, b.min(a)).unwrap();
                            for p in &out.postings {
                                post(&mut ledger, p);
                            }
                        }
                    }
                    _ => {
                        if let Ok(h) = w.reserve(a) {
                            w.void(h).unwrap();
                        }
                    }
                }
            }
            let report = verify_chain(&ledger, KEY, Some(w.balance())).unwrap();
            prop_assert_eq!(report.wallet_balance, w.balance());
            prop_assert_eq!(report.entries, ledger.len() as u64);
            if !ledger.is_empty() {
                let i = victim.index(ledger.len());
                ledger[i].amount_tokens ^= 1;
                let got = verify_chain(&ledger, KEY, None).unwrap_err();
                prop_assert_eq!(got, FirstBad { seq: i as u64 + 1, reason: BadEntry::Hash });
            }
        }
    }
}
