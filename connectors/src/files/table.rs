//! Static tables from files: a CSV or JSON-lines file, or a directory of
//! them, read once and whole for a stream-static join.
//!
//! Owns [`read_table`]: the same framing, schema inference and column
//! decoding as the file source (so a table reads exactly as a stream of the
//! same files would), file after file in name order, stopping with an error
//! as soon as the rows exceed the table's bound. A bad record fails the
//! read, naming the file and line: a lookup table is not skipped over. It
//! must not stream, keep files open, or watch the directory for new files.

use std::fs;
use std::path::Path;

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use runnel::table::StaticTable;
use runnel::{EngineError, Result};

use super::decode::{self, Job, Setup};
use super::parse::Columns;
use super::reader::Framing;
use super::{infer_csv_file, list_dir, FileFormat, FileSourceOptions};

/// Reads the table `name` from `path` (a file, or a directory whose data
/// files are read in name order) in `format`, with the file source's
/// options (`header`, `schema`, `delimiter`, `null_value`, ...), refusing
/// more than `max_rows` rows.
pub fn read_table(
    name: &str,
    path: &Path,
    format: FileFormat,
    options: &FileSourceOptions,
    max_rows: usize,
) -> Result<StaticTable> {
    let fail = |msg: String| {
        EngineError::Source(format!("static table `{name}` ({}): {msg}", path.display()))
    };
    let meta = fs::metadata(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let (dir, files): (&Path, Vec<(String, u64)>) = if meta.is_dir() {
        let entries = list_dir(path, false).map_err(fail)?;
        (
            path,
            entries.into_iter().map(|e| (e.name, e.size)).collect(),
        )
    } else {
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .ok_or_else(|| fail("not a file name".into()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        (dir, vec![(file.to_string(), meta.len())])
    };
    let framing = Framing {
        format,
        delimiter: options.delimiter,
        quote: options.quote,
        max_record_bytes: options.max_record_bytes,
    };
    let ts_pattern = match &options.timestamp_format {
        Some(p) => Some(
            runnel::time::spark_pattern_to_chrono(p)
                .map_err(|e| fail(format!("timestamp_format: {e}")))?,
        ),
        None => None,
    };
    let schema = match (&options.schema, format) {
        (Some(s), _) => s.clone(),
        (None, FileFormat::Json) => {
            return Err(fail(
                "JSON lines need a schema: give one with the `schema` option \
                 (DDL, e.g. `id bigint, name string`)"
                    .into(),
            ))
        }
        (None, FileFormat::Csv) => {
            let Some((first, _)) = files.first() else {
                return Err(fail(
                    "no data file to infer a schema from; give one with the `schema` option".into(),
                ));
            };
            let probe = Columns::new(
                &runnel::Schema::empty(),
                &options.null_value,
                ts_pattern.clone(),
            )
            .map_err(fail)?;
            infer_csv_file(&dir.join(first), options, framing, &probe).map_err(fail)?
        }
    };
    let cols = Columns::new(&schema, &options.null_value, ts_pattern).map_err(fail)?;
    let setup = Setup {
        dir,
        framing,
        cols: &cols,
        schema: &schema,
        header: options.header && format == FileFormat::Csv,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut rows = 0usize;
    for (file, size) in files {
        let job = Job {
            name: file,
            line: 0,
            byte: 0,
            limit: None,
            size,
        };
        let decoded = decode::decode(setup, &[job], threads)?;
        if let Some(bad) = decoded.bad.first() {
            return Err(fail(format!(
                "bad record at {} line {}: {}",
                bad.path.display(),
                bad.line,
                bad.reason
            )));
        }
        rows += decoded.batch.num_rows();
        StaticTable::check_rows(name, rows, max_rows)?;
        batches.push(decoded.batch);
    }
    let batch = concat_batches(&schema, &batches)
        .map_err(|e| fail(format!("cannot join the files' rows: {e}")))?;
    StaticTable::from_batch_limited(name, batch, max_rows)
}
