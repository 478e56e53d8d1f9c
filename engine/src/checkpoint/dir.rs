//! The checkpoint directory: where each file lives, and reading and writing
//! them through a [`Storage`]. Owns the layout (see the module docs of
//! [`super`]); it must not decide when epochs end or what state means.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::chain::state_entry_epoch;
use super::format::Versioned;
use super::frame::{self, Opened};
use super::journal::Journal;
use super::storage::{ensure_dir, write_atomic, write_atomic_parts, LocalStorage, Storage};
use super::{EpochManifest, OffsetLogEntry, QueryMetadata};
use crate::error::{EngineError, Result};

/// An open checkpoint directory.
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    root: PathBuf,
    storage: Arc<dyn Storage>,
    /// The journals of `commits/` and `offsets/`, read on first use and
    /// shared by clones (one query's coordinator and driver).
    journals: Arc<Journals>,
}

/// One lock per journal: micro-batch mode appends to the offset log on one
/// thread while its commit writer appends a manifest on another.
#[derive(Debug, Default)]
struct Journals {
    commits: Mutex<Option<Journal>>,
    offsets: Mutex<Option<Journal>>,
}

/// The two numbered logs of a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Log {
    /// `commits/`: the epoch manifests.
    Commits,
    /// `offsets/`: micro-batch's offset log.
    Offsets,
}

impl Log {
    fn sub(self) -> &'static str {
        match self {
            Log::Commits => "commits",
            Log::Offsets => "offsets",
        }
    }

    fn of(sub: &str) -> Option<Log> {
        match sub {
            "commits" => Some(Log::Commits),
            "offsets" => Some(Log::Offsets),
            _ => None,
        }
    }

    /// The number a record of this log says it has.
    fn number(self) -> fn(&[u8]) -> Option<u64> {
        #[derive(serde::Deserialize)]
        struct Epoch {
            epoch: u64,
        }
        #[derive(serde::Deserialize)]
        struct Batch {
            batch_id: u64,
        }
        match self {
            Log::Commits => |p| serde_json::from_slice::<Epoch>(p).ok().map(|e| e.epoch),
            Log::Offsets => |p| serde_json::from_slice::<Batch>(p).ok().map(|b| b.batch_id),
        }
    }
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
            journals: Arc::default(),
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

    /// Opens the checkpoint directory at `root` on the local file system for
    /// reading, creating nothing: `None` if there is no checkpoint there.
    /// For tools that look at a checkpoint, while its query runs too (a
    /// record being appended then is not read yet).
    pub fn open_existing(root: &Path) -> Result<Option<CheckpointDir>> {
        if !root.join("commits").is_dir() {
            return Ok(None);
        }
        Ok(Some(CheckpointDir {
            root: root.to_path_buf(),
            storage: Arc::new(LocalStorage),
            journals: Arc::default(),
        }))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The storage the files live on.
    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The numbered entries of `sub` (`commits`, `offsets`, `state`), sorted:
    /// for the two logs, the records of their journal and any files of a
    /// release that wrote one file per record.
    pub(crate) fn numbered(&self, sub: &str) -> Result<Vec<u64>> {
        let mut out = self.numbered_files(sub)?;
        if let Some(log) = Log::of(sub) {
            self.with_journal(log, |j| {
                out.extend(j.numbers());
                Ok(())
            })?;
            out.sort_unstable();
            out.dedup();
        }
        Ok(out)
    }

    /// The entries of `sub` named by a bare number, sorted.
    fn numbered_files(&self, sub: &str) -> Result<Vec<u64>> {
        let d = self.root.join(sub);
        let names = self.storage.list(&d).map_err(|e| io_err(&d, e))?;
        let mut out: Vec<u64> = names.iter().filter_map(|s| s.parse().ok()).collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Runs `f` on `log`'s journal, reading it first if this is its first
    /// use.
    fn with_journal<R>(&self, log: Log, f: impl FnOnce(&mut Journal) -> Result<R>) -> Result<R> {
        let lock = match log {
            Log::Commits => &self.journals.commits,
            Log::Offsets => &self.journals.offsets,
        };
        let mut slot = lock.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let d = self.root.join(log.sub());
            let j = Journal::open(self.storage.as_ref(), &d, log.number())
                .map_err(|e| io_err(&d, e))?;
            *slot = Some(j);
        }
        match slot.as_mut() {
            Some(j) => f(j),
            None => Err(io_err(&self.root, "the journal could not be opened")),
        }
    }

    /// Reads record `n` of `log`: from the journal, or from the file of a
    /// release that wrote one file per record.
    fn read_record<T: DeserializeOwned + Versioned>(&self, log: Log, n: u64) -> Result<T> {
        let found =
            self.with_journal(log, |j| Ok(j.get(n).map(|p| p.to_vec()).zip(j.location(n))))?;
        match found {
            Some((payload, (path, at))) => serde_json::from_slice(&payload).map_err(|e| {
                io_err(
                    &path,
                    format!(
                        "the record at byte {} is damaged ({e}); it is not used",
                        at.start
                    ),
                )
            }),
            None => self.read_json(&self.root.join(log.sub()).join(n.to_string())),
        }
    }

    /// Appends record `n` to `log`'s journal, durably.
    fn append_record<T: Serialize>(&self, log: Log, n: u64, value: &T) -> Result<()> {
        let d = self.root.join(log.sub());
        let json = serde_json::to_vec(value).map_err(|e| io_err(&d, e))?;
        self.with_journal(log, |j| {
            j.append(self.storage.as_ref(), n, &json)
                .map_err(|e| io_err(&d, e))
        })
    }

    /// Where the manifest of `epoch` is (or would be): its journal segment,
    /// or its file if an older release wrote it. For messages.
    pub(crate) fn manifest_path(&self, epoch: u64) -> PathBuf {
        self.record_path(Log::Commits, epoch)
    }

    /// Where the offset-log entry of `batch` is (or would be). For messages.
    pub(crate) fn offset_entry_path(&self, batch: u64) -> PathBuf {
        self.record_path(Log::Offsets, batch)
    }

    fn record_path(&self, log: Log, n: u64) -> PathBuf {
        match self.record_location(log, n) {
            Ok(Some((path, _))) => path,
            _ => self.root.join(log.sub()),
        }
    }

    /// The epochs (batches, in micro-batch mode) that have a readable or
    /// damaged manifest, ascending.
    pub fn epochs(&self) -> Result<Vec<u64>> {
        self.numbered("commits")
    }

    /// Where the manifest of `epoch` is stored: the file holding it and the
    /// byte range of its record in that file (a whole file if an older
    /// release wrote it). `None` if there is none.
    pub fn manifest_location(&self, epoch: u64) -> Result<Option<(PathBuf, Range<u64>)>> {
        self.record_location(Log::Commits, epoch)
    }

    /// Where record `n` of `log` is stored: its journal segment and byte
    /// range, or the whole file an older release wrote.
    fn record_location(&self, log: Log, n: u64) -> Result<Option<(PathBuf, Range<u64>)>> {
        if let Some(found) = self.with_journal(log, |j| Ok(j.location(n)))? {
            return Ok(Some(found));
        }
        let file = self.root.join(log.sub()).join(n.to_string());
        if !self.storage.exists(&file) {
            return Ok(None);
        }
        let len = self
            .storage
            .read(&file)
            .map_err(|e| io_err(&file, e))?
            .len() as u64;
        Ok(Some((file, 0..len)))
    }

    /// The batches that have an offset-log entry, ascending.
    pub fn offset_batches(&self) -> Result<Vec<u64>> {
        self.numbered("offsets")
    }

    /// The offset-log entry of `batch`.
    pub fn read_offset_entry(&self, batch: u64) -> Result<OffsetLogEntry> {
        self.read_record(Log::Offsets, batch)
    }

    /// Where the offset-log entry of `batch` is stored, as
    /// [`CheckpointDir::manifest_location`] says it of a manifest.
    pub fn offset_entry_location(&self, batch: u64) -> Result<Option<(PathBuf, Range<u64>)>> {
        self.record_location(Log::Offsets, batch)
    }

    /// Rewinds a stopped query's checkpoint to epoch (or batch) `n`: every
    /// manifest and offset-log entry after it is dropped, as if the process
    /// had died just after `n` became durable. The query must not be
    /// running. State files the dropped manifests named are left for the
    /// next purge. `n` should be one of the newest retained epochs: a purge
    /// removes manifests a journal segment at a time, so [`Self::epochs`]
    /// may list older ones whose state files are gone, and recovery from
    /// one of those stops naming the missing file.
    pub fn discard_after(&self, n: u64) -> Result<()> {
        for log in [Log::Commits, Log::Offsets] {
            let d = self.root.join(log.sub());
            self.with_journal(log, |j| {
                j.discard_after(self.storage.as_ref(), n)
                    .map_err(|e| io_err(&d, e))
            })?;
            let mut removed = false;
            for e in self.numbered_files(log.sub())? {
                if e > n {
                    let p = d.join(e.to_string());
                    self.storage
                        .remove_file(&p)
                        .map_err(|err| io_err(&p, err))?;
                    removed = true;
                }
            }
            if removed {
                self.storage.sync_dir(&d).map_err(|e| io_err(&d, e))?;
            }
        }
        Ok(())
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
        self.read_record(Log::Commits, epoch)
    }

    /// The newest readable epoch manifest, if any, and the newer ones that
    /// were damaged (named, so that recovery can say what it skipped).
    pub fn latest_manifest(&self) -> Result<(Option<EpochManifest>, Vec<EngineError>)> {
        let mut skipped = Vec::new();
        let mut found = None;
        for epoch in self.numbered("commits")?.into_iter().rev() {
            match self.read_manifest(epoch) {
                Ok(m) => {
                    found = Some(m);
                    break;
                }
                Err(e) => skipped.push(e),
            }
        }
        // Records of the journal written after the one found that cannot be
        // read at all (their epoch is unknown).
        let after = found.as_ref().map(|m| m.epoch);
        let damaged = self.with_journal(Log::Commits, |j| Ok(j.damaged_after(after)))?;
        skipped.extend(damaged.into_iter().map(|d| {
            io_err(
                &d.path,
                format!(
                    "the record at byte {} is damaged ({}); it is not used",
                    d.offset, d.why
                ),
            )
        }));
        Ok((found, skipped))
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
            let path = self.offset_entry_path(batch);
            let entry = self.read_record::<OffsetLogEntry>(Log::Offsets, batch).map_err(|e| {
                io_err(
                    &path,
                    format!("the offset log entry of a batch that never committed cannot be used, so its range cannot be re-read: {e}"),
                )
            })?;
            let expected = out.last().map_or(first, |prev| prev.batch_id + 1);
            if entry.batch_id != batch || batch != expected {
                // A damaged record after the last good entry may be the
                // missing one: name it.
                let last_good = out.last().map(|e| e.batch_id).or(committed);
                let damaged =
                    self.with_journal(Log::Offsets, |j| Ok(j.damaged_after(last_good)))?;
                let unreadable: String = damaged
                    .iter()
                    .map(|d| {
                        format!(
                            "; unreadable record at byte {} of {} ({})",
                            d.offset,
                            d.path.display(),
                            d.why
                        )
                    })
                    .collect();
                return Err(io_err(
                    &path,
                    format!(
                        "expected the offset log entry of batch {expected} here (the last committed batch is {}); a batch's range is missing{unreadable}",
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
        // A whole frame that fails its checksum after the last entry was an
        // acknowledged append damaged since (an append a crash interrupted
        // is cut short instead): it may be a batch whose output the sink has
        // seen, so it cannot be passed over.
        let last_good = out.last().map(|e| e.batch_id).or(committed);
        let damaged = self.with_journal(Log::Offsets, |j| Ok(j.damaged_after(last_good)))?;
        if let Some(d) = damaged.iter().find(|d| d.whole) {
            return Err(io_err(
                &d.path,
                format!(
                    "the offset-log record at byte {} is damaged ({}); it may be the range of a batch after batch {} that reached the sink, so the query cannot start from this checkpoint without it (cutting the file at byte {} drops it and every record after it)",
                    d.offset,
                    d.why,
                    last_good.map_or("none".to_string(), |b| b.to_string()),
                    d.offset
                ),
            ));
        }
        Ok(out)
    }

    /// Writes a batch's offset-log entry durably.
    pub fn write_offset_log(&self, entry: &OffsetLogEntry) -> Result<()> {
        self.append_record(Log::Offsets, entry.batch_id, entry)
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
        self.append_record(Log::Commits, m.epoch, m)
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
        for log in [Log::Commits, Log::Offsets] {
            let sub = log.sub();
            let d = self.root.join(sub);
            let old: Vec<u64> = self
                .numbered_files(sub)?
                .into_iter()
                .filter(|e| *e < oldest_kept)
                .collect();
            for e in &old {
                let p = self.root.join(sub).join(e.to_string());
                storage.remove_file(&p).map_err(|err| io_err(&p, err))?;
            }
            let segments = self.with_journal(log, |j| {
                j.remove_before(storage, oldest_kept)
                    .map_err(|e| io_err(&d, e))
            })?;
            if !old.is_empty() || segments {
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
