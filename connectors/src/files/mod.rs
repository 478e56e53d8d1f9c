//! The file source: a directory read as a stream, like Spark's file source,
//! for CSV and JSON-lines files.
//!
//! # What is read
//!
//! Every regular file directly in the directory, except names starting with
//! `.` or `_` (hidden files, `_SUCCESS`, `_temporary`); subdirectories are
//! ignored. Files are taken in plain byte order of their names
//! (`day-10.csv` comes before `day-9.csv`: zero-pad numbers in names), or
//! newest modification time first with
//! [`FileSourceOptions::latest_first`]. Files that appear while the query
//! runs are picked up: the directory is listed again when the source runs
//! out of files, at most every 50 ms. A file must be complete when it
//! appears (write it elsewhere or under a `.`/`_` name, then rename it in):
//! a file is read once, to the end it has at that moment.
//!
//! * **CSV** ([`FileFormat::Csv`]): optional header, delimiter, quote
//!   (quoted fields may hold the delimiter, line breaks and doubled quotes).
//!   The schema is given (DDL) or inferred at construction from up to
//!   [`FileSourceOptions::infer_rows`] records of the first file: bigint,
//!   double, boolean, timestamp, else string; column names come from the
//!   header, or are `_c0, _c1, …`. An empty field (quoted or not) or
//!   [`FileSourceOptions::null_value`] is null.
//! * **JSON lines** ([`FileFormat::Json`]): one object per line; a schema is
//!   required. A missing field is null; for a timestamp column a number is
//!   seconds since the epoch (fractions allowed) and a string is
//!   `yyyy-MM-dd HH:mm:ss[.f]`, ISO 8601 or
//!   [`FileSourceOptions::timestamp_format`]. Blank lines are ignored.
//!
//! # Offsets
//!
//! An offset is a [`FileOffset`], stored as `{"files": {"done": ["a.csv", …],
//! "file": "b.csv", "line": 120, "byte": 4096}}`: the files read to their end, in reading order, and the
//! file being read with the physical lines and bytes consumed in it (`file`
//! is `null` between files). A restart resumes exactly there: no file or
//! line is read twice or skipped. `done` holds the names of read files
//! that are still in the directory: a name whose file has gone (deleted or
//! archived by [`CleanSource`], or by anyone) is dropped from later
//! offsets, and a new file that reuses such a name is read as a new file.
//! So with `clean_source` the list stays as short as the files awaiting
//! cleanup; without it, it grows with the directory: every checkpointed
//! offset carries every name (about 25 bytes each: 300 files ≈ 8 KB, but
//! 100,000 files ≈ 2.5 MB written at every epoch), so very large
//! directories should use `clean_source`.
//!
//! # Modes
//!
//! * continuous: [`Source::poll`] reads at most 256 records per call through
//!   a buffered reader; each row's ingest time is taken as it is read.
//!   `IdleUntil` (the next directory listing) when there is nothing to read;
//!   `Exhausted` once [`FileSourceOptions::until_idle`] holds and a fresh
//!   listing after the last file found nothing new.
//! * micro-batch: [`Replayable::latest_offset`] advances by whole files, within
//!   `max_files_per_trigger` / `max_bytes_per_trigger` (at least one file);
//!   [`Replayable::read_range`] re-reads exactly the files of a logged range.
//!
//! # Bad records and cleanup
//!
//! See [`BadRecordPolicy`] and [`CleanSource`]. Line numbers are 1-based
//! physical lines. Dead letters are written (unbuffered, one `write` each)
//! as bad records are met and synced to disk in [`Source::commit`]; a batch
//! re-run after a crash may write its dead letters twice. Cleanup happens
//! in [`Source::commit`] (and, on restart, in [`Source::open`] for the
//! files of the recovered offset), so only files whose rows are durable
//! are touched. In continuous mode the engine does not (yet) pass the last
//! epoch of a run to `commit`, so the files finished in that epoch are
//! cleaned up when a query next starts from the same checkpoint.
//!
//! [`FileFormat`] is the enum the file sink uses too.
//!
//! This module owns reading and bookkeeping of files in one directory; it
//! must not decide epochs or batches (the engine does) nor buffer rows
//! beyond one poll.

mod decode;
mod json;
mod options;
mod parquet;
mod parse;
mod reader;
mod table;

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use runnel::checkpoint::{ensure_dir, AppendFile, LocalStorage, OpenMode, Storage};
use runnel::clock::now_ns;
use runnel::Replayable;
use runnel::{
    EngineError, FileOffset, PollStatus, Result, Row, SchemaRef, Source, SourceBatch,
    SourceContext, SourceOffset, SourceOutput,
};

pub use crate::file_sink::FileFormat;
pub use options::{BadRecordPolicy, CleanSource, FileSourceOptions, OPTION_KEYS};
pub use parquet::read_parquet_table;
pub use table::{read_table, FileTableReloader};

use parse::Columns;
use reader::{Body, Framing, RawRecord, RecordReader};

/// Records (good or bad) handled per poll at most.
const MAX_PER_POLL: usize = 256;

/// Least time between two listings of the directory while idle.
const RESCAN_NS: u64 = 50_000_000;

/// Where the source is (see the module docs for the stored form).
type Position = FileOffset;

/// One file in a listing.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    size: u64,
    modified: SystemTime,
}

/// A file being read.
struct OpenFile {
    path: PathBuf,
    reader: RecordReader,
    skip_header: bool,
    warned: bool,
}

/// What one stretch of reading did.
#[derive(Default)]
struct Step {
    emitted: usize,
    processed: usize,
    eof: bool,
}

/// A directory of CSV or JSON-lines files read as a stream (see the module
/// docs).
pub struct FileSource {
    dir: PathBuf,
    format: FileFormat,
    opts: FileSourceOptions,
    schema: SchemaRef,
    cols: Columns,
    framing: Framing,
    name: String,
    pos: Position,
    done_set: HashSet<String>,
    current: Option<OpenFile>,
    pending: VecDeque<String>,
    listing: Vec<Entry>,
    present: HashSet<String>,
    scanned_at_ns: Option<u64>,
    scanned_since_finish: bool,
    last_batch_end: Option<SourceOffset>,
    cleaned: HashSet<String>,
    dead_letter: Option<Box<dyn AppendFile>>,
    dead_letter_dirty: bool,
    bad_records: u64,
    files_read: u64,
    files_cleaned: u64,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("dir", &self.dir)
            .field("format", &self.format)
            .field("position", &self.pos)
            .finish()
    }
}

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

fn format_name(format: FileFormat) -> &'static str {
    match format {
        FileFormat::Csv => "csv",
        FileFormat::Json => "json",
    }
}

impl FileSource {
    /// A source reading the files of `dir` in `format`.
    ///
    /// The schema is resolved here: the one given, or for CSV one inferred
    /// from the first file. Errors (no such directory, JSON without a
    /// schema, nothing to infer from, a bad option) name the directory.
    pub fn new(
        dir: impl Into<PathBuf>,
        format: FileFormat,
        options: FileSourceOptions,
    ) -> Result<FileSource> {
        let dir = dir.into();
        let fail =
            |msg: String| EngineError::Source(format!("FileSource[{}]: {msg}", dir.display()));
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(fail("not a directory".into())),
            Err(e) => return Err(fail(format!("cannot read the directory: {e}"))),
        }
        if options.delimiter == options.quote {
            return Err(fail("delimiter and quote are the same character".into()));
        }
        if options.max_record_bytes == 0 {
            return Err(fail("max_record_bytes must be positive".into()));
        }
        if let CleanSource::Archive(archive) = &options.clean_source {
            let same = match (fs::canonicalize(archive), fs::canonicalize(&dir)) {
                (Ok(a), Ok(d)) => a == d,
                _ => false,
            };
            if same {
                return Err(fail(
                    "the archive directory of clean_source is the source directory".into(),
                ));
            }
        }
        let ts_pattern = match &options.timestamp_format {
            Some(p) => Some(
                runnel::time::spark_pattern_to_chrono(p)
                    .map_err(|e| fail(format!("timestamp_format: {e}")))?,
            ),
            None => None,
        };
        let framing = Framing {
            format,
            delimiter: options.delimiter,
            quote: options.quote,
            max_record_bytes: options.max_record_bytes,
        };
        let probe = Columns::new(
            &runnel::Schema::empty(),
            &options.null_value,
            ts_pattern.clone(),
        )
        .map_err(fail)?;
        let schema = match (&options.schema, format) {
            (Some(s), _) => s.clone(),
            (None, FileFormat::Json) => {
                return Err(fail(
                    "JSON lines need a schema: give one with the `schema` option \
                     (DDL, e.g. `id bigint, name string, ts timestamp`)"
                        .into(),
                ))
            }
            (None, FileFormat::Csv) => {
                infer_csv_schema(&dir, &options, framing, &probe).map_err(fail)?
            }
        };
        let cols = Columns::new(&schema, &options.null_value, ts_pattern).map_err(fail)?;
        Ok(FileSource {
            dir,
            format,
            opts: options,
            schema,
            cols,
            framing,
            name: "files".into(),
            pos: Position::default(),
            done_set: HashSet::new(),
            current: None,
            pending: VecDeque::new(),
            listing: Vec::new(),
            present: HashSet::new(),
            scanned_at_ns: None,
            scanned_since_finish: false,
            last_batch_end: None,
            cleaned: HashSet::new(),
            dead_letter: None,
            dead_letter_dirty: false,
            bad_records: 0,
            files_read: 0,
            files_cleaned: 0,
        })
    }

    /// A CSV source (see [`FileSource::new`]).
    pub fn csv(dir: impl Into<PathBuf>, options: FileSourceOptions) -> Result<FileSource> {
        Self::new(dir, FileFormat::Csv, options)
    }

    /// A JSON-lines source (see [`FileSource::new`]).
    pub fn json(dir: impl Into<PathBuf>, options: FileSourceOptions) -> Result<FileSource> {
        Self::new(dir, FileFormat::Json, options)
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The options the source was built with (the schema as resolved is
    /// [`Source::schema`]).
    pub fn options(&self) -> &FileSourceOptions {
        &self.opts
    }

    fn err(&self, msg: impl std::fmt::Display) -> EngineError {
        EngineError::Source(format!("FileSource[{}]: {msg}", self.dir.display()))
    }

    fn io_err(&self, path: &Path, e: io::Error) -> EngineError {
        EngineError::io("read", path, e)
    }

    fn parse_offset(&self, o: &SourceOffset) -> Result<Position> {
        o.files()
            .map_err(|e| self.err(format!("cannot resume: {e}")))
    }

    fn to_offset(p: &Position) -> SourceOffset {
        SourceOffset::Files(p.clone())
    }

    /// Lists the directory (in reading order) and remembers what is there.
    fn rescan(&mut self) -> Result<()> {
        let entries = list_dir(&self.dir, self.opts.latest_first).map_err(|e| self.err(e))?;
        self.present = entries.iter().map(|e| e.name.clone()).collect();
        self.pending = entries
            .iter()
            .filter(|e| !self.done_set.contains(&e.name) && self.pos.file.as_ref() != Some(&e.name))
            .map(|e| e.name.clone())
            .collect();
        self.listing = entries;
        self.scanned_at_ns = Some(now_ns());
        self.scanned_since_finish = true;
        Ok(())
    }

    fn rescan_due(&self) -> bool {
        match self.scanned_at_ns {
            None => true,
            Some(t) => !self.scanned_since_finish || now_ns().saturating_sub(t) >= RESCAN_NS,
        }
    }

    fn open_file(
        &self,
        name: &str,
        line: u64,
        byte: u64,
        limit: Option<u64>,
    ) -> io::Result<OpenFile> {
        let path = self.dir.join(name);
        let reader = RecordReader::open(&path, self.framing, line, byte, limit)?;
        Ok(OpenFile {
            path,
            reader,
            skip_header: byte == 0 && self.opts.header && self.format == FileFormat::Csv,
            warned: false,
        })
    }

    /// Continuous mode: makes `current` the next file to read; `false` when
    /// there is none now.
    fn open_next(&mut self) -> Result<bool> {
        if let Some(name) = self.pos.file.clone() {
            match self.open_file(&name, self.pos.line, self.pos.byte, None) {
                Ok(f) => self.current = Some(f),
                Err(e) if is_not_found(&e) => {
                    tracing::warn!(
                        source = %self.name,
                        file = %self.dir.join(&name).display(),
                        "a partly read file has gone; the rest of it cannot be read"
                    );
                    self.finish_file(name);
                }
                Err(e) => return Err(self.io_err(&self.dir.join(&name), e)),
            }
            return Ok(true);
        }
        loop {
            if self.pending.is_empty() {
                if !self.rescan_due() {
                    return Ok(false);
                }
                self.rescan()?;
            }
            let Some(name) = self.pending.pop_front() else {
                return Ok(false);
            };
            if self.done_set.contains(&name) {
                continue;
            }
            match self.open_file(&name, 0, 0, None) {
                Ok(f) => {
                    self.current = Some(f);
                    self.pos.file = Some(name);
                    self.pos.line = 0;
                    self.pos.byte = 0;
                    return Ok(true);
                }
                Err(e) if is_not_found(&e) => {
                    tracing::debug!(file = %name, "file vanished before it was read");
                }
                Err(e) => return Err(self.io_err(&self.dir.join(&name), e)),
            }
        }
    }

    /// Continuous mode: `name` was read to its end.
    fn finish_file(&mut self, name: String) {
        self.pos.file = None;
        self.pos.line = 0;
        self.pos.byte = 0;
        self.done_set.insert(name.clone());
        self.pos.done.push(name);
        self.files_read += 1;
        self.scanned_since_finish = false;
        if self.scanned_at_ns.is_some() {
            let (present, done_set, cleaned) =
                (&self.present, &mut self.done_set, &mut self.cleaned);
            self.pos.done.retain(|n| {
                let keep = present.contains(n);
                if !keep {
                    done_set.remove(n);
                    cleaned.remove(n);
                }
                keep
            });
        }
    }

    /// Reads up to `budget` records of `f`, emitting good rows; with
    /// `track`, the position follows every record.
    fn pump(
        &mut self,
        f: &mut OpenFile,
        budget: usize,
        out: &mut dyn SourceOutput,
        track: bool,
    ) -> Result<Step> {
        let mut step = Step::default();
        while step.processed < budget {
            let rec = match f.reader.next_record() {
                Ok(Some(rec)) => rec,
                Ok(None) => {
                    step.eof = true;
                    break;
                }
                Err(e) => return Err(self.io_err(&f.path, e)),
            };
            step.processed += 1;
            if f.skip_header {
                f.skip_header = false;
            } else {
                match to_row(&self.cols, &rec, self.framing.max_record_bytes) {
                    Ok(row) => {
                        out.emit(row, now_ns())?;
                        step.emitted += 1;
                    }
                    Err(reason) => {
                        let (line, raw) = (rec.line, rec.raw);
                        self.bad_record(&f.path, &mut f.warned, line, &reason, raw)?;
                    }
                }
            }
            if track {
                self.pos.line = f.reader.line();
                self.pos.byte = f.reader.byte();
            }
        }
        Ok(step)
    }

    fn bad_record(
        &mut self,
        path: &Path,
        warned: &mut bool,
        line: u64,
        reason: &str,
        raw: &[u8],
    ) -> Result<()> {
        self.bad_records += 1;
        let dead_letter = match &self.opts.bad_records {
            BadRecordPolicy::Fail => {
                return Err(EngineError::Source(format!(
                    "{}:{line}: {reason}",
                    path.display()
                )))
            }
            BadRecordPolicy::Skip => None,
            BadRecordPolicy::DeadLetter(p) => Some(p),
        };
        if !*warned {
            *warned = true;
            tracing::warn!(
                source = %self.name,
                file = %path.display(),
                line,
                reason,
                "bad record skipped (further bad records in this file are only counted)"
            );
        }
        if let (Some(dl_path), Some(file)) = (dead_letter, self.dead_letter.as_mut()) {
            let mut text = serde_json::json!({
                "source": self.name,
                "file": path.display().to_string(),
                "line": line,
                "reason": reason,
                "raw": String::from_utf8_lossy(raw),
            })
            .to_string();
            text.push('\n');
            file.append(text.as_bytes()).map_err(|e| {
                EngineError::Source(format!("dead-letter file {}: {e}", dl_path.display()))
            })?;
            self.dead_letter_dirty = true;
        }
        Ok(())
    }

    /// The files of the range `start..=end` to read, in order, and the
    /// end position.
    fn range_jobs(
        &self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
    ) -> Result<(Position, Vec<decode::Job>)> {
        let s = match start {
            Some(o) => self.parse_offset(o)?,
            None => Position::default(),
        };
        let e = self.parse_offset(end)?;
        let s_done: HashSet<&str> = s.done.iter().map(String::as_str).collect();
        // (file, line, byte, limit) to read, in order.
        let mut plan: Vec<(&str, u64, u64, Option<u64>)> = Vec::new();
        if let Some(f) = &s.file {
            if e.done.contains(f) {
                plan.push((f, s.line, s.byte, None));
            } else if e.file.as_ref() == Some(f) {
                plan.push((f, s.line, s.byte, Some(e.byte)));
            }
        }
        for n in &e.done {
            if !s_done.contains(n.as_str()) && s.file.as_ref() != Some(n) {
                plan.push((n, 0, 0, None));
            }
        }
        if let Some(f) = &e.file {
            if s.file.as_ref() != Some(f) {
                plan.push((f, 0, 0, Some(e.byte)));
            }
        }
        let jobs = plan
            .into_iter()
            .map(|(name, line, byte, limit)| {
                let size = match self.listing.iter().find(|l| l.name == name) {
                    Some(l) => l.size,
                    None => fs::metadata(self.dir.join(name)).map_or(0, |m| m.len()),
                };
                let end = limit.unwrap_or(size).min(size);
                decode::Job {
                    name: name.to_string(),
                    line,
                    byte,
                    limit,
                    size: end.saturating_sub(byte),
                }
            })
            .collect();
        Ok((e, jobs))
    }

    /// The range ending at `end` (parsed: `e`) has been read.
    fn range_read(&mut self, e: Position, end: &SourceOffset) {
        self.done_set = e.done.iter().cloned().collect();
        self.cleaned.retain(|n| self.done_set.contains(n));
        self.pos = e;
        self.last_batch_end = Some(end.clone());
        self.current = None;
        self.pending.clear();
    }

    fn warn_gone(&self, path: &Path) {
        tracing::warn!(
            source = %self.name,
            file = %path.display(),
            "a file of the batch has gone; the batch goes on without it"
        );
    }

    /// Deletes or archives the files in `names` that were read to their end.
    fn clean(&mut self, names: &[String]) {
        for name in names {
            if !self.done_set.contains(name) || self.cleaned.contains(name) {
                continue;
            }
            self.cleaned.insert(name.clone());
            let path = self.dir.join(name);
            let result = match &self.opts.clean_source {
                CleanSource::Off => return,
                CleanSource::Delete => fs::remove_file(&path),
                CleanSource::Archive(dir) => archive(&path, dir, name),
            };
            match result {
                Ok(()) => self.files_cleaned += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => tracing::warn!(
                    source = %self.name,
                    file = %path.display(),
                    "cannot clean up a file that was read: {e}"
                ),
            }
        }
    }

    fn sync_dead_letter(&mut self) -> Result<()> {
        if self.dead_letter_dirty {
            if let Some(f) = &mut self.dead_letter {
                f.sync()
                    .map_err(|e| self.err(format!("syncing the dead-letter file: {e}")))?;
            }
            self.dead_letter_dirty = false;
        }
        Ok(())
    }
}

/// Moves `path` into `dir` (a taken name gets a `.N` suffix).
fn archive(path: &Path, dir: &Path, name: &str) -> io::Result<()> {
    if !path.exists() {
        return Err(io::ErrorKind::NotFound.into());
    }
    fs::create_dir_all(dir)?;
    let mut target = dir.join(name);
    let mut k = 1;
    while target.exists() {
        target = dir.join(format!("{name}.{k}"));
        k += 1;
    }
    match fs::rename(path, &target) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Err(e),
        // Another file system: copy, then remove.
        Err(_) => {
            fs::copy(path, &target)?;
            fs::remove_file(path)
        }
    }
}

/// The data files of `dir`, in reading order.
fn list_dir(dir: &Path, latest_first: bool) -> std::result::Result<Vec<Entry>, String> {
    let rd = fs::read_dir(dir).map_err(|e| format!("cannot list the directory: {e}"))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| format!("cannot list the directory: {e}"))?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::debug!(dir = %dir.display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        // Follows symbolic links; a file gone since the listing is skipped.
        let Ok(meta) = fs::metadata(entry.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.push(Entry {
            name,
            size: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    if latest_first {
        out.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then_with(|| a.name.cmp(&b.name))
        });
    } else {
        out.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(out)
}

/// The row of a record, or why it is bad.
fn to_row(cols: &Columns, rec: &RawRecord<'_>, max: usize) -> std::result::Result<Row, String> {
    if rec.too_long {
        return Err(format!(
            "record is longer than max_record_bytes ({max} bytes)"
        ));
    }
    let mut row = Row::new();
    match &rec.body {
        Body::Csv { data, ends } => {
            if ends.len() != cols.len() {
                return Err(format!(
                    "expected {} fields, found {}",
                    cols.len(),
                    ends.len()
                ));
            }
            for i in 0..cols.len() {
                row.push(cols.csv_field(i, Body::field(data, ends, i))?);
            }
        }
        Body::Json(text) => {
            let mut cells = Vec::with_capacity(cols.len());
            json::read_record(&cols.names, text, &mut cells)?;
            for (i, cell) in cells.into_iter().enumerate() {
                row.push(cols.json_parsed(i, cell)?.into_value());
            }
        }
    }
    Ok(row)
}

/// Infers the schema of the CSV files in `dir` from the first file.
fn infer_csv_schema(
    dir: &Path,
    opts: &FileSourceOptions,
    framing: Framing,
    probe: &Columns,
) -> std::result::Result<SchemaRef, String> {
    let entries = list_dir(dir, opts.latest_first)?;
    let Some(first) = entries.first() else {
        return Err(
            "no data file to infer a schema from; give one with the `schema` option \
                    (DDL, e.g. `id bigint, name string`)"
                .into(),
        );
    };
    infer_csv_file(&dir.join(&first.name), opts, framing, probe)
}

/// The schema of one CSV file (see [`infer_csv_schema`]).
fn infer_csv_file(
    path: &Path,
    opts: &FileSourceOptions,
    framing: Framing,
    probe: &Columns,
) -> std::result::Result<SchemaRef, String> {
    let mut reader = RecordReader::open(path, framing, 0, 0, None)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut header: Option<Vec<String>> = None;
    let mut sample: Vec<Vec<String>> = Vec::new();
    while sample.len() < opts.infer_rows {
        let rec = reader
            .next_record()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let Some(rec) = rec else { break };
        let Body::Csv { data, ends } = rec.body else {
            break;
        };
        if rec.too_long {
            continue;
        }
        let fields: Vec<String> = (0..ends.len())
            .map(|i| String::from_utf8_lossy(Body::field(data, ends, i)).into_owned())
            .collect();
        if opts.header && header.is_none() {
            header = Some(fields);
        } else {
            sample.push(fields);
        }
    }
    let names = match header {
        Some(h) => parse::header_names(&h),
        None if opts.header => {
            return Err(format!(
                "{} is empty: no header to name the columns",
                path.display()
            ))
        }
        None => match sample.first() {
            Some(first) => (0..first.len()).map(|i| format!("_c{i}")).collect(),
            None => {
                return Err(format!(
                    "{} has no records to infer a schema from; give one with the `schema` option",
                    path.display()
                ))
            }
        },
    };
    Ok(parse::infer_schema(&names, &sample, probe))
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!(
            "FileSource[{}:{}]",
            format_name(self.format),
            self.dir.display()
        )
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn open(&mut self, ctx: &SourceContext, start: Option<&SourceOffset>) -> Result<()> {
        self.name = ctx.name.clone();
        self.pos = match start {
            Some(o) => self.parse_offset(o)?,
            None => Position::default(),
        };
        self.done_set = self.pos.done.iter().cloned().collect();
        self.last_batch_end = start.cloned();
        self.current = None;
        self.pending.clear();
        self.scanned_at_ns = None;
        self.scanned_since_finish = false;
        if let BadRecordPolicy::DeadLetter(path) = &self.opts.bad_records {
            let dead_letter_err =
                |e| EngineError::Source(format!("dead-letter file {}: {e}", path.display()));
            // The file and any new folders are durable names before a bad
            // record is written to it.
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            ensure_dir(&LocalStorage, parent).map_err(dead_letter_err)?;
            let file = LocalStorage
                .open_append(path, OpenMode::Create)
                .map_err(dead_letter_err)?;
            LocalStorage.sync_dir(parent).map_err(dead_letter_err)?;
            self.dead_letter = Some(file);
        }
        // The recovered offset is durable: finish any cleanup it was owed.
        if start.is_some() && self.opts.clean_source != CleanSource::Off {
            let done = self.pos.done.clone();
            self.clean(&done);
        }
        Ok(())
    }

    fn poll(&mut self, out: &mut dyn SourceOutput) -> Result<PollStatus> {
        let mut emitted = 0;
        let mut processed = 0;
        let mut progressed = false;
        while processed < MAX_PER_POLL {
            if self.current.is_none() {
                if !self.open_next()? {
                    break;
                }
                progressed = true;
                if self.current.is_none() {
                    continue;
                }
            }
            let mut f = self.current.take().expect("an open file");
            let step = self.pump(&mut f, MAX_PER_POLL - processed, out, true)?;
            emitted += step.emitted;
            processed += step.processed;
            if step.eof {
                let name = self.pos.file.clone().unwrap_or_default();
                self.finish_file(name);
                progressed = true;
                // Opening a file is work too: many empty files still end
                // the poll in time.
                processed += 1;
            } else {
                self.current = Some(f);
            }
        }
        if emitted > 0 || processed > 0 || progressed {
            return Ok(PollStatus::Emitted(emitted));
        }
        if self.opts.until_idle && self.pos.file.is_none() && self.scanned_since_finish {
            return Ok(PollStatus::Exhausted);
        }
        let next = self.scanned_at_ns.unwrap_or(0) + RESCAN_NS;
        Ok(PollStatus::IdleUntil(next))
    }

    fn offset(&self) -> SourceOffset {
        Self::to_offset(&self.pos)
    }

    fn commit(&mut self, offset: &SourceOffset) -> Result<()> {
        self.sync_dead_letter()?;
        if self.opts.clean_source != CleanSource::Off {
            let p = self.parse_offset(offset)?;
            self.clean(&p.done);
        }
        Ok(())
    }

    fn is_blocking(&self) -> bool {
        true
    }

    fn metrics(&self) -> Vec<(String, u64)> {
        vec![
            ("filesRead".to_string(), self.files_read),
            ("badRecords".to_string(), self.bad_records),
            ("filesCleaned".to_string(), self.files_cleaned),
        ]
    }

    fn as_replayable(&mut self) -> Option<&mut dyn Replayable> {
        Some(self)
    }
}

impl Replayable for FileSource {
    fn is_exhausted(&self) -> bool {
        self.opts.until_idle
            && self.scanned_at_ns.is_some()
            && self.pos.file.is_none()
            && self.present.iter().all(|n| self.done_set.contains(n))
    }

    fn latest_offset(&mut self) -> Result<SourceOffset> {
        self.rescan()?;
        let mut end = self.pos.clone();
        let (mut files, mut bytes) = (0usize, 0u64);
        if let Some(f) = end.file.take() {
            let size = self
                .listing
                .iter()
                .find(|e| e.name == f)
                .map_or(0, |e| e.size);
            bytes = size.saturating_sub(end.byte);
            end.done.push(f);
            end.line = 0;
            end.byte = 0;
            files = 1;
        }
        for e in &self.listing {
            if self.done_set.contains(&e.name) || self.pos.file.as_ref() == Some(&e.name) {
                continue;
            }
            let full = self.opts.max_files_per_trigger.is_some_and(|m| files >= m)
                || self
                    .opts
                    .max_bytes_per_trigger
                    .is_some_and(|m| bytes.saturating_add(e.size) > m);
            if files > 0 && full {
                break;
            }
            end.done.push(e.name.clone());
            files += 1;
            bytes = bytes.saturating_add(e.size);
        }
        if files == 0 {
            return Ok(self.last_batch_end.clone().unwrap_or_default());
        }
        // Forget files that are gone (cleaned up): see the module docs.
        end.done.retain(|n| self.present.contains(n));
        Ok(Self::to_offset(&end))
    }

    fn read_range(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        out: &mut dyn SourceOutput,
    ) -> Result<()> {
        let (e, jobs) = self.range_jobs(start, end)?;
        for job in jobs {
            match self.open_file(&job.name, job.line, job.byte, job.limit) {
                Ok(mut f) => {
                    self.pump(&mut f, usize::MAX, out, false)?;
                    if job.limit.is_none() {
                        self.files_read += 1;
                    }
                }
                Err(err) if is_not_found(&err) => self.warn_gone(&self.dir.join(&job.name)),
                Err(err) => return Err(self.io_err(&self.dir.join(&job.name), err)),
            }
        }
        self.range_read(e, end);
        Ok(())
    }

    fn read_batch(
        &mut self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
    ) -> Result<SourceBatch> {
        let (e, jobs) = self.range_jobs(start, end)?;
        let setup = decode::Setup {
            dir: &self.dir,
            framing: self.framing,
            cols: &self.cols,
            schema: &self.schema,
            header: self.opts.header && self.format == FileFormat::Csv,
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let decoded = decode::decode(setup, &jobs, threads)?;
        for path in &decoded.gone {
            self.warn_gone(path);
        }
        // Bad records in file order, through the same policy as
        // continuous mode (fail names the first; dead letters in order).
        let mut warned_for: Option<&Path> = None;
        for bad in &decoded.bad {
            let mut warned = warned_for == Some(bad.path.as_path());
            self.bad_record(&bad.path, &mut warned, bad.line, &bad.reason, &bad.raw)?;
            warned_for = Some(bad.path.as_path());
        }
        self.files_read += decoded.files_read;
        self.range_read(e, end);
        Ok(SourceBatch {
            batch: decoded.batch,
            ingest_ns: decoded.ingest_ns,
        })
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        if self.dead_letter_dirty {
            if let Some(f) = &mut self.dead_letter {
                let _ = f.sync();
            }
        }
    }
}
