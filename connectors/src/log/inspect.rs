//! Inspection of a topic on disk: per partition and segment, offsets,
//! record counts and sizes, as data ([`TopicInfo`]) and as text (its
//! `Display`).
//!
//! Owns the read-only full scan used by tools. It must not modify anything
//! (no recovery, no index rebuild), so it is safe to run next to a live
//! producer.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::error::{LogError, Result};
use super::segment::{self, ChunkReader, Stop};
use super::topic::LogTopic;
use super::FORMAT_VERSION;

/// What [`inspect`] found in a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic folder.
    pub path: PathBuf,
    /// The topic name.
    pub name: String,
    /// On-disk format version.
    pub format_version: u32,
    /// One entry per partition, in partition order.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// Records in all partitions.
    pub fn total_records(&self) -> u64 {
        self.partitions
            .iter()
            .map(PartitionInfo::record_count)
            .sum()
    }

    /// Bytes of log (segment files) in all partitions.
    pub fn total_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.total_bytes).sum()
    }
}

/// One partition of a [`TopicInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// First offset present.
    pub start_offset: u64,
    /// Offset after the last valid record (next offset to be written once
    /// any torn tail is recovered).
    pub end_offset: u64,
    /// Sum of the segment file sizes.
    pub total_bytes: u64,
    /// Segments in offset order.
    pub segments: Vec<SegmentInfo>,
}

impl PartitionInfo {
    /// Valid records in the partition.
    pub fn record_count(&self) -> u64 {
        self.segments.iter().map(|s| s.record_count).sum()
    }
}

/// One segment of a [`PartitionInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Offset of the segment's first record (its file name).
    pub base_offset: u64,
    /// Size of the `.log` file in bytes.
    pub size_bytes: u64,
    /// Valid records in the segment.
    pub record_count: u64,
    /// Entries in the `.index` file (0 if missing).
    pub index_entries: u64,
    /// Bytes after the last valid record: a record being written, or a torn
    /// tail a producer will truncate on recovery. Only the last segment of a
    /// partition can have any.
    pub tail_bytes: u64,
}

/// Scans every segment of the topic at `path` (the `DIR/TOPIC` folder),
/// validating every record, and reports what it holds. Read-only. Fails
/// with [`LogError::Corrupt`] on invalid data other than a torn tail of a
/// partition's last segment, and on gaps between segments.
pub fn inspect(path: impl AsRef<Path>) -> Result<TopicInfo> {
    let topic = LogTopic::open(path)?;
    let partitions = (0..topic.partitions())
        .map(|p| inspect_partition(&topic.partition_dir(p), p))
        .collect::<Result<Vec<_>>>()?;
    Ok(TopicInfo {
        path: topic.path().to_path_buf(),
        name: topic.name().to_string(),
        format_version: FORMAT_VERSION,
        partitions,
    })
}

fn inspect_partition(dir: &Path, partition: u32) -> Result<PartitionInfo> {
    let bases = segment::list_segments(dir)?;
    let mut segments = Vec::with_capacity(bases.len());
    let mut end: Option<u64> = None;
    for (i, &base) in bases.iter().enumerate() {
        let path = segment::log_path(dir, base);
        if let Some(end) = end.filter(|&end| end != base) {
            return Err(LogError::Corrupt {
                path,
                position: 0,
                reason: format!(
                    "segment starts at offset {base} but the previous segment ends at {end}"
                ),
            });
        }
        let mut reader = ChunkReader::open(&path)?;
        let size = reader.len();
        let scan = segment::scan(&mut reader, 0, base, |_, _| {})?;
        let last = i + 1 == bases.len();
        if scan.stop != Stop::Eof && !(last && scan.stop.is_torn_tail()) {
            return Err(scan.corrupt_error(&path));
        }
        let index_entries = fs::metadata(segment::index_path(dir, base))
            .map_or(0, |m| m.len() / super::index::ENTRY_SIZE as u64);
        segments.push(SegmentInfo {
            base_offset: base,
            size_bytes: size,
            record_count: scan.records,
            index_entries,
            tail_bytes: size.saturating_sub(scan.end_pos),
        });
        end = Some(scan.next_offset);
    }
    Ok(PartitionInfo {
        partition,
        start_offset: bases.first().copied().unwrap_or(0),
        end_offset: end.unwrap_or(0),
        total_bytes: segments.iter().map(|s| s.size_bytes).sum(),
        segments,
    })
}

impl fmt::Display for TopicInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "topic {} at {} (format v{}): {} partitions, {} records, {} bytes",
            self.name,
            self.path.display(),
            self.format_version,
            self.partitions.len(),
            self.total_records(),
            self.total_bytes()
        )?;
        writeln!(
            f,
            "{:>9}  {:>20}  {:>20}  {:>12}  {:>14}  {:>8}",
            "partition", "start", "end", "records", "bytes", "segments"
        )?;
        for p in &self.partitions {
            writeln!(
                f,
                "{:>9}  {:>20}  {:>20}  {:>12}  {:>14}  {:>8}",
                p.partition,
                p.start_offset,
                p.end_offset,
                p.record_count(),
                p.total_bytes,
                p.segments.len()
            )?;
            for s in &p.segments {
                write!(
                    f,
                    "{:>9}  segment {:020}  {:>12} records  {:>14} bytes  {:>6} index entries",
                    "", s.base_offset, s.record_count, s.size_bytes, s.index_entries
                )?;
                if s.tail_bytes > 0 {
                    write!(f, "  ({} bytes of incomplete tail)", s.tail_bytes)?;
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}
