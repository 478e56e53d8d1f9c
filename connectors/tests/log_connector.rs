//! The log source and sink end to end: real queries through the engine in
//! both modes over topics written with the storage layer's producer, and
//! crash-like restarts (a sink that fails right after its commit, or in the
//! middle of a batch, so that the engine's checkpoint does not cover what it
//! wrote).
//!
//! Expected rows are computed here from what the test produced, not from
//! the source's own reading.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runnel::{
    col, count_star, DataFrame, EngineError, MemorySink, MemoryTable, OutputMode, Result, Row,
    Sink, SinkContext, StreamingQuery, Trigger, Value,
};
use runnel_connectors::log::{LogTopic, SINK_MARKER_FILE};
use runnel_connectors::{LogSink, LogSource, LogSourceOptions, StartingOffsets};

const LIMIT: Duration = Duration::from_secs(60);
const PARTITIONS: u32 = 3;
const TS0_MS: i64 = 1_600_000_000_000;

// ---------------------------------------------------------------- helpers

#[derive(Clone, Copy, Debug)]
enum Mode {
    Continuous,
    AvailableNow,
}

const MODES: [Mode; 2] = [Mode::Continuous, Mode::AvailableNow];

fn trigger(mode: Mode) -> Trigger {
    match mode {
        Mode::Continuous => Trigger::Continuous {
            epoch_interval: Duration::from_millis(20),
        },
        Mode::AvailableNow => Trigger::AvailableNow,
    }
}

fn earliest() -> LogSourceOptions {
    LogSourceOptions {
        starting_offsets: StartingOffsets::Earliest,
        ..LogSourceOptions::default()
    }
}

fn until_idle() -> LogSourceOptions {
    LogSourceOptions {
        until_idle: true,
        ..earliest()
    }
}

/// Appends records `from..to` (key `k{i}`, value `v{i}`, partition
/// `i % 3`, timestamp `TS0 + i` ms) and syncs.
fn produce(topic: &LogTopic, from: u64, to: u64) {
    let mut producer = topic.producer().unwrap();
    for i in from..to {
        producer
            .send(
                Some((i % u64::from(PARTITIONS)) as u32),
                Some(format!("k{i}").as_bytes()),
                Some(format!("v{i}").as_bytes()),
                TS0_MS + i as i64,
            )
            .unwrap();
    }
    producer.sync().unwrap();
}

fn numbered_topic(dir: &Path, n: u64) -> LogTopic {
    let topic = LogTopic::create(dir, "events", PARTITIONS).unwrap();
    produce(&topic, 0, n);
    topic
}

/// The row the source must emit for record `i` of [`produce`].
fn expected_row(i: u64) -> Row {
    let p = i % u64::from(PARTITIONS);
    Row::from(vec![
        Value::str(&format!("k{i}")),
        Value::str(&format!("v{i}")),
        Value::str("events"),
        Value::Int64(p as i64),
        Value::Int64((i / u64::from(PARTITIONS)) as i64),
        Value::Timestamp((TS0_MS + i as i64) * 1000),
    ])
}

/// The record number of a source row (from its value `v{i}`).
fn number(row: &Row) -> u64 {
    row[1].as_str().unwrap()[1..].parse().unwrap()
}

/// Checks that `rows` are exactly records `from..to`, each once, with the
/// right columns, and in offset order within each partition.
fn assert_records(rows: &[Row], from: u64, to: u64) {
    let mut seen: BTreeMap<u64, &Row> = BTreeMap::new();
    let mut last_offset: HashMap<i64, i64> = HashMap::new();
    for row in rows {
        let i = number(row);
        assert!(seen.insert(i, row).is_none(), "record {i} emitted twice");
        let (p, o) = (row[3].as_i64().unwrap(), row[4].as_i64().unwrap());
        if let Some(prev) = last_offset.insert(p, o) {
            assert!(o > prev, "partition {p}: offset {o} after {prev}");
        }
    }
    let missing: Vec<u64> = (from..to).filter(|i| !seen.contains_key(i)).collect();
    assert!(missing.is_empty(), "records never emitted: {missing:?}");
    assert_eq!(seen.len() as u64, to - from, "records outside {from}..{to}");
    for (i, row) in seen {
        assert_eq!(*row, expected_row(i));
    }
}

fn start(
    source: LogSource,
    trig: Trigger,
    checkpoint: Option<&Path>,
) -> (StreamingQuery, MemoryTable) {
    let (sink, table) = MemorySink::new("x");
    let mut w = DataFrame::from_source("t", source)
        .write_stream(sink)
        .trigger(trig);
    if let Some(c) = checkpoint {
        w = w.checkpoint(c);
    }
    (w.start().unwrap(), table)
}

fn run_to_end(source: LogSource, mode: Mode, checkpoint: Option<&Path>) -> Vec<Row> {
    let (q, table) = start(source, trigger(mode), checkpoint);
    assert!(
        q.await_termination_timeout(LIMIT).unwrap(),
        "{mode:?} query did not end"
    );
    table.rows()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every `(key, value)` in the topic, by partition, in offset order.
fn topic_records(path: &Path) -> Vec<Vec<(Option<String>, Option<String>)>> {
    let topic = LogTopic::open(path).unwrap();
    (0..topic.partitions())
        .map(|p| {
            let mut reader = topic.reader(p).unwrap();
            let mut out = Vec::new();
            while let Some(r) = reader.next_record().unwrap() {
                let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                out.push((text(r.key), text(r.value)));
            }
            out
        })
        .collect()
}

/// All values in the topic, sorted.
fn topic_values(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = topic_records(path)
        .into_iter()
        .flatten()
        .map(|(_, v)| v.unwrap())
        .collect();
    v.sort();
    v
}

fn last_segment(partition_dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = fs::read_dir(partition_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

/// Cuts `bytes` off the end of the last segment of `partition`.
fn tear_tail(topic: &Path, partition: u32, bytes: u64) {
    let seg = last_segment(&topic.join(partition.to_string()));
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - bytes).unwrap();
    f.sync_all().unwrap();
}

// ------------------------------------------------------------------ source

#[test]
fn every_record_once_with_the_right_columns_in_both_modes() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let topic = numbered_topic(dir.path(), 3_000);
        let rows = run_to_end(
            LogSource::new(topic.path(), until_idle()).unwrap(),
            mode,
            None,
        );
        assert_records(&rows, 0, 3_000);
    }
}

#[test]
fn micro_batch_respects_max_records_per_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let topic = numbered_topic(dir.path(), 1_000);
    let options = LogSourceOptions {
        max_records_per_trigger: Some(150),
        ..until_idle()
    };
    let (q, table) = start(
        LogSource::new(topic.path(), options).unwrap(),
        Trigger::AvailableNow,
        None,
    );
    assert!(q.await_termination_timeout(LIMIT).unwrap());
    assert_records(&table.rows(), 0, 1_000);
    assert_eq!(table.commits(), 7, "1,000 records in batches of 150");
    let sizes: Vec<u64> = q
        .recent_progress()
        .iter()
        .map(|p| p.num_input_rows)
        .collect();
    assert!(sizes.iter().all(|&n| n <= 150), "{sizes:?}");
    // Each batch reports what it left behind: 850, 700, ..., 100, then 0.
    let behind: Vec<u64> = q
        .recent_progress()
        .iter()
        .filter(|p| p.num_input_rows > 0)
        .map(|p| p.sources[0].metrics["offsetsBehindLatest"])
        .collect();
    assert_eq!(behind, [850, 700, 550, 400, 250, 100, 0]);
}

#[test]
fn records_appended_while_a_query_runs_are_picked_up() {
    let triggers = [
        Trigger::Continuous {
            epoch_interval: Duration::from_millis(20),
        },
        Trigger::ProcessingTime(Duration::from_millis(10)),
    ];
    for trig in triggers {
        let dir = tempfile::tempdir().unwrap();
        let topic = numbered_topic(dir.path(), 30);
        let (q, table) = start(
            LogSource::new(topic.path(), earliest()).unwrap(),
            trig,
            None,
        );
        wait_until("the first records", || table.len() == 30);
        for round in 1..=3u64 {
            produce(&topic, 30 * round, 30 * (round + 1));
            wait_until("appended records", || {
                table.len() as u64 == 30 * (round + 1)
            });
        }
        q.stop().unwrap();
        assert_records(&table.rows(), 0, 120);
    }
}

#[test]
fn latest_starts_at_the_end() {
    for trig in [
        Trigger::Continuous {
            epoch_interval: Duration::from_millis(20),
        },
        Trigger::ProcessingTime(Duration::from_millis(10)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let topic = numbered_topic(dir.path(), 30);
        let (q, table) = start(
            LogSource::new(topic.path(), LogSourceOptions::default()).unwrap(),
            trig,
            None,
        );
        // The starting position was taken when the query started.
        produce(&topic, 30, 60);
        wait_until("appended records", || table.len() == 30);
        q.stop().unwrap();
        assert_records(&table.rows(), 30, 60);
    }
}

#[test]
fn restart_on_a_checkpoint_neither_rereads_nor_skips() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = dir.path().join("checkpoint");
        let topic = numbered_topic(dir.path(), 900);
        let first = run_to_end(
            LogSource::new(topic.path(), until_idle()).unwrap(),
            mode,
            Some(&checkpoint),
        );
        assert_records(&first, 0, 900);
        produce(&topic, 900, 1_500);
        let second = run_to_end(
            LogSource::new(topic.path(), until_idle()).unwrap(),
            mode,
            Some(&checkpoint),
        );
        assert_records(&second, 900, 1_500);
        // Nothing new: a third run reads nothing.
        let third = run_to_end(
            LogSource::new(topic.path(), until_idle()).unwrap(),
            mode,
            Some(&checkpoint),
        );
        assert!(third.is_empty(), "{mode:?}: {} rows re-read", third.len());
    }
}

#[test]
fn continuous_restart_after_a_stop_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let topic = numbered_topic(dir.path(), 600);
    let (q, table) = start(
        LogSource::new(topic.path(), earliest()).unwrap(),
        trigger(Mode::Continuous),
        Some(&checkpoint),
    );
    wait_until("some records", || table.len() >= 100);
    produce(&topic, 600, 900);
    q.stop().unwrap();
    let first = table.rows();
    produce(&topic, 900, 1_200);
    let second = run_to_end(
        LogSource::new(topic.path(), until_idle()).unwrap(),
        Mode::Continuous,
        Some(&checkpoint),
    );
    let mut all = first;
    all.extend(second);
    assert_records(&all, 0, 1_200);
}

#[test]
fn a_torn_tail_ends_the_partition_until_a_producer_recovers_it() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let topic = numbered_topic(dir.path(), 300);
        // Record 299 is the last of partition 2: cut it in half.
        tear_tail(topic.path(), 2, 7);
        let checkpoint = dir.path().join("checkpoint");
        let rows = run_to_end(
            LogSource::new(topic.path(), until_idle()).unwrap(),
            mode,
            Some(&checkpoint),
        );
        assert_records(&rows, 0, 299);
        // A producer's recovery cuts the torn record; what it appends then
        // takes its offset and is read after a restart.
        let mut producer = topic.producer().unwrap();
        producer
            .send(Some(2), Some(b"k-new"), Some(b"v-new"), TS0_MS)
            .unwrap();
        producer.sync().unwrap();
        drop(producer);
        let rows = run_to_end(
            LogSource::new(topic.path(), until_idle()).unwrap(),
            mode,
            Some(&checkpoint),
        );
        assert_eq!(rows.len(), 1, "{mode:?}: {rows:?}");
        assert_eq!(rows[0][1], Value::str("v-new"));
        assert_eq!(rows[0][3], Value::Int64(2));
        assert_eq!(rows[0][4], Value::Int64(99));
    }
}

#[test]
fn invalid_utf8_is_decoded_lossily_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "bytes", 1).unwrap();
    let mut producer = topic.producer().unwrap();
    producer.send(None, None, Some(b"ok"), 5).unwrap();
    producer
        .send(None, Some(b"\xff"), Some(b"a\xfeb"), 6)
        .unwrap();
    producer.send(None, Some(b""), None, 7).unwrap();
    producer.sync().unwrap();
    drop(producer);
    // Micro-batch mode reads the range as Arrow columns: the same text,
    // nulls and count.
    for mode in [Mode::Continuous, Mode::AvailableNow] {
        let (q, table) = start(
            LogSource::new(topic.path(), until_idle()).unwrap(),
            trigger(mode),
            None,
        );
        q.await_termination_timeout(LIMIT).unwrap();
        let rows = table.rows();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0][0], Value::Null);
        assert_eq!(rows[0][1], Value::str("ok"));
        assert_eq!(rows[1][0], Value::str("\u{fffd}"));
        assert_eq!(rows[1][1], Value::str("a\u{fffd}b"));
        assert_eq!(rows[2][0], Value::str(""));
        assert_eq!(rows[2][1], Value::Null);
        assert_eq!(rows[2][5], Value::Timestamp(7_000));
        let lossy = q
            .recent_progress()
            .iter()
            .filter_map(|p| p.sources.first()?.metrics.get("lossyUtf8Records").copied())
            .max();
        assert_eq!(lossy, Some(1), "{mode:?}");
    }
}

#[test]
fn a_checkpoint_ahead_of_the_topic_is_data_loss() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let topic = numbered_topic(dir.path(), 90);
    run_to_end(
        LogSource::new(topic.path(), until_idle()).unwrap(),
        Mode::AvailableNow,
        Some(&checkpoint),
    );
    // The topic is recreated, shorter.
    fs::remove_dir_all(topic.path()).unwrap();
    let topic = numbered_topic(dir.path(), 30);
    let err = DataFrame::from_source("t", LogSource::new(topic.path(), until_idle()).unwrap())
        .write_stream(MemorySink::new("x").0)
        .trigger(Trigger::AvailableNow)
        .checkpoint(&checkpoint)
        .start()
        .and_then(|q| q.await_termination())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fail_on_data_loss") && err.contains("partition"),
        "{err}"
    );
    // With fail_on_data_loss=false the query goes on from the end.
    let options = LogSourceOptions {
        fail_on_data_loss: false,
        ..until_idle()
    };
    let rows = run_to_end(
        LogSource::new(topic.path(), options).unwrap(),
        Mode::AvailableNow,
        Some(&checkpoint),
    );
    assert!(rows.is_empty());
}

#[test]
fn a_missing_topic_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = LogSource::new(dir.path().join("nope"), earliest())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nope"), "{err}");
}

// -------------------------------------------------------------------- sink

/// log source → `select(key, value)` → log sink, to the end.
fn copy_query(
    from: &Path,
    mode: Mode,
    checkpoint: Option<&Path>,
    options: LogSourceOptions,
    sink: impl Sink,
) -> Result<()> {
    let mut w = DataFrame::from_source("t", LogSource::new(from, options).unwrap())
        .select([col("key"), col("value")])
        .write_stream(sink)
        .trigger(trigger(mode));
    if let Some(c) = checkpoint {
        w = w.checkpoint(c);
    }
    let q = w.start()?;
    assert!(
        q.await_termination_timeout(LIMIT)?,
        "{mode:?} query did not end"
    );
    Ok(())
}

fn expected_values(from: u64, to: u64) -> Vec<String> {
    let mut v: Vec<String> = (from..to).map(|i| format!("v{i}")).collect();
    v.sort();
    v
}

#[test]
fn sink_round_trip_in_both_modes() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let source = numbered_topic(dir.path(), 2_000);
        let out = dir.path().join("out");
        copy_query(
            source.path(),
            mode,
            None,
            until_idle(),
            LogSink::new(&out, 4),
        )
        .unwrap();
        let topic = LogTopic::open(&out).unwrap();
        assert_eq!(topic.partitions(), 4);
        let records = topic_records(&out);
        // Keys travel with their values, and decide the partition.
        for (p, recs) in records.iter().enumerate() {
            for (k, v) in recs {
                let (k, v) = (k.as_deref().unwrap(), v.as_deref().unwrap());
                assert_eq!(k[1..], v[1..]);
                assert_eq!(
                    runnel_connectors::log::partition_for_key(k.as_bytes(), 4) as usize,
                    p
                );
            }
        }
        assert_eq!(topic_values(&out), expected_values(0, 2_000), "{mode:?}");
        assert!(
            !out.join(SINK_MARKER_FILE).exists(),
            "the first-run marker is removed at the end"
        );
    }
}

#[test]
fn rows_without_a_value_column_are_written_as_json_with_their_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let source = numbered_topic(dir.path(), 30);
    let out = dir.path().join("out");
    let q = DataFrame::from_source("t", LogSource::new(source.path(), until_idle()).unwrap())
        .select([
            col("offset").alias("n"),
            col("value").alias("text"),
            col("timestamp"),
        ])
        .write_stream(LogSink::new(&out, 1))
        .trigger(Trigger::AvailableNow)
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let topic = LogTopic::open(&out).unwrap();
    let mut reader = topic.reader(0).unwrap();
    let mut n = 0;
    while let Some(r) = reader.next_record().unwrap() {
        let v = std::str::from_utf8(r.value.unwrap()).unwrap();
        let json: serde_json::Value = serde_json::from_str(v).unwrap();
        let i: u64 = json["text"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(json["n"], serde_json::json!(i / 3));
        assert!(json["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2020-09-13"));
        assert_eq!(r.key, None);
        assert_eq!(r.timestamp_ms, TS0_MS + i as i64);
        n += 1;
    }
    assert_eq!(n, 30);
}

#[test]
fn sink_in_complete_mode_appends_each_result() {
    let dir = tempfile::tempdir().unwrap();
    let source = numbered_topic(dir.path(), 30);
    let out = dir.path().join("out");
    let q = DataFrame::from_source("t", LogSource::new(source.path(), until_idle()).unwrap())
        .group_by([col("partition").cast(runnel::DataType::Utf8).alias("key")])
        .agg([count_star().alias("value")])
        .write_stream(LogSink::new(&out, 2))
        .output_mode(OutputMode::Complete)
        .trigger(Trigger::AvailableNow)
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let mut recs: Vec<(Option<String>, Option<String>)> =
        topic_records(&out).into_iter().flatten().collect();
    recs.sort();
    let ten = Some("10".to_string());
    assert_eq!(
        recs,
        vec![
            (Some("0".into()), ten.clone()),
            (Some("1".into()), ten.clone()),
            (Some("2".into()), ten)
        ]
    );
}

/// A log sink that fails right after committing batch `at` (before the
/// engine can checkpoint it), or after `after_rows` rows of batch `at`
/// (in the middle of writing it): what a crash at that moment leaves behind.
struct Crashing {
    inner: LogSink,
    at: u64,
    after_rows: Option<usize>,
    rows_in_batch: usize,
    batch: u64,
}

impl Crashing {
    fn after_commit(inner: LogSink, at: u64) -> Crashing {
        Crashing {
            inner,
            at,
            after_rows: None,
            rows_in_batch: 0,
            batch: 0,
        }
    }

    fn mid_batch(inner: LogSink, at: u64, after_rows: usize) -> Crashing {
        Crashing {
            after_rows: Some(after_rows),
            ..Crashing::after_commit(inner, at)
        }
    }
}

impl Sink for Crashing {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn open(&mut self, ctx: &SinkContext, recovered: Option<&serde_json::Value>) -> Result<()> {
        self.batch = recovered
            .and_then(|r| r["epoch"].as_u64())
            .map_or(0, |e| e + 1);
        self.inner.open(ctx, recovered)
    }
    fn write(&mut self, row: &Row) -> Result<()> {
        if self.batch == self.at && Some(self.rows_in_batch) == self.after_rows {
            return Err(EngineError::Sink("simulated crash mid-batch".into()));
        }
        self.rows_in_batch += 1;
        self.inner.write(row)
    }
    fn commit(&mut self, epoch: u64) -> Result<serde_json::Value> {
        let state = self.inner.commit(epoch)?;
        if epoch == self.at {
            return Err(EngineError::Sink("simulated crash after commit".into()));
        }
        self.batch = epoch + 1;
        self.rows_in_batch = 0;
        Ok(state)
    }
}

/// Runs the copy query in micro-batch mode with batches of 100 records: first
/// with a sink that crashes, then again from the checkpoint to the end.
fn crash_and_replay(crashing: impl FnOnce(LogSink) -> Crashing, tear: bool) {
    let dir = tempfile::tempdir().unwrap();
    let source = numbered_topic(dir.path(), 1_000);
    let out = dir.path().join("out");
    let checkpoint = dir.path().join("checkpoint");
    let options = || LogSourceOptions {
        max_records_per_trigger: Some(100),
        ..until_idle()
    };
    let err = copy_query(
        source.path(),
        Mode::AvailableNow,
        Some(&checkpoint),
        options(),
        crashing(LogSink::new(&out, 3)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("simulated crash"), "{err}");
    let written = topic_values(&out).len();
    if tear {
        // The crash also tore the last record of a partition.
        tear_tail(&out, 0, 3);
    }
    copy_query(
        source.path(),
        Mode::AvailableNow,
        Some(&checkpoint),
        options(),
        LogSink::new(&out, 3),
    )
    .unwrap();
    let values = topic_values(&out);
    let mut dups = values.clone();
    dups.dedup();
    assert_eq!(
        dups.len(),
        values.len(),
        "duplicates after replay ({written} records before the restart)"
    );
    assert_eq!(values, expected_values(0, 1_000));
}

#[test]
fn micro_batch_sink_is_exactly_once_when_a_committed_batch_is_replayed() {
    // Batch 4 is in the topic and fsynced, but not in the checkpoint.
    crash_and_replay(|s| Crashing::after_commit(s, 4), false);
}

#[test]
fn micro_batch_sink_is_exactly_once_when_the_first_batch_is_replayed() {
    // No checkpoint at all yet: the first-run marker gives the baseline.
    crash_and_replay(|s| Crashing::after_commit(s, 0), false);
}

#[test]
fn micro_batch_sink_is_exactly_once_after_a_crash_mid_batch() {
    crash_and_replay(|s| Crashing::mid_batch(s, 3, 60), false);
    crash_and_replay(|s| Crashing::mid_batch(s, 0, 45), true);
    crash_and_replay(|s| Crashing::after_commit(s, 6), true);
}

#[test]
fn sink_replay_through_the_trait_with_rows_in_another_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ctx = SinkContext {
        schema: runnel::schema(&[
            ("key", runnel::DataType::Utf8),
            ("value", runnel::DataType::Utf8),
        ]),
        output_mode: OutputMode::Append,
        key_columns: None,
        query_id: "test".into(),
        replays_same_rows: true,
        checkpointed: false,
        durable: runnel::DurableEpochs::default(),
    };
    let row = |k: Option<&str>, v: &str| Row::from(vec![Value::from(k), Value::str(v)]);
    let batch0: Vec<Row> = (0..50).map(|i| row(None, &format!("a{i}"))).collect();
    // Batch 1 has repeated rows: each copy must be written once.
    let mut batch1: Vec<Row> = (0..50)
        .map(|i| row(Some(&format!("k{}", i % 7)), &format!("b{}", i % 20)))
        .collect();

    let mut sink = LogSink::new(&out, 3);
    sink.open(&ctx, None).unwrap();
    for r in &batch0 {
        sink.write(r).unwrap();
    }
    let state0 = sink.commit(0).unwrap();
    for r in &batch1 {
        sink.write(r).unwrap();
    }
    sink.commit(1).unwrap();
    drop(sink); // the process dies before the checkpoint of batch 1

    batch1.reverse();
    let mut again = LogSink::new(&out, 3);
    again.open(&ctx, Some(&state0)).unwrap();
    for r in &batch1 {
        again.write(r).unwrap();
    }
    again.commit(1).unwrap();
    assert_eq!(again.rows_deduplicated(), 50);
    again.close().unwrap();

    let mut got: Vec<(Option<String>, Option<String>)> =
        topic_records(&out).into_iter().flatten().collect();
    got.sort();
    let mut want: Vec<(Option<String>, Option<String>)> = batch0
        .iter()
        .chain(&batch1)
        .map(|r| {
            (
                r[0].as_str().map(str::to_string),
                r[1].as_str().map(str::to_string),
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn sink_never_drops_rows_that_differ_from_what_the_topic_holds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ctx = SinkContext {
        schema: runnel::schema(&[("value", runnel::DataType::Utf8)]),
        output_mode: OutputMode::Append,
        key_columns: None,
        query_id: "test".into(),
        replays_same_rows: true,
        checkpointed: false,
        durable: runnel::DurableEpochs::default(),
    };
    let row = |v: &str| Row::from(vec![Value::str(v)]);
    let mut sink = LogSink::new(&out, 2);
    sink.open(&ctx, None).unwrap();
    sink.write(&row("x")).unwrap();
    let state0 = sink.commit(0).unwrap();
    sink.write(&row("y")).unwrap();
    sink.write(&row("z")).unwrap();
    sink.commit(1).unwrap();
    drop(sink);
    // A non-deterministic replay: only "z" is produced again, plus "w".
    let mut again = LogSink::new(&out, 2);
    again.open(&ctx, Some(&state0)).unwrap();
    again.write(&row("w")).unwrap();
    again.write(&row("z")).unwrap();
    again.commit(1).unwrap();
    // A later batch of the replay window produces "y": matched against the
    // old record, so the topic holds it once, as the new run produced it.
    again.write(&row("y")).unwrap();
    again.commit(2).unwrap();
    assert_eq!(again.rows_deduplicated(), 2);
    // The old records are all matched now: a further "y" is new output.
    again.write(&row("y")).unwrap();
    again.commit(3).unwrap();
    assert_eq!(again.rows_deduplicated(), 2);
    drop(again);
    let mut values = topic_values(&out);
    values.sort();
    assert_eq!(values, vec!["w", "x", "y", "y", "z"]);
}

#[test]
fn sink_refuses_a_topic_shorter_than_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ctx = SinkContext {
        schema: runnel::schema(&[("value", runnel::DataType::Utf8)]),
        output_mode: OutputMode::Append,
        key_columns: None,
        query_id: "test".into(),
        replays_same_rows: true,
        checkpointed: false,
        durable: runnel::DurableEpochs::default(),
    };
    let mut sink = LogSink::new(&out, 1);
    sink.open(&ctx, None).unwrap();
    sink.write(&Row::from(vec![Value::str("x")])).unwrap();
    let state = sink.commit(0).unwrap();
    drop(sink);
    fs::remove_dir_all(&out).unwrap();
    let err = LogSink::new(&out, 1)
        .open(&ctx, Some(&state))
        .unwrap_err()
        .to_string();
    assert!(err.contains("changed outside the query"), "{err}");
}

/// More records after the checkpoint than the sink can match would be
/// written twice on replay: opening is refused with the counts and the
/// option named, unless that option accepts the duplicates.
#[test]
fn sink_past_its_dedup_window_needs_an_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ctx = SinkContext {
        schema: runnel::schema(&[("value", runnel::DataType::Utf8)]),
        output_mode: OutputMode::Append,
        key_columns: None,
        query_id: "test".into(),
        replays_same_rows: true,
        checkpointed: false,
        durable: runnel::DurableEpochs::default(),
    };
    let mut sink = LogSink::new(&out, 1);
    sink.open(&ctx, None).unwrap();
    let state = sink.commit(0).unwrap();
    // Five records written after that checkpoint, then the process died.
    for v in ["a", "b", "c", "d", "e"] {
        sink.write(&Row::from(vec![Value::str(v)])).unwrap();
    }
    sink.commit(1).unwrap();
    drop(sink);
    let err = LogSink::new(&out, 1)
        .max_dedup_records(4)
        .open(&ctx, Some(&state))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("5 records") && err.contains("allow_duplicates_past_dedup_window"),
        "{err}"
    );
    let mut allowed = LogSink::new(&out, 1)
        .max_dedup_records(4)
        .allow_duplicates_past_dedup_window();
    allowed.open(&ctx, Some(&state)).unwrap();
    allowed.write(&Row::from(vec![Value::str("a")])).unwrap();
    allowed.commit(1).unwrap();
    assert_eq!(
        allowed.rows_deduplicated(),
        0,
        "nothing is matched past the window"
    );
    // Within the window the same replay is matched.
    drop(allowed);
    let mut matched = LogSink::new(&out, 1).max_dedup_records(100);
    matched.open(&ctx, Some(&state)).unwrap();
    matched.write(&Row::from(vec![Value::str("b")])).unwrap();
    assert_eq!(matched.rows_deduplicated(), 1);
}

// ---------------------------------------------------- waking on an append

/// A producer in the same process wakes the source's task when it flushes:
/// each record reaches the sink far sooner than the (here deliberately
/// long) interval between looks at the files. Asserted loosely (a test, not
/// a benchmark): well under the poll interval, for every one of 20 records.
#[test]
fn an_in_process_append_wakes_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "events", 1).unwrap();
    let mut producer = topic.producer().unwrap();
    let options = LogSourceOptions {
        poll_interval_us: 2_000_000,
        ..earliest()
    };
    let source = LogSource::new(topic.path(), options).unwrap();
    let (sink, subscription) = runnel::ChannelSink::new(64);
    let query = DataFrame::from_source("events", source)
        .select([col("value")])
        .write_stream(sink)
        .trigger(trigger(Mode::Continuous))
        .start()
        .unwrap();
    for i in 0..20 {
        // Let the source find the partition at its end and go idle.
        std::thread::sleep(Duration::from_millis(30));
        let sent = Instant::now();
        producer
            .send(Some(0), None, Some(format!("v{i}").as_bytes()), TS0_MS)
            .unwrap();
        producer.flush().unwrap();
        let row = subscription
            .recv_timeout(Duration::from_secs(10))
            .expect("the record arrives")
            .expect("the query runs");
        let waited = sent.elapsed();
        assert_eq!(row[0], Value::str(&format!("v{i}")));
        assert!(
            waited < Duration::from_millis(500),
            "record {i} took {waited:?} with a 2 s poll interval: the append did not wake the source"
        );
    }
    query.stop().unwrap();
}

// ------------------------------------- micro-batch recovery from damage

/// A checkpoint file's JSON, its checksum checked.
/// Cuts the file at `path` to `len` bytes.
fn cut(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn open_checkpoint(checkpoint: &Path) -> runnel::checkpoint::CheckpointDir {
    runnel::checkpoint::CheckpointDir::open(checkpoint)
        .unwrap()
        .0
}

/// Runs `records` of a numbered topic through micro-batch mode with 100
/// records per batch and a checkpoint, then appends 100 more records and
/// logs them as the next batch (as the driver does before reading it), as
/// if the process died right after; then damages the checkpoint with
/// `damage`, given the last committed batch. Returns the topic folder, the
/// checkpoint folder and that batch.
fn damaged_commit_log(dir: &Path, damage: impl FnOnce(&Path, u64)) -> (PathBuf, PathBuf, u64) {
    let topic = numbered_topic(dir, 1_000);
    let checkpoint = dir.join("ckpt");
    let batched = || LogSourceOptions {
        max_records_per_trigger: Some(100),
        ..until_idle()
    };
    let first = run_to_end(
        LogSource::new(topic.path(), batched()).unwrap(),
        Mode::AvailableNow,
        Some(&checkpoint),
    );
    assert_records(&first, 0, 1_000);
    let ckpt = open_checkpoint(&checkpoint);
    let last = *ckpt.epochs().unwrap().last().unwrap();
    // The next batch's range, logged the way the driver logs it: from the
    // last batch's end to the end of the 100 new records.
    produce(&topic, 1_000, 1_100);
    let logged = ckpt
        .offset_log_after(Some(last - 1))
        .unwrap()
        .into_iter()
        .find(|e| e.batch_id == last)
        .expect("the last batch's logged range");
    let logged = serde_json::to_value(&logged).unwrap();
    let mut next = logged.clone();
    next["batch_id"] = serde_json::json!(last + 1);
    next["start"] = logged["end"].clone();
    let ends = topic.end_offsets().unwrap();
    let partitions: serde_json::Map<String, serde_json::Value> = ends
        .iter()
        .enumerate()
        .map(|(p, e)| (p.to_string(), serde_json::json!(e)))
        .collect();
    next["end"][0]["offset"] = serde_json::json!({ "partitions": partitions });
    ckpt.write_offset_log(&serde_json::from_value(next).unwrap())
        .unwrap();
    drop(ckpt);
    damage(&checkpoint, last);
    (topic.path().to_path_buf(), checkpoint, last)
}

/// A missing or damaged commit-log entry must never lose a batch: the
/// restarted query falls back to the previous commit and re-reads every
/// logged range after it (the damaged batch and the one logged after it),
/// exactly once each, or refuses to start. Before the fix, the restart
/// re-ran only the newest logged batch, from its own start, and records
/// 901–1000 were never read again.
#[test]
fn a_damaged_commit_loses_no_batch() {
    type Damage = fn(&Path, u64);
    let damages: [(&str, Damage); 2] = [
        ("removed", |ckpt: &Path, last: u64| {
            let (path, at) = open_checkpoint(ckpt)
                .manifest_location(last)
                .unwrap()
                .unwrap();
            cut(&path, at.start);
        }),
        ("cut short", |ckpt: &Path, last: u64| {
            let (path, at) = open_checkpoint(ckpt)
                .manifest_location(last)
                .unwrap()
                .unwrap();
            cut(&path, at.start + (at.end - at.start) / 2);
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let (topic, checkpoint, last) = damaged_commit_log(dir.path(), damage);
        let source = LogSource::new(
            &topic,
            LogSourceOptions {
                max_records_per_trigger: Some(100),
                ..until_idle()
            },
        )
        .unwrap();
        // Where the last intact commit ended, per partition: every record
        // from there on must be read again.
        // Commits may be sparse (the commit writer writes queued batches
        // together): the intact one is the newest before the damaged one.
        let ckpt = open_checkpoint(&checkpoint);
        let prev = ckpt
            .epochs()
            .unwrap()
            .into_iter()
            .filter(|c| *c < last)
            .max()
            .expect("an intact commit before the damaged one");
        let intact = serde_json::to_value(ckpt.read_manifest(prev).unwrap()).unwrap();
        drop(ckpt);
        let resume = &intact["sources"][0]["offset"]["partitions"];
        let expected: Vec<u64> = (0..1_100u64)
            .filter(|i| {
                let (p, o) = (i % u64::from(PARTITIONS), i / u64::from(PARTITIONS));
                o >= resume[p.to_string()].as_u64().unwrap()
            })
            .collect();
        assert_eq!(
            expected.len() as u64,
            100 * (last + 1 - prev),
            "{what}: every batch of 100 after the intact commit to re-read"
        );
        let (q, table) = start(source, trigger(Mode::AvailableNow), Some(&checkpoint));
        assert!(
            q.await_termination_timeout(LIMIT).unwrap(),
            "{what}: did not end"
        );
        // The batch whose commit was damaged and the one logged after it
        // (records 1000..1100), each record exactly once.
        let rows = table.rows();
        let mut got: Vec<u64> = rows.iter().map(number).collect();
        got.sort_unstable();
        assert_eq!(got, expected, "{what}: records read after the restart");
        for row in &rows {
            assert_eq!(*row, expected_row(number(row)));
        }
        assert!(
            open_checkpoint(&checkpoint)
                .epochs()
                .unwrap()
                .contains(&(last + 1)),
            "{what}: the logged batch was not committed"
        );
    }
}

/// When the logged range of the damaged batch is gone too, nothing can
/// re-read it: the query refuses to start and names the file, instead of
/// silently going on from a later range.
#[test]
fn a_missing_logged_range_is_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let (topic, checkpoint, last) = damaged_commit_log(dir.path(), |ckpt: &Path, last: u64| {
        let dir = open_checkpoint(ckpt);
        let (commit, at) = dir.manifest_location(last).unwrap().unwrap();
        cut(&commit, at.start);
        // The batch's range is the last record of its journal segment (the
        // next batch's was appended by a later process, to a segment of
        // its own): only the segment's unwritten room follows it.
        let (logged, at) = dir.offset_entry_location(last).unwrap().unwrap();
        let bytes = fs::read(&logged).unwrap();
        assert!(bytes[at.end as usize..].iter().all(|b| *b == 0));
        cut(&logged, at.start);
    });
    let source = LogSource::new(&topic, until_idle()).unwrap();
    let started = DataFrame::from_source("t", source)
        .write_stream(MemorySink::new("x").0)
        .trigger(Trigger::AvailableNow)
        .checkpoint(&checkpoint)
        .start();
    let Err(err) = started else {
        panic!("the query must refuse to start");
    };
    let text = err.to_string();
    let (named, _) = open_checkpoint(&checkpoint)
        .offset_entry_location(last + 1)
        .unwrap()
        .unwrap();
    assert!(
        text.contains(&named.display().to_string()) && text.contains(&format!("batch {last}")),
        "{text}"
    );
}

/// Counts the rows a source driven by hand emits.
struct Count(u64);

impl runnel::SourceOutput for Count {
    fn emit(&mut self, _row: Row, _ingest_ns: u64) -> Result<()> {
        self.0 += 1;
        Ok(())
    }
}

fn behind(source: &LogSource) -> Option<u64> {
    use runnel::Source as _;
    source
        .metrics()
        .into_iter()
        .find(|(k, _)| k == "offsetsBehindLatest")
        .map(|(_, v)| v)
}

#[test]
fn the_backlog_is_the_records_behind_the_end_of_each_partition() {
    use runnel::Source as _;
    let dir = tempfile::tempdir().unwrap();
    let topic = numbered_topic(dir.path(), 300);
    let options = LogSourceOptions {
        max_records_per_poll: 30,
        ..earliest()
    };
    let mut source = LogSource::new(topic.path(), options).unwrap();
    let ctx = runnel::SourceContext {
        name: "t".into(),
        waker: std::sync::Arc::new(runnel::continuous::TaskWaker::new()),
    };
    source.open(&ctx, None).unwrap();
    assert_eq!(behind(&source), Some(300));
    let mut out = Count(0);
    source.poll(&mut out).unwrap();
    assert_eq!(out.0, 30);
    assert_eq!(behind(&source), Some(270));
}

/// A lookup table that reloads when its file changes (`refresh=`), joined
/// with a running stream of the log in both modes: rows joined before the
/// change keep the old region, rows after it get the new one, each row one
/// version or the other.
#[test]
fn a_refreshing_table_is_reloaded_when_its_file_changes_in_both_modes() {
    use runnel::table::{TableLimits, TableRefresh, TableReloader};
    use runnel_connectors::{read_table, FileFormat, FileSourceOptions, FileTableReloader};
    use std::sync::Arc;

    for trig in [
        Trigger::Continuous {
            epoch_interval: Duration::from_millis(20),
        },
        Trigger::ProcessingTime(Duration::from_millis(20)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("regions.csv");
        fs::write(&file, "Country,Region\nItaly,South\n").unwrap();
        let options = FileSourceOptions::from_pairs([
            ("header", "true"),
            ("schema", "Country string, Region string"),
        ])
        .unwrap();
        let limits = TableLimits::default();
        let reloader = Arc::new(FileTableReloader::new(
            "regions",
            &file,
            FileFormat::Csv,
            &options,
            &limits,
        ));
        let fingerprint = reloader.fingerprint().unwrap();
        let table = read_table("regions", &file, FileFormat::Csv, &options, &limits)
            .unwrap()
            .with_refresh(TableRefresh::new(
                Duration::from_millis(50),
                reloader,
                fingerprint,
            ));

        let topic = LogTopic::create(dir.path(), "orders", 1).unwrap();
        let mut producer = topic.producer().unwrap();
        let mut sent = 0i64;
        let mut send = |producer: &mut runnel_connectors::log::LogProducer| {
            producer
                .send(
                    Some(0),
                    Some(b"Italy"),
                    Some(sent.to_string().as_bytes()),
                    sent,
                )
                .unwrap();
            producer.flush().unwrap();
            sent += 1;
        };
        let (sink, out) = MemorySink::new("joined");
        let q = DataFrame::from_source("o", LogSource::new(topic.path(), earliest()).unwrap())
            .join(
                &table,
                col("key").eq(col("regions.Country")),
                runnel::JoinType::Inner,
            )
            .select([col("value"), col("regions.Region")])
            .write_stream(sink)
            .trigger(trig)
            .start()
            .unwrap();
        let regions = |rows: &[Row]| -> Vec<(i64, String)> {
            let mut v: Vec<(i64, String)> = rows
                .iter()
                .map(|r| match (&r[0], &r[1]) {
                    (Value::Utf8(n), Value::Utf8(region)) => {
                        (n.parse().unwrap(), region.to_string())
                    }
                    other => panic!("{other:?}"),
                })
                .collect();
            v.sort();
            v
        };
        send(&mut producer);
        wait_until("the first joined row", || !out.rows().is_empty());
        assert_eq!(regions(&out.rows()), vec![(0, "South".to_string())]);

        // A new version of the file, written whole and renamed into place.
        let tmp = dir.path().join("regions.tmp");
        fs::write(&tmp, "Country,Region\nItaly,Mediterranean\n").unwrap();
        fs::rename(&tmp, &file).unwrap();
        // Rows keep coming until one is joined with the new version (a guard
        // against a hang, no timing goal).
        let started = Instant::now();
        while !regions(&out.rows())
            .iter()
            .any(|(_, r)| r == "Mediterranean")
        {
            assert!(
                started.elapsed() < LIMIT,
                "{trig:?}: the table was never reloaded"
            );
            send(&mut producer);
            std::thread::sleep(Duration::from_millis(20));
        }
        let n = sent;
        wait_until("every row joined", || out.rows().len() as i64 == n);
        q.stop().unwrap();
        let got = regions(&out.rows());
        assert_eq!(got.len() as i64, n, "{trig:?}: every row once");
        // Old version, then new: never back, never both for one row.
        let switch = got.iter().position(|(_, r)| r == "Mediterranean").unwrap();
        assert!(switch >= 1, "{trig:?}: {got:?}");
        assert!(
            got[..switch].iter().all(|(_, r)| r == "South"),
            "{trig:?}: {got:?}"
        );
        assert!(
            got[switch..].iter().all(|(_, r)| r == "Mediterranean"),
            "{trig:?}: {got:?}"
        );
    }
}
