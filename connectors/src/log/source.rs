//! The log source: a topic of the on-disk partitioned log read as a stream,
//! like Spark's Kafka source.
//!
//! # Rows
//!
//! `key string, value string, topic string, partition bigint, offset bigint,
//! timestamp timestamp`: one row per record. Key and value are decoded as
//! UTF-8, **lossily**: invalid bytes become U+FFFD (the record is still
//! emitted, and counted in the metric `lossyUtf8Records`). A null key or
//! value is a null column. `timestamp` is the record's producer timestamp
//! (milliseconds) as a timestamp. A row's ingest time is the moment the
//! source read it ([`runnel::clock::now_ns`]), not the moment it was
//! appended: the record timestamp is producer-supplied and on the wall
//! clock, so it cannot stand for an append time.
//!
//! # Offsets
//!
//! `{"partitions": {"0": 42, "1": 17, ...}}`: for every partition, the
//! offset of the next record to read. A restart at an offset neither
//! re-reads nor skips a record.
//!
//! # Modes
//!
//! * continuous: [`Source::poll`] reads the partitions round-robin, a chunk
//!   of records from each ([`PartitionReader::read_batch`]), at most
//!   [`LogSourceOptions::max_records_per_poll`] records per call. Records
//!   appended later (by a producer in this or another process) are picked
//!   up. A producer in the same process wakes the source's task when it
//!   flushes ([`super::AppendSignal`]): the records are read at once, with
//!   no polling delay. Producers in other processes wake nobody: while the
//!   task is awake after recent records (the wait strategy's spin and yield
//!   time, [`runnel::continuous::TaskWaker::awake_for`]), the source looks
//!   at the files every 20 µs and answers `Idle`, so the task keeps
//!   polling; after that it answers `IdleUntil(now + poll_interval)` and
//!   does not look again before then (each look costs a `pread` per
//!   partition, and a `stat` for a rolled segment at most once a
//!   millisecond, `ROLL_LOOK`; a look that read every partition to its end
//!   counts as a look). A record from another process is so seen within
//!   about 20 µs of its flush while records keep coming (a millisecond
//!   right after a segment roll), and within `poll_interval` after a pause.
//!   With [`LogSourceOptions::until_idle`], the first look that finds every
//!   partition at its end exhausts the source.
//! * micro-batch: [`Replayable::latest_offset`] is the partitions' current end
//!   offsets, at most [`LogSourceOptions::max_records_per_trigger`] records
//!   past the current position (shared out in proportion to each
//!   partition's backlog); [`Replayable::read_range`] re-reads exactly the
//!   records of a logged range, in a later process too.
//!
//! `starting_offsets=latest` (the default, as in Spark) starts at the end of
//! every partition as it is when the query starts without a checkpoint. In
//! micro-batch mode that position is logged as a first, empty batch, so
//! that a restart before anything else committed starts from the same
//! place. (Without a checkpoint continuous mode has no such record: a crash
//! before the first durable epoch starts from the then-latest end again, as
//! Spark does.)
//!
//! # I/O
//!
//! [`Source::is_blocking`] is `false`: sealed segments are read through a
//! memory map and the active segment with positioned reads of data that the
//! producer has just written, so reads are served from the page cache. A
//! topic whose data is not cached (a cold start on a slow disk) can make a
//! poll take as long as the disk does; the engine's wait strategy is not
//! affected otherwise.
//!
//! # Damage
//!
//! A torn tail (a producer that died mid-write and has not been reopened)
//! is the end of the partition for this source: the records before it are
//! read, and records appended after a producer's recovery are read
//! afterwards. Corruption elsewhere stops the query with the storage
//! layer's error (file and position). An offset that is no longer in the
//! topic (a checkpoint ahead of the topic's end: the topic was recreated or
//! lost records) is an error, or with `fail_on_data_loss=false` a warning
//! and a jump to the end.
//!
//! This module adapts a topic to the engine's [`Source`] trait using only
//! the storage layer's public API; it must not write to the topic.

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, Int64Builder, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use runnel::clock::now_ns;
use runnel::Replayable;
use runnel::{
    schema, timestamp_type, DataType, EngineError, PollStatus, Result, Row, SchemaRef, Source,
    SourceBatch, SourceContext, SourceOffset, SourceOutput, Value,
};

use super::{AppendListener, AppendSignal, LogError, LogTopic, PartitionReader, RecordRef};
use crate::options::{normalise_key, OptionParser};
use crate::partitions::share_out;

const OPTIONS: OptionParser = OptionParser::new("log source");

/// Where a query without a checkpoint starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartingOffsets {
    /// At the first record of every partition.
    Earliest,
    /// At the end of every partition: only records appended after the
    /// query started are read (the default, as in Spark).
    #[default]
    Latest,
}

/// Settings of a [`LogSource`]. Build one with [`LogSourceOptions::default`]
/// and struct update syntax, or from string pairs with
/// [`LogSourceOptions::from_pairs`].
#[derive(Clone, Debug)]
pub struct LogSourceOptions {
    /// Where to start without a checkpoint (default
    /// [`StartingOffsets::Latest`]).
    pub starting_offsets: StartingOffsets,
    /// The stream ends once every partition has been read to its end
    /// (default `false`: wait for new records forever).
    pub until_idle: bool,
    /// Micro-batch: at most this many records per batch, over all
    /// partitions (default: no limit). Spark's `maxOffsetsPerTrigger`.
    pub max_records_per_trigger: Option<u64>,
    /// Continuous: at most this many records per poll (default 512).
    pub max_records_per_poll: usize,
    /// Continuous: least time between two looks at partitions that were all
    /// at their end, in microseconds (default 1000). 0 looks at every poll.
    pub poll_interval_us: u64,
    /// Whether a checkpointed offset beyond a partition's end is an error
    /// (default `true`); if `false`, a warning and a jump to the end.
    pub fail_on_data_loss: bool,
}

impl Default for LogSourceOptions {
    fn default() -> Self {
        LogSourceOptions {
            starting_offsets: StartingOffsets::Latest,
            until_idle: false,
            max_records_per_trigger: None,
            max_records_per_poll: 512,
            poll_interval_us: 1000,
            fail_on_data_loss: true,
        }
    }
}

/// The option keys [`LogSourceOptions::from_pairs`] accepts, with the form
/// of their values. Keys are matched ignoring case, `_`, `-` and `.`, so
/// Spark's spellings (`startingOffsets`, `maxOffsetsPerTrigger`,
/// `failOnDataLoss`) work too.
pub const LOG_SOURCE_OPTION_KEYS: &[(&str, &str)] = &[
    ("starting_offsets", "earliest|latest"),
    ("until_idle", "true|false"),
    (
        "max_records_per_trigger",
        "a count (alias: max_offsets_per_trigger)",
    ),
    ("max_records_per_poll", "a count"),
    ("poll_interval", "a duration: 1ms, 500us, 0"),
    ("fail_on_data_loss", "true|false"),
];

impl LogSourceOptions {
    /// Options from `(key, value)` pairs over the defaults; see
    /// [`LOG_SOURCE_OPTION_KEYS`]. An unknown key is an error that names it
    /// and lists the valid ones; a malformed value is an error naming key
    /// and value.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<LogSourceOptions>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut o = LogSourceOptions::default();
        for (key, value) in pairs {
            let (key, v) = (key.as_ref(), value.as_ref());
            match normalise_key(key).as_str() {
                "startingoffsets" => {
                    o.starting_offsets = match v.trim().to_ascii_lowercase().as_str() {
                        "earliest" => StartingOffsets::Earliest,
                        "latest" => StartingOffsets::Latest,
                        _ => return Err(OPTIONS.err(key, v, "earliest or latest")),
                    }
                }
                "untilidle" => o.until_idle = OPTIONS.bool(key, v)?,
                "maxrecordspertrigger" | "maxoffsetspertrigger" => {
                    o.max_records_per_trigger = Some(OPTIONS.count::<u64>(key, v)?)
                }
                "maxrecordsperpoll" => {
                    o.max_records_per_poll = usize::try_from(OPTIONS.count::<u64>(key, v)?)
                        .map_err(|_| OPTIONS.err(key, v, "a smaller count"))?
                }
                "pollinterval" => {
                    let t = v.trim();
                    o.poll_interval_us = if t == "0" {
                        0
                    } else {
                        runnel::time::parse_duration_us(t)
                            .map_err(|e| OPTIONS.err(key, v, &format!("a duration ({e})")))?
                            as u64
                    }
                }
                "failondataloss" => o.fail_on_data_loss = OPTIONS.bool(key, v)?,
                _ => {
                    let valid: Vec<&str> = LOG_SOURCE_OPTION_KEYS.iter().map(|(k, _)| *k).collect();
                    return Err(EngineError::Plan(format!(
                        "unknown log source option '{key}'; valid options: {}",
                        valid.join(", ")
                    )));
                }
            }
        }
        Ok(o)
    }
}

/// A topic of the partitioned log read as a stream (see the module docs).
pub struct LogSource {
    topic: LogTopic,
    options: LogSourceOptions,
    topic_value: Value,
    /// One reader per partition once opened (`None` until needed).
    readers: Vec<Option<PartitionReader>>,
    /// Next offset to read per partition.
    positions: Vec<u64>,
    /// Micro-batch with `latest`: the starting position still has to be
    /// logged as an empty first batch.
    anchor_pending: bool,
    /// Partition the next poll starts with.
    next_partition: usize,
    /// Continuous: no look at the files before this [`now_ns`] time.
    idle_until: u64,
    /// Continuous: the wait until `idle_until` is a short one while the
    /// task is awake (answered [`PollStatus::Idle`]).
    hot: bool,
    /// Continuous: when the last look found records ([`now_ns`] time).
    last_data_ns: u64,
    /// Continuous: how long after its last row the task keeps polling
    /// without a wake-up ([`runnel::continuous::TaskWaker::awake_for`],
    /// with a margin).
    awake_ns: u64,
    exhausted: bool,
    lossy_utf8: u64,
    /// Micro-batch: records left in the topic past the end of the last
    /// planned batch, known from the end offsets `latest_offset` reads
    /// anyway (reported as `offsetsBehindLatest`).
    behind_latest: Option<u64>,
    /// Continuous: the end offsets last read for `offsetsBehindLatest`, and
    /// when ([`now_ns`]); read again at most every [`END_PROBE_NS`].
    end_probe: RefCell<Option<(u64, Vec<u64>)>>,
    /// Appends by producers in this process.
    signal: Arc<AppendSignal>,
    /// `signal`'s count when the last look found every partition at its end.
    seen_appends: u64,
    /// Wakes this source's task on an append in this process.
    listener: Option<Arc<dyn AppendListener>>,
}

/// Continuous: how often the partitions' end offsets are read to report
/// the backlog (`offsetsBehindLatest`); the report is at most this stale.
const END_PROBE_NS: u64 = 1_000_000_000;

/// Continuous: while the task is awake after recent records, how often the
/// files are looked at for appends by other processes (which wake nobody).
const HOT_LOOK_NS: u64 = 20_000;

/// Continuous: how often a partition's reader, at the end of its active
/// segment, looks for the next segment (a roll) when the segment has not
/// grown; between two looks it only reads the segment's length. A roll (one
/// per 64 MiB by default) is noticed up to this late.
const ROLL_LOOK: Duration = Duration::from_millis(1);

/// Wakes a source's task when a producer in this process appends.
struct WakeOnAppend(Arc<runnel::continuous::TaskWaker>);

impl AppendListener for WakeOnAppend {
    fn appended(&self) {
        self.0.wake_if_sleeping();
    }
}

fn source_err(topic: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> EngineError {
    EngineError::SourceFailed {
        name: format!("log {}", topic.display()),
        source: std::sync::Arc::from(e.into()),
    }
}

fn log_err(e: LogError) -> EngineError {
    EngineError::source_failed("log", e)
}

/// Decodes key or value bytes (lossy UTF-8), noting a lossy decode.
#[inline]
fn text_value(bytes: Option<&[u8]>, lossy: &mut bool) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match String::from_utf8_lossy(b) {
            Cow::Borrowed(s) => Value::str(s),
            Cow::Owned(s) => {
                *lossy = true;
                Value::str(&s)
            }
        },
    }
}

#[inline]
fn record_row(rec: &RecordRef<'_>, topic: &Value, partition: u32, lossy: &mut u64) -> Row {
    let mut row = Row::new();
    let mut was_lossy = false;
    row.push(text_value(rec.key, &mut was_lossy));
    row.push(text_value(rec.value, &mut was_lossy));
    *lossy += u64::from(was_lossy);
    row.push(topic.clone());
    row.push(Value::Int64(i64::from(partition)));
    row.push(Value::Int64(rec.offset as i64));
    row.push(Value::Timestamp(rec.timestamp_ms.saturating_mul(1000)));
    row
}

impl LogSource {
    /// A source reading the topic at `topic_path` (the `DIR/TOPIC` folder,
    /// which must exist: create it with [`LogTopic::create`] or a producer).
    pub fn new(topic_path: impl AsRef<Path>, options: LogSourceOptions) -> Result<LogSource> {
        let topic = LogTopic::open(topic_path.as_ref()).map_err(log_err)?;
        let n = topic.partitions() as usize;
        let topic_value = Value::str(topic.name());
        Ok(LogSource {
            topic,
            options,
            topic_value,
            readers: (0..n).map(|_| None).collect(),
            positions: vec![0; n],
            anchor_pending: false,
            next_partition: 0,
            idle_until: 0,
            hot: false,
            last_data_ns: 0,
            awake_ns: 0,
            exhausted: false,
            lossy_utf8: 0,
            behind_latest: None,
            end_probe: RefCell::new(None),
            signal: AppendSignal::for_topic(topic_path.as_ref()),
            seen_appends: 0,
            listener: None,
        })
    }

    /// The schema: `key string, value string, topic string, partition
    /// bigint, offset bigint, timestamp timestamp`.
    pub fn output_schema() -> SchemaRef {
        schema(&[
            ("key", DataType::Utf8),
            ("value", DataType::Utf8),
            ("topic", DataType::Utf8),
            ("partition", DataType::Int64),
            ("offset", DataType::Int64),
            ("timestamp", timestamp_type()),
        ])
    }

    /// The topic read.
    pub fn topic(&self) -> &LogTopic {
        &self.topic
    }

    /// The options.
    pub fn options(&self) -> &LogSourceOptions {
        &self.options
    }

    fn path(&self) -> &Path {
        self.topic.path()
    }

    /// Continuous: records between the positions and the partitions' ends
    /// (read at most every [`END_PROBE_NS`], so appends since then are not
    /// counted). `None` when the ends cannot be read.
    fn behind_ends(&self) -> Option<u64> {
        let now = now_ns();
        let mut probe = self.end_probe.borrow_mut();
        if probe
            .as_ref()
            .is_none_or(|(at, _)| now.saturating_sub(*at) >= END_PROBE_NS)
        {
            *probe = Some((now, self.topic.end_offsets().ok()?));
        }
        let (_, ends) = probe.as_ref()?;
        Some(
            ends.iter()
                .zip(&self.positions)
                .map(|(e, p)| e.saturating_sub(*p))
                .sum(),
        )
    }

    fn offset_of(positions: &[u64]) -> SourceOffset {
        SourceOffset::from_positions(positions.iter().copied())
    }

    /// The per-partition positions of an offset this source wrote; partitions
    /// it does not name take `default`.
    fn parse_offset(&self, offset: &SourceOffset, default: &[u64]) -> Result<Vec<u64>> {
        offset
            .positions(default)
            .map_err(|e| source_err(self.path(), e))
    }

    fn initial_positions(&self) -> Result<Vec<u64>> {
        match self.options.starting_offsets {
            StartingOffsets::Earliest => self.topic.start_offsets().map_err(log_err),
            StartingOffsets::Latest => self.topic.end_offsets().map_err(log_err),
        }
    }

    /// Checks positions against the topic's current offsets: a position past
    /// the end is data loss (error, or a jump to the end), one before the
    /// start moves to the start.
    fn check_positions(&self, positions: &mut [u64]) -> Result<()> {
        let starts = self.topic.start_offsets().map_err(log_err)?;
        let ends = self.topic.end_offsets().map_err(log_err)?;
        for (p, pos) in positions.iter_mut().enumerate() {
            if *pos > ends[p] {
                let msg = format!(
                    "partition {p} is at offset {pos} in the checkpoint, but the topic ends at \
                     {} (it was recreated or lost records)",
                    ends[p]
                );
                if self.options.fail_on_data_loss {
                    return Err(source_err(
                        self.path(),
                        format!(
                            "{msg}; delete the checkpoint, or set fail_on_data_loss=false to \
                             continue from the end"
                        ),
                    ));
                }
                tracing::warn!(topic = %self.path().display(), "{msg}: continuing from the end");
                *pos = ends[p];
            } else if *pos < starts[p] {
                tracing::warn!(
                    topic = %self.path().display(),
                    "partition {p}: offset {pos} is no longer in the topic, starting at {}",
                    starts[p]
                );
                *pos = starts[p];
            }
        }
        Ok(())
    }

    /// Positions the reader of partition `p` at `at` (reusing it when it is
    /// there already).
    fn seek_reader(&mut self, p: usize, at: u64) -> Result<()> {
        let reusable = self.readers[p].as_ref().is_some_and(|r| r.position() == at);
        if !reusable {
            self.readers[p] = Some(self.topic.reader_at(p as u32, at).map_err(log_err)?);
        }
        self.positions[p] = at;
        Ok(())
    }

    /// Emits up to `max` records of partition `p`; returns how many.
    fn read_partition(
        &mut self,
        p: usize,
        max: usize,
        out: &mut dyn SourceOutput,
    ) -> Result<usize> {
        let topic_value = self.topic_value.clone();
        let mut lossy = 0u64;
        let mut failed = None;
        let tail = !self.options.until_idle;
        let n = self.read_partition_with(p, max, tail, &mut |rec, ingest_ns| {
            if failed.is_none() {
                let row = record_row(rec, &topic_value, p as u32, &mut lossy);
                if let Err(e) = out.emit(row, ingest_ns) {
                    failed = Some(e);
                }
            }
        })?;
        self.lossy_utf8 += lossy;
        match failed {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Hands up to `max` records of partition `p` to `each` with their
    /// ingest time, and moves the partition's position past them.
    fn read_partition_with(
        &mut self,
        p: usize,
        max: usize,
        tail: bool,
        each: &mut dyn FnMut(&RecordRef<'_>, u64),
    ) -> Result<usize> {
        let Some(reader) = self.readers[p].as_mut() else {
            return Err(source_err(
                self.topic.path(),
                "the source was polled before open",
            ));
        };
        // A continuous tail (not a bounded read) looks for segment rolls
        // only now and then: it looks for appends every few µs.
        reader.look_for_rolls_every(if tail { ROLL_LOOK } else { Duration::ZERO });
        let ingest_ns = now_ns();
        let n = reader
            .read_batch(max, |rec| each(&rec, ingest_ns))
            .map_err(log_err)?;
        self.positions[p] = reader.position();
        Ok(n)
    }

    /// Micro-batch mode: hands every record of the logged range to `each`
    /// (partition by partition, in offset order).
    fn read_range_with(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        each: &mut dyn FnMut(&RecordRef<'_>, u32, u64),
    ) -> Result<()> {
        let to = self.parse_offset(end, &self.positions.clone())?;
        let from = match start {
            Some(s) => self.parse_offset(s, &to)?,
            // No earlier batch: `earliest` reads from the first records; with
            // `latest` the first batch is the empty anchor batch.
            None => match self.options.starting_offsets {
                StartingOffsets::Earliest => self.topic.start_offsets().map_err(log_err)?,
                StartingOffsets::Latest => to.clone(),
            },
        };
        for p in 0..self.readers.len() {
            if from[p] > to[p] && !self.options.fail_on_data_loss {
                // The topic went back (data loss accepted at open): nothing
                // to read in this partition.
                self.positions[p] = to[p];
                continue;
            }
            if from[p] > to[p] {
                return Err(source_err(
                    self.path(),
                    format!(
                        "partition {p}: batch range {} .. {} runs backwards",
                        from[p], to[p]
                    ),
                ));
            }
            if from[p] == to[p] {
                self.positions[p] = to[p];
                continue;
            }
            self.seek_reader(p, from[p])?;
            while self.positions[p] < to[p] {
                let want = (to[p] - self.positions[p]).min(4096) as usize;
                let got = self.read_partition_with(p, want, false, &mut |rec, ingest| {
                    each(rec, p as u32, ingest)
                })?;
                if got == 0 {
                    return Err(source_err(
                        self.path(),
                        format!(
                            "partition {p} ends at offset {}, but the logged batch needs records \
                             up to {} (the topic was recreated or lost records)",
                            self.positions[p], to[p]
                        ),
                    ));
                }
            }
        }
        self.anchor_pending = false;
        Ok(())
    }
}

/// Arrow builders of the log source's columns.
struct Columns {
    key: StringBuilder,
    value: StringBuilder,
    partition: Int64Builder,
    offset: Int64Builder,
    timestamp: TimestampMicrosecondBuilder,
    ingest_ns: Vec<u64>,
    lossy: u64,
}

impl Columns {
    fn text(b: &mut StringBuilder, bytes: Option<&[u8]>, lossy: &mut bool) {
        match bytes {
            None => b.append_null(),
            Some(bytes) => match String::from_utf8_lossy(bytes) {
                Cow::Borrowed(s) => b.append_value(s),
                Cow::Owned(s) => {
                    *lossy = true;
                    b.append_value(s)
                }
            },
        }
    }

    fn push(&mut self, rec: &RecordRef<'_>, partition: u32, ingest_ns: u64) {
        let mut was_lossy = false;
        Self::text(&mut self.key, rec.key, &mut was_lossy);
        Self::text(&mut self.value, rec.value, &mut was_lossy);
        self.lossy += u64::from(was_lossy);
        self.partition.append_value(i64::from(partition));
        self.offset.append_value(rec.offset as i64);
        self.timestamp
            .append_value(rec.timestamp_ms.saturating_mul(1000));
        self.ingest_ns.push(ingest_ns);
    }
}

impl Source for LogSource {
    fn describe(&self) -> String {
        format!("LogSource[{}]", self.path().display())
    }

    fn schema(&self) -> SchemaRef {
        Self::output_schema()
    }

    fn open(&mut self, ctx: &SourceContext, start: Option<&SourceOffset>) -> Result<()> {
        let listener: Arc<dyn AppendListener> = Arc::new(WakeOnAppend(ctx.waker.clone()));
        self.signal.listen(&listener);
        self.listener = Some(listener);
        let initial = self.initial_positions()?;
        let mut positions = match start {
            Some(offset) => self.parse_offset(offset, &initial)?,
            None => initial,
        };
        self.check_positions(&mut positions)?;
        self.anchor_pending =
            start.is_none() && self.options.starting_offsets == StartingOffsets::Latest;
        for (p, &pos) in positions.iter().enumerate() {
            self.readers[p] = Some(self.topic.reader_at(p as u32, pos).map_err(log_err)?);
        }
        self.positions = positions;
        self.next_partition = 0;
        self.idle_until = 0;
        self.hot = false;
        let awake = ctx.waker.awake_for();
        self.awake_ns = u64::try_from((awake - awake / 4).as_nanos()).unwrap_or(u64::MAX);
        self.last_data_ns = now_ns();
        self.exhausted = false;
        Ok(())
    }

    fn poll(&mut self, out: &mut dyn SourceOutput) -> Result<PollStatus> {
        if self.exhausted {
            return Ok(PollStatus::Exhausted);
        }
        let n = self.readers.len();
        // Noted before the look: an append after it is seen next time.
        let appends = self.signal.seq();
        if self.options.poll_interval_us > 0 && self.idle_until > 0 {
            if appends == self.seen_appends && now_ns() < self.idle_until {
                return Ok(if self.hot {
                    PollStatus::Idle
                } else {
                    PollStatus::IdleUntil(self.idle_until)
                });
            }
            self.idle_until = 0;
        }
        let mut budget = self.options.max_records_per_poll.max(1);
        let chunk = (budget / n).max(1);
        let mut emitted = 0;
        let mut at_end_in_a_row = 0;
        let mut p = self.next_partition;
        while budget > 0 && at_end_in_a_row < n {
            let want = chunk.min(budget);
            let got = self.read_partition(p, want, out)?;
            // Fewer than asked for: the read reached the partition's end
            // (no second read to find that out).
            if got < want {
                at_end_in_a_row += 1;
            } else {
                at_end_in_a_row = 0;
            }
            emitted += got;
            budget -= got;
            p = (p + 1) % n;
        }
        self.next_partition = p;
        let now = now_ns();
        if emitted > 0 {
            self.last_data_ns = now;
            if at_end_in_a_row == n && self.options.poll_interval_us > 0 && !self.options.until_idle
            {
                // Every partition was read to its end after `appends` was
                // noted: as after an empty look, the next one waits for an
                // append here (or HOT_LOOK_NS, for other processes), rather
                // than costing a look at the files right away.
                self.seen_appends = appends;
                self.hot = true;
                self.idle_until = now + HOT_LOOK_NS.min(self.options.poll_interval_us * 1000);
            }
            return Ok(PollStatus::Emitted(emitted));
        }
        if self.options.until_idle {
            self.exhausted = true;
            return Ok(PollStatus::Exhausted);
        }
        self.seen_appends = appends;
        if self.options.poll_interval_us == 0 {
            return Ok(PollStatus::Idle);
        }
        if now.saturating_sub(self.last_data_ns) < self.awake_ns {
            // The task is still awake after recent records: look again
            // soon (an append by another process, which wakes nobody, is
            // seen within HOT_LOOK_NS) while the task keeps polling.
            self.hot = true;
            self.idle_until = now + HOT_LOOK_NS.min(self.options.poll_interval_us * 1000);
            return Ok(PollStatus::Idle);
        }
        self.hot = false;
        self.idle_until = now + self.options.poll_interval_us * 1000;
        Ok(PollStatus::IdleUntil(self.idle_until))
    }

    fn offset(&self) -> SourceOffset {
        Self::offset_of(&self.positions)
    }

    fn ready_hint(&self) -> bool {
        self.signal.seq() != self.seen_appends
    }

    fn metrics(&self) -> Vec<(String, u64)> {
        let mut m = vec![("lossyUtf8Records".to_string(), self.lossy_utf8)];
        if let Some(behind) = self.behind_latest.or_else(|| self.behind_ends()) {
            m.push(("offsetsBehindLatest".to_string(), behind));
        }
        m
    }

    fn as_replayable(&mut self) -> Option<&mut dyn Replayable> {
        Some(self)
    }
}

impl Replayable for LogSource {
    fn is_exhausted(&self) -> bool {
        if self.exhausted {
            return true;
        }
        self.options.until_idle
            && !self.anchor_pending
            && self
                .topic
                .end_offsets()
                .is_ok_and(|ends| ends.iter().zip(&self.positions).all(|(e, p)| p >= e))
    }

    fn latest_offset(&mut self) -> Result<SourceOffset> {
        if self.anchor_pending {
            // `latest` without a checkpoint: log the starting position first.
            return Ok(Self::offset_of(&self.positions));
        }
        let ends = self.topic.end_offsets().map_err(log_err)?;
        let lags: Vec<u64> = ends
            .iter()
            .zip(&self.positions)
            .map(|(e, p)| e.saturating_sub(*p))
            .collect();
        let total: u64 = lags.iter().sum();
        let take = match self.options.max_records_per_trigger {
            Some(cap) if total > cap => share_out(&lags, cap),
            _ => lags,
        };
        self.behind_latest = Some(total.saturating_sub(take.iter().sum::<u64>()));
        let end: Vec<u64> = self
            .positions
            .iter()
            .zip(&take)
            .map(|(p, t)| p + t)
            .collect();
        Ok(Self::offset_of(&end))
    }

    fn read_range(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        out: &mut dyn SourceOutput,
    ) -> Result<()> {
        let topic_value = self.topic_value.clone();
        let mut lossy = 0u64;
        let mut failed = None;
        let read = self.read_range_with(start, end, &mut |rec, p, ingest_ns| {
            if failed.is_none() {
                let row = record_row(rec, &topic_value, p, &mut lossy);
                if let Err(e) = out.emit(row, ingest_ns) {
                    failed = Some(e);
                }
            }
        });
        self.lossy_utf8 += lossy;
        read?;
        failed.map_or(Ok(()), Err)
    }

    fn read_batch(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
    ) -> Result<SourceBatch> {
        let mut cols = Columns {
            key: StringBuilder::new(),
            value: StringBuilder::new(),
            partition: Int64Builder::new(),
            offset: Int64Builder::new(),
            timestamp: TimestampMicrosecondBuilder::new(),
            ingest_ns: Vec::new(),
            lossy: 0,
        };
        let read = self.read_range_with(start, end, &mut |rec, p, ingest_ns| {
            cols.push(rec, p, ingest_ns)
        });
        self.lossy_utf8 += cols.lossy;
        read?;
        let n = cols.ingest_ns.len();
        let schema = Self::output_schema();
        let tz = match schema.field(5).data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let topic = self.topic_value.as_str().unwrap_or_default();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(cols.key.finish()),
            Arc::new(cols.value.finish()),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(topic, n))),
            Arc::new(cols.partition.finish()),
            Arc::new(cols.offset.finish()),
            Arc::new(cols.timestamp.finish().with_timezone_opt(tz)),
        ];
        let batch = RecordBatch::try_new(schema, columns)
            .map_err(|e| EngineError::source_failed(self.describe(), e))?;
        Ok(SourceBatch {
            batch,
            ingest_ns: cols.ingest_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_spark_spellings() {
        let o = LogSourceOptions::from_pairs([
            ("startingOffsets", "earliest"),
            ("maxOffsetsPerTrigger", "100"),
            ("until_idle", "true"),
            ("poll_interval", "250us"),
            ("failOnDataLoss", "false"),
        ])
        .unwrap();
        assert_eq!(o.starting_offsets, StartingOffsets::Earliest);
        assert_eq!(o.max_records_per_trigger, Some(100));
        assert!(o.until_idle);
        assert_eq!(o.poll_interval_us, 250);
        assert!(!o.fail_on_data_loss);
        let e = LogSourceOptions::from_pairs([("bogus", "1")]).unwrap_err();
        assert!(e.to_string().contains("starting_offsets"), "{e}");
        let e = LogSourceOptions::from_pairs([("starting_offsets", "middle")]).unwrap_err();
        assert!(e.to_string().contains("earliest or latest"), "{e}");
    }
}
