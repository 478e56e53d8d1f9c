//! The file sink under power loss at every I/O operation.
//!
//! A log topic (on the real file system) is read by a query whose
//! checkpoint *and* CSV output file both live on the crash-simulating file
//! system. A crash-free run counts the mutating operations; then, for each
//! of them, a fresh run loses power right before it (unsynced names vanish,
//! unsynced tails tear), the query is restarted on what survived and run to
//! the end, and the output file is checked: byte for byte the crash-free
//! file in micro-batch mode (append and update), every record at least once
//! under a single header in continuous mode.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel::checkpoint::{CrashFs, Storage};
use runnel::{col, count_star, DataFrame, OutputMode, StreamingQuery, Trigger};
use runnel_connectors::log::LogTopic;
use runnel_connectors::{FileSink, LogSource, LogSourceOptions, StartingOffsets};

const LIMIT: Duration = Duration::from_secs(60);
const RECORDS: u64 = 3_000;
const KEYS: u64 = 40;
const OUT: &str = "/out/result.csv";
const CHECKPOINT: &str = "/checkpoint";

#[derive(Clone, Copy, Debug)]
enum Case {
    /// Micro-batch, `SELECT value`, 300 records per batch: appended.
    MicroBatchAppend,
    /// Micro-batch, count per key in update mode: the table replaced.
    MicroBatchTable,
    /// Continuous, `SELECT value`: appended, cut back on recovery.
    ContinuousAppend,
}

fn topic(dir: &Path) -> LogTopic {
    let topic = LogTopic::create(dir, "events", 2).unwrap();
    let mut producer = topic.producer().unwrap();
    for i in 0..RECORDS {
        producer
            .send(
                Some((i % 2) as u32),
                Some(format!("k{}", i % KEYS).as_bytes()),
                Some(format!("v{i}").as_bytes()),
                1_600_000_000_000 + i as i64,
            )
            .unwrap();
    }
    producer.sync().unwrap();
    topic
}

impl Case {
    fn start(self, topic: &Path, fs: &Arc<CrashFs>) -> runnel::Result<StreamingQuery> {
        let micro = !matches!(self, Case::ContinuousAppend);
        let options = LogSourceOptions {
            starting_offsets: StartingOffsets::Earliest,
            until_idle: !micro,
            max_records_per_trigger: micro.then_some(300),
            ..LogSourceOptions::default()
        };
        let source = LogSource::new(topic, options)
            .map_err(|e| runnel::EngineError::Source(e.to_string()))?;
        let df = DataFrame::from_source("events", source);
        let (df, mode) = match self {
            Case::MicroBatchTable => (
                df.group_by([col("key")]).agg([count_star().alias("n")]),
                OutputMode::Update,
            ),
            _ => (df.select([col("value")]), OutputMode::Append),
        };
        let sink = FileSink::csv(OUT).with_storage(fs.clone() as Arc<dyn Storage>);
        let trigger = if micro {
            Trigger::AvailableNow
        } else {
            Trigger::Continuous {
                epoch_interval: Duration::from_millis(2),
            }
        };
        let mut writer = df
            .write_stream(sink)
            .output_mode(mode)
            .trigger(trigger)
            .checkpoint_on(CHECKPOINT, fs.clone() as Arc<dyn Storage>);
        let mut config = writer.query_config().clone();
        config.retain_epochs = 3;
        writer = writer.config(config);
        writer.start()
    }

    fn run(self, topic: &Path, fs: &Arc<CrashFs>) -> runnel::Result<()> {
        let query = self.start(topic, fs)?;
        assert!(
            query.await_termination_timeout(LIMIT)?,
            "{self:?}: the query did not end"
        );
        Ok(())
    }
}

fn output(fs: &CrashFs) -> String {
    String::from_utf8(fs.read(Path::new(OUT)).expect("the output file")).unwrap()
}

fn every_crash_point(case: Case) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let topic = topic(dir.path());
    let topic = topic.path().to_path_buf();
    let clean = Arc::new(CrashFs::new(1));
    case.run(&topic, &clean).expect("the crash-free run");
    let expected = output(&clean);
    let total = clean.ops();
    assert!(total > 20, "{case:?}: only {total} operations");
    for at in 1..=total {
        let fs = Arc::new(CrashFs::new(at * 7919 + 1));
        fs.crash_at(at);
        let _ = case.run(&topic, &fs);
        fs.power_loss();
        if let Err(e) = case.run(&topic, &fs) {
            panic!("{case:?}, power lost at operation {at} of {total}: recovery failed: {e}");
        }
        let got = output(&fs);
        let whe = format!("{case:?}, power lost at operation {at} of {total}");
        match case {
            Case::MicroBatchAppend | Case::MicroBatchTable => assert_eq!(got, expected, "{whe}"),
            Case::ContinuousAppend => {
                let mut lines = got.lines();
                assert_eq!(lines.next(), Some("value"), "{whe}: the header");
                let seen: BTreeSet<&str> = lines.collect();
                let want: BTreeSet<&str> = expected.lines().skip(1).collect();
                assert_eq!(want.len() as u64, RECORDS);
                assert_eq!(seen, want, "{whe}: records lost or foreign lines");
            }
        }
    }
    eprintln!(
        "{case:?}: {total} crash points in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn micro_batch_appended_file_is_exact_after_power_loss_at_every_operation() {
    every_crash_point(Case::MicroBatchAppend);
}

#[test]
fn micro_batch_table_file_is_exact_after_power_loss_at_every_operation() {
    every_crash_point(Case::MicroBatchTable);
}

#[test]
fn continuous_appended_file_keeps_every_record_after_power_loss_at_every_operation() {
    every_crash_point(Case::ContinuousAppend);
}
