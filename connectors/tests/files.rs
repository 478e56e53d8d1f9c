//! The file source end to end: real queries through the engine in both
//! modes, over small slices of real data in `tests/fixtures/files/`.
//!
//! Expected rows are computed here from the fixture text with plain string
//! handling and `chrono`, independently of the source's own parsing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel::continuous::TaskWaker;
use runnel::Replayable;
use runnel::{
    timestamp_type, DataFrame, DataType, MemorySink, MemoryTable, PollStatus, Row, Source,
    SourceContext, SourceOutput, StreamingQuery, Trigger, Value,
};
use runnel_connectors::{BadRecordPolicy, CleanSource, FileFormat, FileSource, FileSourceOptions};

const SALES_DDL: &str = "OrderID int, OrderDate string, Quantity int, DiscountPct double, \
    Rate double, SaleAmount double, CustomerName string, State string, Region string, \
    ProductKey string, RowCount int, ProfitMargin double";

const LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- helpers

fn fixtures(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/files")
        .join(sub)
}

/// The visible data files of a fixture directory, in name order.
fn fixture_files(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(fixtures(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            !n.starts_with('_') && !n.starts_with('.')
        })
        .collect();
    v.sort();
    v
}

fn copy_fixtures(sub: &str, to: &Path) {
    for f in fixture_files(sub) {
        fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Continuous,
    AvailableNow,
}

const MODES: [Mode; 2] = [Mode::Continuous, Mode::AvailableNow];

fn trigger(mode: Mode) -> Trigger {
    match mode {
        Mode::Continuous => Trigger::Continuous {
            epoch_interval: Duration::from_millis(20),
        },
        Mode::AvailableNow => Trigger::AvailableNow,
    }
}

fn start(
    source: FileSource,
    trig: Trigger,
    checkpoint: Option<&Path>,
) -> (StreamingQuery, MemoryTable) {
    let (sink, table) = MemorySink::new("x");
    let mut w = DataFrame::from_source("t", source)
        .write_stream(sink)
        .trigger(trig);
    if let Some(c) = checkpoint {
        w = w.checkpoint(c);
    }
    (w.start().unwrap(), table)
}

/// Runs to the end (a continuous source must have `until_idle`).
fn run(source: FileSource, mode: Mode) -> (Vec<Row>, StreamingQuery) {
    let (q, table) = start(source, trigger(mode), None);
    assert!(
        q.await_termination_timeout(LIMIT).unwrap(),
        "{mode:?} query did not end"
    );
    (table.rows(), q)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The largest value a source metric reached in the query's progress.
fn metric(q: &StreamingQuery, name: &str) -> Option<u64> {
    q.recent_progress()
        .iter()
        .filter_map(|p| p.sources.first().and_then(|s| s.metrics.get(name)).copied())
        .max()
}

/// Splits one CSV line on commas, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn ts(text: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

fn s_or_null(t: &str) -> Value {
    if t.is_empty() {
        Value::Null
    } else {
        Value::str(t)
    }
}

fn retail_expected(files: &[PathBuf]) -> Vec<Row> {
    let mut rows = Vec::new();
    for f in files {
        for line in fs::read_to_string(f).unwrap().lines().skip(1) {
            let c = split_csv(line);
            assert_eq!(c.len(), 8, "{line}");
            rows.push(Row::from(vec![
                Value::str(&c[0]),
                Value::str(&c[1]),
                s_or_null(&c[2]),
                Value::Int64(c[3].parse().unwrap()),
                Value::Timestamp(ts(&c[4])),
                Value::Float64(c[5].parse().unwrap()),
                if c[6].is_empty() {
                    Value::Null
                } else {
                    Value::Float64(c[6].parse().unwrap())
                },
                Value::str(&c[7]),
            ]));
        }
    }
    rows
}

fn sales_expected(files: &[PathBuf]) -> Vec<Row> {
    let mut rows = Vec::new();
    for f in files {
        for line in fs::read_to_string(f).unwrap().lines() {
            let c: Vec<&str> = line.split(',').collect();
            assert_eq!(c.len(), 12, "{line}");
            let int = |s: &str| Value::Int64(s.parse().unwrap());
            let dbl = |s: &str| Value::Float64(s.parse().unwrap());
            rows.push(Row::from(vec![
                int(c[0]),
                Value::str(c[1]),
                int(c[2]),
                dbl(c[3]),
                dbl(c[4]),
                dbl(c[5]),
                Value::str(c[6]),
                Value::str(c[7]),
                Value::str(c[8]),
                Value::str(c[9]),
                int(c[10]),
                dbl(c[11]),
            ]));
        }
    }
    rows
}

fn retail_options() -> FileSourceOptions {
    FileSourceOptions {
        header: true,
        until_idle: true,
        ..Default::default()
    }
}

fn sales_options() -> FileSourceOptions {
    FileSourceOptions::from_pairs([("schema", SALES_DDL), ("until_idle", "true")]).unwrap()
}

/// Collects rows emitted by a source driven by hand.
#[derive(Default)]
struct Collect(Vec<Row>);

impl SourceOutput for Collect {
    fn emit(&mut self, row: Row, _ingest_ns: u64) -> runnel::Result<()> {
        self.0.push(row);
        Ok(())
    }
}

fn ctx() -> SourceContext {
    SourceContext {
        name: "t".into(),
        waker: Arc::new(TaskWaker::new()),
    }
}

/// Polls until the source is idle or exhausted.
fn drain(src: &mut FileSource, out: &mut Collect) {
    let t = Instant::now();
    loop {
        match src.poll(out).unwrap() {
            PollStatus::Emitted(_) => {}
            PollStatus::Exhausted => return,
            PollStatus::Idle | PollStatus::IdleUntil(_) => {
                if t.elapsed() > Duration::from_millis(200) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn retail_csv_with_header_infers_its_schema_in_both_modes() {
    let files = fixture_files("retail");
    assert_eq!(files.len(), 3);
    let expected = retail_expected(&files);
    for mode in MODES {
        let source = FileSource::csv(fixtures("retail"), retail_options()).unwrap();
        let schema = source.schema();
        let ty = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
        assert_eq!(ty("Quantity"), DataType::Int64);
        assert_eq!(ty("UnitPrice"), DataType::Float64);
        assert_eq!(ty("InvoiceDate"), timestamp_type());
        assert_eq!(ty("CustomerID"), DataType::Float64);
        // C536379 (a cancellation) makes the invoice number a string.
        assert_eq!(ty("InvoiceNo"), DataType::Utf8);
        assert_eq!(ty("Description"), DataType::Utf8);
        let (rows, q) = run(source, mode);
        assert_eq!(rows.len(), 93, "{mode:?}");
        assert_eq!(rows, expected, "{mode:?}");
        assert_eq!(metric(&q, "filesRead"), Some(3), "{mode:?}");
        assert_eq!(metric(&q, "badRecords"), Some(0), "{mode:?}");
    }
}

#[test]
fn sales_csv_without_header_uses_the_ddl_schema_in_both_modes() {
    let expected = sales_expected(&fixture_files("sales"));
    assert_eq!(expected.len(), 40);
    for mode in MODES {
        let source = FileSource::csv(fixtures("sales"), sales_options()).unwrap();
        let names: Vec<String> = source
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names[0], "OrderID");
        assert_eq!(names[11], "ProfitMargin");
        assert_eq!(source.schema().field(0).data_type(), &DataType::Int64);
        let (rows, _) = run(source, mode);
        assert_eq!(rows, expected, "{mode:?}");
    }
}

#[test]
fn json_lines_take_epoch_seconds_and_string_timestamps_in_both_modes() {
    let opts = FileSourceOptions::from_pairs([
        (
            "schema",
            "id bigint, user string, ts timestamp, amount double, ok boolean",
        ),
        ("until_idle", "true"),
    ])
    .unwrap();
    let row = |id: i64, user: Option<&str>, t: i64, amount: f64, ok: Option<bool>| {
        Row::from(vec![
            Value::Int64(id),
            user.map_or(Value::Null, Value::str),
            Value::Timestamp(t),
            Value::Float64(amount),
            ok.map_or(Value::Null, Value::Boolean),
        ])
    };
    let expected = vec![
        row(1, Some("ada"), 1_291_191_960_000_000, 2.55, Some(true)),
        row(2, Some("bob"), ts("2010-12-01 08:26:00"), 3.39, Some(false)),
        row(3, Some("cy"), ts("2010-12-01 08:28:00"), 7.65, None),
        row(4, None, 1_291_191_960_250_000, -1.5, Some(true)),
        row(5, Some("dee"), ts("2010-12-01 08:00:00"), 0.0, None),
        row(
            6,
            Some("eve"),
            ts("2010-12-02 10:00:00.5"),
            1000.0,
            Some(false),
        ),
    ];
    for mode in MODES {
        let source = FileSource::json(fixtures("json"), opts.clone()).unwrap();
        let (rows, q) = run(source, mode);
        assert_eq!(rows, expected, "{mode:?}");
        assert_eq!(metric(&q, "badRecords"), Some(0));
    }
    let err = FileSource::json(fixtures("json"), FileSourceOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("fixtures/files/json") && msg.contains("schema"),
        "{msg}"
    );
}

#[test]
fn files_arriving_while_a_continuous_query_runs_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixture_files("sales");
    fs::copy(&files[0], dir.path().join("sales-1.csv")).unwrap();
    let opts = FileSourceOptions {
        until_idle: false,
        ..sales_options()
    };
    let source = FileSource::csv(dir.path(), opts).unwrap();
    let trig = trigger(Mode::Continuous);
    let (q, table) = start(source, trig, None);
    wait_until("the first file", || table.len() == 20);
    // Written under a hidden name, then renamed in: complete when it appears.
    let tmp = dir.path().join(".sales-2.csv.tmp");
    fs::copy(&files[1], &tmp).unwrap();
    fs::rename(&tmp, dir.path().join("sales-2.csv")).unwrap();
    wait_until("the new file", || table.len() >= 40);
    q.stop().unwrap();
    assert_eq!(table.rows(), sales_expected(&files));
}

#[test]
fn a_micro_batch_restart_neither_rereads_nor_skips() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tempfile::tempdir().unwrap();
    copy_fixtures("retail", dir.path());
    let expected = retail_expected(&fixture_files("retail"));
    let opts = FileSourceOptions {
        max_files_per_trigger: Some(1),
        ..retail_options()
    };
    let source = FileSource::csv(dir.path(), opts.clone()).unwrap();
    let (q, first) = start(
        source,
        Trigger::ProcessingTime(Duration::from_millis(500)),
        Some(ckpt.path()),
    );
    wait_until("the first batch", || first.commits() >= 1);
    q.stop().unwrap();
    let first = first.rows();
    assert!(
        !first.is_empty() && first.len() < expected.len(),
        "{}",
        first.len()
    );

    let source = FileSource::csv(dir.path(), opts).unwrap();
    let (q, second) = start(source, Trigger::AvailableNow, Some(ckpt.path()));
    assert!(q.await_termination_timeout(LIMIT).unwrap());
    let mut all = first;
    all.extend(second.rows());
    assert_eq!(all, expected);
}

#[test]
fn a_continuous_restart_neither_rereads_nor_skips() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tempfile::tempdir().unwrap();
    let files = fixture_files("retail");
    fs::copy(&files[0], dir.path().join(files[0].file_name().unwrap())).unwrap();
    let opts = FileSourceOptions {
        until_idle: false,
        ..retail_options()
    };
    let source = FileSource::csv(dir.path(), opts).unwrap();
    let (q, first) = start(source, trigger(Mode::Continuous), Some(ckpt.path()));
    wait_until("the first file", || first.len() >= 33);
    q.stop().unwrap();
    // More files arrive while the query is down.
    copy_fixtures("retail", dir.path());

    let source = FileSource::csv(dir.path(), retail_options()).unwrap();
    let (q, second) = start(source, trigger(Mode::Continuous), Some(ckpt.path()));
    assert!(q.await_termination_timeout(LIMIT).unwrap());
    let mut all = first.rows();
    assert_eq!(all.len(), 33);
    all.extend(second.rows());
    assert_eq!(all, retail_expected(&files));
}

#[test]
fn offsets_resume_inside_a_file_and_cleanup_waits_for_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,name\r\n");
    for i in 0..1000 {
        text.push_str(&format!("{i},\"name {i}, the {i}th\"\r\n"));
    }
    let big = dir.path().join("big.csv");
    fs::write(&big, &text).unwrap();
    let opts = FileSourceOptions {
        header: true,
        until_idle: true,
        clean_source: CleanSource::Delete,
        ..Default::default()
    };
    let mut first = FileSource::csv(dir.path(), opts.clone()).unwrap();
    first.open(&ctx(), None).unwrap();
    let mut out = Collect::default();
    assert_eq!(first.poll(&mut out).unwrap(), PollStatus::Emitted(255));
    let offset = first.offset();
    // 256 records: the header and 255 rows, each on one line.
    let consumed: usize = text.split_inclusive('\n').take(256).map(str::len).sum();
    assert_eq!(
        offset.to_json(),
        serde_json::json!({"files": {"done": [], "file": "big.csv", "line": 256, "byte": consumed}})
    );
    // Durable but not read to its end: not cleaned up.
    first.commit(&offset).unwrap();
    assert!(big.exists());
    drop(first);

    let mut second = FileSource::csv(dir.path(), opts).unwrap();
    second.open(&ctx(), Some(&offset)).unwrap();
    drain(&mut second, &mut out);
    let ids: Vec<i64> = out.0.iter().map(|r| r[0].as_i64().unwrap()).collect();
    assert_eq!(ids, (0..1000).collect::<Vec<_>>());
    assert_eq!(out.0[7][1], Value::str("name 7, the 7th"));
    let end = second.offset();
    assert_eq!(
        end.to_json()["files"]["done"],
        serde_json::json!(["big.csv"])
    );
    assert_eq!(end.to_json()["files"]["file"], serde_json::Value::Null);
    second.commit(&end).unwrap();
    assert!(!big.exists());
}

fn write_bad_csv(dir: &Path) -> String {
    let long = "x".repeat(1500);
    let text =
        format!("1,ann,1.5\n2,bob\n3,cat,notanumber\n4,\"dan, jr\",4.5\n5,{long},5.5\n6,eve,6.5\n");
    fs::write(dir.join("bad.csv"), &text).unwrap();
    text
}

fn bad_csv_options() -> FileSourceOptions {
    FileSourceOptions::from_pairs([
        ("schema", "id bigint, name string, amount double"),
        ("max_record_bytes", "1k"),
        ("until_idle", "true"),
    ])
    .unwrap()
}

fn ids(rows: &[Row]) -> Vec<i64> {
    rows.iter().map(|r| r[0].as_i64().unwrap()).collect()
}

#[test]
fn bad_records_are_skipped_and_counted_keeping_good_rows() {
    let dir = tempfile::tempdir().unwrap();
    write_bad_csv(dir.path());
    let jdir = tempfile::tempdir().unwrap();
    fs::write(
        jdir.path().join("bad.jsonl"),
        "{\"id\": 1, \"name\": \"ann\"}\n{\"id\": 2,\n[1, 2]\n{\"id\": \"x\"}\n{\"id\": 5, \"amount\": 5}\n",
    )
    .unwrap();
    for mode in MODES {
        let source = FileSource::csv(dir.path(), bad_csv_options()).unwrap();
        let (rows, q) = run(source, mode);
        assert_eq!(ids(&rows), vec![1, 4, 6], "{mode:?}");
        assert_eq!(rows[1][1], Value::str("dan, jr"));
        assert_eq!(metric(&q, "badRecords"), Some(3), "{mode:?}");

        let source = FileSource::json(jdir.path(), bad_csv_options()).unwrap();
        let (rows, q) = run(source, mode);
        assert_eq!(ids(&rows), vec![1, 5], "{mode:?}");
        assert_eq!(rows[1][2], Value::Float64(5.0));
        assert_eq!(metric(&q, "badRecords"), Some(3), "{mode:?}");
    }
}

#[test]
fn bad_records_go_to_the_dead_letter_file() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let text = write_bad_csv(dir.path());
        let lines: Vec<&str> = text.lines().collect();
        let dl = tempfile::tempdir().unwrap();
        let dl_path = dl.path().join("dead/letters.jsonl");
        let opts = FileSourceOptions {
            bad_records: BadRecordPolicy::DeadLetter(dl_path.clone()),
            ..bad_csv_options()
        };
        let source = FileSource::csv(dir.path(), opts).unwrap();
        let (rows, _) = run(source, mode);
        assert_eq!(ids(&rows), vec![1, 4, 6]);
        let letters: Vec<serde_json::Value> = fs::read_to_string(&dl_path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(letters.len(), 3, "{mode:?}");
        let bad_file = dir.path().join("bad.csv").display().to_string();
        for (l, (line, reason)) in letters.iter().zip([
            (2, "expected 3 fields, found 2"),
            (3, "column `amount`: 'notanumber' is not a double"),
            (5, "longer than max_record_bytes"),
        ]) {
            assert_eq!(l["source"], "t");
            assert_eq!(l["file"], bad_file.as_str());
            assert_eq!(l["line"], line);
            assert!(l["reason"].as_str().unwrap().contains(reason), "{l}");
            let raw = l["raw"].as_str().unwrap();
            let full = lines[line as usize - 1];
            assert_eq!(raw, &full[..full.len().min(1024)]);
        }
        assert_eq!(letters[2]["raw"].as_str().unwrap().len(), 1024);
    }
}

#[test]
fn the_fail_policy_stops_the_query_naming_file_and_line() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        write_bad_csv(dir.path());
        let opts = FileSourceOptions {
            bad_records: BadRecordPolicy::Fail,
            ..bad_csv_options()
        };
        let source = FileSource::csv(dir.path(), opts).unwrap();
        let (q, _) = start(source, trigger(mode), None);
        let err = q.await_termination_timeout(LIMIT).unwrap_err().to_string();
        assert!(
            err.contains("bad.csv:2: expected 3 fields, found 2"),
            "{mode:?}: {err}"
        );

        let jdir = tempfile::tempdir().unwrap();
        fs::write(jdir.path().join("e.jsonl"), "{\"id\": 1}\n\n{oops\n").unwrap();
        let opts = FileSourceOptions::from_pairs([
            ("schema", "id bigint"),
            ("bad_records", "fail"),
            ("until_idle", "true"),
        ])
        .unwrap();
        let source = FileSource::json(jdir.path(), opts).unwrap();
        let (q, _) = start(source, trigger(mode), None);
        let err = q.await_termination_timeout(LIMIT).unwrap_err().to_string();
        assert!(err.contains("e.jsonl:3: invalid JSON"), "{mode:?}: {err}");
    }
}

#[test]
fn csv_records_span_lines_inside_quotes_and_lines_are_counted_physically() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("x.csv"),
        "id,text\r\n1,\"a\r\nb\"\r\n\r\n2,x,extra\r\n3,\"say \"\"hi\"\"\"\r\n4,last",
    )
    .unwrap();
    let opts = FileSourceOptions::from_pairs([
        ("header", "true"),
        ("schema", "id bigint, text string"),
        ("until_idle", "true"),
    ])
    .unwrap();
    let source = FileSource::csv(dir.path(), opts.clone()).unwrap();
    let (rows, _) = run(source, Mode::AvailableNow);
    assert_eq!(
        rows,
        vec![
            Row::from(vec![Value::Int64(1), Value::str("a\r\nb")]),
            Row::from(vec![Value::Int64(3), Value::str("say \"hi\"")]),
            Row::from(vec![Value::Int64(4), Value::str("last")]),
        ]
    );
    let opts = FileSourceOptions {
        bad_records: BadRecordPolicy::Fail,
        ..opts
    };
    let source = FileSource::csv(dir.path(), opts).unwrap();
    let (q, _) = start(source, trigger(Mode::Continuous), None);
    let err = q.await_termination_timeout(LIMIT).unwrap_err().to_string();
    assert!(err.contains("x.csv:5: expected 2 fields, found 3"), "{err}");
}

#[test]
fn clean_source_deletes_or_archives_read_files() {
    // Micro-batch: after each batch commits.
    let dir = tempfile::tempdir().unwrap();
    copy_fixtures("sales", dir.path());
    let opts = FileSourceOptions {
        clean_source: CleanSource::Delete,
        max_files_per_trigger: Some(1),
        ..sales_options()
    };
    let (rows, _) = run(
        FileSource::csv(dir.path(), opts).unwrap(),
        Mode::AvailableNow,
    );
    assert_eq!(rows.len(), 40);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

    let dir = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let archive_dir = archive.path().join("done");
    copy_fixtures("sales", dir.path());
    let opts = FileSourceOptions::from_pairs([
        ("schema", SALES_DDL),
        ("until_idle", "true"),
        (
            "clean_source",
            &format!("archive:{}", archive_dir.display()),
        ),
    ])
    .unwrap();
    let (rows, _) = run(
        FileSource::csv(dir.path(), opts).unwrap(),
        Mode::AvailableNow,
    );
    assert_eq!(rows, sales_expected(&fixture_files("sales")));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    for f in fixture_files("sales") {
        let name = f.file_name().unwrap();
        assert_eq!(
            fs::read(archive_dir.join(name)).unwrap(),
            fs::read(&f).unwrap()
        );
    }

    // Continuous: once the epoch holding a file's last row is durable.
    let dir = tempfile::tempdir().unwrap();
    copy_fixtures("sales", dir.path());
    let opts = FileSourceOptions {
        clean_source: CleanSource::Delete,
        until_idle: false,
        ..sales_options()
    };
    let (q, table) = start(
        FileSource::csv(dir.path(), opts).unwrap(),
        trigger(Mode::Continuous),
        None,
    );
    wait_until("both files deleted", || {
        fs::read_dir(dir.path()).unwrap().count() == 0
    });
    q.stop().unwrap();
    assert_eq!(table.len(), 40);
    assert_eq!(metric(&q, "filesCleaned"), Some(2));
}

#[test]
fn max_files_or_bytes_per_trigger_give_one_batch_per_file() {
    let limits = [
        FileSourceOptions {
            max_files_per_trigger: Some(1),
            ..retail_options()
        },
        FileSourceOptions {
            max_bytes_per_trigger: Some(1),
            ..retail_options()
        },
    ];
    for opts in limits {
        let source = FileSource::csv(fixtures("retail"), opts).unwrap();
        let (q, table) = start(source, Trigger::AvailableNow, None);
        assert!(q.await_termination_timeout(LIMIT).unwrap());
        assert_eq!(table.commits(), 3);
        let per_batch: Vec<u64> = q
            .recent_progress()
            .iter()
            .map(|p| p.num_input_rows)
            .collect();
        assert_eq!(per_batch, vec![33, 30, 30]);
        let ends: Vec<serde_json::Value> = q
            .recent_progress()
            .iter()
            .map(|p| p.sources[0].end_offset["files"]["done"].clone())
            .collect();
        assert_eq!(ends[0], serde_json::json!(["2010-12-01.csv"]));
        assert_eq!(
            ends[2],
            serde_json::json!(["2010-12-01.csv", "2010-12-02.csv", "2010-12-03.csv"])
        );
    }
    // Without limits, one batch takes every file.
    let source = FileSource::csv(fixtures("retail"), retail_options()).unwrap();
    let (q, table) = start(source, Trigger::AvailableNow, None);
    assert!(q.await_termination_timeout(LIMIT).unwrap());
    assert_eq!(table.commits(), 1);
    assert_eq!(table.len(), 93);
}

#[test]
fn hidden_files_and_subdirectories_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixtures("sales", dir.path());
    let one = fixture_files("sales")[0].clone();
    fs::copy(&one, dir.path().join(".hidden.csv")).unwrap();
    fs::copy(&one, dir.path().join("_temporary.csv")).unwrap();
    fs::create_dir(dir.path().join("nested")).unwrap();
    fs::copy(&one, dir.path().join("nested/sales-3.csv")).unwrap();
    for mode in MODES {
        let (rows, _) = run(FileSource::csv(dir.path(), sales_options()).unwrap(), mode);
        assert_eq!(rows, sales_expected(&fixture_files("sales")), "{mode:?}");
    }
}

#[test]
fn latest_first_reads_the_newest_file_first() {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now();
    for (i, name) in ["a.csv", "b.csv", "c.csv"].iter().enumerate() {
        let p = dir.path().join(name);
        fs::write(&p, format!("{i},{name}\n")).unwrap();
        let f = fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(now - Duration::from_secs(100 - i as u64 * 10))
            .unwrap();
    }
    let opts = FileSourceOptions::from_pairs([
        ("schema", "n bigint, name string"),
        ("latestFirst", "true"),
        ("maxFilesPerTrigger", "1"),
        ("until_idle", "true"),
    ])
    .unwrap();
    for mode in MODES {
        let (rows, _) = run(FileSource::csv(dir.path(), opts.clone()).unwrap(), mode);
        assert_eq!(ids(&rows), vec![2, 1, 0], "{mode:?}");
    }
}

#[test]
fn options_parse_from_pairs_and_reject_unknown_keys() {
    let o = FileSourceOptions::from_pairs([
        ("header", "true"),
        ("sep", ";"),
        ("quote", "'"),
        ("schema", "a int, b string"),
        ("infer_rows", "10"),
        ("max_files_per_trigger", "2"),
        ("maxBytesPerTrigger", "64k"),
        ("latest_first", "false"),
        ("clean_source", "archive:/tmp/arch"),
        ("nullValue", "NA"),
        ("timestamp_format", "dd/MM/yyyy HH:mm"),
        ("bad_records", "dead-letter:/tmp/dl.jsonl"),
        ("max_record_bytes", "2m"),
        ("until_idle", "yes"),
    ])
    .unwrap();
    assert!(o.header && o.until_idle && !o.latest_first);
    assert_eq!((o.delimiter, o.quote), (b';', b'\''));
    assert_eq!(o.schema.unwrap().fields().len(), 2);
    assert_eq!(o.infer_rows, 10);
    assert_eq!(o.max_files_per_trigger, Some(2));
    assert_eq!(o.max_bytes_per_trigger, Some(65536));
    assert_eq!(o.clean_source, CleanSource::Archive("/tmp/arch".into()));
    assert_eq!(o.null_value, "NA");
    assert_eq!(o.timestamp_format.as_deref(), Some("dd/MM/yyyy HH:mm"));
    assert_eq!(
        o.bad_records,
        BadRecordPolicy::DeadLetter("/tmp/dl.jsonl".into())
    );
    assert_eq!(o.max_record_bytes, 2 << 20);

    let d = FileSourceOptions::default();
    assert_eq!(d.max_record_bytes, 1 << 20);
    assert_eq!(d.bad_records, BadRecordPolicy::Skip);
    assert_eq!(d.infer_rows, 1000);

    let err = FileSourceOptions::from_pairs([("colour", "blue")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'colour'") && err.contains("max_files_per_trigger"),
        "{err}"
    );
    for (k, v) in [
        ("header", "maybe"),
        ("delimiter", "::"),
        ("clean_source", "shred"),
        ("bad_records", "ignore"),
        ("max_record_bytes", "lots"),
        ("timestamp_format", "yyyy-QQ"),
        ("schema", "a blob"),
    ] {
        let err = FileSourceOptions::from_pairs([(k, v)])
            .unwrap_err()
            .to_string();
        assert!(err.contains(k), "{k}: {err}");
    }
}

#[test]
fn construction_errors_name_the_directory() {
    let err = FileSource::csv("/no/such/dir", FileSourceOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such/dir"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = FileSource::new(empty.path(), FileFormat::Csv, FileSourceOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&empty.path().display().to_string()) && err.contains("schema"),
        "{err}"
    );
}

#[test]
fn timestamp_format_and_null_value_apply_to_csv() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("t.csv"),
        "when,n\n01/12/2010 08:26,1\nNA,NA\n2010-12-01 09:00:00,3\n",
    )
    .unwrap();
    let opts = FileSourceOptions::from_pairs([
        ("header", "true"),
        ("timestamp_format", "dd/MM/yyyy HH:mm"),
        ("null_value", "NA"),
        ("until_idle", "true"),
    ])
    .unwrap();
    let source = FileSource::csv(dir.path(), opts).unwrap();
    assert_eq!(source.schema().field(0).data_type(), &timestamp_type());
    assert_eq!(source.schema().field(1).data_type(), &DataType::Int64);
    let (rows, _) = run(source, Mode::Continuous);
    let got: Vec<(Value, Value)> = rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(
        got,
        vec![
            (Value::Timestamp(ts("2010-12-01 08:26:00")), Value::Int64(1)),
            (Value::Null, Value::Null),
            (Value::Timestamp(ts("2010-12-01 09:00:00")), Value::Int64(3)),
        ]
    );
}

#[test]
fn many_files_keep_offsets_workable() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..305 {
        fs::write(dir.path().join(format!("f-{i:04}.csv")), format!("{i}\n")).unwrap();
    }
    let opts =
        FileSourceOptions::from_pairs([("schema", "n bigint"), ("until_idle", "true")]).unwrap();
    let ckpt = tempfile::tempdir().unwrap();
    let source = FileSource::csv(dir.path(), opts.clone()).unwrap();
    let (q, table) = start(source, trigger(Mode::Continuous), Some(ckpt.path()));
    assert!(q.await_termination_timeout(LIMIT).unwrap());
    assert_eq!(ids(&table.rows()), (0..305).collect::<Vec<_>>());
    // A restart on the same checkpoint finds nothing new.
    let source = FileSource::csv(dir.path(), opts).unwrap();
    let (q, table) = start(source, trigger(Mode::Continuous), Some(ckpt.path()));
    assert!(q.await_termination_timeout(LIMIT).unwrap());
    assert_eq!(table.len(), 0);
}

#[test]
fn cleanup_owed_by_a_recovered_offset_happens_at_the_next_start() {
    // The engine does not pass the final epoch of a continuous run to
    // `commit`; the files of that epoch are cleaned up when a query starts
    // again from its checkpoint (their rows are durable by then).
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tempfile::tempdir().unwrap();
    copy_fixtures("sales", dir.path());
    let opts = FileSourceOptions {
        clean_source: CleanSource::Delete,
        ..sales_options()
    };
    let source = FileSource::csv(dir.path(), opts.clone()).unwrap();
    let (q, table) = start(source, trigger(Mode::Continuous), Some(ckpt.path()));
    assert!(q.await_termination_timeout(LIMIT).unwrap());
    assert_eq!(table.rows(), sales_expected(&fixture_files("sales")));
    let source = FileSource::csv(dir.path(), opts).unwrap();
    let (q, table) = start(source, trigger(Mode::Continuous), Some(ckpt.path()));
    assert!(q.await_termination_timeout(LIMIT).unwrap());
    assert_eq!(table.len(), 0);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_logged_range_is_read_again_exactly_by_a_new_source() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FileSourceOptions {
        max_files_per_trigger: Some(1),
        ..sales_options()
    };
    // Nothing there yet: nothing new, as the engine's "no offset".
    let mut src = FileSource::csv(dir.path(), opts.clone()).unwrap();
    src.open(&ctx(), None).unwrap();
    assert_eq!(
        src.latest_offset().unwrap(),
        runnel::SourceOffset::default()
    );
    // `until_idle`: everything present (nothing) has been read.
    assert!(src.is_exhausted());
    copy_fixtures("sales", dir.path());
    let end1 = src.latest_offset().unwrap();
    assert!(!src.is_exhausted());
    assert_eq!(
        end1.to_json(),
        serde_json::json!({"files": {"done": ["sales-1.csv"], "file": null, "line": 0, "byte": 0}})
    );
    drop(src); // a crash after the range was logged

    let mut src = FileSource::csv(dir.path(), opts).unwrap();
    src.open(&ctx(), None).unwrap();
    let mut out = Collect::default();
    src.read_range(None, &end1, &mut out).unwrap();
    let files = fixture_files("sales");
    assert_eq!(out.0, sales_expected(&files[..1]));
    let end2 = src.latest_offset().unwrap();
    assert_eq!(
        end2.to_json()["files"]["done"],
        serde_json::json!(["sales-1.csv", "sales-2.csv"])
    );
    let mut out = Collect::default();
    src.read_range(Some(&end1), &end2, &mut out).unwrap();
    assert_eq!(out.0, sales_expected(&files[1..]));
    // Nothing new: the current position, and the stream is exhausted.
    assert_eq!(src.latest_offset().unwrap(), end2);
    assert!(src.is_exhausted());
}

#[test]
fn a_batch_read_on_several_threads_equals_the_rows_read_one_by_one() {
    // Over 4 MB in 9 files, so the batch read spreads them over threads;
    // bad records in several files, and a quoted field with a line break.
    let dir = tempfile::tempdir().unwrap();
    let mut next_id = 0i64;
    for f in 0..9 {
        let mut text = String::from("id,name,amount,ts\n");
        for r in 0..12_000 {
            next_id += 1;
            match (f + r) % 2_500 {
                7 => text.push_str(&format!("{next_id},short\n")),
                8 => text.push_str(&format!("{next_id},bad,{r}x,2020-01-01 00:00:00\n")),
                9 => text.push_str(&format!(
                    "{next_id},\"two\nlines, \"\"quoted\"\"\",{r}.25,2020-02-29T23:59:59.5\n"
                )),
                _ => text.push_str(&format!(
                    "{next_id},name {r} é,{}.5,2021-0{}-1{} 0{}:3{}:00\n",
                    r % 1000,
                    1 + r % 9,
                    r % 10,
                    r % 10,
                    r % 10
                )),
            }
        }
        fs::write(dir.path().join(format!("part-{f}.csv")), text).unwrap();
    }
    let dl = tempfile::tempdir().unwrap();
    let options = |letters: &str| FileSourceOptions {
        bad_records: BadRecordPolicy::DeadLetter(dl.path().join(letters)),
        ..FileSourceOptions::from_pairs([
            ("header", "true"),
            (
                "schema",
                "id bigint, name string, amount double, ts timestamp",
            ),
        ])
        .unwrap()
    };

    let mut by_rows = FileSource::csv(dir.path(), options("rows.jsonl")).unwrap();
    by_rows.open(&ctx(), None).unwrap();
    let end = by_rows.latest_offset().unwrap();
    let mut rows = Collect::default();
    by_rows.read_range(None, &end, &mut rows).unwrap();
    by_rows.commit(&end).unwrap();

    let mut by_batch = FileSource::csv(dir.path(), options("batch.jsonl")).unwrap();
    by_batch.open(&ctx(), None).unwrap();
    let batch = by_batch.read_batch(None, &end).unwrap();
    by_batch.commit(&end).unwrap();

    assert_eq!(batch.ingest_ns.len(), batch.batch.num_rows());
    let batch_rows = runnel::schema::arrow::batch_to_rows(&batch.batch).unwrap();
    assert_eq!(batch_rows.len(), rows.0.len());
    assert!(rows.0.len() > 100_000, "{} rows", rows.0.len());
    assert_eq!(batch_rows, rows.0);
    assert_eq!(by_batch.metrics(), by_rows.metrics());
    let read = |name: &str| fs::read_to_string(dl.path().join(name)).unwrap();
    assert!(
        read("rows.jsonl").lines().count() >= 9,
        "{}",
        read("rows.jsonl")
    );
    assert_eq!(read("batch.jsonl"), read("rows.jsonl"));
}
