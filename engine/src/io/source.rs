//! The `Source` trait.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::schema::arrow::rows_to_batch;
use crate::schema::{Row, SchemaRef};
use crate::wake::TaskWaker;

pub use super::offset::SourceOffset;

/// What a call to [`Source::poll`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollStatus {
    /// Rows were emitted; poll again soon.
    Emitted(usize),
    /// Nothing is available now.
    Idle,
    /// Nothing is available before the given [`crate::clock::now_ns`] time
    /// (a generator's next scheduled row); the task may sleep until shortly before.
    IdleUntil(u64),
    /// The input is finished for good (a bounded source read to its end).
    Exhausted,
}

/// Where a source puts its rows: straight into the first operator of the
/// source's task (plain calls, no queue in between).
pub trait SourceOutput {
    /// Emits one row that entered the engine at `ingest_ns`
    /// ([`crate::clock::now_ns`] time; a generator passes the scheduled time).
    fn emit(&mut self, row: Row, ingest_ns: u64) -> Result<()>;
}

/// The rows of an offset range as one Arrow record batch, in the source's
/// schema, with each row's ingest time ([`crate::clock::now_ns`] time).
#[derive(Clone, Debug)]
pub struct SourceBatch {
    /// The rows, column by column.
    pub batch: RecordBatch,
    /// When each row entered the engine (`ingest_ns.len() == batch.num_rows()`).
    pub ingest_ns: Vec<u64>,
}

/// Collects emitted rows for the default [`Source::read_batch`].
struct RowCollector {
    rows: Vec<Row>,
    ingest_ns: Vec<u64>,
}

impl SourceOutput for RowCollector {
    fn emit(&mut self, row: Row, ingest_ns: u64) -> Result<()> {
        self.rows.push(row);
        self.ingest_ns.push(ingest_ns);
        Ok(())
    }
}

/// Facts a source is opened with.
#[derive(Clone)]
pub struct SourceContext {
    /// The source's name in the query.
    pub name: String,
    /// Wakes the task that polls this source; a source fed from another
    /// thread calls [`TaskWaker::wake`] after handing over data.
    pub waker: Arc<TaskWaker>,
}

/// A stream of rows.
///
/// A source runs inside one engine task: `poll` is called in a loop and must
/// not block for long (a source doing blocking I/O says so with
/// [`Source::is_blocking`] and gets a task of its own). Epoch markers are
/// placed by the engine between calls to `poll`: [`Source::offset`] must then
/// name the position just after the last emitted row.
pub trait Source: Send + 'static {
    /// A short description for progress reports (`"MemorySource[...]"`).
    fn describe(&self) -> String;

    /// The schema of the rows this source emits.
    fn schema(&self) -> SchemaRef;

    /// Prepares to read, resuming after `start` when recovering from a
    /// checkpoint (`None`: from the beginning).
    fn open(&mut self, ctx: &SourceContext, start: Option<&SourceOffset>) -> Result<()>;

    /// Emits what is available now (a few hundred rows at most, so epoch
    /// markers and stop requests are seen promptly).
    fn poll(&mut self, out: &mut dyn SourceOutput) -> Result<PollStatus>;

    /// The position just after the last emitted row.
    fn offset(&self) -> SourceOffset;

    /// Told once everything up to `offset` is durable in a checkpoint (a
    /// source may then delete or acknowledge input).
    fn commit(&mut self, _offset: &SourceOffset) -> Result<()> {
        Ok(())
    }

    /// Whether data may be waiting right now. Checked just before the task
    /// parks, after it has published that it is going to sleep: a source fed
    /// from another thread (which wakes the task through
    /// [`SourceContext::waker`]) must answer from the same state its feeder
    /// writes, or a wake-up can be lost. Others may keep the default.
    fn ready_hint(&self) -> bool {
        false
    }

    /// Whether [`Source::poll`] may block on I/O; such a source is given a
    /// task of its own with a ring to the operators after it.
    fn is_blocking(&self) -> bool {
        false
    }

    /// Whether re-opening at an offset replays the same rows (needed for
    /// at-least-once recovery; a push-fed in-memory source is not).
    fn is_replayable(&self) -> bool {
        true
    }

    /// The source as [`Replayable`], when it can name offset ranges and
    /// read them again: micro-batch mode runs only on such sources. Those
    /// answer `Some(self)`; the default is `None`.
    fn as_replayable(&mut self) -> Option<&mut dyn Replayable> {
        None
    }

    /// Named progress counters (bad records skipped, files read), reported
    /// under the source in progress.
    fn metrics(&self) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// The source as `Any`, for the engine to recognise its own source types
    /// (the push source runs differently). Other sources keep the default.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// A source that names offset ranges and reads them again exactly: what
/// micro-batch mode needs, since it logs each batch's range before reading
/// it and re-reads a logged range after a crash. A source offers it through
/// [`Source::as_replayable`]; its rows are the ones [`Source::poll`] would
/// emit from the same positions.
pub trait Replayable: Source {
    /// Whether the input is finished for good (a bounded
    /// source read to its end). A micro-batch query stops once its source
    /// has nothing new and is exhausted; continuous mode learns the same from
    /// [`PollStatus::Exhausted`].
    fn is_exhausted(&self) -> bool {
        false
    }

    /// The offset that ends the next batch, i.e. just after
    /// everything that can be read now, within the source's per-trigger limits
    /// (such as a maximum number of files). Returning the current position
    /// means there is nothing new. The range is logged (made durable while
    /// it is read, and before any of its output reaches the sink), so it
    /// must be re-readable with [`Replayable::read_range`], and reading it
    /// must not be what makes it gone: a crash before the log is durable
    /// plans the batch again, possibly with a different end.
    fn latest_offset(&mut self) -> Result<SourceOffset>;

    /// Emits exactly the rows after `start` (`None`: from
    /// the beginning) up to and including `end`, an offset this source
    /// returned from [`Replayable::latest_offset`] (possibly in an earlier run).
    fn read_range(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        out: &mut dyn SourceOutput,
    ) -> Result<()>;

    /// The same rows as [`Replayable::read_range`], as one
    /// Arrow batch. Sources that can decode into columns directly override
    /// it; the default collects the rows of `read_range` and converts them.
    fn read_batch(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
    ) -> Result<SourceBatch> {
        let mut out = RowCollector {
            rows: Vec::new(),
            ingest_ns: Vec::new(),
        };
        self.read_range(start, end, &mut out)?;
        Ok(SourceBatch {
            batch: rows_to_batch(&self.schema(), &out.rows)?,
            ingest_ns: out.ingest_ns,
        })
    }
}
