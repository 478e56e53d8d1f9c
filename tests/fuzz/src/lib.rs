//! The bodies of runnel's fuzz targets, one function per target.
//!
//! Each `fuzz_targets/<name>.rs` is a one-line libFuzzer wrapper around the
//! function of the same name here, and `tests/fuzz_regressions.rs` includes
//! this file with `#[path]` to replay the committed corpora and the saved
//! crash cases through exactly the same code on stable Rust. So this file
//! must stay includable as a plain module: no crate-level attributes, no
//! `crate::` paths, and only dependencies that the `runnel-tests` package
//! has too (`runnel`, `runnel_connectors`, `serde_json`, `tempfile`).
//!
//! The contract every target checks: whatever the bytes, the code under test
//! returns (an error is fine) without panicking, without hanging and without
//! allocating without bound. A few targets add cheap consistency checks that
//! must hold for any input (they say so where they do).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel::sql::StreamingSql;
use runnel::Replayable;
use runnel::{
    DataFrame, DataType, MemorySink, MemorySource, OutputMode, PollStatus, Row, SchemaRef, Source,
    SourceContext, SourceOffset, SourceOutput,
};
use runnel_connectors::log::{inspect, LogTopic, ProducerConfig};
use runnel_connectors::{FileSource, FileSourceOptions};

/// The largest input worth running (`-max_len` of the fuzzers); longer
/// inputs are cut here so a replayed file behaves like the fuzzer saw it.
pub const MAX_INPUT: usize = 4096;

fn cap(data: &[u8]) -> &[u8] {
    &data[..data.len().min(MAX_INPUT)]
}

/// The largest single allocation the targets may make: 256 MiB. Inputs are
/// at most [`MAX_INPUT`] bytes, so anything near this is an allocation
/// sized by untrusted data (a length field, a count) instead of by what is
/// there.
pub const ALLOC_LIMIT: usize = 256 << 20;

/// The global allocator of the fuzz binaries and of the replay test: the
/// system allocator, except that one allocation larger than
/// [`ALLOC_LIMIT`] aborts the process (libFuzzer saves the input as a
/// crash). Without a sanitizer, libFuzzer's own `-malloc_limit_mb` is not
/// enforced, and a huge allocation that is never touched would go unseen.
pub struct LimitedAlloc;

impl LimitedAlloc {
    fn check(size: usize) {
        if size > ALLOC_LIMIT {
            use std::io::Write;
            // No allocation here: this runs inside the allocator.
            let _ = std::io::stderr().write_all(
                b"runnel-fuzz: one allocation of more than 256 MiB (ALLOC_LIMIT): aborting \
                  (with RUNNEL_FUZZ_DEBUG=1 the replay test names each input first)\n",
            );
            std::process::abort();
        }
    }
}

// SAFETY: every call is passed on unchanged to the system allocator; the
// added check only reads the size and may abort the process.
unsafe impl std::alloc::GlobalAlloc for LimitedAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        Self::check(layout.size());
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        Self::check(layout.size());
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

/// With `RUNNEL_FUZZ_DEBUG` set, each target says what an input did (on
/// stderr), to check that a corpus file reaches the code it is meant for.
fn debug(what: std::fmt::Arguments<'_>) {
    if std::env::var_os("RUNNEL_FUZZ_DEBUG").is_some() {
        eprintln!("{what}");
    }
}

fn context() -> SourceContext {
    SourceContext {
        name: "fuzz".to_string(),
        waker: Arc::new(runnel::continuous::TaskWaker::new()),
    }
}

/// Collects emitted rows as text, formatting every value the way a sink
/// would (`Display`), so extreme parsed values are formatted too.
#[derive(Default)]
struct Collect {
    rows: Vec<String>,
}

impl SourceOutput for Collect {
    fn emit(&mut self, row: Row, _ingest_ns: u64) -> runnel::Result<()> {
        let shown: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        self.rows.push(format!("{row:?} / {}", shown.join("|")));
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// File source: CSV and JSON lines
// ---------------------------------------------------------------------------

/// Every type the file source reads, for explicit schemas.
const ALL_TYPES_DDL: &str =
    "id bigint, price double, ok boolean, name string, ts timestamp, day date";

/// The online retailer's columns, as in the tutorials.
const RETAIL_DDL: &str = "InvoiceNo string, StockCode string, Description string, \
     Quantity bigint, InvoiceDate timestamp, UnitPrice double, CustomerID double, Country string";

/// Splits a leading option line off `data` when `take` is set: the first
/// line (at most 40 bytes) becomes an option value, the rest is the file.
fn option_line(data: &[u8], take: bool) -> (Option<String>, &[u8]) {
    if !take {
        return (None, data);
    }
    let end = data.iter().take(41).position(|&b| b == b'\n');
    match end {
        Some(i) => (
            Some(String::from_utf8_lossy(&data[..i]).into_owned()),
            &data[i + 1..],
        ),
        None => (None, data),
    }
}

/// Writes `body` as one file, or two (`a`, `b`) split at its middle line
/// break, into `dir`.
fn write_files(dir: &Path, ext: &str, body: &[u8], split: bool) {
    let cut = if split {
        let mid = body.len() / 2;
        body[mid..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| mid + i + 1)
    } else {
        None
    };
    match cut {
        Some(c) => {
            fs::write(dir.join(format!("a.{ext}")), &body[..c]).expect("write a file");
            fs::write(dir.join(format!("b.{ext}")), &body[c..]).expect("write a file");
        }
        None => fs::write(dir.join(format!("a.{ext}")), body).expect("write a file"),
    }
}

/// Builds a file source over `dir` from option pairs, or `None` when the
/// options or the directory are refused (an error, not a bug).
fn file_source(json: bool, dir: &Path, pairs: &[(String, String)]) -> Option<FileSource> {
    let opts = FileSourceOptions::from_pairs(pairs.iter().map(|(k, v)| (k, v))).ok()?;
    let made = if json {
        FileSource::json(dir, opts)
    } else {
        FileSource::csv(dir, opts)
    };
    made.ok()
}

/// Micro-batch reading: `latest_offset` then `read_range`, batch after
/// batch, until the offset stops moving. Returns the rows, or `None` if the
/// source reported an error.
fn read_micro_batches(src: &mut FileSource) -> Option<Vec<String>> {
    src.open(&context(), None).ok()?;
    let mut out = Collect::default();
    let mut start: Option<SourceOffset> = None;
    for _ in 0..8 {
        let end = src.latest_offset().ok()?;
        if start.as_ref() == Some(&end) || (start.is_none() && end.is_start()) {
            break;
        }
        src.read_range(start.as_ref(), &end, &mut out).ok()?;
        src.commit(&end).ok()?;
        start = Some(end);
    }
    let _ = src.metrics();
    Some(out.rows)
}

/// Continuous reading: `poll` until the source is exhausted. A source that
/// keeps saying it emitted something without ever finishing is a hang.
fn read_continuously(src: &mut FileSource) -> Option<Vec<String>> {
    src.open(&context(), None).ok()?;
    let mut out = Collect::default();
    for _ in 0..100_000 {
        match src.poll(&mut out).ok()? {
            PollStatus::Exhausted | PollStatus::Idle | PollStatus::IdleUntil(_) => {
                let _ = src.offset();
                return Some(out.rows);
            }
            PollStatus::Emitted(_) => {}
        }
    }
    panic!("FileSource::poll kept reporting progress on a file of at most {MAX_INPUT} bytes");
}

/// Reads the same files in both modes; they must agree on the rows (the
/// file source promises that a batch re-reads exactly what continuous
/// mode would).
fn read_both_ways(json: bool, dir: &Path, pairs: &[(String, String)]) {
    let Some(mut batch_src) = file_source(json, dir, pairs) else {
        debug(format_args!("options or schema refused: {pairs:?}"));
        return;
    };
    let _ = batch_src.describe();
    let schema = batch_src.schema();
    let batch = read_micro_batches(&mut batch_src);
    drop(batch_src);
    let mut pairs = pairs.to_vec();
    pairs.push(("until_idle".into(), "true".into()));
    let Some(mut cont_src) = file_source(json, dir, &pairs) else {
        return;
    };
    assert_eq!(
        cont_src.schema(),
        schema,
        "the same options resolved two different schemas"
    );
    let cont = read_continuously(&mut cont_src);
    debug(format_args!(
        "schema {:?}: {:?} rows in batches, {:?} continuously, metrics {:?}",
        schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>(),
        batch.as_ref().map(Vec::len),
        cont.as_ref().map(Vec::len),
        cont_src.metrics()
    ));
    if let (Some(batch), Some(cont)) = (batch, cont) {
        assert_eq!(
            batch, cont,
            "micro-batch and continuous reads of the same files differ"
        );
    }
}

/// `csv_records`: the input becomes CSV files read through
/// [`FileSource::csv`].
///
/// Byte 0 chooses the options: bit 0 header; bits 1-2 the schema (0 and 3:
/// inferred, 1: every type, 2: the retail columns); bits 3-4 the delimiter
/// (`,` `;` tab `|`); bit 5 quote `'` instead of `"`; bit 6 a small
/// `max_record_bytes` (48) so records run over it; bit 7 the first line is
/// the `timestamp_format` (else `null_value` is `NA`). Byte 1: bit 0 splits
/// the rest into two files read as two batches; bit 1 dead-letter file
/// instead of skip. The rest is the file.
pub fn csv_records(data: &[u8]) {
    let data = cap(data);
    let [sel, sel2, rest @ ..] = data else {
        return;
    };
    let (ts_format, body) = option_line(rest, sel & 0x80 != 0);
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in");
    fs::create_dir(&input).expect("input dir");
    write_files(&input, "csv", body, sel2 & 1 != 0);

    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| pairs.push((k.to_string(), v.to_string()));
    set("header", if sel & 1 != 0 { "true" } else { "false" });
    match (sel >> 1) & 3 {
        1 => set("schema", ALL_TYPES_DDL),
        2 => set("schema", RETAIL_DDL),
        _ => set("infer_rows", "50"),
    }
    set(
        "delimiter",
        [",", ";", "\\t", "|"][usize::from((sel >> 3) & 3)],
    );
    if sel & 0x20 != 0 {
        set("quote", "'");
    }
    if sel & 0x40 != 0 {
        set("max_record_bytes", "48");
    }
    match ts_format {
        Some(f) => set("timestamp_format", &f),
        None => set("null_value", "NA"),
    }
    if sel2 & 1 != 0 {
        set("max_files_per_trigger", "1");
    }
    if sel2 & 2 != 0 {
        let dl = dir.path().join("dead-letters.jsonl");
        set("bad_records", &format!("dead-letter:{}", dl.display()));
    } else {
        set("bad_records", "skip");
    }
    read_both_ways(false, &input, &pairs);
}

/// `json_records`: the input becomes JSON-lines files read through
/// [`FileSource::json`] with a schema of every type.
///
/// Byte 0: bit 0 the retail columns instead; bit 1 a small
/// `max_record_bytes` (64); bit 2 the first line is the `timestamp_format`;
/// bit 3 two files read as two batches; bit 4 dead-letter file instead of
/// skip. The rest is the file.
pub fn json_records(data: &[u8]) {
    let data = cap(data);
    let [sel, rest @ ..] = data else {
        return;
    };
    let (ts_format, body) = option_line(rest, sel & 4 != 0);
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in");
    fs::create_dir(&input).expect("input dir");
    write_files(&input, "json", body, sel & 8 != 0);

    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| pairs.push((k.to_string(), v.to_string()));
    set(
        "schema",
        if sel & 1 != 0 {
            RETAIL_DDL
        } else {
            ALL_TYPES_DDL
        },
    );
    if sel & 2 != 0 {
        set("max_record_bytes", "64");
    }
    if let Some(f) = ts_format {
        set("timestamp_format", &f);
    }
    if sel & 8 != 0 {
        set("max_files_per_trigger", "1");
    }
    if sel & 0x10 != 0 {
        let dl = dir.path().join("dead-letters.jsonl");
        set("bad_records", &format!("dead-letter:{}", dl.display()));
    } else {
        set("bad_records", "skip");
    }
    read_both_ways(true, &input, &pairs);
}

// ---------------------------------------------------------------------------
// The on-disk log
// ---------------------------------------------------------------------------

/// Small segments and a dense index, so a few records make several sealed
/// segments and several index entries.
fn small_segments() -> ProducerConfig {
    ProducerConfig {
        segment_bytes: 160,
        index_interval_bytes: 48,
        write_buffer_bytes: 64,
    }
}

/// CRC-32 (IEEE), as the log's records use (crc32fast computes the same).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Walks `bytes` as records by their length fields and makes each record's
/// CRC (and, with `offsets`, its offset: `base`, `base + 1`, ...) valid, so
/// that fuzzed lengths, offsets and key/value lengths get past the CRC.
fn fix_records(bytes: &mut [u8], base: u64, offsets: bool) {
    let mut at = 0usize;
    let mut next = base;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = at.checked_add(4).and_then(|e| e.checked_add(len)) else {
            break;
        };
        if len < 4 || end > bytes.len() {
            break;
        }
        if offsets && at + 16 <= end {
            bytes[at + 8..at + 16].copy_from_slice(&next.to_le_bytes());
        }
        let crc = crc32(&bytes[at + 8..end]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at = end;
        next = next.wrapping_add(1);
    }
}

/// Base offsets of the segment files in a partition folder, ascending.
fn segment_bases(pdir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = fs::read_dir(pdir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let digits = name.strip_suffix(".log")?;
                    (digits.len() == 20).then(|| digits.parse::<u64>().ok())?
                })
                .collect()
        })
        .unwrap_or_default();
    bases.sort_unstable();
    bases
}

/// Bytes of all segment files of a partition: no reader may return more
/// records than that many bytes can hold (32 bytes at least per record).
fn log_bytes(pdir: &Path) -> u64 {
    fs::read_dir(pdir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Reads every partition of the topic at `path` to its end, from its first
/// offset and from `seek_to`, and inspects it. Errors end a partition's
/// reading (a reader keeps reporting the same error).
fn read_topic(path: &Path, seek_to: u64) {
    let Ok(topic) = LogTopic::open(path) else {
        debug(format_args!("topic does not open"));
        return;
    };
    let _ = topic.start_offsets();
    let _ = topic.end_offsets();
    if let Ok(info) = inspect(path) {
        let _ = format!("{info:?} {} {}", info.total_records(), info.total_bytes());
    }
    for p in 0..topic.partitions() {
        let bound = log_bytes(&path.join(p.to_string())) / 32 + 1;
        let readers = [topic.reader(p), topic.reader_at(p, seek_to)];
        for reader in readers {
            let Ok(mut reader) = reader else {
                continue;
            };
            let mut n = 0u64;
            let mut sum = 0usize;
            let mut error = None;
            loop {
                let got = reader.read_batch(7, |r| {
                    sum += r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len);
                    let _ = r.to_record();
                });
                match got {
                    Ok(0) => break,
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                    Ok(k) => n += k as u64,
                }
                assert!(
                    n <= bound,
                    "partition {p}: the reader returned {n} records from {} bytes of segments",
                    log_bytes(&path.join(p.to_string()))
                );
            }
            // A second look at the end (the tailing path).
            let _ = reader.next_record().map(|r| r.map(|r| r.offset));
            debug(format_args!(
                "partition {p}: {n} records ({sum} bytes) to {}, error {error:?}",
                reader.position()
            ));
        }
    }
}

/// `log_segments`: a topic with valid records whose files are then damaged,
/// read, recovered by a producer, written to and read again.
///
/// The topic has two partitions and 160-byte segments: partition 0 holds
/// ten records in three segments, partition 1 three records in one. Byte 0
/// is the damage (mode, low 3 bits): 0 replace the file with the payload;
/// 1 truncate it at the position, then append the payload; 2 flip bits
/// (payload as 3-byte groups: position u16 LE, xor mask); 3 insert the
/// payload at the position; 4 truncate at the position, append the payload
/// and make every record's CRC valid; 5 delete the file; 6 replace
/// `topic.json` with the payload; 7 replace the file with the payload and
/// make CRCs valid. Bit 7 of byte 0: CRC fixing also rewrites offsets to
/// the expected sequence. Byte 1 chooses the file: bit 0 partition 1; bits
/// 1-2 the segment (0 the last/active one, 1 the first, 2 the second, 3 a
/// new segment whose base offset is the position); bit 3 its `.index`
/// instead of its `.log`. Bytes 2-3: the position (u16 LE, taken modulo the
/// file length + 1). The rest is the payload.
pub fn log_segments(data: &[u8]) {
    let data = cap(data);
    let [mode, which, p0, p1, payload @ ..] = data else {
        return;
    };
    let (mode, which) = (*mode, *which);
    let pos = u64::from(u16::from_le_bytes([*p0, *p1]));
    let tmp = tempfile::tempdir().expect("temp dir");
    let topic = LogTopic::create(tmp.path(), "t", 2).expect("create a topic");
    {
        let mut producer = topic
            .producer_with_config(small_segments())
            .expect("a producer of a new topic");
        for i in 0..13u8 {
            let key = format!("k{i}");
            let key = (i % 4 != 3).then_some(key.as_bytes());
            let value = vec![b'a' + i; usize::from(i % 5) * 3];
            let value = (i % 6 != 5).then_some(&value[..]);
            let partition = u32::from(i >= 10);
            producer
                .send(
                    Some(partition),
                    key,
                    value,
                    1_600_000_000_000 + i64::from(i),
                )
                .expect("send");
        }
        producer.flush().expect("flush");
    }
    let tpath = topic.path().to_path_buf();

    // The file to damage.
    let pdir = tpath.join(u32::from(which & 1).to_string());
    let bases = segment_bases(&pdir);
    let base = match (which >> 1) & 3 {
        0 => bases.last().copied().unwrap_or(0),
        1 => bases.first().copied().unwrap_or(0),
        2 => bases.get(1).or(bases.last()).copied().unwrap_or(0),
        _ => pos,
    };
    let index = which & 8 != 0;
    let file: PathBuf = if mode & 7 == 6 {
        tpath.join("topic.json")
    } else {
        pdir.join(format!(
            "{base:020}.{}",
            if index { "index" } else { "log" }
        ))
    };
    let mut bytes = fs::read(&file).unwrap_or_default();
    let at = (pos % (bytes.len() as u64 + 1)) as usize;
    let fix = |bytes: &mut Vec<u8>| {
        if !index {
            fix_records(bytes, base, mode & 0x80 != 0);
        }
    };
    match mode & 7 {
        0 | 6 => bytes = payload.to_vec(),
        1 => {
            bytes.truncate(at);
            bytes.extend_from_slice(payload);
        }
        2 => {
            if !bytes.is_empty() {
                for g in payload.chunks_exact(3) {
                    let i = usize::from(u16::from_le_bytes([g[0], g[1]])) % bytes.len();
                    bytes[i] ^= g[2];
                }
            }
        }
        3 => {
            bytes.splice(at..at, payload.iter().copied());
        }
        4 => {
            bytes.truncate(at);
            bytes.extend_from_slice(payload);
            fix(&mut bytes);
        }
        5 => {}
        _ => {
            bytes = payload.to_vec();
            fix(&mut bytes);
        }
    }
    if mode & 7 == 5 {
        let _ = fs::remove_file(&file);
    } else {
        fs::write(&file, &bytes).expect("write the damaged file");
    }

    // Read-only first: readers treat a torn tail as the end of the log.
    let seek_to = pos % 16;
    read_topic(&tpath, seek_to);

    // A producer recovers the tail; then it appends and everything is read
    // again (readers of the first round are gone: recovery may truncate).
    let recovered = LogTopic::open(&tpath).and_then(|t| t.producer_with_config(small_segments()));
    if let Ok(mut producer) = recovered {
        let _ = producer.end_offsets();
        for p in 0..producer.topic().partitions().min(4) {
            let _ = producer.send(Some(p), Some(b"after"), Some(b"recovery"), 1);
        }
        let _ = producer.flush();
    }
    read_topic(&tpath, seek_to);
}

// ---------------------------------------------------------------------------
// SQL front end
// ---------------------------------------------------------------------------

/// The stream the queries read: the retail columns plus one of each other
/// type.
fn sql_schema() -> SchemaRef {
    runnel::schema(&[
        ("InvoiceNo", DataType::Utf8),
        ("StockCode", DataType::Utf8),
        ("Description", DataType::Utf8),
        ("Quantity", DataType::Int64),
        ("InvoiceDate", runnel::timestamp_type()),
        ("UnitPrice", DataType::Float64),
        ("CustomerID", DataType::Float64),
        ("Country", DataType::Utf8),
        ("Active", DataType::Boolean),
        ("Day", DataType::Date32),
        ("ts", runnel::timestamp_type()),
    ])
}

/// `sql_front_end`: the input (lossy UTF-8) is parsed with
/// [`StreamingSql::parse`]; a query that parses is applied to a DataFrame
/// over a [`MemorySource`] (with and without a watermark on `InvoiceDate`)
/// and explained in every output mode. Nothing is started.
pub fn sql_front_end(data: &[u8]) {
    let data = cap(data);
    let text = String::from_utf8_lossy(data);
    let query = match StreamingSql::parse(&text) {
        Ok(q) => q,
        Err(e) => {
            // Errors point at the query under a caret line: format them.
            let shown = e.to_string();
            debug(format_args!("does not parse: {shown}"));
            return;
        }
    };
    let _ = (query.table(), query.is_aggregate(), query.sql());
    let modes = [OutputMode::Append, OutputMode::Update, OutputMode::Complete];
    for watermark in [false, true] {
        for (i, mode) in modes.into_iter().enumerate() {
            let (source, _producer) = MemorySource::with_capacity(sql_schema(), 4);
            let mut input = DataFrame::from_source(query.table(), source);
            if watermark {
                input = input.with_watermark("InvoiceDate", "10 minutes");
            }
            let df = match query.apply(input) {
                Ok(df) => df,
                Err(e) => {
                    let shown = e.to_string();
                    debug(format_args!("watermark {watermark}: apply fails: {shown}"));
                    break;
                }
            };
            let _ = df.schema();
            let _ = df.logical_plan().to_string();
            let (sink, _table) = MemorySink::new("x");
            let explained = df
                .write_stream(sink)
                .output_mode(mode)
                .parallelism(i + 1)
                .explain();
            let explained = explained.map_err(|e| e.to_string());
            debug(format_args!(
                "watermark {watermark}, {mode:?}: explain {}",
                match &explained {
                    Ok(text) => format!("ok, {} lines", text.lines().count()),
                    Err(e) => format!("error {e}"),
                }
            ));
        }
    }
}
