//! Checkpoints: the one protocol both modes use to make epochs durable and
//! to recover from them.
//!
//! ```text
//! CHECKPOINT/
//!   metadata                 {"id": "<query id>"}: the id stays across restarts
//!   offsets/journal-<seq>    micro-batch only: each batch's offset ranges, appended
//!                            before the batch reads anything (the write-ahead log)
//!   commits/journal-<seq>    the manifests (JSON), one record per epoch or batch:
//!                            source offsets, state files, sink state; appended last
//!   state/<epoch|batch>-<name>  operator state (binary) referenced by a manifest
//!                            (releases before this one wrote state/<epoch>/<name>:
//!                            still read and purged)
//! ```
//!
//! Every file and record is sealed with a checksum ([`frame`]). A state file
//! is written to a temporary name, fsynced, renamed into place and its
//! directory fsynced; the directories are made once, fsynced into their
//! parents. A manifest or offset-log entry is a record appended to its
//! log's journal (`journal`) and made durable with one data sync: no file
//! is created or renamed per epoch. So a crash, even a power loss, leaves
//! either the old state or the new one, and a file or record damaged
//! afterwards is detected and never trusted. An epoch exists once its
//! manifest record is durable; state files without a manifest are ignored
//! and purged. Releases before the journal wrote `commits/<epoch>` and
//! `offsets/<batch>`, one file each: they are still read and purged.
//!
//! - [`Checkpointer`] (`core`): recovery, state files, commit and retention,
//!   used by both runtimes.
//! - [`CheckpointDir`] (`dir`): the layout, reading and writing each file.
//! - [`Storage`] (`storage`): the file operations every durable write goes
//!   through; [`LocalStorage`] and the crash-simulating [`CrashFs`].
//! - `journal`: the append-only files of the manifests and the offset log.
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
mod journal;
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
        // The manifests are records of one journal segment, removed a
        // segment at a time: all four are still there.
        assert_eq!(dir.numbered("commits").unwrap(), vec![3, 4, 5, 6]);
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
        // Manifests go a journal segment at a time, state files one by one.
        assert_eq!(dir.numbered("commits").unwrap(), vec![1, 2, 3, 4, 5]);
        assert_eq!(dir.state_epochs().unwrap(), vec![4, 5]);
        // Once the newest two are in a later segment, the first one goes.
        let last = 2 * journal::ROLL_RECORDS as u64 + 3;
        for e in 6..=last {
            dir.write_manifest(&manifest(e)).unwrap();
        }
        dir.purge(2).unwrap();
        let left = dir.numbered("commits").unwrap();
        assert_eq!(left.first(), Some(&(2 * journal::ROLL_RECORDS as u64 + 1)));
        assert_eq!(left.last(), Some(&last));
        let segments: Vec<String> = std::fs::read_dir(tmp.path().join("commits"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(segments, vec!["journal-00000003"]);
        // A later process reads what is left, and the newest wins.
        let (again, _) = CheckpointDir::open(tmp.path()).unwrap();
        assert_eq!(again.numbered("commits").unwrap(), left);
        assert_eq!(again.latest_manifest().unwrap().0.unwrap().epoch, last);
    }

    #[test]
    fn a_manifest_of_an_older_release_is_read_and_purged() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = CheckpointDir::open(tmp.path()).unwrap();
        // Epochs 1 and 2 as files, as releases before the journal wrote them.
        for e in 1..=2u64 {
            let json = serde_json::to_vec(&manifest(e)).unwrap();
            std::fs::write(tmp.path().join(format!("commits/{e}")), frame::seal(&json)).unwrap();
        }
        let (dir2, _) = CheckpointDir::open(tmp.path()).unwrap();
        assert_eq!(dir2.latest_manifest().unwrap().0.unwrap().epoch, 2);
        for e in 3..=5u64 {
            dir.write_manifest(&manifest(e)).unwrap();
        }
        assert_eq!(dir.numbered("commits").unwrap(), vec![1, 2, 3, 4, 5]);
        assert_eq!(dir.read_manifest(1).unwrap().epoch, 1);
        dir.purge(2).unwrap();
        assert_eq!(dir.numbered("commits").unwrap(), vec![3, 4, 5]);
        assert!(!tmp.path().join("commits/2").exists());
    }

    /// A checkpoint whose offset log holds batches 0, 1 and 2, each
    /// starting where the one before ended.
    fn three_logged_batches() -> (tempfile::TempDir, CheckpointDir) {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = CheckpointDir::open(tmp.path()).unwrap();
        let at = |rows: u64| {
            vec![SourceCommit {
                name: "s".into(),
                offset: SourceOffset::Rows(rows),
            }]
        };
        for b in 0..3 {
            dir.write_offset_log(&OffsetLogEntry {
                version: FORMAT_VERSION,
                batch_id: b,
                start: at(b * 10),
                end: at(b * 10 + 10),
                written_at_ms: 0,
            })
            .unwrap();
        }
        (tmp, dir)
    }

    #[test]
    fn a_damaged_offset_log_record_stops_recovery_and_is_named() {
        let (tmp, dir) = three_logged_batches();
        assert_eq!(dir.offset_log_after(None).unwrap().len(), 3);
        let (path, at) = dir.offset_entry_location(1).unwrap().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at.end as usize - 2] ^= 0x10;
        std::fs::write(&path, bytes).unwrap();
        let (again, _) = CheckpointDir::open(tmp.path()).unwrap();
        let err = again.offset_log_after(None).unwrap_err().to_string();
        assert!(err.contains("batch 1"), "{err}");
        assert!(
            err.contains(&format!("unreadable record at byte {}", at.start)),
            "{err}"
        );
    }

    #[test]
    fn a_damaged_newest_offset_log_record_is_refused_and_a_torn_one_passed_over() {
        let (tmp, dir) = three_logged_batches();
        let (path, at) = dir.offset_entry_location(2).unwrap().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // Whole but failing its checksum: batch 2 may have reached the sink.
        let mut flipped = bytes.clone();
        flipped[at.end as usize - 3] ^= 0x08;
        std::fs::write(&path, &flipped).unwrap();
        let (again, _) = CheckpointDir::open(tmp.path()).unwrap();
        let err = again.offset_log_after(Some(0)).unwrap_err().to_string();
        assert!(err.contains(&format!("byte {}", at.start)), "{err}");
        assert!(err.contains("after batch 1"), "{err}");
        // Cut short: an append a crash interrupted, never acknowledged.
        std::fs::write(&path, &bytes[..at.end as usize - 5]).unwrap();
        let (again, _) = CheckpointDir::open(tmp.path()).unwrap();
        let replay = again.offset_log_after(Some(0)).unwrap();
        assert_eq!(
            replay.iter().map(|e| e.batch_id).collect::<Vec<_>>(),
            vec![1]
        );
    }

    #[test]
    fn a_damaged_newest_record_falls_back_and_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = CheckpointDir::open(tmp.path()).unwrap();
        for e in 1..=3u64 {
            dir.write_manifest(&manifest(e)).unwrap();
        }
        let (path, at) = dir.manifest_location(3).unwrap().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at.end as usize - 1] ^= 0x20;
        std::fs::write(&path, bytes).unwrap();
        let (again, _) = CheckpointDir::open(tmp.path()).unwrap();
        let (m, skipped) = again.latest_manifest().unwrap();
        assert_eq!(m.unwrap().epoch, 2);
        assert_eq!(skipped.len(), 1);
        let said = skipped[0].to_string();
        assert!(said.contains("journal-00000001"), "{said}");
        assert!(said.contains(&format!("byte {}", at.start)), "{said}");
        // Rewinding drops what came after an epoch, for a later process too.
        again.discard_after(1).unwrap();
        let (third, _) = CheckpointDir::open(tmp.path()).unwrap();
        assert_eq!(third.numbered("commits").unwrap(), vec![1]);
        assert!(third.latest_manifest().unwrap().1.is_empty());
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
