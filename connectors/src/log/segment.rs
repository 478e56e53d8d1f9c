//! Segment files: naming, listing, sequential scanning with validation, and
//! the segment-level halves of recovery (validating and truncating the tail
//! of the active segment, checking or rebuilding a sealed segment's index).
//!
//! Owns everything that walks the records of one segment file with plain
//! positioned reads. It must not append records (that is `partition`) and
//! must not memory-map files (only `reader` maps sealed segments).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use runnel::checkpoint::{LocalStorage, OpenMode, Storage};

use super::error::{io_err, LogError, Result};
use super::index::{self, IndexEntry, IndexPolicy};
use super::record::{self, Check, RECORD_OVERHEAD};

/// Digits of the base offset in segment file names.
const NAME_DIGITS: usize = 20;
/// Read size of [`ChunkReader`].
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// Bytes a tailing reader reads at once past the known end of the active
/// segment ([`ChunkReader::look_past`]); more come with the next refill.
const LOOK_BYTES: usize = 64 << 10;

/// Path of a segment's log file.
pub(crate) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Path of a segment's index file.
pub(crate) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

/// The base offset of a segment log file name, if it is one.
fn parse_log_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Base offsets of the segments in a partition folder, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_log_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Whether a segment with this base offset exists.
pub(crate) fn segment_exists(dir: &Path, base: u64) -> bool {
    log_path(dir, base).is_file()
}

/// Buffered positioned reads over a segment file: serves byte ranges from a
/// reusable buffer, refilling it with large reads, so scanning costs one
/// syscall per [`CHUNK_BYTES`] rather than per record.
#[derive(Debug)]
pub(crate) struct ChunkReader {
    file: File,
    path: PathBuf,
    /// File length as last observed.
    len: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_pos: u64,
    /// Valid bytes in `buf`.
    filled: usize,
    /// `len` is the file's length as a read found it (a short read past
    /// the end, [`ChunkReader::look_past`]), not a lower bound or a stat.
    end_exact: bool,
}

impl ChunkReader {
    /// Opens `path` for reading.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(io_err("open", path))?;
        Self::new(file, path)
    }

    /// Wraps an open file.
    pub(crate) fn new(file: File, path: &Path) -> Result<Self> {
        let len = file.metadata().map_err(io_err("stat", path))?.len();
        Ok(ChunkReader {
            file,
            path: path.to_path_buf(),
            len,
            buf: Vec::new(),
            buf_pos: 0,
            filled: 0,
            end_exact: false,
        })
    }

    /// File length as last observed.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Re-reads the file length and drops buffered bytes (the file may have
    /// been truncated and rewritten since they were read). Returns the new
    /// length.
    pub(crate) fn refresh(&mut self) -> Result<u64> {
        self.len = self
            .file
            .metadata()
            .map_err(io_err("stat", &self.path))?
            .len();
        self.filled = 0;
        self.end_exact = false;
        Ok(self.len)
    }

    /// Reads the file from `pos` (a record boundary at or before the known
    /// end) as far as it has bytes, up to the buffer's size: a tailing
    /// reader's look at a file that may have grown, in one positioned read
    /// and no `fstat` (which would be a second system call per appended
    /// record). The buffer then holds these fresh bytes. A read shorter
    /// than asked for ends at the end of the file, so it gives the length
    /// exactly (a file cut back to `pos` included); a full one gives a
    /// lower bound. Returns the length now known.
    pub(crate) fn look_past(&mut self, pos: u64) -> Result<u64> {
        let want = self.buf.len().max(LOOK_BYTES);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        self.buf_pos = pos;
        self.filled = loop {
            match read_at(&mut self.file, &mut self.buf[..want], pos) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("read", &self.path)(e)),
            }
        };
        let end = pos + self.filled as u64;
        self.end_exact = self.filled < want;
        self.len = if self.end_exact {
            end
        } else {
            end.max(self.len)
        };
        Ok(self.len)
    }

    /// Whether the last [`ChunkReader::look_past`] found the end of the
    /// file, and that was not forgotten or replaced by a `stat` since.
    pub(crate) fn end_is_exact(&self) -> bool {
        self.end_exact
    }

    /// Forgets that the end was found: the next look reads past it again.
    pub(crate) fn forget_end(&mut self) {
        self.end_exact = false;
    }

    /// The buffered bytes and the file position of the first one.
    pub(crate) fn buffer(&self) -> (&[u8], u64) {
        (&self.buf[..self.filled], self.buf_pos)
    }

    /// Bytes of the file from `pos` on: at least `min` of them unless the
    /// file ends sooner (then everything up to the known end), possibly more.
    pub(crate) fn bytes_at(&mut self, pos: u64, min: usize) -> Result<&[u8]> {
        let end = self.buf_pos + self.filled as u64;
        let covered = pos >= self.buf_pos
            && pos <= end
            && (end >= pos.saturating_add(min as u64) || end >= self.len);
        if !covered {
            self.fill(pos, min)?;
        }
        let from = (pos - self.buf_pos) as usize;
        Ok(&self.buf[from..self.filled])
    }

    fn fill(&mut self, pos: u64, min: usize) -> Result<()> {
        self.buf_pos = pos;
        self.filled = 0;
        if pos >= self.len {
            return Ok(());
        }
        let want = (min.max(CHUNK_BYTES) as u64).min(self.len - pos) as usize;
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        while self.filled < want {
            // One positioned read per refill (no seek before it): a reader
            // tailing the active segment refills once per appended record.
            let at = pos + self.filled as u64;
            match read_at(&mut self.file, &mut self.buf[self.filled..want], at) {
                Ok(0) => {
                    // The file shrank since its length was read.
                    self.len = pos + self.filled as u64;
                    break;
                }
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("read", &self.path)(e)),
            }
        }
        Ok(())
    }

    /// Validates the record at `pos` and returns its offset if it is valid.
    pub(crate) fn probe(&mut self, pos: u64) -> Result<Option<u64>> {
        let bytes = self.bytes_at(pos, RECORD_OVERHEAD)?;
        let needed = match record::check(bytes) {
            Check::Valid(n) => return Ok(Some(record::offset_of(&bytes[..n]))),
            Check::Incomplete { needed } if bytes.len() < needed => needed,
            _ => return Ok(None),
        };
        let bytes = self.bytes_at(pos, needed)?;
        Ok(match record::check(bytes) {
            Check::Valid(n) => Some(record::offset_of(&bytes[..n])),
            _ => None,
        })
    }
}

/// Reads into `buf` from file position `at`: one `pread` on Unix.
#[cfg(unix)]
fn read_at(file: &mut File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, at)
}

/// Reads into `buf` from file position `at`.
#[cfg(not(unix))]
fn read_at(file: &mut File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    file.seek(SeekFrom::Start(at))?;
    file.read(buf)
}

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Clean end of file after the last record.
    Eof,
    /// The file ends inside a record.
    Incomplete,
    /// Invalid bytes.
    Corrupt {
        /// What is wrong.
        reason: String,
        /// The invalid record's declared extent ends exactly at the end of
        /// the file (so nothing valid can follow it).
        reaches_eof: bool,
    },
}

impl Stop {
    /// Whether this stop is what a crash mid-write leaves behind: the file
    /// ends inside a record, or its last record is damaged.
    pub(crate) fn is_torn_tail(&self) -> bool {
        matches!(
            self,
            Stop::Incomplete
                | Stop::Corrupt {
                    reaches_eof: true,
                    ..
                }
        )
    }

    /// Description of the stop for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Stop::Eof => "end of file".to_string(),
            Stop::Incomplete => "partial record at end of file".to_string(),
            Stop::Corrupt { reason, .. } => reason.clone(),
        }
    }
}

/// Result of scanning a segment.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    /// Position after the last valid record.
    pub end_pos: u64,
    /// Offset after the last valid record.
    pub next_offset: u64,
    /// Valid records seen.
    pub records: u64,
    /// Why the scan stopped.
    pub stop: Stop,
}

impl Scan {
    /// The error describing an unexpected stop (for sealed segments).
    pub(crate) fn corrupt_error(&self, path: &Path) -> LogError {
        LogError::Corrupt {
            path: path.to_path_buf(),
            position: self.end_pos,
            reason: self.stop.describe(),
        }
    }
}

/// Validates records from `pos` (where the record with offset `offset` must
/// start) to the end of the file or the first invalid record, calling `each`
/// with the position and offset of every valid record.
pub(crate) fn scan(
    reader: &mut ChunkReader,
    mut pos: u64,
    mut offset: u64,
    mut each: impl FnMut(u64, u64),
) -> Result<Scan> {
    let mut records = 0;
    let mut want = RECORD_OVERHEAD;
    let stop = loop {
        let len = reader.len();
        let bytes = reader.bytes_at(pos, want)?;
        if bytes.is_empty() {
            break Stop::Eof;
        }
        match record::check(bytes) {
            Check::Valid(n) => {
                let found = record::offset_of(&bytes[..n]);
                if found != offset {
                    break Stop::Corrupt {
                        reason: format!("record has offset {found}, expected {offset}"),
                        reaches_eof: false,
                    };
                }
                each(pos, offset);
                pos += n as u64;
                offset += 1;
                records += 1;
                want = RECORD_OVERHEAD;
            }
            Check::Incomplete { needed } => {
                if pos + needed as u64 > len {
                    break Stop::Incomplete;
                }
                want = needed;
            }
            Check::Corrupt {
                reason,
                declared_len,
            } => {
                break Stop::Corrupt {
                    reason,
                    reaches_eof: declared_len.is_some_and(|n| pos + n as u64 == len),
                }
            }
        }
    };
    Ok(Scan {
        end_pos: pos,
        next_offset: offset,
        records,
        stop,
    })
}

/// Scans a whole sealed segment, failing on anything but a clean end.
pub(crate) fn scan_sealed(dir: &Path, base: u64, each: impl FnMut(u64, u64)) -> Result<Scan> {
    let path = log_path(dir, base);
    let mut reader = ChunkReader::open(&path)?;
    let scan = scan(&mut reader, 0, base, each)?;
    if scan.stop != Stop::Eof {
        return Err(scan.corrupt_error(&path));
    }
    Ok(scan)
}

/// The tail of the last segment of a partition, located without changing
/// anything on disk.
#[derive(Debug)]
pub(crate) struct Tail {
    /// The raw index file (`None` if missing).
    pub index_raw: Option<Vec<u8>>,
    /// Index entries up to and including the one the scan started from, all
    /// checked or trusted; followed by the entries the scan produced.
    pub entries: Vec<IndexEntry>,
    /// The scan from the last valid index entry to the end.
    pub scan: Scan,
    /// Length of the log file when scanned.
    pub file_len: u64,
}

/// Locates the end of the valid records of segment `base`: starts from the
/// last index entry that points at a valid record with the right offset (or
/// the start of the file) and scans forward. Entries after that one are
/// discarded and regenerated by the scan using `interval`.
pub(crate) fn locate_tail(
    reader: &mut ChunkReader,
    dir: &Path,
    base: u64,
    interval: u32,
) -> Result<Tail> {
    let index_raw = index::read_raw(&index_path(dir, base))?;
    let mut entries = index_raw.as_deref().map(index::parse).unwrap_or_default();
    let file_len = reader.len();
    let mut start = IndexEntry::START;
    while let Some(&e) = entries.last() {
        if u64::from(e.position) < file_len
            && reader.probe(u64::from(e.position))? == Some(base + u64::from(e.rel_offset))
        {
            start = e;
            break;
        }
        entries.pop();
    }
    let mut policy = IndexPolicy::new(interval, u64::from(start.position));
    let scan = scan(
        reader,
        u64::from(start.position),
        base + u64::from(start.rel_offset),
        |pos, offset| {
            if let Some(e) = policy.observe(offset - base, pos) {
                entries.push(e);
            }
        },
    )?;
    Ok(Tail {
        index_raw,
        entries,
        scan,
        file_len,
    })
}

/// State of an active segment after recovery.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Recovered {
    /// Size of the log file (= position of the next record).
    pub size: u64,
    /// Offset of the next record.
    pub next_offset: u64,
    /// Position of the last index entry (0 if none).
    pub last_index_pos: u64,
}

/// Recovers the active segment `base` (the caller holds the topic lock):
/// truncates a torn or corrupt tail to the last valid record, logging a
/// warning, and makes the index file match the log.
pub(crate) fn recover_active(dir: &Path, base: u64, interval: u32) -> Result<Recovered> {
    let path = log_path(dir, base);
    let mut reader = ChunkReader::open(&path)?;
    let tail = locate_tail(&mut reader, dir, base, interval)?;
    let end = tail.scan.end_pos;
    if tail.scan.stop != Stop::Eof {
        let dropped = tail.file_len - end;
        let reason = tail.scan.stop.describe();
        tracing::warn!(
            file = %path.display(),
            position = end,
            dropped_bytes = dropped,
            reason = %reason,
            "log recovery: truncating {} at byte {end}, dropping {dropped} bytes ({reason})",
            path.display(),
        );
        let mut file = LocalStorage
            .open_append(&path, OpenMode::Existing)
            .map_err(io_err("open", &path))?;
        file.truncate(end).map_err(io_err("truncate", &path))?;
        file.sync().map_err(io_err("sync", &path))?;
    }
    let bytes = index::encode_all(&tail.entries);
    if tail.index_raw.as_deref() != Some(&bytes[..]) {
        let ipath = index_path(dir, base);
        if tail.index_raw.is_some() {
            tracing::info!(file = %ipath.display(), "log recovery: rewriting index {}", ipath.display());
        }
        index::write_file(&ipath, &bytes)?;
    }
    Ok(Recovered {
        size: end,
        next_offset: tail.scan.next_offset,
        last_index_pos: tail.entries.last().map_or(0, |e| u64::from(e.position)),
    })
}

/// Checks a sealed segment's index cheaply (present, whole entries, last
/// entry pointing at the right record, not empty for a large log) and
/// rebuilds it from the log otherwise. Rebuilding validates every record, so
/// a corrupt sealed segment is reported as an error.
pub(crate) fn ensure_sealed_index(dir: &Path, base: u64, interval: u32) -> Result<()> {
    let ipath = index_path(dir, base);
    if let Some(reason) = sealed_index_problem(dir, base, interval)? {
        tracing::warn!(file = %ipath.display(), "log recovery: rebuilding index {} ({reason})", ipath.display());
        let mut entries = Vec::new();
        let mut policy = IndexPolicy::new(interval, 0);
        scan_sealed(dir, base, |pos, offset| {
            if let Some(e) = policy.observe(offset - base, pos) {
                entries.push(e);
            }
        })?;
        index::write_file(&ipath, &index::encode_all(&entries))?;
    }
    Ok(())
}

fn sealed_index_problem(dir: &Path, base: u64, interval: u32) -> Result<Option<&'static str>> {
    let ipath = index_path(dir, base);
    let path = log_path(dir, base);
    let ilen = match fs::metadata(&ipath) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some("missing")),
        Err(e) => return Err(io_err("stat", &ipath)(e)),
    };
    if ilen % index::ENTRY_SIZE as u64 != 0 {
        return Ok(Some("partial entry"));
    }
    let mut reader = ChunkReader::open(&path)?;
    let log_len = reader.len();
    if ilen == 0 {
        let suspicious = log_len > 2 * u64::from(interval);
        return Ok(suspicious.then_some("empty index for a large segment"));
    }
    let mut last = [0u8; index::ENTRY_SIZE];
    let mut f = File::open(&ipath).map_err(io_err("open", &ipath))?;
    f.seek(SeekFrom::Start(ilen - index::ENTRY_SIZE as u64))
        .and_then(|_| f.read_exact(&mut last))
        .map_err(io_err("read", &ipath))?;
    let Some(e) = index::parse(&last).first().copied() else {
        return Ok(Some("invalid last entry"));
    };
    let ok = u64::from(e.position) < log_len
        && reader.probe(u64::from(e.position))? == Some(base + u64::from(e.rel_offset));
    Ok((!ok).then_some("last entry does not match the log"))
}
