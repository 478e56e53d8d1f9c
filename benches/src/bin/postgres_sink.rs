//! The PostgreSQL sink against a real server, through the `Sink` trait as
//! a query drives it (`open`, `write` each row, `commit(epoch)`):
//!
//! * **append**: `EPOCHS` epochs of `ROWS` rows of (bigint, double, text,
//!   timestamp), each epoch one binary `COPY` and one transaction; rows/s
//!   over the time spent in `write` and `commit`;
//! * **upsert**: `BATCHES` batches in update mode of the same `KEYS`
//!   distinct keys (key column 0) with new values, each batch a `COPY` into
//!   the staging table and one `INSERT … ON CONFLICT DO UPDATE`; the time of
//!   each batch (`write` of its rows plus `commit`).
//!
//! ```text
//! postgres-sink [--url postgres://USER@HOST:PORT/DB] [--runs 3]
//!               [--epochs 20] [--rows 50000] [--batches 20] [--keys 10000]
//! ```
//!
//! The server comes from `--url` or `RUNNEL_POSTGRES` (the password from
//! `PGPASSWORD`). Every run writes a fresh table, dropped afterwards, under a
//! fresh query id. Rows are built before each epoch's clock starts: the
//! figures are the sink's and the server's, not the row generator's. The
//! report (Markdown on standard output) gives every run and the median of
//! the runs, and the server's durability settings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use postgres::{Client, NoTls};
use runnel::schema::{schema, timestamp_type, DataType, Row, Value};
use runnel::{OutputMode, Sink, SinkContext};
use runnel_connectors::{PostgresSink, PostgresSinkOptions};

#[derive(Parser, Debug)]
#[command(about = "Append and upsert throughput of the PostgreSQL sink")]
struct Args {
    /// The server (the password from PGPASSWORD).
    #[arg(long, env = "RUNNEL_POSTGRES")]
    url: String,
    /// Runs of each measurement (the report gives their median).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Append: epochs per run.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Append: rows per epoch.
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    /// Upsert: batches per run.
    #[arg(long, default_value_t = 20)]
    batches: usize,
    /// Upsert: distinct keys per batch.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
}

/// 2024-01-01 00:00:00 UTC in microseconds.
const T0: i64 = 1_704_067_200_000_000;

/// One measured epoch: time in `write` (encoding) and in `commit`.
#[derive(Clone, Copy, Debug, Default)]
struct Epoch {
    write: Duration,
    commit: Duration,
}

impl Epoch {
    fn total(&self) -> Duration {
        self.write + self.commit
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("postgres-sink: {e}");
        std::process::exit(1);
    }
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
            "full_page_writes",
        ],
    )?;
    println!("server: {settings}");
    println!(
        "append: {} epochs x {} rows (bigint, double, text, timestamp); \
         upsert: {} batches x {} keys, update mode\n",
        args.epochs, args.rows, args.batches, args.keys
    );

    println!(
        "| run | append rows/s | write (encode) s | commit (COPY + COMMIT) s | slowest epoch ms |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let mut append_rates = Vec::new();
    for run in 1..=args.runs {
        let table = format!("bench_append_{}_{run}", std::process::id());
        let epochs = append(args, &mut admin, &table)?;
        let write: Duration = epochs.iter().map(|e| e.write).sum();
        let commit: Duration = epochs.iter().map(|e| e.commit).sum();
        let rate = (args.epochs * args.rows) as f64 / (write + commit).as_secs_f64();
        let slowest = epochs.iter().map(Epoch::total).max().unwrap_or_default();
        println!(
            "| {run} | {rate:.0} | {:.3} | {:.3} | {:.1} |",
            write.as_secs_f64(),
            commit.as_secs_f64(),
            ms(slowest)
        );
        append_rates.push(rate);
    }
    println!(
        "\nappend: median of {} runs {:.0} rows/s (target >= 300,000)\n",
        args.runs,
        median(&append_rates)
    );

    println!("| run | upsert p50 ms | max ms | first batch (inserts) ms | write p50 ms | commit p50 ms |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let (mut p50s, mut maxes) = (Vec::new(), Vec::new());
    for run in 1..=args.runs {
        let table = format!("bench_upsert_{}_{run}", std::process::id());
        let batches = upsert(args, &mut admin, &table)?;
        let totals: Vec<f64> = batches.iter().map(|b| ms(b.total())).collect();
        let writes: Vec<f64> = batches.iter().map(|b| ms(b.write)).collect();
        let commits: Vec<f64> = batches.iter().map(|b| ms(b.commit)).collect();
        let (p50, max) = (median(&totals), totals.iter().cloned().fold(0.0, f64::max));
        println!(
            "| {run} | {p50:.2} | {max:.2} | {:.2} | {:.2} | {:.2} |",
            totals[0],
            median(&writes),
            median(&commits)
        );
        p50s.push(p50);
        maxes.push(max);
    }
    println!(
        "\nupsert: median of {} runs p50 {:.2} ms, max {:.2} ms per batch (target <= 20 ms)",
        args.runs,
        median(&p50s),
        median(&maxes)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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

/// A sink on `url`'s server writing `table` (created by the sink).
fn sink(url: &str, table: &str) -> Result<PostgresSink, Box<dyn std::error::Error>> {
    let location = runnel_benches::postgres::sink_location(url)?;
    let mut options = BTreeMap::new();
    options.insert("table".to_string(), table.to_string());
    options.insert("create".to_string(), "true".to_string());
    Ok(PostgresSink::new(PostgresSinkOptions::parse(
        location, &options,
    )?))
}

fn context(mode: OutputMode, table: &str) -> SinkContext {
    let keyed = mode != OutputMode::Append;
    SinkContext {
        schema: schema(&[
            ("id", DataType::Int64),
            ("amount", DataType::Float64),
            ("label", DataType::Utf8),
            ("at", timestamp_type()),
        ]),
        output_mode: mode,
        key_columns: keyed.then(|| vec![0]),
        query_id: format!("bench-{table}"),
        replays_same_rows: true,
        checkpointed: false,
        durable: runnel::DurableEpochs::default(),
    }
}

fn row(id: i64, epoch: i64) -> Row {
    Row::from(vec![
        Value::Int64(id),
        Value::Float64(id as f64 * 0.25 + epoch as f64),
        Value::str(&format!("customer-{:08}", id % 100_000)),
        Value::Timestamp(T0 + id * 1_000 + epoch),
    ])
}

/// Writes `rows` then commits `epoch`, timing each part.
fn epoch(sink: &mut PostgresSink, rows: &[Row], epoch: u64) -> runnel::Result<Epoch> {
    let started = Instant::now();
    for r in rows {
        sink.write(r)?;
    }
    let wrote = Instant::now();
    sink.commit(epoch)?;
    Ok(Epoch {
        write: wrote - started,
        commit: wrote.elapsed(),
    })
}

fn append(
    args: &Args,
    admin: &mut Client,
    table: &str,
) -> Result<Vec<Epoch>, Box<dyn std::error::Error>> {
    admin.batch_execute(&format!("DROP TABLE IF EXISTS {table}"))?;
    let mut s = sink(&args.url, table)?;
    s.open(&context(OutputMode::Append, table), None)?;
    let mut out = Vec::with_capacity(args.epochs);
    for e in 0..args.epochs {
        let base = (e * args.rows) as i64;
        let rows: Vec<Row> = (0..args.rows as i64)
            .map(|i| row(base + i, e as i64))
            .collect();
        out.push(epoch(&mut s, &rows, e as u64)?);
    }
    s.close()?;
    drop(s);
    let n: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
        .get(0);
    if n != (args.epochs * args.rows) as i64 {
        return Err(format!(
            "{table} holds {n} rows, expected {}",
            args.epochs * args.rows
        )
        .into());
    }
    admin.batch_execute(&format!("DROP TABLE {table}"))?;
    Ok(out)
}

fn upsert(
    args: &Args,
    admin: &mut Client,
    table: &str,
) -> Result<Vec<Epoch>, Box<dyn std::error::Error>> {
    admin.batch_execute(&format!("DROP TABLE IF EXISTS {table}"))?;
    let mut s = sink(&args.url, table)?;
    s.open(&context(OutputMode::Update, table), None)?;
    let mut out = Vec::with_capacity(args.batches);
    for b in 0..args.batches {
        let rows: Vec<Row> = (0..args.keys as i64).map(|k| row(k, b as i64)).collect();
        out.push(epoch(&mut s, &rows, b as u64)?);
    }
    s.close()?;
    drop(s);
    // Every key holds the last batch's value.
    let (n, stale): (i64, i64) = {
        let r = admin.query_one(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE amount <> id * 0.25::float8 + $1::float8) FROM {table}"
            ),
            &[&((args.batches - 1) as f64)],
        )?;
        (r.get(0), r.get(1))
    };
    if n != args.keys as i64 || stale != 0 {
        return Err(format!(
            "{table} holds {n} rows ({stale} not from the last batch), expected {}",
            args.keys
        )
        .into());
    }
    admin.batch_execute(&format!("DROP TABLE {table}"))?;
    Ok(out)
}
