//! The micro-batch driver loop and its recovery.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::commit::{BatchCommit, CommitWriter, Committed};
use super::exec::Flight;
use super::runner::BatchRunner;
use crate::checkpoint::{Checkpointer, OffsetLogEntry, SourceCommit, FORMAT_VERSION};
use crate::clock::{now_ns, wall_now_ms, wall_now_us};
use crate::error::{EngineError, Result};
use crate::io::{
    DurableEpochs, Replayable, Sink, SinkContext, Source, SourceContext, SourceOffset,
};
use crate::metrics::{
    EventTimeStats, LatencySummary, SinkProgress, SourceProgress, StateOperatorProgress,
    StreamingQueryProgress,
};
use crate::plan::{LogicalPlan, PhysOp, PhysicalPlan, QueryConfig, Trigger};
use crate::query::Control;
use crate::query::{QueryInfo, QueryMode, QueryShared, StreamingQuery};
use crate::schema::NO_TIME;
use crate::time::format_iso_ms;
use crate::wake::TaskWaker;

/// How long an as-fast-as-possible trigger waits before asking an idle
/// source again.
const IDLE_POLL: Duration = Duration::from_millis(10);

struct Driver {
    source: Box<dyn Source>,
    source_name: String,
    sink: Box<dyn Sink>,
    runner: BatchRunner,
    source_schema: crate::schema::SchemaRef,
    /// The checkpoint's writer thread (`None`: no checkpoint).
    writer: Option<CommitWriter>,
    config: QueryConfig,
    control: Arc<Control>,
    shared: Arc<QueryShared>,
    waker: Arc<TaskWaker>,
    next_batch: u64,
    current: Option<SourceOffset>,
    replay: VecDeque<OffsetLogEntry>,
    last_batch_at: Instant,
}

/// Starts a query in micro-batch mode.
pub(crate) fn start(
    mut source: Box<dyn Source>,
    plan: LogicalPlan,
    mut sink: Box<dyn Sink>,
    config: QueryConfig,
) -> Result<StreamingQuery> {
    let physical = PhysicalPlan::new(&plan, &config, false)?;
    if source.as_replayable().is_none() {
        return Err(EngineError::Source(format!(
            "{} cannot run in micro-batch mode (it cannot name or replay offset ranges); \
             use continuous mode",
            source.describe()
        )));
    }
    if config.checkpoint.is_some() && !source.is_replayable() {
        return Err(EngineError::Plan(format!(
            "micro-batch mode re-reads a batch's logged range after a crash, and source {} cannot replay; use continuous mode",
            plan.source_name
        )));
    }
    let (checkpoint, query_id) = match &config.checkpoint {
        Some(path) => {
            let (ck, meta) = Checkpointer::open(
                path,
                config.checkpoint_storage.clone(),
                config.retain_epochs,
            )?;
            (Some(ck), meta.id)
        }
        None => (None, uuid::Uuid::new_v4().to_string()),
    };
    let waker = Arc::new(TaskWaker::new());
    let control = Arc::new(Control {
        stop: AtomicBool::new(false),
        abort: Arc::new(AtomicBool::new(false)),
        requested_epoch: AtomicU64::new(0),
        committed_epoch: Arc::new(AtomicU64::new(0)),
        wakers: vec![waker.clone()],
    });
    // One driver thread runs every batch through the whole plan; a second
    // writes the checkpoint.
    let mut task_graph = physical.describe(&plan.source_name, &sink.describe());
    if checkpoint.is_some() {
        task_graph.push_str("task 1: commit writer (state files, manifest)\n");
    }
    let info = QueryInfo {
        mode: QueryMode::MicroBatch,
        checkpointed: checkpoint.is_some(),
        task_graph,
    };
    let shared = Arc::new(QueryShared::new(
        query_id,
        config.name.clone(),
        info,
        control.clone(),
    ));

    // Recovery: the last committed batch, and a logged batch to re-run.
    let output_schema = physical.output_schema.clone();
    let key_columns = physical.key_columns.clone();
    let mut runner = BatchRunner::from_physical(physical);
    let mut recovered = match &checkpoint {
        // One partition: every group goes to it.
        Some(ck) => ck.recover(&plan.source_name, 1, |_| 0)?,
        None => Default::default(),
    };
    if let Some(agg) = runner.aggregate.as_mut() {
        // Changes are only needed for the checkpoint's delta files.
        agg.state.set_change_tracking(checkpoint.is_some());
        if let Some(state) = recovered.aggregate.pop() {
            agg.state.replace_groups(state);
        }
        agg.watermark_us = recovered.aggregate_watermark;
    }
    if recovered.manifest.is_some() {
        runner.tracker.max_event_time_us = recovered.max_event_time;
    }
    if let (Some(join), Some(state)) = (runner.join.as_mut(), recovered.join.take()) {
        join.restore(state);
    }
    let committed = recovered.epoch();
    let current = recovered.source_offset.take();
    // Every batch logged after the recovered commit is re-run exactly as
    // logged, in order, from the recovered offsets: normally at most one
    // (the batch a crash interrupted), more when a newer commit was
    // unreadable and recovery fell back to an older one.
    let replay = std::mem::take(&mut recovered.replay);
    let next_batch = committed.map_or(0, |c| c + 1);
    control
        .committed_epoch
        .store(committed.unwrap_or(0), Ordering::SeqCst);

    source.open(
        &SourceContext {
            name: plan.source_name.clone(),
            waker: waker.clone(),
        },
        current.as_ref(),
    )?;
    sink.open(
        &SinkContext {
            schema: output_schema,
            output_mode: config.output_mode,
            key_columns,
            query_id: shared.id.clone(),
            replays_same_rows: true,
            checkpointed: checkpoint.is_some(),
            durable: DurableEpochs::new(control.committed_epoch.clone(), control.abort.clone()),
        },
        recovered.sink_state(),
    )?;
    let name = config.name.clone().unwrap_or_else(|| "query".into());
    let writer = match checkpoint {
        Some(mut ck) => {
            if let (Some(agg), Some((phys, _))) = (&runner.aggregate, &runner.physical.aggregate) {
                ck.seed(phys.op_id, 0, agg.state.copy());
            }
            Some(CommitWriter::start(
                ck,
                shared.clone(),
                control.clone(),
                waker.clone(),
                &name,
            )?)
        }
        None => None,
    };
    let driver = Driver {
        source,
        source_name: plan.source_name.clone(),
        sink,
        source_schema: plan.source_schema.clone(),
        runner,
        writer,
        config,
        control: control.clone(),
        shared: shared.clone(),
        waker: waker.clone(),
        next_batch,
        current,
        replay,
        last_batch_at: Instant::now(),
    };
    let task_shared = shared.clone();
    let handle = thread::Builder::new()
        .name(format!("runnel-{name}-microbatch"))
        .spawn(move || {
            waker.bind_current();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.run()));
            match outcome {
                Ok(Ok(())) | Ok(Err(EngineError::Stopped)) => {}
                Ok(Err(e)) => task_shared.fail(e),
                Err(p) => task_shared.fail(EngineError::Panic(
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "the driver panicked".into()),
                )),
            }
            task_shared.finish();
        })
        .map_err(|e| EngineError::Plan(format!("cannot start a thread: {e}")))?;
    Ok(StreamingQuery::new(shared, vec![handle]))
}

fn ms_since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

impl Driver {
    /// The source's micro-batch side (checked at start).
    fn replayable(&mut self) -> Result<&mut dyn Replayable> {
        let describe = self.source.describe();
        self.source.as_replayable().ok_or_else(|| {
            EngineError::Source(format!("{describe} cannot run in micro-batch mode"))
        })
    }

    fn trigger_interval(&self) -> Option<Duration> {
        match self.config.trigger {
            Trigger::ProcessingTime(d) if !d.is_zero() => Some(d),
            _ => None,
        }
    }

    fn run(mut self) -> Result<()> {
        loop {
            self.collect_commits()?;
            if self.control.stop.load(Ordering::Acquire) {
                break;
            }
            let batch_started = Instant::now();
            let mut durations = BTreeMap::new();
            let (entry, logging) = match self.replay.pop_front() {
                Some(entry) => (entry, false),
                None => {
                    let t = Instant::now();
                    let latest = self.replayable()?.latest_offset()?;
                    durations.insert("latestOffset".to_string(), ms_since(t));
                    if Some(&latest) == self.current.as_ref()
                        || (self.current.is_none() && latest.is_start())
                    {
                        if self.config.trigger == Trigger::AvailableNow
                            || self.replayable()?.is_exhausted()
                        {
                            break;
                        }
                        self.sleep(self.trigger_interval().unwrap_or(IDLE_POLL));
                        continue;
                    }
                    let entry = OffsetLogEntry {
                        version: FORMAT_VERSION,
                        batch_id: self.next_batch,
                        start: self
                            .current
                            .iter()
                            .map(|o| SourceCommit {
                                name: self.source_name.clone(),
                                offset: o.clone(),
                            })
                            .collect(),
                        end: vec![SourceCommit {
                            name: self.source_name.clone(),
                            offset: latest,
                        }],
                        written_at_ms: wall_now_ms(),
                    };
                    // Written while the batch is read and run; awaited
                    // (and the wait timed) before its output reaches the
                    // sink.
                    durations.insert("walCommit".to_string(), 0);
                    if let Some(w) = &self.writer {
                        w.log_batch(entry.clone())?;
                    }
                    (entry, self.writer.is_some())
                }
            };
            self.run_batch(entry, logging, batch_started, durations)?;
            if let Some(interval) = self.trigger_interval() {
                let elapsed = batch_started.elapsed();
                if elapsed < interval {
                    self.sleep(interval - elapsed);
                }
            }
        }
        if let Some(writer) = self.writer.take() {
            for c in writer.finish()? {
                self.committed(c)?;
            }
        }
        self.sink.close()
    }

    /// Takes in the batches the writer made durable since the last look.
    fn collect_commits(&mut self) -> Result<()> {
        let done = match &self.writer {
            Some(w) => w.poll()?,
            None => return Ok(()),
        };
        for c in done {
            self.committed(c)?;
        }
        Ok(())
    }

    /// A batch is durable: the source may let go of what it covers.
    fn committed(&mut self, c: Committed) -> Result<()> {
        if let (Some(buffer), Some(agg)) = (c.buffer, self.runner.aggregate.as_mut()) {
            agg.state.recycle(crate::state::StateSnapshot {
                groups: buffer,
                ..Default::default()
            });
        }
        self.source.commit(&c.end)
    }

    /// Sleeps up to `d`, waking early on a stop request.
    fn sleep(&self, d: Duration) {
        let control = &self.control;
        self.waker
            .park_unless(|| control.stop.load(Ordering::Acquire), d);
    }

    /// Reads and runs the batch `entry` logs, and hands its output to the
    /// sink; `logging`: its offset-log entry is being written (handed to
    /// the writer), to be awaited before the sink sees anything.
    fn run_batch(
        &mut self,
        entry: OffsetLogEntry,
        logging: bool,
        batch_started: Instant,
        mut durations: BTreeMap<String, u64>,
    ) -> Result<()> {
        let batch_id = entry.batch_id;
        let start = entry.start.first().map(|s| s.offset.clone());
        let end = entry.end.first().map(|s| s.offset.clone()).ok_or_else(|| {
            EngineError::Plan(format!("offset log entry {batch_id} names no range"))
        })?;

        // getBatch: exactly the logged range.
        let t = Instant::now();
        let input = self.replayable()?.read_batch(start.as_ref(), &end)?;
        let num_input_rows = input.batch.num_rows() as u64;
        if input.ingest_ns.len() != input.batch.num_rows()
            || input.batch.num_columns() != self.source_schema.fields().len()
        {
            return Err(EngineError::Source(format!(
                "{} read a batch of {} rows in {} columns with {} ingest times; \
                 its schema has {} columns",
                self.source.describe(),
                input.batch.num_rows(),
                input.batch.num_columns(),
                input.ingest_ns.len(),
                self.source_schema.fields().len()
            )));
        }
        durations.insert("getBatch".to_string(), ms_since(t));
        durations.insert("queryPlanning".to_string(), 0);

        // addBatch: run the plan and hand the output to the sink.
        let t = Instant::now();
        let flight = Flight {
            batch: input.batch,
            ingest_ns: input.ingest_ns,
            watermark_us: None,
        };
        let (output, mut latency_ingest) = self.runner.run_flight(flight)?;
        if let Some(w) = self.writer.as_ref().filter(|_| logging) {
            // Exactly-once: the sink sees a batch only once it is logged.
            let t = Instant::now();
            w.wait_logged(batch_id)?;
            durations.insert("walCommit".to_string(), ms_since(t));
        }
        let num_output_rows = output.batch.num_rows() as u64;
        if num_output_rows > 0 {
            self.sink.write_batch(&output.batch)?;
        }
        let sink_state = self.sink.commit(batch_id)?;
        let written = now_ns();
        durations.insert("addBatch".to_string(), ms_since(t));

        // commitOffsets: the aggregation's changes, the manifest.
        let mut inline = Vec::new();
        let mut delta = None;
        let mut join = None;
        if self.writer.is_some() {
            for (op, _) in &self.runner.physical.pre {
                if let PhysOp::Watermark { op_id, .. } = op {
                    inline.push(Checkpointer::watermark(
                        *op_id,
                        0,
                        self.runner.tracker.max_event_time_us,
                    ));
                }
            }
            if let (Some(agg), Some((phys, _))) =
                (&mut self.runner.aggregate, &self.runner.physical.aggregate)
            {
                delta = Some((phys.op_id, agg.state.take_delta(), agg.watermark_us));
            }
            if let Some(state) = &self.runner.join {
                let op_id = self
                    .runner
                    .physical
                    .pre
                    .iter()
                    .find_map(|(op, _)| match op {
                        PhysOp::StreamJoin { op_id, .. } => Some(*op_id),
                        _ => None,
                    });
                join = op_id.map(|op| (op, state.snapshot()));
            }
        }

        // Measured by the writer, which overwrites this, when there is a
        // checkpoint to write.
        durations.insert("commitOffsets".to_string(), 0);
        let trigger_ms = batch_started.elapsed().as_secs_f64() * 1000.0;
        durations.insert("triggerExecution".to_string(), trigger_ms as u64);
        let since_last = self.last_batch_at.elapsed().as_secs_f64().max(1e-9);
        self.last_batch_at = Instant::now();
        let input_rate = num_input_rows as f64 / since_last;
        let processed_rate = num_input_rows as f64 / (trigger_ms / 1000.0).max(1e-9);
        let watermark = self
            .runner
            .aggregate
            .as_ref()
            .map(|a| a.watermark_us)
            .or_else(|| self.runner.join.as_ref().map(|j| j.watermark()))
            .filter(|w| *w != NO_TIME);
        let progress = StreamingQueryProgress {
            id: self.shared.id.clone(),
            run_id: self.shared.run_id.clone(),
            name: self.shared.name.clone(),
            timestamp: format_iso_ms(wall_now_us()),
            batch_id,
            num_input_rows,
            input_rows_per_second: input_rate,
            processed_rows_per_second: processed_rate,
            duration_ms: durations,
            event_time: EventTimeStats {
                watermark: watermark.map(format_iso_ms),
                max: Some(self.runner.tracker.max_event_time_us)
                    .filter(|t| *t != NO_TIME)
                    .map(format_iso_ms),
            },
            state_operators: self
                .runner
                .aggregate
                .as_mut()
                .map(|a| {
                    vec![StateOperatorProgress {
                        operator_name: "stateStoreSave".into(),
                        num_rows_total: a.state.num_groups() as u64,
                        num_rows_updated: std::mem::take(&mut a.rows_updated),
                        num_rows_dropped_by_watermark: std::mem::take(&mut a.rows_dropped_late),
                        num_partitions: 1,
                    }]
                })
                .or_else(|| {
                    self.runner.join.as_mut().map(|j| {
                        vec![StateOperatorProgress {
                            operator_name: "symmetricHashJoin".into(),
                            num_rows_total: j.rows_total(),
                            num_rows_updated: 0,
                            num_rows_dropped_by_watermark: j.take_dropped_late(),
                            num_partitions: 1,
                        }]
                    })
                })
                .unwrap_or_default(),
            sources: vec![SourceProgress {
                description: self.source.describe(),
                start_offset: start.map(|s| s.to_json()).unwrap_or_default(),
                end_offset: end.to_json(),
                num_input_rows,
                input_rows_per_second: input_rate,
                processed_rows_per_second: processed_rate,
                metrics: self.source.metrics().into_iter().collect(),
            }],
            sink: SinkProgress {
                description: self.sink.describe(),
                num_output_rows,
            },
            latency_micros: LatencySummary::of_batch(written, &mut latency_ingest),
            checkpoint_bytes: None,
        };
        match &self.writer {
            Some(writer) => writer.send(BatchCommit {
                batch_id,
                source: SourceCommit {
                    name: self.source_name.clone(),
                    offset: end.clone(),
                },
                inline,
                delta,
                join,
                sink: sink_state,
                progress,
                handed_ns: written,
                ingest_ns: latency_ingest,
            })?,
            None => {
                // Without a checkpoint the batch is as durable as it gets
                // once the sink has committed it.
                self.shared
                    .push_batch_progress(progress, written, now_ns(), &latency_ingest);
                self.source.commit(&end)?;
                self.control
                    .committed_epoch
                    .store(batch_id, Ordering::SeqCst);
            }
        }
        self.current = Some(end);
        self.next_batch = batch_id + 1;
        Ok(())
    }
}
