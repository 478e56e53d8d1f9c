//! Checkpoints: the one protocol both modes use to make epochs durable and
//! to recover from them.
//!
//! ```text
//! CHECKPOINT/
//!   metadata                 {"id": "<query id>"}: the id stays across restarts
//!   offsets/<batch>          micro-batch only: the batch's offset ranges, written
//!                            before the batch reads anything (the write-ahead log)
//!   commits/<epoch|batch>    the manifest (JSON): source offsets, state files,
//!                            sink state; written last and atomically
//!   state/<epoch|batch>-<name>  operator state (binary) referenced by a manifest
//!                            (releases before this one wrote state/<epoch>/<name>:
//!                            still read and purged)
//! ```
//!
//! Every file is sealed with a checksum ([`frame`]), written to a temporary
//! name, fsynced, renamed into place and its directory fsynced; the
//! directories are made once, fsynced into their parents. So a crash, even a power
//! loss, leaves either the old file or the new one, and a file damaged
//! afterwards is detected and never trusted. An epoch exists once its
//! manifest exists; state files without a manifest are ignored and purged.
//!
//! - [`Checkpointer`] (`core`): recovery, state files, commit and retention,
//!   used by both runtimes.
//! - [`CheckpointDir`] (`dir`): the layout, reading and writing each file.
//! - [`Storage`] (`storage`): the file operations every durable write goes
//!   through; [`LocalStorage`] and the crash-simulating [`CrashFs`].
//! - `format`, `state_file`, `join_file`, [`frame`]: what the files hold and how.
//! - `chain`: which state files make up a partition's state and which
//!   purging must keep.
//!
//! This module must not decide when epochs end: the runtimes do.

mod chain;
mod core;
mod crash_fs;
mod dir;
mod format;
pub mod frame;
mod group_codec;
mod join_file;
mod report;
mod state_file;
mod storage;

pub use self::core::{Checkpointer, Recovery};
pub use chain::{StateChain, StateFloors};
pub use crash_fs::CrashFs;
pub use dir::CheckpointDir;
pub use format::{
    EpochManifest, OffsetLogEntry, OperatorCommit, QueryMetadata, SourceCommit, FORMAT_VERSION,
};
pub(crate) use report::{report_channel, CoordMsg, EpochReporter, OperatorSnapshot, ReportInbox};
pub use state_file::{AggregateStateFile, WatermarkState};
pub use storage::{
    ensure_dir, write_atomic, write_atomic_parts, AppendFile, LocalStorage, OpenMode, Storage,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SourceOffset;

    fn manifest(epoch: u64) -> EpochManifest {
        EpochManifest {
            version: FORMAT_VERSION,
            epoch,
            committed_at_ms: 0,
            sources: vec![SourceCommit {
                name: "s".into(),
                offset: SourceOffset::Rows(epoch * 10),
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
        assert_eq!(dir.numbered("commits").unwrap(), vec![4, 5, 6]);
        assert_eq!(dir.state_epochs().unwrap(), vec![3, 4, 5, 6]);
    }

    #[test]
    fn id_is_stable_and_latest_manifest_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, meta) = CheckpointDir::open(tmp.path()).unwrap();
        let (_, again) = CheckpointDir::open(tmp.path()).unwrap();
        assert_eq!(meta.id, again.id);
        assert!(dir.latest_manifest().unwrap().0.is_none());
        for e in [1, 2, 10] {
            dir.write_manifest(&manifest(e)).unwrap();
        }
        assert_eq!(dir.latest_manifest().unwrap().0.unwrap().epoch, 10);
        // A corrupt newest manifest falls back to the one before.
        std::fs::write(tmp.path().join("commits/11"), b"{\"half").unwrap();
        assert_eq!(dir.latest_manifest().unwrap().0.unwrap().epoch, 10);
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
        assert_eq!(dir.numbered("commits").unwrap(), vec![4, 5]);
        assert_eq!(dir.state_epochs().unwrap(), vec![4, 5]);
        assert!(!tmp.path().join("commits/.5.tmp").exists());
    }

    #[test]
    fn state_entries_of_both_layouts_are_dated_and_purged() {
        use super::chain::state_entry_epoch;
        assert_eq!(state_entry_epoch("12-aggregate-0-0.bin"), Some(12));
        assert_eq!(state_entry_epoch(".12-aggregate-0-0.bin.tmp"), Some(12));
        assert_eq!(state_entry_epoch("7"), Some(7));
        assert_eq!(state_entry_epoch("7/aggregate-0-0.json"), Some(7));
        assert_eq!(state_entry_epoch("x7-a"), None);
        assert_eq!(state_entry_epoch("-a"), None);
        assert_eq!(state_entry_epoch("7a"), None);
        use super::chain::state_name;
        assert_eq!(state_name("state/12-join-3.bin"), Some("join-3.bin"));
        assert_eq!(state_name("state/12/join-3.bin"), Some("join-3.bin"));
        assert_eq!(state_name("state/x-join-3.bin"), None);

        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = CheckpointDir::open(tmp.path()).unwrap();
        // Epochs 1 and 2 as an older release laid them out, a temporary
        // file a crash left behind, then epochs 3 to 5 in the shared folder.
        for e in 1..=2u64 {
            let d = tmp.path().join(format!("state/{e}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("op-0-0.json"), b"{}").unwrap();
            dir.write_manifest(&manifest(e)).unwrap();
        }
        std::fs::write(tmp.path().join("state/.2-op-0-0.bin.tmp"), b"torn").unwrap();
        for e in 3..=5u64 {
            let rel = dir.write_state(e, "op-0-0.bin", b"{}").unwrap();
            assert_eq!(rel, format!("state/{e}-op-0-0.bin"));
            assert_eq!(super::chain::state_epoch(&rel), Some(e));
            dir.write_manifest(&manifest(e)).unwrap();
        }
        assert_eq!(dir.state_epochs().unwrap(), vec![1, 2, 3, 4, 5]);
        dir.purge(2).unwrap();
        assert_eq!(dir.state_epochs().unwrap(), vec![4, 5]);
        let mut left: Vec<String> = std::fs::read_dir(tmp.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["4-op-0-0.bin", "5-op-0-0.bin"]);
    }

    #[test]
    fn unwritable_directory_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = CheckpointDir::open(&file).unwrap_err().to_string();
        assert!(err.contains("not-a-dir"), "{err}");
    }
}
