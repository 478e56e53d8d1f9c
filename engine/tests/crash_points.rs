//! Power loss at every I/O operation of a run, in both modes.
//!
//! Each query writes its checkpoint through [`CrashFs`], which keeps what
//! was made durable (file fsync, directory fsync) apart from what was only
//! written. A crash-free run counts the file system's mutating operations;
//! then, for every one of them, a fresh run loses power right before it:
//! every later operation fails, unsynced names vanish and unsynced tails
//! tear. The query is restarted on what survived and run to the end, and
//! its output is checked against the crash-free run: micro-batch exactly,
//! continuous at least once with exact aggregates. The sinks stand for an
//! external system that survives the power loss (a database), so only the
//! checkpoint's own durability is on trial.
//!
//! The normal test run covers every operation of one run of each case. A
//! longer run repeats each case `RUNNEL_CRASH_ROUNDS` times, each round with
//! other tears of the unsynced tails (and, in continuous mode, other epoch
//! boundaries, which follow the clock):
//! `RUNNEL_CRASH_ROUNDS=5 cargo test --release -p runnel-engine --test crash_points`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::SequenceSource;
use runnel::checkpoint::CrashFs;
use runnel::{
    col, count_star, DataFrame, MemorySink, MemoryTable, OutputMode, Row, Sink, SinkContext,
    StreamingQuery, Trigger,
};

const LIMIT: Duration = Duration::from_secs(30);
const ROOT: &str = "/checkpoint";

/// An external store that keeps each batch's rows under the batch id,
/// replacing them when a batch is written again (the idempotent write a
/// micro-batch sink does): exactly-once shows as every batch holding
/// exactly the crash-free run's rows.
#[derive(Clone, Default)]
struct BatchStore {
    batches: Arc<Mutex<BTreeMap<u64, Vec<Row>>>>,
}

struct BatchStoreSink {
    store: BatchStore,
    pending: Vec<Row>,
}

impl Sink for BatchStoreSink {
    fn describe(&self) -> String {
        "BatchStore".into()
    }
    fn open(&mut self, _: &SinkContext, _: Option<&serde_json::Value>) -> runnel::Result<()> {
        Ok(())
    }
    fn write(&mut self, row: &Row) -> runnel::Result<()> {
        self.pending.push(row.clone());
        Ok(())
    }
    fn commit(&mut self, batch: u64) -> runnel::Result<serde_json::Value> {
        let rows = std::mem::take(&mut self.pending);
        self.store.batches.lock().unwrap().insert(batch, rows);
        Ok(serde_json::Value::Null)
    }
}

/// What a query produced, in a comparable form.
#[derive(Debug, PartialEq)]
enum Output {
    /// Rows per batch.
    Batches(BTreeMap<u64, Vec<i64>>),
    /// The final `(key, count)` table.
    Counts(BTreeMap<String, i64>),
    /// Every id seen, with how many times.
    Ids(BTreeMap<i64, usize>),
}

/// The outputs a query writes into, kept across its restarts.
enum Target {
    Store(BatchStore),
    Table(MemoryTable),
    Appended(MemoryTable),
}

impl Target {
    fn output(&self) -> Output {
        match self {
            Target::Store(s) => Output::Batches(
                s.batches
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(b, rows)| (*b, rows.iter().map(id_of).collect()))
                    .collect(),
            ),
            Target::Table(t) => Output::Counts(
                t.rows()
                    .iter()
                    .map(|r| (r[0].to_string(), r[1].as_i64().unwrap()))
                    .collect(),
            ),
            Target::Appended(t) => {
                let mut ids = BTreeMap::new();
                for r in t.rows() {
                    *ids.entry(id_of(&r)).or_insert(0) += 1;
                }
                Output::Ids(ids)
            }
        }
    }
}

fn id_of(r: &Row) -> i64 {
    r[0].as_i64().unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Case {
    /// Micro-batch, `SELECT id`, one batch per 500 rows.
    MicroBatchRows,
    /// Micro-batch, count per key (2,000 keys: state files are deltas).
    MicroBatchCounts,
    /// Continuous, count per key.
    ContinuousCounts,
    /// Continuous, `SELECT id`.
    ContinuousRows,
}

const ROWS: u64 = 5_000;
const KEYS: u64 = 2_000;

impl Case {
    fn target(self) -> Target {
        match self {
            Case::MicroBatchRows => Target::Store(BatchStore::default()),
            Case::MicroBatchCounts | Case::ContinuousCounts => {
                Target::Table(MemorySink::new("counts").1)
            }
            Case::ContinuousRows => Target::Appended(MemorySink::new("rows").1),
        }
    }

    /// Starts the query on `fs`, writing into `target`.
    fn start(self, fs: &Arc<CrashFs>, target: &Target) -> runnel::Result<StreamingQuery> {
        let micro = matches!(self, Case::MicroBatchRows | Case::MicroBatchCounts);
        let source = if micro {
            SequenceSource::new(ROWS, KEYS, 1).per_trigger(500)
        } else {
            SequenceSource::new(ROWS, KEYS, 1).paced(Duration::from_micros(300))
        };
        let df = DataFrame::from_source("events", source);
        let counts = matches!(self, Case::MicroBatchCounts | Case::ContinuousCounts);
        let df = if counts {
            df.group_by([col("key")]).agg([count_star().alias("n")])
        } else {
            df.select([col("id")])
        };
        let writer = match target {
            Target::Store(store) => df.write_stream(BatchStoreSink {
                store: store.clone(),
                pending: Vec::new(),
            }),
            Target::Table(table) | Target::Appended(table) => {
                df.write_stream(MemorySink::with_table(table.clone()))
            }
        };
        let trigger = if micro {
            Trigger::AvailableNow
        } else {
            Trigger::Continuous {
                epoch_interval: Duration::from_millis(2),
            }
        };
        let mut writer = writer
            .output_mode(if counts {
                OutputMode::Update
            } else {
                OutputMode::Append
            })
            .trigger(trigger)
            .checkpoint_on(ROOT, fs.clone() as Arc<dyn runnel::checkpoint::Storage>);
        let mut config = writer.query_config().clone();
        // Few manifests kept, so that purging is among the crash points.
        config.retain_epochs = 3;
        writer = writer.config(config);
        writer.start()
    }

    /// Runs to the end; `Err` if the query failed (as it does once the
    /// power is out).
    fn run(self, fs: &Arc<CrashFs>, target: &Target) -> runnel::Result<()> {
        let query = self.start(fs, target)?;
        assert!(
            query.await_termination_timeout(LIMIT)?,
            "{self:?}: the query did not end"
        );
        Ok(())
    }
}

/// Rounds of [`every_crash_point`] per case: `RUNNEL_CRASH_ROUNDS`, 1 by
/// default.
fn rounds() -> u64 {
    match std::env::var("RUNNEL_CRASH_ROUNDS") {
        Ok(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .unwrap_or_else(|| {
                panic!("RUNNEL_CRASH_ROUNDS={v}: not a number of rounds (1 or more)")
            }),
        Err(_) => 1,
    }
}

/// [`every_crash_point`] for each round.
fn every_crash_point_each_round(case: Case) {
    for round in 0..rounds() {
        every_crash_point(case, round);
    }
}

/// Loses power at every mutating operation of a crash-free run of `case`,
/// recovers, finishes and checks the output. `round` picks the tears of
/// unsynced tails.
fn every_crash_point(case: Case, round: u64) {
    let started = Instant::now();
    let clean_fs = Arc::new(CrashFs::new(1));
    let clean = case.target();
    case.run(&clean_fs, &clean).expect("the crash-free run");
    let expected = clean.output();
    let total = clean_fs.ops();
    assert!(total > 20, "{case:?}: only {total} operations");
    let mut covered = 0;
    let mut at = 1;
    while at <= total {
        let fs = Arc::new(CrashFs::new(at * 7919 + 1 + round * 104_729));
        fs.crash_at(at);
        let target = case.target();
        // The run fails once the power is out (or, if only its last purge
        // was cut, ends: purging frees space and nothing depends on it).
        let _ = case.run(&fs, &target);
        fs.power_loss();
        if let Err(e) = case.run(&fs, &target) {
            panic!("{case:?}, power lost at operation {at} of {total}: recovery failed: {e}");
        }
        let got = target.output();
        check(case, &expected, &got, at, total);
        covered += 1;
        at += 1;
    }
    eprintln!(
        "{case:?}, round {round}: {covered} crash points of {total} operations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn check(case: Case, expected: &Output, got: &Output, at: u64, total: u64) {
    let whe = format!("{case:?}, power lost at operation {at} of {total}");
    match (expected, got) {
        // Micro-batch: exactly the crash-free output, batch by batch.
        (Output::Batches(_), _) | (Output::Counts(_), _) => {
            assert_eq!(got, expected, "{whe}")
        }
        // Continuous: every id at least once.
        (Output::Ids(want), Output::Ids(have)) => {
            for id in want.keys() {
                assert!(have.contains_key(id), "{whe}: id {id} is missing");
            }
            assert_eq!(have.len(), want.len(), "{whe}: unknown ids");
        }
        _ => unreachable!(),
    }
}

#[test]
fn micro_batch_rows_survive_power_loss_at_every_operation() {
    every_crash_point_each_round(Case::MicroBatchRows);
}

#[test]
fn micro_batch_counts_survive_power_loss_at_every_operation() {
    every_crash_point_each_round(Case::MicroBatchCounts);
}

#[test]
fn continuous_counts_survive_power_loss_at_every_operation() {
    every_crash_point_each_round(Case::ContinuousCounts);
}

#[test]
fn continuous_rows_survive_power_loss_at_every_operation() {
    every_crash_point_each_round(Case::ContinuousRows);
}

/// The model itself: a checkpoint file written without its directory fsync
/// is gone after a power loss (so the suite above would catch a missing
/// one).
#[test]
fn a_name_never_synced_into_its_directory_is_lost() {
    use runnel::checkpoint::Storage;
    let fs = CrashFs::new(5);
    let dir = Path::new(ROOT);
    runnel::checkpoint::ensure_dir(&fs, dir).unwrap();
    fs.write_file(&dir.join("f"), b"x").unwrap();
    fs.sync_file(&dir.join("f")).unwrap();
    fs.power_loss();
    assert!(!fs.exists(&dir.join("f")));
}

/// A file system whose offset log is slow to make its entries durable, and
/// which remembers the newest batch whose entry is: the sink below checks
/// that it never sees a batch before that batch is logged (micro-batch mode
/// writes the entry while the batch is read and run).
#[derive(Debug)]
struct SlowOffsetLog {
    fs: CrashFs,
    logged: Arc<Mutex<Option<u64>>>,
}

impl runnel::checkpoint::Storage for SlowOffsetLog {
    fn write_file(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        self.fs.write_file(path, bytes)
    }
    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        self.fs.sync_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.fs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.fs.sync_dir(dir)
    }
    fn create_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.fs.create_dir(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.fs.exists(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.fs.list(dir)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.fs.read(path)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.fs.remove_file(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.fs.remove_dir_all(dir)
    }
    fn open_append(
        &self,
        path: &Path,
        mode: runnel::checkpoint::OpenMode,
    ) -> std::io::Result<Box<dyn runnel::checkpoint::AppendFile>> {
        let inner = self.fs.open_append(path, mode)?;
        if !path.parent().is_some_and(|d| d.ends_with("offsets")) {
            return Ok(inner);
        }
        Ok(Box::new(SlowAppend {
            inner,
            pending: Vec::new(),
            logged: self.logged.clone(),
        }))
    }
}

/// The offset log's journal as [`SlowOffsetLog`] gives it: each sync takes
/// 20 ms, and then notes the newest batch among the records it made durable.
#[derive(Debug)]
struct SlowAppend {
    inner: Box<dyn runnel::checkpoint::AppendFile>,
    pending: Vec<u8>,
    logged: Arc<Mutex<Option<u64>>>,
}

impl runnel::checkpoint::AppendFile for SlowAppend {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.pending.extend_from_slice(bytes);
        self.inner.append(bytes)
    }
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.pending.extend_from_slice(bytes);
        self.inner.write_at(offset, bytes)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        std::thread::sleep(Duration::from_millis(20));
        self.inner.sync()?;
        let text = String::from_utf8_lossy(&self.pending);
        let newest = text
            .match_indices("\"batch_id\":")
            .filter_map(|(i, key)| {
                let digits = text[i + key.len()..].split(|c: char| !c.is_ascii_digit());
                digits.into_iter().next()?.parse::<u64>().ok()
            })
            .max();
        if let Some(n) = newest {
            let mut logged = self.logged.lock().unwrap();
            *logged = Some(logged.map_or(n, |l| l.max(n)));
        }
        self.pending.clear();
        Ok(())
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.inner.truncate(len)
    }
    fn size(&self) -> std::io::Result<u64> {
        self.inner.size()
    }
}

/// Each batch the sink committed, with the newest logged batch then.
type Seen = Arc<Mutex<Vec<(u64, Option<u64>)>>>;

/// Records each batch the sink receives next to the newest logged batch
/// when its first row arrived.
struct LoggedFirstSink {
    storage: Arc<SlowOffsetLog>,
    seen: Seen,
    first_write: Option<Option<u64>>,
}

impl Sink for LoggedFirstSink {
    fn describe(&self) -> String {
        "LoggedFirst".into()
    }
    fn open(&mut self, _: &SinkContext, _: Option<&serde_json::Value>) -> runnel::Result<()> {
        Ok(())
    }
    fn write(&mut self, _: &Row) -> runnel::Result<()> {
        if self.first_write.is_none() {
            self.first_write = Some(*self.storage.logged.lock().unwrap());
        }
        Ok(())
    }
    fn commit(&mut self, batch: u64) -> runnel::Result<serde_json::Value> {
        // As of the batch's first row: nothing of it may arrive earlier.
        let logged = self
            .first_write
            .take()
            .unwrap_or_else(|| *self.storage.logged.lock().unwrap());
        self.seen.lock().unwrap().push((batch, logged));
        Ok(serde_json::Value::Null)
    }
}

#[test]
fn a_micro_batch_reaches_the_sink_only_once_it_is_logged() {
    let storage = Arc::new(SlowOffsetLog {
        fs: CrashFs::new(11),
        logged: Arc::new(Mutex::new(None)),
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let query =
        DataFrame::from_source("events", SequenceSource::new(2_000, 10, 1).per_trigger(400))
            .select([col("id")])
            .write_stream(LoggedFirstSink {
                storage: storage.clone(),
                seen: seen.clone(),
                first_write: None,
            })
            .output_mode(OutputMode::Append)
            .trigger(Trigger::AvailableNow)
            .checkpoint_on(
                ROOT,
                storage.clone() as Arc<dyn runnel::checkpoint::Storage>,
            )
            .start()
            .unwrap();
    assert!(query.await_termination_timeout(LIMIT).unwrap());
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    for (batch, logged) in seen.iter() {
        assert!(
            logged.is_some_and(|l| l >= *batch),
            "batch {batch} reached the sink while the newest logged batch was {logged:?}"
        );
    }
}
