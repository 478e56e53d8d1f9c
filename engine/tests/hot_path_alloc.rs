//! Continuous mode's hot path allocates nothing per event: events pushed
//! through `PushSource` (the chain runs on the pushing thread) into a
//! stream-static join, or a projection of scalar functions, and on to a
//! callback, counted by an allocator that counts only the pushing thread's
//! allocations while the test asks it to.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use runnel::table::StaticTable;
use runnel::{
    call, case_when, coalesce, col, concat, count_star, lit, row, schema, timestamp_type, window,
    CallbackSink, DataFrame, DataType, Expr, JoinType, OutputMode, PushSource, Row, Value,
};

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// One measuring test at a time: the counter is shared.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Counting;

impl Counting {
    fn note() {
        // `try_with`: the thread-local may be gone while a thread exits.
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is passed on unchanged to the system allocator; the
// added bookkeeping only reads a thread-local flag and bumps an atomic.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        Self::note();
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        Self::note();
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        Self::note();
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Pushes `events` through `push`, and counts this thread's allocations
/// during the second half (the first warms the chain up).
fn second_half_allocations(events: Vec<Row>, mut push: impl FnMut(Row)) -> usize {
    let half = events.len() / 2;
    let mut events = events.into_iter();
    for r in events.by_ref().take(half) {
        push(r);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for r in events {
        push(r);
    }
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn an_inner_join_with_one_match_allocates_nothing_per_event() {
    let _one = serial();
    let table = StaticTable::from_rows(
        "regions",
        schema(&[("Country", DataType::Utf8), ("Region", DataType::Utf8)]),
        (0..100)
            .map(|i| row![format!("country {i}"), format!("region {}", i % 7)])
            .collect(),
    )
    .unwrap();
    let (source, mut producer) = PushSource::new(schema(&[
        ("id", DataType::Int64),
        ("Country", DataType::Utf8),
    ]));
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    let sink = CallbackSink::new(move |_: &Row| {
        counted.fetch_add(1, Ordering::Relaxed);
    });
    let query = DataFrame::from_source("events", source)
        .alias("e")
        .join_as(
            &table,
            "r",
            col("e.Country").eq(col("r.Country")),
            JoinType::Inner,
        )
        .select([col("id"), col("Region")])
        .write_stream(sink)
        .start()
        .unwrap();
    // The events are built before counting: a row's strings are its own.
    let events: Vec<Row> = (0..20_000i64)
        .map(|i| row![i, format!("country {}", i % 100)])
        .collect();
    let allocations = second_half_allocations(events, |r| producer.push(r).unwrap());
    drop(producer);
    query.await_termination().unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), 20_000);
    // A handful is allowed for the engine's own periodic work on this
    // thread (an epoch marker placed between two pushes), never one per event.
    assert!(
        allocations < 100,
        "{allocations} allocations for 10,000 joined events"
    );
}

/// Allocations on the pushing thread for 10,000 events through
/// `select(exprs)` (after 10,000 unmeasured ones).
fn projection_allocations(exprs: Vec<Expr>) -> usize {
    let (source, mut producer) = PushSource::new(schema(&[
        ("name", DataType::Utf8),
        ("qty", DataType::Int64),
        ("ts", timestamp_type()),
    ]));
    let sink = CallbackSink::new(|_: &Row| {});
    let query = DataFrame::from_source("events", source)
        .select(exprs)
        .write_stream(sink)
        .start()
        .unwrap();
    let names = ["ada", "bob", "alan", "grace"];
    let events: Vec<Row> = (0..20_000i64)
        .map(|i| {
            let qty = if i % 10 == 0 {
                Value::Null
            } else {
                Value::Int64(i % 40)
            };
            row![names[i as usize % 4], qty, Value::Timestamp(i * 3_600_007)]
        })
        .collect();
    let allocations = second_half_allocations(events, |r| producer.push(r).unwrap());
    drop(producer);
    query.await_termination().unwrap();
    allocations
}

#[test]
fn scalar_functions_allocate_only_the_strings_they_make() {
    let _one = serial();
    // CASE (to literal strings), LIKE, coalesce, hour: nothing per event.
    let none = projection_allocations(vec![
        case_when(
            [(col("qty").gt(lit(10i64)), lit("big"))],
            Some(lit("small")),
        )
        .alias("size"),
        col("name").like("a%").alias("a_name"),
        coalesce([col("qty"), lit(0i64)]).alias("qty0"),
        call("hour", [col("ts")]).alias("h"),
    ]);
    assert!(none < 100, "{none} allocations for 10,000 events");
    // concat makes a new string per event: a short one (23 bytes at most)
    // is stored in the value itself, a longer one takes one allocation
    // (the counter sees them).
    let short = projection_allocations(vec![
        concat([col("name"), lit("-"), col("name")]).alias("nn")
    ]);
    assert!(short < 100, "{short} allocations for 10,000 short strings");
    let long = projection_allocations(vec![concat([
        col("name"),
        lit(" is a name, and this string is longer than the inline room"),
    ])
    .alias("nn")]);
    assert!(
        (10_000..10_100).contains(&long),
        "{long} allocations for 10,000 long concatenations"
    );
}

#[test]
fn windows_that_close_and_open_reuse_their_storage() {
    let _one = serial();
    // A tumbling count with a watermark: 1,000 keys a second, 40 seconds.
    // Each second's window closes as the next one fills, so a steady
    // stream holds one or two windows; the second half is 20 of them.
    let (source, mut producer) = PushSource::new(schema(&[
        ("key", DataType::Int64),
        ("ts", timestamp_type()),
    ]));
    let rows = Arc::new(AtomicUsize::new(0));
    let counted = rows.clone();
    let sink = CallbackSink::new(move |_: &Row| {
        counted.fetch_add(1, Ordering::Relaxed);
    });
    let query = DataFrame::from_source("events", source)
        .with_watermark("ts", "0 seconds")
        .group_by([window(col("ts"), "1 second"), col("key")])
        .agg([count_star().alias("n")])
        .write_stream(sink)
        .output_mode(OutputMode::Append)
        .start()
        .unwrap();
    let events: Vec<Row> = (0..40_000i64)
        .map(|i| row![i % 1_000, Value::Timestamp(i * 1_000)])
        .collect();
    let allocations = second_half_allocations(events, |r| producer.push(r).unwrap());
    drop(producer);
    query.await_termination().unwrap();
    // Every window's 1,000 groups come out once the watermark closes it
    // (the last one is never closed: append mode waits for that).
    assert_eq!(rows.load(Ordering::Relaxed), 39_000);
    // A new window takes the storage of one that closed: no allocation for
    // its groups or its table (two a window before), and none per event.
    assert!(
        allocations < 20,
        "{allocations} allocations for 20 windows of 1,000 groups"
    );
}
