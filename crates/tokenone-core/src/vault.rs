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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
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
        crate::tokens::hex(&self.id)
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

/// Seals and opens records. Holds the current master key plus any other keys still needed to
/// open records that have not been re-wrapped yet (older keys during a rotation, or the next key
/// before a rotation). Clones share their keys: a reload seen by one is seen by all.
///
/// A vault made [`with_key_file`](Vault::with_key_file) re-reads the key file and its
/// `.previous` companion when it meets a record wrapped under a key it does not hold, so a
/// server keeps serving while `tokenone vault rotate` swaps the key file under it.
#[derive(Clone)]
pub struct Vault {
    keys: Arc<RwLock<Keys>>,
    file: Option<Arc<KeyFile>>,
}

struct Keys {
    current: MasterKey,
    older: Vec<MasterKey>,
}

struct KeyFile {
    path: PathBuf,
    /// When the files were last re-read; re-reads are at most one a second.
    last_reload: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.read();
        f.debug_struct("Vault")
            .field("current", &keys.current)
            .field("older", &keys.older)
            .finish_non_exhaustive()
    }
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

/// `<key file>.previous`: the older master keys (base64, one a line) kept through a rotation.
pub fn previous_path(key_file: &Path) -> PathBuf {
    let mut s = key_file.as_os_str().to_owned();
    s.push(".previous");
    PathBuf::from(s)
}

/// The keys of a `.previous` file; an absent file holds none.
pub fn read_key_list(path: &Path) -> std::io::Result<Vec<MasterKey>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| MasterKey::from_base64(l).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
        .collect()
}

/// Replaces `path` atomically with a file readable by its owner only: written beside it, synced,
/// then renamed over it, so a crash leaves either the old or the new file, never half of one.
pub fn write_private_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{:016x}", rand::random::<u64>()));
    let tmp = PathBuf::from(tmp);
    write_private(&tmp, contents)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl Vault {
    pub fn new(current: MasterKey) -> Self {
        Vault {
            keys: Arc::new(RwLock::new(Keys {
                current,
                older: Vec::new(),
            })),
            file: None,
        }
    }

    /// Also opens records wrapped under `older`.
    pub fn with_older(self, older: MasterKey) -> Self {
        {
            let mut keys = self.write();
            if keys.current.id != older.id && !keys.older.iter().any(|k| k.id == older.id) {
                keys.older.push(older);
            }
        }
        self
    }

    /// Follows the key file at `path` (see the type's documentation); the keys of its
    /// `.previous` companion are added now.
    pub fn with_key_file(mut self, path: &Path) -> std::io::Result<Self> {
        for k in read_key_list(&previous_path(path))? {
            self = self.with_older(k);
        }
        self.file = Some(Arc::new(KeyFile {
            path: path.to_path_buf(),
            last_reload: Mutex::new(None),
        }));
        Ok(self)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Keys> {
        self.keys.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn current_key_id(&self) -> String {
        self.read().current.id_hex()
    }

    /// The current master key (for tools that re-wrap under it).
    pub fn current_key(&self) -> MasterKey {
        self.read().current.clone()
    }

    /// Every key held: the current one first, then the others.
    pub fn keys(&self) -> Vec<MasterKey> {
        let keys = self.read();
        std::iter::once(&keys.current)
            .chain(keys.older.iter())
            .cloned()
            .collect()
    }

    /// Whether a record wrapped under the key with this id opens here.
    pub fn knows(&self, key_id_hex: &str) -> bool {
        let keys = self.read();
        std::iter::once(&keys.current)
            .chain(keys.older.iter())
            .any(|k| k.id_hex() == key_id_hex)
    }

    fn key_for(&self, id: &[u8]) -> Option<MasterKey> {
        let keys = self.read();
        std::iter::once(&keys.current)
            .chain(keys.older.iter())
            .find(|k| k.id == id)
            .cloned()
    }

    /// Re-reads the key file (after a rotation): its key becomes current and every key held
    /// before stays usable for opening. `false` when there is no file to follow, it was re-read
    /// less than a second ago, or it cannot be read.
    fn reload(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        {
            let mut last = file.last_reload.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let current = match std::fs::read_to_string(&file.path).map(|t| MasterKey::from_base64(&t)) {
            Ok(Ok(k)) => k,
            _ => {
                tracing::error!(path = %file.path.display(), "master key file unreadable on reload");
                return false;
            }
        };
        let previous = read_key_list(&previous_path(&file.path)).unwrap_or_default();
        let mut keys = self.write();
        if keys.current.id != current.id {
            let old = std::mem::replace(&mut keys.current, current);
            tracing::info!(key_id = %keys.current.id_hex(), "master key file changed: sealing under the new key");
            keys.older.push(old);
        }
        for k in previous {
            if keys.current.id != k.id && !keys.older.iter().any(|o| o.id == k.id) {
                keys.older.push(k);
            }
        }
        let current_id = keys.current.id;
        keys.older.retain(|k| k.id != current_id);
        true
    }

    /// Seals `plaintext`, bound to `aad` (e.g. `connector|<tenant>|<project>|<record>`).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut dek = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *dek);
        let wrap_nonce = random_nonce();
        let nonce = random_nonce();
        let current = self.current_key();
        // AES-GCM encryption with a valid key only fails for inputs beyond 64 GiB.
        let wrapped = current
            .cipher()
            .encrypt(
                Nonce::from_slice(&wrap_nonce),
                Payload {
                    msg: &*dek,
                    aad: &current.id,
                },
            )
            .expect("wrap data key");
        let data_cipher = Aes256Gcm::new_from_slice(&*dek).expect("32-byte key");
        let ct = data_cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("seal record");
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&current.id);
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
        let key = match self.key_for(kid) {
            Some(k) => k,
            None if self.reload() => self.key_for(kid).ok_or(VaultError::UnknownKey)?,
            None => return Err(VaultError::UnknownKey),
        };
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
        let current = self.current_key();
        let wrap_nonce = random_nonce();
        let wrapped = current
            .cipher()
            .encrypt(
                Nonce::from_slice(&wrap_nonce),
                Payload {
                    msg: dek.as_slice(),
                    aad: &current.id,
                },
            )
            .map_err(|_| VaultError::Malformed)?;
        let mut out = blob.to_vec();
        out[1..1 + KID_LEN].copy_from_slice(&current.id);
        out[1 + KID_LEN..1 + KID_LEN + NONCE_LEN].copy_from_slice(&wrap_nonce);
        out[1 + KID_LEN + NONCE_LEN..1 + KID_LEN + NONCE_LEN + WRAPPED_LEN].copy_from_slice(&wrapped);
        Ok(out)
    }

    /// The master key id a blob was wrapped under.
    pub fn key_id_of(blob: &[u8]) -> Option<String> {
        (blob.len() > KID_LEN).then(|| crate::tokens::hex(&blob[1..1 + KID_LEN]))
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
        let only_new = Vault::new(new_vault.current_key());
        assert_eq!(&*only_new.open(b"a", &re).unwrap(), b"secret");
        assert_eq!(only_new.open(b"a", &blob).unwrap_err(), VaultError::UnknownKey);
    }

    #[test]
    fn follows_a_rotated_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenone.key");
        let (k1, _) = MasterKey::load_or_create(&path).unwrap();
        let served = Vault::new(k1.clone()).with_key_file(&path).unwrap();
        let old_blob = served.seal(b"a", b"old");
        // A rotation: the new key in the file, the old one kept beside it.
        let k2 = MasterKey::generate();
        write_private_atomic(&previous_path(&path), format!("{}\n", k1.to_base64()).as_bytes()).unwrap();
        write_private_atomic(&path, k2.to_base64().as_bytes()).unwrap();
        let rotated = Vault::new(k2.clone()).with_key_file(&path).unwrap();
        let new_blob = rotated.rewrap(&old_blob).unwrap();
        assert!(rotated.knows(&k1.id_hex()));
        // The serving vault meets a record under the new key: it re-reads the file.
        assert_eq!(&*served.open(b"a", &new_blob).unwrap(), b"old");
        assert_eq!(served.current_key_id(), k2.id_hex());
        assert_eq!(&*served.open(b"a", &old_blob).unwrap(), b"old");
        assert_eq!(Vault::key_id_of(&served.seal(b"b", b"x")).unwrap(), k2.id_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // A vault without a key file never re-reads anything.
        let fixed = Vault::new(k1);
        assert_eq!(fixed.open(b"a", &new_blob).unwrap_err(), VaultError::UnknownKey);
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
