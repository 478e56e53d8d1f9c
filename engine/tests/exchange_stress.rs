//! Stress: epoch markers through a keyed exchange with several partitions,
//! at a high epoch rate, and producers far faster than their consumers
//! under every wait strategy.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::SequenceSource;
use runnel::{
    col, count_star, schema, sum, window, DataFrame, DataType, MemorySink, MemorySource,
    OutputMode, Row, Sink, SinkContext, Trigger, WaitStrategy,
};

const SEC: i64 = 1_000_000;

/// 1 ms epochs, 4 partitions: every epoch commits exactly once and in order,
/// every input row is counted once, and the aggregates are exact.
#[test]
fn markers_cross_a_keyed_exchange_in_order() {
    for wait in [
        WaitStrategy::Park,
        WaitStrategy::Adaptive,
        WaitStrategy::SpinYield,
    ] {
        let n = 200_000u64;
        let source = SequenceSource::new(n, 97, SEC / 1000);
        let (sink, table) = MemorySink::new("counts");
        let q = DataFrame::from_source("events", source)
            .group_by([col("key"), window(col("ts"), "10 seconds")])
            .agg([count_star().alias("n"), sum(col("id")).alias("ids")])
            .write_stream(sink)
            .output_mode(OutputMode::Update)
            .parallelism(4)
            .wait_strategy(wait)
            .trigger(Trigger::Continuous {
                epoch_interval: Duration::from_millis(1),
            })
            .start()
            .unwrap();
        q.await_termination().unwrap();
        let progress = q.recent_progress();
        let ids: Vec<u64> = progress.iter().map(|p| p.batch_id).collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{wait}: {ids:?}");
        assert_eq!(q.committed_epoch(), *ids.last().unwrap());
        let mut expected: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
        for id in 0..n {
            let t = id as i64 * (SEC / 1000);
            let e = expected
                .entry((format!("k{}", id % 97), t - t % (10 * SEC)))
                .or_default();
            e.0 += 1;
            e.1 += id as i64;
        }
        let got: BTreeMap<(String, i64), (i64, i64)> = table
            .rows()
            .iter()
            .map(|r| {
                (
                    (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()),
                    (r[3].as_i64().unwrap(), r[4].as_i64().unwrap()),
                )
            })
            .collect();
        assert_eq!(got, expected, "{wait}");
    }
}

/// A sink that is slow on purpose.
struct SlowSink {
    rows: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Sink for SlowSink {
    fn describe(&self) -> String {
        "SlowSink".into()
    }
    fn open(&mut self, _: &SinkContext, _: Option<&serde_json::Value>) -> runnel::Result<()> {
        Ok(())
    }
    fn write(&mut self, _: &Row) -> runnel::Result<()> {
        let n = self.rows.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n.is_multiple_of(2_000) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
    fn commit(&mut self, _: u64) -> runnel::Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }
}

/// A producer pushing as fast as it can into a small ring, through a
/// keyed exchange, into a slow sink: nothing is lost, no wake-up is missed
/// (the run would stall for 20 ms per lost wake-up and time out), and the
/// producer is pushed back (the ring fills) instead of memory growing.
#[test]
fn fast_producers_are_held_back_not_buffered_under_every_strategy() {
    for wait in [
        WaitStrategy::BusySpin,
        WaitStrategy::SpinYield,
        WaitStrategy::Park,
    ] {
        let rows = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (source, mut producer) =
            MemorySource::with_capacity(schema(&[("k", DataType::Int64)]), 256);
        let q = DataFrame::from_source("fast", source)
            .write_stream(SlowSink { rows: rows.clone() })
            .wait_strategy(wait)
            .start()
            .unwrap();
        let n = 100_000i64;
        let mut full = 0u64;
        for i in 0..n {
            let mut row = runnel::row![i];
            loop {
                match producer.push(row) {
                    Ok(()) => break,
                    Err(runnel::io::PushError::Full(back)) => {
                        full += 1;
                        row = back;
                        std::thread::yield_now();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        drop(producer);
        let done = q.await_termination_timeout(Duration::from_secs(60));
        assert!(
            matches!(done, Ok(true)),
            "{wait}: the query did not finish: {done:?}"
        );
        assert_eq!(
            rows.load(std::sync::atomic::Ordering::Relaxed),
            n as u64,
            "{wait}"
        );
        assert!(
            full > 0,
            "{wait}: the ring never filled, so nothing was pushed back"
        );
    }
}

#[test]
fn a_stop_request_reaches_every_task_of_an_exchange() {
    let (source, mut producer) = MemorySource::new(schema(&[("k", DataType::Int64)]));
    let (sink, table) = MemorySink::new("t");
    let q = DataFrame::from_source("s", source)
        .group_by([col("k")])
        .agg([count_star()])
        .write_stream(sink)
        .output_mode(OutputMode::Complete)
        .parallelism(3)
        .start()
        .unwrap();
    for i in 0..30_000i64 {
        producer.push_blocking(runnel::row![i % 10]).unwrap();
    }
    while producer.free_slots() < (1 << 16) {
        std::thread::sleep(Duration::from_millis(1));
    }
    q.stop().unwrap();
    let total: i64 = table.rows().iter().map(|r| r[1].as_i64().unwrap()).sum();
    assert_eq!(total, 30_000);
    assert!(!q.is_active());
    assert!(q.exception().is_none());
}
