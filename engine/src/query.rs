//! The handle of a running query: Spark's `StreamingQuery`.
//!
//! Owns [`StreamingQuery`] (id, run id, name, status, progress, latency,
//! stop, await termination, the error that ended it) and the state it shares
//! with the running tasks, including `Control` (stop and abort flags, epoch
//! counters, every task's waker), which both runtimes use. Progress and latency are handed over once per
//! epoch under a lock; nothing here is touched per event.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::clock::wall_now_us;
use crate::error::{EngineError, Result};
use crate::metrics::{
    new_latency_histogram, EpochLatency, IngestTimes, LatencySummary, QueryTotals, RingFill,
    RingGauge, StreamingQueryProgress,
};
use crate::wake::TaskWaker;

/// Progress reports kept for [`StreamingQuery::recent_progress`].
pub const RECENT_PROGRESS: usize = 100;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Flags and counters shared by every task of one running query.
#[derive(Debug)]
pub(crate) struct Control {
    /// A graceful stop was requested: sources end the stream after one last epoch.
    pub(crate) stop: AtomicBool,
    /// The query failed: every task leaves as soon as it can.
    pub(crate) abort: Arc<AtomicBool>,
    /// The newest epoch the coordinator asked sources to mark.
    pub(crate) requested_epoch: AtomicU64,
    /// The newest durable epoch.
    pub(crate) committed_epoch: Arc<AtomicU64>,
    /// Every task's waker.
    pub(crate) wakers: Vec<Arc<TaskWaker>>,
}

impl Control {
    pub(crate) fn wake_all(&self) {
        for w in &self.wakers {
            w.wake();
        }
    }

    pub(crate) fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }
}

/// How a query runs: which runtime its trigger chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryMode {
    /// One event at a time through long-running tasks; epoch checkpoints.
    Continuous,
    /// Offset-logged Arrow batches.
    MicroBatch,
}

impl QueryMode {
    /// `"continuous"` or `"micro-batch"`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryMode::Continuous => "continuous",
            QueryMode::MicroBatch => "micro-batch",
        }
    }

    /// The delivery guarantee the mode gives across crashes (with a
    /// checkpoint): `"at-least-once"` or `"exactly-once"`.
    pub fn guarantee(self) -> &'static str {
        match self {
            QueryMode::Continuous => "at-least-once",
            QueryMode::MicroBatch => "exactly-once",
        }
    }
}

impl std::fmt::Display for QueryMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a runtime says about a query it starts, fixed for the run.
#[derive(Clone, Debug)]
pub(crate) struct QueryInfo {
    pub(crate) mode: QueryMode,
    /// Whether the query writes a checkpoint.
    pub(crate) checkpointed: bool,
    /// The task graph, one line per task (`explain()`'s second part).
    pub(crate) task_graph: String,
}

/// State shared between the handle and the running query.
pub(crate) struct QueryShared {
    pub(crate) id: String,
    pub(crate) run_id: String,
    pub(crate) name: Option<String>,
    pub(crate) info: QueryInfo,
    /// Wall time of the start, µs since the epoch.
    pub(crate) started_at_us: i64,
    /// Wall time of the end, µs since the epoch (`i64::MIN` while running).
    pub(crate) ended_at_us: AtomicI64,
    /// Sums over every progress report of the run.
    pub(crate) totals: Mutex<QueryTotals>,
    pub(crate) active: AtomicBool,
    pub(crate) error: Mutex<Option<EngineError>>,
    pub(crate) progress: Mutex<VecDeque<StreamingQueryProgress>>,
    pub(crate) latency: Mutex<Histogram<u64>>,
    pub(crate) durable: Mutex<Histogram<u64>>,
    /// The fill gauges of the rings between tasks (none in micro-batch).
    pub(crate) rings: Mutex<Vec<Arc<RingGauge>>>,
    pub(crate) finished: Mutex<bool>,
    pub(crate) finished_cv: Condvar,
    pub(crate) control: Arc<Control>,
}

impl QueryShared {
    pub(crate) fn new(
        id: String,
        name: Option<String>,
        info: QueryInfo,
        control: Arc<Control>,
    ) -> QueryShared {
        QueryShared {
            id,
            run_id: uuid::Uuid::new_v4().to_string(),
            name,
            info,
            started_at_us: wall_now_us(),
            ended_at_us: AtomicI64::new(i64::MIN),
            totals: Mutex::new(QueryTotals::default()),
            active: AtomicBool::new(true),
            error: Mutex::new(None),
            progress: Mutex::new(VecDeque::new()),
            latency: Mutex::new(new_latency_histogram()),
            durable: Mutex::new(new_latency_histogram()),
            rings: Mutex::new(Vec::new()),
            finished: Mutex::new(false),
            finished_cv: Condvar::new(),
            control,
        }
    }

    /// Readings of the ring gauges.
    pub(crate) fn ring_fill(&self) -> Vec<RingFill> {
        let mut rings: Vec<RingFill> = lock(&self.rings).iter().map(|g| g.read()).collect();
        rings.sort_by_key(|r| (r.from, r.to));
        rings
    }

    /// Records the error that ends the query (the first one wins).
    pub(crate) fn fail(&self, err: EngineError) {
        let mut e = lock(&self.error);
        if e.is_none() {
            tracing::error!(query = %self.id, "query failed: {err}");
            *e = Some(err);
        }
    }

    /// [`QueryShared::push_progress`] of a batch whose rows, ingested at
    /// `ingest_ns`, all reached the sink at `handed_ns` and became durable
    /// at `durable_ns`: recorded into the query's histograms directly.
    pub(crate) fn push_batch_progress(
        &self,
        p: StreamingQueryProgress,
        handed_ns: u64,
        durable_ns: u64,
        ingest_ns: &[u64],
    ) {
        {
            let mut h = lock(&self.latency);
            for ingest in ingest_ns {
                h.saturating_record(handed_ns.saturating_sub(*ingest).max(1));
            }
        }
        {
            let mut h = lock(&self.durable);
            for ingest in ingest_ns {
                h.saturating_record(durable_ns.saturating_sub(*ingest).max(1));
            }
        }
        self.push_report(p);
    }

    /// Publishes one epoch's progress, its rows' latency to the sink
    /// hand-off, and their latency to durability: the epoch's rows, whose
    /// ingest times are `ingest`, became durable at `durable_ns` (recorded
    /// straight into the query's histograms, from the buckets the epoch
    /// used).
    pub(crate) fn push_progress(
        &self,
        p: StreamingQueryProgress,
        epoch_latency: &EpochLatency,
        ingest: &IngestTimes,
        durable_ns: u64,
    ) {
        epoch_latency.add_into(&mut lock(&self.latency));
        ingest.durable_into(durable_ns, &mut lock(&self.durable));
        self.push_report(p);
    }

    /// Adds a progress report to the totals and the recent reports.
    fn push_report(&self, p: StreamingQueryProgress) {
        lock(&self.totals).add(&p);
        let mut q = lock(&self.progress);
        if q.len() == RECENT_PROGRESS {
            q.pop_front();
        }
        q.push_back(p);
    }

    /// When the run ended (µs since the Unix epoch), if it has.
    pub(crate) fn end_time_us(&self) -> Option<i64> {
        Some(self.ended_at_us.load(Ordering::SeqCst)).filter(|t| *t != i64::MIN)
    }

    pub(crate) fn finish(&self) {
        let _ = self.ended_at_us.compare_exchange(
            i64::MIN,
            wall_now_us(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.active.store(false, Ordering::SeqCst);
        *lock(&self.finished) = true;
        self.finished_cv.notify_all();
    }
}

/// A running (or finished) query.
///
/// Dropping the handle stops the query gracefully and waits for it.
pub struct StreamingQuery {
    shared: Arc<QueryShared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl StreamingQuery {
    pub(crate) fn new(shared: Arc<QueryShared>, threads: Vec<JoinHandle<()>>) -> StreamingQuery {
        StreamingQuery {
            shared,
            threads: Mutex::new(threads),
        }
    }

    /// The state shared with the running query (for the live view).
    #[cfg_attr(not(feature = "ui"), allow(dead_code))]
    pub(crate) fn shared(&self) -> &Arc<QueryShared> {
        &self.shared
    }

    /// The query's id: stable across restarts on one checkpoint directory.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The id of this run: new at every start.
    pub fn run_id(&self) -> &str {
        &self.shared.run_id
    }

    /// The query's name, if one was given.
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    /// The runtime the query runs in (and so its guarantee).
    pub fn mode(&self) -> QueryMode {
        self.shared.info.mode
    }

    /// The task graph the query runs, one line per task (as `explain()`
    /// prints it).
    pub fn task_graph(&self) -> &str {
        &self.shared.info.task_graph
    }

    /// Whether the query writes a checkpoint (without one its guarantee
    /// holds only while the process lives).
    pub fn is_checkpointed(&self) -> bool {
        self.shared.info.checkpointed
    }

    /// When this run started: wall time, µs since the Unix epoch.
    pub fn start_time_us(&self) -> i64 {
        self.shared.started_at_us
    }

    /// When this run ended (wall time, µs since the Unix epoch), or `None`
    /// while it runs.
    pub fn end_time_us(&self) -> Option<i64> {
        self.shared.end_time_us()
    }

    /// Sums over every progress report of this run: rows in and out, rows
    /// dropped as late, epochs or batches.
    pub fn totals(&self) -> QueryTotals {
        lock(&self.shared.totals).clone()
    }

    /// Whether the query is still running.
    pub fn is_active(&self) -> bool {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// The latest progress report.
    pub fn last_progress(&self) -> Option<StreamingQueryProgress> {
        lock(&self.shared.progress).back().cloned()
    }

    /// The latest progress reports, oldest first (at most [`RECENT_PROGRESS`]).
    pub fn recent_progress(&self) -> Vec<StreamingQueryProgress> {
        lock(&self.shared.progress).iter().cloned().collect()
    }

    /// End-to-end latency of every row written so far, merged across epochs
    /// (as of the last durable epoch).
    pub fn latency(&self) -> LatencySummary {
        LatencySummary::of(&lock(&self.shared.latency))
    }

    /// A copy of the merged latency histogram (nanoseconds).
    pub fn latency_histogram(&self) -> Histogram<u64> {
        lock(&self.shared.latency).clone()
    }

    /// Latency to durability of every row written so far: from its ingest
    /// time to the commit of its epoch (continuous) or batch (micro-batch),
    /// the moment a crash can no longer lose or repeat it at the sink. The
    /// same rows as [`StreamingQuery::latency`], measured at the other end.
    pub fn durable_latency(&self) -> LatencySummary {
        LatencySummary::of(&lock(&self.shared.durable))
    }

    /// A copy of the merged latency-to-durability histogram (nanoseconds).
    pub fn durable_latency_histogram(&self) -> Histogram<u64> {
        lock(&self.shared.durable).clone()
    }

    /// The fill of every ring between tasks, as its consumer sampled it at
    /// the last epoch marker, with the sends that found it full (empty in
    /// micro-batch, which has no rings, and for a single-task query).
    pub fn ring_fill(&self) -> Vec<RingFill> {
        self.shared.ring_fill()
    }

    /// The newest durable epoch (0 before the first).
    pub fn committed_epoch(&self) -> u64 {
        self.shared.control.committed_epoch.load(Ordering::SeqCst)
    }

    /// The error that ended the query, if it failed.
    pub fn exception(&self) -> Option<EngineError> {
        lock(&self.shared.error).clone()
    }

    /// Asks the query to stop after one last epoch (everything read so far is
    /// processed, written and checkpointed), and waits for it.
    pub fn stop(&self) -> Result<()> {
        self.shared.control.stop.store(true, Ordering::SeqCst);
        self.shared.control.wake_all();
        self.await_termination()
    }

    /// Waits until the query ends; its error if it failed.
    pub fn await_termination(&self) -> Result<()> {
        {
            let mut done = lock(&self.shared.finished);
            while !*done {
                done = self
                    .shared
                    .finished_cv
                    .wait(done)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        self.join_threads();
        match self.exception() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits at most `timeout`: `Ok(true)` if the query ended, `Ok(false)` if
    /// it is still running, its error if it failed.
    pub fn await_termination_timeout(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        {
            let mut done = lock(&self.shared.finished);
            while !*done {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(false);
                }
                done = self
                    .shared
                    .finished_cv
                    .wait_timeout(done, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        self.await_termination().map(|_| true)
    }

    fn join_threads(&self) {
        let threads: Vec<_> = lock(&self.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for StreamingQuery {
    fn drop(&mut self) {
        if self.is_active() {
            let _ = self.stop();
        } else {
            self.join_threads();
        }
    }
}

impl std::fmt::Debug for StreamingQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingQuery")
            .field("id", &self.id())
            .field("run_id", &self.run_id())
            .field("name", &self.name())
            .field("active", &self.is_active())
            .finish()
    }
}
