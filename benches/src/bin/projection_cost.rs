//! Continuous mode's per-event cost of a projection with five scalar
//! functions (one `CASE`, one `LIKE`, one `coalesce`, one `hour`, one
//! `concat`) against a plain projection of five columns: the loop the
//! projection operator runs for each event (one reused output row, each
//! bound expression's row kernel), over a cycle of 1,024 input rows with a
//! tenth of `qty` null.
//!
//! ```text
//! projection-cost plain|functions EVENTS
//! ```
//!
//! Meant to be run under an instruction counter at two event counts: the
//! difference in instructions over the difference in events is the cost
//! of one event, without start-up (`benches/callgrind-projection.sh`).
//! Outside one it prints the wall time per event, for a rough look.

use std::hint::black_box;
use std::time::Instant;

use runnel::expr::bind_expr;
use runnel::schema::{schema, timestamp_type, DataType, Row, Value};
use runnel_benches::pipeline::{function_projection, plain_projection};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (which, events) = match args.as_slice() {
        [_, which, events] => match events.parse::<usize>() {
            Ok(n) => (which.as_str(), n),
            Err(e) => usage(&format!("EVENTS `{events}`: {e}")),
        },
        _ => usage("expected two arguments"),
    };
    let s = schema(&[
        ("name", DataType::Utf8),
        ("qty", DataType::Int64),
        ("ts", timestamp_type()),
    ]);
    let exprs = match which {
        "plain" => plain_projection(),
        "functions" => function_projection(),
        other => usage(&format!("unknown projection `{other}`")),
    };
    let bound: Vec<_> = exprs
        .iter()
        .map(|e| match bind_expr(e, &s) {
            Ok((b, _)) => b,
            Err(err) => usage(&format!("{e}: {err}")),
        })
        .collect();
    let names = ["ada", "bob", "alan", "grace", "anna", "linus"];
    let rows: Vec<Row> = (0..1024i64)
        .map(|i| {
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
        out.clear();
        for e in &bound {
            out.push(e.eval(input));
        }
        width += black_box(&out).len();
    }
    let took = started.elapsed();
    println!(
        "{which}: {events} events, {width} values, {:.1} ns per event",
        took.as_nanos() as f64 / events.max(1) as f64
    );
}

fn usage(why: &str) -> ! {
    eprintln!("projection-cost: {why}\nusage: projection-cost plain|functions EVENTS");
    std::process::exit(2)
}
