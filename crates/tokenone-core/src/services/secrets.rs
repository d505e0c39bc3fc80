//! Server secrets generated on first start (JWT signing key, API-key pepper, ledger key), kept
//! sealed by the vault in the database so that every replica and every restart shares them.

use crate::repo::Store;
use crate::vault::Vault;
use crate::{Error, Result};
use rand::RngCore;

/// The secret named `name`: opened from the store, or generated (32 random bytes), sealed and
/// stored. Concurrent first starts agree on one value (the store keeps the first writer's).
pub async fn server_secret(store: &dyn Store, vault: &Vault, name: &str) -> Result<Vec<u8>> {
    let aad = format!("server-secret|{name}");
    let sealed = match store.server_secret(name).await? {
        Some(s) => s,
        None => {
            let mut fresh = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut fresh);
            let sealed = vault.seal(aad.as_bytes(), &fresh);
            store.put_server_secret(name, &sealed, crate::time::now_ms()).await?
        }
    };
    vault.open(aad.as_bytes(), &sealed).map(|p| p.to_vec()).map_err(|e| {
        Error::internal(anyhow::anyhow!(
            "server secret `{name}` does not open with this master key ({e}); is TOKENONE_MASTER_KEY the one this database was created with?"
        ))
    })
}
