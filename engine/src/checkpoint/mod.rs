//! The checkpoint directory: its layout, atomic writes and recovery.
//!
//! ```text
//! CHECKPOINT/
//!   metadata                 {"id": "<query id>"}: the id stays across restarts
//!   offsets/<batch>          micro-batch only: the batch's offset ranges, written
//!                            before the batch reads anything (the write-ahead log)
//!   commits/<epoch|batch>    the manifest (JSON): source offsets, state files,
//!                            sink state; written last and atomically
//!   state/<epoch|batch>/<name>  operator state snapshots referenced by a manifest
//! ```
//!
//! Every file is written to a temporary name, fsynced, renamed into place and
//! its directory fsynced, so a crash leaves either the old file or the new one,
//! never half of one. An epoch exists once its manifest exists; state files
//! without a manifest are ignored and purged. This module owns only the
//! format: it does not decide when epochs end.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::io::SourceOffset;

/// The format version written into manifests.
pub const FORMAT_VERSION: u32 = 1;

/// What `metadata` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryMetadata {
    /// The query's id, stable across restarts.
    pub id: String,
}

/// A source's position at the end of an epoch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SourceCommit {
    /// The source's name.
    pub name: String,
    /// Its offset.
    pub offset: SourceOffset,
}

/// An operator partition's state at the end of an epoch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OperatorCommit {
    /// The operator's id in the plan.
    pub operator: usize,
    /// The partition.
    pub partition: usize,
    /// A state file under `state/`, relative to the checkpoint root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Delta files (changes only) to apply, in order, on top of `file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<String>,
    /// Small state kept inline.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub inline: serde_json::Value,
}

/// The manifest of one durable epoch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochManifest {
    /// Format version.
    pub version: u32,
    /// The epoch.
    pub epoch: u64,
    /// When it was written (ms since the Unix epoch).
    pub committed_at_ms: i64,
    /// Source offsets.
    pub sources: Vec<SourceCommit>,
    /// Operator state.
    pub operators: Vec<OperatorCommit>,
    /// What the sink returned from its commit.
    pub sink: serde_json::Value,
}

/// A micro-batch's entry in the offset log: the exact ranges it reads.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OffsetLogEntry {
    /// Format version.
    pub version: u32,
    /// The batch id.
    pub batch_id: u64,
    /// Where each source's range starts (exclusive; `null` offset: the beginning).
    pub start: Vec<SourceCommit>,
    /// Where it ends (inclusive).
    pub end: Vec<SourceCommit>,
    /// When the entry was written (ms since the Unix epoch).
    pub written_at_ms: i64,
}

/// An open checkpoint directory.
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    root: PathBuf,
}

fn io_err(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::checkpoint(path, e)
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync
/// of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl CheckpointDir {
    /// Opens (creating when missing) the checkpoint directory at `root`, and
    /// returns it with the query's metadata (a new id for a new directory).
    pub fn open(root: &Path) -> Result<(CheckpointDir, QueryMetadata)> {
        for sub in ["", "offsets", "commits", "state"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
        }
        let dir = CheckpointDir {
            root: root.to_path_buf(),
        };
        let meta_path = root.join("metadata");
        let meta = match fs::read(&meta_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                EngineError::checkpoint(&meta_path, format!("unreadable metadata: {e}"))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let meta = QueryMetadata {
                    id: uuid::Uuid::new_v4().to_string(),
                };
                write_atomic(&meta_path, &serde_json::to_vec(&meta).unwrap_or_default())?;
                meta
            }
            Err(e) => return Err(io_err(&meta_path, e)),
        };
        Ok((dir, meta))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn epochs_in(&self, sub: &str) -> Result<Vec<u64>> {
        let d = self.root.join(sub);
        let mut out = Vec::new();
        for entry in fs::read_dir(&d).map_err(|e| io_err(&d, e))? {
            let entry = entry.map_err(|e| io_err(&d, e))?;
            if let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u64>().ok())
            {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The newest epoch manifest, if any. A manifest that does not parse (it
    /// cannot be half-written, but a disk can corrupt it) is skipped with a
    /// warning and the one before it is used.
    pub fn latest_manifest(&self) -> Result<Option<EpochManifest>> {
        for epoch in self.epochs_in("commits")?.into_iter().rev() {
            let path = self.root.join("commits").join(epoch.to_string());
            let bytes = fs::read(&path).map_err(|e| io_err(&path, e))?;
            match serde_json::from_slice::<EpochManifest>(&bytes) {
                Ok(m) => return Ok(Some(m)),
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    "skipping unreadable epoch manifest: {e}"
                ),
            }
        }
        Ok(None)
    }

    /// Every offset-log entry after batch `committed` (all of them for
    /// `None`), in batch order: the logged batches recovery must re-run,
    /// each exactly as logged. They must follow each other without a gap,
    /// the first one `committed + 1` (or 0) and each starting where the one
    /// before ended; an entry that does not parse, a gap or a range that does
    /// not join is an error naming the file (re-running from anywhere else
    /// could skip or repeat input).
    pub fn offset_log_after(&self, committed: Option<u64>) -> Result<Vec<OffsetLogEntry>> {
        let mut out: Vec<OffsetLogEntry> = Vec::new();
        let first = committed.map_or(0, |c| c + 1);
        for batch in self.epochs_in("offsets")? {
            if batch < first {
                continue;
            }
            let path = self.root.join("offsets").join(batch.to_string());
            let bytes = fs::read(&path).map_err(|e| io_err(&path, e))?;
            let entry = serde_json::from_slice::<OffsetLogEntry>(&bytes).map_err(|e| {
                EngineError::checkpoint(
                    &path,
                    format!("the offset log entry of a batch that never committed is unreadable ({e}); its range cannot be re-read"),
                )
            })?;
            let expected = out.last().map_or(first, |prev| prev.batch_id + 1);
            if entry.batch_id != batch || batch != expected {
                return Err(EngineError::checkpoint(
                    &path,
                    format!(
                        "expected the offset log entry of batch {expected} here (the last committed batch is {}); a batch's range is missing",
                        committed.map_or("none".to_string(), |c| c.to_string())
                    ),
                ));
            }
            if let Some(prev) = out.last() {
                if prev.end != entry.start {
                    return Err(EngineError::checkpoint(
                        &path,
                        format!(
                            "batch {batch} does not start where batch {} ended",
                            prev.batch_id
                        ),
                    ));
                }
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// Writes a batch's offset-log entry durably.
    pub fn write_offset_log(&self, entry: &OffsetLogEntry) -> Result<()> {
        let path = self.root.join("offsets").join(entry.batch_id.to_string());
        let bytes =
            serde_json::to_vec_pretty(entry).map_err(|e| EngineError::checkpoint(&path, e))?;
        write_atomic(&path, &bytes)
    }

    /// Writes a state file for `epoch` and returns its path relative to the root.
    pub fn write_state(&self, epoch: u64, name: &str, bytes: &[u8]) -> Result<String> {
        let rel = format!("state/{epoch}/{name}");
        let dir = self.root.join("state").join(epoch.to_string());
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        write_atomic(&self.root.join(&rel), bytes)?;
        Ok(rel)
    }

    /// Reads a state file named by a manifest.
    pub fn read_state(&self, rel: &str) -> Result<Vec<u8>> {
        let path = self.root.join(rel);
        fs::read(&path).map_err(|e| io_err(&path, e))
    }

    /// Writes the manifest: from this moment the epoch is durable.
    pub fn write_manifest(&self, m: &EpochManifest) -> Result<()> {
        let path = self.root.join("commits").join(m.epoch.to_string());
        let bytes = serde_json::to_vec_pretty(m).map_err(|e| EngineError::checkpoint(&path, e))?;
        write_atomic(&path, &bytes)
    }

    /// Deletes manifests and state older than the newest `retain` epochs.
    pub fn purge(&self, retain: usize) -> Result<()> {
        self.purge_keeping_state(retain, u64::MAX)
    }

    /// Like [`CheckpointDir::purge`], but keeps the state directories of
    /// epochs from `state_from` on even when their manifests go: a retained
    /// manifest may name state files written in an older epoch (the base of
    /// a chain of deltas).
    pub fn purge_keeping_state(&self, retain: usize, state_from: u64) -> Result<()> {
        let commits = self.epochs_in("commits")?;
        if commits.len() <= retain {
            return Ok(());
        }
        let oldest_kept = commits[commits.len() - retain.max(1)];
        for e in commits.iter().filter(|e| **e < oldest_kept) {
            let p = self.root.join("commits").join(e.to_string());
            fs::remove_file(&p).map_err(|err| io_err(&p, err))?;
        }
        for e in self
            .epochs_in("offsets")?
            .into_iter()
            .filter(|e| *e < oldest_kept)
        {
            let p = self.root.join("offsets").join(e.to_string());
            fs::remove_file(&p).map_err(|err| io_err(&p, err))?;
        }
        for e in self
            .epochs_in("state")?
            .into_iter()
            .filter(|e| *e < oldest_kept && *e < state_from)
        {
            let p = self.root.join("state").join(e.to_string());
            fs::remove_dir_all(&p).map_err(|err| io_err(&p, err))?;
        }
        Ok(())
    }
}

/// Where one aggregation partition's checkpointed state is: the newest full
/// state file and the delta files written since, in order. Decides when the
/// next file should be a full one: once the deltas since the last full file
/// add up to the state's size (or the chain gets long), so that writing
/// costs time in proportion to the changes, amortised, and recovery reads
/// at most about twice the state.
#[derive(Debug, Default)]
pub struct StateChain {
    base: Option<String>,
    base_epoch: u64,
    deltas: Vec<String>,
    /// Groups changed or windows evicted over `deltas`.
    changes: usize,
}

impl StateChain {
    /// Delta files after which the next state file is a full one.
    pub const MAX_DELTAS: usize = 50;
    /// A state smaller than this many groups is written in full every time
    /// (cheap, and recovery reads one file).
    pub const MIN_FULL_GROUPS: usize = 1024;

    /// Whether the next file should hold the full state, given the number of
    /// changes the next delta would carry and the state's size.
    pub fn wants_full(&self, changes: usize, state_groups: usize) -> bool {
        self.base.is_none()
            || self.deltas.len() >= Self::MAX_DELTAS
            || self.changes + changes > state_groups.max(Self::MIN_FULL_GROUPS)
    }

    /// A full state file `rel` was written in `epoch`: the chain restarts.
    pub fn record_full(&mut self, rel: String, epoch: u64) {
        *self = StateChain {
            base: Some(rel),
            base_epoch: epoch,
            deltas: Vec::new(),
            changes: 0,
        };
    }

    /// A delta file `rel` with `changes` changes was written.
    pub fn record_delta(&mut self, rel: String, changes: usize) {
        self.deltas.push(rel);
        self.changes += changes;
    }

    /// The full file and the deltas after it, as a manifest names them.
    pub fn files(&self) -> (Option<String>, Vec<String>) {
        (self.base.clone(), self.deltas.clone())
    }

    /// The epoch whose state directory holds the full file.
    pub fn base_epoch(&self) -> u64 {
        self.base_epoch
    }
}

/// The oldest state directory each retained manifest still names, so that
/// purging keeps every file a retained manifest needs.
#[derive(Debug, Default)]
pub struct StateFloors {
    floors: std::collections::VecDeque<u64>,
}

impl StateFloors {
    /// The floors of the manifests already in `dir`, oldest first, so that a
    /// restarted query keeps the state files those manifests name (recovery
    /// falls back to an older manifest when the newest is unreadable).
    /// Unreadable manifests are left out.
    pub fn from_checkpoint(dir: &CheckpointDir) -> Result<StateFloors> {
        let mut floors = std::collections::VecDeque::new();
        for epoch in dir.epochs_in("commits")? {
            let path = dir.root.join("commits").join(epoch.to_string());
            let Some(m) = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<EpochManifest>(&b).ok())
            else {
                continue;
            };
            let named = m
                .operators
                .iter()
                .flat_map(|o| o.file.iter().chain(&o.deltas))
                .filter_map(|rel| state_epoch(rel));
            floors.push_back(named.min().unwrap_or(epoch).min(epoch));
        }
        Ok(StateFloors { floors })
    }

    /// Records that `epoch` was committed naming state from `state_from`
    /// on (`None`: no state file); returns the oldest state epoch any of the
    /// newest `retain` manifests names (for
    /// [`CheckpointDir::purge_keeping_state`]).
    pub fn committed(&mut self, epoch: u64, state_from: Option<u64>, retain: usize) -> u64 {
        self.floors
            .push_back(state_from.unwrap_or(epoch).min(epoch));
        while self.floors.len() > retain.max(1) {
            self.floors.pop_front();
        }
        self.floors.iter().copied().min().unwrap_or(epoch)
    }
}

/// The epoch of a state file path as [`CheckpointDir::write_state`] names it
/// (`state/<epoch>/<name>`).
fn state_epoch(rel: &str) -> Option<u64> {
    rel.strip_prefix("state/")?.split('/').next()?.parse().ok()
}

/// Reads an aggregation partition's state as a manifest names it: the full
/// file, then each delta in order, applied to a fresh state. Also returns the
/// watermark recorded in the newest of those files (`NO_TIME` if none).
pub fn read_state_chain<F: serde::de::DeserializeOwned>(
    dir: &CheckpointDir,
    file: &str,
    deltas: &[String],
    into_parts: impl Fn(F) -> (i64, crate::state::StateSnapshot),
) -> Result<(crate::state::WindowedState, i64)> {
    let mut state = crate::state::WindowedState::new();
    let mut watermark_us = crate::schema::NO_TIME;
    for rel in std::iter::once(file).chain(deltas.iter().map(String::as_str)) {
        let bytes = dir.read_state(rel)?;
        let parsed: F = serde_json::from_slice(&bytes)
            .map_err(|e| EngineError::checkpoint(dir.root().join(rel), e))?;
        let (wm, snap) = into_parts(parsed);
        watermark_us = wm;
        state.apply(snap);
    }
    Ok((state, watermark_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(epoch: u64) -> EpochManifest {
        EpochManifest {
            version: FORMAT_VERSION,
            epoch,
            committed_at_ms: 0,
            sources: vec![SourceCommit {
                name: "s".into(),
                offset: SourceOffset(serde_json::json!({"rows": epoch * 10})),
            }],
            operators: vec![],
            sink: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_restart_keeps_the_state_files_of_retained_manifests() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = CheckpointDir::open(tmp.path()).unwrap();
        // Epochs 3..=5 name a full file written in epoch 3 and deltas after it.
        for epoch in 3..=5u64 {
            let rel = dir.write_state(epoch, "a.delta.json", b"{}").unwrap();
            let mut m = manifest(epoch);
            m.operators.push(OperatorCommit {
                operator: 1,
                partition: 0,
                file: Some("state/3/a.json".into()),
                deltas: vec![rel],
                inline: serde_json::Value::Null,
            });
            dir.write_manifest(&m).unwrap();
        }
        // A restarted run writes a full file in epoch 6; the older manifests
        // still name state/3, so it must survive a purge keeping 3 manifests.
        let mut floors = StateFloors::from_checkpoint(&dir).unwrap();
        dir.write_state(6, "a.json", b"{}").unwrap();
        dir.write_manifest(&manifest(6)).unwrap();
        let state_from = floors.committed(6, Some(6), 3);
        assert_eq!(state_from, 3);
        dir.purge_keeping_state(3, state_from).unwrap();
        assert_eq!(dir.epochs_in("commits").unwrap(), vec![4, 5, 6]);
        assert_eq!(dir.epochs_in("state").unwrap(), vec![3, 4, 5, 6]);
    }

    #[test]
    fn id_is_stable_and_latest_manifest_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, meta) = CheckpointDir::open(tmp.path()).unwrap();
        let (_, again) = CheckpointDir::open(tmp.path()).unwrap();
        assert_eq!(meta.id, again.id);
        assert!(dir.latest_manifest().unwrap().is_none());
        for e in [1, 2, 10] {
            dir.write_manifest(&manifest(e)).unwrap();
        }
        assert_eq!(dir.latest_manifest().unwrap().unwrap().epoch, 10);
        // A corrupt newest manifest falls back to the one before.
        fs::write(tmp.path().join("commits/11"), b"{\"half").unwrap();
        assert_eq!(dir.latest_manifest().unwrap().unwrap().epoch, 10);
    }

    #[test]
    fn purge_keeps_the_newest_epochs() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = CheckpointDir::open(tmp.path()).unwrap();
        for e in 1..=5 {
            dir.write_state(e, "op-0-0.json", b"{}").unwrap();
            dir.write_manifest(&manifest(e)).unwrap();
        }
        dir.purge(2).unwrap();
        assert_eq!(dir.epochs_in("commits").unwrap(), vec![4, 5]);
        assert_eq!(dir.epochs_in("state").unwrap(), vec![4, 5]);
        assert!(!tmp.path().join("commits/.5.tmp").exists());
    }

    #[test]
    fn unwritable_directory_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let err = CheckpointDir::open(&file).unwrap_err().to_string();
        assert!(err.contains("not-a-dir"), "{err}");
    }
}
