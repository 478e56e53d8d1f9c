//! The embedding path: `PushSource` producers running the query's first task
//! on their own threads, and result subscriptions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use runnel::{
    col, count_star, lit, not, row, schema, CallbackSink, ChannelSink, DataFrame, DataType,
    EngineError, OutputMode, PushSource, Row, Trigger, Value,
};

fn two_columns() -> runnel::SchemaRef {
    schema(&[("producer", DataType::Int64), ("seq", DataType::Int64)])
}

fn fast_epochs() -> Trigger {
    Trigger::Continuous {
        epoch_interval: Duration::from_millis(5),
    }
}

/// Every row reaches the subscription exactly once, in push order, and each
/// has a latency sample (push → hand-off).
#[test]
fn one_producer_in_order_through_a_channel() {
    let (source, mut pusher) = PushSource::new(two_columns());
    let (sink, subscription) = ChannelSink::new(1024);
    let query = DataFrame::from_source("events", source)
        .filter(not((col("seq") % lit(3i64)).eq(lit(0i64))))
        .select([col("seq"), (col("seq") * lit(2i64)).alias("twice")])
        .write_stream(sink)
        .trigger(fast_epochs())
        .start()
        .unwrap();
    let reader = thread::spawn(move || subscription.collect::<Vec<Row>>());
    for i in 0..30_000i64 {
        pusher.push(row![0i64, i]).unwrap();
    }
    drop(pusher);
    query.await_termination().unwrap();
    let rows = reader.join().unwrap();
    let expected: Vec<i64> = (0..30_000).filter(|i| i % 3 != 0).collect();
    assert_eq!(rows.len(), expected.len());
    for (row, want) in rows.iter().zip(expected) {
        assert_eq!(row[0], Value::Int64(want));
        assert_eq!(row[1], Value::Int64(want * 2));
    }
    assert_eq!(query.latency().count, 20_000);
    // The same rows, measured again when their epoch became durable.
    let (handoff, durable) = (query.latency(), query.durable_latency());
    assert_eq!(durable.count, 20_000);
    assert!(durable.p50 >= handoff.p50 && durable.max >= handoff.max);
}

/// Several producers on their own threads, racing for the chain: every row
/// of every producer is delivered exactly once and in its producer's order.
#[test]
fn several_producers_lose_nothing_and_keep_their_order() {
    const PRODUCERS: i64 = 4;
    const ROWS: i64 = 100_000;
    let (source, first) = PushSource::with_capacity(two_columns(), 64);
    let seen: Arc<Mutex<Vec<(i64, i64)>>> = Arc::default();
    let seen2 = seen.clone();
    let sink = CallbackSink::new(move |r: &Row| {
        seen2
            .lock()
            .unwrap()
            .push((r[0].as_i64().unwrap(), r[1].as_i64().unwrap()));
    });
    let query = DataFrame::from_source("events", source)
        .write_stream(sink)
        .trigger(fast_epochs())
        .start()
        .unwrap();
    let mut pushers = vec![first];
    for _ in 1..PRODUCERS {
        let next = pushers[0].clone();
        pushers.push(next);
    }
    let threads: Vec<_> = pushers
        .into_iter()
        .map(|mut p| {
            thread::spawn(move || {
                let id = p.index() as i64;
                for i in 0..ROWS {
                    p.push(row![id, i]).unwrap();
                    if i % 10_000 == 0 {
                        // Let another producer or the task hold the chain.
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    query.await_termination().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as i64, PRODUCERS * ROWS);
    let mut next: HashMap<i64, i64> = HashMap::new();
    for &(p, s) in seen.iter() {
        let want = next.entry(p).or_insert(0);
        assert_eq!(s, *want, "producer {p}: row {s} out of order");
        *want += 1;
    }
    assert!(next.values().all(|&n| n == ROWS));
}

/// A keyed count fed by several producers, both with the aggregation inline
/// (one partition) and behind a keyed exchange (two partitions).
fn keyed_count(parallelism: usize) {
    let (source, first) = PushSource::new(schema(&[("key", DataType::Utf8)]));
    let counts: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let counts2 = counts.clone();
    let sink = CallbackSink::new(move |r: &Row| {
        // Update mode: each row is the group's new count.
        counts2
            .lock()
            .unwrap()
            .insert(r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap());
    });
    let query = DataFrame::from_source("events", source)
        .group_by([col("key")])
        .agg([count_star().alias("n")])
        .write_stream(sink)
        .output_mode(OutputMode::Update)
        .trigger(fast_epochs())
        .parallelism(parallelism)
        .start()
        .unwrap();
    let second = first.clone();
    let threads: Vec<_> = [first, second]
        .into_iter()
        .map(|mut p| {
            thread::spawn(move || {
                for i in 0..20_000 {
                    p.push(row![format!("k{}", i % 7)]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    query.await_termination().unwrap();
    let counts = counts.lock().unwrap();
    assert_eq!(counts.len(), 7);
    let total: i64 = counts.values().sum();
    assert_eq!(total, 40_000);
    for k in 0..7 {
        let want = 2 * (0..20_000).filter(|i| i % 7 == k).count() as i64;
        assert_eq!(counts[&format!("k{k}")], want);
    }
}

#[test]
fn keyed_count_inline() {
    keyed_count(1);
}

#[test]
fn keyed_count_behind_an_exchange() {
    keyed_count(2);
}

/// Open loop: a subscriber that stalls shows up as latency of the rows
/// pushed meanwhile (their ingest time is their scheduled time).
#[test]
fn a_stalled_subscriber_shows_up_as_latency() {
    let (source, mut pusher) = PushSource::with_capacity(two_columns(), 16);
    let stalls = Arc::new(AtomicU64::new(0));
    let stalls2 = stalls.clone();
    let sink = CallbackSink::new(move |r: &Row| {
        if r[1].as_i64() == Some(500) {
            stalls2.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(30));
        }
    });
    let query = DataFrame::from_source("events", source)
        .write_stream(sink)
        .trigger(fast_epochs())
        .start()
        .unwrap();
    // A schedule of one row every 20 µs; each row carries its due time.
    let start = runnel::clock::now_ns();
    for i in 0..2_000i64 {
        let due = start + i as u64 * 20_000;
        while runnel::clock::now_ns() < due {
            std::hint::spin_loop();
        }
        pusher.push_at(row![0i64, i], due).unwrap();
    }
    drop(pusher);
    query.await_termination().unwrap();
    assert_eq!(stalls.load(Ordering::Relaxed), 1);
    let hist = query.latency_histogram();
    assert_eq!(hist.len(), 2_000);
    // The stalled row itself waited 30 ms; the rows scheduled during the
    // stall waited too (about 1,500 of them were due within it).
    assert!(hist.max() >= 30_000_000, "max {} ns", hist.max());
    let late = hist.count_between(1_000_000, u64::MAX);
    assert!(late >= 500, "only {late} rows over 1 ms");
}

/// A panic in a user function on the pushing thread fails the query with
/// its message; the producer learns it is closed.
#[test]
fn a_panic_on_the_pushing_thread_fails_the_query() {
    let (source, mut pusher) = PushSource::new(two_columns());
    let (sink, _sub) = ChannelSink::new(1 << 16);
    let query = DataFrame::from_source("events", source)
        .flat_map(two_columns(), |r: &Row, out: &mut dyn FnMut(Row)| {
            if r[1].as_i64() == Some(10) {
                panic!("bad row ten");
            }
            out(r.clone());
        })
        .write_stream(sink)
        .trigger(fast_epochs())
        .start()
        .unwrap();
    let mut closed_at = None;
    for i in 0..100i64 {
        if pusher.push(row![0i64, i]).is_err() {
            closed_at = Some(i);
            break;
        }
    }
    assert_eq!(closed_at, Some(10));
    match query.await_termination() {
        Err(EngineError::Panic(m)) => assert!(m.contains("bad row ten"), "{m}"),
        other => panic!("expected the panic, got {other:?}"),
    }
}

/// A stop while producers are idle ends the query; later pushes are refused.
#[test]
fn stop_while_idle() {
    let (source, mut pusher) = PushSource::new(two_columns());
    let (sink, sub) = ChannelSink::new(16);
    let query = DataFrame::from_source("events", source)
        .write_stream(sink)
        .trigger(fast_epochs())
        .start()
        .unwrap();
    pusher.push(row![0i64, 1i64]).unwrap();
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(5)).unwrap().unwrap()[1],
        Value::Int64(1)
    );
    thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    query.stop().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(pusher.push(row![0i64, 2i64]).is_err());
    assert_eq!(sub.recv_timeout(Duration::from_secs(1)), Ok(None));
}

/// A checkpoint cannot protect rows the engine cannot re-read: without an
/// explicit opt-in the query is refused at start, with the reason, rather
/// than starting and logging a warning.
#[test]
fn a_checkpoint_over_a_push_source_needs_an_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _pusher) = PushSource::new(two_columns());
    let (sink, _sub) = ChannelSink::new(16);
    let refused = DataFrame::from_source("events", source)
        .write_stream(sink)
        .trigger(fast_epochs())
        .checkpoint(dir.path())
        .start();
    let Err(err) = refused else {
        panic!("a checkpoint over a push source started without the opt-in");
    };
    let text = err.to_string();
    assert!(
        text.contains("cannot replay") && text.contains("allow_rows_lost_on_crash"),
        "{text}"
    );
    // Nothing was written: the refusal happens before the checkpoint opens.
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

/// Markers are placed while producers are idle (epochs keep committing), and
/// after a restart from the checkpoint each producer learns how many of its
/// rows the durable epochs hold, to replay the rest itself.
#[test]
fn durable_positions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &std::path::Path| {
        let (source, pusher) = PushSource::new(two_columns());
        let (sink, sub) = ChannelSink::new(1 << 16);
        let query = DataFrame::from_source("events", source)
            .write_stream(sink)
            .trigger(fast_epochs())
            .checkpoint(dir)
            .allow_rows_lost_on_crash()
            .start()
            .unwrap();
        (query, pusher, sub)
    };
    let (query, mut pusher, _sub) = start(dir.path());
    let second = pusher.clone();
    for i in 0..1_000i64 {
        pusher.push(row![0i64, i]).unwrap();
    }
    // Idle producers: the background task must still end epochs.
    let before = query.committed_epoch();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pusher.durable_position() < 1_000 {
        assert!(Instant::now() < deadline, "no epoch became durable");
        thread::sleep(Duration::from_millis(5));
    }
    assert!(query.committed_epoch() > before);
    assert_eq!(second.durable_position(), 0);
    drop((pusher, second));
    query.await_termination().unwrap();

    let (query, pusher, _sub) = start(dir.path());
    let second = pusher.clone();
    assert_eq!(pusher.durable_position(), 1_000);
    assert_eq!(pusher.position(), 1_000);
    assert_eq!(second.durable_position(), 0);
    drop((pusher, second));
    query.await_termination().unwrap();
}

/// Rows pushed before the query starts wait in the producer's ring and are
/// processed first, in order.
#[test]
fn rows_pushed_before_the_start_are_kept() {
    let (source, mut pusher) = PushSource::with_capacity(two_columns(), 8);
    for i in 0..8i64 {
        pusher.try_push(row![0i64, i]).unwrap();
    }
    assert!(matches!(
        pusher.try_push(row![0i64, 8i64]),
        Err(runnel::io::PushError::Full(_))
    ));
    let (sink, sub) = ChannelSink::new(64);
    let query = DataFrame::from_source("events", source)
        .write_stream(sink)
        .trigger(fast_epochs())
        .start()
        .unwrap();
    pusher.push(row![0i64, 8i64]).unwrap();
    drop(pusher);
    query.await_termination().unwrap();
    let got: Vec<i64> = sub.map(|r| r[1].as_i64().unwrap()).collect();
    assert_eq!(got, (0..9).collect::<Vec<_>>());
}
