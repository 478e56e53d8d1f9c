//! Unit tests of each row operator, driven directly with a collecting stage.

use std::sync::{Arc, Mutex};

use super::*;
use crate::checkpoint::EpochReporter;
use crate::expr::{bind_expr, col, lit, Predicate};
use crate::io::OutputMode;
use crate::row;
use crate::schema::{schema, timestamp_type, DataType, Row, Value, NO_TIME};
use crate::state::AggFunc;
use crate::window::WindowShape;

/// What reached the end of a chain.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<Event>,
    watermarks: Vec<i64>,
    markers: Vec<u64>,
    ended: bool,
}

struct Collect(Arc<Mutex<Seen>>);

impl Operator for Collect {
    fn on_event(&mut self, ev: &mut Event) -> crate::Result<()> {
        self.0.lock().unwrap().events.push(ev.clone());
        Ok(())
    }
    fn on_watermark(&mut self, wm: i64) -> crate::Result<()> {
        self.0.lock().unwrap().watermarks.push(wm);
        Ok(())
    }
    fn on_marker(&mut self, epoch: u64) -> crate::Result<()> {
        self.0.lock().unwrap().markers.push(epoch);
        Ok(())
    }
    fn on_tick(&mut self) -> crate::Result<()> {
        Ok(())
    }
    fn on_end(&mut self) -> crate::Result<()> {
        self.0.lock().unwrap().ended = true;
        Ok(())
    }
}

fn collector() -> (Next, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    (Box::new(Collect(seen.clone())), seen)
}

fn reporter() -> (EpochReporter, crate::checkpoint::ReportInbox) {
    crate::checkpoint::report_channel()
}

fn ev(row: Row) -> Event {
    Event::new(row, 7)
}

#[test]
fn filter_keeps_true_rows_and_passes_control_through() {
    let s = schema(&[("x", DataType::Int64)]);
    let (next, seen) = collector();
    let mut op = FilterOp {
        predicate: Predicate::new(&bind_expr(&col("x").gt(lit(1i64)), &s).unwrap().0),
        next,
    };
    for x in [
        Value::Int64(1),
        Value::Int64(2),
        Value::Null,
        Value::Int64(3),
    ] {
        op.on_event(&mut ev(Row::from(vec![x]))).unwrap();
    }
    op.on_watermark(5).unwrap();
    op.on_marker(1).unwrap();
    op.on_end().unwrap();
    let seen = seen.lock().unwrap();
    let kept: Vec<&Value> = seen.events.iter().map(|e| &e.row[0]).collect();
    assert_eq!(kept, vec![&Value::Int64(2), &Value::Int64(3)]);
    assert_eq!(
        (seen.watermarks.clone(), seen.markers.clone(), seen.ended),
        (vec![5], vec![1], true)
    );
    assert_eq!(seen.events[0].ingest_ns, 7, "times ride along");
}

#[test]
fn project_computes_new_rows() {
    let s = schema(&[("a", DataType::Int64), ("b", DataType::Utf8)]);
    let (next, seen) = collector();
    let mut op = ProjectOp::new(
        vec![
            bind_expr(&col("b"), &s).unwrap().0,
            bind_expr(&(col("a") * lit(2i64)), &s).unwrap().0,
        ],
        next,
    );
    op.on_event(&mut ev(row![21i64, "x"])).unwrap();
    assert_eq!(seen.lock().unwrap().events[0].row, row!["x", 42i64]);
}

#[test]
fn flat_map_emits_any_number_of_rows_with_the_input_times() {
    let (next, seen) = collector();
    let mut op = FlatMapOp {
        func: Arc::new(|r: &Row, emit: &mut dyn FnMut(Row)| {
            for _ in 0..r[0].as_i64().unwrap() {
                emit(r.clone());
            }
        }),
        next,
    };
    op.on_event(&mut ev(row![3i64])).unwrap();
    op.on_event(&mut ev(row![0i64])).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.events.len(), 3);
    assert!(seen.events.iter().all(|e| e.ingest_ns == 7));
}

#[test]
fn generate_emits_one_event_per_element_with_the_input_times() {
    let s = schema(&[("id", DataType::Int64), ("line", DataType::Utf8)]);
    let split = bind_expr(&crate::expr::split(col("line"), " "), &s)
        .unwrap()
        .0;
    for (position, outer) in [(false, false), (true, true)] {
        let (next, seen) = collector();
        let mut op = GenerateOp::new(split.clone(), position, outer, next);
        op.on_event(&mut ev(row![1i64, "a b"])).unwrap();
        op.on_event(&mut ev(row![2i64, Value::Null])).unwrap();
        let seen = seen.lock().unwrap();
        let rows: Vec<Row> = seen.events.iter().map(|e| e.row.clone()).collect();
        if position {
            assert_eq!(
                rows,
                vec![
                    row![1i64, "a b", 0i64, "a"],
                    row![1i64, "a b", 1i64, "b"],
                    row![2i64, Value::Null, Value::Null, Value::Null],
                ]
            );
        } else {
            assert_eq!(rows, vec![row![1i64, "a b", "a"], row![1i64, "a b", "b"]]);
        }
        assert!(seen.events.iter().all(|e| e.ingest_ns == 7));
    }
}

#[test]
fn watermark_stamps_the_watermark_before_each_event() {
    let (next, seen) = collector();
    let (reporter, rx) = reporter();
    let mut op = WatermarkOp {
        column: 0,
        delay_us: 10,
        max_event_time: NO_TIME,
        forwarded: NO_TIME,
        op_id: 3,
        reporter,
        next,
    };
    for t in [100, 50, 130, Value::Null.as_i64().unwrap_or(NO_TIME)] {
        let v = if t == NO_TIME {
            Value::Null
        } else {
            Value::Timestamp(t)
        };
        op.on_event(&mut ev(Row::from(vec![v]))).unwrap();
    }
    op.on_tick().unwrap();
    op.on_marker(4).unwrap();
    let seen = seen.lock().unwrap();
    let stamped: Vec<(i64, i64)> = seen
        .events
        .iter()
        .map(|e| (e.event_time_us, e.watermark_us))
        .collect();
    assert_eq!(
        stamped,
        vec![(100, NO_TIME), (50, 90), (130, 90), (NO_TIME, 120)]
    );
    assert_eq!(
        seen.watermarks,
        vec![120],
        "published once on the idle tick, not again at the marker"
    );
    match rx.try_recv().unwrap() {
        crate::checkpoint::CoordMsg::Snapshot {
            epoch: 4, op_id: 3, ..
        } => {}
        _ => panic!("the marker must report a snapshot"),
    }
}

#[test]
fn aggregate_updates_per_event_and_snapshots_only_changes() {
    let s = schema(&[
        ("k", DataType::Utf8),
        ("t", timestamp_type()),
        ("v", DataType::Int64),
    ]);
    let (next, seen) = collector();
    let (reporter, rx) = reporter();
    let spec = BoundAggregate {
        keys: vec![bind_expr(&col("k"), &s).unwrap().0],
        window: Some((
            1,
            bind_expr(&col("t"), &s).unwrap().0,
            WindowShape::new(10, 10, 0).unwrap(),
        )),
        aggs: vec![
            (AggFunc::CountStar, None, DataType::Int64),
            (
                AggFunc::Sum,
                Some(bind_expr(&col("v"), &s).unwrap().0),
                DataType::Int64,
            ),
        ],
        mode: OutputMode::Update,
        has_watermark: true,
    };
    let mut op = AggregateOp::new(spec, 2, 0, reporter, next);
    for (k, t, v, wm) in [
        ("a", 1, 5, NO_TIME),
        ("a", 3, 6, NO_TIME),
        ("b", 12, 1, 2),
        ("a", 4, 100, 11), // window [0,10) closed by watermark 11: late
    ] {
        let mut event = ev(row![k, Value::Timestamp(t), v]);
        event.watermark_us = wm;
        op.on_event(&mut event).unwrap();
    }
    op.on_marker(1).unwrap();
    let seen = seen.lock().unwrap();
    let out: Vec<String> = seen.events.iter().map(|e| e.row.to_string()).collect();
    assert_eq!(
        out,
        vec![
            "[a, 1970-01-01 00:00:00, 1970-01-01 00:00:00.00001, 1, 5]",
            "[a, 1970-01-01 00:00:00, 1970-01-01 00:00:00.00001, 2, 11]",
            "[b, 1970-01-01 00:00:00.00001, 1970-01-01 00:00:00.00002, 1, 1]",
        ]
    );
    match rx.try_recv().unwrap() {
        crate::checkpoint::CoordMsg::Snapshot {
            snapshot:
                crate::checkpoint::OperatorSnapshot::Aggregate {
                    delta,
                    rows_dropped_late,
                    ..
                },
            ..
        } => {
            assert_eq!(rows_dropped_late, 1);
            assert!(delta.full, "the first snapshot holds the whole state");
            assert_eq!(delta.num_groups(), 1, "only the live group b is left");
        }
        _ => panic!("expected an aggregate snapshot"),
    }
    drop(seen);
    // Then only changes: c's new group, and b's window closed by the watermark.
    for (k, t, v, wm) in [("c", 25, 7, 11), ("c", 26, 1, 21)] {
        let mut event = ev(row![k, Value::Timestamp(t), v]);
        event.watermark_us = wm;
        op.on_event(&mut event).unwrap();
    }
    op.on_marker(2).unwrap();
    match rx.try_recv().unwrap() {
        crate::checkpoint::CoordMsg::Snapshot {
            snapshot: crate::checkpoint::OperatorSnapshot::Aggregate { delta, .. },
            ..
        } => {
            assert!(!delta.full);
            assert_eq!(delta.evicted, vec![10], "the closed window was dropped");
            assert_eq!(delta.groups.len(), 1, "only the changed group c travels");
        }
        _ => panic!("expected an aggregate snapshot"),
    }
}

/// A full snapshot of a state much larger than an epoch's events is copied
/// out in about half as many events as the last epoch had, not left for the
/// next marker to copy at once.
#[test]
fn a_full_snapshot_of_a_large_state_is_copied_out_within_the_epoch() {
    let s = schema(&[("k", DataType::Int64)]);
    let (next, _seen) = collector();
    let (reporter, rx) = reporter();
    let spec = BoundAggregate {
        keys: vec![bind_expr(&col("k"), &s).unwrap().0],
        window: None,
        aggs: vec![(AggFunc::CountStar, None, DataType::Int64)],
        mode: OutputMode::Update,
        has_watermark: false,
    };
    let mut op = AggregateOp::new(spec, 2, 0, reporter, next);
    let push = |op: &mut AggregateOp, k: i64| op.on_event(&mut ev(row![k])).unwrap();
    let snapshots = |rx: &crate::checkpoint::ReportInbox| {
        let mut fulls = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            if let crate::checkpoint::CoordMsg::Snapshot {
                epoch,
                snapshot: crate::checkpoint::OperatorSnapshot::Aggregate { delta, .. },
                ..
            } = msg
            {
                fulls.push((epoch, delta.full, delta.num_groups()));
            }
        }
        fulls
    };
    for k in 0..10_000 {
        push(&mut op, k);
    }
    // The first snapshot is full; then deltas of 100 groups each, until the
    // chain is long enough for the next to be full again.
    let mut epoch = 1;
    op.on_marker(epoch).unwrap();
    for i in 0..10_000 {
        push(&mut op, i % 100);
    }
    assert_eq!(snapshots(&rx), vec![(1, true, 10_000)]);
    loop {
        epoch += 1;
        op.on_marker(epoch).unwrap();
        for k in 0..100 {
            push(&mut op, k);
        }
        let seen = snapshots(&rx);
        if seen.iter().any(|&(_, full, _)| full) {
            // Copied out during this epoch's 100 events (two per event
            // would have taken 5,000), not at the next marker.
            assert_eq!(seen, vec![(epoch, true, 10_000)]);
            break;
        }
        assert!(
            seen.iter().all(|&(e, _, n)| e == epoch && n == 100),
            "{seen:?}"
        );
        assert!(epoch < 100, "no second full snapshot came");
    }
}
