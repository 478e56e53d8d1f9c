//! Throughput micro-benchmarks: micro-batch execution over Arrow batches
//! (including a projection of five scalar functions against a plain one,
//! and a stream-static join against the same projection without it), and
//! the log and CSV sources.
//!
//! `cargo bench -p runnel-benches --bench throughput`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runnel::microbatch::BatchRunner;
use runnel::Replayable;
use runnel::{
    col, count_star, lit, schema, sum, timestamp_type, window, DataFrame, DataType, JoinType,
    MemorySource, OutputMode, Row, Source, SourceContext, SourceOffset, SourceOutput,
};
use runnel_benches::pipeline;
use runnel_connectors::log::{LogTopic, ProducerConfig};
use runnel_connectors::{FileSource, FileSourceOptions};

const ROWS: usize = 1 << 20;

fn numbers_batch() -> RecordBatch {
    let s = schema(&[("value", DataType::Int64), ("x", DataType::Float64)]);
    let value = Int64Array::from_iter_values(0..ROWS as i64);
    let x = Float64Array::from_iter_values((0..ROWS).map(|i| (i % 1000) as f64 * 0.5));
    RecordBatch::try_new(s, vec![Arc::new(value), Arc::new(x)]).unwrap()
}

fn filter_project_sum(c: &mut Criterion) {
    let batch = numbers_batch();
    let (source, _producer) = MemorySource::new(batch.schema());
    let df = DataFrame::from_source("t", source)
        .filter((col("value") % lit(2i64)).eq(lit(0i64)))
        .select([col("value"), (col("x") * lit(2.0)).alias("y")])
        .group_by(Vec::new())
        .agg([sum(col("y")).alias("total")]);
    let mut runner = BatchRunner::new(&df, OutputMode::Update).unwrap();
    let mut g = c.benchmark_group("microbatch");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("filter_project_sum_1M_rows", |b| {
        b.iter(|| black_box(runner.run(batch.clone()).unwrap()))
    });
    g.finish();
}

fn keyed_window_count(c: &mut Criterion) {
    let s = schema(&[("key", DataType::Int64), ("ts", timestamp_type())]);
    let keys = Int64Array::from_iter_values((0..ROWS as i64).map(|i| (i * 7919) % 10_000));
    // 1M events over 10 seconds: ten 1-second windows.
    let ts = TimestampMicrosecondArray::from_iter_values(
        (0..ROWS as i64).map(|i| i * 10_000_000 / ROWS as i64),
    )
    .with_timezone("UTC");
    let batch = RecordBatch::try_new(s.clone(), vec![Arc::new(keys), Arc::new(ts)]).unwrap();
    let (source, _producer) = MemorySource::new(s);
    let df = DataFrame::from_source("t", source)
        .group_by([col("key"), window(col("ts"), "1 second")])
        .agg([count_star()]);
    let mut runner = BatchRunner::new(&df, OutputMode::Update).unwrap();
    let mut g = c.benchmark_group("microbatch");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("tumbling_count_10k_keys_1M_rows", |b| {
        b.iter(|| black_box(runner.run(batch.clone()).unwrap()))
    });
    g.finish();
}

/// A projection with five scalar functions (one CASE, one LIKE, one
/// coalesce, one hour, one concat) against a plain projection of five
/// columns, over the same 1M rows (a tenth of `qty` null).
fn function_projection(c: &mut Criterion) {
    let s = schema(&[
        ("name", DataType::Utf8),
        ("qty", DataType::Int64),
        ("ts", timestamp_type()),
    ]);
    let names = ["ada", "bob", "alan", "grace", "anna", "linus"];
    let name = StringArray::from_iter_values((0..ROWS).map(|i| names[i % names.len()]));
    let qty = Int64Array::from_iter((0..ROWS as i64).map(|i| (i % 10 != 0).then_some(i % 40)));
    let ts = TimestampMicrosecondArray::from_iter_values((0..ROWS as i64).map(|i| i * 3_600_007))
        .with_timezone("UTC");
    let batch =
        RecordBatch::try_new(s.clone(), vec![Arc::new(name), Arc::new(qty), Arc::new(ts)]).unwrap();
    let plain = pipeline::plain_projection();
    let functions = pipeline::function_projection();
    let mut g = c.benchmark_group("microbatch");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.measurement_time(Duration::from_secs(5));
    for (label, exprs) in [("plain", plain), ("five_functions", functions)] {
        let (source, _producer) = MemorySource::new(s.clone());
        let df = DataFrame::from_source("t", source).select(exprs);
        let mut runner = BatchRunner::new(&df, OutputMode::Append).unwrap();
        g.bench_function(format!("projection_{label}_1M_rows"), |b| {
            b.iter(|| black_box(runner.run(batch.clone()).unwrap()))
        });
    }
    g.finish();
}

/// A stream-static inner join of 1M stream rows with the 100,000-row table
/// of the latency harness's lookup scenario (every row finds one row),
/// projected to the stream's value and the table's name; the same batch
/// projected without the join beside it.
fn lookup_join(c: &mut Criterion) {
    let s = schema(&[("value", DataType::Int64), ("ts", timestamp_type())]);
    let value = Int64Array::from_iter_values((0..ROWS as i64).map(|i| (i * 7919) % (1 << 40)));
    let ts = TimestampMicrosecondArray::from_iter_values(0..ROWS as i64).with_timezone("UTC");
    let batch = RecordBatch::try_new(s.clone(), vec![Arc::new(value), Arc::new(ts)]).unwrap();
    let table = pipeline::lookup_table();
    let mut g = c.benchmark_group("microbatch");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.measurement_time(Duration::from_secs(5));
    for label in ["without_join", "with_join"] {
        let (source, _producer) = MemorySource::new(s.clone());
        let df = DataFrame::from_source("events", source);
        let df = if label == "with_join" {
            df.join_as(
                &table,
                "r",
                (col("value") % lit(pipeline::LOOKUP_ROWS)).eq(col("r.k")),
                JoinType::Inner,
            )
            .select([col("value"), col("ts"), col("r.name")])
        } else {
            df.select([col("value"), col("ts")])
        };
        let mut runner = BatchRunner::new(&df, OutputMode::Append).unwrap();
        let out = runner.run(batch.clone()).unwrap();
        assert_eq!(out.num_rows(), ROWS, "{label}: every row finds one");
        g.bench_function(format!("lookup_{label}_1M_rows"), |b| {
            b.iter(|| black_box(runner.run(batch.clone()).unwrap()))
        });
    }
    g.finish();
}

struct Count(u64, u64);

impl SourceOutput for Count {
    fn emit(&mut self, row: Row, _ingest_ns: u64) -> runnel::Result<()> {
        self.0 += 1;
        self.1 += row.len() as u64;
        Ok(())
    }
}

fn log_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let topic = LogTopic::create(dir.path(), "bench", 1).unwrap();
    let mut producer = topic
        .producer_with_config(ProducerConfig {
            segment_bytes: 16 << 20,
            ..ProducerConfig::default()
        })
        .unwrap();
    let value = vec![b'v'; 100];
    let records = 1_000_000u64;
    for i in 0..records {
        producer
            .send(Some(0), None, Some(&value), i as i64)
            .unwrap();
    }
    producer.sync().unwrap();
    drop(producer);
    let bytes: u64 = std::fs::read_dir(dir.path().join("bench/0"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Bytes(bytes));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("read_1M_records_100B", |b| {
        b.iter(|| {
            let mut reader = topic.reader(0).unwrap();
            let mut total = 0usize;
            loop {
                let n = reader
                    .read_batch(8192, |r| total += r.value.map_or(0, |v| v.len()))
                    .unwrap();
                if n == 0 {
                    break;
                }
            }
            black_box(total)
        })
    });
    g.finish();
}

fn retail_dir() -> PathBuf {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/retail-data/by-day");
    if shared.is_dir() {
        shared
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/retail-by-day")
    }
}

fn csv_read(c: &mut Criterion) {
    let dir = retail_dir();
    let open = || {
        let options = FileSourceOptions::from_pairs([("header", "true")]).unwrap();
        let mut source = FileSource::csv(&dir, options).unwrap();
        let ctx = SourceContext {
            name: "retail".into(),
            waker: Arc::new(runnel::continuous::TaskWaker::new()),
        };
        source.open(&ctx, None).unwrap();
        source
    };
    // Count the rows once to report rows/s.
    let mut probe = open();
    let end = probe.latest_offset().unwrap();
    let mut count = Count(0, 0);
    probe.read_range(None, &end, &mut count).unwrap();
    let rows = count.0;
    let mut g = c.benchmark_group("csv");
    g.throughput(Throughput::Elements(rows));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function(
        format!(
            "read_{}_files_{}_rows",
            dir.read_dir().unwrap().count(),
            rows
        ),
        |b| {
            b.iter(|| {
                let mut source = open();
                let mut count = Count(0, 0);
                let mut start: Option<SourceOffset> = None;
                // One micro-batch per file, as a file stream reads them.
                loop {
                    let end = source.latest_offset().unwrap();
                    if Some(&end) == start.as_ref() {
                        break;
                    }
                    source.read_range(start.as_ref(), &end, &mut count).unwrap();
                    start = Some(end);
                    if source.is_exhausted() {
                        break;
                    }
                }
                black_box(count.0)
            })
        },
    );
    g.finish();
}

criterion_group!(
    benches,
    filter_project_sum,
    keyed_window_count,
    function_projection,
    lookup_join,
    log_read,
    csv_read
);
criterion_main!(benches);
