//! The checkpoint directory: where each file lives, and reading and writing
//! them through a [`Storage`]. Owns the layout (see the module docs of
//! [`super`]); it must not decide when epochs end or what state means.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::chain::state_entry_epoch;
use super::format::Versioned;
use super::frame::{self, Opened};
use super::storage::{ensure_dir, write_atomic, write_atomic_parts, LocalStorage, Storage};
use super::{EpochManifest, OffsetLogEntry, QueryMetadata};
use crate::error::{EngineError, Result};

/// An open checkpoint directory.
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    root: PathBuf,
    storage: Arc<dyn Storage>,
}

fn io_err(path: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> EngineError {
    EngineError::checkpoint(path, e)
}

impl CheckpointDir {
    /// Opens (creating when missing) the checkpoint directory at `root` on
    /// the local file system, and returns it with the query's metadata (a
    /// new id for a new directory).
    pub fn open(root: &Path) -> Result<(CheckpointDir, QueryMetadata)> {
        Self::open_on(root, Arc::new(LocalStorage))
    }

    /// [`CheckpointDir::open`] on any [`Storage`].
    pub fn open_on(
        root: &Path,
        storage: Arc<dyn Storage>,
    ) -> Result<(CheckpointDir, QueryMetadata)> {
        for sub in ["", "offsets", "commits", "state"] {
            let d = root.join(sub);
            ensure_dir(storage.as_ref(), &d).map_err(|e| io_err(&d, e))?;
        }
        let dir = CheckpointDir {
            root: root.to_path_buf(),
            storage,
        };
        let meta_path = root.join("metadata");
        let meta = if dir.storage.exists(&meta_path) {
            dir.read_json::<QueryMetadata>(&meta_path)?
        } else {
            let meta = QueryMetadata {
                id: uuid::Uuid::new_v4().to_string(),
            };
            dir.write_json(&meta_path, &meta)?;
            meta
        };
        Ok((dir, meta))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The storage the files live on.
    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The numbered entries of `sub` (`commits`, `offsets`, `state`), sorted.
    pub(crate) fn numbered(&self, sub: &str) -> Result<Vec<u64>> {
        let d = self.root.join(sub);
        let names = self.storage.list(&d).map_err(|e| io_err(&d, e))?;
        let mut out: Vec<u64> = names.iter().filter_map(|s| s.parse().ok()).collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Reads a sealed JSON file. A file without a frame is accepted only if
    /// it says it was written before checksums existed.
    fn read_json<T: DeserializeOwned + Versioned>(&self, path: &Path) -> Result<T> {
        let bytes = self.storage.read(path).map_err(|e| io_err(path, e))?;
        let (payload, legacy) = match frame::open(path, &bytes)? {
            Opened::Sealed(p) => (p, false),
            Opened::Legacy(p) => (p, true),
        };
        let value: T = serde_json::from_slice(payload)
            .map_err(|e| io_err(path, format!("the file is damaged ({e}); it is not used")))?;
        if legacy && value.version() >= 2 {
            return Err(io_err(
                path,
                "the file is damaged (its checksum header is missing); it is not used",
            ));
        }
        Ok(value)
    }

    fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let json = serde_json::to_vec_pretty(value).map_err(|e| io_err(path, e))?;
        write_atomic(self.storage.as_ref(), path, &frame::seal(&json)).map_err(|e| io_err(path, e))
    }

    /// The manifest of `epoch`.
    pub fn read_manifest(&self, epoch: u64) -> Result<EpochManifest> {
        self.read_json(&self.root.join("commits").join(epoch.to_string()))
    }

    /// The newest readable epoch manifest, if any, and the newer ones that
    /// were damaged (named, so that recovery can say what it skipped).
    pub fn latest_manifest(&self) -> Result<(Option<EpochManifest>, Vec<EngineError>)> {
        let mut skipped = Vec::new();
        for epoch in self.numbered("commits")?.into_iter().rev() {
            match self.read_manifest(epoch) {
                Ok(m) => return Ok((Some(m), skipped)),
                Err(e) => skipped.push(e),
            }
        }
        Ok((None, skipped))
    }

    /// Every offset-log entry after batch `committed` (all of them for
    /// `None`), in batch order: the logged batches recovery must re-run,
    /// each exactly as logged. They must follow each other without a gap,
    /// the first one `committed + 1` (or 0) and each starting where the one
    /// before ended; an entry that is damaged, a gap or a range that does
    /// not join is an error naming the file (re-running from anywhere else
    /// could skip or repeat input).
    pub fn offset_log_after(&self, committed: Option<u64>) -> Result<Vec<OffsetLogEntry>> {
        let mut out: Vec<OffsetLogEntry> = Vec::new();
        let first = committed.map_or(0, |c| c + 1);
        for batch in self.numbered("offsets")? {
            if batch < first {
                continue;
            }
            let path = self.root.join("offsets").join(batch.to_string());
            let entry = self.read_json::<OffsetLogEntry>(&path).map_err(|e| {
                io_err(
                    &path,
                    format!("the offset log entry of a batch that never committed cannot be used, so its range cannot be re-read: {e}"),
                )
            })?;
            let expected = out.last().map_or(first, |prev| prev.batch_id + 1);
            if entry.batch_id != batch || batch != expected {
                return Err(io_err(
                    &path,
                    format!(
                        "expected the offset log entry of batch {expected} here (the last committed batch is {}); a batch's range is missing",
                        committed.map_or("none".to_string(), |c| c.to_string())
                    ),
                ));
            }
            if let Some(prev) = out.last() {
                if prev.end != entry.start {
                    return Err(io_err(
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
        self.write_json(&path, entry)
    }

    /// Writes a state file for `epoch` (sealed with its checksum, the
    /// directory made durable) and returns its path relative to the root.
    /// The files of all epochs share `state/` (`state/<epoch>-<name>`): a
    /// directory per epoch cost a directory and two more fsyncs an epoch.
    pub fn write_state(&self, epoch: u64, name: &str, payload: &[u8]) -> Result<String> {
        let rel = format!("state/{epoch}-{name}");
        let path = self.root.join(&rel);
        // The header and the payload as they are: a state file can be tens
        // of megabytes, not worth a sealed copy.
        let header = frame::header(payload);
        write_atomic_parts(self.storage.as_ref(), &path, &[header.as_bytes(), payload])
            .map_err(|e| io_err(&path, e))?;
        Ok(rel)
    }

    /// Reads a state file named by a manifest, as stored (see
    /// [`super::frame::open`]).
    pub fn read_state(&self, rel: &str) -> Result<Vec<u8>> {
        let path = self.root.join(rel);
        self.storage.read(&path).map_err(|e| io_err(&path, e))
    }

    /// Writes the manifest: from this moment the epoch is durable.
    pub fn write_manifest(&self, m: &EpochManifest) -> Result<()> {
        self.write_json(&self.root.join("commits").join(m.epoch.to_string()), m)
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
        let commits = self.numbered("commits")?;
        if commits.len() <= retain {
            return Ok(());
        }
        let oldest_kept = commits[commits.len() - retain.max(1)];
        let storage = self.storage.as_ref();
        for sub in ["commits", "offsets"] {
            let old: Vec<u64> = self
                .numbered(sub)?
                .into_iter()
                .filter(|e| *e < oldest_kept)
                .collect();
            for e in &old {
                let p = self.root.join(sub).join(e.to_string());
                storage.remove_file(&p).map_err(|err| io_err(&p, err))?;
            }
            if !old.is_empty() {
                // Old manifests must not come back after a power loss once
                // the state they name is gone.
                let d = self.root.join(sub);
                storage.sync_dir(&d).map_err(|err| io_err(&d, err))?;
            }
        }
        let state = self.root.join("state");
        for name in storage.list(&state).map_err(|e| io_err(&state, e))? {
            let Some(e) = state_entry_epoch(&name) else {
                continue;
            };
            if e >= oldest_kept || e >= state_from {
                continue;
            }
            let p = state.join(&name);
            // A bare number is an older release's directory per epoch.
            let removed = if name.bytes().all(|b| b.is_ascii_digit()) {
                storage.remove_dir_all(&p)
            } else {
                storage.remove_file(&p)
            };
            removed.map_err(|err| io_err(&p, err))?;
        }
        Ok(())
    }

    /// The epochs that have state files, sorted.
    #[cfg(test)]
    pub(crate) fn state_epochs(&self) -> Result<Vec<u64>> {
        let d = self.root.join("state");
        let names = self.storage.list(&d).map_err(|e| io_err(&d, e))?;
        let mut out: Vec<u64> = names
            .iter()
            .filter(|n| !n.starts_with('.'))
            .filter_map(|n| state_entry_epoch(n))
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}
