//! The encrypted export file (`.t1x`): a passphrase-protected, chunked AES-256-GCM stream.
//!
//! Layout, version 1 (all integers big-endian):
//!
//! ```text
//! header (40 bytes): "T1X" | version u8 | argon2 m_kib u32 | t u32 | p u32 | salt [16] | nonce prefix [8]
//! chunk*:            ciphertext length u32 | ciphertext (plaintext of at most 64 KiB, + 16-byte tag)
//! ```
//!
//! The key is Argon2id(passphrase, salt) with the header's parameters. Chunk `i` is sealed with
//! nonce `prefix || i` and associated data `header || i || final`, where `final` is 1 for the
//! last chunk only (there is always one, possibly empty). So a flipped byte anywhere (header
//! included), chunks swapped, dropped or duplicated, a file cut short or one with bytes appended
//! all fail to open: the header is bound to every chunk, the index to its place, and the final
//! marker to the end of the file.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use std::io::{BufRead, Read, Write};
use zeroize::Zeroizing;

pub const MAGIC: &[u8; 3] = b"T1X";
pub const VERSION: u8 = 1;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
pub const HEADER_LEN: usize = 3 + 1 + 12 + 16 + 8;
const TAG_LEN: usize = 16;
/// The shortest passphrase an export accepts (Unicode scalar values).
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// Argon2id cost parameters as the header carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism.
    pub p: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: well above OWASP's Argon2id minimum, for a file an attacker
    /// may hold offline.
    fn default() -> Self {
        KdfParams {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

impl KdfParams {
    /// Bounds a reader accepts, so a forged header cannot make it allocate without limit.
    fn sane(&self) -> bool {
        (1..=16).contains(&self.p)
            && (1..=64).contains(&self.t)
            && self.m_kib >= 8 * self.p
            && self.m_kib <= 4 * 1024 * 1024
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("not a TokenOne export file")]
    NotAnExport,
    #[error("unsupported export format version {0}")]
    UnsupportedVersion(u8),
    #[error("the export header carries unacceptable key-derivation parameters")]
    BadParams,
    #[error("wrong passphrase, or the file is damaged")]
    WrongPassphraseOrDamaged,
    #[error("the file is damaged: chunk {0} does not authenticate (altered, reordered or misplaced)")]
    Damaged(u32),
    #[error("the file is truncated")]
    Truncated,
    #[error("the export is too large for this format")]
    TooLarge,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn derive_key(passphrase: &[u8], salt: &[u8], p: KdfParams) -> Result<Zeroizing<[u8; 32]>, ExportError> {
    if !p.sane() {
        return Err(ExportError::BadParams);
    }
    let params = Params::new(p.m_kib, p.t, p.p, Some(32)).map_err(|_| ExportError::BadParams)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, &mut *key)
        .map_err(|_| ExportError::BadParams)?;
    Ok(key)
}

fn nonce(prefix: &[u8; 8], index: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(prefix);
    n[8..].copy_from_slice(&index.to_be_bytes());
    n
}

fn aad(header: &[u8; HEADER_LEN], index: u32, last: bool) -> [u8; HEADER_LEN + 5] {
    let mut a = [0u8; HEADER_LEN + 5];
    a[..HEADER_LEN].copy_from_slice(header);
    a[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&index.to_be_bytes());
    a[HEADER_LEN + 4] = last as u8;
    a
}

/// Encrypts a stream: feed plaintext with [`Sealer::push`], end with [`Sealer::finish`]; each
/// returns the file bytes ready to go out (the header first). Holds at most one chunk.
pub struct Sealer {
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    prefix: [u8; 8],
    index: u32,
    buf: Vec<u8>,
    header_sent: bool,
    chunk: usize,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Derives the key (slow by design: run it off the async executor) with a fresh random salt
    /// and nonce prefix.
    pub fn new(passphrase: &str, params: KdfParams) -> Result<Sealer, ExportError> {
        Self::with_chunk(passphrase, params, CHUNK)
    }

    fn with_chunk(passphrase: &str, params: KdfParams, chunk: usize) -> Result<Sealer, ExportError> {
        let mut salt = [0u8; 16];
        let mut prefix = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut prefix);
        let key = derive_key(passphrase.as_bytes(), &salt, params)?;
        let cipher = Aes256Gcm::new_from_slice(&*key).map_err(|_| ExportError::BadParams)?;
        let mut header = [0u8; HEADER_LEN];
        header[..3].copy_from_slice(MAGIC);
        header[3] = VERSION;
        header[4..8].copy_from_slice(&params.m_kib.to_be_bytes());
        header[8..12].copy_from_slice(&params.t.to_be_bytes());
        header[12..16].copy_from_slice(&params.p.to_be_bytes());
        header[16..32].copy_from_slice(&salt);
        header[32..40].copy_from_slice(&prefix);
        Ok(Sealer {
            cipher,
            header,
            prefix,
            index: 0,
            buf: Vec::with_capacity(chunk),
            header_sent: false,
            chunk,
        })
    }

    fn seal_chunk(&mut self, plain: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), ExportError> {
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce(&self.prefix, self.index)),
                Payload {
                    msg: plain,
                    aad: &aad(&self.header, self.index, last),
                },
            )
            .map_err(|_| ExportError::TooLarge)?;
        out.extend_from_slice(&(ct.len() as u32).to_be_bytes());
        out.extend_from_slice(&ct);
        self.index = self.index.checked_add(1).ok_or(ExportError::TooLarge)?;
        Ok(())
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.header_sent {
            out.extend_from_slice(&self.header);
            self.header_sent = true;
        }
    }

    /// Adds plaintext; returns the bytes of every chunk completed by it (may be empty).
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<u8>, ExportError> {
        let mut out = Vec::new();
        self.start(&mut out);
        while !data.is_empty() {
            let room = self.chunk - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.chunk {
                let plain = std::mem::take(&mut self.buf);
                self.seal_chunk(&plain, false, &mut out)?;
                self.buf = plain;
                self.buf.clear();
            }
        }
        Ok(out)
    }

    /// Seals what is left as the final chunk.
    pub fn finish(mut self) -> Result<Vec<u8>, ExportError> {
        let mut out = Vec::new();
        self.start(&mut out);
        let plain = std::mem::take(&mut self.buf);
        self.seal_chunk(&plain, true, &mut out)?;
        Ok(out)
    }
}

/// Encrypts `plain` in one go (tests and small exports).
pub fn seal(plain: &[u8], passphrase: &str, params: KdfParams) -> Result<Vec<u8>, ExportError> {
    let mut s = Sealer::new(passphrase, params)?;
    let mut out = s.push(plain)?;
    out.extend(s.finish()?);
    Ok(out)
}

fn read_exact_or_truncated(r: &mut impl Read, buf: &mut [u8]) -> Result<(), ExportError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ExportError::Truncated,
        _ => ExportError::Io(e),
    })
}

/// Reads the header of an export (without deriving the key).
pub fn read_header(r: &mut impl Read) -> Result<([u8; HEADER_LEN], KdfParams), ExportError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut header[got..])? {
            0 => break,
            n => got += n,
        }
    }
    if got < 3 || &header[..3] != MAGIC {
        return Err(ExportError::NotAnExport);
    }
    if got < 4 {
        return Err(ExportError::Truncated);
    }
    if header[3] != VERSION {
        return Err(ExportError::UnsupportedVersion(header[3]));
    }
    if got < HEADER_LEN {
        return Err(ExportError::Truncated);
    }
    let word = |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let params = KdfParams {
        m_kib: word(4),
        t: word(8),
        p: word(12),
    };
    Ok((header, params))
}

/// Decrypts a whole export from `r` into `w`, chunk by chunk. On any error part of the
/// plaintext may already be in `w`: write to a scratch place and keep it only on `Ok`.
/// Returns the plaintext length.
pub fn open_stream<R: BufRead, W: Write>(mut r: R, passphrase: &str, w: &mut W) -> Result<u64, ExportError> {
    let (header, params) = read_header(&mut r)?;
    let key = derive_key(passphrase.as_bytes(), &header[16..32], params)?;
    let cipher = Aes256Gcm::new_from_slice(&*key).map_err(|_| ExportError::BadParams)?;
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&header[32..40]);
    let mut index: u32 = 0;
    let mut total: u64 = 0;
    let mut ct = Vec::with_capacity(CHUNK + TAG_LEN);
    loop {
        let mut len = [0u8; 4];
        read_exact_or_truncated(&mut r, &mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG_LEN..=CHUNK + TAG_LEN).contains(&len) {
            return Err(if index == 0 {
                ExportError::WrongPassphraseOrDamaged
            } else {
                ExportError::Damaged(index)
            });
        }
        ct.resize(len, 0);
        read_exact_or_truncated(&mut r, &mut ct)?;
        // The chunk that ends the file must be the one sealed as final, and only it.
        let last = r.fill_buf()?.is_empty();
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&nonce(&prefix, index)),
                Payload {
                    msg: &ct,
                    aad: &aad(&header, index, last),
                },
            )
            .map_err(|_| {
                if index == 0 {
                    // The first chunk is where a wrong passphrase shows; tampering looks the same.
                    ExportError::WrongPassphraseOrDamaged
                } else if last {
                    ExportError::Truncated
                } else {
                    ExportError::Damaged(index)
                }
            })?;
        w.write_all(&plain)?;
        total += plain.len() as u64;
        if last {
            return Ok(total);
        }
        index = index.checked_add(1).ok_or(ExportError::TooLarge)?;
    }
}

/// Decrypts an export held in memory.
pub fn open(bytes: &[u8], passphrase: &str) -> Result<Vec<u8>, ExportError> {
    let mut out = Vec::new();
    open_stream(bytes, passphrase, &mut out)?;
    Ok(out)
}

/// The export file name: `tokenone-export-<project-name-slug>-<YYYY-MM-DD>.t1x`.
pub fn file_name(project_name: &str, day: &str) -> String {
    format!("tokenone-export-{}-{day}.t1x", slug(project_name))
}

/// Lowercase ASCII letters and digits, other runs turned into one `-`, at most 60 characters;
/// `project` when nothing is left.
pub fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
        if s.len() >= 60 {
            break;
        }
    }
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "project".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams { m_kib: 64, t: 1, p: 1 };
    const PASS: &str = "correct horse battery";
    /// A small chunk size so a short text spans several chunks.
    const SMALL: usize = 1000;

    fn sealed(plain: &[u8]) -> Vec<u8> {
        let mut s = Sealer::with_chunk(PASS, FAST, SMALL).unwrap();
        let mut out = Vec::new();
        // Pushed in uneven pieces, as a streaming producer would.
        for piece in plain.chunks(333) {
            out.extend(s.push(piece).unwrap());
        }
        out.extend(s.finish().unwrap());
        out
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789\n"[i % 37])
            .collect()
    }

    /// Offsets of each chunk's length prefix in a sealed file.
    fn chunk_offsets(file: &[u8]) -> Vec<(usize, usize)> {
        let mut at = HEADER_LEN;
        let mut out = Vec::new();
        while at < file.len() {
            let len = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
            out.push((at, 4 + len));
            at += 4 + len;
        }
        out
    }

    #[test]
    fn round_trips_any_length() {
        for n in [0, 1, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL, 3500] {
            let plain = text(n);
            let file = sealed(&plain);
            assert_eq!(&file[..3], MAGIC);
            assert_eq!(open(&file, PASS).unwrap(), plain, "length {n}");
        }
        let big = text(CHUNK * 2 + 17);
        let file = seal(&big, PASS, FAST).unwrap();
        assert_eq!(open(&file, PASS).unwrap(), big);
    }

    #[test]
    fn header_carries_parameters() {
        let file = sealed(b"x");
        let (_, p) = read_header(&mut &file[..]).unwrap();
        assert_eq!(p, FAST);
        assert_eq!(file[3], VERSION);
        // Fresh salt and nonce prefix every time.
        assert_ne!(sealed(b"x")[16..40], file[16..40]);
    }

    #[test]
    fn wrong_passphrase_is_refused() {
        let file = sealed(&text(2500));
        assert!(matches!(
            open(&file, "correct horse battery!"),
            Err(ExportError::WrongPassphraseOrDamaged)
        ));
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let plain = text(2500);
        let file = sealed(&plain);
        let mut positions: Vec<usize> = (0..HEADER_LEN).collect();
        for (at, len) in chunk_offsets(&file) {
            positions.extend([at, at + 3, at + 4, at + 5, at + len / 2, at + len - 1]);
        }
        positions.push(file.len() - 1);
        for i in positions {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad, PASS).is_err(), "flipped byte {i} went unnoticed");
        }
    }

    #[test]
    fn truncation_is_detected() {
        let file = sealed(&text(2500));
        let chunks = chunk_offsets(&file);
        assert_eq!(chunks.len(), 3);
        let mut cuts = vec![0, 2, 3, 10, HEADER_LEN, HEADER_LEN + 2, file.len() - 1];
        for (at, len) in &chunks {
            cuts.push(*at);
            cuts.push(at + len / 2);
        }
        for cut in cuts {
            let r = open(&file[..cut], PASS);
            assert!(r.is_err(), "cut at {cut} went unnoticed");
        }
        // Cut exactly at a chunk boundary: every chunk before it authenticates, but none is final.
        assert!(matches!(open(&file[..chunks[2].0], PASS), Err(ExportError::Truncated)));
    }

    #[test]
    fn reordered_dropped_duplicated_or_appended_chunks_are_detected() {
        let file = sealed(&text(2500));
        let c = chunk_offsets(&file);
        let part = |i: usize| &file[c[i].0..c[i].0 + c[i].1];
        let header = &file[..HEADER_LEN];
        let build = |order: &[usize]| {
            let mut f = header.to_vec();
            for &i in order {
                f.extend_from_slice(part(i));
            }
            f
        };
        assert_eq!(open(&build(&[0, 1, 2]), PASS).unwrap(), text(2500));
        for order in [
            &[1, 0, 2][..],
            &[0, 2],
            &[0, 1, 1, 2],
            &[0, 1, 2, 2],
            &[1, 2],
            &[0, 2, 1],
        ] {
            assert!(open(&build(order), PASS).is_err(), "order {order:?} went unnoticed");
        }
        let mut appended = file.clone();
        appended.extend_from_slice(b"tail");
        assert!(open(&appended, PASS).is_err());
        // A chunk of another export under the same passphrase does not fit (other salt/prefix).
        let other = sealed(&text(2500));
        let oc = chunk_offsets(&other);
        let mut mixed = file[..c[1].0].to_vec();
        mixed.extend_from_slice(&other[oc[1].0..oc[1].0 + oc[1].1]);
        mixed.extend_from_slice(part(2));
        assert!(open(&mixed, PASS).is_err());
    }

    #[test]
    fn forged_parameters_are_refused_before_deriving() {
        let mut file = sealed(b"hello");
        file[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(open(&file, PASS), Err(ExportError::BadParams)));
        assert!(matches!(open(b"PK\x03\x04", PASS), Err(ExportError::NotAnExport)));
        let mut v2 = sealed(b"hello");
        v2[3] = 2;
        assert!(matches!(open(&v2, PASS), Err(ExportError::UnsupportedVersion(2))));
    }

    #[test]
    fn file_names_are_slugged() {
        assert_eq!(
            file_name("Checkout Bot (EU) v2!", "2026-04-19"),
            "tokenone-export-checkout-bot-eu-v2-2026-04-19.t1x"
        );
        assert_eq!(slug("   "), "project");
        assert_eq!(slug("Ünïcode ✓ name"), "n-code-name");
        assert!(slug(&"a".repeat(200)).len() <= 60);
    }
}
