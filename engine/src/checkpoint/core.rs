//! The checkpoint protocol both runtimes share: recovery, state files and
//! the commit of an epoch (continuous) or a batch (micro-batch).
//!
//! [`Checkpointer`] owns everything that decides whether data survives:
//! choosing the newest readable manifest and the offsets to resume from,
//! the logged batches to re-run, reading state chains and routing groups to
//! this run's partitions, writing full or delta state files, writing the
//! manifest, and retention. The runtimes keep only what differs: when an
//! epoch ends (markers or batch boundaries) and how state reaches the
//! writer. It must not know about tasks, rings or batches of rows.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use super::chain::{state_epoch, StateChain, StateFloors};
use super::state_file::{AggregateStateFile, WatermarkState};
use super::{
    CheckpointDir, EpochManifest, LocalStorage, OffsetLogEntry, OperatorCommit, QueryMetadata,
    SourceCommit, Storage, FORMAT_VERSION,
};
use crate::error::{EngineError, Result};
use crate::io::SourceOffset;
use crate::schema::NO_TIME;
use crate::state::{GroupKey, StateSnapshot, WindowedState};
use crate::table::JoinSnapshot;

/// How a join's state file is named (`join-<operator>.bin`).
const JOIN_FILE_PREFIX: &str = "join-";

/// A snapshot holding nothing but `groups`' room, handed back for reuse.
fn emptied(mut groups: crate::state::SnapshotGroups) -> StateSnapshot {
    groups.clear();
    StateSnapshot {
        groups,
        ..StateSnapshot::default()
    }
}

/// A delta the checkpoint's shadow of aggregation `op` cannot take: the
/// aggregation handed over groups of two shapes, which it never builds.
fn shadow_error(root: &Path, op: usize, e: crate::state::ShapeMismatch) -> EngineError {
    EngineError::checkpoint(
        root,
        format!("operator {op}'s state delta does not fit the checkpoint's copy: {e}"),
    )
}

/// Whether a state file a manifest names holds a join's state.
fn is_join_file(rel: &str) -> bool {
    super::chain::state_name(rel).is_some_and(|name| name.starts_with(JOIN_FILE_PREFIX))
}

/// What recovery found: where to resume and the state to resume with. The
/// default is a fresh start: no manifest, no state, and no watermark or
/// event time yet (`NO_TIME`; a watermark of 0 would keep every window that
/// ends at or before the Unix epoch from ever closing).
#[derive(Debug)]
pub struct Recovery {
    /// The manifest recovered from (`None`: a fresh start).
    pub manifest: Option<EpochManifest>,
    /// The source's offset in it.
    pub source_offset: Option<SourceOffset>,
    /// Aggregation state, one per partition of this run.
    pub aggregate: Vec<WindowedState>,
    /// The aggregation's watermark (`NO_TIME` if none).
    pub aggregate_watermark: i64,
    /// The largest event time the watermark operator had seen.
    pub max_event_time: i64,
    /// Batches logged after the manifest, to re-run exactly as logged
    /// (micro-batch; always empty in continuous mode, which logs none).
    pub replay: VecDeque<OffsetLogEntry>,
    /// A stream-stream join's state.
    pub(crate) join: Option<JoinSnapshot>,
}

impl Default for Recovery {
    fn default() -> Recovery {
        Recovery {
            manifest: None,
            source_offset: None,
            aggregate: Vec::new(),
            aggregate_watermark: NO_TIME,
            max_event_time: NO_TIME,
            replay: VecDeque::new(),
            join: None,
        }
    }
}

impl Recovery {
    /// The recovered epoch or batch id.
    pub fn epoch(&self) -> Option<u64> {
        self.manifest.as_ref().map(|m| m.epoch)
    }

    /// The sink's state in the recovered manifest.
    pub fn sink_state(&self) -> Option<&serde_json::Value> {
        self.manifest.as_ref().map(|m| &m.sink)
    }
}

/// One query's checkpoint (see the module docs).
#[derive(Debug)]
pub struct Checkpointer {
    dir: CheckpointDir,
    chains: HashMap<(usize, usize), StateChain>,
    /// Per (operator, partition): the state as of the last file written,
    /// kept here so that the task owning the state only hands over its
    /// changes and never serialises or writes.
    shadows: HashMap<(usize, usize), WindowedState>,
    floors: StateFloors,
    retain: usize,
    /// Manifests committed since the last purge (see
    /// [`Checkpointer::commit`]).
    unpurged: usize,
    /// The oldest epoch whose state files a retained manifest may name, as
    /// of the last manifest written (what the next purge keeps).
    state_from: u64,
    /// Bytes of state files written since the last
    /// [`Checkpointer::take_state_bytes`].
    state_bytes: u64,
    /// The buffer state files are encoded into, kept from one to the next:
    /// a fresh multi-megabyte buffer per full file is memory the kernel
    /// must back page by page.
    encoded: Vec<u8>,
}

impl Checkpointer {
    /// Opens the checkpoint at `root` on `storage` (the local file system
    /// when `None`), keeping the newest `retain` manifests on commit.
    pub fn open(
        root: &Path,
        storage: Option<Arc<dyn Storage>>,
        retain: usize,
    ) -> Result<(Checkpointer, QueryMetadata)> {
        let storage = storage.unwrap_or_else(|| Arc::new(LocalStorage));
        let (dir, meta) = CheckpointDir::open_on(root, storage)?;
        let floors = StateFloors::from_checkpoint(&dir)?;
        Ok((
            Checkpointer {
                dir,
                chains: HashMap::new(),
                shadows: HashMap::new(),
                floors,
                retain,
                unpurged: 0,
                state_from: 0,
                state_bytes: 0,
                encoded: Vec::new(),
            },
            meta,
        ))
    }

    /// The directory.
    pub fn dir(&self) -> &CheckpointDir {
        &self.dir
    }

    /// Recovers from the newest readable manifest: the offset of source
    /// `source_name`, aggregation state routed to `partitions` partitions by
    /// `route` (the parallelism may differ from the run that wrote it), and
    /// the batches logged after it. A damaged newer manifest is skipped
    /// (named in a warning): the older one and the logged batches after it
    /// lose nothing. A damaged state or offset-log file is an error naming
    /// it; wrong state is never restored.
    pub fn recover(
        &self,
        source_name: &str,
        partitions: usize,
        route: impl Fn(&GroupKey) -> usize,
    ) -> Result<Recovery> {
        let partitions = partitions.max(1);
        let mut rec = Recovery {
            aggregate: (0..partitions).map(|_| WindowedState::new()).collect(),
            aggregate_watermark: NO_TIME,
            max_event_time: NO_TIME,
            ..Recovery::default()
        };
        let (manifest, skipped) = self.dir.latest_manifest()?;
        for e in &skipped {
            tracing::warn!("recovering from an older manifest: {e}");
        }
        let committed = manifest.as_ref().map(|m| m.epoch);
        if let Some(m) = &manifest {
            for op in &m.operators {
                if let Some(file) = op.file.as_ref().filter(|f| is_join_file(f)) {
                    let bytes = self.dir.read_state(file)?;
                    let path = self.dir.root().join(file);
                    rec.join = Some(super::join_file::decode(&path, &bytes)?);
                } else if let Some(file) = &op.file {
                    let (written, watermark_us) = self.read_state_chain(file, &op.deltas)?;
                    rec.aggregate_watermark = rec.aggregate_watermark.max(watermark_us);
                    if partitions == 1 && rec.aggregate[0].num_groups() == 0 {
                        // Nothing to route: the state as read is the state.
                        rec.aggregate[0] = written;
                        continue;
                    }
                    let mut per_partition: Vec<StateSnapshot> =
                        (0..partitions).map(|_| StateSnapshot::default()).collect();
                    for group in written.snapshot().groups {
                        let p = if partitions == 1 { 0 } else { route(&group.1) };
                        per_partition[p.min(partitions - 1)].groups.push(group);
                    }
                    for (p, snap) in per_partition.into_iter().enumerate() {
                        rec.aggregate[p].apply(snap).map_err(|e| {
                            EngineError::checkpoint(
                                self.dir.root().join(file),
                                format!("the state is not one aggregation's: {e}"),
                            )
                        })?;
                    }
                } else if !op.inline.is_null() {
                    let w: WatermarkState =
                        serde_json::from_value(op.inline.clone()).map_err(|e| {
                            EngineError::checkpoint(
                                self.dir.manifest_path(m.epoch),
                                format!("operator {}'s state is unreadable: {e}", op.operator),
                            )
                        })?;
                    rec.max_event_time = rec.max_event_time.max(w.max_event_time_us);
                }
            }
            rec.source_offset = m
                .sources
                .iter()
                .find(|s| s.name == source_name)
                .map(|s| s.offset.clone());
            tracing::info!(
                epoch = m.epoch,
                checkpoint = %self.dir.root().display(),
                "recovering from the last durable epoch"
            );
        }
        rec.replay = self.dir.offset_log_after(committed)?.into();
        if let Some(first) = rec.replay.front() {
            let logged_start = first.start.first().map(|s| &s.offset);
            if logged_start != rec.source_offset.as_ref() {
                let show = |o: Option<&SourceOffset>| {
                    o.map_or("the beginning".to_string(), |o| o.to_string())
                };
                return Err(EngineError::checkpoint(
                    self.dir.offset_entry_path(first.batch_id),
                    format!(
                        "batch {} was logged to start at {} but the last committed batch ended at {}",
                        first.batch_id,
                        show(logged_start),
                        show(rec.source_offset.as_ref()),
                    ),
                ));
            }
        }
        for r in &rec.replay {
            tracing::info!(
                batch = r.batch_id,
                "re-running a logged batch that did not commit"
            );
        }
        rec.manifest = manifest;
        Ok(rec)
    }

    /// Reads a partition's state as a manifest names it: the full file,
    /// then each delta in order. Returns it with the watermark of the
    /// newest file.
    fn read_state_chain(&self, file: &str, deltas: &[String]) -> Result<(WindowedState, i64)> {
        let mut state = WindowedState::new();
        let mut watermark_us = NO_TIME;
        for rel in std::iter::once(file).chain(deltas.iter().map(String::as_str)) {
            let bytes = self.dir.read_state(rel)?;
            let path = self.dir.root().join(rel);
            watermark_us = AggregateStateFile::restore_into(&path, &bytes, &mut state)?;
        }
        Ok((state, watermark_us))
    }

    /// Whether partition `partition` of aggregation `op` should write its
    /// whole state next (rather than the `changes` since the last file),
    /// given that the state holds `groups` groups.
    fn wants_full(&self, op: usize, partition: usize, changes: usize, groups: usize) -> bool {
        self.chains
            .get(&(op, partition))
            .is_none_or(|c| c.wants_full(changes, groups))
    }

    /// Starts aggregation `op`'s partition from `shadow`, a copy of what
    /// recovery restored for it ([`WindowedState::copy`]; the query keeps
    /// the original): the deltas handed to [`Checkpointer::write_changes`]
    /// apply on top of it, and its full files are written from it. For a
    /// partition whose state takes its own full snapshots when they are due
    /// ([`WindowedState::begin_snapshot`]), there is no shadow: nothing is
    /// seeded, and the checkpoint keeps no copy of its state.
    pub fn seed(&mut self, op: usize, partition: usize, shadow: WindowedState) {
        self.shadows.insert((op, partition), shadow);
    }

    /// Writes aggregation `op`'s partition for `epoch` from `delta`: a full
    /// snapshot as the full file; a delta as a delta file, or, for a
    /// partition with a shadow ([`Checkpointer::seed`]), as the whole state
    /// once the deltas since the last full file add up to its size. Returns
    /// what the manifest names and the snapshot's emptied group buffer, for
    /// the partition to reuse.
    pub fn write_changes(
        &mut self,
        epoch: u64,
        op: usize,
        partition: usize,
        delta: StateSnapshot,
        watermark_us: i64,
    ) -> Result<(OperatorCommit, StateSnapshot)> {
        let changes = delta.num_groups() + delta.evicted.len();
        let key = (op, partition);
        let Some(groups) = self.shadows.get(&key).map(WindowedState::num_groups) else {
            // The partition's own snapshots: written as they come.
            if !delta.full && !self.chains.get(&key).is_some_and(StateChain::has_base) {
                return Err(EngineError::checkpoint(
                    self.dir.root(),
                    format!(
                        "aggregation {op}, partition {partition}: a delta came before any \
                         full state file it could apply to (epoch {epoch}); nothing is written"
                    ),
                ));
            }
            let full = delta.full;
            let mut file = AggregateStateFile {
                watermark_us,
                state: delta,
            };
            let payload = file.encode_into(std::mem::take(&mut self.encoded))?;
            let commit = self.write_encoded(epoch, op, partition, payload, full, changes)?;
            // Made ready here for the task's next snapshot of this kind.
            file.state.make_room();
            return Ok((commit, file.state));
        };
        if delta.full || self.wants_full(op, partition, changes, groups) {
            let shadow = self.shadows.entry(key).or_default();
            let buffer = shadow
                .apply_returning_buffer(delta)
                .map_err(|e| shadow_error(self.dir.root(), op, e))?;
            // Encoded from the shadow in place: no copy of every group.
            let payload = AggregateStateFile::encode_full_into(
                watermark_us,
                shadow,
                std::mem::take(&mut self.encoded),
            )?;
            let commit = self.write_encoded(epoch, op, partition, payload, true, changes)?;
            Ok((commit, emptied(buffer)))
        } else {
            let file = AggregateStateFile {
                watermark_us,
                state: delta,
            };
            let payload = file.encode_into(std::mem::take(&mut self.encoded))?;
            let commit = self.write_encoded(epoch, op, partition, payload, false, changes)?;
            let shadow = self.shadows.entry(key).or_default();
            let buffer = shadow
                .apply_returning_buffer(file.state)
                .map_err(|e| shadow_error(self.dir.root(), op, e))?;
            Ok((commit, emptied(buffer)))
        }
    }

    /// Writes a state file of aggregation `op`'s partition for `epoch`: the
    /// whole state if `full`, else the `changes` since the last one, and
    /// records it in the partition's chain. Returns what the manifest
    /// names. ([`Checkpointer::write_changes`] decides which; this is the
    /// step below it.)
    pub fn write_aggregate(
        &mut self,
        epoch: u64,
        op: usize,
        partition: usize,
        file: &AggregateStateFile,
        full: bool,
        changes: usize,
    ) -> Result<OperatorCommit> {
        let payload = file.encode_into(std::mem::take(&mut self.encoded))?;
        self.write_encoded(epoch, op, partition, payload, full, changes)
    }

    /// [`Checkpointer::write_aggregate`] of a file already encoded into the
    /// checkpointer's buffer, which it keeps again for the next file.
    fn write_encoded(
        &mut self,
        epoch: u64,
        op: usize,
        partition: usize,
        payload: Vec<u8>,
        full: bool,
        changes: usize,
    ) -> Result<OperatorCommit> {
        let name = if full {
            format!("aggregate-{op}-{partition}.bin")
        } else {
            format!("aggregate-{op}-{partition}.delta.bin")
        };
        self.state_bytes += payload.len() as u64;
        let written = self.dir.write_state(epoch, &name, &payload);
        self.encoded = payload;
        let rel = written?;
        let chain = self.chains.entry((op, partition)).or_default();
        if full {
            chain.record_full(rel, epoch);
        } else {
            chain.record_delta(rel, changes);
        }
        let (file, deltas) = chain.files();
        Ok(OperatorCommit {
            operator: op,
            partition,
            file,
            deltas,
            inline: serde_json::Value::Null,
        })
    }

    /// Bytes of state files written since the last call (the size of what
    /// an epoch or batch added to the checkpoint, manifests aside).
    pub fn take_state_bytes(&mut self) -> u64 {
        std::mem::take(&mut self.state_bytes)
    }

    /// Writes stream-stream join `op`'s whole state for `epoch`; returns
    /// what the manifest names.
    pub(crate) fn write_join(
        &mut self,
        epoch: u64,
        op: usize,
        state: &JoinSnapshot,
    ) -> Result<OperatorCommit> {
        let payload = super::join_file::encode(state)?;
        let rel = self
            .dir
            .write_state(epoch, &format!("{JOIN_FILE_PREFIX}{op}.bin"), &payload)?;
        self.state_bytes += payload.len() as u64;
        Ok(OperatorCommit {
            operator: op,
            partition: 0,
            file: Some(rel),
            deltas: Vec::new(),
            inline: serde_json::Value::Null,
        })
    }

    /// The watermark operator `op`'s entry in a manifest.
    pub fn watermark(op: usize, partition: usize, max_event_time_us: i64) -> OperatorCommit {
        OperatorCommit {
            operator: op,
            partition,
            file: None,
            deltas: Vec::new(),
            inline: serde_json::to_value(WatermarkState { max_event_time_us }).unwrap_or_default(),
        }
    }

    /// Makes `epoch` durable: writes its manifest (the state files it names
    /// are already durable), then purges what no retained manifest needs
    /// (at every commit when at most 7 manifests are kept, else every
    /// `retain / 4` commits).
    pub fn commit(
        &mut self,
        epoch: u64,
        sources: Vec<SourceCommit>,
        operators: Vec<OperatorCommit>,
        sink: serde_json::Value,
    ) -> Result<()> {
        self.write_commit(epoch, sources, operators, sink)?;
        self.purge_if_due();
        Ok(())
    }

    /// Makes `epoch` durable by writing its manifest, and nothing more: the
    /// caller publishes the epoch, then calls [`Checkpointer::purge_if_due`]
    /// (a purge only frees space, so it need not delay the epoch).
    pub fn write_commit(
        &mut self,
        epoch: u64,
        sources: Vec<SourceCommit>,
        mut operators: Vec<OperatorCommit>,
        sink: serde_json::Value,
    ) -> Result<()> {
        operators.sort_by_key(|o| (o.operator, o.partition));
        let state_from = operators
            .iter()
            .flat_map(|o| o.file.iter().chain(&o.deltas))
            .filter_map(|rel| state_epoch(rel))
            .min();
        self.dir.write_manifest(&EpochManifest {
            version: FORMAT_VERSION,
            epoch,
            committed_at_ms: crate::clock::wall_now_ms(),
            sources,
            operators,
            sink,
        })?;
        // State files older than every retained manifest's oldest base can
        // go; newer ones may still be named by a retained manifest.
        self.state_from = self.floors.committed(epoch, state_from, self.retain);
        Ok(())
    }

    /// Purges what no retained manifest needs, every `retain / 4` manifests
    /// written (at every one when at most 7 are kept).
    pub fn purge_if_due(&mut self) {
        // A purge costs a listing of three directories and two directory
        // fsyncs however little it removes: with many manifests kept it
        // runs every quarter of them (up to that many more manifests are on
        // disk meanwhile; none fewer than `retain`).
        self.unpurged += 1;
        if self.unpurged >= (self.retain / 4).max(1) {
            self.unpurged = 0;
            if let Err(e) = self.dir.purge_keeping_state(self.retain, self.state_from) {
                // Purging only frees space: nothing durable depends on it.
                tracing::warn!("could not purge old epochs: {e}");
            }
        }
    }
}
