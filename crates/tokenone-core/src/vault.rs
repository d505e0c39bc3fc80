//! The credential vault: every secret at rest is sealed with AES-256-GCM under its own random data
//! key, and the data key is wrapped by the master key. Associated data binds a sealed record to
//! where it belongs (tenant, project, record id), so a ciphertext copied to another row fails to
//! open. Rotation re-wraps data keys only; the sealed payload itself never changes.
//!
//! Blob layout, version 1:
//! `0x01 | key id (8) | wrap nonce (12) | wrapped data key (32 + 16 tag) | nonce (12) | ciphertext+tag`

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const KID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const WRAPPED_LEN: usize = 32 + 16;
const HEADER_LEN: usize = 1 + KID_LEN + NONCE_LEN + WRAPPED_LEN + NONCE_LEN;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("master key must be 32 bytes, base64-encoded")]
    BadMasterKey,
    #[error("sealed record is malformed")]
    Malformed,
    #[error("sealed record was made under an unknown master key")]
    UnknownKey,
    #[error("sealed record does not open (wrong key, wrong place, or tampered)")]
    Tampered,
}

/// A 256-bit master key and its id (the first 8 bytes of its SHA-256).
#[derive(Clone)]
pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    id: [u8; KID_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id={})", self.id_hex())
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; KID_LEN];
        id.copy_from_slice(&digest[..KID_LEN]);
        MasterKey {
            key: Zeroizing::new(bytes),
            id,
        }
    }

    pub fn from_base64(s: &str) -> Result<Self, VaultError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|_| VaultError::BadMasterKey)?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| VaultError::BadMasterKey)?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(*self.key)
    }

    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cipher(&self) -> Aes256Gcm {
        // A 32-byte array is always a valid AES-256 key.
        Aes256Gcm::new_from_slice(&*self.key).expect("32-byte key")
    }

    /// Loads the key from `path`, or generates one there with mode 0600 when the file is absent.
    /// Returns the key and whether it was generated.
    pub fn load_or_create(path: &Path) -> std::io::Result<(Self, bool)> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text)
                .map(|k| (k, false))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private(path, key.to_base64().as_bytes())?;
                Ok((key, true))
            }
            Err(e) => Err(e),
        }
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Seals and opens records. Holds the current master key plus any older ones still needed to open
/// records that have not been re-wrapped yet.
#[derive(Clone, Debug)]
pub struct Vault {
    current: MasterKey,
    older: Vec<MasterKey>,
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

impl Vault {
    pub fn new(current: MasterKey) -> Self {
        Vault {
            current,
            older: Vec::new(),
        }
    }

    pub fn with_older(mut self, older: MasterKey) -> Self {
        self.older.push(older);
        self
    }

    pub fn current_key_id(&self) -> String {
        self.current.id_hex()
    }

    fn key_for(&self, id: &[u8]) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(self.older.iter())
            .find(|k| k.id == id)
    }

    /// Seals `plaintext`, bound to `aad` (e.g. `connector|<tenant>|<project>|<record>`).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut dek = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *dek);
        let wrap_nonce = random_nonce();
        let nonce = random_nonce();
        // AES-GCM encryption with a valid key only fails for inputs beyond 64 GiB.
        let wrapped = self
            .current
            .cipher()
            .encrypt(
                Nonce::from_slice(&wrap_nonce),
                Payload {
                    msg: &*dek,
                    aad: &self.current.id,
                },
            )
            .expect("wrap data key");
        let data_cipher = Aes256Gcm::new_from_slice(&*dek).expect("32-byte key");
        let ct = data_cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("seal record");
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&wrap_nonce);
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    fn unwrap_dek(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if blob.len() < HEADER_LEN + 16 || blob[0] != VERSION {
            return Err(VaultError::Malformed);
        }
        let kid = &blob[1..1 + KID_LEN];
        let key = self.key_for(kid).ok_or(VaultError::UnknownKey)?;
        let wrap_nonce = &blob[1 + KID_LEN..1 + KID_LEN + NONCE_LEN];
        let wrapped = &blob[1 + KID_LEN + NONCE_LEN..1 + KID_LEN + NONCE_LEN + WRAPPED_LEN];
        key.cipher()
            .decrypt(Nonce::from_slice(wrap_nonce), Payload { msg: wrapped, aad: kid })
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Tampered)
    }

    pub fn open(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let dek = self.unwrap_dek(blob)?;
        let nonce = &blob[HEADER_LEN - NONCE_LEN..HEADER_LEN];
        let cipher = Aes256Gcm::new_from_slice(&dek).map_err(|_| VaultError::Malformed)?;
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &blob[HEADER_LEN..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Tampered)
    }

    /// Re-wraps a record's data key under the current master key. The payload is untouched, so
    /// this is safe to run while the server keeps reading the old form with an older key.
    pub fn rewrap(&self, blob: &[u8]) -> Result<Vec<u8>, VaultError> {
        let dek = self.unwrap_dek(blob)?;
        let wrap_nonce = random_nonce();
        let wrapped = self
            .current
            .cipher()
            .encrypt(
                Nonce::from_slice(&wrap_nonce),
                Payload {
                    msg: dek.as_slice(),
                    aad: &self.current.id,
                },
            )
            .map_err(|_| VaultError::Malformed)?;
        let mut out = blob.to_vec();
        out[1..1 + KID_LEN].copy_from_slice(&self.current.id);
        out[1 + KID_LEN..1 + KID_LEN + NONCE_LEN].copy_from_slice(&wrap_nonce);
        out[1 + KID_LEN + NONCE_LEN..1 + KID_LEN + NONCE_LEN + WRAPPED_LEN].copy_from_slice(&wrapped);
        Ok(out)
    }

    /// The master key id a blob was wrapped under.
    pub fn key_id_of(blob: &[u8]) -> Option<String> {
        (blob.len() > KID_LEN).then(|| blob[1..1 + KID_LEN].iter().map(|b| format!("{b:02x}")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let v = Vault::new(MasterKey::generate());
        let blob = v.seal(b"t1|p1|r1", b"postgres://u:hunter2@h/db");
        assert!(!blob.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(&*v.open(b"t1|p1|r1", &blob).unwrap(), b"postgres://u:hunter2@h/db");
        assert_eq!(v.open(b"t1|p1|r2", &blob).unwrap_err(), VaultError::Tampered);
    }

    #[test]
    fn flipped_bytes_fail() {
        let v = Vault::new(MasterKey::generate());
        let blob = v.seal(b"a", b"secret");
        for i in [0, 3, 30, HEADER_LEN - 1, HEADER_LEN + 2, blob.len() - 1] {
            let mut b = blob.clone();
            b[i] ^= 0x40;
            assert!(v.open(b"a", &b).is_err(), "byte {i}");
        }
        assert_eq!(v.open(b"a", &blob[..10]).unwrap_err(), VaultError::Malformed);
    }

    #[test]
    fn rotation_rewraps() {
        let old = MasterKey::generate();
        let blob = Vault::new(old.clone()).seal(b"a", b"secret");
        let new_vault = Vault::new(MasterKey::generate()).with_older(old);
        let re = new_vault.rewrap(&blob).unwrap();
        assert_eq!(Vault::key_id_of(&re).unwrap(), new_vault.current_key_id());
        let only_new = Vault::new(new_vault.current.clone());
        assert_eq!(&*only_new.open(b"a", &re).unwrap(), b"secret");
        assert_eq!(only_new.open(b"a", &blob).unwrap_err(), VaultError::UnknownKey);
    }

    #[test]
    fn key_file_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/tokenone.key");
        let (k1, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(created);
        let (k2, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(k1.id_hex(), k2.id_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
