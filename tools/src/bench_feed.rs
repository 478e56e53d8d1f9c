//! The producers of `runnel bench --source push` and the same-run floors.
//!
//! Owns [`Feeders`] (producer threads that push rows of the rate source's
//! schema through [`runnel::Pusher`] handles on an open-loop schedule, each
//! row carrying its scheduled time as ingest time), [`measure_slip`] (the
//! same schedule on as many threads, pushing into nothing: the producers'
//! own slip) and [`measure_floor`] (a bare ring hop between two spinning
//! threads); for topic sources, [`LogFeeder`] and `KafkaFeeder` (a writer
//! thread per topic; feature `kafka`) and [`ScheduledLatency`] (the sink's end-to-end
//! histogram, from each record's number back to its scheduled time).
//! Producers, writers and the slip wait for each row the same way: sleep
//! while the next row is far off, spin the last stretch (its length follows
//! how late the thread's own sleeps come back), so at low rates an idle
//! producer does not burn a core, a late wake-up of the producer is not
//! charged to the engine, and the slip shows what is left. Their threads
//! are named [`FEEDER_THREADS`]`…`, so their CPU time can be told apart from
//! the engine's. It must not touch the engine beyond the public push API.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hdrhistogram::Histogram;
use runnel::clock::{now_ns, wall_now_us};
use runnel::io::PushError;
use runnel::{EngineError, Pusher, Result, Value};
use serde::Serialize;

/// Percentiles of a reference measurement, in µs.
#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        let s = runnel::LatencySummary::of(h);
        Percentiles {
            p50: s.p50,
            p99: s.p99,
            p999: s.p999,
        }
    }
}

/// How the threads that feed a query (producers, topic writers) are named;
/// the engine's own threads are named after the query (`runnel-…`).
pub const FEEDER_THREADS: &str = "bench-feeder-";

/// A waiting producer never spins for less than this before a row is due.
const MIN_SPIN_AHEAD_NS: u64 = 200_000;
/// ... nor for more (at rates above 500 rows/s it then never sleeps).
const MAX_SPIN_AHEAD_NS: u64 = 2_000_000;

/// How a producer (or a slip thread, or a topic writer) waits for its next
/// row: it sleeps while the row is far off and spins the last stretch. The
/// stretch follows how late this thread's sleeps come back: twice the
/// largest lateness seen lately (growing at once, shrinking by 1/1024 a
/// row), between [`MIN_SPIN_AHEAD_NS`] and [`MAX_SPIN_AHEAD_NS`]. On a
/// virtual machine an idle vCPU can take hundreds of µs to run a thread
/// whose timer fired; a fixed stretch shorter than that makes the producer
/// late, and the lateness is charged to every row as if the engine caused
/// it. The thread's timer slack is set to 1 ns (Linux), so a sleep is not
/// rounded up by the default 50 µs.
struct Waiter {
    spin_ahead_ns: u64,
}

impl Waiter {
    /// A waiter for the calling thread (sets its timer slack).
    fn for_this_thread() -> Waiter {
        #[cfg(target_os = "linux")]
        // SAFETY: PR_SET_TIMERSLACK takes one integer argument and changes
        // only the calling thread's timer slack; no memory is passed.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
        Waiter {
            spin_ahead_ns: MIN_SPIN_AHEAD_NS,
        }
    }

    /// Waits until `due` ([`now_ns`] time); `false` if `stop` was raised
    /// meanwhile.
    #[inline]
    fn wait_until(&mut self, due: u64, stop: &AtomicBool) -> bool {
        let mut slept = false;
        loop {
            let now = now_ns();
            if now >= due {
                if !slept {
                    // Rows closer together than the stretch never sleep, so
                    // it also shrinks here, or one late wake-up would keep
                    // the thread spinning for good.
                    self.spin_ahead_ns -= (self.spin_ahead_ns - MIN_SPIN_AHEAD_NS) / 1024;
                }
                return true;
            }
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let ahead = due - now;
            if ahead > self.spin_ahead_ns {
                let sleep = ahead - self.spin_ahead_ns;
                thread::sleep(Duration::from_nanos(sleep));
                slept = true;
                let late = now_ns().saturating_sub(now + sleep);
                let want = (2 * late).clamp(MIN_SPIN_AHEAD_NS, MAX_SPIN_AHEAD_NS);
                if want > self.spin_ahead_ns {
                    self.spin_ahead_ns = want;
                } else {
                    self.spin_ahead_ns -= (self.spin_ahead_ns - want) / 1024;
                }
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// One producer's schedule: row `k` of producer `i` of `n` is due at
/// `start + (k·n + i) / rate`, so the producers together keep `rate`.
#[derive(Clone, Copy)]
struct Lane {
    start_ns: u64,
    start_wall_us: i64,
    rate: u64,
    producers: u64,
    index: u64,
}

impl Lane {
    #[inline]
    fn seq(&self, k: u64) -> u64 {
        k * self.producers + self.index
    }

    #[inline]
    fn due(&self, k: u64) -> u64 {
        self.start_ns + (self.seq(k) as u128 * 1_000_000_000 / self.rate as u128) as u64
    }
}

fn lanes(rate: u64, producers: usize) -> Vec<Lane> {
    // A little lead for the threads to start.
    let start_ns = now_ns() + 5_000_000;
    let start_wall_us = wall_now_us() + 5_000;
    (0..producers as u64)
        .map(|index| Lane {
            start_ns,
            start_wall_us,
            rate: rate.max(1),
            producers: producers as u64,
            index,
        })
        .collect()
}

/// Producer threads for a push source, not yet started.
pub struct Feeders {
    pushers: Vec<Pusher>,
    lanes: Vec<Lane>,
    stamp_at_push: bool,
}

/// Running producer threads.
pub struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<u64>>>,
}

impl Feeders {
    /// `producers` producers (clones of `first`) sharing `rate` rows/s,
    /// their schedule starting a few milliseconds from now. Each row's
    /// ingest time is its scheduled time, so the query's histogram is
    /// end to end ([`Feeders::stamp_at_push`] changes that).
    pub fn new(first: Pusher, producers: usize, rate: u64) -> Feeders {
        let mut pushers = vec![first];
        while pushers.len() < producers {
            let next = pushers[0].clone();
            pushers.push(next);
        }
        let lanes = lanes(rate, pushers.len());
        Feeders {
            pushers,
            lanes,
            stamp_at_push: false,
        }
    }

    /// Stamps each row with the time of its push instead, so the query's
    /// histogram is the engine's own share (push → sink); the end-to-end
    /// figure then comes from [`Feeders::latency`] at the sink, which needs
    /// the row number in the output's first column (a stateless query).
    pub fn stamp_at_push(mut self) -> Feeders {
        self.stamp_at_push = true;
        self
    }

    /// What turns an output row's `value` (the row's number across all
    /// producers) back into its scheduled time.
    pub fn latency(&self) -> Arc<ScheduledLatency> {
        let first = self.lanes[0];
        ScheduledLatency::of(Some(Lane {
            producers: 1,
            index: 0,
            ..first
        }))
    }

    /// Starts one thread per producer.
    pub fn start(self) -> Result<Running> {
        let stop = Arc::new(AtomicBool::new(false));
        let stamp_at_push = self.stamp_at_push;
        let mut threads = Vec::new();
        for (mut pusher, lane) in self.pushers.into_iter().zip(self.lanes) {
            let stop = stop.clone();
            let t = thread::Builder::new()
                .name(format!("bench-feeder-{}", lane.index))
                .spawn(move || -> Result<u64> {
                    let mut waiter = Waiter::for_this_thread();
                    let mut k = 0u64;
                    loop {
                        let due = lane.due(k);
                        if !waiter.wait_until(due, &stop) {
                            return Ok(k);
                        }
                        let wall = lane.start_wall_us + ((due - lane.start_ns) / 1000) as i64;
                        let row =
                            runnel::row![Value::Int64(lane.seq(k) as i64), Value::Timestamp(wall)];
                        let ingest = if stamp_at_push { now_ns() } else { due };
                        match pusher.push_at(row, ingest) {
                            Ok(()) => {}
                            Err(PushError::Closed) => return Ok(k),
                            Err(PushError::Full(_)) => unreachable!("push_at waits"),
                        }
                        k += 1;
                    }
                })
                .map_err(|e| EngineError::Plan(format!("cannot start a producer thread: {e}")))?;
            threads.push(t);
        }
        Ok(Running { stop, threads })
    }
}

impl Running {
    /// Stops the producers (which ends the stream) and returns the rows
    /// they pushed.
    pub fn stop(self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for t in self.threads {
            total += t
                .join()
                .map_err(|_| EngineError::Plan("a producer thread panicked".into()))??;
        }
        Ok(total)
    }
}

/// The producers' own schedule slip: `producers` threads keep the schedule
/// of the run (`rate` in all) and push each row into nothing; the slip is
/// how late each push completed, over the measured window.
pub fn measure_slip(
    rate: u64,
    producers: usize,
    warmup: f64,
    duration: f64,
) -> Result<Percentiles> {
    let stop = Arc::new(AtomicBool::new(false));
    let lanes = lanes(rate, producers.max(1));
    let measure_from = lanes[0].start_ns + (warmup * 1e9) as u64;
    let end = measure_from + (duration * 1e9) as u64;
    let threads: Vec<_> = lanes
        .into_iter()
        .map(|lane| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut waiter = Waiter::for_this_thread();
                let mut hist = runnel::metrics::new_latency_histogram();
                let mut k = 0u64;
                loop {
                    let due = lane.due(k);
                    if due > end || !waiter.wait_until(due, &stop) {
                        return hist;
                    }
                    let wall = lane.start_wall_us + ((due - lane.start_ns) / 1000) as i64;
                    let row =
                        runnel::row![Value::Int64(lane.seq(k) as i64), Value::Timestamp(wall)];
                    std::hint::black_box(row);
                    if due >= measure_from {
                        hist.saturating_record(now_ns().saturating_sub(due).max(1));
                    }
                    k += 1;
                }
            })
        })
        .collect();
    let mut merged = runnel::metrics::new_latency_histogram();
    for t in threads {
        let h = t
            .join()
            .map_err(|_| EngineError::Plan("a slip thread panicked".into()))?;
        merged
            .add(&h)
            .map_err(|e| EngineError::Plan(format!("merging slip histograms: {e:?}")))?;
    }
    Ok(Percentiles::of(&merged))
}

/// The append floor of `--source log`: one thread appending the writer's
/// records (`k` as decimal text, a newline) to a plain file at `path` on
/// the same schedule and waiting the same way, each with one `write` call,
/// nothing reading them; its lateness from each record's scheduled time to
/// the return of the write. What appending to a file on this machine costs
/// the writer before any log format or reader is involved: a write that
/// takes a new page of the page cache can take far longer than one that
/// does not, and at an open-loop rate every record due meanwhile is late
/// with it. The file is removed afterwards.
pub fn measure_append_floor(
    rate: u64,
    warmup: f64,
    duration: f64,
    path: &std::path::Path,
) -> Result<Percentiles> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(|e| EngineError::Plan(format!("append floor: {}: {e}", path.display())))?;
    let lane = lanes(rate, 1)[0];
    let measure_from = lane.start_ns + (warmup * 1e9) as u64;
    let end = measure_from + (duration * 1e9) as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let t = thread::Builder::new()
        .name(format!("{FEEDER_THREADS}append"))
        .spawn(move || -> std::io::Result<Histogram<u64>> {
            let mut waiter = Waiter::for_this_thread();
            let mut hist = runnel::metrics::new_latency_histogram();
            let mut text = String::with_capacity(24);
            let mut k = 0u64;
            loop {
                let due = lane.due(k);
                if due > end || !waiter.wait_until(due, &stop) {
                    return Ok(hist);
                }
                text.clear();
                use std::fmt::Write as _;
                let _ = writeln!(text, "{k}");
                file.write_all(text.as_bytes())?;
                if due >= measure_from {
                    hist.saturating_record(now_ns().saturating_sub(due).max(1));
                }
                k += 1;
            }
        })
        .map_err(|e| EngineError::Plan(format!("cannot start the append floor: {e}")))?;
    let result = t
        .join()
        .map_err(|_| EngineError::Plan("the append floor's thread panicked".into()))
        .and_then(|r| {
            r.map_err(|e| EngineError::Plan(format!("append floor: {}: {e}", path.display())))
        });
    let _ = std::fs::remove_file(path);
    Ok(Percentiles::of(&result?))
}

/// The floor: a bare ring hop between a generator thread and one spinning
/// consumer, at `rate`, with the run's durations.
pub fn measure_floor(rate: u64, warmup: f64, duration: f64) -> Result<Percentiles> {
    let config = runnel_benches::BenchConfig {
        scenarios: vec![runnel_benches::Scenario::Floor],
        rate,
        warmup: Duration::from_secs_f64(warmup),
        duration: Duration::from_secs_f64(duration),
        ..runnel_benches::BenchConfig::default()
    };
    let r = runnel_benches::run_floor(&config)
        .map_err(|e| EngineError::Plan(format!("floor measurement: {e}")))?;
    Ok(Percentiles {
        p50: r.latency.p50,
        p99: r.latency.p99,
        p999: r.latency.p999,
    })
}

/// A writer thread appending to a log topic on an open-loop schedule, for
/// `runnel bench --source log`: record `k` is due at `start + k / rate`, its
/// value is `k` (decimal, like the rate source's `value`), flushed at once;
/// the sink turns `k` back into its scheduled time ([`ScheduledLatency`]).
pub struct LogFeeder {
    producer: runnel_connectors::log::LogProducer,
    scheduled: Arc<ScheduledLatency>,
}

impl LogFeeder {
    /// A feeder writing `rate` records/s through `producer`, its schedule
    /// starting a few milliseconds from now.
    pub fn new(producer: runnel_connectors::log::LogProducer, rate: u64) -> LogFeeder {
        LogFeeder {
            producer,
            scheduled: ScheduledLatency::of(Some(lanes(rate, 1)[0])),
        }
    }

    /// What turns a record's value back into its scheduled time (and holds
    /// the writer's own lateness).
    pub fn latency(&self) -> Arc<ScheduledLatency> {
        self.scheduled.clone()
    }

    /// Starts the writer thread.
    pub fn start(self) -> Result<Running> {
        let mut producer = self.producer;
        spawn_writer("bench-feeder-log", self.scheduled, move |text, wall_ms| {
            producer
                .send(Some(0), None, Some(text.as_bytes()), wall_ms)
                .and_then(|_| producer.flush())
                .map_err(|e| EngineError::Source(format!("log writer: {e}")))
        })
    }
}

/// Starts a writer thread that, for each record `k` of `scheduled`'s lane,
/// waits until it is due and calls `write(k as decimal text, its wall-clock
/// time in ms)`, until the returned [`Running`] is stopped; how late each
/// write returned goes into `scheduled`'s writer histogram.
fn spawn_writer(
    name: &str,
    scheduled: Arc<ScheduledLatency>,
    mut write: impl FnMut(&str, i64) -> Result<()> + Send + 'static,
) -> Result<Running> {
    let lane = scheduled
        .lane
        .ok_or_else(|| EngineError::Plan(format!("{name}: no schedule")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = thread::Builder::new()
        .name(name.into())
        .spawn(move || -> Result<u64> {
            let mut waiter = Waiter::for_this_thread();
            let mut k = 0u64;
            let mut text = String::with_capacity(24);
            loop {
                let due = lane.due(k);
                if !waiter.wait_until(due, &flag) {
                    return Ok(k);
                }
                let wall_ms = (lane.start_wall_us + ((due - lane.start_ns) / 1000) as i64) / 1000;
                text.clear();
                use std::fmt::Write as _;
                let _ = write!(text, "{k}");
                write(&text, wall_ms)?;
                scheduled.record_written(due);
                k += 1;
            }
        })
        .map_err(|e| EngineError::Plan(format!("cannot start {name}: {e}")))?;
    Ok(Running {
        stop,
        threads: vec![t],
    })
}

/// The end-to-end histogram of `--source log`: scheduled time (from the
/// value column, the record's number) → hand-off at the sink, for rows due
/// from `measure_from` on.
pub struct ScheduledLatency {
    hist: std::sync::Mutex<Histogram<u64>>,
    /// A topic writer's own lateness: scheduled time → its write returned.
    written: std::sync::Mutex<Histogram<u64>>,
    measure_from: AtomicU64,
    lane: Option<Lane>,
}

impl ScheduledLatency {
    /// A histogram that records nothing (for sources other than a topic).
    pub fn none() -> Arc<ScheduledLatency> {
        ScheduledLatency::of(None)
    }

    fn of(lane: Option<Lane>) -> Arc<ScheduledLatency> {
        Arc::new(ScheduledLatency {
            hist: std::sync::Mutex::new(runnel::metrics::new_latency_histogram()),
            written: std::sync::Mutex::new(runnel::metrics::new_latency_histogram()),
            measure_from: AtomicU64::new(u64::MAX),
            lane,
        })
    }

    /// Rows due at `ns` or later are recorded.
    pub fn measure_from(&self, ns: u64) {
        self.measure_from.store(ns, Ordering::Relaxed);
    }

    /// Records one output row whose `value` column holds its record number.
    #[inline]
    pub fn record(&self, row: &runnel::Row) {
        let now = now_ns();
        let (Some(lane), Some(k)) = (self.lane, row.first().and_then(|v| v.as_i64())) else {
            return;
        };
        let due = lane.due(k as u64);
        if due >= self.measure_from.load(Ordering::Relaxed) {
            let mut h = self.hist.lock().unwrap_or_else(|e| e.into_inner());
            h.saturating_record(now.saturating_sub(due).max(1));
        }
    }

    /// The histogram so far.
    pub fn histogram(&self) -> Histogram<u64> {
        self.hist.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A writer's record due at `due` was written (and flushed) just now.
    fn record_written(&self, due: u64) {
        let now = now_ns();
        if due >= self.measure_from.load(Ordering::Relaxed) {
            let mut h = self.written.lock().unwrap_or_else(|e| e.into_inner());
            h.saturating_record(now.saturating_sub(due).max(1));
        }
    }

    /// The writer's lateness so far: from each record's scheduled time to
    /// the return of its write; `None` without a writer.
    pub fn written(&self) -> Option<Histogram<u64>> {
        let h = self.written.lock().unwrap_or_else(|e| e.into_inner());
        (!h.is_empty()).then(|| h.clone())
    }
}

/// A writer thread producing to a Kafka topic on an open-loop schedule, for
/// `runnel bench --source kafka:HOST:PORT/TOPIC`: record `k` is due at
/// `start + k / rate` and its value is `k`, sent at once (`linger.ms=0`).
#[cfg(feature = "kafka")]
pub struct KafkaFeeder {
    brokers: String,
    topic: String,
    scheduled: Arc<ScheduledLatency>,
}

#[cfg(feature = "kafka")]
impl KafkaFeeder {
    /// A feeder producing `rate` records/s to `address` (`HOST:PORT/TOPIC`).
    pub fn new(address: &str, rate: u64) -> Result<KafkaFeeder> {
        let a = runnel_connectors::kafka::KafkaAddress::parse(address)?;
        Ok(KafkaFeeder {
            brokers: a.brokers,
            topic: a.topic,
            scheduled: ScheduledLatency::of(Some(lanes(rate, 1)[0])),
        })
    }

    /// What turns a record's value back into its scheduled time (and holds
    /// the writer's own lateness).
    pub fn latency(&self) -> Arc<ScheduledLatency> {
        self.scheduled.clone()
    }

    /// Starts the writer thread.
    pub fn start(self) -> Result<Running> {
        use rdkafka::error::KafkaError;
        use rdkafka::producer::{BaseProducer, BaseRecord};
        use rdkafka::types::RDKafkaErrorCode;
        let producer: BaseProducer = rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("linger.ms", "0")
            .set("enable.idempotence", "true")
            .create()
            .map_err(|e| EngineError::Source(format!("kafka writer for {}: {e}", self.topic)))?;
        let topic = self.topic;
        spawn_writer("bench-feeder-kafka", self.scheduled, move |text, _| {
            let mut record = BaseRecord::<(), str>::to(&topic).payload(text);
            let started = std::time::Instant::now();
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if started.elapsed() < Duration::from_secs(10) =>
                    {
                        record = back;
                        producer.poll(Duration::from_millis(1));
                    }
                    Err((e, _)) => {
                        return Err(EngineError::Source(format!(
                            "kafka writer for {topic}: {e}"
                        )))
                    }
                }
            }
            producer.poll(Duration::ZERO);
            Ok(())
        })
    }
}
