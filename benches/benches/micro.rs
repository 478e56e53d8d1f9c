//! Criterion micro-benchmarks of the continuous hot path.
//!
//! - `expr/*`: evaluating the stateless scenario's filter predicate
//!   (`value % 2 = 0`), the keyed scenario's key (`value % 10000`) and the
//!   stateless projection on one row;
//! - `window/*`: assigning a timestamp to tumbling and sliding windows;
//! - `pipeline/*`: a whole single-task query (stateless, and keyed with
//!   10,000 keys) over N rows pushed into a `MemorySource` before the query
//!   starts, into a null sink; the time is from `start` until the query has
//!   ended (every row through, final epoch committed), so thread start-up and
//!   one epoch commit are included.
//!
//! ```text
//! cargo bench -p runnel-benches --bench micro
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runnel::expr::bind_expr;
use runnel::plan::WindowShape;
use runnel::{col, lit, MemorySource, WaitStrategy};
use runnel_benches::config::Scenario;
use runnel_benches::generator::{event_row, event_schema};
use runnel_benches::pipeline::{query_for, NullSink};

fn expressions(c: &mut Criterion) {
    let schema = event_schema();
    let (filter, _) = bind_expr(&(col("value") % lit(2i64)).eq(lit(0i64)), &schema).expect("binds");
    let project: Vec<_> = [
        col("value"),
        (col("value") + lit(1i64)).alias("next"),
        col("ts"),
    ]
    .iter()
    .map(|e| bind_expr(e, &schema).expect("binds").0)
    .collect();
    let rows: Vec<_> = (0..1024u64)
        .map(|i| event_row(i, 1_700_000_000_000_000 + i as i64))
        .collect();
    let mut g = c.benchmark_group("expr");
    g.throughput(Throughput::Elements(1));
    g.bench_function("filter value%2=0 (passes)", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(filter.passes(black_box(&rows[i])))
        })
    });
    let (key, _) = bind_expr(&(col("value") % lit(10_000i64)), &schema).expect("binds");
    g.bench_function("key value%10000", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(key.eval(black_box(&rows[i])))
        })
    });
    g.bench_function("project value, value+1, ts", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 1023;
            let row: runnel::Row = project.iter().map(|e| e.eval(&rows[i])).collect();
            black_box(row)
        })
    });
    g.finish();
}

fn windows(c: &mut Criterion) {
    let tumbling = WindowShape::parse("1 second", None, None).expect("valid");
    let sliding = WindowShape::parse("10 seconds", Some("1 second"), None).expect("valid");
    let base = 1_700_000_000_000_000i64;
    let mut g = c.benchmark_group("window");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tumbling 1s", |b| {
        let mut ts = base;
        b.iter(|| {
            ts += 997;
            let mut sum = 0i64;
            for s in tumbling.assign(black_box(ts)) {
                sum = sum.wrapping_add(s);
            }
            black_box(sum)
        })
    });
    g.bench_function("sliding 10s/1s (10 windows)", |b| {
        let mut ts = base;
        b.iter(|| {
            ts += 997;
            let mut sum = 0i64;
            for s in sliding.assign(black_box(ts)) {
                sum = sum.wrapping_add(s);
            }
            black_box(sum)
        })
    });
    g.finish();
}

/// Runs one query over `n` rows pushed before it starts; the time from
/// `start` to the end of the query.
fn pipeline_once(scenario: Scenario, n: u64) -> Duration {
    let (source, mut producer) = MemorySource::with_capacity(event_schema(), n as usize + 1);
    let base = 1_700_000_000_000_000i64;
    for i in 0..n {
        // 1 µs apart in event time: 1M events/s worth of windows.
        let row = event_row(i, base + i as i64);
        if producer.push_at(row, runnel::clock::now_ns()).is_err() {
            panic!("the ring was sized to hold every row");
        }
    }
    drop(producer);
    let (sink, stats) = NullSink::new();
    let writer = query_for(
        scenario,
        source,
        sink,
        10_000,
        WaitStrategy::Park,
        Duration::from_millis(100),
    )
    .expect("an engine scenario");
    let started = Instant::now();
    let query = writer.start().expect("starts");
    query.await_termination().expect("runs");
    let took = started.elapsed();
    assert!(stats.rows() > 0);
    took
}

fn pipelines(c: &mut Criterion) {
    const N: u64 = 200_000;
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for scenario in [Scenario::Stateless, Scenario::Keyed] {
        g.bench_function(format!("{scenario} single task, {N} rows"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| pipeline_once(scenario, N)).sum())
        });
    }
    g.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = expressions, windows, pipelines
}
criterion_main!(micro);
