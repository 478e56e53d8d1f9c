//! Event to committed row: a continuous query writing into PostgreSQL, with
//! the latency seen by a reader of the table.
//!
//! The query is `rate → PostgresSink` in continuous mode with a checkpoint:
//! the rate source runs inside the query's task at `--rate` rows/s, open
//! loop, and stamps each row with its scheduled time (column `timestamp`).
//! A reader on its own connection polls the table every `--poll-us` for
//! rows it has not seen (`WHERE value > last`); a row's latency is the wall
//! time the poll that first saw it returned, minus its scheduled time. So
//! each figure is what a client of the database sees: the engine, the
//! sink's transaction, the server's commit (fsync on) and the reader's
//! poll.
//!
//! The floor, measured in the same run, is what a row committed the
//! instant it was scheduled would still show: half the poll interval plus
//! the poll's own round trip (its p50 and p99 are printed beside).
//!
//! ```text
//! postgres-latency [--url postgres://USER@HOST:PORT/DB] [--rate 10000]
//!                  [--duration 10] [--warmup 2] [--epoch-ms 100]
//!                  [--poll-us 250] [--runs 3]
//! ```
//!
//! Each run measures `delivery=at_least_once` (rows committed in groups as
//! they arrive) and then `delivery=exactly_once` (each epoch prepared,
//! committed once the checkpoint holds it), interleaved; the report gives
//! every run and the median of the runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hdrhistogram::Histogram;
use postgres::{Client, NoTls};
use runnel::{col, DataFrame, OutputMode, Trigger};
use runnel_connectors::{PostgresSink, PostgresSinkOptions, RateSource};

#[derive(Parser, Debug)]
#[command(about = "Event to committed row latency of the PostgreSQL sink in continuous mode")]
struct Args {
    /// The server (the password from PGPASSWORD).
    #[arg(long, env = "RUNNEL_POSTGRES")]
    url: String,
    /// Rows per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds, excluded from the figures.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// The query's epoch interval in milliseconds.
    #[arg(long, default_value_t = 100)]
    epoch_ms: u64,
    /// The reader's poll interval in microseconds.
    #[arg(long, default_value_t = 250)]
    poll_us: u64,
    /// Runs of each delivery setting.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("postgres-latency: {e}");
        std::process::exit(1);
    }
}

/// The figures of one run (µs).
struct Figures {
    rows: u64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    poll_p50: f64,
    poll_p99: f64,
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut admin = Client::connect(&args.url, NoTls)
        .map_err(|e| format!("cannot connect to {}: {e}", args.url))?;
    let settings = runnel_benches::postgres::settings(
        &mut admin,
        &[
            "server_version",
            "fsync",
            "synchronous_commit",
            "max_prepared_transactions",
        ],
    )?;
    println!("server: {settings}");
    println!(
        "source: rate (in the query's task), {} rows/s, open loop; epoch {} ms; reader polls every {} µs; {} s measured after {} s warm-up\n",
        args.rate, args.epoch_ms, args.poll_us, args.duration, args.warmup
    );
    println!("| run | delivery | rows | p50 µs | p99 µs | p99.9 µs | max µs | poll p50 µs | poll p99 µs |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut medians: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for run in 1..=args.runs {
        for delivery in ["at_least_once", "exactly_once"] {
            let f = measure(args, &mut admin, delivery, run)?;
            println!(
                "| {run} | {delivery} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                f.rows, f.p50, f.p99, f.p999, f.max, f.poll_p50, f.poll_p99
            );
            medians.entry(delivery).or_default().push((f.p50, f.p99));
        }
    }
    println!();
    for (delivery, runs) in medians {
        let p50: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let p99: Vec<f64> = runs.iter().map(|r| r.1).collect();
        let target = if delivery == "at_least_once" {
            "target p99 <= 5 ms".to_string()
        } else {
            format!("target p99 <= epoch + 5 ms = {} ms", args.epoch_ms + 5)
        };
        println!(
            "{delivery}: median of {} runs p50 {:.2} ms, p99 {:.2} ms ({target})",
            runs.len(),
            median(&p50) / 1e3,
            median(&p99) / 1e3
        );
    }
    Ok(())
}

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn measure(
    args: &Args,
    admin: &mut Client,
    delivery: &str,
    run: usize,
) -> Result<Figures, Box<dyn std::error::Error>> {
    let table = format!("bench_latency_{}_{run}_{delivery}", std::process::id());
    admin.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table};
         CREATE TABLE {table} (value bigint PRIMARY KEY, \"timestamp\" timestamptz)"
    ))?;
    let location = runnel_benches::postgres::sink_location(&args.url)?;
    let mut options = BTreeMap::new();
    options.insert("table".to_string(), table.clone());
    options.insert("delivery".to_string(), delivery.to_string());
    let sink = PostgresSink::new(PostgresSinkOptions::parse(location, &options)?);
    let ckpt: PathBuf = std::env::temp_dir().join(format!("runnel-{table}"));
    let _ = std::fs::remove_dir_all(&ckpt);

    // The reader starts first, so that it sees the first rows.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (url, table, stop) = (args.url.clone(), table.clone(), stop.clone());
        let poll = Duration::from_micros(args.poll_us);
        let warmup_rows = (args.warmup * args.rate) as i64;
        std::thread::spawn(
            move || -> Result<(Histogram<u64>, Histogram<u64>), String> {
                let mut c = Client::connect(&url, NoTls).map_err(|e| e.to_string())?;
                let query = c
                    .prepare(&format!(
                        "SELECT value, (extract(epoch FROM \"timestamp\") * 1000000)::bigint \
                     FROM {table} WHERE value > $1 ORDER BY value"
                    ))
                    .map_err(|e| e.to_string())?;
                let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut polls = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut last = -1i64;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let rows = c.query(&query, &[&last]).map_err(|e| e.to_string())?;
                    let seen = wall_us();
                    polls.saturating_record(sent.elapsed().as_micros().max(1) as u64);
                    for r in &rows {
                        let (value, at): (i64, i64) = (r.get(0), r.get(1));
                        if value >= warmup_rows {
                            latency.saturating_record((seen - at).max(1) as u64);
                        }
                        last = last.max(value);
                    }
                    next += poll;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
                Ok((latency, polls))
            },
        )
    };

    let total_rows = (args.warmup + args.duration) * args.rate;
    let query = DataFrame::from_source("rate", RateSource::new(args.rate).with_limit(total_rows))
        .select([col("value"), col("timestamp")])
        .write_stream(sink)
        .output_mode(OutputMode::Append)
        .trigger(Trigger::Continuous {
            epoch_interval: Duration::from_millis(args.epoch_ms),
        })
        .checkpoint(&ckpt)
        .start()?;
    query.await_termination()?;
    // The last rows: give the reader a moment to see them.
    std::thread::sleep(Duration::from_millis(args.epoch_ms * 2 + 50));
    stop.store(true, Ordering::Relaxed);
    let (latency, polls) = reader.join().expect("the reader thread")?;
    let n: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
        .get(0);
    if n as u64 != total_rows {
        return Err(format!("{table} holds {n} rows, expected {total_rows}").into());
    }
    admin.batch_execute(&format!("DROP TABLE {table}"))?;
    let _ = std::fs::remove_dir_all(&ckpt);
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64;
    Ok(Figures {
        rows: latency.len(),
        p50: q(&latency, 0.5),
        p99: q(&latency, 0.99),
        p999: q(&latency, 0.999),
        max: latency.max() as f64,
        poll_p50: q(&polls, 0.5),
        poll_p99: q(&polls, 0.99),
    })
}
