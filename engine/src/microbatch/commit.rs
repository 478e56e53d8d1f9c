//! The micro-batch commit writer: each batch's state file and manifest are
//! written on a thread of their own, in batch order, while the next batch
//! is read and run.
//!
//! A batch hands over its aggregation's changes, its sink's state (the
//! sink has already committed it) and its progress report; the writer
//! writes them through the checkpoint core, then publishes the batch as
//! durable (committed id, progress, latency to durability) and hands back
//! the change buffer and the batch's end offset, so that the driver tells
//! the source. Batches that queue up while one is written are written
//! together: their changes merged into one state file and only the newest
//! of them given a manifest, so the writer keeps up with the driver however
//! short the batches are (a manifest costs a few fsyncs whatever its
//! size). At most [`QUEUED`] batches wait, so a few batches can be past
//! their sink commit without their manifest. That is safe for
//! exactly-once: every batch is in the offset log before its output reaches
//! the sink, sinks commit idempotently by batch id, and recovery re-runs
//! every logged batch after the newest manifest.
//!
//! A batch's offset-log entry is written on a second thread while the
//! batch is read and run ([`CommitWriter::log_batch`], then
//! [`CommitWriter::wait_logged`] before the sink sees the output): reading
//! a replayable source changes nothing, so the log's fsyncs need not hold
//! the batch up. This module owns the threads and their hand-over; it must
//! not decide what goes into a checkpoint (the checkpoint core does).

use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::checkpoint::{Checkpointer, OffsetLogEntry, OperatorCommit, SourceCommit};
use crate::clock::now_ns;
use crate::error::{EngineError, Result};
use crate::io::SourceOffset;
use crate::metrics::StreamingQueryProgress;
use crate::query::Control;
use crate::query::QueryShared;
use crate::state::{Accumulators, GroupKey, SnapshotGroups, StateSnapshot};
use crate::table::JoinSnapshot;
use crate::wake::TaskWaker;

/// Batches that may wait for the writer (while it writes others): the
/// driver runs at most this many batches ahead of the newest manifest, plus
/// the one being written and the one it runs, which bounds what a restart
/// re-runs (the log sink's replay matching spans 8 commits).
const QUEUED: usize = 2;

/// One batch, ready to be made durable.
pub(crate) struct BatchCommit {
    pub(crate) batch_id: u64,
    pub(crate) source: SourceCommit,
    /// Operators whose state is inline (the watermark).
    pub(crate) inline: Vec<OperatorCommit>,
    /// The aggregation's changes: operator id, delta, watermark.
    pub(crate) delta: Option<(usize, StateSnapshot, i64)>,
    /// A stream-stream join's whole state: operator id, state.
    pub(crate) join: Option<(usize, JoinSnapshot)>,
    pub(crate) sink: serde_json::Value,
    pub(crate) progress: StreamingQueryProgress,
    /// When the batch's output reached the sink.
    pub(crate) handed_ns: u64,
    /// Each output sample's ingest time, for its latency to the sink and
    /// to durability.
    pub(crate) ingest_ns: Vec<u64>,
}

/// A batch the writer made durable.
pub(crate) struct Committed {
    pub(crate) end: SourceOffset,
    /// The delta's emptied buffer, for the aggregation to reuse.
    pub(crate) buffer: Option<SnapshotGroups>,
}

/// The writer threads and their channels.
pub(crate) struct CommitWriter {
    jobs: Option<Sender<BatchCommit>>,
    done: Receiver<Result<Committed>>,
    handle: Option<JoinHandle<()>>,
    /// The offset log's writer: an entry in, its batch id (or the error)
    /// back once it is durable.
    log_jobs: Option<Sender<OffsetLogEntry>>,
    logged: Receiver<Result<u64>>,
    log_handle: Option<JoinHandle<()>>,
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
        let (jobs, rx) = crossbeam_channel::bounded::<BatchCommit>(QUEUED);
        let (done_tx, done) = crossbeam_channel::unbounded();
        let dir = ck.dir().clone();
        let (log_jobs, log_rx) = crossbeam_channel::bounded::<OffsetLogEntry>(1);
        let (logged_tx, logged) = crossbeam_channel::bounded(1);
        let log_handle = thread::Builder::new()
            .name(format!("runnel-{name}-offsets"))
            .spawn(move || {
                while let Ok(entry) = log_rx.recv() {
                    let outcome = dir.write_offset_log(&entry).map(|()| entry.batch_id);
                    let failed = outcome.is_err();
                    if logged_tx.send(outcome).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| EngineError::Plan(format!("cannot start a thread: {e}")))?;
        let handle = thread::Builder::new()
            .name(format!("runnel-{name}-commit"))
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Whatever queued up meanwhile goes in the same write.
                    let mut group = vec![first];
                    group.extend(rx.try_iter());
                    let outcome = write(&mut ck, group, &shared, &control);
                    let failed = outcome.is_err();
                    match outcome {
                        Ok(done) => {
                            for c in done {
                                let _ = done_tx.send(Ok(c));
                            }
                        }
                        Err(e) => {
                            let _ = done_tx.send(Err(e));
                        }
                    }
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
            jobs: Some(jobs),
            done,
            handle: Some(handle),
            log_jobs: Some(log_jobs),
            logged,
            log_handle: Some(log_handle),
        })
    }

    /// Starts writing a batch's offset-log entry durably, on the log's own
    /// thread; [`CommitWriter::wait_logged`] waits for it. One entry at a
    /// time: each is waited for before the next is handed over.
    pub(crate) fn log_batch(&self, entry: OffsetLogEntry) -> Result<()> {
        let jobs = self.log_jobs.as_ref().ok_or_else(log_stopped)?;
        if jobs.send(entry).is_err() {
            // It ended on an error: that error is the one to report.
            return match self.logged.try_recv() {
                Ok(Err(e)) => Err(e),
                _ => Err(log_stopped()),
            };
        }
        Ok(())
    }

    /// Waits until the entry of batch `batch_id` handed to
    /// [`CommitWriter::log_batch`] is durable; the error if writing it
    /// failed.
    pub(crate) fn wait_logged(&self, batch_id: u64) -> Result<()> {
        match self.logged.recv() {
            Ok(Ok(id)) if id == batch_id => Ok(()),
            Ok(Ok(id)) => Err(EngineError::Plan(format!(
                "the offset log wrote batch {id} where batch {batch_id} was awaited"
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(log_stopped()),
        }
    }

    /// Hands a batch over; waits while one is already queued.
    pub(crate) fn send(&self, job: BatchCommit) -> Result<()> {
        let failed = || EngineError::Checkpoint {
            path: Default::default(),
            reason: "the checkpoint writer stopped".into(),
            source: None,
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
        self.stop_threads();
        self.poll()
    }

    /// Lets the threads finish what they have and waits for them.
    fn stop_threads(&mut self) {
        drop(self.log_jobs.take());
        if let Some(h) = self.log_handle.take() {
            let _ = h.join();
        }
        drop(self.jobs.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The offset log's writer thread is gone (it ended on an error that was
/// already reported, or panicked).
fn log_stopped() -> EngineError {
    EngineError::Checkpoint {
        path: Default::default(),
        reason: "the offset log's writer stopped".into(),
        source: None,
    }
}

impl Drop for CommitWriter {
    fn drop(&mut self) {
        // On an error path: let the writer finish what it has and wait for
        // it, so that nothing of this query writes to the checkpoint after
        // the query has ended (a restart in the same process would
        // otherwise race a writer still finishing an old batch).
        self.stop_threads();
    }
}

/// Makes `jobs` (consecutive batches, oldest first) durable with one state
/// file and one manifest, that of the newest.
fn write(
    ck: &mut Checkpointer,
    jobs: Vec<BatchCommit>,
    shared: &QueryShared,
    control: &Control,
) -> Result<Vec<Committed>> {
    let started = Instant::now();
    let mut ends = Vec::with_capacity(jobs.len());
    let mut buffers: Vec<Option<SnapshotGroups>> = Vec::with_capacity(jobs.len());
    let mut reports = Vec::with_capacity(jobs.len());
    let mut merged: Option<(usize, StateSnapshot, i64)> = None;
    let mut newest = None;
    let mut join = None;
    for job in jobs {
        ends.push(job.source.offset.clone());
        // The join's state is written whole: the newest batch's is enough.
        if job.join.is_some() {
            join = job.join;
        }
        match (job.delta, merged.as_mut()) {
            (Some(delta), None) => {
                merged = Some(delta);
                buffers.push(None);
            }
            (Some((_, delta, watermark)), Some((_, into, wm))) => {
                buffers.push(Some(merge_delta(into, delta)));
                *wm = watermark;
            }
            (None, _) => buffers.push(None),
        }
        reports.push((job.progress, job.handed_ns, job.ingest_ns));
        newest = Some((job.batch_id, job.source, job.inline, job.sink));
    }
    let Some((batch_id, source, mut operators, sink)) = newest else {
        return Ok(Vec::new());
    };
    if let Some((op, delta, watermark_us)) = merged {
        let (commit, emptied) = ck.write_changes(batch_id, op, 0, delta, watermark_us)?;
        let emptied = emptied.groups;
        operators.push(commit);
        // The merged buffer goes back as the first batch's (it is its
        // delta's allocation).
        if let Some(slot) = buffers.iter_mut().find(|b| b.is_none()) {
            *slot = Some(emptied);
        }
    }
    if let Some((op, state)) = join {
        operators.push(ck.write_join(batch_id, op, &state)?);
    }
    let state_bytes = ck.take_state_bytes();
    ck.commit(batch_id, vec![source], operators, sink)?;
    control.committed_epoch.store(batch_id, Ordering::SeqCst);
    // The batches are durable now: every row of them has waited this long.
    let durable_ns = now_ns();
    let commit_ms = started.elapsed().as_millis() as u64;
    let mut out = Vec::with_capacity(ends.len());
    let mut first = true;
    for ((end, buffer), (mut progress, handed_ns, ingest_ns)) in
        ends.into_iter().zip(buffers).zip(reports)
    {
        progress
            .duration_ms
            .insert("commitOffsets".to_string(), commit_ms);
        // Every batch of one commit shares its state files: the first
        // carries their size.
        progress.checkpoint_bytes = Some(if first { state_bytes } else { 0 });
        first = false;
        shared.push_batch_progress(progress, handed_ns, durable_ns, &ingest_ns);
        out.push(Committed { end, buffer });
    }
    Ok(out)
}

/// Folds a later delta into an earlier one: the result takes the earlier
/// state to the later one in one step. Returns the later delta's emptied
/// group buffer.
fn merge_delta(into: &mut StateSnapshot, mut later: StateSnapshot) -> SnapshotGroups {
    if later.full {
        // The later file replaces the state: nothing earlier matters.
        let earlier = std::mem::replace(into, later);
        let mut spare = earlier.groups;
        spare.clear();
        return spare;
    }
    // Groups in columns are merged as the others are.
    into.columns_into_groups();
    later.columns_into_groups();
    let StateSnapshot {
        mut groups,
        evicted,
        ..
    } = later;
    // The merged groups are no longer in step with positions: a shadow
    // finds them by key.
    into.positions = Vec::new();
    if !evicted.is_empty() {
        into.groups.retain(|(start, _, _)| !evicted.contains(start));
        into.evicted.extend(evicted);
    }
    // Where each group of `into` is (its last entry, should a group appear
    // twice): positions hashed by window and key, so no key is copied.
    let hasher = FxBuildHasher;
    let hash = |(start, key, _): &(i64, GroupKey, Accumulators)| hasher.hash_one((start, key));
    let mut at: HashTable<usize> = HashTable::with_capacity(into.groups.len() + groups.len());
    for (i, g) in into.groups.iter().enumerate() {
        let same = |&j: &usize| into.groups[j].0 == g.0 && into.groups[j].1 == g.1;
        match at.entry(hash(g), same, |&j| hash(&into.groups[j])) {
            Entry::Occupied(mut o) => *o.get_mut() = i,
            Entry::Vacant(v) => {
                v.insert(i);
            }
        }
    }
    for g in groups.drain(..) {
        let h = hash(&g);
        let found = at
            .find(h, |&j| into.groups[j].0 == g.0 && into.groups[j].1 == g.1)
            .copied();
        match found {
            Some(i) => into.groups[i].2 = g.2,
            None => {
                at.insert_unique(h, into.groups.len(), |&j| hash(&into.groups[j]));
                into.groups.push(g);
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Value;
    use crate::state::{Accumulator, WindowedState};
    use smallvec::smallvec;

    fn delta(full: bool, evicted: Vec<i64>, groups: &[(i64, &str, i64)]) -> StateSnapshot {
        StateSnapshot {
            full,
            groups: groups
                .iter()
                .map(|(w, k, n)| {
                    (
                        *w,
                        smallvec![Value::str(k)],
                        smallvec![Accumulator::Count(*n)],
                    )
                })
                .collect(),
            evicted,
            positions: Vec::new(),
            columns: Default::default(),
        }
    }

    /// Applying the merged delta equals applying the deltas one by one.
    #[test]
    fn a_merged_delta_applies_like_its_parts() {
        let base = delta(true, vec![], &[(1, "a", 1), (1, "b", 1), (2, "a", 1)]);
        let parts = [
            delta(false, vec![], &[(1, "a", 2), (2, "c", 1)]),
            delta(false, vec![1], &[(2, "a", 5), (3, "a", 1)]),
            delta(false, vec![], &[(1, "z", 9), (3, "a", 2)]),
        ];
        let mut stepwise = WindowedState::new();
        stepwise.apply(base.clone()).unwrap();
        for p in &parts {
            stepwise.apply(p.clone()).unwrap();
        }
        let mut merged = parts[0].clone();
        for p in &parts[1..] {
            merge_delta(&mut merged, p.clone());
        }
        let mut at_once = WindowedState::new();
        at_once.apply(base.clone()).unwrap();
        at_once.apply(merged).unwrap();
        assert_eq!(at_once.sorted_groups(), stepwise.sorted_groups());

        // A full file later replaces everything before it.
        let mut merged = parts[0].clone();
        merge_delta(&mut merged, base.clone());
        let mut only_full = WindowedState::new();
        only_full.apply(base).unwrap();
        let mut via_merge = WindowedState::new();
        via_merge
            .apply(delta(true, vec![], &[(9, "x", 1)]))
            .unwrap();
        via_merge.apply(merged).unwrap();
        assert_eq!(via_merge.sorted_groups(), only_full.sorted_groups());
    }
}
