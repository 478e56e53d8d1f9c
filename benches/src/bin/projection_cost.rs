//! Continuous mode's per-event cost of a projection with five scalar
//! functions (one `CASE`, one `LIKE`, one `coalesce`, one `hour`, one
//! `concat`) against a plain projection of five columns: the loop the
//! projection operator runs for each event (one reused output row, each
//! bound expression's row kernel), over a cycle of 1,024 input rows with a
//! tenth of `qty` null.
//!
//! ```text
//! projection-cost plain|functions|text-plain|text-functions EVENTS
//! projection-cost query-text-plain|query-text-functions EVENTS
//! ```
//!
//! `text-plain` and `text-functions` are the last projection of the
//! latency harness's `fused-text-plain` and `fused-text-functions` over
//! `(value bigint, ts timestamp, text string)` rows (`text` the value's
//! decimal form, as that pipeline casts it).
//!
//! `query-text-plain` and `query-text-functions` run that whole query
//! instead (`rate source → filter → select → select → sink`, continuous
//! mode, one task, an epoch every 100 ms), on EVENTS events from a rate
//! source so fast that it is always behind (no event waits for its time):
//! the projection's cost beside everything else an event costs.
//!
//! Meant to be run under an instruction counter at two event counts: the
//! difference in instructions over the difference in events is the cost
//! of one event, without start-up (`benches/callgrind-projection.sh`).
//! Outside one it prints the wall time per event, for a rough look.

use std::hint::black_box;
use std::time::{Duration, Instant};

use runnel::expr::{bind_expr, Projection};
use runnel::schema::{schema, timestamp_type, DataType, Row, Value};
use runnel::Trigger;
use runnel_benches::pipeline::{
    function_projection, plain_projection, text_projection, text_projection_query, NullSink,
};
use runnel_connectors::RateSource;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (which, events) = match args.as_slice() {
        [_, which, events] => match events.parse::<usize>() {
            Ok(n) => (which.as_str(), n),
            Err(e) => usage(&format!("EVENTS `{events}`: {e}")),
        },
        _ => usage("expected two arguments"),
    };
    if let Some(pair) = which.strip_prefix("query-") {
        return whole_query(pair, events);
    }
    let text = which.starts_with("text-");
    let s = if text {
        schema(&[
            ("value", DataType::Int64),
            ("ts", timestamp_type()),
            ("text", DataType::Utf8),
        ])
    } else {
        schema(&[
            ("name", DataType::Utf8),
            ("qty", DataType::Int64),
            ("ts", timestamp_type()),
        ])
    };
    let exprs = match which {
        "plain" => plain_projection(),
        "functions" => function_projection(),
        "text-plain" => text_projection("ts", false),
        "text-functions" => text_projection("ts", true),
        other => usage(&format!("unknown projection `{other}`")),
    };
    let bound: Vec<_> = exprs
        .iter()
        .map(|e| match bind_expr(e, &s) {
            Ok((b, _)) => b,
            Err(err) => usage(&format!("{e}: {err}")),
        })
        .collect::<Vec<_>>();
    // As the projection operator runs them.
    let projection = Projection::new(&bound);
    let names = ["ada", "bob", "alan", "grace", "anna", "linus"];
    let rows: Vec<Row> = (0..1024i64)
        .map(|i| {
            if text {
                // As the latency pipeline makes them: even values (its
                // filter), their text, a timestamp.
                let mut r = Row::new();
                let value = 2 * (1_000_000 + i);
                r.push(Value::Int64(value));
                r.push(Value::Timestamp(i * 3_600_007));
                r.push(Value::str(&value.to_string()));
                return r;
            }
            let mut r = Row::new();
            r.push(Value::str(names[i as usize % names.len()]));
            r.push(if i % 10 == 0 {
                Value::Null
            } else {
                Value::Int64(i % 40)
            });
            r.push(Value::Timestamp(i * 3_600_007));
            r
        })
        .collect();
    let mut out = Row::new();
    let mut width = 0usize;
    let started = Instant::now();
    for n in 0..events {
        let input = &rows[n & 1023];
        projection.eval_into(input, &mut out);
        width += black_box(&out).len();
    }
    let took = started.elapsed();
    println!(
        "{which}: {events} events, {width} values, {:.1} ns per event",
        took.as_nanos() as f64 / events.max(1) as f64
    );
}

/// Runs the latency harness's `fused-text-plain` or `fused-text-functions`
/// query over `events` events, as fast as it goes.
fn whole_query(pair: &str, events: usize) {
    let functions = match pair {
        "text-plain" => false,
        "text-functions" => true,
        other => usage(&format!("unknown query `query-{other}`")),
    };
    // A billion events a second: every event is already due when the
    // source reads it, so the task never waits.
    let source = RateSource::new(1_000_000_000).with_limit(events as u64);
    let (sink, stats) = NullSink::new();
    let started = Instant::now();
    let run = text_projection_query(source, sink, "timestamp", functions)
        .query_name(&format!("query-cost-{pair}"))
        .trigger(Trigger::Continuous {
            epoch_interval: Duration::from_millis(100),
        })
        .start()
        .and_then(|q| q.await_termination());
    if let Err(e) = run {
        eprintln!("projection-cost: the query failed: {e}");
        std::process::exit(1);
    }
    let took = started.elapsed();
    println!(
        "query-{pair}: {events} events, {} rows out, {:.1} ns per event",
        stats.rows(),
        took.as_nanos() as f64 / events.max(1) as f64
    );
}

fn usage(why: &str) -> ! {
    eprintln!(
        "projection-cost: {why}\nusage: projection-cost plain|functions|text-plain|text-functions|query-text-plain|query-text-functions EVENTS"
    );
    std::process::exit(2)
}
