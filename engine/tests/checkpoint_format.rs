//! The checkpoint's on-disk format: checkpoints written by the previous
//! release (JSON, no checksums) still restore, and a damaged file is
//! detected by its checksum and never restored.
//!
//! `fixtures/json-era-checkpoint/` holds two checkpoints written by the
//! previous release: 1,800 rows of [`SequenceSource`] (1,200 keys) counted
//! per key, in micro-batch mode (3 batches of 600: a full state file and
//! two deltas) and in continuous mode (a full file and deltas).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::SequenceSource;
use runnel::{col, count_star, DataFrame, MemorySink, OutputMode, Row, StreamingQuery, Trigger};

const KEYS: u64 = 1_200;

fn fixture(mode: &str) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/json-era-checkpoint")
        .join(mode);
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join(mode);
    copy_dir(&src, &dst);
    (tmp, dst)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Counts per key over `rows` rows, resuming from `checkpoint`.
fn count(rows: u64, micro: bool, checkpoint: &Path) -> runnel::Result<(StreamingQuery, Vec<Row>)> {
    let (sink, table) = MemorySink::new("counts");
    let source = if micro {
        SequenceSource::new(rows, KEYS, 1).per_trigger(600)
    } else {
        SequenceSource::new(rows, KEYS, 1)
    };
    let query = DataFrame::from_source("events", source)
        .group_by([col("key")])
        .agg([count_star().alias("n")])
        .write_stream(sink)
        .output_mode(OutputMode::Update)
        .trigger(if micro {
            Trigger::AvailableNow
        } else {
            Trigger::Continuous {
                epoch_interval: Duration::from_millis(5),
            }
        })
        .checkpoint(checkpoint)
        .start()?;
    query.await_termination()?;
    Ok((query, table.rows()))
}

fn restores(mode: &str) {
    let (_tmp, dir) = fixture(mode);
    // 1,800 more rows: every key's count goes from 1.5 to 3 only if the
    // JSON state (full file and deltas) was restored.
    let (_, rows) = count(3_600, mode == "microbatch", &dir).unwrap();
    common::assert_every_key_counted(&rows, KEYS, 3);
    // What this release wrote beside the old files is sealed and binary.
    let newest = common::commit_numbers(&dir).into_iter().max().unwrap();
    let (_, _, bytes) = common::manifest_record(&dir, newest);
    assert!(bytes.starts_with(b"runnel-frame v1 crc32="));
    let m = common::manifest(&dir, newest);
    let named: Vec<&str> = std::iter::once(&m["operators"][0]["file"])
        .chain(m["operators"][0]["deltas"].as_array().into_iter().flatten())
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        named.iter().any(|f| f.ends_with(".bin")),
        "the new epochs wrote binary state: {named:?}"
    );
}

#[test]
fn a_json_era_micro_batch_checkpoint_restores() {
    restores("microbatch");
}

#[test]
fn a_json_era_continuous_checkpoint_restores() {
    restores("continuous");
}

/// A bit flipped in a state file the newest manifest names: the restart
/// fails and names the file; it never restores wrong counts.
#[test]
fn a_bit_flipped_state_file_is_detected_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    count(1_800, true, &dir).unwrap();
    let newest = common::commit_numbers(&dir).into_iter().max().unwrap();
    let m = common::manifest(&dir, newest);
    let rel = m["operators"][0]["deltas"]
        .as_array()
        .and_then(|d| d.last())
        .unwrap_or(&m["operators"][0]["file"])
        .as_str()
        .unwrap()
        .to_string();
    let path = dir.join(&rel);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x04;
    std::fs::write(&path, bytes).unwrap();
    let err = match count(3_600, true, &dir) {
        Ok((_, rows)) => panic!("restored from a damaged state file: {} rows", rows.len()),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&rel) && err.contains("damaged"),
        "the error names the file: {err}"
    );
}

/// A damaged newest manifest is skipped for the one before it (named in a
/// warning), and the logged batches after that one are re-run: the counts
/// still come out exact.
#[test]
fn a_bit_flipped_manifest_falls_back_without_losing_a_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    count(1_800, true, &dir).unwrap();
    let newest = common::commit_numbers(&dir).into_iter().max().unwrap();
    common::damage_manifest(&dir, newest, 0.5, 0x01);
    let (_, rows) = count(3_600, true, &dir).unwrap();
    common::assert_every_key_counted(&rows, KEYS, 3);
}
