//! CSV and JSON-lines file sinks: the query's result table in one file.
//!
//! Text form: a header row (CSV), timestamps `YYYY-MM-DD HH:MM:SS` UTC, null
//! as an empty field (CSV) or an omitted field (JSON), doubles in shortest
//! round-trip form.
//!
//! * **append** mode: rows are appended; `commit` flushes and fsyncs and
//!   returns the file's length, which the checkpoint keeps. On recovery the
//!   file is cut back to the length of the last durable epoch, so rows of an
//!   epoch that never became durable (and a torn last line) are removed
//!   before they are produced again.
//! * **update** and **complete** modes (with the query's key columns): the sink
//!   keeps the result table by key and, at each commit where it changed,
//!   replaces the file atomically (temporary file, fsync, rename). On recovery
//!   the table is read back from the file.
//!
//! Every write goes through a [`Storage`] (the local file system unless
//! [`FileSink::with_storage`] says otherwise), so the crash-simulating file
//! system can cut the power under this sink as under a checkpoint.
//!
//! This module owns only the file; it never decides epochs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use runnel::checkpoint::{ensure_dir, write_atomic, AppendFile, LocalStorage, OpenMode, Storage};
use runnel::io::upsert_by_key;
use runnel::schema::arrow::row_at;
use runnel::schema::column::{write_value_json, Column};
use runnel::{DataType, EngineError, OutputMode, Result, Row, SchemaRef, Sink, SinkContext, Value};

/// The text format of a [`FileSink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Json,
}

/// Writes the result table to one CSV or JSON-lines file (see the module docs).
pub struct FileSink {
    path: PathBuf,
    format: FileFormat,
    schema: Option<SchemaRef>,
    storage: Arc<dyn Storage>,
    mode: Mode,
}

/// Encoded rows held before they are appended to the file.
const WRITE_BUFFER_BYTES: usize = 1 << 16;

enum Mode {
    Unopened,
    Append {
        out: Box<dyn AppendFile>,
        /// Encoded rows not yet handed to the file.
        buf: Vec<u8>,
        /// The file's length, `buf` included.
        len: u64,
    },
    Table {
        keys: Vec<usize>,
        rows: Vec<Row>,
        index: HashMap<Vec<Value>, usize>,
        changed: bool,
    },
}

fn sink_err(path: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> EngineError {
    EngineError::SinkFailed {
        name: path.display().to_string(),
        source: std::sync::Arc::from(e.into()),
    }
}

impl FileSink {
    /// A sink writing `path` in `format`.
    pub fn new(path: impl Into<PathBuf>, format: FileFormat) -> FileSink {
        FileSink {
            path: path.into(),
            format,
            schema: None,
            storage: Arc::new(LocalStorage),
            mode: Mode::Unopened,
        }
    }

    /// Writes through `storage` instead of the local file system.
    pub fn with_storage(mut self, storage: Arc<dyn Storage>) -> FileSink {
        self.storage = storage;
        self
    }

    /// A CSV sink.
    pub fn csv(path: impl Into<PathBuf>) -> FileSink {
        Self::new(path, FileFormat::Csv)
    }

    /// A JSON-lines sink.
    pub fn json(path: impl Into<PathBuf>) -> FileSink {
        Self::new(path, FileFormat::Json)
    }

    fn schema(&self) -> &SchemaRef {
        self.schema.as_ref().expect("opened")
    }

    /// The text of one row, newline included.
    fn encode(&self, row: &Row, out: &mut Vec<u8>) {
        encode_row(self.format, self.schema(), row, out)
    }

    fn header(&self) -> Vec<u8> {
        match self.format {
            FileFormat::Csv => {
                let names: Vec<&str> = self
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                let mut out = Vec::new();
                let mut w = csv::WriterBuilder::new().from_writer(&mut out);
                let _ = w.write_record(&names);
                let _ = w.flush();
                drop(w);
                out
            }
            FileFormat::Json => Vec::new(),
        }
    }

    /// Reads a table this sink wrote back into rows.
    fn read_back(&self) -> Result<Vec<Row>> {
        let bytes = match self.storage.read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(sink_err(&self.path, e)),
        };
        let text = String::from_utf8(bytes).map_err(|e| sink_err(&self.path, e))?;
        let types: Vec<DataType> = self
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let parse = |text: Option<&str>, dt: &DataType| match text {
            None | Some("") => Value::Null,
            Some(t) if *dt == DataType::Utf8 => Value::str(t),
            Some(t) => Value::parse_as(t, dt).unwrap_or(Value::Null),
        };
        let mut rows = Vec::new();
        match self.format {
            FileFormat::Csv => {
                let mut r = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .from_reader(text.as_bytes());
                for rec in r.records() {
                    let rec = rec.map_err(|e| sink_err(&self.path, e))?;
                    rows.push(
                        types
                            .iter()
                            .enumerate()
                            .map(|(i, t)| parse(rec.get(i), t))
                            .collect(),
                    );
                }
            }
            FileFormat::Json => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let obj: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(line).map_err(|e| sink_err(&self.path, e))?;
                    let row = self
                        .schema()
                        .fields()
                        .iter()
                        .zip(&types)
                        .map(|(f, t)| match obj.get(f.name()) {
                            None | Some(serde_json::Value::Null) => Value::Null,
                            Some(serde_json::Value::String(s)) => parse(Some(s), t),
                            Some(other) => parse(Some(&other.to_string()), t),
                        })
                        .collect();
                    rows.push(row);
                }
            }
        }
        Ok(rows)
    }
}

/// The text of one row in `format`, newline included.
fn encode_row(format: FileFormat, schema: &SchemaRef, row: &Row, out: &mut Vec<u8>) {
    match format {
        FileFormat::Csv => {
            let mut text = String::new();
            for (i, v) in row.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                text.clear();
                if !v.is_null() {
                    let _ = write!(text, "{v}");
                }
                csv_field(&text, row.len(), out);
            }
            out.push(b'\n');
        }
        FileFormat::Json => {
            let mut first = true;
            for (f, v) in schema.fields().iter().zip(row.iter()) {
                if !v.is_null() {
                    json_name(f.name(), &mut first, out);
                    write_value_json(v, out);
                }
            }
            out.extend_from_slice(if first { b"{}\n" } else { b"}\n" });
        }
    }
}

/// Opens the object before the first field, or separates from the one
/// before, then writes `"name":`.
#[inline]
fn json_name(name: &str, first: &mut bool, out: &mut Vec<u8>) {
    out.push(if std::mem::take(first) { b'{' } else { b',' });
    // Serialising a string into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, name);
    out.push(b':');
}

/// The JSON lines of every row of `batch`, fields in schema order, null
/// fields left out (text the same as [`encode_row`]'s).
fn encode_json_batch(schema: &SchemaRef, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let cols = Column::all(batch)?;
    for i in 0..batch.num_rows() {
        let mut first = true;
        for (f, c) in schema.fields().iter().zip(&cols) {
            if !c.is_null(i) {
                json_name(f.name(), &mut first, out);
                c.write_json(i, out);
            }
        }
        out.extend_from_slice(if first { b"{}\n" } else { b"}\n" });
    }
    Ok(())
}

/// One CSV field as the `csv` crate writes it by default: quoted (quotes
/// doubled) when it holds a comma, a quote or a line break, and `""` when it
/// is the only field of its record and empty (so the line is not blank).
fn csv_field(text: &str, fields: usize, out: &mut Vec<u8>) {
    let needs = text
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        || (fields == 1 && text.is_empty());
    if !needs {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    out.push(b'"');
    for b in text.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// The CSV text of every row of `batch`, newline included, column by
/// column from the typed arrays (text the same as [`encode_row`]'s).
fn encode_csv_batch(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let n = batch.num_columns();
    let cols = Column::all(batch)?;
    let mut text = Vec::new();
    for i in 0..batch.num_rows() {
        for (c, column) in cols.iter().enumerate() {
            if c > 0 {
                out.push(b',');
            }
            if let Some(s) = column.str(i) {
                csv_field(s, n, out);
            } else {
                text.clear();
                column.write_text(i, &mut text);
                // The text of a value that is not a string is ASCII.
                csv_field(std::str::from_utf8(&text).unwrap_or_default(), n, out);
            }
        }
        out.push(b'\n');
    }
    Ok(())
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Rows after the last commit are handed to the file as a buffered
        // writer would; recovery cuts them back if they were never durable.
        if let Mode::Append { out, buf, .. } = &mut self.mode {
            if !buf.is_empty() {
                if let Err(e) = out.append(buf) {
                    tracing::warn!(path = %self.path.display(), "file sink: could not write on close: {e}");
                }
            }
        }
    }
}

impl Sink for FileSink {
    fn describe(&self) -> String {
        let kind = match self.format {
            FileFormat::Csv => "CsvSink",
            FileFormat::Json => "JsonSink",
        };
        format!("{kind}[{}]", self.path.display())
    }

    fn open(&mut self, ctx: &SinkContext, recovered: Option<&serde_json::Value>) -> Result<()> {
        if self.format == FileFormat::Csv {
            // CSV has no form for an array; Spark's CSV writer refuses it too.
            if let Some(f) = ctx
                .schema
                .fields()
                .iter()
                .find(|f| matches!(f.data_type(), DataType::List(_)))
            {
                return Err(EngineError::Plan(format!(
                    "the CSV sink {} cannot write column `{}` of type {}: CSV has no array \
                     type; write JSON lines, or turn the array into a string first \
                     (concat_ws(',', col) or CAST(col AS string))",
                    self.path.display(),
                    f.name(),
                    runnel::schema::type_name(f.data_type())
                )));
            }
        }
        self.schema = Some(ctx.schema.clone());
        // New folders and the output file's name are made durable in their
        // parents: an fsynced file in a folder a power loss forgets is lost.
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let storage = Arc::clone(&self.storage);
        ensure_dir(&*storage, dir).map_err(|e| sink_err(dir, e))?;
        let keyed = match (ctx.output_mode, &ctx.key_columns) {
            (OutputMode::Append, _) | (_, None) => None,
            (_, Some(keys)) => Some(keys.clone()),
        };
        if let Some(keys) = keyed {
            let mut rows = Vec::new();
            let mut index = HashMap::new();
            if recovered.is_some() {
                for row in self.read_back()? {
                    upsert_by_key(&keys, &mut rows, &mut index, row);
                }
            }
            self.mode = Mode::Table {
                keys,
                rows,
                index,
                changed: true,
            };
            return Ok(());
        }
        let committed = recovered.and_then(|r| r["len"].as_u64());
        let mut out = storage
            .open_append(&self.path, OpenMode::Create)
            .map_err(|e| sink_err(&self.path, e))?;
        storage.sync_dir(dir).map_err(|e| sink_err(dir, e))?;
        let actual = out.size().map_err(|e| sink_err(&self.path, e))?;
        let len = match committed {
            Some(c) if c <= actual => c,
            Some(c) => {
                return Err(sink_err(
                    &self.path,
                    format!("the file is shorter ({actual} bytes) than its last durable epoch ({c} bytes): it was changed outside the query"),
                ))
            }
            None => 0,
        };
        if len < actual {
            tracing::info!(path = %self.path.display(), "cutting {} bytes written after the last durable epoch", actual - len);
        }
        if len < actual {
            out.truncate(len).map_err(|e| sink_err(&self.path, e))?;
        }
        let mut buf = Vec::with_capacity(WRITE_BUFFER_BYTES);
        let mut len = len;
        if len == 0 {
            buf = self.header();
            len = buf.len() as u64;
        }
        self.mode = Mode::Append { out, buf, len };
        Ok(())
    }

    fn write(&mut self, row: &Row) -> Result<()> {
        match &mut self.mode {
            Mode::Append { out, buf, len } => {
                let before = buf.len();
                let schema = self.schema.as_ref().expect("opened");
                encode_row(self.format, schema, row, buf);
                *len += (buf.len() - before) as u64;
                if buf.len() >= WRITE_BUFFER_BYTES {
                    let written = out.append(buf);
                    buf.clear();
                    written.map_err(|e| sink_err(&self.path, e))?;
                }
                Ok(())
            }
            Mode::Table {
                keys,
                rows,
                index,
                changed,
            } => {
                upsert_by_key(keys, rows, index, row.clone());
                *changed = true;
                Ok(())
            }
            Mode::Unopened => Err(EngineError::Sink("file sink written before open".into())),
        }
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let schema = self.schema.as_ref();
        match (&mut self.mode, self.format) {
            (Mode::Append { out, buf, len }, format) => {
                let before = buf.len();
                match format {
                    FileFormat::Csv => encode_csv_batch(batch, buf)?,
                    FileFormat::Json => match schema {
                        Some(s) => encode_json_batch(s, batch, buf)?,
                        None => {
                            return Err(EngineError::Sink("file sink written before open".into()))
                        }
                    },
                }
                *len += (buf.len() - before) as u64;
                if buf.len() >= WRITE_BUFFER_BYTES {
                    let written = out.append(buf);
                    buf.clear();
                    written.map_err(|e| sink_err(&self.path, e))?;
                }
                Ok(())
            }
            _ => {
                // Keyed tables are kept as rows.
                let mut row = Row::new();
                for i in 0..batch.num_rows() {
                    row_at(batch, i, &mut row)?;
                    self.write(&row)?;
                }
                Ok(())
            }
        }
    }

    fn commit(&mut self, _epoch: u64) -> Result<serde_json::Value> {
        match &mut self.mode {
            Mode::Append { out, buf, len } => {
                if !buf.is_empty() {
                    out.append(buf).map_err(|e| sink_err(&self.path, e))?;
                    buf.clear();
                }
                out.sync().map_err(|e| sink_err(&self.path, e))?;
                Ok(serde_json::json!({ "len": *len }))
            }
            Mode::Table { changed, .. } if !*changed => Ok(serde_json::json!({ "table": true })),
            Mode::Table { .. } => {
                let mut bytes = self.header();
                if let Mode::Table { rows, .. } = &self.mode {
                    for row in rows {
                        self.encode(row, &mut bytes);
                    }
                }
                write_atomic(&*self.storage, &self.path, &bytes)
                    .map_err(|e| sink_err(&self.path, e))?;
                if let Mode::Table { changed, .. } = &mut self.mode {
                    *changed = false;
                }
                Ok(serde_json::json!({ "table": true }))
            }
            Mode::Unopened => Err(EngineError::Sink("file sink committed before open".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel::{row, schema, timestamp_type};
    use std::fs;

    fn ctx(mode: OutputMode, keys: Option<Vec<usize>>) -> SinkContext {
        SinkContext {
            schema: schema(&[
                ("k", DataType::Utf8),
                ("t", timestamp_type()),
                ("x", DataType::Float64),
            ]),
            output_mode: mode,
            key_columns: keys,
            query_id: "test".into(),
            replays_same_rows: true,
            checkpointed: false,
            durable: Default::default(),
        }
    }

    #[test]
    fn append_writes_spark_text_and_cuts_back_on_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut sink = FileSink::csv(&path);
        sink.open(&ctx(OutputMode::Append, None), None).unwrap();
        sink.write(&row!["a,b", Value::Timestamp(1_000_000), 1.0])
            .unwrap();
        let state = sink.commit(1).unwrap();
        sink.write(&row![Value::Null, Value::Timestamp(0), 0.1])
            .unwrap();
        sink.commit(2).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "k,t,x\n\"a,b\",1970-01-01 00:00:01,1.0\n,1970-01-01 00:00:00,0.1\n"
        );
        // Recover at epoch 1: the second row goes.
        let mut again = FileSink::csv(&path);
        again
            .open(&ctx(OutputMode::Append, None), Some(&state))
            .unwrap();
        again.write(&row!["c", Value::Null, Value::Null]).unwrap();
        again.commit(2).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "k,t,x\n\"a,b\",1970-01-01 00:00:01,1.0\nc,,\n"
        );
    }

    #[test]
    fn a_batch_is_written_as_its_rows_would_be() {
        let rows = vec![
            row!["a,b", Value::Timestamp(1_000_000), 1.0],
            row![Value::Null, Value::Null, Value::Null],
            row!["\"q\"\n", Value::Timestamp(-1), f64::NAN],
            row!["é", Value::Timestamp(1_500), -0.0],
        ];
        let c = ctx(OutputMode::Append, None);
        let batch = runnel::schema::arrow::rows_to_batch(&c.schema, &rows).unwrap();
        for (name, make) in [
            (
                "out.csv",
                (|p: &Path| FileSink::csv(p)) as fn(&Path) -> FileSink,
            ),
            ("out.json", |p: &Path| FileSink::json(p)),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (by_row, by_batch) = (dir.path().join("r").join(name), dir.path().join(name));
            let mut sink = make(&by_row);
            sink.open(&c, None).unwrap();
            for r in &rows {
                sink.write(r).unwrap();
            }
            sink.commit(1).unwrap();
            let mut sink = make(&by_batch);
            sink.open(&c, None).unwrap();
            sink.write_batch(&batch).unwrap();
            sink.commit(1).unwrap();
            let text = fs::read_to_string(&by_row).unwrap();
            assert_eq!(fs::read_to_string(&by_batch).unwrap(), text, "{name}");
            if name.ends_with("json") {
                // Fields in schema order, nulls left out, as Spark writes them.
                assert!(text
                    .starts_with("{\"k\":\"a,b\",\"t\":\"1970-01-01 00:00:01\",\"x\":1.0}\n{}\n"));
            }
        }
    }

    #[test]
    fn update_mode_keeps_the_table_by_key_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.json");
        let mut sink = FileSink::json(&path);
        let c = ctx(OutputMode::Update, Some(vec![0, 1]));
        sink.open(&c, None).unwrap();
        sink.write(&row!["a", Value::Timestamp(0), 1.0]).unwrap();
        sink.write(&row!["b", Value::Timestamp(0), 2.0]).unwrap();
        sink.write(&row!["a", Value::Timestamp(0), 3.5]).unwrap();
        let state = sink.commit(1).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"k\":\"a\",\"t\":\"1970-01-01 00:00:00\",\"x\":3.5}\n{\"k\":\"b\",\"t\":\"1970-01-01 00:00:00\",\"x\":2.0}\n"
        );
        let mut again = FileSink::json(&path);
        again.open(&c, Some(&state)).unwrap();
        again.write(&row!["b", Value::Timestamp(0), 9.0]).unwrap();
        again.commit(2).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"x\":3.5") && text.contains("\"x\":9.0"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 2);
    }
}
