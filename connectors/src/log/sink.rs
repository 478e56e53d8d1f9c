//! The log sink: a query's result rows appended to a topic of the on-disk
//! partitioned log, like Spark's Kafka sink.
//!
//! # Records
//!
//! One record per result row:
//!
//! * **value**: the `value` column as text if the schema has one (a string
//!   as is, other types in their text form, null as a null value); else the
//!   whole row as a JSON object (`{"col": value, ...}`, null columns
//!   omitted, timestamps and dates as text, as the JSON file sink writes
//!   them).
//! * **key**: the `key` column as text if the schema has one (null: a null
//!   key), else a null key.
//! * **timestamp**: the `timestamp` column (milliseconds) if the schema has
//!   one of type timestamp and it is not null, else the wall clock when the
//!   row was written.
//! * **partition**: [`partition_for_key`] of the key; a row without a key
//!   goes by the same hash of its value (null key and value: partition 0).
//!   Never round-robin: a row always goes to the same partition, whichever
//!   attempt of a batch writes it (see below).
//!
//! A topic that does not exist is created with the number of partitions
//! given to [`LogSink::new`]; an existing topic keeps its own. The sink is
//! the topic's producer (it holds the topic's lock) while the query runs.
//! Records reach the OS (and so readers) at each `commit` or when a
//! partition's write buffer fills (256 KiB), whichever comes first.
//!
//! # Guarantees
//!
//! `commit(e)` flushes and fsyncs every partition and returns
//! `{"end_offsets": [...], "epoch": e}`, which the engine stores in the
//! checkpoint of epoch or batch `e` and hands back to [`Sink::open`] on
//! recovery. The storage layer cannot truncate a topic (only a producer's
//! crash recovery cuts torn tails), so records written after the last
//! checkpoint cannot be removed; instead they are **not written again**:
//!
//! 1. On `open` with the recovered end offsets `R`, the producer's recovery
//!    runs first (cutting a torn tail), then the records in `[R_p, A_p)` of
//!    every partition `p` (`A` the end offsets now) are read back: they are
//!    output of an epoch or batch that did not reach the checkpoint. Their
//!    `(key, value)` contents are kept as a multiset of 128-bit hashes per
//!    partition.
//! 2. Until the multiset is empty, or for the first 8 commits after `open`
//!    (more batches than the engine can have written past its last durable
//!    manifest), a row whose `(key, value)` is in its partition's multiset
//!    is not written; one occurrence is taken out of the multiset instead.
//!    Other rows are written as usual.
//!
//! In **micro-batch** mode the engine re-runs exactly the batches that did
//! not reach a manifest, over the same input ranges, so it produces the
//! same rows, which go to the same partitions; the records already in the
//! topic (whole batches, or a prefix of each partition if the crash came
//! mid-batch) are matched and the rest is written: every row of those
//! batches is in the topic **exactly once**, which is Spark's "idempotent by batch id" for a sink
//! that cannot delete. (Rows written by the second attempt may come in a
//! different order than the first attempt would have written them.) This
//! needs the batch's output to be deterministic as a multiset of
//! `(key, value)`; a timestamp taken from the wall clock may differ.
//!
//! In **continuous** mode epochs are cut by a timer, so a replay is not cut
//! the same way; matching still removes the duplicates it can find in the
//! first epochs after recovery, and anything else is written again:
//! **at-least-once**. Matching can never lose a row: a row is only left out
//! when a record with the same content, written after the checkpoint and
//! not matched before, is in the topic.
//!
//! *Before the first checkpoint.* A query that dies before its first
//! checkpoint restarts without recovered state, so there is no `R`. For
//! that case the sink writes `DIR/TOPIC/.runnel-sink.json` (atomically:
//! temporary file, fsync, rename) with the end offsets at the first open of
//! a run without a checkpoint, and uses them as `R` when it is opened again
//! without a checkpoint. The file is removed after the run's eighth commit
//! (its first is then in the checkpoint), when the query ends
//! normally, and when the sink opens from a checkpoint. If a different
//! query (a fresh checkpoint) starts on a topic whose previous writer died
//! before its first checkpoint, its first epoch or batch does not write rows
//! equal to that writer's uncommitted records.
//!
//! At most 4 million records after the checkpoint are matched (about 40
//! bytes of memory each; [`LogSink::max_dedup_records`] changes the
//! limit). Beyond that the replayed rows could not be matched and would be
//! written twice, so `open` fails, naming the counts, unless the sink was
//! built with [`LogSink::allow_duplicates_past_dedup_window`]: then it
//! writes everything (at-least-once) and says so in a warning.
//!
//! This module adapts a topic to the engine's [`Sink`] trait using only the
//! storage layer's public API.

use std::collections::HashMap;
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use runnel::checkpoint::{write_atomic, LocalStorage};
use runnel::schema::column::Column;
use runnel::{EngineError, Result, Row, Sink, SinkContext};

use super::{partition_for_key, LogError, LogProducer, LogTopic};
use crate::record::RecordLayout;

/// The first-run marker file in the topic folder (see the module docs).
pub const SINK_MARKER_FILE: &str = ".runnel-sink.json";

/// Commits after `open` during which replayed rows are matched (and after
/// which the first-run marker goes): more than the batches the engine can
/// have past their sink commit without a durable manifest (micro-batch
/// mode writes a batch's manifest while the next batches run).
const REPLAY_COMMITS: u64 = 8;

/// Most records after the checkpoint that are matched against a replay.
const MAX_DEDUP_RECORDS: u64 = 4_000_000;

fn sink_err(path: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> EngineError {
    EngineError::SinkFailed {
        name: format!("log {}", path.display()),
        source: std::sync::Arc::from(e.into()),
    }
}

fn log_err(e: LogError) -> EngineError {
    EngineError::sink_failed("log", e)
}

/// Appends result rows to a topic (see the module docs).
pub struct LogSink {
    path: PathBuf,
    partitions_if_created: u32,
    max_dedup_records: u64,
    allow_duplicates: bool,
    open: Option<Open>,
}

struct Open {
    topic: LogTopic,
    producer: LogProducer,
    partitions: u32,
    layout: RecordLayout,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
    dedup: Option<Dedup>,
    /// The first-run marker file exists and belongs to this run.
    marker_pending: bool,
    commits: u64,
    skipped: u64,
}

impl Open {
    /// Appends the record encoded in the buffers (`present`: whether the
    /// key and the value are there), unless it is a duplicate of one the
    /// last run wrote.
    #[inline]
    fn send(&mut self, (has_key, has_value): (bool, bool), timestamp_ms: i64) -> Result<()> {
        let key = has_key.then_some(&self.key_buf[..]);
        let value = has_value.then_some(&self.value_buf[..]);
        let partition = match (key, value) {
            (Some(k), _) => partition_for_key(k, self.partitions),
            (None, Some(v)) => partition_for_key(v, self.partitions),
            (None, None) => 0,
        };
        if let Some(d) = &mut self.dedup {
            if d.take(partition, key, value) {
                self.skipped += 1;
                if d.left == 0 {
                    self.dedup = None;
                }
                return Ok(());
            }
        }
        self.producer
            .send(Some(partition), key, value, timestamp_ms)
            .map_err(log_err)?;
        Ok(())
    }
}

/// A 128-bit hash of a record's key and value (null distinct from empty).
fn content_hash(key: Option<&[u8]>, value: Option<&[u8]>) -> u128 {
    let mut a = DefaultHasher::new();
    let mut b = DefaultHasher::new();
    b.write_u8(0xa5);
    for h in [&mut a, &mut b] {
        for part in [key, value] {
            match part {
                None => h.write_u8(0),
                Some(bytes) => {
                    h.write_u8(1);
                    h.write_usize(bytes.len());
                    h.write(bytes);
                }
            }
        }
    }
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// Records written after the last checkpoint, by content, per partition.
struct Dedup {
    partitions: Vec<HashMap<u128, u32>>,
    left: u64,
}

impl Dedup {
    /// Reads the records in `[from_p, to_p)` of every partition.
    fn load(
        topic: &LogTopic,
        from: &[u64],
        to: &[u64],
        max: u64,
        allow_duplicates: bool,
    ) -> Result<Option<Dedup>> {
        let total: u64 = from.iter().zip(to).map(|(f, t)| t - f).sum();
        if total == 0 {
            return Ok(None);
        }
        if total > max {
            if !allow_duplicates {
                return Err(sink_err(
                    topic.path(),
                    format!(
                        "{total} records were written after the last checkpoint, more than the \
                         {max} the sink can match against the replay: the replayed rows would \
                         be written twice. Raise max_dedup_records, or accept duplicates with \
                         allow_duplicates_past_dedup_window"
                    ),
                ));
            }
            tracing::warn!(
                topic = %topic.path().display(),
                "{total} records were written after the last checkpoint, more than the \
                 {max} the sink matches against the replay: they stay and are written again \
                 (at-least-once, as allowed by allow_duplicates_past_dedup_window)"
            );
            return Ok(None);
        }
        let mut partitions = Vec::with_capacity(from.len());
        for (p, (&f, &t)) in from.iter().zip(to).enumerate() {
            let mut map = HashMap::new();
            if t > f {
                let mut reader = topic.reader_at(p as u32, f).map_err(log_err)?;
                while reader.position() < t {
                    let want = (t - reader.position()).min(4096) as usize;
                    let got = reader
                        .read_batch(want, |r| {
                            *map.entry(content_hash(r.key, r.value)).or_insert(0u32) += 1;
                        })
                        .map_err(log_err)?;
                    if got == 0 {
                        return Err(sink_err(
                            topic.path(),
                            format!("partition {p} ends before offset {t} while reading it back"),
                        ));
                    }
                }
            }
            partitions.push(map);
        }
        tracing::info!(
            topic = %topic.path().display(),
            "{total} records were written after the last checkpoint: replayed rows equal to \
             them are not written again"
        );
        Ok(Some(Dedup {
            partitions,
            left: total,
        }))
    }

    /// Takes one occurrence of this content out of partition `p`, if there.
    fn take(&mut self, p: u32, key: Option<&[u8]>, value: Option<&[u8]>) -> bool {
        let map = &mut self.partitions[p as usize];
        if map.is_empty() {
            return false;
        }
        let h = content_hash(key, value);
        match map.get_mut(&h) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    map.remove(&h);
                }
                self.left -= 1;
                true
            }
            None => false,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    version: u32,
    end_offsets: Vec<u64>,
}

fn read_marker(path: &Path, partitions: u32) -> Result<Option<Vec<u64>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(sink_err(path, e)),
    };
    match serde_json::from_slice::<Marker>(&bytes) {
        Ok(m) if m.end_offsets.len() == partitions as usize => Ok(Some(m.end_offsets)),
        _ => {
            tracing::warn!(path = %path.display(), "ignoring an unreadable first-run marker");
            Ok(None)
        }
    }
}

fn remove_marker(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(sink_err(path, e)),
    }
}

/// The end offsets of a state this sink returned from `commit`.
fn recovered_ends(state: &serde_json::Value, partitions: u32) -> Option<Vec<u64>> {
    let ends: Vec<u64> = state
        .get("end_offsets")?
        .as_array()?
        .iter()
        .map(|v| v.as_u64())
        .collect::<Option<_>>()?;
    (ends.len() == partitions as usize).then_some(ends)
}

impl LogSink {
    /// A sink appending to the topic at `topic_path` (`DIR/TOPIC`), created
    /// with `partitions_if_created` partitions (at least 1) if it does not
    /// exist yet.
    pub fn new(topic_path: impl Into<PathBuf>, partitions_if_created: u32) -> LogSink {
        LogSink {
            path: topic_path.into(),
            partitions_if_created: partitions_if_created.max(1),
            max_dedup_records: MAX_DEDUP_RECORDS,
            allow_duplicates: false,
            open: None,
        }
    }

    /// The most records written after the last checkpoint that `open`
    /// reads back to match against the replay (default 4 million, about
    /// 40 bytes of memory each).
    pub fn max_dedup_records(mut self, records: u64) -> LogSink {
        self.max_dedup_records = records;
        self
    }

    /// Accepts that rows are written twice when more records than
    /// [`LogSink::max_dedup_records`] were written after the last
    /// checkpoint: the sink is then at-least-once for that replay instead
    /// of refusing to open.
    pub fn allow_duplicates_past_dedup_window(mut self) -> LogSink {
        self.allow_duplicates = true;
        self
    }

    /// The topic folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows left out so far because an equal record written after the last
    /// checkpoint was already in the topic.
    pub fn rows_deduplicated(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| o.skipped)
    }

    fn open_topic(&self) -> Result<LogTopic> {
        match LogTopic::open(&self.path) {
            Err(LogError::NotFound { .. }) => {
                let invalid = || sink_err(&self.path, "a topic path needs a folder name");
                let name = self
                    .path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(invalid)?;
                let dir = match self.path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                match LogTopic::create(dir, name, self.partitions_if_created) {
                    Err(LogError::AlreadyExists { .. }) => {
                        LogTopic::open(&self.path).map_err(log_err)
                    }
                    other => other.map_err(log_err),
                }
            }
            other => other.map_err(log_err),
        }
    }

    fn opened(&mut self) -> Result<&mut Open> {
        let path = &self.path;
        self.open
            .as_mut()
            .ok_or_else(|| sink_err(path, "the sink was used before open"))
    }
}

impl Sink for LogSink {
    fn describe(&self) -> String {
        format!("LogSink[{}]", self.path.display())
    }

    fn open(&mut self, ctx: &SinkContext, recovered: Option<&serde_json::Value>) -> Result<()> {
        self.open = None;
        let topic = self.open_topic()?;
        let partitions = topic.partitions();
        // Opening the producer recovers the topic (cuts torn tails).
        let producer = topic.producer().map_err(log_err)?;
        let actual = producer.end_offsets();
        let marker = topic.path().join(SINK_MARKER_FILE);
        let (baseline, marker_pending) = match recovered.and_then(|r| recovered_ends(r, partitions))
        {
            Some(ends) => {
                if let Some(p) = (0..ends.len()).find(|&p| actual[p] < ends[p]) {
                    return Err(sink_err(
                        topic.path(),
                        format!(
                            "partition {p} ends at offset {}, before the last checkpoint's end \
                             offset {}: the topic was changed outside the query (delete the \
                             checkpoint to start over)",
                            actual[p], ends[p]
                        ),
                    ));
                }
                remove_marker(&marker)?;
                (ends, false)
            }
            None => {
                if recovered.is_some_and(|r| !r.is_null()) {
                    tracing::warn!(
                        topic = %topic.path().display(),
                        "the checkpoint's sink state is not a log sink's: starting as a new query"
                    );
                }
                match read_marker(&marker, partitions)? {
                    Some(ends) => {
                        let ends = ends.iter().zip(&actual).map(|(m, a)| *m.min(a)).collect();
                        (ends, true)
                    }
                    None => {
                        let bytes = serde_json::to_vec(&Marker {
                            version: 1,
                            end_offsets: actual.clone(),
                        })
                        .expect("the marker serializes");
                        write_atomic(&LocalStorage, &marker, &bytes)
                            .map_err(|e| sink_err(&marker, e))?;
                        (actual.clone(), true)
                    }
                }
            }
        };
        let dedup = Dedup::load(
            &topic,
            &baseline,
            &actual,
            self.max_dedup_records,
            self.allow_duplicates,
        )?;
        self.open = Some(Open {
            layout: RecordLayout::new(&ctx.schema),
            topic,
            producer,
            partitions,
            key_buf: Vec::with_capacity(64),
            value_buf: Vec::with_capacity(256),
            dedup,
            marker_pending,
            commits: 0,
            skipped: 0,
        });
        Ok(())
    }

    #[inline]
    fn write(&mut self, row: &Row) -> Result<()> {
        let o = self.opened()?;
        let present = o.layout.encode(row, &mut o.key_buf, &mut o.value_buf);
        let timestamp_ms = o.layout.timestamp_ms(row);
        o.send(present, timestamp_ms)
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let o = self.opened()?;
        let cols = Column::all(batch)?;
        for i in 0..batch.num_rows() {
            let present = o
                .layout
                .encode_at(&cols, i, &mut o.key_buf, &mut o.value_buf);
            let timestamp_ms = o.layout.timestamp_ms_at(&cols, i);
            o.send(present, timestamp_ms)?;
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<serde_json::Value> {
        let o = self.opened()?;
        o.producer.sync().map_err(log_err)?;
        o.commits += 1;
        if o.commits >= REPLAY_COMMITS {
            if let Some(d) = o.dedup.take() {
                tracing::warn!(
                    topic = %o.topic.path().display(),
                    "{} records written after the last checkpoint were not produced again by the \
                     replay; they stay in the topic",
                    d.left
                );
            }
        }
        if o.marker_pending && o.commits >= REPLAY_COMMITS {
            remove_marker(&o.topic.path().join(SINK_MARKER_FILE))?;
            o.marker_pending = false;
        }
        Ok(serde_json::json!({
            "end_offsets": o.producer.end_offsets(),
            "epoch": epoch,
        }))
    }

    fn close(&mut self) -> Result<()> {
        let o = self.opened()?;
        o.producer.sync().map_err(log_err)?;
        if o.marker_pending {
            remove_marker(&o.topic.path().join(SINK_MARKER_FILE))?;
            o.marker_pending = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_tells_null_from_empty() {
        assert_ne!(content_hash(None, Some(b"")), content_hash(Some(b""), None));
        assert_ne!(
            content_hash(Some(b"a"), Some(b"b")),
            content_hash(Some(b"ab"), None)
        );
        assert_eq!(
            content_hash(Some(b"k"), None),
            content_hash(Some(b"k"), None)
        );
    }
}
