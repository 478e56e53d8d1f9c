//! `runnel bench`: open-loop latency of a query, fed by a named source, in
//! continuous and micro-batch mode side by side, next to the machine's
//! floors measured in the same run.
//!
//! Owns the measurement protocol and its reports (table, JSON, HdrHistogram
//! percentile files, SVG plots). Sources (`--source`):
//! - `push` (continuous mode's default): producer threads push through the
//!   embedding API ([`runnel::PushSource`]) on an open-loop schedule, with no
//!   arrival hints; whatever the handle does inside is measured. For a
//!   stateless query that keeps the row number first, the sink turns it
//!   back into the scheduled time (end to end) and the engine's histogram
//!   starts at the push (the engine's own share), as for topics;
//! - `log`: a writer thread appends each row to a log topic (one record,
//!   flushed, per row) and the engine tails the topic; latency runs from
//!   the record's scheduled time to the sink, and the engine's own share
//!   (read → sink) is reported beside it;
//! - `kafka:HOST:PORT/TOPIC`: the same through a Kafka topic (a writer
//!   thread produces, the engine consumes from the topic's end; cargo
//!   feature `kafka`, without which it is refused naming the feature);
//! - `rate`: the engine's rate generator polled inside the query's task. It
//!   tells the engine when its next row is due, so its figures are a lower
//!   bound no real source reaches; micro-batch mode always uses it (it needs
//!   a replayable source) and the output says so.
//!
//! Every row is stamped with its *scheduled* time, so an engine that falls
//! behind shows it as latency and as a shortfall of rows (`target_met:
//! false`), never as a politely slower generator. The engine records
//! `now − scheduled` for every row that reaches the sink; warm-up is cut out
//! by subtracting the histogram taken when it ends. Each run also measures,
//! with the same rate and durations, the producers' own schedule slip (the
//! same number of generator threads pushing into nothing) and the floor of a
//! bare ring hop between two spinning threads. CPU seconds are the whole
//! process's, with the feeding threads' share beside them (for `push`, that
//! share includes the query's first task, which runs on the pushing thread).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use runnel::sql::StreamingSql;
use runnel::{DataFrame, EngineError, LatencySummary, Result, Trigger, WaitStrategy};
use runnel_connectors::{NullSink, RateSource};

#[cfg(feature = "kafka")]
use crate::bench_feed::KafkaFeeder;
use crate::bench_feed::{
    measure_append_floor, measure_floor, measure_slip, Feeders, LogFeeder, Percentiles,
    ScheduledLatency, FEEDER_THREADS,
};
use serde::Serialize;

/// Which modes to run.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BenchMode {
    /// Continuous mode only.
    Continuous,
    /// Micro-batch mode only (as fast as possible trigger).
    Microbatch,
    /// Both, one after the other.
    Both,
}

/// Where the benchmark's rows come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BenchSource {
    /// Producer threads push through the embedding API (continuous mode).
    Push,
    /// A writer thread appends to a log topic; the engine tails it.
    Log,
    /// The engine's in-task rate generator (announces each row's arrival:
    /// a lower bound).
    Rate,
    /// A writer thread produces to a Kafka topic (`HOST:PORT/TOPIC`, which
    /// must exist); the engine consumes it from its end.
    #[cfg(feature = "kafka")]
    Kafka(String),
}

impl BenchSource {
    fn name(&self) -> &'static str {
        match self {
            BenchSource::Push => "push",
            BenchSource::Rate => "rate",
            BenchSource::Log => "log",
            #[cfg(feature = "kafka")]
            BenchSource::Kafka(_) => "kafka",
        }
    }

    /// Whether rows come from a topic written by a writer thread (their
    /// value is the record's number, its scheduled time known to the sink).
    fn is_topic(&self) -> bool {
        match self {
            BenchSource::Log => true,
            #[cfg(feature = "kafka")]
            BenchSource::Kafka(_) => true,
            _ => false,
        }
    }
}

impl std::str::FromStr for BenchSource {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "push" => Ok(BenchSource::Push),
            "log" => Ok(BenchSource::Log),
            "rate" => Ok(BenchSource::Rate),
            other => match other.strip_prefix("kafka:") {
                #[cfg(feature = "kafka")]
                Some(address) if address.contains('/') => {
                    Ok(BenchSource::Kafka(address.to_string()))
                }
                #[cfg(not(feature = "kafka"))]
                Some(_) => Err(crate::not_built("--source kafka:HOST:PORT/TOPIC", "kafka")),
                _ => Err(format!(
                    "unknown source '{other}': use push, log, rate or kafka:HOST:PORT/TOPIC"
                )),
            },
        }
    }
}

/// `runnel bench` flags.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The query, over the source named `rate` (columns value, timestamp).
    #[arg(
        long,
        default_value = "SELECT value, timestamp FROM rate WHERE value % 2 = 0"
    )]
    pub sql: String,
    /// continuous, microbatch or both.
    #[arg(long, value_enum, default_value_t = BenchMode::Both)]
    pub mode: BenchMode,
    /// Events per second.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Warm-up seconds, excluded from the figures.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Continuous mode's wait strategy: adaptive, spin, yield or park.
    #[arg(long, default_value = "adaptive")]
    pub wait: String,
    /// Continuous mode: how the checkpoint's work is spread out,
    /// SLICE_US:PAUSE_US (at most SLICE_US of work, then PAUSE_US asleep),
    /// or off (in one go).
    #[arg(long, default_value_t = crate::run::PacingArg::default(), value_parser = crate::run::parse_pacing)]
    pub checkpoint_pacing: crate::run::PacingArg,
    /// Where rows come from: push (producer threads through the embedding
    /// API; continuous mode only, micro-batch runs use rate and say so), log
    /// (a writer thread appending to a log topic the engine tails),
    /// kafka:HOST:PORT/TOPIC (the same through an existing Kafka topic) or
    /// rate (the in-task generator, which announces arrivals: a lower bound).
    #[arg(long, default_value = "push")]
    pub source: BenchSource,
    /// Producer threads for `--source push`; the rate is split between them.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Skip the same-run slip and floor measurements, and the append floor
    /// of `--source log` (each takes as long as the run itself).
    #[arg(long)]
    pub no_floor: bool,
    /// Several rates, one run each: R1,R2,...
    #[arg(long, value_delimiter = ',')]
    pub sweep: Vec<u64>,
    /// Write every run as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write one HdrHistogram percentile distribution per run into DIR.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write an SVG chart of latency by percentile (and, with --sweep, a
    /// second one, FILE-sweep.svg, of p50/p99 against throughput).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The guarantee comparison instead of latency: run `SELECT value` over a
    /// log topic of rate × duration numbered records, SIGKILL and restart the
    /// engine every SECS, and report records lost and duplicated and the
    /// recovery time, per mode.
    #[arg(long = "crash-every", value_name = "SECS")]
    pub crash_every: Option<f64>,
    /// Run without a checkpoint. By default every run checkpoints into a
    /// fresh temporary directory (removed afterwards), so micro-batch pays
    /// for its durable offset and commit logs and continuous for its epoch
    /// manifests, as they would in production.
    #[arg(long)]
    pub no_checkpoint: bool,
    /// Serve the live view of every run on HOST:PORT (loopback), to measure
    /// what watching a query costs.
    #[arg(long, value_name = "HOST:PORT")]
    pub ui: Option<String>,
}

impl BenchArgs {
    /// The modes to run, in order.
    pub fn modes(&self) -> &'static [&'static str] {
        match self.mode {
            BenchMode::Continuous => &["continuous"],
            BenchMode::Microbatch => &["microbatch"],
            BenchMode::Both => &["continuous", "microbatch"],
        }
    }
}

/// Latency percentiles of one run, in µs.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyUs {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    p9999: f64,
    max: f64,
    mean: f64,
}

impl From<LatencySummary> for LatencyUs {
    fn from(s: LatencySummary) -> Self {
        LatencyUs {
            p50: s.p50,
            p90: s.p90,
            p99: s.p99,
            p999: s.p999,
            p9999: s.p9999,
            max: s.max,
            mean: s.mean,
        }
    }
}

/// One measured run.
#[derive(Debug, Serialize)]
pub struct BenchRun {
    mode: &'static str,
    /// Where the rows came from (`push`, `rate`).
    source: &'static str,
    producers: usize,
    wait: String,
    /// Continuous mode with a checkpoint: `SLICE_US:PAUSE_US` or `off`.
    checkpoint_pacing: String,
    rate: u64,
    duration_s: f64,
    events: u64,
    throughput_eps: f64,
    target_met: bool,
    checkpoint: bool,
    rows_scheduled: u64,
    rows_read: u64,
    cpu_seconds: f64,
    /// Of `cpu_seconds`, what the bench's own producer or writer threads
    /// used: their waiting for each row's scheduled time (they spin the last
    /// stretch before it) and, for `--source push`, the query's first task,
    /// which runs on the pushing thread.
    feeder_cpu_seconds: f64,
    latency_us: LatencyUs,
    /// The same rows' latency to durability: from their ingest time (the
    /// scheduled time; for `--source log`, the read) to the commit of their
    /// epoch (continuous) or batch (micro-batch).
    durable_us: LatencyUs,
    /// The engine's own share: from reading a record (`--source log`,
    /// `kafka`) or pushing a row (`--source push`, stateless query) to the
    /// sink hand-off (`latency_us` starts at the row's scheduled time).
    #[serde(skip_serializing_if = "Option::is_none")]
    engine_us: Option<LatencyUs>,
    /// `--source log`, `kafka`: the writer thread's own lateness, from each
    /// record's scheduled time to the return of its write (and flush): the
    /// feeding side's part of `latency_us`.
    #[serde(skip_serializing_if = "Option::is_none")]
    written_us: Option<LatencyUs>,
    /// The producers' own schedule slip (as many generator threads as
    /// producers, pushing into nothing), same run.
    slip_us: Option<Percentiles>,
    /// A bare ring hop between two spinning threads, same run.
    floor_us: Option<Percentiles>,
    /// `--source log`: one thread appending the writer's records to a plain
    /// file on the same schedule, its lateness to each write's return, same
    /// run (what the file system costs the writer alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    append_floor_us: Option<Percentiles>,
    #[serde(skip)]
    histogram: Histogram<u64>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    runs: &'a [BenchRun],
}

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Plan(e.to_string())
}

/// A topic's rows as the rate source's columns: `value` (the record's
/// number, from its text value) and `timestamp`.
fn as_rate_columns(df: DataFrame) -> DataFrame {
    df.select([
        runnel::col("value")
            .cast(runnel::DataType::Int64)
            .alias("value"),
        runnel::col("timestamp"),
    ])
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// CPU seconds used so far by this process's threads whose name starts with
/// [`FEEDER_THREADS`] (the producers and writers that feed the query).
fn feeder_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter(|stat| {
            stat.split_once('(')
                .is_some_and(|(_, rest)| rest.starts_with(FEEDER_THREADS))
        })
        .map(|stat| stat_cpu_seconds(&stat))
        .sum()
}

/// User + system CPU seconds of a `/proc/…/stat` line.
fn stat_cpu_seconds(stat: &str) -> f64 {
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 here).
    (ticks(11) + ticks(12)) / 100.0
}

/// Rows the source has delivered, from the latest progress report: the rate
/// source's next value, or the sum of the push source's producer positions.
fn source_value(query: &runnel::StreamingQuery) -> Option<u64> {
    let offset = query
        .last_progress()
        .and_then(|p| p.sources.first().map(|s| s.end_offset.clone()))?;
    match serde_json::from_value(offset).ok()? {
        runnel::SourceOffset::Generated { rows, .. } | runnel::SourceOffset::Rows(rows) => {
            Some(rows)
        }
        runnel::SourceOffset::Partitions(p) => Some(p.values().sum()),
        runnel::SourceOffset::Producers(p) => Some(p.iter().sum()),
        _ => None,
    }
}

/// Waits for the next durable epoch or batch after this moment, so that a
/// histogram read afterwards covers everything up to now.
fn next_commit(query: &runnel::StreamingQuery) -> Result<()> {
    let seen = query.recent_progress().last().map(|p| p.batch_id);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = query.exception() {
            return Err(e);
        }
        let now = query.recent_progress().last().map(|p| p.batch_id);
        if now.is_some() && now != seen {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(err(
                "no epoch or batch committed within 30 s: the engine is stuck",
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn run_one(args: &BenchArgs, mode: &'static str, rate: u64) -> Result<BenchRun> {
    let sql = StreamingSql::parse(&args.sql)?;
    if !sql.table().eq_ignore_ascii_case("rate") {
        return Err(err(format!(
            "the benchmark query must read the source named `rate`, not `{}`",
            sql.table()
        )));
    }
    // Micro-batch mode needs a replayable source: a topic, or the rate
    // generator in place of push (the table names the source of each run).
    let source = match (mode, &args.source) {
        ("continuous", s) => s.clone(),
        (_, s) if s.is_topic() => s.clone(),
        _ => BenchSource::Rate,
    };
    let mut feeders = None;
    let mut log_feeder = None;
    #[cfg(feature = "kafka")]
    let mut kafka_feeder = None;
    let mut scheduled = ScheduledLatency::none();
    // End to end is measured at the sink from each row's number (topics,
    // stateless push); the query's own histogram is then the engine's share.
    let mut at_sink = source.is_topic();
    let log_dir = std::env::temp_dir().join(format!(
        "runnel-bench-log-{}-{mode}-{rate}",
        std::process::id()
    ));
    if source.is_topic() && sql.is_aggregate() {
        return Err(err(format!(
            "--source {} measures stateless queries whose first output column is `value` \
             (each record's number, from which its scheduled time is known)",
            source.name()
        )));
    }
    let df = match &source {
        BenchSource::Rate => sql.apply(DataFrame::from_source("rate", RateSource::new(rate)))?,
        BenchSource::Push => {
            let (push, pusher) = runnel::PushSource::new(RateSource::output_schema());
            let df = sql.apply(DataFrame::from_source("rate", push))?;
            let mut f = Feeders::new(pusher, args.producers, rate);
            // A stateless query that keeps the row number first: rows are
            // stamped when pushed (the engine's share, push → sink) and the
            // sink turns the number back into the scheduled time (end to end).
            // An aggregate's rows do not carry it: they are stamped with
            // their scheduled time, end to end only.
            let numbered = df
                .schema()
                .fields()
                .first()
                .is_some_and(|c| c.name() == "value");
            if !sql.is_aggregate() && numbered {
                scheduled = f.latency();
                f = f.stamp_at_push();
                at_sink = true;
            }
            feeders = Some(f);
            df
        }
        #[cfg(feature = "kafka")]
        BenchSource::Kafka(address) => {
            let feeder = KafkaFeeder::new(address, rate)?;
            scheduled = feeder.latency();
            kafka_feeder = Some(feeder);
            let kafka = runnel_connectors::KafkaSource::new(
                address,
                runnel_connectors::KafkaSourceOptions {
                    starting_offsets: runnel_connectors::StartingOffsets::Latest,
                    ..Default::default()
                },
            )?;
            sql.apply(as_rate_columns(DataFrame::from_source("rate", kafka)))?
        }
        BenchSource::Log => {
            let _ = std::fs::remove_dir_all(&log_dir);
            let topic = runnel_connectors::log::LogTopic::create(&log_dir, "bench", 1)
                .map_err(|e| err(format!("{}: {e}", log_dir.display())))?;
            let producer = topic.producer().map_err(err)?;
            let feeder = LogFeeder::new(producer, rate);
            scheduled = feeder.latency();
            log_feeder = Some(feeder);
            let log = runnel_connectors::LogSource::new(
                topic.path(),
                runnel_connectors::LogSourceOptions {
                    starting_offsets: runnel_connectors::StartingOffsets::Earliest,
                    ..Default::default()
                },
            )?;
            sql.apply(as_rate_columns(DataFrame::from_source("rate", log)))?
        }
    };

    let wait: WaitStrategy = args.wait.parse().map_err(err)?;
    let trigger = if mode == "continuous" {
        Trigger::Continuous {
            epoch_interval: Duration::from_millis(100),
        }
    } else {
        Trigger::ProcessingTime(Duration::ZERO)
    };
    let output_mode = if sql.is_aggregate() {
        runnel::OutputMode::Update
    } else {
        runnel::OutputMode::Append
    };
    let checkpoint = (!args.no_checkpoint).then(|| {
        std::env::temp_dir().join(format!("runnel-bench-{}-{mode}-{rate}", std::process::id()))
    });
    let writer = if at_sink {
        let scheduled = scheduled.clone();
        df.write_stream(runnel::CallbackSink::new(move |r: &runnel::Row| {
            scheduled.record(r)
        }))
    } else {
        df.write_stream(NullSink::new())
    };
    let mut writer = writer
        .output_mode(output_mode)
        .trigger(trigger)
        .wait_strategy(wait)
        .checkpoint_pacing(args.checkpoint_pacing.0)
        .query_name("bench");
    if let Some(dir) = &checkpoint {
        // A leftover from an earlier run with the same pid must not be resumed.
        let _ = std::fs::remove_dir_all(dir);
        writer = writer.checkpoint(dir);
    }
    if feeders.is_some() && checkpoint.is_some() {
        // Rows pushed after a restart are not replayed by the engine: the
        // benchmark opts in to that explicitly (it never restarts) and says so.
        writer = writer.allow_rows_lost_on_crash();
        eprintln!(
            "runnel bench: --source push cannot replay; this run allows rows lost on a crash (its checkpoint keeps producer positions, not rows)"
        );
    }
    let query = writer.start()?;
    if let Some(addr) = &args.ui {
        crate::run::serve_ui(&query, addr, false)?;
    }
    let running = match (feeders, log_feeder) {
        (Some(f), _) => Some(f.start()?),
        (None, Some(f)) => Some(f.start()?),
        (None, None) => None,
    };
    #[cfg(feature = "kafka")]
    let running = match (running, kafka_feeder) {
        (None, Some(f)) => Some(f.start()?),
        (running, _) => running,
    };
    let measured = measure(args, &query, &scheduled);
    let fed = running.map(|r| r.stop());
    if let Some(dir) = &checkpoint {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_dir_all(&log_dir);
    let (
        engine_histogram,
        durable_histogram,
        rows_read,
        (cpu_seconds, feeder_cpu_seconds),
        elapsed,
    ) = measured?;
    if let Some(fed) = fed {
        fed?;
    }
    // From a topic, the engine's own histogram starts when a record is read,
    // and from a stateless push when the row is pushed; the end-to-end
    // figure starts at the row's scheduled time.
    let (histogram, engine_us) = if at_sink {
        (
            scheduled.histogram(),
            Some(LatencyUs::from(LatencySummary::of(&engine_histogram))),
        )
    } else {
        (engine_histogram, None)
    };
    let rows_scheduled = (rate as f64 * elapsed) as u64;
    let events = histogram.len();
    // Only the push source has several producers; the others one writer.
    let producers = if source == BenchSource::Push {
        args.producers.max(1)
    } else {
        1
    };
    let (slip_us, floor_us) = if args.no_floor {
        (None, None)
    } else {
        (
            Some(measure_slip(rate, producers, args.warmup, args.duration)?),
            Some(measure_floor(rate, args.warmup, args.duration)?),
        )
    };
    // Next to the topic's directory, so on the same file system.
    let append_floor_us = if args.no_floor || source != BenchSource::Log {
        None
    } else {
        let path = log_dir.with_extension("append-floor");
        Some(measure_append_floor(
            rate,
            args.warmup,
            args.duration,
            &path,
        )?)
    };
    Ok(BenchRun {
        mode,
        source: source.name(),
        producers,
        wait: if mode == "continuous" {
            wait.to_string()
        } else {
            "-".to_string()
        },
        checkpoint_pacing: if mode == "continuous" && checkpoint.is_some() {
            args.checkpoint_pacing.to_string()
        } else {
            "-".to_string()
        },
        rate,
        duration_s: elapsed,
        events,
        throughput_eps: rows_read as f64 / elapsed,
        // The generator never slows down: falling 1% behind its schedule
        // over the measured window means the engine could not keep up.
        target_met: rows_read as f64 >= 0.99 * rows_scheduled as f64,
        checkpoint: checkpoint.is_some(),
        rows_scheduled,
        rows_read,
        cpu_seconds,
        feeder_cpu_seconds,
        latency_us: LatencySummary::of(&histogram).into(),
        durable_us: LatencySummary::of(&durable_histogram).into(),
        engine_us,
        written_us: scheduled
            .written()
            .map(|h| LatencyUs::from(LatencySummary::of(&h))),
        slip_us,
        floor_us,
        append_floor_us,
        histogram,
    })
}

/// What one measured window gave: hand-off and durability histograms, rows
/// read, CPU seconds (the process's, the feeders'), elapsed seconds.
type Window = (Histogram<u64>, Histogram<u64>, u64, (f64, f64), f64);

/// Warm-up, then the measured window of a started query, which it stops.
fn measure(
    args: &BenchArgs,
    query: &runnel::StreamingQuery,
    scheduled: &ScheduledLatency,
) -> Result<Window> {
    let result = measure_window(args, query, scheduled);
    let stopped = query.stop();
    let measured = result?;
    stopped?;
    Ok(measured)
}

fn measure_window(
    args: &BenchArgs,
    query: &runnel::StreamingQuery,
    scheduled: &ScheduledLatency,
) -> Result<Window> {
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    next_commit(query)?;
    scheduled.measure_from(runnel::clock::now_ns());
    let (base, durable_base, v0, cpu0, t0) = (
        query.latency_histogram(),
        query.durable_latency_histogram(),
        source_value(query).unwrap_or(0),
        (cpu_seconds(), feeder_cpu_seconds()),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(args.duration));
    next_commit(query)?;
    let (end, durable_end, v1, cpu1, elapsed) = (
        query.latency_histogram(),
        query.durable_latency_histogram(),
        source_value(query).unwrap_or(0),
        (cpu_seconds(), feeder_cpu_seconds()),
        t0.elapsed().as_secs_f64(),
    );
    let mut histogram = end;
    histogram.subtract(&base).map_err(err)?;
    let mut durable = durable_end;
    durable.subtract(&durable_base).map_err(err)?;
    Ok((
        histogram,
        durable,
        v1.saturating_sub(v0),
        (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1),
        elapsed,
    ))
}

/// Runs the command.
pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(every) = args.crash_every {
        let json = crate::bench_crash::run(args.modes(), args.rate, args.duration, every)?;
        if let Some(path) = &args.json {
            write_file(path, json.as_bytes())?;
        }
        return Ok(());
    }
    let modes = args.modes();
    let rates = if args.sweep.is_empty() {
        vec![args.rate]
    } else {
        args.sweep.clone()
    };
    let mut runs = Vec::new();
    for &rate in &rates {
        for &mode in modes {
            eprintln!(
                "runnel bench: {mode} at {rate} events/s, {:.0} s warm-up + {:.0} s measured",
                args.warmup, args.duration
            );
            runs.push(run_one(&args, mode, rate)?);
        }
    }
    print!("{}", table(&runs, &args.sql));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&JsonReport { runs: &runs }).map_err(err)?;
        write_file(path, text.as_bytes())?;
    }
    if let Some(dir) = &args.hgrm {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        for r in &runs {
            let path = dir.join(format!("{}-{}-{}.hgrm", r.mode, r.source, r.rate));
            write_file(&path, percentile_distribution(&r.histogram).as_bytes())?;
        }
    }
    if let Some(path) = &args.plot {
        crate::bench_plot::percentile_chart(path, &runs_for_plot(&runs))?;
        if rates.len() > 1 {
            let sweep = path.with_file_name(format!(
                "{}-sweep.svg",
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            crate::bench_plot::sweep_chart(&sweep, &runs_for_plot(&runs))?;
        }
    }
    Ok(())
}

fn runs_for_plot(runs: &[BenchRun]) -> Vec<crate::bench_plot::PlotRun<'_>> {
    runs.iter()
        .map(|r| crate::bench_plot::PlotRun {
            label: format!("{} ({}) @ {} ev/s", r.mode, r.source, r.rate),
            mode: r.mode,
            histogram: &r.histogram,
            throughput: r.throughput_eps,
            p50: r.latency_us.p50,
            p99: r.latency_us.p99,
        })
        .collect()
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(path, bytes).map_err(|e| err(format!("{}: {e}", path.display())))
}

/// A table row: its name and how to print a run's cell.
type TableRow = (&'static str, fn(&BenchRun) -> String);

/// The terminal table: one column per run.
/// A table cell of a p50 and a p99, or `-`.
fn p50_p99(p: Option<(f64, f64)>) -> String {
    p.map_or("-".into(), |(p50, p99)| format!("{p50:.2}/{p99:.2}"))
}

fn table(runs: &[BenchRun], sql: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "query: {sql}");
    let header: Vec<String> = runs
        .iter()
        .map(|r| format!("{} {} {}/s", r.mode, r.source, r.rate))
        .collect();
    let width = header.iter().map(String::len).max().unwrap_or(10).max(12);
    let _ = write!(out, "{:<18}", "latency (µs)");
    for h in &header {
        let _ = write!(out, "{h:>width$}  ");
    }
    out.push('\n');
    let rows: [TableRow; 23] = [
        ("p50", |r| format!("{:.2}", r.latency_us.p50)),
        ("p90", |r| format!("{:.2}", r.latency_us.p90)),
        ("p99", |r| format!("{:.2}", r.latency_us.p99)),
        ("p99.9", |r| format!("{:.2}", r.latency_us.p999)),
        ("p99.99", |r| format!("{:.2}", r.latency_us.p9999)),
        ("max", |r| format!("{:.2}", r.latency_us.max)),
        ("mean", |r| format!("{:.2}", r.latency_us.mean)),
        ("throughput (ev/s)", |r| format!("{:.0}", r.throughput_eps)),
        ("events measured", |r| r.events.to_string()),
        ("cpu seconds", |r| format!("{:.2}", r.cpu_seconds)),
        ("  of which feeders", |r| {
            format!("{:.2}", r.feeder_cpu_seconds)
        }),
        ("target_met", |r| r.target_met.to_string()),
        ("checkpoint", |r| {
            if r.checkpoint { "on" } else { "off" }.to_string()
        }),
        ("producers", |r| r.producers.to_string()),
        ("wait", |r| r.wait.clone()),
        ("checkpoint pacing", |r| r.checkpoint_pacing.clone()),
        ("engine p50/p99", |r| {
            p50_p99(r.engine_us.as_ref().map(|s| (s.p50, s.p99)))
        }),
        ("written p50/p99", |r| {
            p50_p99(r.written_us.as_ref().map(|s| (s.p50, s.p99)))
        }),
        ("durable p50/p99", |r| {
            format!("{:.0}/{:.0}", r.durable_us.p50, r.durable_us.p99)
        }),
        ("slip p50/p99", |r| {
            p50_p99(r.slip_us.as_ref().map(|s| (s.p50, s.p99)))
        }),
        ("floor p50/p99", |r| {
            p50_p99(r.floor_us.as_ref().map(|s| (s.p50, s.p99)))
        }),
        ("append floor p50/p99", |r| {
            p50_p99(r.append_floor_us.as_ref().map(|s| (s.p50, s.p99)))
        }),
        ("p99 / slip p99", |r| {
            r.slip_us
                .as_ref()
                .filter(|s| s.p99 > 0.0)
                .map_or("-".into(), |s| format!("{:.1}x", r.latency_us.p99 / s.p99))
        }),
    ];
    for (name, cell) in rows {
        let _ = write!(out, "{name:<18}");
        for r in runs {
            let _ = write!(out, "{:>width$}  ", cell(r));
        }
        out.push('\n');
    }
    out
}

/// HdrHistogram's percentile distribution text (values in µs), the form its
/// plotting tools read.
pub fn percentile_distribution(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / 1000.0;
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:>12.3} {q:>14.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:>12.3} {q:>14.12} {total:>10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    // Sub-buckets per bucket: the power of two holding 2 × 10^significant digits.
    let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    );
    out
}
