//! Master key rotation (`tokenone vault rotate`): every sealed value at rest is re-wrapped under
//! the vault's current key. Only the wrapped data keys change, and each replacement is a
//! compare-and-swap, so servers keep reading and writing while it runs.

use crate::repo::Store;
use crate::vault::{Vault, VaultError};
use crate::Result;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct RewrapReport {
    /// Sealed values found.
    pub records: usize,
    /// Values re-wrapped by this run.
    pub rewrapped: usize,
    /// `table:key` of values no key of the vault opens (left untouched).
    pub unreadable: Vec<String>,
    /// Sealed values per master key id after the run.
    pub by_key: BTreeMap<String, usize>,
}

/// Checks that every sealed value opens with the vault's keys; the `table:key` of those that do
/// not.
pub async fn unreadable(store: &dyn Store, vault: &Vault) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    for r in store.sealed_records().await? {
        match Vault::key_id_of(&r.blob) {
            Some(kid) if vault.knows(&kid) && vault.rewrap(&r.blob).is_ok() => {}
            _ => bad.push(format!("{}:{}", r.table, r.key)),
        }
    }
    Ok(bad)
}

/// Re-wraps every sealed value under the vault's current key. Values written or changed
/// concurrently are picked up by further passes (at most five).
pub async fn rewrap_all(store: &dyn Store, vault: &Vault) -> Result<RewrapReport> {
    let current = vault.current_key_id();
    let mut report = RewrapReport::default();
    for _pass in 0..5 {
        let mut pending = 0;
        report.unreadable.clear();
        for r in store.sealed_records().await? {
            if Vault::key_id_of(&r.blob).as_deref() == Some(current.as_str()) {
                continue;
            }
            let new = match vault.rewrap(&r.blob) {
                Ok(b) => b,
                Err(
                    VaultError::UnknownKey | VaultError::Tampered | VaultError::Malformed | VaultError::BadMasterKey,
                ) => {
                    report.unreadable.push(format!("{}:{}", r.table, r.key));
                    continue;
                }
            };
            if store.replace_sealed(&r, &new).await? {
                report.rewrapped += 1;
            } else {
                pending += 1;
            }
        }
        if pending == 0 {
            break;
        }
    }
    let all = store.sealed_records().await?;
    report.records = all.len();
    for r in &all {
        let kid = Vault::key_id_of(&r.blob).unwrap_or_default();
        *report.by_key.entry(kid).or_default() += 1;
    }
    Ok(report)
}
