//! The producer: the single writer of a topic.
//!
//! Owns the producer lock's lifetime, partition selection (explicit, by key
//! hash, round-robin) and the producer settings. It must not encode records
//! or manage segment files itself (that is `partition`), and there must never
//! be two producers of one topic at a time.

use super::error::{LogError, Result};
use super::lock::TopicLock;
use super::partition::{PartitionWriter, WriterSettings};
use super::topic::LogTopic;
use super::{DEFAULT_INDEX_INTERVAL_BYTES, DEFAULT_SEGMENT_BYTES, MAX_SEGMENT_BYTES};

/// Settings of a [`LogProducer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Maximum size of a segment file in bytes; a record that would make the
    /// active segment larger rolls it first. Default 64 MiB, at most
    /// [`MAX_SEGMENT_BYTES`]. A single record larger than this is rejected.
    pub segment_bytes: u64,
    /// Bytes of log between sparse index entries. Default 4 KiB.
    pub index_interval_bytes: u32,
    /// Per-partition write buffer: records are written to the OS when this
    /// many bytes are buffered (or on [`LogProducer::flush`]). Default
    /// 256 KiB.
    pub write_buffer_bytes: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            write_buffer_bytes: 256 * 1024,
        }
    }
}

impl ProducerConfig {
    fn validate(&self, topic: &LogTopic) -> Result<()> {
        let invalid = |reason: String| {
            Err(LogError::InvalidArgument {
                path: topic.path().to_path_buf(),
                reason,
            })
        };
        let min = super::RECORD_OVERHEAD as u64;
        if !(min..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return invalid(format!(
                "segment_bytes is {}, it must be within {min}..={MAX_SEGMENT_BYTES}",
                self.segment_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return invalid("index_interval_bytes must be positive".to_string());
        }
        Ok(())
    }
}

/// The partition a key is assigned to when no partition is given: the
/// 32-bit FNV-1a hash of the key bytes modulo `partitions`. Stable across
/// processes, platforms and versions (part of the format's contract).
/// `partitions` must be positive.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in key {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions
}

/// Appends records to a topic.
///
/// Only one producer per topic may exist at a time, in any process: opening
/// one takes an exclusive OS lock on `DIR/TOPIC/.lock` (released when the
/// producer is dropped or its process dies) and fails with
/// [`LogError::Locked`] while another producer holds it. Opening also runs
/// crash recovery on every partition (see the module documentation).
///
/// Appends are buffered per partition: [`send`](Self::send) does no syscall
/// until a partition's buffer is full. Readers see records after
/// [`flush`](Self::flush); they survive power loss after
/// [`sync`](Self::sync). Dropping the producer flushes (but does not sync).
#[derive(Debug)]
pub struct LogProducer {
    topic: LogTopic,
    writers: Vec<PartitionWriter>,
    round_robin: u32,
    /// Tells readers in this process that records became visible.
    signal: std::sync::Arc<super::signal::AppendSignal>,
    /// Declared last: released after the writers have flushed on drop.
    _lock: TopicLock,
}

impl LogTopic {
    /// Takes the topic's producer lock, recovers every partition and
    /// returns the producer, with the default [`ProducerConfig`].
    pub fn producer(&self) -> Result<LogProducer> {
        LogProducer::open(self, ProducerConfig::default())
    }

    /// Like [`LogTopic::producer`] with explicit settings.
    pub fn producer_with_config(&self, config: ProducerConfig) -> Result<LogProducer> {
        LogProducer::open(self, config)
    }
}

impl LogProducer {
    /// Opens the producer of `topic`; see [`LogTopic::producer`].
    pub fn open(topic: &LogTopic, config: ProducerConfig) -> Result<LogProducer> {
        config.validate(topic)?;
        let lock = TopicLock::acquire(topic.path())?;
        let settings = WriterSettings {
            segment_bytes: config.segment_bytes,
            index_interval_bytes: config.index_interval_bytes,
            write_buffer_bytes: config.write_buffer_bytes,
        };
        let writers = (0..topic.partitions())
            .map(|p| PartitionWriter::open(&topic.partition_dir(p), settings))
            .collect::<Result<Vec<_>>>()?;
        Ok(LogProducer {
            topic: topic.clone(),
            writers,
            round_robin: 0,
            signal: super::signal::AppendSignal::for_topic(topic.path()),
            _lock: lock,
        })
    }

    /// The topic written to.
    pub fn topic(&self) -> &LogTopic {
        &self.topic
    }

    /// Appends a record and returns `(partition, offset)`.
    ///
    /// The partition is `partition` if given, else
    /// [`partition_for_key`] of the key if there is one, else the next
    /// partition in round-robin order. `None` key or value is stored as null
    /// (distinct from empty).
    pub fn send(
        &mut self,
        partition: Option<u32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp_ms: i64,
    ) -> Result<(u32, u64)> {
        let n = self.topic.partitions();
        let p = match (partition, key) {
            (Some(p), _) => {
                self.topic.checked_partition_dir(p)?;
                p
            }
            (None, Some(key)) => partition_for_key(key, n),
            (None, None) => {
                let p = self.round_robin;
                self.round_robin = (p + 1) % n;
                p
            }
        };
        let offset = self.writers[p as usize].append(key, value, timestamp_ms)?;
        Ok((p, offset))
    }

    /// Next offset to be assigned in each partition (buffered records
    /// included).
    pub fn end_offsets(&self) -> Vec<u64> {
        self.writers
            .iter()
            .map(PartitionWriter::next_offset)
            .collect()
    }

    /// Writes all buffered records to the OS, making them visible to readers
    /// (readers in this process are woken, see [`super::AppendSignal`]).
    pub fn flush(&mut self) -> Result<()> {
        self.writers
            .iter_mut()
            .try_for_each(PartitionWriter::flush)?;
        self.signal.notify();
        Ok(())
    }

    /// Flushes and fsyncs every partition, making all records sent so far
    /// durable.
    pub fn sync(&mut self) -> Result<()> {
        self.writers
            .iter_mut()
            .try_for_each(PartitionWriter::sync)?;
        self.signal.notify();
        Ok(())
    }
}
