//! Embedding runnel in a service: request handlers push events into an
//! in-memory source, a continuous query keeps per-user counts per second,
//! and the service reads the result table and the end-to-end latency while
//! the query runs.
//!
//! Run: `cargo run --release -p runnel-engine --example embedded_service`

use std::thread;
use std::time::{Duration, Instant};

use runnel::{
    clock, col, count_star, row, schema, timestamp_type, window, DataFrame, DataType, MemorySink,
    MemorySource, OutputMode, Value,
};

fn main() -> runnel::Result<()> {
    let (source, mut producer) = MemorySource::new(schema(&[
        ("user", DataType::Utf8),
        ("path", DataType::Utf8),
        ("ts", timestamp_type()),
    ]));
    let (sink, table) = MemorySink::new("requests_per_user");
    let query = DataFrame::from_source("requests", source)
        .with_watermark("ts", "2 seconds")
        .group_by([window(col("ts"), "1 second"), col("user")])
        .agg([count_star().alias("requests")])
        .write_stream(sink)
        .output_mode(OutputMode::Update)
        .query_name("requests_per_user")
        .start()?;

    // The "request handlers": 50,000 requests/s for two seconds.
    let handlers = thread::spawn(move || {
        let users = ["ada", "grace", "linus", "barbara"];
        let start = Instant::now();
        let mut n: u64 = 0;
        while start.elapsed() < Duration::from_secs(2) {
            let due = start + Duration::from_micros(n * 20);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            let user = users[(n % 4) as usize];
            let event = row![user, "/index", Value::Timestamp(clock::wall_now_us())];
            if producer.push_blocking(event).is_err() {
                break;
            }
            n += 1;
        }
        n // dropping the producer ends the stream
    });

    // The service reads its live table while the query runs.
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(700));
        println!(
            "{} rows in `{}`; latency so far: {:?}",
            table.len(),
            table.name(),
            query.latency()
        );
    }
    let sent = handlers.join().expect("handlers");
    query.await_termination()?;
    let counted: i64 = table.rows().iter().filter_map(|r| r[3].as_i64()).sum();
    println!("sent {sent} requests, counted {counted}");
    let lat = query.latency();
    println!(
        "end-to-end latency: p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.1} µs",
        lat.p50, lat.p99, lat.p999, lat.max
    );
    if let Some(p) = query.last_progress() {
        println!("last progress:\n{p}");
    }
    assert_eq!(sent as i64, counted);
    Ok(())
}
