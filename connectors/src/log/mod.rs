//! The on-disk, Kafka-like partitioned log: storage, and the engine source
//! and sink over it.
//!
//! The storage layer owns the bytes on disk: topic metadata, partition
//! folders, segment files, their sparse offset indexes, crash recovery, the
//! single producer that appends and the readers that tail partitions. It does
//! not depend on the engine (no `runnel::` types in its files). The adapters
//! that expose a topic as an engine [`LogSource`] and [`LogSink`]
//! (`source.rs`, `sink.rs`), and as a static table ([`read_log_table`],
//! `table.rs`), use only the storage layer's public API.
//!
//! # On-disk format (format version 1)
//!
//! ```text
//! DIR/TOPIC/
//!   topic.json                  {"format_version": 1, "partitions": N}
//!   .lock                       producer lock (flock-style, see below)
//!   0/                          one folder per partition, named by number
//!     00000000000000000000.log    segment: records with offsets >= base
//!     00000000000000000000.index  sparse offset index of that segment
//!     00000000000000004711.log    next segment, named by its base offset
//!     00000000000000004711.index
//!   1/ ...
//! ```
//!
//! *Segments.* A segment file is a plain concatenation of records whose
//! offsets are consecutive, starting at the base offset in its name (20
//! decimal digits, zero padded). The next segment's base offset is exactly
//! the offset following the previous segment's last record. Only the last
//! segment of a partition (the *active* one) is ever written to; the others
//! are *sealed* and never change. A segment never grows beyond the
//! producer's `segment_bytes` (default 64 MiB, at most 2 GiB): a record that
//! does not fit in the active segment's remaining space rolls the segment
//! first (a sealed segment is fsynced before its successor is created).
//!
//! *Records.* All integers are little-endian:
//!
//! ```text
//! offset  size  field
//!      0     4  length: u32      bytes that follow this field (28 + key + value)
//!      4     4  crc: u32         CRC-32 (IEEE, crc32fast) of bytes 8..4+length
//!      8     8  offset: u64      absolute offset of the record
//!     16     8  timestamp: i64   milliseconds, producer-supplied
//!     24     4  key_len: i32     -1 = null key, otherwise the key's length
//!     28     k  key bytes
//!   28+k     4  value_len: i32   -1 = null value, otherwise the value's length
//!   32+k     v  value bytes
//! ```
//!
//! so a record takes `32 + key + value` bytes on disk.
//!
//! *Index.* `*.index` holds 8-byte entries `relative_offset: u32,
//! position: u32` (relative to the segment's base offset, byte position in
//! the `.log`), strictly increasing in both fields. An entry is written for a
//! record when at least `index_interval_bytes` (default 4 KiB) of log lie
//! between the previous entry (or the start of the file) and that record, so
//! a lookup is a binary search followed by a scan of a few KiB. The index is
//! derived data: a producer rebuilds it from the log when it is missing or
//! inconsistent, and readers fall back to scanning when an entry does not
//! match the log.
//!
//! # Concurrency and crash safety
//!
//! * A topic's files must only be changed through this module while it is
//!   in use (readers memory-map sealed segments; truncating one under them
//!   would crash the reading process).
//! * One producer per topic at a time, enforced with an OS file lock on
//!   `DIR/TOPIC/.lock` (released automatically if the process dies). Any
//!   number of readers, in any process, may read concurrently.
//! * Readers see records once the producer has written them to the OS
//!   ([`LogProducer::flush`] or a full write buffer). Durability against
//!   power loss needs [`LogProducer::sync`].
//! * Opening a producer runs recovery under the lock: the tail of each
//!   partition's active segment (from its last valid index entry to the end
//!   of the file) is validated, and a torn or corrupt tail is truncated to
//!   the last good record with a `tracing::warn!` naming the file, the
//!   position and the number of bytes dropped. [`LogTopic::open`] itself is
//!   read-only (a writer may be live in another process); until a producer
//!   recovers it, readers treat a torn tail as the end of the log.
//!   Precisely: recovery scans from the last index entry that points at a
//!   valid record, and the first invalid record found (partial, bad CRC,
//!   bad length, wrong offset) and everything after it are dropped. That
//!   stretch is usually about one index interval plus the last write
//!   buffer; records in it that had been synced before being damaged (disk
//!   corruption rather than a crash) are dropped too, with the warning.
//! * Corruption anywhere else (a sealed segment, or the middle of the active
//!   one) is reported as [`LogError::Corrupt`] with the file and position;
//!   records are never silently skipped.
//!
//! # Reading
//!
//! Sealed segments are read through a read-only memory map (`memmap2`), so
//! the hot read path does no syscalls and no allocation per record: it
//! validates the CRC and hands out slices of the map. The active segment is
//! read with positioned reads into a reusable buffer instead of a map, since
//! recovery may truncate it (a truncated map would fault); when a reader
//! reaches the end it re-checks the file length and looks for the next
//! segment, so records appended later are picked up.

mod error;
mod index;
mod inspect;
mod lock;
mod partition;
mod producer;
mod reader;
mod record;
mod segment;
mod signal;
mod sink;
mod source;
mod table;
mod topic;

#[cfg(test)]
mod tests;

pub use error::{LogError, Result};
pub use inspect::{inspect, PartitionInfo, SegmentInfo, TopicInfo};
pub use producer::{partition_for_key, LogProducer, ProducerConfig};
pub use reader::PartitionReader;
pub use record::{Record, RecordRef, RECORD_OVERHEAD};
pub use signal::{AppendListener, AppendSignal};
pub use sink::{LogSink, SINK_MARKER_FILE};
pub use source::{LogSource, LogSourceOptions, StartingOffsets, LOG_SOURCE_OPTION_KEYS};
pub use table::{read_log_table, LogTableReloader};
pub use topic::LogTopic;

/// Version of the on-disk format written to `topic.json`. Opening a topic
/// with a different version is an error.
pub const FORMAT_VERSION: u32 = 1;

/// Default maximum size of a segment file: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Largest allowed `segment_bytes` (2 GiB), so that index positions fit a
/// `u32`.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 31;

/// Default spacing of sparse index entries: one per 4 KiB of log.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u32 = 4096;
