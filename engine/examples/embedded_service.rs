//! Embedding runnel in a service: two request-handler threads push events
//! through `PushSource` producers (each push runs the query's first task on
//! the handler's own thread), a continuous query keeps per-user counts per
//! second, and the service receives every updated count through a
//! subscription while the query runs.
//!
//! Run: `cargo run --release -p runnel-engine --example embedded_service`

use std::thread;
use std::time::{Duration, Instant};

use runnel::{
    clock, col, count_star, row, schema, timestamp_type, window, ChannelSink, DataFrame, DataType,
    OutputMode, PushSource, Value,
};

fn main() -> runnel::Result<()> {
    let (source, first) = PushSource::new(schema(&[
        ("user", DataType::Utf8),
        ("path", DataType::Utf8),
        ("ts", timestamp_type()),
    ]));
    // Every updated (window, user, count) row, in order, as it is produced.
    let (sink, updates) = ChannelSink::new(1 << 16);
    let query = DataFrame::from_source("requests", source)
        .with_watermark("ts", "2 seconds")
        .group_by([window(col("ts"), "1 second"), col("user")])
        .agg([count_star().alias("requests")])
        .write_stream(sink)
        .output_mode(OutputMode::Update)
        .query_name("requests_per_user")
        .start()?;

    // The "request handlers": two threads, 25,000 requests/s each, for two
    // seconds. Each has its own producer (a clone of the first).
    let second = first.clone();
    let handlers: Vec<_> = [first, second]
        .into_iter()
        .enumerate()
        .map(|(h, mut producer)| {
            thread::spawn(move || {
                let users = ["ada", "grace", "linus", "barbara"];
                let start = Instant::now();
                let mut n: u64 = 0;
                while start.elapsed() < Duration::from_secs(2) {
                    let due = start + Duration::from_micros(n * 40);
                    while Instant::now() < due {
                        std::hint::spin_loop();
                    }
                    let user = users[((n + h as u64) % 4) as usize];
                    let event = row![user, "/index", Value::Timestamp(clock::wall_now_us())];
                    if producer.push(event).is_err() {
                        break;
                    }
                    n += 1;
                }
                n // dropping the producer ends its part of the stream
            })
        })
        .collect();

    // The service reads the updates as they come.
    let reader = thread::spawn(move || {
        let mut latest = std::collections::HashMap::new();
        let mut n = 0u64;
        for update in updates {
            n += 1;
            let key = (update[0].clone(), update[1].clone(), update[2].clone());
            latest.insert(key, update[3].as_i64().unwrap_or(0));
        }
        (n, latest.values().sum::<i64>())
    });
    for _ in 0..2 {
        thread::sleep(Duration::from_millis(700));
        println!("latency so far: {:?}", query.latency());
    }
    let sent: u64 = handlers
        .into_iter()
        .map(|h| h.join().expect("handler"))
        .sum();
    query.await_termination()?;
    let (updates, counted) = reader.join().expect("reader");
    println!("sent {sent} requests, received {updates} updates, counted {counted}");
    let lat = query.latency();
    println!(
        "push → subscription latency: p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.1} µs",
        lat.p50, lat.p99, lat.p999, lat.max
    );
    assert_eq!(sent as i64, counted);
    Ok(())
}
