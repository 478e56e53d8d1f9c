//! The sparse offset index of a segment (`*.index`).
//!
//! Owns the index entry format (`relative_offset: u32, position: u32`, LE),
//! the rule deciding where entries go, lookups, and reading/writing index
//! files. It must not interpret log bytes: checking an entry against the
//! log, and rebuilding an index by scanning, belong to `segment`.

use std::fs;
use std::io;
use std::path::Path;

use runnel::checkpoint::{write_atomic, LocalStorage};

use super::error::{io_err, Result};

/// Size of one index entry on disk.
pub(crate) const ENTRY_SIZE: usize = 8;

/// One index entry: the record with offset `base + rel_offset` starts at byte
/// `position` of the segment's log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Offset relative to the segment's base offset.
    pub rel_offset: u32,
    /// Byte position in the log file.
    pub position: u32,
}

impl IndexEntry {
    /// The implicit entry for the first record of a segment.
    pub(crate) const START: IndexEntry = IndexEntry {
        rel_offset: 0,
        position: 0,
    };

    /// Appends the on-disk form of the entry to `out`.
    pub(crate) fn encode(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel_offset.to_le_bytes());
        out.extend_from_slice(&self.position.to_le_bytes());
    }

    fn decode(b: &[u8]) -> IndexEntry {
        IndexEntry {
            rel_offset: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Decides where index entries go: one for the first record that starts at
/// least `interval` bytes after the previous entry (or the start of the
/// file). Used identically when appending and when rebuilding, so a rebuilt
/// index equals the original one when the interval is unchanged.
#[derive(Debug, Clone)]
pub(crate) struct IndexPolicy {
    interval: u64,
    last_position: u64,
}

impl IndexPolicy {
    /// A policy whose previous entry is at `last_position` (0 = none yet).
    pub(crate) fn new(interval: u32, last_position: u64) -> Self {
        IndexPolicy {
            interval: u64::from(interval.max(1)),
            last_position,
        }
    }

    /// Called for every record appended at `position`; returns the entry to
    /// write for it, if any.
    #[inline]
    pub(crate) fn observe(&mut self, rel_offset: u64, position: u64) -> Option<IndexEntry> {
        if position >= self.last_position + self.interval {
            self.last_position = position;
            Some(IndexEntry {
                rel_offset: rel_offset as u32,
                position: position as u32,
            })
        } else {
            None
        }
    }
}

/// Parses index bytes, keeping the well-formed prefix: complete entries,
/// strictly increasing in both fields, with positions after the start of
/// the file. Anything after the first bad entry is ignored.
pub(crate) fn parse(bytes: &[u8]) -> Vec<IndexEntry> {
    let mut entries = Vec::with_capacity(bytes.len() / ENTRY_SIZE);
    let mut prev: Option<IndexEntry> = None;
    for chunk in bytes.chunks_exact(ENTRY_SIZE) {
        let e = IndexEntry::decode(chunk);
        let ordered = match prev {
            None => e.position > 0,
            Some(p) => e.rel_offset > p.rel_offset && e.position > p.position,
        };
        if !ordered {
            break;
        }
        entries.push(e);
        prev = Some(e);
    }
    entries
}

/// Reads an index file's raw bytes; `None` if it does not exist.
pub(crate) fn read_raw(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// The last entry with `rel_offset <= rel`, if any.
pub(crate) fn lookup(entries: &[IndexEntry], rel: u64) -> Option<IndexEntry> {
    let n = entries.partition_point(|e| u64::from(e.rel_offset) <= rel);
    n.checked_sub(1).map(|i| entries[i])
}

/// Encodes entries into their on-disk form.
pub(crate) fn encode_all(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_SIZE);
    for e in entries {
        e.encode(&mut out);
    }
    out
}

/// Replaces an index file atomically and durably (temporary file, fsync,
/// rename, folder fsync).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(&LocalStorage, path, bytes).map_err(io_err("replace", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(rel_offset: u32, position: u32) -> IndexEntry {
        IndexEntry {
            rel_offset,
            position,
        }
    }

    #[test]
    fn parse_keeps_well_formed_prefix() {
        let good = encode_all(&[e(3, 4100), e(9, 8300), e(20, 12500)]);
        assert_eq!(parse(&good).len(), 3);

        let mut partial = good.clone();
        partial.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse(&partial).len(), 3);

        let unordered = encode_all(&[e(3, 4100), e(2, 8300), e(20, 12500)]);
        assert_eq!(parse(&unordered), vec![e(3, 4100)]);

        assert!(parse(&encode_all(&[e(0, 0)])).is_empty());
    }

    #[test]
    fn lookup_finds_floor_entry() {
        let entries = [e(3, 4100), e(9, 8300), e(20, 12500)];
        assert_eq!(lookup(&entries, 0), None);
        assert_eq!(lookup(&entries, 2), None);
        assert_eq!(lookup(&entries, 3), Some(e(3, 4100)));
        assert_eq!(lookup(&entries, 8), Some(e(3, 4100)));
        assert_eq!(lookup(&entries, 9), Some(e(9, 8300)));
        assert_eq!(lookup(&entries, 1000), Some(e(20, 12500)));
    }

    #[test]
    fn policy_spaces_entries() {
        let mut p = IndexPolicy::new(100, 0);
        assert_eq!(p.observe(0, 0), None);
        assert_eq!(p.observe(1, 60), None);
        assert_eq!(p.observe(2, 120), Some(e(2, 120)));
        assert_eq!(p.observe(3, 180), None);
        assert_eq!(p.observe(4, 220), Some(e(4, 220)));
    }
}
