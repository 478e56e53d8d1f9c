//! Writing and restoring a large aggregation state through the checkpoint.
//!
//! Builds 1,000,000 groups (integer key, a count and an integer sum), then,
//! three times: writes them as one full state file and commits a manifest
//! through the checkpoint core on the local disk, as a running query writes
//! a full file (encoded from the checkpoint's copy of the state in place;
//! checksum, write, file and directory fsyncs included), restores them as a
//! restarted query does (read, checksum, decode, rebuild the hash tables),
//! and copies the restored state for the checkpoint's shadow, as a
//! restarted query with a checkpoint also does.
//! Prints each run and the median, and the bytes per group on disk.
//!
//! ```text
//! cargo bench -p runnel-benches --bench checkpoint [-- --groups N]
//! ```

use std::time::Instant;

use runnel::checkpoint::{Checkpointer, SourceCommit};
use runnel::state::{Accumulator, StateSnapshot, WindowedState, GLOBAL_WINDOW};
use runnel::{SourceOffset, Value};

fn main() {
    let mut groups = 1_000_000u64;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--groups") {
        groups = args[i + 1].parse().expect("--groups takes a number");
    }
    let snapshot = StateSnapshot {
        full: true,
        groups: (0..groups as i64)
            .map(|k| {
                (
                    GLOBAL_WINDOW,
                    [Value::Int64(k)].into_iter().collect(),
                    [
                        Accumulator::Count(1 + k % 1000),
                        Accumulator::SumInt(Some(k * 37)),
                    ]
                    .into_iter()
                    .collect(),
                )
            })
            .collect(),
        evicted: Vec::new(),
        positions: Vec::new(),
        columns: Default::default(),
    };
    // The state a running query's checkpoint keeps a copy of.
    let mut state = WindowedState::new();
    state.apply(snapshot).expect("one shape");
    // On the disk the build writes to (not a RAM-backed /tmp): fsync must
    // cost what it costs.
    let base = std::env::current_dir().expect("a working directory");
    let mut writes = Vec::new();
    let mut restores = Vec::new();
    let mut copies = Vec::new();
    let mut bytes_per_group = 0.0;
    for run in 1..=3 {
        let tmp = tempfile::tempdir_in(&base).expect("a scratch directory");
        let root = tmp.path().join("ckpt");
        let (mut ck, _) = Checkpointer::open(&root, None, 3).expect("opens");
        ck.seed(0, 0, state.copy());
        let started = Instant::now();
        // The first file of a partition is a full one.
        let (commit, _) = ck
            .write_changes(1, 0, 0, StateSnapshot::default(), 1_700_000_000_000_000)
            .expect("writes");
        assert!(commit.deltas.is_empty(), "a full file");
        ck.commit(
            1,
            vec![SourceCommit {
                name: "events".into(),
                offset: SourceOffset::Rows(groups),
            }],
            vec![commit.clone()],
            serde_json::Value::Null,
        )
        .expect("commits");
        let write_ms = started.elapsed().as_secs_f64() * 1e3;
        let size = std::fs::metadata(root.join(commit.file.as_deref().unwrap()))
            .expect("the state file")
            .len();
        bytes_per_group = size as f64 / groups as f64;

        let (ck, _) = Checkpointer::open(&root, None, 3).expect("opens");
        let started = Instant::now();
        let rec = ck.recover("events", 1, |_| 0).expect("recovers");
        let restore_ms = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(rec.aggregate[0].num_groups(), groups as usize);
        // A restarted query with a checkpoint also keeps a copy for the
        // checkpoint's shadow (full files are encoded from it).
        let started = Instant::now();
        let shadow = rec.aggregate[0].copy();
        let copy_ms = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(shadow.num_groups(), groups as usize);
        println!(
            "run {run}: write+fsync {write_ms:.1} ms, restore {restore_ms:.1} ms, shadow copy {copy_ms:.1} ms, {size} bytes"
        );
        writes.push(write_ms);
        restores.push(restore_ms);
        copies.push(copy_ms);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{groups} groups: write+fsync median {:.1} ms, restore median {:.1} ms, shadow copy median {:.1} ms, {bytes_per_group:.1} bytes per group",
        median(&mut writes),
        median(&mut restores),
        median(&mut copies)
    );
}
