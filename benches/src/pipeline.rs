//! The engine under test: the benchmark queries, a null sink, and the runs.
//!
//! Owns the two measured pipelines ([`stateless_query`]: filter `value % 2 =
//! 0` then project; [`keyed_query`]: key = `value % keys`, 1-second tumbling
//! `count(*)` per key in update mode), [`NullSink`] (counts rows, keeps
//! nothing), the open-loop engine runs with their warm-up exclusion
//! ([`run_engine`]: fed by a producer thread through the source's ring, or
//! through the embedding API's push source, which runs the query's first
//! task on the producer's thread;
//! [`run_fused`]: fed by the engine's rate source inside the query's task),
//! and the closed-loop throughput run ([`max_throughput`]).
//!
//! Warm-up exclusion: the engine records latency per epoch into the query's
//! merged histogram ([`runnel::StreamingQuery::latency_histogram`]), which
//! cannot tell warm-up rows from measured ones. So the harness waits until
//! the warm-up has been scheduled, then until two more epochs have become
//! durable, copies the histogram as a baseline, and subtracts that baseline
//! from the final histogram with [`hdrhistogram::Histogram::subtract`].
//! The measured window therefore starts at an epoch boundary up to two
//! epoch intervals (2 × 100 ms by default) after the warm-up, never before
//! it; figures count exactly the rows in it (`latency.count`).

// The push closures return the engine's `PushError`, which hands a full
// ring's row back by value (boxing it would allocate on the hot path).
#![allow(clippy::result_large_err)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use runnel::clock::now_ns;
use runnel::io::PushError;
use runnel::{
    call, case_when, coalesce, col, concat, count_star, lit, window, DataFrame, DataStreamWriter,
    JoinType, MemoryProducer, MemorySource, OutputMode, PushSource, Pusher, Row, Sink, SinkContext,
    Source, StaticTable, Trigger, Value, WaitStrategy,
};
use runnel_connectors::RateSource;

use crate::config::{BenchConfig, Scenario};
use crate::floor::LEAD;
use crate::generator::{
    event_row, event_schema, sleep_until, spawn_generator, GeneratorReport, Offer, Schedule,
    Target, WallAnchor,
};
use crate::report::{ScenarioResult, ThroughputReport};
use crate::BenchError;

/// Counters a [`NullSink`] publishes (once per epoch, and at the end).
#[derive(Debug, Default)]
pub struct NullSinkStats {
    rows: AtomicU64,
    opened_ns: AtomicU64,
    closed_ns: AtomicU64,
}

impl NullSinkStats {
    /// Rows written, as of the last epoch commit (or the end).
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Acquire)
    }

    /// When the sink was opened ([`now_ns`] time), once it was.
    pub fn opened_ns(&self) -> Option<u64> {
        match self.opened_ns.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    /// When the sink was closed ([`now_ns`] time), once it was.
    pub fn closed_ns(&self) -> Option<u64> {
        match self.closed_ns.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }
}

/// A sink that counts rows and keeps nothing: per row, one add.
#[derive(Debug)]
pub struct NullSink {
    rows: u64,
    stats: Arc<NullSinkStats>,
}

impl NullSink {
    /// A sink and the handle of its counters.
    pub fn new() -> (NullSink, Arc<NullSinkStats>) {
        let stats = Arc::new(NullSinkStats::default());
        (
            NullSink {
                rows: 0,
                stats: stats.clone(),
            },
            stats,
        )
    }
}

impl Sink for NullSink {
    fn describe(&self) -> String {
        "NullSink".to_string()
    }

    fn open(
        &mut self,
        _ctx: &SinkContext,
        _recovered: Option<&serde_json::Value>,
    ) -> runnel::Result<()> {
        self.stats
            .opened_ns
            .store(now_ns().max(1), Ordering::Release);
        Ok(())
    }

    #[inline]
    fn write(&mut self, row: &Row) -> runnel::Result<()> {
        std::hint::black_box(row);
        self.rows += 1;
        Ok(())
    }

    fn commit(&mut self, _epoch: u64) -> runnel::Result<serde_json::Value> {
        self.stats.rows.store(self.rows, Ordering::Release);
        Ok(serde_json::Value::Null)
    }

    fn close(&mut self) -> runnel::Result<()> {
        self.stats.rows.store(self.rows, Ordering::Release);
        self.stats
            .closed_ns
            .store(now_ns().max(1), Ordering::Release);
        Ok(())
    }
}

/// (a) `source → filter(value % 2 = 0) → select(value, value + 1 AS next, ts) → sink`;
/// `ts` names the source's event-time column.
pub fn stateless_query(source: impl Source, sink: impl Sink, ts: &str) -> DataStreamWriter {
    DataFrame::from_source("events", source)
        .filter((col("value") % lit(2i64)).eq(lit(0i64)))
        .select([
            col("value"),
            (col("value") + lit(1i64)).alias("next"),
            col(ts),
        ])
        .write_stream(sink)
        .output_mode(OutputMode::Append)
}

/// Rows of the lookup scenarios' static table: keys `0..LOOKUP_ROWS`.
pub const LOOKUP_ROWS: i64 = 100_000;

/// The lookup scenarios' static table `regions(k bigint, name string)`:
/// [`LOOKUP_ROWS`] rows, one per key, named `region {k % 97}`.
pub fn lookup_table() -> StaticTable {
    StaticTable::from_rows(
        "regions",
        runnel::schema(&[
            ("k", runnel::DataType::Int64),
            ("name", runnel::DataType::Utf8),
        ]),
        (0..LOOKUP_ROWS)
            .map(|k| {
                Row::from(vec![
                    Value::Int64(k),
                    Value::str(&format!("region {}", k % 97)),
                ])
            })
            .collect(),
    )
    .expect("a valid static table")
}

/// (a) with a stream-static inner join: `source → filter value % 2 = 0 →
/// join regions r ON value % 100000 = r.k → select(value, value + 1 AS
/// next, ts, r.name) → sink`. Every event finds exactly one row of the
/// 100,000-row table: compare with [`stateless_query`], the same query
/// without the join.
pub fn lookup_query(
    source: impl Source,
    sink: impl Sink,
    ts: &str,
    table: &StaticTable,
) -> DataStreamWriter {
    DataFrame::from_source("events", source)
        .filter((col("value") % lit(2i64)).eq(lit(0i64)))
        .join_as(
            table,
            "r",
            (col("value") % lit(LOOKUP_ROWS)).eq(col("r.k")),
            JoinType::Inner,
        )
        .select([
            col("value"),
            (col("value") + lit(1i64)).alias("next"),
            col(ts),
            col("r.name"),
        ])
        .write_stream(sink)
        .output_mode(OutputMode::Append)
}

/// A plain projection of five columns over `(name string, qty bigint, ts
/// timestamp)`: what the function projection is compared with.
pub fn plain_projection() -> Vec<runnel::Expr> {
    vec![
        col("name"),
        col("qty"),
        col("ts"),
        col("qty").alias("q2"),
        col("name").alias("n2"),
    ]
}

/// Five scalar functions over `(name string, qty bigint, ts timestamp)`:
/// one `CASE`, one `LIKE`, one `coalesce`, one `hour`, one `concat`.
pub fn function_projection() -> Vec<runnel::Expr> {
    vec![
        case_when(
            [(col("qty").gt(lit(10i64)), lit("big"))],
            Some(lit("small")),
        )
        .alias("size"),
        col("name").like("a%").alias("a_name"),
        coalesce([col("qty"), lit(0i64)]).alias("qty0"),
        call("hour", [col("ts")]).alias("h"),
        concat([col("name"), lit("-"), col("name")]).alias("nn"),
    ]
}

/// (a) with five scalar functions: `source → filter value % 2 = 0 →
/// select(value, ts, CASE WHEN value % 3 = 0 THEN 'fizz' ELSE 'other' END,
/// CAST(value AS string) LIKE '1%', coalesce(value, 0), hour(ts),
/// concat('v', CAST(value AS string))) → sink`.
pub fn functions_query(source: impl Source, sink: impl Sink, ts: &str) -> DataStreamWriter {
    let text = col("value").cast(runnel::DataType::Utf8);
    DataFrame::from_source("events", source)
        .filter((col("value") % lit(2i64)).eq(lit(0i64)))
        .select([
            col("value"),
            col(ts),
            case_when(
                [((col("value") % lit(3i64)).eq(lit(0i64)), lit("fizz"))],
                Some(lit("other")),
            )
            .alias("kind"),
            text.clone().like("1%").alias("ones"),
            coalesce([col("value"), lit(0i64)]).alias("v"),
            call("hour", [col(ts)]).alias("h"),
            concat([lit("v"), text]).alias("label"),
        ])
        .write_stream(sink)
        .output_mode(OutputMode::Append)
}

/// The last projection of [`text_projection_query`] over `(value bigint,
/// ts timestamp, text string)`: `value`, `ts` and five expressions, the
/// five being `CASE WHEN value % 3 = 0 THEN 'fizz' ELSE 'other' END`,
/// `text LIKE '1%'`, `coalesce(value, 0)`, `hour(ts)` and `concat('v',
/// text)` (`functions`), or `value`, `text`, `value`, `ts` and `text` (the
/// plain projection, as wide).
pub fn text_projection(ts: &str, functions: bool) -> Vec<runnel::Expr> {
    let five = if functions {
        [
            case_when(
                [((col("value") % lit(3i64)).eq(lit(0i64)), lit("fizz"))],
                Some(lit("other")),
            )
            .alias("kind"),
            col("text").like("1%").alias("ones"),
            coalesce([col("value"), lit(0i64)]).alias("v"),
            call("hour", [col(ts)]).alias("h"),
            concat([lit("v"), col("text")]).alias("label"),
        ]
    } else {
        [
            col("value").alias("kind"),
            col("text").alias("ones"),
            col("value").alias("v"),
            col(ts).alias("h"),
            col("text").alias("label"),
        ]
    };
    let mut out = vec![col("value"), col(ts)];
    out.extend(five);
    out
}

/// The five-function projection against the plain one with nothing else
/// differing: `source → filter value % 2 = 0 → select(value, ts,
/// CAST(value AS string) AS text) → select(`[`text_projection`]`) → sink`.
pub fn text_projection_query(
    source: impl Source,
    sink: impl Sink,
    ts: &str,
    functions: bool,
) -> DataStreamWriter {
    DataFrame::from_source("events", source)
        .filter((col("value") % lit(2i64)).eq(lit(0i64)))
        .select([
            col("value"),
            col(ts),
            col("value").cast(runnel::DataType::Utf8).alias("text"),
        ])
        .select(text_projection(ts, functions))
        .write_stream(sink)
        .output_mode(OutputMode::Append)
}

/// (b) `source → select(value % keys AS key, ts) → group by (1-second
/// tumbling window of ts, key) → count(*) → sink`, in update mode: every
/// event writes its group's new count.
pub fn keyed_query(source: impl Source, sink: impl Sink, keys: u64, ts: &str) -> DataStreamWriter {
    DataFrame::from_source("events", source)
        .select([(col("value") % lit(keys as i64)).alias("key"), col(ts)])
        .group_by([window(col(ts), "1 second"), col("key")])
        .agg([count_star().alias("count")])
        .write_stream(sink)
        .output_mode(OutputMode::Update)
}

/// (c) Two streams joined: `a.value = b.value` and `a.timestamp` within
/// 30 s of `b.timestamp` either way (a 1-minute event-time range), each side
/// with a watermark 10 s behind its event time, so the join's state holds
/// about 40 s of each stream and is evicted as the watermarks pass; inner
/// join, append mode, projected to both values' times.
pub fn join_query(left: impl Source, right: impl Source, sink: impl Sink) -> DataStreamWriter {
    let shifted = |us: i64| {
        call(
            "timestampadd",
            [lit("MICROSECOND"), lit(us), col("b.timestamp")],
        )
    };
    let a = DataFrame::from_source("a", left).with_watermark("timestamp", "10 seconds");
    let b = DataFrame::from_source("b", right).with_watermark("timestamp", "10 seconds");
    let on = col("a.value")
        .eq(col("b.value"))
        .and(col("a.timestamp").gt_eq(shifted(-30_000_000)))
        .and(col("a.timestamp").lt_eq(shifted(30_000_000)));
    a.join_stream(b, on, JoinType::Inner)
        .select([
            col("a.value"),
            col("a.timestamp"),
            col("b.timestamp").alias("b_timestamp"),
        ])
        .write_stream(sink)
        .output_mode(OutputMode::Append)
}

/// The query of an engine scenario with the run's wait strategy and epoch
/// interval (`None` for the references, which run no query, and for
/// `fused-join`, whose two sources [`join_query`] takes). A fused
/// scenario's source is the engine's rate source (event time `timestamp`),
/// the others' the in-memory source (event time `ts`).
pub fn query_for(
    scenario: Scenario,
    source: impl Source,
    sink: impl Sink,
    keys: u64,
    wait: WaitStrategy,
    epoch_interval: Duration,
) -> Option<DataStreamWriter> {
    let writer = match scenario {
        Scenario::Stateless => stateless_query(source, sink, "ts"),
        Scenario::Keyed => keyed_query(source, sink, keys, "ts"),
        Scenario::FusedStateless => stateless_query(source, sink, "timestamp"),
        Scenario::FusedKeyed => keyed_query(source, sink, keys, "timestamp"),
        Scenario::FusedFunctions => functions_query(source, sink, "timestamp"),
        Scenario::FusedTextPlain => text_projection_query(source, sink, "timestamp", false),
        Scenario::FusedTextFunctions => text_projection_query(source, sink, "timestamp", true),
        Scenario::FusedLookup => lookup_query(source, sink, "timestamp", &lookup_table()),
        Scenario::PushStateless => stateless_query(source, sink, "ts"),
        Scenario::PushKeyed => keyed_query(source, sink, keys, "ts"),
        Scenario::Slip | Scenario::Floor | Scenario::FusedJoin => return None,
    };
    Some(
        writer
            .query_name(&format!("bench-{scenario}"))
            .wait_strategy(wait)
            .trigger(Trigger::Continuous { epoch_interval }),
    )
}

/// Pushes into the engine's in-memory source.
struct EngineTarget {
    producer: MemoryProducer,
    capacity: usize,
}

/// What a push's outcome means to the generator.
#[inline]
fn offer_of(pushed: Result<(), PushError>) -> Offer {
    match pushed {
        Ok(()) => Offer::Accepted,
        Err(PushError::Full(row)) => Offer::Full(row),
        Err(PushError::Closed) => Offer::Closed,
    }
}

impl Target for EngineTarget {
    #[inline]
    fn offer(&mut self, row: Row, scheduled_ns: u64) -> Offer {
        offer_of(self.producer.push_at(row, scheduled_ns))
    }

    fn backlog(&self) -> u64 {
        (self.capacity - self.producer.free_slots()) as u64
    }
}

/// Pushes through the embedding API: the push runs the query's first task
/// on the generator's thread.
struct PushTarget {
    pusher: Pusher,
}

impl Target for PushTarget {
    #[inline]
    fn offer(&mut self, row: Row, scheduled_ns: u64) -> Offer {
        offer_of(self.pusher.try_push_at(row, scheduled_ns))
    }
}

/// [`query_for`] with a run's settings; an error for a reference scenario.
fn engine_query(
    scenario: Scenario,
    source: impl Source,
    sink: NullSink,
    config: &BenchConfig,
) -> Result<DataStreamWriter, BenchError> {
    query_for(
        scenario,
        source,
        sink,
        config.keys,
        config.wait,
        config.epoch_interval,
    )
    .ok_or_else(|| BenchError::Config(format!("{scenario} does not run the engine")))
}

/// Runs one engine scenario open-loop at `config.rate` and reports its
/// latency (warm-up excluded, see the module docs).
pub fn run_engine(scenario: Scenario, config: &BenchConfig) -> Result<ScenarioResult, BenchError> {
    if scenario.is_push() {
        let (source, pusher) = PushSource::with_capacity(event_schema(), config.ring_capacity);
        let (sink, stats) = NullSink::new();
        let query = engine_query(scenario, source, sink, config)?.start()?;
        return open_loop_run(scenario, config, query, PushTarget { pusher }, stats);
    }
    let (source, producer) = MemorySource::with_capacity(event_schema(), config.ring_capacity);
    let (sink, stats) = NullSink::new();
    let query = engine_query(scenario, source, sink, config)?.start()?;
    let target = EngineTarget {
        producer,
        capacity: config.ring_capacity,
    };
    open_loop_run(scenario, config, query, target, stats)
}

/// Drives a started query open-loop from a generator thread pushing into
/// `target`, and reports the latency of the events due after the warm-up.
fn open_loop_run<T: Target + Send + 'static>(
    scenario: Scenario,
    config: &BenchConfig,
    query: runnel::StreamingQuery,
    target: T,
    stats: Arc<NullSinkStats>,
) -> Result<ScenarioResult, BenchError> {
    let schedule = Schedule::new(config.rate, config.warmup, config.duration, LEAD);
    let generator = spawn_generator(target, schedule).map_err(BenchError::thread)?;

    // The baseline: everything durable two epochs after the warm-up ended.
    sleep_until(schedule.measure_start_ns());
    let first = query.committed_epoch();
    while query.committed_epoch() < first + 2 && !generator.is_finished() && query.is_active() {
        thread::sleep(Duration::from_millis(1));
    }
    let baseline = query.latency_histogram();

    let (report, target) = generator
        .join()
        .map_err(|_| BenchError::Thread("the generator panicked".into()))?;
    drop(target); // ends the stream: the query drains, commits and stops
    query.await_termination()?;
    let mut hist = query.latency_histogram();
    hist.subtract(&baseline)
        .map_err(|e| BenchError::Histogram(format!("{e:?}")))?;
    Ok(ScenarioResult::new(
        scenario,
        config,
        &hist,
        &report,
        stats.rows(),
    ))
}

/// Runs one fused scenario open-loop at `config.rate`: the same pipeline,
/// fed by the engine's rate source (`runnel_connectors::RateSource`) inside
/// the query's task, so the generator and the operators share one thread
/// and no ring. Every row's ingest time is its scheduled time, as with the
/// producer thread. Warm-up is excluded as in [`run_engine`].
///
/// The source's lag is not observable per row here; the report carries one
/// figure: when the sink closed (after the last row) minus when the last
/// row was due, with the schedule's origin taken when the sink opened. The
/// rate source starts its schedule when it opens, just before the sink in
/// the same thread, so this understates the lag by the time between the
/// two calls (microseconds); an origin taken before the query started
/// would instead charge the query's start-up (a join building its index)
/// to the last row.
pub fn run_fused(scenario: Scenario, config: &BenchConfig) -> Result<ScenarioResult, BenchError> {
    let warmup_events = (config.rate as f64 * config.warmup.as_secs_f64()) as u64;
    let measured_events = (config.rate as f64 * config.duration.as_secs_f64()) as u64;
    let total = warmup_events + measured_events;
    if total == 0 {
        return Err(BenchError::Config(
            "a fused run needs at least one event".into(),
        ));
    }
    let (sink, stats) = NullSink::new();
    let writer = if scenario == Scenario::FusedJoin {
        // Both streams at the run's rate, read by the join's own task.
        let left = RateSource::new(config.rate).with_limit(total);
        let right = RateSource::new(config.rate).with_limit(total);
        join_query(left, right, sink)
            .query_name(&format!("bench-{scenario}"))
            .wait_strategy(config.wait)
            .trigger(Trigger::Continuous {
                epoch_interval: config.epoch_interval,
            })
    } else {
        let source = RateSource::new(config.rate).with_limit(total);
        engine_query(scenario, source, sink, config)?
    };
    let due_ns = |i: u64| (i as u128 * 1_000_000_000 / config.rate as u128) as u64;
    let started_ns = now_ns();
    let query = writer.start()?;
    // `start` opens the sink (after the source), so this is set by now.
    let origin_ns = stats.opened_ns().unwrap_or(started_ns);

    let measure_start_ns = origin_ns + due_ns(warmup_events);
    sleep_until(measure_start_ns);
    let first = query.committed_epoch();
    while query.committed_epoch() < first + 2 && query.is_active() {
        thread::sleep(Duration::from_millis(1));
    }
    let baseline = query.latency_histogram();
    query.await_termination()?;
    let mut hist = query.latency_histogram();
    hist.subtract(&baseline)
        .map_err(|e| BenchError::Histogram(format!("{e:?}")))?;

    let closed_ns = stats.closed_ns().unwrap_or_else(now_ns);
    let final_lag_ns = closed_ns.saturating_sub(origin_ns + due_ns(total - 1));
    let mut lag = crate::stats::new_histogram();
    crate::stats::record(&mut lag, final_lag_ns);
    let report = GeneratorReport {
        events: total,
        measured_events,
        lag,
        max_lag_ns: final_lag_ns,
        final_lag_ns,
        measure_start_ns,
        last_push_ns: closed_ns,
        full_events: 0,
        backlog_at_end: 0,
        closed_early: false,
    };
    Ok(ScenarioResult::new(
        scenario,
        config,
        &hist,
        &report,
        stats.rows(),
    ))
}

/// Settings of a closed-loop throughput run.
#[derive(Clone, Debug, PartialEq)]
pub struct ThroughputConfig {
    /// The pipeline (stateless or keyed).
    pub scenario: Scenario,
    /// Events to push.
    pub events: u64,
    /// How the engine's idle tasks wait.
    pub wait: WaitStrategy,
    /// Time between epoch markers.
    pub epoch_interval: Duration,
    /// Distinct keys of the keyed pipeline.
    pub keys: u64,
    /// Slots of the source ring (live mode).
    pub ring_capacity: usize,
    /// Push every row into a ring big enough for all of them *before* the
    /// query starts, so the engine runs alone (no producer thread competing
    /// for the cores); otherwise a producer thread pushes while it runs.
    pub prefill: bool,
}

impl Default for ThroughputConfig {
    fn default() -> Self {
        let b = BenchConfig::default();
        ThroughputConfig {
            scenario: Scenario::Stateless,
            events: 20_000_000,
            wait: b.wait,
            epoch_interval: b.epoch_interval,
            keys: b.keys,
            ring_capacity: b.ring_capacity,
            prefill: false,
        }
    }
}

/// Rows a closed-loop producer pushes per clock read (their ingest time and
/// timestamp): reading the clock per row would cost the producer more than
/// the push itself.
const CLOCK_EVERY: u64 = 256;

/// Pushes rows `from..to` into `producer` as fast as the ring takes them
/// (waiting, spin then yield, while it is full). Returns the number of rows
/// that found the ring full, or `None` if the query went away.
fn push_closed_loop(
    mut push: impl FnMut(Row, u64) -> Result<(), PushError>,
    from: u64,
    to: u64,
) -> Option<u64> {
    let wall = WallAnchor::now();
    let mut full_events = 0u64;
    let mut now = now_ns();
    for i in from..to {
        if i % CLOCK_EVERY == 0 {
            now = now_ns();
        }
        let mut row = event_row(i, wall.wall_us(now));
        let mut tries = 0u32;
        loop {
            match push(row, now) {
                Ok(()) => break,
                Err(PushError::Full(back)) => {
                    row = back;
                    if tries == 0 {
                        full_events += 1;
                    }
                    tries = tries.saturating_add(1);
                    if tries < 64 {
                        std::hint::spin_loop();
                    } else {
                        thread::yield_now();
                    }
                }
                Err(PushError::Closed) => return None,
            }
        }
    }
    Some(full_events)
}

/// Measures how many events per second the engine gets through to the sink
/// when pushed as fast as possible (closed loop), either by a live producer
/// thread or from a ring filled before the start ([`ThroughputConfig::prefill`]).
/// The time runs from the first push (live) or the query's start (prefill)
/// until the sink is closed, after the last row and the final epoch.
pub fn max_throughput(config: &ThroughputConfig) -> Result<ThroughputReport, BenchError> {
    let events = config.events;
    let capacity = if config.prefill {
        usize::try_from(events)
            .map_err(|_| BenchError::Config("too many events to prefill".into()))?
    } else {
        config.ring_capacity
    };
    if config.scenario.is_push() {
        if config.prefill {
            return Err(BenchError::Config(
                "--prefill fills a ring before the start; the push source runs on the pusher's thread"
                    .into(),
            ));
        }
        let (source, mut pusher) = PushSource::with_capacity(event_schema(), capacity);
        let (writer, stats) = throughput_query(config, source)?;
        let (started, full_events) =
            live_closed_loop(writer, events, move |r, t| pusher.try_push_at(r, t))?;
        return Ok(throughput_report(config, &stats, started, full_events));
    }
    let (source, mut producer) = MemorySource::with_capacity(event_schema(), capacity);
    let (writer, stats) = throughput_query(config, source)?;
    let (started, full_events) = if config.prefill {
        push_closed_loop(|r, t| producer.push_at(r, t), 0, events);
        drop(producer);
        let started = now_ns();
        let query = writer.start()?;
        query.await_termination()?;
        (started, 0)
    } else {
        live_closed_loop(writer, events, move |r, t| producer.push_at(r, t))?
    };
    Ok(throughput_report(config, &stats, started, full_events))
}

/// The closed-loop query over `source` with a null sink.
fn throughput_query(
    config: &ThroughputConfig,
    source: impl Source,
) -> Result<(DataStreamWriter, Arc<NullSinkStats>), BenchError> {
    let (sink, stats) = NullSink::new();
    let writer = query_for(
        config.scenario,
        source,
        sink,
        config.keys,
        config.wait,
        config.epoch_interval,
    )
    .ok_or_else(|| BenchError::Config(format!("{} does not run the engine", config.scenario)))?;
    Ok((writer, stats))
}

/// Starts the query and pushes `events` rows from a generator thread as fast
/// as `push` takes them (dropping `push`, and the producer in it, ends the
/// stream); waits for the query to end. Returns when the first push started
/// and how many rows found the ring full.
fn live_closed_loop(
    writer: DataStreamWriter,
    events: u64,
    mut push: impl FnMut(Row, u64) -> Result<(), PushError> + Send + 'static,
) -> Result<(u64, u64), BenchError> {
    let query = writer.start()?;
    let generator = thread::Builder::new()
        .name("runnel-bench-generator".into())
        .spawn(move || {
            let started = now_ns();
            let full = push_closed_loop(&mut push, 0, events).unwrap_or(0);
            (started, full)
        })
        .map_err(BenchError::thread)?;
    let out = generator
        .join()
        .map_err(|_| BenchError::Thread("the generator panicked".into()))?;
    query.await_termination()?;
    Ok(out)
}

fn throughput_report(
    config: &ThroughputConfig,
    stats: &NullSinkStats,
    started: u64,
    full_events: u64,
) -> ThroughputReport {
    let events = config.events;
    let ended = stats.closed_ns().unwrap_or_else(now_ns);
    let seconds = ended.saturating_sub(started) as f64 / 1e9;
    ThroughputReport {
        scenario: config.scenario,
        wait: config.wait.to_string(),
        prefill: config.prefill,
        events,
        rows_out: stats.rows(),
        seconds,
        events_per_sec: if seconds > 0.0 {
            events as f64 / seconds
        } else {
            0.0
        },
        full_events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(scenario: Scenario) -> BenchConfig {
        BenchConfig {
            scenarios: vec![scenario],
            rate: 20_000,
            warmup: Duration::from_millis(300),
            duration: Duration::from_millis(500),
            epoch_interval: Duration::from_millis(50),
            keys: 100,
            ..BenchConfig::default()
        }
    }

    #[test]
    fn the_fused_join_meets_every_left_row_once() {
        let config = tiny(Scenario::FusedJoin);
        let r = run_fused(Scenario::FusedJoin, &config).unwrap();
        // Both streams generate the same values: each left row (warm-up
        // included) meets one right row, their times a moment apart.
        let total = (config.rate as f64 * (config.warmup + config.duration).as_secs_f64()) as u64;
        assert_eq!(r.rows_out, total, "{r:?}");
        assert!(r.latency.count > 0);
    }

    #[test]
    fn stateless_passes_half_the_events() {
        let r = run_engine(Scenario::Stateless, &tiny(Scenario::Stateless)).unwrap();
        // 16,000 events in all; the even half reach the sink.
        assert_eq!(r.rows_out, 8_000);
        assert!(r.latency.count > 0 && r.latency.count < 8_000, "{r:?}");
        assert!(r.latency.p50 > 0.0);
    }

    #[test]
    fn push_fed_pipelines_see_every_event() {
        let r = run_engine(Scenario::PushStateless, &tiny(Scenario::PushStateless)).unwrap();
        assert_eq!(r.rows_out, 8_000);
        assert!(r.latency.count > 0 && r.latency.count < 8_000, "{r:?}");
        let r = run_engine(Scenario::PushKeyed, &tiny(Scenario::PushKeyed)).unwrap();
        assert_eq!(r.rows_out, 16_000);
    }

    #[test]
    fn keyed_writes_one_update_per_event() {
        let r = run_engine(Scenario::Keyed, &tiny(Scenario::Keyed)).unwrap();
        assert_eq!(r.rows_out, 16_000);
        assert!(r.latency.count > 0);
    }

    #[test]
    fn closed_loop_counts_every_row() {
        let r = max_throughput(&ThroughputConfig {
            events: 100_000,
            ..ThroughputConfig::default()
        })
        .unwrap();
        assert_eq!(r.rows_out, 50_000);
        assert!(r.events_per_sec > 0.0);
        let r = max_throughput(&ThroughputConfig {
            events: 100_000,
            prefill: true,
            scenario: Scenario::Keyed,
            ..ThroughputConfig::default()
        })
        .unwrap();
        assert_eq!(r.rows_out, 100_000);
    }
}
