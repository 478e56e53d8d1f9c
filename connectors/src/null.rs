//! The null sink: result rows are counted and dropped (benchmarks; the
//! engine measures latency itself, at every sink).
//!
//! Counting costs one add per row in the sink's task; the totals are
//! published to the [`RowCounter`] handles once per commit, so readers see
//! them as of the last committed epoch or batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use runnel::{Result, Row, Sink, SinkContext};

#[derive(Debug, Default)]
struct Counts {
    rows: AtomicU64,
    commits: AtomicU64,
}

/// A handle on a [`NullSink`]'s counts, usable from any thread.
#[derive(Clone, Debug, Default)]
pub struct RowCounter(Arc<Counts>);

impl RowCounter {
    /// Rows written up to the last commit.
    pub fn rows(&self) -> u64 {
        self.0.rows.load(Ordering::Acquire)
    }

    /// Epochs or batches committed.
    pub fn commits(&self) -> u64 {
        self.0.commits.load(Ordering::Acquire)
    }
}

/// Counts rows and drops them (see the module docs).
#[derive(Debug, Default)]
pub struct NullSink {
    counts: RowCounter,
    rows: u64,
}

impl NullSink {
    /// A new sink with zero counts.
    pub fn new() -> NullSink {
        NullSink::default()
    }

    /// A handle on the counts.
    pub fn counter(&self) -> RowCounter {
        self.counts.clone()
    }

    /// Rows written so far, committed or not.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

impl Sink for NullSink {
    fn describe(&self) -> String {
        "NullSink".to_string()
    }

    fn open(&mut self, _ctx: &SinkContext, _recovered: Option<&serde_json::Value>) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn write(&mut self, _row: &Row) -> Result<()> {
        self.rows += 1;
        Ok(())
    }

    fn commit(&mut self, _epoch: u64) -> Result<serde_json::Value> {
        self.counts.0.rows.store(self.rows, Ordering::Release);
        self.counts.0.commits.fetch_add(1, Ordering::AcqRel);
        Ok(serde_json::Value::Null)
    }
}
