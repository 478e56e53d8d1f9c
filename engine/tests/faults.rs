//! What the engine does when things go wrong: a failing sink, a full
//! checkpoint disk, and a source far faster than its sink.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::SequenceSource;
use runnel::{
    col, count_star, schema, DataFrame, DataType, EngineError, MemorySink, MemorySource,
    OutputMode, Row, Sink, SinkContext, Trigger,
};

struct FailAfter {
    rows: u64,
    limit: u64,
}

impl Sink for FailAfter {
    fn describe(&self) -> String {
        "FailAfter".into()
    }
    fn open(&mut self, _: &SinkContext, _: Option<&serde_json::Value>) -> runnel::Result<()> {
        Ok(())
    }
    fn write(&mut self, _: &Row) -> runnel::Result<()> {
        self.rows += 1;
        if self.rows > self.limit {
            return Err(EngineError::Sink("the disk is on fire".into()));
        }
        Ok(())
    }
    fn commit(&mut self, _: u64) -> runnel::Result<serde_json::Value> {
        Ok(serde_json::json!({ "rows": self.rows }))
    }
}

fn manifests(dir: &Path) -> Vec<serde_json::Value> {
    for e in std::fs::read_dir(dir.join("commits")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.contains(".tmp"),
            "a temporary manifest was left behind: {name}"
        );
    }
    let (ckpt, _) = runnel::checkpoint::CheckpointDir::open(dir).unwrap();
    let (_, skipped) = ckpt.latest_manifest().unwrap();
    assert!(skipped.is_empty(), "a manifest is corrupt: {skipped:?}");
    ckpt.epochs()
        .unwrap()
        .into_iter()
        .map(|e| {
            let m = ckpt
                .read_manifest(e)
                .unwrap_or_else(|err| panic!("manifest {e} is corrupt: {err}"));
            serde_json::to_value(m).unwrap()
        })
        .collect()
}

/// A failing sink stops the query with its error; the checkpoint keeps the
/// last good epoch, and a restart from it with a working sink loses nothing.
#[test]
fn a_failing_sink_leaves_the_last_good_epoch() {
    for trigger in [
        Trigger::Continuous {
            epoch_interval: Duration::from_millis(5),
        },
        Trigger::ProcessingTime(Duration::ZERO),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let n = 50_000;
        // Paced (20,000 rows take ≥ 300 ms) so that epochs become durable
        // before the sink fails, however loaded the machine is.
        let source = SequenceSource::new(n, 3, 1)
            .per_trigger(1_000)
            .paced(Duration::from_millis(1));
        let q = DataFrame::from_source("s", source)
            .write_stream(FailAfter {
                rows: 0,
                limit: 20_000,
            })
            .checkpoint(dir.path())
            .trigger(trigger)
            .start()
            .unwrap();
        let err = q.await_termination().unwrap_err();
        assert!(err.to_string().contains("on fire"), "{err}");
        let last = manifests(dir.path())
            .into_iter()
            .max_by_key(|m| m["epoch"].as_u64())
            .expect("some epochs were durable before the failure");
        let durable_rows = last["sink"]["rows"].as_u64().unwrap();
        assert!(
            durable_rows <= 20_000,
            "only rows the sink accepted are durable: {durable_rows}"
        );
        let resume = last["sources"][0]["offset"]["rows"].as_u64().unwrap();
        // Restart with a working sink: it sees everything after the durable offset.
        let (sink, table) = MemorySink::new("after");
        let q = DataFrame::from_source("s", SequenceSource::new(n, 3, 1).per_trigger(1_000))
            .write_stream(sink)
            .checkpoint(dir.path())
            .trigger(if trigger.is_micro_batch() {
                Trigger::AvailableNow
            } else {
                trigger
            })
            .start()
            .unwrap();
        q.await_termination().unwrap();
        let first = table.rows()[0][0].as_i64().unwrap() as u64;
        assert_eq!(
            first, resume,
            "{trigger:?}: the restart resumes at the durable offset"
        );
        assert_eq!(
            table.len() as u64,
            n - resume,
            "{trigger:?}: nothing lost after it"
        );
    }
}

fn mount_tmpfs(dir: &Path, size: &str) {
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "this test mounts a small tmpfs (it needs root, as on the project's machines)"
    );
}

fn unmount(dir: &Path) {
    let _ = std::process::Command::new("umount").arg(dir).status();
}

/// A checkpoint disk that fills up: the query fails with a clear checkpoint
/// error naming the path, and no manifest is corrupt or half-written.
#[test]
fn a_full_checkpoint_disk_fails_cleanly() {
    for trigger in [
        Trigger::Continuous {
            epoch_interval: Duration::from_millis(5),
        },
        Trigger::ProcessingTime(Duration::ZERO),
    ] {
        let dir = tempfile::tempdir().unwrap();
        mount_tmpfs(dir.path(), "256k");
        let ckpt = dir.path().join("ckpt");
        // One group per row: the state file outgrows the disk quickly.
        let (sink, _table) = MemorySink::new("t");
        let q = DataFrame::from_source("s", SequenceSource::new(200_000, 1, 1).per_trigger(2_000))
            .group_by([col("id")])
            .agg([count_star()])
            .write_stream(sink)
            .output_mode(OutputMode::Update)
            .checkpoint(&ckpt)
            .trigger(trigger)
            .start()
            .unwrap();
        let result = q.await_termination();
        let found = manifests(&ckpt);
        unmount(dir.path());
        let err = result.expect_err("the disk filled up");
        assert!(
            matches!(err, EngineError::Checkpoint { .. }),
            "{trigger:?}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("No space left") && text.contains("ckpt"),
            "{text}"
        );
        assert!(
            !found.is_empty(),
            "{trigger:?}: earlier epochs stayed durable"
        );
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

struct SlowSink(Arc<AtomicU64>);

impl Sink for SlowSink {
    fn describe(&self) -> String {
        "SlowSink".into()
    }
    fn open(&mut self, _: &SinkContext, _: Option<&serde_json::Value>) -> runnel::Result<()> {
        Ok(())
    }
    fn write(&mut self, _: &Row) -> runnel::Result<()> {
        if self.0.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
    fn commit(&mut self, _: u64) -> runnel::Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }
}

/// A source far faster than the sink: the rings fill and the source is held
/// back; resident memory stays flat while the overload lasts.
#[test]
fn overload_keeps_memory_bounded() {
    let written = Arc::new(AtomicU64::new(0));
    let (source, mut producer) = MemorySource::new(schema(&[("payload", DataType::Utf8)]));
    let q = DataFrame::from_source("firehose", source)
        .write_stream(SlowSink(written.clone()))
        .start()
        .unwrap();
    let payload = "x".repeat(200);
    let pushed = Arc::new(AtomicU64::new(0));
    let pushed2 = pushed.clone();
    let feeder = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(4) {
            // A fresh string per row, as a real source would allocate.
            if producer
                .push_blocking(runnel::row![payload.as_str()])
                .is_err()
            {
                break;
            }
            pushed2.fetch_add(1, Ordering::Relaxed);
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    let settled = resident_bytes();
    let mut peak = settled;
    for _ in 0..25 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(resident_bytes());
    }
    feeder.join().unwrap();
    q.await_termination().unwrap();
    let (pushed, written) = (
        pushed.load(Ordering::Relaxed),
        written.load(Ordering::Relaxed),
    );
    assert_eq!(pushed, written, "everything pushed was written");
    eprintln!(
        "resident after warm-up {} MiB, peak {} MiB; {pushed} rows",
        settled >> 20,
        peak >> 20
    );
    assert!(
        peak.saturating_sub(settled) < 8 << 20,
        "memory grew by {} MiB under overload",
        (peak - settled) >> 20
    );
}
