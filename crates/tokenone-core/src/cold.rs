//! Cold-storage archives: a project's bulky history (call-log rows, stored events) as
//! zstd-compressed JSON lines, with the SHA-256 of the file bytes recorded in the database.
//!
//! Decompressed, an archive is:
//!
//! ```text
//! {"format":"tokenone-cold-archive","version":1,"archiveId":..,"projectId":..,"tenantId":..,"createdAt":ms,
//!  "tables":{"calls":[["id","text"],..],"project_events":[..]}}
//! {"t":"calls","r":{"id":"..","at":1713563652000,..}}          one line per row
//! {"end":true,"rows":{"calls":N,"project_events":M}}
//! ```
//!
//! Values keep their stored type exactly: integers as JSON integers, text as strings, NULL as
//! null, bytes as `{"$b64": ".."}`, so a restore puts back every row bit for bit.

use crate::tokens::hex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};

pub const FORMAT: &str = "tokenone-cold-archive";
pub const VERSION: u64 = 1;

/// A row of an archived table: column name → value.
pub type ColdRow = Map<String, Value>;

/// The tables whose rows move to cold storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColdTable {
    Calls,
    Events,
}

impl ColdTable {
    pub const ALL: [ColdTable; 2] = [ColdTable::Calls, ColdTable::Events];
    pub fn as_str(self) -> &'static str {
        match self {
            ColdTable::Calls => "calls",
            ColdTable::Events => "project_events",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// How a column's values are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    Int,
    Text,
    Blob,
    /// A type archives do not carry (the declared type, for the error message).
    #[serde(skip)]
    Other(String),
}

impl ColumnKind {
    /// From a declared SQL type (`BIGINT`, `TEXT`, `bytea`, ...).
    pub fn of_declared(ty: &str) -> ColumnKind {
        let t = ty.to_ascii_uppercase();
        if t.contains("INT") {
            ColumnKind::Int
        } else if t.contains("CHAR") || t.contains("TEXT") || t.contains("CLOB") {
            ColumnKind::Text
        } else if t.contains("BLOB") || t.contains("BYTEA") {
            ColumnKind::Blob
        } else {
            ColumnKind::Other(ty.to_string())
        }
    }
    fn name(&self) -> &str {
        match self {
            ColumnKind::Int => "int",
            ColumnKind::Text => "text",
            ColumnKind::Blob => "blob",
            ColumnKind::Other(t) => t,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

/// Encodes bytes for an archive row.
pub fn blob_value(bytes: &[u8]) -> Value {
    use base64::Engine;
    json!({"$b64": base64::engine::general_purpose::STANDARD.encode(bytes)})
}

/// Decodes an archived blob value.
pub fn blob_of(v: &Value) -> Option<Vec<u8>> {
    use base64::Engine;
    let s = v.as_object()?.get("$b64")?.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive does not match its recorded checksum")]
    Checksum,
    #[error("the archive is malformed: {0}")]
    Malformed(String),
    #[error("archive I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn malformed(m: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Malformed(m.to_string())
}

/// The first line of an archive.
#[derive(Debug, Clone)]
pub struct ArchiveHeader {
    pub archive_id: String,
    pub project_id: String,
    pub tenant_id: String,
    pub created_at: i64,
    pub tables: BTreeMap<ColdTable, Vec<Column>>,
}

impl ArchiveHeader {
    fn to_json(&self) -> Value {
        let tables: Map<String, Value> = self
            .tables
            .iter()
            .map(|(t, cols)| {
                (
                    t.as_str().to_string(),
                    Value::Array(cols.iter().map(|c| json!([c.name, c.kind.name()])).collect()),
                )
            })
            .collect();
        json!({
            "format": FORMAT, "version": VERSION, "archiveId": self.archive_id, "projectId": self.project_id,
            "tenantId": self.tenant_id, "createdAt": self.created_at, "tables": tables,
        })
    }

    fn from_json(v: &Value) -> Result<Self, ArchiveError> {
        if v["format"] != FORMAT {
            return Err(malformed("not a TokenOne cold archive"));
        }
        if v["version"] != VERSION {
            return Err(malformed(format!("unsupported archive version {}", v["version"])));
        }
        let s = |k: &str| {
            v[k].as_str()
                .map(str::to_string)
                .ok_or_else(|| malformed(format!("header field {k}")))
        };
        let mut tables = BTreeMap::new();
        for (name, cols) in v["tables"].as_object().ok_or_else(|| malformed("header tables"))? {
            let t = ColdTable::parse(name).ok_or_else(|| malformed(format!("unknown table {name}")))?;
            let cols = cols
                .as_array()
                .ok_or_else(|| malformed("header columns"))?
                .iter()
                .map(|c| {
                    let name = c[0].as_str().ok_or_else(|| malformed("column name"))?;
                    let kind: ColumnKind = serde_json::from_value(c[1].clone())
                        .map_err(|_| malformed(format!("column kind of {name}")))?;
                    Ok(Column {
                        name: name.to_string(),
                        kind,
                    })
                })
                .collect::<Result<Vec<_>, ArchiveError>>()?;
            tables.insert(t, cols);
        }
        Ok(ArchiveHeader {
            archive_id: s("archiveId")?,
            project_id: s("projectId")?,
            tenant_id: s("tenantId")?,
            created_at: v["createdAt"].as_i64().ok_or_else(|| malformed("header createdAt"))?,
            tables,
        })
    }
}

/// Counts and hashes the bytes that pass through.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Writes an archive: header, rows, then [`ArchiveWriter::finish`].
pub struct ArchiveWriter<W: Write> {
    enc: zstd::stream::write::Encoder<'static, Hashing<W>>,
    counts: BTreeMap<ColdTable, u64>,
    line: Vec<u8>,
}

/// What was written: the sink back, the SHA-256 (hex) and size of the compressed bytes, and the
/// rows per table.
pub struct Written<W> {
    pub sink: W,
    pub sha256: String,
    pub bytes: u64,
    pub counts: BTreeMap<ColdTable, u64>,
}

impl<W: Write> ArchiveWriter<W> {
    pub fn new(sink: W, header: &ArchiveHeader) -> Result<Self, ArchiveError> {
        let enc = zstd::stream::write::Encoder::new(
            Hashing {
                inner: sink,
                hasher: Sha256::new(),
                bytes: 0,
            },
            3,
        )?;
        let mut w = ArchiveWriter {
            enc,
            counts: header.tables.keys().map(|t| (*t, 0)).collect(),
            line: Vec::with_capacity(1024),
        };
        w.write_line(&header.to_json())?;
        Ok(w)
    }

    fn write_line(&mut self, v: &Value) -> Result<(), ArchiveError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, v).map_err(malformed)?;
        self.line.push(b'\n');
        self.enc.write_all(&self.line)?;
        Ok(())
    }

    pub fn row(&mut self, table: ColdTable, row: &ColdRow) -> Result<(), ArchiveError> {
        self.line.clear();
        // `{"t":..,"r":..}` without cloning the row into a new Value.
        self.line.extend_from_slice(b"{\"t\":\"");
        self.line.extend_from_slice(table.as_str().as_bytes());
        self.line.extend_from_slice(b"\",\"r\":");
        serde_json::to_writer(&mut self.line, row).map_err(malformed)?;
        self.line.extend_from_slice(b"}\n");
        self.enc.write_all(&self.line)?;
        *self.counts.entry(table).or_default() += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<Written<W>, ArchiveError> {
        let rows: Map<String, Value> = self
            .counts
            .iter()
            .map(|(t, n)| (t.as_str().to_string(), json!(n)))
            .collect();
        self.write_line(&json!({"end": true, "rows": rows}))?;
        let mut h = self.enc.finish()?;
        h.flush()?;
        Ok(Written {
            sink: h.inner,
            sha256: hex(&h.hasher.finalize()),
            bytes: h.bytes,
            counts: self.counts,
        })
    }
}

/// SHA-256 (hex) of everything `r` yields, read in a streaming way.
pub fn sha256_of(mut r: impl Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf)? {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    Ok(hex(&h.finalize()))
}

/// Reads an archive back: the header at once, then rows as an iterator. The iterator checks the
/// end marker, the row counts and the checksum of the whole file when it reaches the end, and
/// reports any mismatch as its last item, so a consumer inside a transaction can roll back.
pub struct ArchiveReader<R: Read> {
    lines: BufReader<zstd::stream::read::Decoder<'static, BufReader<Hashing<R>>>>,
    header: ArchiveHeader,
    expected_sha256: String,
    counts: BTreeMap<ColdTable, u64>,
    done: bool,
    line: String,
}

impl<R: Read> ArchiveReader<R> {
    pub fn open(source: R, expected_sha256: &str) -> Result<Self, ArchiveError> {
        let dec = zstd::stream::read::Decoder::new(Hashing {
            inner: source,
            hasher: Sha256::new(),
            bytes: 0,
        })?;
        let mut lines = BufReader::new(dec);
        let mut first = String::new();
        lines
            .read_line(&mut first)
            .map_err(|e| malformed(format!("header: {e}")))?;
        let v: Value = serde_json::from_str(&first).map_err(|_| malformed("header is not JSON"))?;
        let header = ArchiveHeader::from_json(&v)?;
        Ok(ArchiveReader {
            lines,
            header,
            expected_sha256: expected_sha256.to_string(),
            counts: BTreeMap::new(),
            done: false,
            line: String::new(),
        })
    }

    pub fn header(&self) -> &ArchiveHeader {
        &self.header
    }

    fn next_row(&mut self) -> Result<Option<(ColdTable, ColdRow)>, ArchiveError> {
        self.line.clear();
        let n = self
            .lines
            .read_line(&mut self.line)
            .map_err(|e| malformed(format!("decompression: {e}")))?;
        if n == 0 {
            return Err(malformed("the archive ends without its end marker"));
        }
        let mut v: Value = serde_json::from_str(&self.line).map_err(|_| malformed("a row is not JSON"))?;
        if v["end"] == true {
            self.finish_checks(&v)?;
            return Ok(None);
        }
        let t = v["t"]
            .as_str()
            .and_then(ColdTable::parse)
            .ok_or_else(|| malformed("a row names no known table"))?;
        let Some(Value::Object(row)) = v.get_mut("r").map(Value::take) else {
            return Err(malformed("a row has no values"));
        };
        *self.counts.entry(t).or_default() += 1;
        Ok(Some((t, row)))
    }

    fn finish_checks(&mut self, end: &Value) -> Result<(), ArchiveError> {
        for (t, n) in end["rows"].as_object().ok_or_else(|| malformed("end marker"))? {
            let t = ColdTable::parse(t).ok_or_else(|| malformed("end marker table"))?;
            if n.as_u64() != Some(self.counts.get(&t).copied().unwrap_or(0)) {
                return Err(malformed(format!("row count of {} does not match", t.as_str())));
            }
        }
        // Nothing may follow the end marker; then the whole file must have been read.
        let mut rest = Vec::new();
        self.lines
            .read_to_end(&mut rest)
            .map_err(|e| malformed(format!("decompression: {e}")))?;
        if !rest.is_empty() {
            return Err(malformed("data after the end marker"));
        }
        let hashing = self.lines.get_mut().get_mut().get_mut();
        std::io::copy(hashing, &mut std::io::sink())?;
        let got = hex(&std::mem::take(&mut hashing.hasher).finalize());
        if got != self.expected_sha256 {
            return Err(ArchiveError::Checksum);
        }
        Ok(())
    }

    /// Rows read so far, per table.
    pub fn counts(&self) -> &BTreeMap<ColdTable, u64> {
        &self.counts
    }
}

impl<R: Read> Iterator for ArchiveReader<R> {
    type Item = Result<(ColdTable, ColdRow), ArchiveError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_row() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ArchiveHeader {
        let cols = |names: &[(&str, ColumnKind)]| {
            names
                .iter()
                .map(|(n, k)| Column {
                    name: n.to_string(),
                    kind: k.clone(),
                })
                .collect()
        };
        ArchiveHeader {
            archive_id: "a1".into(),
            project_id: "p1".into(),
            tenant_id: "t1".into(),
            created_at: 1,
            tables: [
                (
                    ColdTable::Calls,
                    cols(&[
                        ("id", ColumnKind::Text),
                        ("at", ColumnKind::Int),
                        ("blob", ColumnKind::Blob),
                    ]),
                ),
                (ColdTable::Events, cols(&[("id", ColumnKind::Text)])),
            ]
            .into(),
        }
    }

    fn rows() -> Vec<(ColdTable, ColdRow)> {
        (0..500)
            .map(|i| {
                let mut r = Map::new();
                r.insert("id".into(), json!(format!("c{i}")));
                r.insert("at".into(), json!(i64::MAX - i));
                r.insert(
                    "blob".into(),
                    if i % 2 == 0 {
                        blob_value(&[0, 1, 255])
                    } else {
                        Value::Null
                    },
                );
                (ColdTable::Calls, r)
            })
            .chain((0..3).map(|i| {
                let mut r = Map::new();
                r.insert("id".into(), json!(format!("e{i} \"quoted\" \u{1F600}")));
                (ColdTable::Events, r)
            }))
            .collect()
    }

    fn archive() -> (Vec<u8>, String) {
        let mut w = ArchiveWriter::new(Vec::new(), &header()).unwrap();
        for (t, r) in rows() {
            w.row(t, &r).unwrap();
        }
        let done = w.finish().unwrap();
        assert_eq!(done.counts[&ColdTable::Calls], 500);
        assert_eq!(done.bytes as usize, done.sink.len());
        assert_eq!(sha256_of(&done.sink[..]).unwrap(), done.sha256);
        (done.sink, done.sha256)
    }

    #[test]
    fn round_trip_is_exact() {
        let (bytes, sha) = archive();
        let r = ArchiveReader::open(&bytes[..], &sha).unwrap();
        assert_eq!(r.header().project_id, "p1");
        assert_eq!(r.header().tables[&ColdTable::Calls][2].kind, ColumnKind::Blob);
        let back: Vec<_> = r.collect::<Result<_, _>>().unwrap();
        assert_eq!(back, rows());
        assert_eq!(blob_of(&back[0].1["blob"]).unwrap(), vec![0, 1, 255]);
    }

    #[test]
    fn damage_is_reported() {
        let (bytes, sha) = archive();
        // Wrong recorded checksum: every row reads, the last item is the mismatch.
        let items: Vec<_> = ArchiveReader::open(&bytes[..], &"0".repeat(64)).unwrap().collect();
        assert!(matches!(items.last(), Some(Err(ArchiveError::Checksum))));
        // Flipped bytes and truncation: an error somewhere, never a clean end.
        for i in [20, bytes.len() / 2, bytes.len() - 5] {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            let ok = ArchiveReader::open(&bad[..], &sha).map(|r| r.collect::<Result<Vec<_>, _>>().is_ok());
            assert!(!matches!(ok, Ok(true)), "flip at {i} went unnoticed");
        }
        let cut = &bytes[..bytes.len() - 10];
        let ok = ArchiveReader::open(cut, &sha).map(|r| r.collect::<Result<Vec<_>, _>>().is_ok());
        assert!(!matches!(ok, Ok(true)));
    }

    #[test]
    fn declared_types_map_to_kinds() {
        assert_eq!(ColumnKind::of_declared("BIGINT"), ColumnKind::Int);
        assert_eq!(ColumnKind::of_declared("bigint"), ColumnKind::Int);
        assert_eq!(ColumnKind::of_declared("text"), ColumnKind::Text);
        assert_eq!(ColumnKind::of_declared("character varying"), ColumnKind::Text);
        assert_eq!(ColumnKind::of_declared("bytea"), ColumnKind::Blob);
        assert!(matches!(ColumnKind::of_declared("REAL"), ColumnKind::Other(_)));
    }
}
