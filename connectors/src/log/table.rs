//! A static table from a topic of the on-disk log: every record, from the
//! start of each partition to its end when the read begins, for a
//! stream-static join (`--table NAME=log:DIR/TOPIC`).
//!
//! Owns [`read_log_table`] and its [`LogTableReloader`] (for `refresh=`).
//! It reads through [`LogSource`] (the same
//! columns, decoding and offsets as a stream of the topic) and stops with
//! an error as soon as the table outgrows its bounds, or when a record's
//! key or value is not UTF-8: a lookup table is not read lossily. It must
//! not follow the topic after its end.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use runnel::continuous::TaskWaker;
use runnel::table::{StaticTable, TableLimits, TableReloader};
use runnel::{EngineError, PollStatus, Result, Row, Source, SourceContext, SourceOutput, Value};

use super::{LogSource, LogSourceOptions, LogTopic, StartingOffsets};

/// Rows read between two checks of the bounds.
const CHECK_EVERY: usize = 4096;

/// Collects the rows and an estimate of their bytes.
struct Collect {
    rows: Vec<Row>,
    bytes: usize,
}

impl SourceOutput for Collect {
    fn emit(&mut self, row: Row, _ingest_ns: u64) -> Result<()> {
        self.bytes += row
            .iter()
            .map(|v| match v {
                Value::Utf8(s) => s.len() + 4,
                _ => 8,
            })
            .sum::<usize>();
        self.rows.push(row);
        Ok(())
    }
}

/// Reads the topic at `path` into the table `name` (columns `key, value,
/// topic, partition, offset, timestamp`), within `limits`.
pub fn read_log_table(name: &str, path: &Path, limits: &TableLimits) -> Result<StaticTable> {
    let fail = |msg: String| {
        EngineError::Source(format!("static table `{name}` ({}): {msg}", path.display()))
    };
    let options = LogSourceOptions {
        starting_offsets: StartingOffsets::Earliest,
        until_idle: true,
        ..LogSourceOptions::default()
    };
    let mut source = LogSource::new(path, options).map_err(|e| fail(e.to_string()))?;
    let ctx = SourceContext {
        name: name.to_string(),
        waker: std::sync::Arc::new(TaskWaker::new()),
    };
    source.open(&ctx, None).map_err(|e| fail(e.to_string()))?;
    let mut out = Collect {
        rows: Vec::new(),
        bytes: 0,
    };
    let mut checked = 0;
    loop {
        match source.poll(&mut out).map_err(|e| fail(e.to_string()))? {
            PollStatus::Exhausted => break,
            _ if out.rows.len() >= checked + CHECK_EVERY => {
                checked = out.rows.len();
                StaticTable::check_rows(name, out.rows.len(), limits.max_rows)?;
                StaticTable::check_bytes(name, out.bytes, limits.max_bytes)?;
            }
            _ => {}
        }
    }
    let lossy = source
        .metrics()
        .into_iter()
        .find(|(k, _)| k == "lossyUtf8Records")
        .map_or(0, |(_, n)| n);
    if lossy > 0 {
        return Err(fail(format!(
            "{lossy} records have a key or value that is not UTF-8; a table is not read lossily"
        )));
    }
    StaticTable::from_rows_within(name, source.schema(), out.rows, limits)
}

/// Reloads a topic table for `refresh=` (see [`runnel::table::TableRefresh`]):
/// its fingerprint is the partitions' end offsets, so an append changes it.
pub struct LogTableReloader {
    name: String,
    path: PathBuf,
    limits: TableLimits,
}

impl LogTableReloader {
    /// Reloads what [`read_log_table`] read with the same arguments.
    pub fn new(name: &str, path: &Path, limits: &TableLimits) -> LogTableReloader {
        LogTableReloader {
            name: name.to_string(),
            path: path.to_path_buf(),
            limits: *limits,
        }
    }
}

impl TableReloader for LogTableReloader {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn fingerprint(&self) -> Result<u64> {
        let fail = |e: super::LogError| {
            EngineError::Source(format!(
                "static table `{}` ({}): cannot look at it: {e}",
                self.name,
                self.path.display()
            ))
        };
        let ends = LogTopic::open(&self.path)
            .map_err(fail)?
            .end_offsets()
            .map_err(fail)?;
        let mut h = DefaultHasher::new();
        ends.hash(&mut h);
        Ok(h.finish())
    }

    fn load(&self) -> Result<StaticTable> {
        read_log_table(&self.name, &self.path, &self.limits)
    }
}
