//! Continuous mode's per-event cost of a stream-static inner join against
//! the same query without it: events pushed through the embedding API's
//! push source (the query's chain runs on the pushing thread) into
//! `filter value % 2 = 0 → [join regions r ON value % 100000 = r.k →]
//! select(value, value + 1, ts[, r.name]) → sink`, the table the latency
//! harness's `fused-lookup` scenario joins (100,000 rows, every event
//! finds one).
//!
//! ```text
//! lookup-cost plain|join EVENTS [sequential|scattered]
//! ```
//!
//! The events are built before [`push_all`] runs, and the epoch interval is
//! an hour, so under an instruction counter that collects only inside
//! `push_all` the count is the chain's work for EVENTS events; run at two
//! event counts, the difference over the difference in events is the cost
//! of one event (`benches/callgrind-lookup.sh`). Outside one it prints the
//! wall time per event, for a rough look.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel::{
    schema, timestamp_type, CallbackSink, DataType, PushSource, Pusher, Row, Trigger, Value,
};
use runnel_benches::pipeline::{lookup_query, lookup_table, stateless_query};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (join, events, keys) = match args.as_slice() {
        [_, which, events, rest @ ..] if rest.len() <= 1 => {
            let join = match which.as_str() {
                "plain" => false,
                "join" => true,
                other => usage(&format!("unknown query `{other}`")),
            };
            let keys = match rest.first().map(String::as_str) {
                None | Some("sequential") => Keys::Sequential,
                Some("scattered") => Keys::Scattered,
                Some(other) => usage(&format!("unknown key order `{other}`")),
            };
            match events.parse::<u64>() {
                Ok(n) => (join, n, keys),
                Err(e) => usage(&format!("EVENTS `{events}`: {e}")),
            }
        }
        _ => usage("expected two or three arguments"),
    };
    let (source, pusher) = PushSource::new(schema(&[
        ("value", DataType::Int64),
        ("ts", timestamp_type()),
    ]));
    let written = Arc::new(AtomicU64::new(0));
    let counted = written.clone();
    let sink = CallbackSink::new(move |row: &Row| {
        counted.fetch_add(black_box(row).len() as u64, Ordering::Relaxed);
    });
    let table = lookup_table();
    let writer = if join {
        lookup_query(source, sink, "ts", &table)
    } else {
        stateless_query(source, sink, "ts")
    };
    let query = match writer
        .trigger(Trigger::Continuous {
            epoch_interval: Duration::from_secs(3600),
        })
        .start()
    {
        Ok(q) => q,
        Err(e) => usage(&format!("the query does not start: {e}")),
    };
    let rows: Vec<Row> = (0..events as i64)
        .map(|i| Row::from(vec![Value::Int64(value_of(i, keys)), Value::Timestamp(i)]))
        .collect();
    let started = Instant::now();
    push_all(pusher, rows);
    let took = started.elapsed();
    if let Err(e) = query.await_termination() {
        usage(&format!("the query failed: {e}"));
    }
    println!(
        "{}{}: {events} events, {} values written, {:.1} ns per event",
        if join { "join" } else { "plain" },
        match keys {
            Keys::Sequential => "",
            Keys::Scattered => " (scattered keys)",
        },
        written.load(Ordering::Relaxed),
        took.as_nanos() as f64 / events.max(1) as f64
    );
}

/// The order in which events' keys (`value % 100000`) visit the table.
#[derive(Clone, Copy)]
enum Keys {
    /// `value` is the event's number, as the rate source's: the table is
    /// read in key order.
    Sequential,
    /// Every other event still passes the filter, but the keys jump around
    /// the table (a multiplicative scramble), as a real stream's ids would.
    Scattered,
}

/// The `value` of event `i`: even for even `i` in both orders.
fn value_of(i: i64, keys: Keys) -> i64 {
    match keys {
        Keys::Sequential => i,
        Keys::Scattered => {
            let scrambled = ((i / 2) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 24;
            2 * scrambled as i64 + i % 2
        }
    }
}

/// Pushes every row: the only function the instruction counter collects.
#[inline(never)]
fn push_all(mut pusher: Pusher, rows: Vec<Row>) {
    for row in rows {
        if let Err(e) = pusher.push(row) {
            usage(&format!("push: {e}"));
        }
    }
}

fn usage(why: &str) -> ! {
    eprintln!("lookup-cost: {why}\nusage: lookup-cost plain|join EVENTS [sequential|scattered]");
    std::process::exit(2)
}
