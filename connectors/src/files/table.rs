//! Static tables from files: a CSV or JSON-lines file, or a directory of
//! them, read once and whole for a stream-static join.
//!
//! Owns [`read_table`] and its [`FileTableReloader`] (for `refresh=`): the same framing, schema inference and column
//! decoding as the file source (so a table reads exactly as a stream of the
//! same files would), file after file in name order, stopping with an error
//! as soon as the rows or their bytes exceed the table's bounds. A bad record fails the
//! read, naming the file and line: a lookup table is not skipped over. It
//! must not stream, keep files open, or watch the directory for new files.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use runnel::table::{StaticTable, TableLimits, TableReloader};
use runnel::{EngineError, Result};

use super::decode::{self, Job, Setup};
use super::parse::Columns;
use super::reader::Framing;
use super::{infer_csv_file, list_dir, FileFormat, FileSourceOptions};

/// Reads the table `name` from `path` (a file, or a directory whose data
/// files are read in name order) in `format`, with the file source's
/// options (`header`, `schema`, `delimiter`, `null_value`, ...), refusing
/// more rows or bytes than `limits` allow.
pub fn read_table(
    name: &str,
    path: &Path,
    format: FileFormat,
    options: &FileSourceOptions,
    limits: &TableLimits,
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
    let mut bytes = 0usize;
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
        bytes += decoded.batch.get_array_memory_size();
        StaticTable::check_rows(name, rows, limits.max_rows)?;
        StaticTable::check_bytes(name, bytes, limits.max_bytes)?;
        batches.push(decoded.batch);
    }
    let batch = concat_batches(&schema, &batches)
        .map_err(|e| fail(format!("cannot join the files' rows: {e}")))?;
    StaticTable::from_batch_within(name, batch, limits)
}

/// How a file table's files are read.
enum TableFiles {
    /// CSV or JSON lines, with the file source's options.
    Text(FileFormat, FileSourceOptions),
    /// Parquet.
    Parquet,
}

/// Reloads a file table for `refresh=` (see [`runnel::table::TableRefresh`]):
/// its fingerprint is the data files' names, sizes and modification times.
pub struct FileTableReloader {
    name: String,
    path: PathBuf,
    files: TableFiles,
    limits: TableLimits,
}

impl FileTableReloader {
    /// Reloads what [`read_table`] read with the same arguments.
    pub fn new(
        name: &str,
        path: &Path,
        format: FileFormat,
        options: &FileSourceOptions,
        limits: &TableLimits,
    ) -> FileTableReloader {
        FileTableReloader {
            name: name.to_string(),
            path: path.to_path_buf(),
            files: TableFiles::Text(format, options.clone()),
            limits: *limits,
        }
    }

    /// Reloads what [`super::read_parquet_table`] read with the same
    /// arguments.
    pub fn parquet(name: &str, path: &Path, limits: &TableLimits) -> FileTableReloader {
        FileTableReloader {
            name: name.to_string(),
            path: path.to_path_buf(),
            files: TableFiles::Parquet,
            limits: *limits,
        }
    }
}

impl TableReloader for FileTableReloader {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn fingerprint(&self) -> Result<u64> {
        let fail = |e: std::io::Error| {
            EngineError::Source(format!(
                "static table `{}` ({}): cannot look at it: {e}",
                self.name,
                self.path.display()
            ))
        };
        let mut h = DefaultHasher::new();
        let meta = fs::metadata(&self.path).map_err(fail)?;
        let mut files: Vec<(String, fs::Metadata)> = Vec::new();
        if meta.is_dir() {
            for entry in fs::read_dir(&self.path).map_err(fail)? {
                let entry = entry.map_err(fail)?;
                files.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.metadata().map_err(fail)?,
                ));
            }
            files.sort_by(|a, b| a.0.cmp(&b.0));
        } else {
            files.push((String::new(), meta));
        }
        for (name, meta) in files {
            name.hash(&mut h);
            meta.len().hash(&mut h);
            meta.modified().ok().hash(&mut h);
        }
        Ok(h.finish())
    }

    fn load(&self) -> Result<StaticTable> {
        match &self.files {
            TableFiles::Text(format, options) => {
                read_table(&self.name, &self.path, *format, options, &self.limits)
            }
            TableFiles::Parquet => super::read_parquet_table(&self.name, &self.path, &self.limits),
        }
    }
}
