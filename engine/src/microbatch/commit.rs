//! The micro-batch commit writer: each batch's state file and manifest are
//! written on a thread of their own, in batch order, while the next batch
//! is read and run.
//!
//! A batch hands over its aggregation's changes, its sink's state (the
//! sink has already committed it) and its progress report; the writer
//! writes them through the checkpoint core, then publishes the batch as
//! durable (committed id, progress, latency to durability) and hands back
//! the change buffer and the batch's end offset, so that the driver tells
//! the source. One batch is written while the next waits its turn and the
//! driver runs a third: a few batches can be past their sink commit without
//! their manifest. That is safe for exactly-once: every batch is in the offset
//! log before it reads anything, sinks commit idempotently by batch id, and
//! recovery re-runs every logged batch after the newest manifest. This
//! module owns the thread and its hand-over; it must not decide what goes
//! into a checkpoint (the checkpoint core does).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use hdrhistogram::Histogram;

use crate::checkpoint::{Checkpointer, OperatorCommit, SourceCommit};
use crate::clock::now_ns;
use crate::continuous::{Control, TaskWaker};
use crate::error::{EngineError, Result};
use crate::io::SourceOffset;
use crate::metrics::{new_latency_histogram, StreamingQueryProgress};
use crate::query::QueryShared;
use crate::state::{SnapshotGroups, StateSnapshot};

/// One batch, ready to be made durable.
pub(crate) struct BatchCommit {
    pub(crate) batch_id: u64,
    pub(crate) source: SourceCommit,
    /// Operators whose state is inline (the watermark).
    pub(crate) inline: Vec<OperatorCommit>,
    /// The aggregation's changes: operator id, delta, watermark.
    pub(crate) delta: Option<(usize, StateSnapshot, i64)>,
    pub(crate) sink: serde_json::Value,
    pub(crate) progress: StreamingQueryProgress,
    pub(crate) latency: Histogram<u64>,
    /// Each output sample's ingest time, for the latency to durability.
    pub(crate) ingest_ns: Vec<u64>,
}

/// A batch the writer made durable.
pub(crate) struct Committed {
    pub(crate) end: SourceOffset,
    /// The delta's emptied buffer, for the aggregation to reuse.
    pub(crate) buffer: Option<SnapshotGroups>,
}

/// The writer thread and its two channels.
pub(crate) struct CommitWriter {
    /// The checkpoint directory, for the offset log.
    dir: crate::checkpoint::CheckpointDir,
    jobs: Option<Sender<BatchCommit>>,
    done: Receiver<Result<Committed>>,
    handle: Option<JoinHandle<()>>,
}

impl CommitWriter {
    /// Starts the writer of `ck` for the query `shared`; `waker` is the
    /// driver's, woken if writing fails.
    pub(crate) fn start(
        mut ck: Checkpointer,
        shared: Arc<QueryShared>,
        control: Arc<Control>,
        waker: Arc<TaskWaker>,
        name: &str,
    ) -> Result<CommitWriter> {
        // One batch queued while one is written: the driver runs at most
        // one batch ahead of its last durable one.
        let (jobs, rx) = crossbeam_channel::bounded::<BatchCommit>(1);
        let (done_tx, done) = crossbeam_channel::unbounded();
        let dir = ck.dir().clone();
        let handle = thread::Builder::new()
            .name(format!("runnel-{name}-commit"))
            .spawn(move || {
                for job in rx {
                    let outcome = write(&mut ck, job, &shared, &control);
                    let failed = outcome.is_err();
                    let _ = done_tx.send(outcome);
                    if failed {
                        // The driver looks at the next batch boundary; wake
                        // it in case it is waiting for input. (A success
                        // does not wake it: that would cut a trigger
                        // interval short.)
                        waker.wake();
                        return;
                    }
                }
            })
            .map_err(|e| EngineError::Plan(format!("cannot start a thread: {e}")))?;
        Ok(CommitWriter {
            dir,
            jobs: Some(jobs),
            done,
            handle: Some(handle),
        })
    }

    /// Writes a batch's offset-log entry durably (on the caller's thread:
    /// the batch must not read before it is logged).
    pub(crate) fn log_batch(&self, entry: &crate::checkpoint::OffsetLogEntry) -> Result<()> {
        self.dir.write_offset_log(entry)
    }

    /// Hands a batch over; waits while one is already queued.
    pub(crate) fn send(&self, job: BatchCommit) -> Result<()> {
        let failed = || EngineError::Checkpoint {
            path: Default::default(),
            reason: "the checkpoint writer stopped".into(),
        };
        let sent = self.jobs.as_ref().ok_or_else(failed)?.send(job);
        if sent.is_err() {
            // The writer ended on an error: that error is the one to report.
            self.poll()?;
            return Err(failed());
        }
        Ok(())
    }

    /// The batches made durable since the last call (an error if writing
    /// one failed).
    pub(crate) fn poll(&self) -> Result<Vec<Committed>> {
        let mut out = Vec::new();
        loop {
            match self.done.try_recv() {
                Ok(c) => out.push(c?),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(out),
            }
        }
    }

    /// Waits until every batch handed over is durable.
    pub(crate) fn finish(mut self) -> Result<Vec<Committed>> {
        drop(self.jobs.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.poll()
    }
}

impl Drop for CommitWriter {
    fn drop(&mut self) {
        // On an error path: let the writer finish what it has and end.
        drop(self.jobs.take());
    }
}

fn write(
    ck: &mut Checkpointer,
    job: BatchCommit,
    shared: &QueryShared,
    control: &Control,
) -> Result<Committed> {
    let started = Instant::now();
    let mut operators = job.inline;
    let mut buffer = None;
    if let Some((op, delta, watermark_us)) = job.delta {
        let (commit, emptied) = ck.write_changes(job.batch_id, op, 0, delta, watermark_us)?;
        operators.push(commit);
        buffer = Some(emptied);
    }
    let end = job.source.offset.clone();
    ck.commit(job.batch_id, vec![job.source], operators, job.sink)?;
    control
        .committed_epoch
        .store(job.batch_id, Ordering::SeqCst);
    // The batch is durable now: every row of it has waited this long.
    let durable_ns = now_ns();
    let mut durable = new_latency_histogram();
    for ingest in &job.ingest_ns {
        durable.saturating_record(durable_ns.saturating_sub(*ingest).max(1));
    }
    let mut progress = job.progress;
    progress.duration_ms.insert(
        "commitOffsets".to_string(),
        started.elapsed().as_millis() as u64,
    );
    shared.push_progress(progress, &job.latency, &durable);
    Ok(Committed { end, buffer })
}
