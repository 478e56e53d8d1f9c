//! The `Sink` trait and output modes.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;

use crate::error::{EngineError, Result};
use crate::schema::arrow::row_at;
use crate::schema::{Row, SchemaRef, Value};

/// What a query writes to its sink each epoch or batch (Spark's output modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Only new rows, final once written. Aggregations need a watermark: a
    /// window's row is written once the watermark passes its end.
    #[default]
    Append,
    /// Rows that changed. The sink keeps the result table by key.
    Update,
    /// The whole result table every time. No state is ever dropped.
    Complete,
}

impl fmt::Display for OutputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputMode::Append => "append",
            OutputMode::Update => "update",
            OutputMode::Complete => "complete",
        })
    }
}

impl FromStr for OutputMode {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<OutputMode> {
        match s.to_ascii_lowercase().as_str() {
            "append" => Ok(OutputMode::Append),
            "update" => Ok(OutputMode::Update),
            "complete" => Ok(OutputMode::Complete),
            other => Err(EngineError::Plan(format!(
                "unknown output mode '{other}': use append, update or complete"
            ))),
        }
    }
}

/// Facts a sink is opened with.
#[derive(Clone, Debug)]
pub struct SinkContext {
    /// The schema of the rows the sink receives.
    pub schema: SchemaRef,
    /// The query's output mode.
    pub output_mode: OutputMode,
    /// Columns that identify a result row (the grouping keys, window bounds
    /// included) when the query aggregates and keeps them; `None` otherwise.
    /// In update and complete modes a row replaces the row with equal keys.
    pub key_columns: Option<Vec<usize>>,
    /// The query's id: the same across restarts from one checkpoint, new
    /// for every run of a query without one. A sink that records what it
    /// committed in the destination keys the record by it.
    pub query_id: String,
    /// Whether an epoch replayed after a crash holds exactly the rows it
    /// held the first time: true in micro-batch mode (a batch is a logged
    /// range of offsets), false in continuous mode (epochs are cut by time).
    /// A sink that skips epochs it already committed is exactly-once only
    /// when it is true.
    pub replays_same_rows: bool,
    /// Whether the query keeps a checkpoint, so that a restart resumes from
    /// its newest durable epoch and replays what came after.
    pub checkpointed: bool,
    /// The newest epoch (or batch) the engine has made durable in its
    /// checkpoint. A sink that stages an epoch's rows (a prepared
    /// transaction) makes them visible once it passes.
    pub durable: DurableEpochs,
}

/// A read-only view of the newest durable epoch of a running query, for
/// sinks that finish an epoch's writes only once the engine's checkpoint
/// holds it (two-phase commit).
///
/// It is read at epoch boundaries, never per row.
#[derive(Clone, Debug, Default)]
pub struct DurableEpochs {
    committed: Arc<AtomicU64>,
    abort: Arc<AtomicBool>,
}

/// Why [`DurableEpochs::wait_for`] returned without the epoch being durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurableWait {
    /// The query is failing: the epoch may never become durable.
    Aborted,
    /// The time allowed ran out.
    TimedOut,
}

impl DurableEpochs {
    /// A view of `committed` (the newest durable epoch) that reports the
    /// query's failure through `abort`.
    pub fn new(committed: Arc<AtomicU64>, abort: Arc<AtomicBool>) -> DurableEpochs {
        DurableEpochs { committed, abort }
    }

    /// The newest durable epoch (0 before the first).
    pub fn get(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Whether the query is failing.
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }

    /// Records `epoch` as durable (the engine's coordinator does this; a
    /// test that drives a sink by hand does it in its place).
    pub fn advance(&self, epoch: u64) {
        self.committed.fetch_max(epoch, Ordering::AcqRel);
    }

    /// Waits until `epoch` is durable, polling every `poll` (the wait lasts
    /// about as long as the engine takes to write one checkpoint).
    pub fn wait_for(
        &self,
        epoch: u64,
        poll: Duration,
        timeout: Duration,
    ) -> std::result::Result<(), DurableWait> {
        let started = Instant::now();
        loop {
            if self.get() >= epoch {
                return Ok(());
            }
            if self.aborted() {
                return Err(DurableWait::Aborted);
            }
            if started.elapsed() >= timeout {
                return Err(DurableWait::TimedOut);
            }
            std::thread::sleep(poll);
        }
    }
}

/// Where results go.
///
/// In continuous mode `write` is called from one engine task for every result
/// row as it is produced; `commit(e)` is called when every row of epoch `e`
/// has been written and must make them durable (flush, fsync) before it
/// returns. What it returns is stored in the epoch's checkpoint and handed
/// back to [`Sink::open`] on recovery, so a sink can cut away anything written
/// after the last durable epoch.
pub trait Sink: Send + 'static {
    /// A short description for progress reports.
    fn describe(&self) -> String;

    /// Prepares to write. `recovered` is what `commit` returned for the epoch
    /// the query resumes from, if any.
    fn open(&mut self, ctx: &SinkContext, recovered: Option<&serde_json::Value>) -> Result<()>;

    /// Writes one result row.
    fn write(&mut self, row: &Row) -> Result<()>;

    /// Writes the rows of a batch (micro-batch mode hands its output over
    /// this way), in the order of the batch. The batch has the sink's schema
    /// by position; its column names are not the sink's to use. Sinks that
    /// can write columns directly override it; the default writes row by row.
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut row = Row::new();
        for i in 0..batch.num_rows() {
            row_at(batch, i, &mut row)?;
            self.write(&row)?;
        }
        Ok(())
    }
    /// Makes everything written so far durable as epoch `epoch`.
    fn commit(&mut self, epoch: u64) -> Result<serde_json::Value>;

    /// Called in continuous mode when the task that writes to the sink has
    /// no more input for the moment (once per idle spell, between rows of
    /// an epoch). A sink that commits rows in groups as they arrive commits
    /// what it holds here; the default does nothing.
    fn idle(&mut self) -> Result<()> {
        Ok(())
    }

    /// Called once when the query ends normally, after the last commit.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Puts `row` into a keyed result table (update and complete mode): it
/// replaces the row with the same values in the `keys` columns, found
/// through `index` (key → position in `rows`), or is appended.
pub fn upsert_by_key(
    keys: &[usize],
    rows: &mut Vec<Row>,
    index: &mut HashMap<Vec<Value>, usize>,
    row: Row,
) {
    let key: Vec<Value> = keys.iter().map(|&i| row[i].clone()).collect();
    match index.get(&key) {
        Some(&pos) => rows[pos] = row,
        None => {
            index.insert(key, rows.len());
            rows.push(row);
        }
    }
}
