//! Micro-batch reading: the records of whole files decoded straight into
//! Arrow column builders, files spread over the available cores.
//!
//! A CSV record's fields are first parsed into a small staging area (no
//! allocation: text borrows the record); only when every field is good is
//! the record appended to the builders, so a bad record leaves no partial
//! row behind and is handed back with its file, line, reason and text for
//! the source's bad-record policy. A JSON-lines record is read key by key
//! into cells that borrow its text, every cell is parsed, then the record is
//! appended: the same staging, with the same reasons as continuous mode. This module owns decoding only: it does not decide what
//! a bad record means, write dead letters, or keep positions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use runnel::clock::now_ns;
use runnel::{DataType, EngineError, Result, SchemaRef};

use super::json::{read_record, Cell};
use super::parse::{Columns, Kind, Parsed};
use super::reader::{Body, Framing, RawRecord, RecordReader};
use super::to_row;

/// Below this many bytes in a batch, files are decoded on the calling
/// thread: starting threads would cost more than they save.
const PARALLEL_MIN_BYTES: u64 = 4 << 20;

/// One file (or the rest of one) to decode.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) name: String,
    pub(crate) line: u64,
    pub(crate) byte: u64,
    pub(crate) limit: Option<u64>,
    /// Bytes expected (for spreading files over threads).
    pub(crate) size: u64,
}

/// A record that did not decode.
pub(crate) struct BadRecord {
    pub(crate) path: PathBuf,
    pub(crate) line: u64,
    pub(crate) reason: String,
    pub(crate) raw: Vec<u8>,
}

/// What decoding a run of files produced, in file order.
pub(crate) struct Decoded {
    pub(crate) batch: RecordBatch,
    pub(crate) ingest_ns: Vec<u64>,
    pub(crate) bad: Vec<BadRecord>,
    /// Files of the run that had gone from the directory.
    pub(crate) gone: Vec<PathBuf>,
    /// Files read to their end.
    pub(crate) files_read: u64,
}

/// What a decoder needs to know about the source.
#[derive(Clone, Copy)]
pub(crate) struct Setup<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) framing: Framing,
    pub(crate) cols: &'a Columns,
    pub(crate) schema: &'a SchemaRef,
    /// Whether a file read from its start begins with a header record.
    pub(crate) header: bool,
}

/// One column being built.
enum Builder {
    Boolean(BooleanBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
}

impl Builder {
    fn new(kind: Kind) -> Builder {
        const ROWS: usize = 1024;
        match kind {
            Kind::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(ROWS)),
            Kind::Int64 => Builder::Int64(Int64Builder::with_capacity(ROWS)),
            Kind::Float64 => Builder::Float64(Float64Builder::with_capacity(ROWS)),
            Kind::Utf8 => Builder::Utf8(StringBuilder::with_capacity(ROWS, ROWS * 16)),
            Kind::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(ROWS)),
            Kind::Date => Builder::Date(Date32Builder::with_capacity(ROWS)),
        }
    }

    /// Appends a parsed field; the kinds match by construction (a field is
    /// parsed by its column's kind), anything else is appended as null.
    #[inline]
    fn append(&mut self, p: &Parsed<'_>) {
        match (self, p) {
            (Builder::Boolean(b), Parsed::Boolean(v)) => b.append_value(*v),
            (Builder::Int64(b), Parsed::Int64(v)) => b.append_value(*v),
            (Builder::Float64(b), Parsed::Float64(v)) => b.append_value(*v),
            (Builder::Utf8(b), Parsed::Str(v)) => b.append_value(v),
            (Builder::Utf8(b), Parsed::Owned(v)) => b.append_value(v),
            (Builder::Timestamp(b), Parsed::Timestamp(v)) => b.append_value(*v),
            (Builder::Date(b), Parsed::Date(v)) => b.append_value(*v),
            (b, _) => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Boolean(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
        }
    }

    fn finish(self, dt: &DataType) -> ArrayRef {
        match self {
            Builder::Boolean(mut b) => Arc::new(b.finish()),
            Builder::Int64(mut b) => Arc::new(b.finish()),
            Builder::Float64(mut b) => Arc::new(b.finish()),
            Builder::Utf8(mut b) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => {
                let tz = match dt {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                };
                Arc::new(b.finish().with_timezone_opt(tz))
            }
            Builder::Date(mut b) => Arc::new(b.finish()),
        }
    }
}

/// A field between parsing and appending: text is taken from the record
/// again when appended, so the staging area borrows nothing.
enum Staged {
    Text,
    Parsed(Parsed<'static>),
}

impl Staged {
    #[inline]
    fn of(p: Parsed<'_>) -> Staged {
        match p {
            Parsed::Str(_) => Staged::Text,
            Parsed::Null => Staged::Parsed(Parsed::Null),
            Parsed::Boolean(v) => Staged::Parsed(Parsed::Boolean(v)),
            Parsed::Int64(v) => Staged::Parsed(Parsed::Int64(v)),
            Parsed::Float64(v) => Staged::Parsed(Parsed::Float64(v)),
            Parsed::Owned(v) => Staged::Parsed(Parsed::Owned(v)),
            Parsed::Timestamp(v) => Staged::Parsed(Parsed::Timestamp(v)),
            Parsed::Date(v) => Staged::Parsed(Parsed::Date(v)),
        }
    }
}

/// Decodes records of one schema into builders.
struct Decoder<'a> {
    setup: Setup<'a>,
    builders: Vec<Builder>,
    staged: Vec<Staged>,
    /// Scratch space of JSON records, kept between records (empty).
    cells: Vec<Cell<'static>>,
    parsed: Vec<Parsed<'static>>,
    out: Decoded,
}

/// An empty vector with `v`'s allocation, for elements that borrow for
/// another lifetime (the layouts are the same, so the buffer is reused).
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector is empty"))
        .collect()
}

impl<'a> Decoder<'a> {
    fn new(setup: Setup<'a>) -> Decoder<'a> {
        let cols = setup.cols;
        Decoder {
            setup,
            builders: (0..cols.len())
                .map(|i| Builder::new(cols.kind(i)))
                .collect(),
            staged: Vec::with_capacity(cols.len()),
            cells: Vec::with_capacity(cols.len()),
            parsed: Vec::with_capacity(cols.len()),
            out: Decoded {
                batch: RecordBatch::new_empty(setup.schema.clone()),
                ingest_ns: Vec::new(),
                bad: Vec::new(),
                gone: Vec::new(),
                files_read: 0,
            },
        }
    }

    /// Appends one record, or says why it is bad.
    fn record(&mut self, rec: &RawRecord<'_>) -> std::result::Result<(), String> {
        let cols = self.setup.cols;
        let Body::Csv { data, ends } = &rec.body else {
            if rec.too_long {
                return to_row(cols, rec, self.setup.framing.max_record_bytes).map(|_| ());
            }
            let Body::Json(text) = &rec.body else {
                unreachable!("a record is CSV or JSON")
            };
            let mut cells = recycle(std::mem::take(&mut self.cells));
            let mut parsed = recycle(std::mem::take(&mut self.parsed));
            let result = self.json_record(text, &mut cells, &mut parsed);
            self.cells = recycle(cells);
            self.parsed = recycle(parsed);
            return result;
        };
        if rec.too_long || ends.len() != cols.len() {
            // The same reasons, word for word, as continuous mode gives.
            return to_row(cols, rec, self.setup.framing.max_record_bytes).map(|_| ());
        }
        self.staged.clear();
        // One UTF-8 check for the whole record; fields split at ASCII
        // delimiters are then text too.
        let whole = std::str::from_utf8(data).ok();
        let text_of = |i: usize| -> Option<&str> {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            whole.and_then(|w| w.get(start..ends[i]))
        };
        for i in 0..cols.len() {
            let parsed = match text_of(i) {
                Some(t) => cols.text_parsed(i, t)?,
                None => cols.csv_parsed(i, Body::field(data, ends, i))?,
            };
            self.staged.push(Staged::of(parsed));
        }
        for (i, (b, st)) in self.builders.iter_mut().zip(&self.staged).enumerate() {
            match st {
                Staged::Text => b.append(&Parsed::Str(text_of(i).unwrap_or_else(|| {
                    // Text that was checked field by field.
                    std::str::from_utf8(Body::field(data, ends, i)).unwrap_or("")
                }))),
                Staged::Parsed(p) => b.append(p),
            }
        }
        Ok(())
    }

    /// Appends one JSON record: every cell is parsed before any is
    /// appended, so a bad record leaves no partial row.
    fn json_record<'r>(
        &mut self,
        text: &'r [u8],
        cells: &mut Vec<Cell<'r>>,
        parsed: &mut Vec<Parsed<'r>>,
    ) -> std::result::Result<(), String> {
        let cols = self.setup.cols;
        read_record(&cols.names, text, cells)?;
        for (i, cell) in cells.drain(..).enumerate() {
            parsed.push(cols.json_parsed(i, cell)?);
        }
        for (b, p) in self.builders.iter_mut().zip(parsed.iter()) {
            b.append(p);
        }
        Ok(())
    }

    /// Decodes one file of the run.
    fn file(&mut self, job: &Job) -> Result<()> {
        let path = self.setup.dir.join(&job.name);
        let mut reader =
            match RecordReader::open(&path, self.setup.framing, job.line, job.byte, job.limit) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.out.gone.push(path);
                    return Ok(());
                }
                Err(e) => return Err(EngineError::io("read", path, e)),
            };
        let mut skip_header = job.byte == 0 && self.setup.header;
        let ingest = now_ns();
        let mut rows = 0usize;
        loop {
            let rec = match reader.next_record() {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(e) => return Err(EngineError::io("read", path, e)),
            };
            if skip_header {
                skip_header = false;
                continue;
            }
            match self.record(&rec) {
                Ok(()) => rows += 1,
                Err(reason) => self.out.bad.push(BadRecord {
                    path: path.clone(),
                    line: rec.line,
                    reason,
                    raw: rec.raw.to_vec(),
                }),
            }
        }
        self.out.ingest_ns.extend(std::iter::repeat_n(ingest, rows));
        if job.limit.is_none() {
            self.out.files_read += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Decoded> {
        let columns: Vec<ArrayRef> = self
            .builders
            .into_iter()
            .zip(self.setup.schema.fields())
            .map(|(b, f)| b.finish(f.data_type()))
            .collect();
        self.out.batch = RecordBatch::try_new_with_options(
            self.setup.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(self.out.ingest_ns.len())),
        )
        .map_err(|e| EngineError::Source(format!("cannot build a batch: {e}")))?;
        Ok(self.out)
    }
}

/// Decodes `jobs` in order on one thread.
fn decode_run(setup: Setup<'_>, jobs: &[Job]) -> Result<Decoded> {
    let mut d = Decoder::new(setup);
    for job in jobs {
        d.file(job)?;
    }
    d.finish()
}

/// Splits `jobs` into at most `n` contiguous runs of about equal bytes.
fn split(jobs: &[Job], n: usize) -> Vec<&[Job]> {
    let total: u64 = jobs.iter().map(|j| j.size.max(1)).sum();
    let mut runs = Vec::with_capacity(n);
    let mut start = 0;
    let mut acc = 0u64;
    for (i, job) in jobs.iter().enumerate() {
        acc += job.size.max(1);
        let goal = total * (runs.len() as u64 + 1) / n as u64;
        if acc >= goal && runs.len() + 1 < n {
            runs.push(&jobs[start..=i]);
            start = i + 1;
        }
    }
    if start < jobs.len() {
        runs.push(&jobs[start..]);
    }
    runs
}

/// Decodes `jobs` into one batch in file order, spreading the files over
/// up to `threads` threads when there is enough to read.
pub(crate) fn decode(setup: Setup<'_>, jobs: &[Job], threads: usize) -> Result<Decoded> {
    let bytes: u64 = jobs.iter().map(|j| j.size).sum();
    let threads = threads.min(jobs.len()).max(1);
    if threads == 1 || bytes < PARALLEL_MIN_BYTES {
        return decode_run(setup, jobs);
    }
    let runs = split(jobs, threads);
    let parts = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|run| s.spawn(move || decode_run(setup, run)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(EngineError::Panic("a CSV decoder thread".into())))
            })
            .collect::<Result<Vec<Decoded>>>()
    })?;
    let mut parts = parts.into_iter();
    let mut all = parts.next().expect("at least one run");
    let mut batches = vec![all.batch.clone()];
    for p in parts {
        batches.push(p.batch);
        all.ingest_ns.extend(p.ingest_ns);
        all.bad.extend(p.bad);
        all.gone.extend(p.gone);
        all.files_read += p.files_read;
    }
    all.batch = arrow::compute::concat_batches(setup.schema, &batches)
        .map_err(|e| EngineError::Source(format!("cannot join the decoded batches: {e}")))?;
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, size: u64) -> Job {
        Job {
            name: name.into(),
            line: 0,
            byte: 0,
            limit: None,
            size,
        }
    }

    #[test]
    fn runs_are_contiguous_and_cover_every_file() {
        let jobs: Vec<Job> = (0..7).map(|i| job(&format!("f{i}"), 10 + i)).collect();
        for n in 1..=8 {
            let runs = split(&jobs, n);
            assert!(runs.len() <= n);
            let names: Vec<&str> = runs
                .iter()
                .flat_map(|r| r.iter())
                .map(|j| &*j.name)
                .collect();
            let want: Vec<&str> = jobs.iter().map(|j| &*j.name).collect();
            assert_eq!(names, want, "{n} runs");
        }
        assert_eq!(split(&[job("big", 1000), job("s", 1)], 2).len(), 2);
    }
}
