//! One partition folder: the appending side (active segment, buffering,
//! rolling, syncing, recovery on open) and the read-only queries of its
//! first and next offsets.
//!
//! Owns the write path of a partition; every write, fsync and creation goes
//! through the engine's [`Storage`] primitives. It must only be used by a
//! producer holding the topic lock, must never modify a sealed segment, and
//! must not know about partitioning or other partitions.

use std::path::{Path, PathBuf};

use runnel::checkpoint::{AppendFile, LocalStorage, OpenMode, Storage};

use super::error::{io_err, LogError, Result};
use super::index::IndexPolicy;
use super::record;
use super::segment::{self, ChunkReader, Recovered};
use super::DEFAULT_INDEX_INTERVAL_BYTES;

/// Settings of a [`PartitionWriter`] (validated by the producer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterSettings {
    /// Maximum segment size.
    pub segment_bytes: u64,
    /// Spacing of index entries.
    pub index_interval_bytes: u32,
    /// Buffered bytes that trigger a write to the OS.
    pub write_buffer_bytes: usize,
}

/// Appends records to the active segment of one partition.
///
/// Records are encoded into an in-memory buffer and written to the OS when
/// the buffer reaches `write_buffer_bytes`, on [`flush`](Self::flush) and
/// before a roll; index entries are written after the log bytes they point
/// at, so an index entry never refers to data that was not written.
#[derive(Debug)]
pub(crate) struct PartitionWriter {
    dir: PathBuf,
    settings: WriterSettings,
    /// Base offset of the active segment.
    base: u64,
    log_path: PathBuf,
    index_path: PathBuf,
    log: Box<dyn AppendFile>,
    index: Box<dyn AppendFile>,
    /// Logical size of the active segment, buffered bytes included.
    size: u64,
    next_offset: u64,
    policy: IndexPolicy,
    buf: Vec<u8>,
    index_buf: Vec<u8>,
    /// A segment was created since the last directory sync.
    dir_dirty: bool,
    /// A write failed; the files may end in a partial record.
    failed: bool,
}

impl PartitionWriter {
    /// Opens the partition for appending, running recovery: sealed segments
    /// get their index checked (rebuilt if needed), the active segment's
    /// tail is validated and truncated to the last good record.
    pub(crate) fn open(dir: &Path, settings: WriterSettings) -> Result<Self> {
        let interval = settings.index_interval_bytes;
        let segments = segment::list_segments(dir)?;
        let (base, recovered, fresh) = match segments.split_last() {
            None => (0, Recovered::default(), true),
            Some((&last, sealed)) => {
                for &base in sealed {
                    segment::ensure_sealed_index(dir, base, interval)?;
                }
                (last, segment::recover_active(dir, last, interval)?, false)
            }
        };
        let (log, index) = open_segment_files(dir, base, fresh)?;
        Ok(PartitionWriter {
            dir: dir.to_path_buf(),
            settings,
            base,
            log_path: segment::log_path(dir, base),
            index_path: segment::index_path(dir, base),
            log,
            index,
            size: recovered.size,
            next_offset: recovered.next_offset,
            policy: IndexPolicy::new(interval, recovered.last_index_pos),
            buf: Vec::with_capacity(settings.write_buffer_bytes),
            index_buf: Vec::new(),
            dir_dirty: fresh,
            failed: false,
        })
    }

    /// Offset the next appended record gets.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Appends one record (buffered) and returns its offset.
    pub(crate) fn append(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp_ms: i64,
    ) -> Result<u64> {
        if self.failed {
            return Err(self.failed_error());
        }
        let len = record::encoded_len(key, value) as u64;
        if len > self.settings.segment_bytes {
            return Err(LogError::InvalidArgument {
                path: self.dir.clone(),
                reason: format!(
                    "record of {len} bytes does not fit a segment of {} bytes",
                    self.settings.segment_bytes
                ),
            });
        }
        let rel = self.next_offset - self.base;
        if self.size > 0
            && (self.size + len > self.settings.segment_bytes || rel >= u64::from(u32::MAX))
        {
            self.roll()?;
        }
        let pos = self.size;
        if let Some(e) = self.policy.observe(self.next_offset - self.base, pos) {
            e.encode(&mut self.index_buf);
        }
        let offset = self.next_offset;
        record::encode_into(&mut self.buf, offset, timestamp_ms, key, value);
        self.size += len;
        self.next_offset += 1;
        if self.buf.len() >= self.settings.write_buffer_bytes {
            self.write_out()?;
        }
        Ok(offset)
    }

    /// Writes buffered records, then buffered index entries, to the OS.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.write_out()
    }

    /// Flushes, then fsyncs the active segment, its index and (if segments
    /// were created since the last sync) the partition folder.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        self.log.sync().map_err(io_err("sync", &self.log_path))?;
        self.index
            .sync()
            .map_err(io_err("sync", &self.index_path))?;
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    fn write_out(&mut self) -> Result<()> {
        if self.failed {
            return Err(self.failed_error());
        }
        if !self.buf.is_empty() {
            if let Err(e) = self.log.append(&self.buf) {
                self.failed = true;
                return Err(io_err("write", &self.log_path)(e));
            }
            self.buf.clear();
        }
        if !self.index_buf.is_empty() {
            if let Err(e) = self.index.append(&self.index_buf) {
                self.failed = true;
                return Err(io_err("write", &self.index_path)(e));
            }
            self.index_buf.clear();
        }
        Ok(())
    }

    /// Seals the active segment (written and fsynced, so a sealed segment
    /// never has a torn tail) and starts a new one at the next offset.
    fn roll(&mut self) -> Result<()> {
        self.write_out()?;
        self.log.sync().map_err(io_err("sync", &self.log_path))?;
        self.index
            .sync()
            .map_err(io_err("sync", &self.index_path))?;
        let base = self.next_offset;
        let (log, index) = open_segment_files(&self.dir, base, true)?;
        self.base = base;
        self.log = log;
        self.index = index;
        self.log_path = segment::log_path(&self.dir, base);
        self.index_path = segment::index_path(&self.dir, base);
        self.size = 0;
        self.policy = IndexPolicy::new(self.settings.index_interval_bytes, 0);
        self.dir_dirty = true;
        Ok(())
    }

    fn failed_error(&self) -> LogError {
        LogError::WriterFailed {
            path: self.log_path.clone(),
        }
    }
}

impl Drop for PartitionWriter {
    fn drop(&mut self) {
        if self.failed {
            return;
        }
        if let Err(e) = self.write_out() {
            tracing::warn!("log: could not flush on close: {e}");
        }
    }
}

/// Opens a segment's files for appending; `create` makes new empty ones
/// (the log must not exist yet).
type SegmentFiles = (Box<dyn AppendFile>, Box<dyn AppendFile>);

fn open_segment_files(dir: &Path, base: u64, create: bool) -> Result<SegmentFiles> {
    let log_path = segment::log_path(dir, base);
    let index_path = segment::index_path(dir, base);
    let (log_mode, index_mode, verb) = if create {
        // A new log must not exist yet; its index starts empty (replacing a
        // stale one, if any).
        (OpenMode::CreateNew, OpenMode::Truncate, "create")
    } else {
        (OpenMode::Existing, OpenMode::Existing, "open")
    };
    let index = LocalStorage
        .open_append(&index_path, index_mode)
        .map_err(io_err(verb, &index_path))?;
    let log = LocalStorage
        .open_append(&log_path, log_mode)
        .map_err(io_err(verb, &log_path))?;
    Ok((log, index))
}

/// Fsyncs a folder so that files created in it survive a crash.
fn sync_dir(dir: &Path) -> Result<()> {
    LocalStorage.sync_dir(dir).map_err(io_err("sync", dir))
}

/// First offset present in a partition folder (0 when empty).
pub(crate) fn start_offset(dir: &Path) -> Result<u64> {
    Ok(segment::list_segments(dir)?.first().copied().unwrap_or(0))
}

/// Offset after the last valid record written to the OS in a partition
/// folder. Read-only: a torn tail is not repaired, just not counted.
pub(crate) fn end_offset(dir: &Path) -> Result<u64> {
    let Some(&last) = segment::list_segments(dir)?.last() else {
        return Ok(0);
    };
    let mut reader = ChunkReader::open(&segment::log_path(dir, last))?;
    let tail = segment::locate_tail(&mut reader, dir, last, DEFAULT_INDEX_INTERVAL_BYTES)?;
    Ok(tail.scan.next_offset)
}
