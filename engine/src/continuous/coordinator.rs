//! The epoch coordinator: ticks, collects, checkpoints, reports.
//!
//! One thread per query. Every `epoch_interval` it asks the sources to mark
//! the next epoch. For each epoch it collects the source's offset, every
//! stateful operator's snapshot and the sink's acknowledgement; operator
//! snapshots (a delta, or every group when a full file is due: the task's
//! state decides, so no copy of it is kept here) are encoded and written
//! out here, so serialisation and file I/O never run on a task's hot path. When an epoch
//! has all its parts its manifest is written atomically: the epoch is durable.
//! Then the sources are told, progress is published, and old epochs purged.
//! The checkpoint's long loops are paced ([`crate::pace`]): on a machine
//! whose CPUs all run spinning tasks, this thread takes one of them for a
//! slice at a time, not for an epoch's whole work.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::checkpoint::{
    Checkpointer, CoordMsg, OperatorCommit, OperatorSnapshot, ReportInbox, SourceCommit,
};
use crate::clock::now_ns;
use crate::clock::wall_now_us;
use crate::error::{EngineError, Result};
use crate::io::SourceOffset;
use crate::metrics::{
    EpochLatency, IngestTimes, SinkProgress, SourceProgress, StateOperatorProgress,
    StreamingQueryProgress,
};
use crate::pace::{self, Pacing};
use crate::query::Control;
use crate::query::QueryShared;
use crate::schema::NO_TIME;
use crate::time::format_iso_ms;

/// What the source reported for an epoch.
#[derive(Default)]
struct SourcePart {
    offset: SourceOffset,
    rows: u64,
    metrics: Vec<(String, u64)>,
}

#[derive(Default)]
struct EpochParts {
    source: Option<SourcePart>,
    operators: Vec<OperatorCommit>,
    snapshots: usize,
    watermark_us: Option<i64>,
    max_event_time_us: Option<i64>,
    state_rows_total: u64,
    state_rows_updated: u64,
    state_rows_dropped: u64,
    sink: Option<(serde_json::Value, u64, EpochLatency, IngestTimes)>,
}

/// Everything the coordinator needs to know about the query it runs.
pub(crate) struct CoordinatorSetup {
    pub(crate) rx: ReportInbox,
    pub(crate) spare_histograms: Sender<(EpochLatency, IngestTimes)>,
    /// Emptied snapshot buffers handed back to the aggregation tasks, one
    /// channel per partition.
    pub(crate) spare_state_buffers: Vec<Sender<crate::state::StateSnapshot>>,
    pub(crate) control: Arc<Control>,
    pub(crate) shared: Arc<QueryShared>,
    pub(crate) checkpoint: Option<Checkpointer>,
    pub(crate) epoch_interval: Duration,
    /// How the checkpoint's work is spread out (`None`: in one go).
    pub(crate) pacing: Option<Pacing>,
    pub(crate) tasks: usize,
    pub(crate) expected_snapshots: usize,
    pub(crate) aggregate_partitions: usize,
    /// Whether the query has a stream-stream join (reported as a state
    /// operator).
    pub(crate) stream_join: bool,
    pub(crate) source_name: String,
    pub(crate) source_description: String,
    pub(crate) sink_description: String,
    pub(crate) start_epoch: u64,
    pub(crate) start_offset: SourceOffset,
    /// The source task's waker, to wake it for a new epoch.
    pub(crate) source_waker: Arc<super::TaskWaker>,
}

/// Runs the coordinator until every task has exited.
pub(crate) fn run(setup: CoordinatorSetup) {
    let mut c = Coordinator {
        pending: BTreeMap::new(),
        final_epoch: None,
        last_committed: setup.start_epoch - 1,
        last_commit_at: Instant::now(),
        last_offset: setup.start_offset.clone(),
        tasks_alive: setup.tasks,
        setup,
    };
    c.run();
}

struct Coordinator {
    setup: CoordinatorSetup,
    pending: BTreeMap<u64, EpochParts>,
    final_epoch: Option<u64>,
    last_committed: u64,
    last_commit_at: Instant,
    last_offset: SourceOffset,
    tasks_alive: usize,
}

/// Epochs allowed in flight before ticks pause (a stalled sink must not make
/// markers pile up without bound).
const MAX_EPOCHS_IN_FLIGHT: u64 = 16;

impl Coordinator {
    fn run(&mut self) {
        let interval = self.setup.epoch_interval;
        if let Some(pacing) = self.setup.pacing {
            pacing.enable(interval / 4);
        }
        let mut next_tick = Instant::now() + interval;
        while self.tasks_alive > 0 {
            match self.setup.rx.recv_until(next_tick) {
                Ok(msg) => {
                    pace::begin();
                    if let Err(e) = self.handle(msg) {
                        self.setup.shared.fail(e);
                        self.setup.control.abort();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    next_tick += interval;
                    if next_tick < Instant::now() {
                        next_tick = Instant::now() + interval;
                    }
                    self.tick();
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if !self.setup.control.aborted() {
            if let Some(f) = self.final_epoch {
                if self.last_committed < f {
                    self.setup.shared.fail(EngineError::Checkpoint {
                        path: Default::default(),
                        reason: format!("the final epoch {f} did not complete"),
                        source: None,
                    });
                }
            }
        }
        self.setup.shared.finish();
    }

    fn tick(&self) {
        let ctl = &self.setup.control;
        if self.final_epoch.is_some() || ctl.aborted() {
            return;
        }
        let requested = ctl.requested_epoch.load(Ordering::Acquire);
        if requested.saturating_sub(self.last_committed) >= MAX_EPOCHS_IN_FLIGHT {
            return;
        }
        ctl.requested_epoch.store(requested + 1, Ordering::Release);
        self.setup.source_waker.wake();
    }

    fn handle(&mut self, msg: CoordMsg) -> Result<()> {
        match msg {
            CoordMsg::TaskExited { error } => {
                self.tasks_alive -= 1;
                if let Some(e) = error {
                    self.setup.shared.fail(e);
                    self.setup.control.abort();
                }
                return Ok(());
            }
            CoordMsg::SourceMarked {
                epoch,
                offset,
                rows,
                is_final,
                metrics,
            } => {
                if is_final {
                    self.final_epoch = Some(epoch);
                }
                self.pending.entry(epoch).or_default().source = Some(SourcePart {
                    offset,
                    rows,
                    metrics,
                });
            }
            CoordMsg::Snapshot {
                epoch,
                op_id,
                partition,
                snapshot,
            } => self.take_snapshot(epoch, op_id, partition, snapshot)?,
            CoordMsg::SinkCommitted {
                epoch,
                state,
                rows,
                latency,
                ingest,
            } => {
                self.pending.entry(epoch).or_default().sink = Some((state, rows, latency, ingest));
            }
        }
        self.complete_ready()
    }

    fn take_snapshot(
        &mut self,
        epoch: u64,
        op_id: usize,
        partition: usize,
        snapshot: OperatorSnapshot,
    ) -> Result<()> {
        let parts = self.pending.entry(epoch).or_default();
        parts.snapshots += 1;
        match snapshot {
            OperatorSnapshot::Watermark {
                max_event_time_us,
                watermark_us,
            } => {
                parts.watermark_us = Some(watermark_us);
                parts.max_event_time_us = Some(max_event_time_us);
                parts
                    .operators
                    .push(Checkpointer::watermark(op_id, partition, max_event_time_us));
            }
            OperatorSnapshot::Aggregate {
                delta,
                watermark_us,
                rows_total,
                rows_updated,
                rows_dropped_late,
            } => {
                parts.state_rows_total += rows_total;
                parts.state_rows_updated += rows_updated;
                parts.state_rows_dropped += rows_dropped_late;
                if let Some(ck) = &mut self.setup.checkpoint {
                    let (commit, buffer) =
                        ck.write_changes(epoch, op_id, partition, delta, watermark_us)?;
                    if let Some(back) = self.setup.spare_state_buffers.get(partition) {
                        let _ = back.try_send(buffer);
                    }
                    parts.operators.push(commit);
                }
            }
            OperatorSnapshot::StreamJoin {
                state,
                watermark_us,
                rows_total,
                rows_dropped_late,
            } => {
                parts.state_rows_total += rows_total;
                parts.state_rows_dropped += rows_dropped_late;
                parts.watermark_us = Some(watermark_us);
                if let (Some(ck), Some(state)) = (&mut self.setup.checkpoint, state) {
                    parts.operators.push(ck.write_join(epoch, op_id, &state)?);
                }
            }
        }
        Ok(())
    }

    fn complete_ready(&mut self) -> Result<()> {
        loop {
            let Some((&epoch, parts)) = self.pending.first_key_value() else {
                return Ok(());
            };
            let ready = parts.source.is_some()
                && parts.sink.is_some()
                && parts.snapshots >= self.setup.expected_snapshots;
            if !ready {
                return Ok(());
            }
            let parts = self.pending.remove(&epoch).unwrap_or_default();
            self.commit(epoch, parts)?;
        }
    }

    fn commit(&mut self, epoch: u64, parts: EpochParts) -> Result<()> {
        let SourcePart {
            offset,
            rows: rows_in,
            metrics,
        } = parts.source.unwrap_or_default();
        let (sink_state, rows_out, mut latency, mut ingest) = parts
            .sink
            .expect("commit is only called with the sink's acknowledgement");
        let wal_started = Instant::now();
        let mut checkpoint_bytes = None;
        if let Some(ck) = &mut self.setup.checkpoint {
            checkpoint_bytes = Some(ck.take_state_bytes());
            ck.write_commit(
                epoch,
                vec![SourceCommit {
                    name: self.setup.source_name.clone(),
                    offset: offset.clone(),
                }],
                parts.operators,
                sink_state,
            )?;
        }
        let wal_ms = wal_started.elapsed().as_millis() as u64;
        // The epoch is durable now: every row of it has waited this long.
        let durable_ns = now_ns();
        self.last_committed = epoch;
        self.setup
            .control
            .committed_epoch
            .store(epoch, Ordering::Release);
        self.setup.source_waker.wake();
        // Old epochs go once this one is published (a sink waiting for it
        // does not wait for the purge).
        if let Some(ck) = &mut self.setup.checkpoint {
            ck.purge_if_due();
        }

        let elapsed = self.last_commit_at.elapsed().as_secs_f64().max(1e-9);
        self.last_commit_at = Instant::now();
        let rate = rows_in as f64 / elapsed;
        let iso = |us: Option<i64>| us.filter(|t| *t != NO_TIME).map(format_iso_ms);
        let mut duration_ms = BTreeMap::new();
        duration_ms.insert("triggerExecution".to_string(), (elapsed * 1000.0) as u64);
        duration_ms.insert("walCommit".to_string(), wal_ms);
        let state_operators = if self.setup.stream_join {
            vec![StateOperatorProgress {
                operator_name: "symmetricHashJoin".into(),
                num_rows_total: parts.state_rows_total,
                num_rows_updated: 0,
                num_rows_dropped_by_watermark: parts.state_rows_dropped,
                num_partitions: 1,
            }]
        } else if self.setup.aggregate_partitions > 0 {
            vec![StateOperatorProgress {
                operator_name: "stateStoreSave".into(),
                num_rows_total: parts.state_rows_total,
                num_rows_updated: parts.state_rows_updated,
                num_rows_dropped_by_watermark: parts.state_rows_dropped,
                num_partitions: self.setup.aggregate_partitions as u64,
            }]
        } else {
            Vec::new()
        };
        let progress = StreamingQueryProgress {
            id: self.setup.shared.id.clone(),
            run_id: self.setup.shared.run_id.clone(),
            name: self.setup.shared.name.clone(),
            timestamp: format_iso_ms(wall_now_us()),
            batch_id: epoch,
            num_input_rows: rows_in,
            input_rows_per_second: rate,
            processed_rows_per_second: rate,
            duration_ms,
            event_time: crate::metrics::EventTimeStats {
                watermark: iso(parts.watermark_us),
                max: iso(parts.max_event_time_us),
            },
            state_operators,
            sources: vec![SourceProgress {
                description: self.setup.source_description.clone(),
                start_offset: self.last_offset.to_json(),
                end_offset: offset.to_json(),
                num_input_rows: rows_in,
                input_rows_per_second: rate,
                processed_rows_per_second: rate,
                metrics: metrics.into_iter().collect(),
            }],
            sink: SinkProgress {
                description: self.setup.sink_description.clone(),
                num_output_rows: rows_out,
            },
            latency_micros: latency.summary(),
            checkpoint_bytes,
        };
        self.last_offset = offset;
        self.setup
            .shared
            .push_progress(progress, &latency, &ingest, durable_ns);
        // Emptied here, off the sink's task: it only sets the next base.
        latency.clear();
        ingest.clear();
        let _ = self.setup.spare_histograms.try_send((latency, ingest));
        Ok(())
    }
}
