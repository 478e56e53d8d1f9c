//! The in-memory source (pushed from a producer handle) and sink (a named
//! result table), for embedding and tests.

// `PushError::Full` hands the row back by value: boxing it would allocate on
// exactly the path (a full ring) where the caller is already behind.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::{
    upsert_by_key, OutputMode, PollStatus, Sink, SinkContext, Source, SourceContext, SourceOffset,
    SourceOutput,
};
use crate::clock::now_ns;
use arrow::record_batch::RecordBatch;

use crate::error::{EngineError, Result};
use crate::schema::arrow::rows_to_batch;
use crate::schema::column::Column;
use crate::schema::{Row, SchemaRef, Value};
use crate::wake::TaskWaker;

/// Rows the in-memory source moves from its producer per poll.
const POLL_BATCH: usize = 256;

struct MemoryShared {
    waker: OnceLock<Arc<TaskWaker>>,
    closed: AtomicBool,
}

/// A source fed by a [`MemoryProducer`] from any thread, through a bounded
/// lock-free ring. Not replayable: after a restart it continues with whatever
/// is pushed next.
pub struct MemorySource {
    schema: SchemaRef,
    rows: rtrb::Consumer<(Row, u64)>,
    shared: Arc<MemoryShared>,
    consumed: u64,
}

/// The producer handle of a [`MemorySource`]. Dropping it ends the stream.
pub struct MemoryProducer {
    rows: rtrb::Producer<(Row, u64)>,
    shared: Arc<MemoryShared>,
}

/// Why a push did not go through.
#[derive(Debug, PartialEq)]
pub enum PushError {
    /// The ring is full (the engine is behind): the row is handed back.
    Full(Row),
    /// The query is gone.
    Closed,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("the source's ring is full"),
            PushError::Closed => f.write_str("the query reading this source has ended"),
        }
    }
}

impl std::error::Error for PushError {}

impl MemorySource {
    /// A source with `schema` and a ring of 65,536 rows.
    pub fn new(schema: SchemaRef) -> (MemorySource, MemoryProducer) {
        Self::with_capacity(schema, 1 << 16)
    }

    /// A source with `schema` and a ring of `capacity` rows.
    pub fn with_capacity(schema: SchemaRef, capacity: usize) -> (MemorySource, MemoryProducer) {
        let (tx, rx) = rtrb::RingBuffer::new(capacity.max(1));
        let shared = Arc::new(MemoryShared {
            waker: OnceLock::new(),
            closed: AtomicBool::new(false),
        });
        (
            MemorySource {
                schema,
                rows: rx,
                shared: shared.clone(),
                consumed: 0,
            },
            MemoryProducer { rows: tx, shared },
        )
    }
}

impl MemoryProducer {
    /// Pushes a row that enters the engine now.
    #[inline]
    pub fn push(&mut self, row: Row) -> Result<(), PushError> {
        self.push_at(row, now_ns())
    }

    /// Pushes a row with an explicit ingest time ([`crate::clock::now_ns`]
    /// time): an open-loop generator passes the row's scheduled time so that
    /// a stalled engine shows up as latency.
    #[inline]
    pub fn push_at(&mut self, row: Row, ingest_ns: u64) -> Result<(), PushError> {
        if self.rows.is_abandoned() {
            return Err(PushError::Closed);
        }
        match self.rows.push((row, ingest_ns)) {
            Ok(()) => {
                if let Some(w) = self.shared.waker.get() {
                    w.wake_if_sleeping();
                }
                Ok(())
            }
            Err(rtrb::PushError::Full((row, _))) => Err(PushError::Full(row)),
        }
    }

    /// Pushes a row, waiting (spin, then yield) while the ring is full.
    pub fn push_blocking(&mut self, row: Row) -> Result<(), PushError> {
        let mut row = row;
        let mut spins = 0u32;
        loop {
            match self.push(row) {
                Err(PushError::Full(back)) => {
                    row = back;
                    spins += 1;
                    if spins < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                other => return other,
            }
        }
    }

    /// Rows that can be pushed without waiting.
    pub fn free_slots(&self) -> usize {
        self.rows.slots()
    }

    /// Ends the stream: the source reports itself exhausted once drained.
    pub fn close(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if let Some(w) = self.shared.waker.get() {
            w.wake();
        }
    }
}

impl Drop for MemoryProducer {
    fn drop(&mut self) {
        self.close();
    }
}

impl Source for MemorySource {
    fn describe(&self) -> String {
        "MemorySource".to_string()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn open(&mut self, ctx: &SourceContext, _start: Option<&SourceOffset>) -> Result<()> {
        let _ = self.shared.waker.set(ctx.waker.clone());
        Ok(())
    }

    #[inline]
    fn poll(&mut self, out: &mut dyn SourceOutput) -> Result<PollStatus> {
        let mut n = 0;
        while n < POLL_BATCH {
            match self.rows.pop() {
                Ok((row, ingest_ns)) => {
                    out.emit(row, ingest_ns)?;
                    n += 1;
                }
                Err(_) => break,
            }
        }
        self.consumed += n as u64;
        if n > 0 {
            Ok(PollStatus::Emitted(n))
        } else if self.shared.closed.load(Ordering::Acquire) && self.rows.is_empty() {
            Ok(PollStatus::Exhausted)
        } else {
            Ok(PollStatus::Idle)
        }
    }

    fn ready_hint(&self) -> bool {
        !self.rows.is_empty() || self.shared.closed.load(Ordering::Acquire)
    }

    fn offset(&self) -> SourceOffset {
        SourceOffset::Rows(self.consumed)
    }

    fn is_replayable(&self) -> bool {
        false
    }

    /// `offsetsBehindLatest`: rows pushed and not yet taken (waiting in the
    /// ring).
    fn metrics(&self) -> Vec<(String, u64)> {
        vec![("offsetsBehindLatest".to_string(), self.rows.slots() as u64)]
    }
}

/// A named, queryable result table kept in memory, written by a [`MemorySink`].
///
/// Rows become visible when their epoch commits. In update and complete mode
/// a row replaces the row with the same key (when the query keeps its keys),
/// so the table is always the current result; in append mode rows accumulate.
/// Batches a micro-batch query appends are kept as the Arrow batches they
/// are, and turned into rows only when [`MemoryTable::rows`] asks.
#[derive(Clone)]
pub struct MemoryTable {
    name: Arc<str>,
    inner: Arc<Mutex<TableState>>,
}

/// Rows as written: row by row, or as whole batches.
enum Chunk {
    Rows(Vec<Row>),
    /// A batch whose columns [`Column::all`] reads (checked when written).
    Batch(RecordBatch),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Rows(rows) => rows.len(),
            Chunk::Batch(b) => b.num_rows(),
        }
    }

    fn append_rows_to(&self, out: &mut Vec<Row>) {
        match self {
            Chunk::Rows(rows) => out.extend_from_slice(rows),
            Chunk::Batch(b) => {
                // Checked when the batch was written: every column reads.
                let cols = Column::all(b).unwrap_or_default();
                out.extend((0..b.num_rows()).map(|i| cols.iter().map(|c| c.value(i)).collect()));
            }
        }
    }
}

/// Appends `chunk` to `chunks`, joining rows to rows.
fn push_chunk(chunks: &mut Vec<Chunk>, chunk: Chunk) {
    match (chunks.last_mut(), chunk) {
        (_, c) if c.len() == 0 => {}
        (Some(Chunk::Rows(last)), Chunk::Rows(rows)) => last.extend(rows),
        (_, c) => chunks.push(c),
    }
}

#[derive(Default)]
struct TableState {
    schema: Option<SchemaRef>,
    chunks: Vec<Chunk>,
    index: HashMap<Vec<Value>, usize>,
    keys: Option<Vec<usize>>,
    upsert: bool,
    epochs: u64,
}

impl TableState {
    /// The table as one run of rows (for keyed replacement).
    fn rows_mut(&mut self) -> &mut Vec<Row> {
        if !matches!(self.chunks.as_slice(), [Chunk::Rows(_)]) {
            let mut rows = Vec::with_capacity(self.chunks.iter().map(Chunk::len).sum());
            for c in &self.chunks {
                c.append_rows_to(&mut rows);
            }
            self.chunks = vec![Chunk::Rows(rows)];
        }
        match &mut self.chunks[0] {
            Chunk::Rows(rows) => rows,
            Chunk::Batch(_) => unreachable!("made a run of rows above"),
        }
    }
}

impl MemoryTable {
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table's schema once the query has started.
    pub fn schema(&self) -> Option<SchemaRef> {
        self.lock().schema.clone()
    }

    /// A copy of the current rows, in first-written order.
    pub fn rows(&self) -> Vec<Row> {
        let t = self.lock();
        let mut rows = Vec::with_capacity(t.chunks.iter().map(Chunk::len).sum());
        for c in &t.chunks {
            c.append_rows_to(&mut rows);
        }
        rows
    }

    /// The current rows as one Arrow record batch (empty before the query
    /// has started); appended batches are joined as they are.
    pub fn record_batch(&self) -> Result<RecordBatch> {
        let t = self.lock();
        let schema = t
            .schema
            .clone()
            .unwrap_or_else(|| Arc::new(crate::schema::Schema::empty()));
        let batches = t
            .chunks
            .iter()
            .map(|c| match c {
                Chunk::Rows(rows) => rows_to_batch(&schema, rows),
                Chunk::Batch(b) => Ok(b.clone()),
            })
            .collect::<Result<Vec<_>>>()?;
        arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| EngineError::Eval(format!("memory table {}: {e}", self.name)))
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.lock().chunks.iter().map(Chunk::len).sum()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many epochs or batches have been committed into the table.
    pub fn commits(&self) -> u64 {
        self.lock().epochs
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TableState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for MemoryTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTable")
            .field("name", &self.name)
            .field("rows", &self.len())
            .finish()
    }
}

/// A sink that keeps the result table in memory (see [`MemoryTable`]).
///
/// Rows are buffered in the sink's task and applied to the table under its
/// lock once per epoch, never per row.
pub struct MemorySink {
    table: MemoryTable,
    pending: Vec<Chunk>,
    upsert: bool,
}

impl MemorySink {
    /// A sink and the handle of its table, named `name`.
    pub fn new(name: &str) -> (MemorySink, MemoryTable) {
        let table = MemoryTable {
            name: Arc::from(name),
            inner: Arc::new(Mutex::new(TableState::default())),
        };
        (MemorySink::with_table(table.clone()), table)
    }

    /// A sink writing into an existing table: a restarted query's rows
    /// land beside those of the run before.
    pub fn with_table(table: MemoryTable) -> MemorySink {
        MemorySink {
            table,
            pending: Vec::new(),
            upsert: false,
        }
    }
}

impl Sink for MemorySink {
    fn describe(&self) -> String {
        format!("MemorySink[{}]", self.table.name)
    }

    fn open(&mut self, ctx: &SinkContext, _recovered: Option<&serde_json::Value>) -> Result<()> {
        let mut t = self.table.lock();
        t.schema = Some(ctx.schema.clone());
        t.upsert = ctx.output_mode != OutputMode::Append && ctx.key_columns.is_some();
        t.keys = ctx.key_columns.clone();
        self.upsert = t.upsert;
        Ok(())
    }

    #[inline]
    fn write(&mut self, row: &Row) -> Result<()> {
        match self.pending.last_mut() {
            Some(Chunk::Rows(rows)) => rows.push(row.clone()),
            _ => self.pending.push(Chunk::Rows(vec![row.clone()])),
        }
        Ok(())
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        // Every column must read as engine values: checked once, here.
        Column::all(batch)?;
        push_chunk(&mut self.pending, Chunk::Batch(batch.clone()));
        Ok(())
    }

    fn commit(&mut self, _epoch: u64) -> Result<serde_json::Value> {
        let mut t = self.table.lock();
        let t = &mut *t;
        if self.upsert {
            let mut written = Vec::new();
            for c in self.pending.drain(..) {
                c.append_rows_to(&mut written);
            }
            let keys = t.keys.clone().unwrap_or_default();
            let mut index = std::mem::take(&mut t.index);
            let rows = t.rows_mut();
            for row in written {
                upsert_by_key(&keys, rows, &mut index, row);
            }
            t.index = index;
        } else {
            for c in self.pending.drain(..) {
                push_chunk(&mut t.chunks, c);
            }
        }
        t.epochs += 1;
        Ok(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{schema, DataType};

    struct Discard;

    impl SourceOutput for Discard {
        fn emit(&mut self, _row: Row, _ingest_ns: u64) -> Result<()> {
            Ok(())
        }
    }

    fn backlog(source: &MemorySource) -> u64 {
        let m = source.metrics();
        m.iter()
            .find(|(k, _)| k == "offsetsBehindLatest")
            .unwrap()
            .1
    }

    #[test]
    fn the_backlog_is_the_rows_waiting_in_the_ring() {
        let (mut source, mut producer) =
            MemorySource::with_capacity(schema(&[("x", DataType::Int64)]), 8);
        assert_eq!(backlog(&source), 0);
        for _ in 0..5 {
            producer.push(Row::new()).unwrap();
        }
        assert_eq!(backlog(&source), 5);
        source.poll(&mut Discard).unwrap();
        assert_eq!(backlog(&source), 0);
    }
}
