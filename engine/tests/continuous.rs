//! End-to-end tests of continuous mode through the public API.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::SequenceSource;
use runnel::{
    col, count_star, lit, max, schema, sum, timestamp_type, window, DataFrame, DataType,
    EngineError, MemorySink, MemorySource, OutputMode, Row, Sink, SinkContext, Trigger, Value,
};

const SEC: i64 = 1_000_000;

fn fast_epochs() -> Trigger {
    Trigger::Continuous {
        epoch_interval: Duration::from_millis(5),
    }
}

#[test]
fn stateless_filter_and_project_keep_order() {
    let (source, mut producer) = MemorySource::new(schema(&[("value", DataType::Int64)]));
    let (sink, table) = MemorySink::new("out");
    let query = DataFrame::from_source("numbers", source)
        .filter((col("value") % lit(2i64)).eq(lit(0i64)))
        .select([col("value"), (col("VALUE") * lit(10i64)).alias("times_ten")])
        .write_stream(sink)
        .start()
        .unwrap();
    for i in 0..10_000i64 {
        producer.push_blocking(runnel::row![i]).unwrap();
    }
    drop(producer);
    query.await_termination().unwrap();
    let rows = table.rows();
    assert_eq!(rows.len(), 5_000);
    for (n, row) in rows.iter().enumerate() {
        let v = 2 * n as i64;
        assert_eq!(row[0], Value::Int64(v));
        assert_eq!(row[1], Value::Int64(v * 10));
    }
    assert!(!query.is_active());
    let batch = table.record_batch().unwrap();
    assert_eq!(batch.num_rows(), 5_000);
    assert_eq!(batch.schema().field(1).name(), "times_ten");
    let latency = query.latency();
    assert_eq!(latency.count, 5_000, "every written row has a latency");
}

/// Counts per (window, key) computed independently of the engine.
fn expected_counts(source: &SequenceSource, size: i64) -> BTreeMap<(i64, String), i64> {
    let mut m = BTreeMap::new();
    for id in 0..source.n {
        let t = source.time_of(id);
        let start = t - t.rem_euclid(size);
        *m.entry((start, format!("k{}", id % source.keys)))
            .or_insert(0) += 1;
    }
    m
}

fn table_counts(rows: &[Row]) -> BTreeMap<(i64, String), i64> {
    rows.iter()
        .map(|r| {
            let key = r[0].as_str().unwrap().to_string();
            let start = r[1].as_i64().unwrap();
            ((start, key), r[3].as_i64().unwrap())
        })
        .collect()
}

fn windowed_count(parallelism: usize, mode: OutputMode) {
    let source = SequenceSource::new(20_000, 7, 1_000);
    let expected = expected_counts(&source, SEC);
    let (sink, table) = MemorySink::new("counts");
    let query = DataFrame::from_source("events", source)
        .group_by([col("key"), window(col("ts"), "1 second")])
        .agg([count_star().alias("n")])
        .write_stream(sink)
        .output_mode(mode)
        .parallelism(parallelism)
        .trigger(fast_epochs())
        .start()
        .unwrap();
    query.await_termination().unwrap();
    let rows = table.rows();
    assert_eq!(table_counts(&rows), expected);
    assert_eq!(
        rows.len(),
        expected.len(),
        "one row per group: updates replace rows"
    );
}

#[test]
fn windowed_count_update_mode_single_task() {
    windowed_count(1, OutputMode::Update);
}

#[test]
fn windowed_count_complete_mode_through_a_keyed_exchange() {
    windowed_count(3, OutputMode::Complete);
}

#[test]
fn append_mode_emits_closed_windows_once_and_drops_late_rows() {
    // Windows of 10 s; watermark delay 5 s. Times in seconds:
    let times: Vec<i64> = [1, 4, 12, 3, 26, 14, 9, 31, 2, 45]
        .iter()
        .map(|s| s * SEC)
        .collect();
    // Walk through by hand (watermark in force before each row):
    //  1 wm=-   -> [0,10)      4 -> [0,10)      12 wm=-1 -> [10,20)
    //  3 wm=7   -> [0,10) (end 10 > 7, kept)    26 wm=7  -> [20,30)
    // 14 wm=21  -> [10,20) late (20 <= 21)       9 wm=21  -> [0,10) late
    // 31 wm=21  -> [30,40)   2 wm=26 -> late     45 wm=26 -> [40,50)
    // Closed by the final watermark 40: [0,10)=3, [10,20)=1, [20,30)=1, [30,40)=1.
    let source = SequenceSource::with_times(times, 1);
    let (sink, table) = MemorySink::new("closed");
    let query = DataFrame::from_source("events", source)
        .with_watermark("ts", "5 seconds")
        .group_by([window(col("ts"), "10 seconds")])
        .agg([count_star().alias("n"), max(col("id")).alias("last_id")])
        .write_stream(sink)
        .output_mode(OutputMode::Append)
        .trigger(fast_epochs())
        .start()
        .unwrap();
    query.await_termination().unwrap();
    let got: Vec<(i64, i64, i64)> = table
        .rows()
        .iter()
        .map(|r| {
            (
                r[0].as_i64().unwrap() / SEC,
                r[2].as_i64().unwrap(),
                r[3].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, vec![(0, 3, 3), (10, 1, 2), (20, 1, 4), (30, 1, 7)]);
    let dropped: u64 = query
        .recent_progress()
        .iter()
        .flat_map(|p| p.state_operators.iter())
        .map(|s| s.num_rows_dropped_by_watermark)
        .sum();
    assert_eq!(dropped, 3);
}

#[test]
fn append_without_watermark_is_rejected_like_spark() {
    let (source, _p) = MemorySource::new(SequenceSource::schema());
    let (sink, _t) = MemorySink::new("x");
    let err = DataFrame::from_source("events", source)
        .group_by([col("key")])
        .agg([count_star()])
        .write_stream(sink)
        .output_mode(OutputMode::Append)
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("without a watermark"), "{err}");
}

#[test]
fn builder_errors_name_the_bad_call() {
    let (source, _p) = MemorySource::new(SequenceSource::schema());
    let (sink, _t) = MemorySink::new("x");
    let err = DataFrame::from_source("events", source)
        .filter(col("missing").gt(lit(1i64)))
        .write_stream(sink)
        .start()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`missing`") && err.contains("id, key, ts"),
        "{err}"
    );

    let (source, _p) = MemorySource::new(SequenceSource::schema());
    let (sink, _t) = MemorySink::new("x");
    let err = DataFrame::from_source("events", source)
        .group_by([col("key")])
        .agg([sum(col("key"))])
        .write_stream(sink)
        .output_mode(OutputMode::Update)
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("sum(key) needs a number"), "{err}");
}

#[test]
fn explain_shows_the_plan_and_the_task_graph() {
    let (source, _p) = MemorySource::new(SequenceSource::schema());
    let (sink, _t) = MemorySink::new("x");
    let text = DataFrame::from_source("events", source)
        .filter(col("id").gt(lit(5i64)))
        .with_watermark("ts", "1 minute")
        .group_by([window(col("ts"), "10 minutes"), col("key")])
        .agg([count_star()])
        .write_stream(sink)
        .output_mode(OutputMode::Update)
        .parallelism(2)
        .explain()
        .unwrap();
    assert!(text.contains("== Logical Plan =="), "{text}");
    assert!(
        text.contains("Aggregate [window(ts, '10 minutes'), key], [count(1)]"),
        "{text}"
    );
    assert!(
        text.contains("StreamingSource events [id: bigint, key: string, ts: timestamp]"),
        "{text}"
    );
    assert!(text.contains("4 tasks"), "{text}");
    assert!(
        text.contains("exchange(hash of the grouping keys into 2 rings"),
        "{text}"
    );
    assert!(text.contains("fan-in(2 rings"), "{text}");
}

#[test]
fn a_panicking_user_function_fails_the_query_without_hanging() {
    let (source, mut producer) = MemorySource::new(schema(&[("value", DataType::Int64)]));
    let (sink, _table) = MemorySink::new("out");
    let query = DataFrame::from_source("numbers", source)
        .flat_map(schema(&[("value", DataType::Int64)]), |row, emit| {
            if row[0] == Value::Int64(42) {
                panic!("user function refused 42");
            }
            emit(row.clone());
        })
        .write_stream(sink)
        .start()
        .unwrap();
    for i in 0..100i64 {
        if producer.push_blocking(runnel::row![i]).is_err() {
            break;
        }
    }
    let ended = query
        .await_termination_timeout(Duration::from_secs(10))
        .unwrap_err();
    assert!(
        matches!(&ended, EngineError::Panic(m) if m.contains("refused 42")),
        "{ended}"
    );
    assert!(!query.is_active());
}

struct FailingSink {
    after: usize,
    seen: usize,
}

impl Sink for FailingSink {
    fn describe(&self) -> String {
        "FailingSink".into()
    }
    fn open(&mut self, _: &SinkContext, _: Option<&serde_json::Value>) -> runnel::Result<()> {
        Ok(())
    }
    fn write(&mut self, _row: &Row) -> runnel::Result<()> {
        self.seen += 1;
        if self.seen > self.after {
            return Err(EngineError::Sink("disk on fire".into()));
        }
        Ok(())
    }
    fn commit(&mut self, _epoch: u64) -> runnel::Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }
}

#[test]
fn a_sink_error_stops_the_query_and_is_visible() {
    let query = DataFrame::from_source("events", SequenceSource::new(1_000_000, 3, 1))
        .write_stream(FailingSink {
            after: 500,
            seen: 0,
        })
        .start()
        .unwrap();
    let err = query.await_termination().unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert!(matches!(query.exception(), Some(EngineError::Sink(_))));
}

#[test]
fn progress_uses_spark_field_names() {
    let (sink, _t) = MemorySink::new("x");
    let query = DataFrame::from_source("events", SequenceSource::new(5_000, 3, 1_000))
        .with_watermark("ts", "1 second")
        .group_by([window(col("ts"), "1 second"), col("key")])
        .agg([count_star()])
        .write_stream(sink)
        .output_mode(OutputMode::Update)
        .query_name("progress_test")
        .trigger(fast_epochs())
        .start()
        .unwrap();
    query.await_termination().unwrap();
    let all = query.recent_progress();
    let total: u64 = all.iter().map(|p| p.num_input_rows).sum();
    assert_eq!(total, 5_000);
    let ids: Vec<u64> = all.iter().map(|p| p.batch_id).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "epochs commit in order: {ids:?}"
    );
    let json = serde_json::to_value(all.last().unwrap()).unwrap();
    for key in [
        "id",
        "runId",
        "name",
        "timestamp",
        "batchId",
        "numInputRows",
        "inputRowsPerSecond",
        "processedRowsPerSecond",
        "durationMs",
        "eventTime",
        "stateOperators",
        "sources",
        "sink",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["name"], "progress_test");
    assert_eq!(json["eventTime"]["watermark"], "1970-01-01T00:00:03.999Z");
    assert!(json["stateOperators"][0]["numRowsTotal"].as_u64().unwrap() > 0);
}

#[test]
fn stop_finishes_the_last_epoch() {
    let (source, mut producer) = MemorySource::new(schema(&[("value", DataType::Int64)]));
    let (sink, table) = MemorySink::new("out");
    let query = DataFrame::from_source("numbers", source)
        .write_stream(sink)
        .start()
        .unwrap();
    for i in 0..1_000i64 {
        producer.push_blocking(runnel::row![i]).unwrap();
    }
    // Wait until the engine has taken everything, then stop.
    while producer.free_slots() < (1 << 16) {
        std::thread::sleep(Duration::from_millis(1));
    }
    query.stop().unwrap();
    assert_eq!(table.len(), 1_000);
    assert!(query.committed_epoch() >= 1);
}

#[test]
fn timestamps_and_nulls_flow_through() {
    let s = schema(&[("ts", timestamp_type()), ("x", DataType::Float64)]);
    let (source, mut producer) = MemorySource::new(s);
    let (sink, table) = MemorySink::new("out");
    let query = DataFrame::from_source("t", source)
        .with_column("y", col("x") / lit(2i64))
        .filter(col("y").is_null().or(col("y").gt(lit(1.0))))
        .write_stream(sink)
        .start()
        .unwrap();
    producer
        .push(runnel::row![Value::Timestamp(5 * SEC), 4.0])
        .unwrap();
    producer
        .push(runnel::row![Value::Timestamp(6 * SEC), Value::Null])
        .unwrap();
    producer
        .push(runnel::row![Value::Timestamp(7 * SEC), 1.0])
        .unwrap();
    drop(producer);
    query.await_termination().unwrap();
    let rows = table.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][2], Value::Float64(2.0));
    assert_eq!(rows[1][2], Value::Null);
    assert_eq!(rows[0][0].to_string(), "1970-01-01 00:00:05");
}

/// Aggregation state is checkpointed as a full file followed by delta files
/// (changed groups only). A restart from a manifest that names deltas, with
/// a different parallelism, rebuilds the state exactly: every key's final
/// count is right.
#[test]
fn recovery_rebuilds_state_from_a_full_file_and_its_deltas() {
    let dir = tempfile::tempdir().unwrap();
    // More groups than are written in full every epoch, and few changed per
    // 5 ms epoch (the source is paced), so most state files are deltas.
    let (keys, first, n) = (3_000u64, 30_000u64, 60_000u64);
    let run = |rows: u64, parallelism: usize| {
        let (sink, table) = MemorySink::new("counts");
        let source = SequenceSource::new(rows, keys, 1).paced(Duration::from_millis(1));
        let query = DataFrame::from_source("events", source)
            .group_by([col("key")])
            .agg([count_star().alias("n")])
            .write_stream(sink)
            .output_mode(OutputMode::Update)
            .parallelism(parallelism)
            .checkpoint(dir.path())
            .trigger(fast_epochs())
            .start()
            .unwrap();
        query.await_termination().unwrap();
        table
    };
    run(first, 1);

    let manifest = |n: u64| common::manifest(dir.path(), n);
    let epochs = common::commit_numbers(dir.path());
    let chosen = *epochs
        .iter()
        .rev()
        .find(|e| common::names_deltas(&manifest(**e)))
        .expect("some retained epoch names delta files");
    // As if the process had died just after that epoch became durable.
    common::discard_after(dir.path(), chosen);
    let resume = manifest(chosen)["sources"][0]["offset"]["rows"]
        .as_u64()
        .unwrap();
    assert!(resume > keys, "the state held every key: {resume}");

    let table = run(n, 2);
    common::assert_every_key_counted(&table.rows(), keys, n / keys);
}
