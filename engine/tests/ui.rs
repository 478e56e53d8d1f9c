//! The live view over HTTP (feature `ui`): every endpoint's status, content
//! type and document shape, `/metrics` read line by line against the text
//! format, queries that stopped or failed still listed, and the refusal of
//! a non-loopback address.
#![cfg(feature = "ui")]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::SequenceSource;
use runnel::ui::{UiError, UiOptions};
use runnel::{
    col, count_star, window, DataFrame, EngineError, MemorySink, Row, Sink, SinkContext,
    StreamingQuery, StreamingQueryProgress, Trigger,
};
use serde_json::Value as Json;

/// One HTTP/1.1 GET: status, headers (lower-case names), body.
fn get(addr: SocketAddr, path: &str) -> (u16, BTreeMap<String, String>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    assert!(
        !headers
            .get("transfer-encoding")
            .is_some_and(|t| t.contains("chunked")),
        "{path}: a chunked body (this client reads only whole ones)"
    );
    (status, headers, body.to_string())
}

fn get_json(addr: SocketAddr, path: &str) -> Json {
    let (status, headers, body) = get(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(headers["content-type"], "application/json", "{path}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// A continuous windowed count over a paced sequence, with a watermark and
/// a checkpoint, in two partitions (so rings link its tasks): it runs until
/// stopped.
fn running_query(ckpt: &std::path::Path) -> StreamingQuery {
    let (sink, _table) = MemorySink::new("ui_counts");
    let query = DataFrame::from_source(
        "events",
        SequenceSource::new(100_000_000, 5, 1_000).paced(Duration::from_millis(1)),
    )
    .with_watermark("ts", "1 second")
    .group_by([window(col("ts"), "1 second"), col("key")])
    .agg([count_star().alias("n")])
    .write_stream(sink)
    .parallelism(2)
    .output_mode(runnel::OutputMode::Update)
    .trigger(Trigger::Continuous {
        epoch_interval: Duration::from_millis(20),
    })
    .checkpoint(ckpt)
    .query_name("ui_running")
    .start()
    .unwrap();
    // Wait (no timing goal: a guard against a hang) for reports with rows,
    // latency and state.
    let started = Instant::now();
    loop {
        let enough = query.recent_progress().len() >= 3
            && query.latency().count > 0
            && query
                .last_progress()
                .is_some_and(|p| !p.state_operators.is_empty());
        if enough {
            return query;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress with latency after 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct FailingSink;

impl Sink for FailingSink {
    fn describe(&self) -> String {
        "FailingSink".into()
    }
    fn open(&mut self, _: &SinkContext, _: Option<&serde_json::Value>) -> runnel::Result<()> {
        Ok(())
    }
    fn write(&mut self, _row: &Row) -> runnel::Result<()> {
        Err(EngineError::Sink("the disk is on fire".into()))
    }
    fn commit(&mut self, _epoch: u64) -> runnel::Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }
}

fn find<'a>(list: &'a Json, run_id: &str) -> &'a Json {
    list.as_array()
        .unwrap()
        .iter()
        .find(|q| q["runId"] == run_id)
        .unwrap_or_else(|| panic!("run {run_id} is not listed: {list}"))
}

/// Reads the text exposition format line by line: every line a comment of
/// a known kind or a sample `name{labels} value` of a declared family,
/// ending with `# EOF`. Returns each sample's value by its line's series
/// text (`name{labels}`).
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    fn is_name(s: &str) -> bool {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
    }
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "the text ends with # EOF");
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or("");
            let arg = parts.next().unwrap_or("");
            assert!(is_name(name), "bad metric name in {line:?}");
            match kind {
                "HELP" => {}
                "UNIT" => assert!(name.ends_with(&format!("_{arg}")), "{line:?}"),
                "TYPE" => {
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "info",
                            "unknown"
                        ]
                        .contains(&arg),
                        "{line:?}"
                    );
                    families.insert(name.to_string(), arg.to_string());
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        // name{labels} value
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, Some(l.strip_suffix('}').expect("labels end with }"))),
            None => (series, None),
        };
        assert!(is_name(name), "bad sample name in {line:?}");
        if let Some(mut l) = labels {
            // key="value" pairs, values with \\ \" \n escapes, comma-separated.
            while !l.is_empty() {
                let (key, rest) = l.split_once("=\"").unwrap_or_else(|| panic!("{line:?}"));
                assert!(is_name(key), "bad label name {key:?} in {line:?}");
                let mut end = None;
                let mut escaped = false;
                for (i, ch) in rest.char_indices() {
                    match (escaped, ch) {
                        (true, '\\' | '"' | 'n') => escaped = false,
                        (true, _) => panic!("bad escape in {line:?}"),
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.unwrap_or_else(|| panic!("unterminated label value in {line:?}"));
                l = &rest[end + 1..];
                l = l.strip_prefix(',').unwrap_or(l);
            }
        }
        let family = families
            .iter()
            .find(|(f, kind)| {
                let suffixes: &[&str] = match kind.as_str() {
                    "counter" => &["_total", "_created"],
                    "histogram" => &["_bucket", "_sum", "_count", "_created"],
                    "summary" => &["", "_sum", "_count"],
                    "info" => &["_info"],
                    _ => &[""],
                };
                suffixes.iter().any(|s| name == format!("{f}{s}"))
            })
            .unwrap_or_else(|| panic!("sample {name} of no declared family"));
        let _ = family;
        samples.insert(series.to_string(), value);
    }
    samples
}

/// The value of `name` for the series labelled with `run_id` (and the
/// other label text `extra`, if any).
fn sample(samples: &BTreeMap<String, f64>, name: &str, run_id: &str, extra: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(s, _)| {
            s.starts_with(&format!("{name}{{"))
                && s.contains(&format!("run_id=\"{run_id}\""))
                && s.contains(extra)
        })
        .map(|(_, v)| *v)
}

#[test]
fn every_endpoint_answers_for_running_stopped_and_failed_queries() {
    let dir = tempfile::tempdir().unwrap();
    let running = running_query(&dir.path().join("ckpt"));

    let (sink, _t) = MemorySink::new("ui_batches");
    let stopped = DataFrame::from_source(
        "events",
        SequenceSource::new(2_000, 3, 1_000).per_trigger(500),
    )
    .write_stream(sink)
    .trigger(Trigger::AvailableNow)
    .query_name("ui_stopped")
    .start()
    .unwrap();
    stopped.await_termination().unwrap();

    let failed = DataFrame::from_source("events", SequenceSource::new(1_000, 3, 1))
        .write_stream(FailingSink)
        .query_name("ui_failed")
        .start()
        .unwrap();
    assert!(failed.await_termination().is_err());

    let addr = running.serve_ui("127.0.0.1:0").unwrap();
    assert!(addr.ip().is_loopback());
    // The same address again: the same server, one more query on it.
    assert_eq!(stopped.serve_ui(addr.to_string()).unwrap(), addr);
    assert_eq!(failed.serve_ui(addr.to_string()).unwrap(), addr);

    // The page: HTML, everything inline, nothing fetched from elsewhere.
    let (status, headers, page) = get(addr, "/");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("<script>") && page.contains("id=\"charts\""));
    for external in ["src=\"http", "href=\"http", "src=\"//", "@import", "<link "] {
        assert!(
            !page.contains(external),
            "the page refers outside: {external}"
        );
    }

    // The list: every served query, with its status, times and error.
    let list = get_json(addr, "/api/queries");
    let r = find(&list, running.run_id());
    assert_eq!(r["id"], running.id());
    assert_eq!(r["name"], "ui_running");
    assert_eq!(r["mode"], "continuous");
    assert_eq!(r["guarantee"], "at-least-once");
    assert_eq!(r["checkpointed"], true);
    assert_eq!(r["status"], "running");
    assert!(r["startTime"].as_str().unwrap().ends_with('Z'));
    assert!(r["endTime"].is_null() && r["error"].is_null());
    assert!(r["totals"]["inputRows"].as_u64().unwrap() > 0);
    assert!(r["totals"]["checkpointBytes"].as_u64().unwrap() > 0);
    let tasks = r["taskGraph"].as_array().unwrap();
    assert!(!tasks.is_empty() && tasks[0]["task"] == 0);
    assert!(tasks[0]["runs"]
        .as_str()
        .unwrap()
        .contains("source(events)"));
    // Two partitions: a ring from the source's task into each aggregation
    // task, one from each into the sink's task; sampled at epoch markers.
    let rings = r["rings"].as_array().unwrap();
    assert_eq!(rings.len(), 4, "{r}");
    assert!(r["ringsNote"].is_null());
    for ring in rings {
        assert!(ring["capacity"].as_u64().unwrap() > 0, "{ring}");
        assert!(ring["samples"].as_u64().unwrap() > 0, "{ring}");
        assert!(ring["waiting"].as_u64().unwrap() <= ring["capacity"].as_u64().unwrap());
        let fill = ring["fillRatio"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&fill), "{ring}");
        assert!(
            ring["fullWaits"].is_u64() && ring["peak"].is_u64(),
            "{ring}"
        );
        assert_ne!(ring["from"], ring["to"]);
    }
    assert_eq!(rings[0]["from"], 0);
    let s = find(&list, stopped.run_id());
    assert_eq!(s["mode"], "micro-batch");
    assert_eq!(s["guarantee"], "exactly-once");
    assert_eq!(s["status"], "stopped");
    assert!(s["endTime"].as_str().unwrap().ends_with('Z'));
    assert!(s["error"].is_null());
    assert_eq!(s["totals"]["inputRows"], 2_000);
    assert_eq!(s["rings"].as_array().unwrap().len(), 0);
    assert!(s["ringsNote"].as_str().unwrap().contains("micro-batch"));
    let f = find(&list, failed.run_id());
    assert_eq!(f["status"], "failed");
    assert!(f["endTime"].is_string());
    assert!(f["error"].as_str().unwrap().contains("the disk is on fire"));
    // One query by run id, by query id, by name.
    for key in [running.run_id(), running.id(), "ui_running"] {
        let one = get_json(addr, &format!("/api/queries/{key}"));
        assert_eq!(one["runId"], running.run_id());
    }

    // Progress: Spark's StreamingQueryProgress documents, oldest first.
    let path = format!("/api/queries/{}/progress", running.run_id());
    let progress = get_json(addr, &path);
    let reports: Vec<StreamingQueryProgress> = serde_json::from_value(progress.clone()).unwrap();
    assert!(reports.len() >= 3);
    assert!(reports.windows(2).all(|w| w[0].batch_id < w[1].batch_id));
    let first = &progress[0];
    for field in [
        "id",
        "runId",
        "name",
        "timestamp",
        "batchId",
        "numInputRows",
        "inputRowsPerSecond",
        "processedRowsPerSecond",
        "durationMs",
        "eventTime",
        "stateOperators",
        "sources",
        "sink",
        "latencyMicros",
    ] {
        assert!(
            first.get(field).is_some(),
            "progress lacks {field}: {first}"
        );
    }
    assert_eq!(first["runId"], running.run_id());
    let after = reports[reports.len() - 2].batch_id;
    let later: Vec<StreamingQueryProgress> =
        serde_json::from_value(get_json(addr, &format!("{path}?after={after}"))).unwrap();
    assert!(!later.is_empty() && later.iter().all(|p| p.batch_id > after));
    let history: Vec<StreamingQueryProgress> =
        serde_json::from_value(get_json(addr, &format!("{path}?history"))).unwrap();
    assert!(history.len() >= reports.len());
    assert!(history.windows(2).all(|w| w[0].batch_id < w[1].batch_id));
    let (status, _, _) = get(addr, &format!("{path}?after=yesterday"));
    assert_eq!(status, 400);

    // Latency: percentiles, and the histogram in the HdrHistogram encoding.
    let latency = get_json(addr, &format!("/api/queries/{}/latency", running.run_id()));
    assert_eq!(latency["unit"], "microseconds");
    let count = latency["endToEnd"]["count"].as_u64().unwrap();
    assert!(count > 0);
    for p in ["p50", "p99", "p999", "max"] {
        assert!(
            latency["endToEnd"][p].as_f64().unwrap() > 0.0,
            "{p}: {latency}"
        );
    }
    assert_eq!(latency["histogram"]["unit"], "nanoseconds");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(latency["histogram"]["data"].as_str().unwrap())
        .unwrap();
    let h: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .unwrap();
    // The histogram is read after the percentiles: it may hold later epochs.
    assert!(h.len() >= count, "{} < {count}", h.len());
    let p50_us = h.value_at_quantile(0.5) as f64 / 1000.0;
    assert!(p50_us > 0.0);

    // Latency second by second: the server closes a second each second;
    // wait (a guard against a hang, not a timing goal) for two.
    let path = format!("/api/queries/{}/latency/seconds", running.run_id());
    let started = Instant::now();
    let seconds = loop {
        let s = get_json(addr, &path);
        if s.as_array().unwrap().len() >= 2 {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let seconds = seconds.as_array().unwrap();
    for w in seconds.windows(2) {
        assert!(w[0]["timeMs"].as_i64().unwrap() < w[1]["timeMs"].as_i64().unwrap());
    }
    for s in seconds {
        assert!(s["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(s["latencyMicros"]["count"].as_u64().unwrap() > 0, "{s}");
        let (p50, p99) = (
            s["latencyMicros"]["p50"].as_f64().unwrap(),
            s["latencyMicros"]["p99"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p99 >= p50, "{s}");
    }
    let first = seconds[0]["timeMs"].as_i64().unwrap();
    let later = get_json(addr, &format!("{path}?after={first}"));
    assert!(later
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["timeMs"].as_i64().unwrap() > first));
    let (status, _, _) = get(addr, &format!("{path}?after=noon"));
    assert_eq!(status, 400);

    // Unknown queries and paths: 404 with a JSON error.
    for path in [
        "/api/queries/nope",
        "/api/queries/nope/progress",
        "/api/queries/nope/latency",
        "/api/queries/nope/latency/seconds",
        "/nope",
    ] {
        let (status, headers, body) = get(addr, path);
        assert_eq!(status, 404, "{path}");
        assert_eq!(headers["content-type"], "application/json");
        assert!(serde_json::from_str::<Json>(&body).unwrap()["error"].is_string());
    }

    // /metrics: the text format, every line well formed.
    let (status, headers, text) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let samples = parse_exposition(&text);
    let run = running.run_id();
    assert!(
        sample(
            &samples,
            "runnel_input_rows_total",
            run,
            "query=\"ui_running\""
        )
        .unwrap()
            > 0.0
    );
    assert!(sample(&samples, "runnel_output_rows_total", run, "").unwrap() > 0.0);
    assert!(sample(&samples, "runnel_late_rows_total", run, "").is_some());
    assert!(sample(&samples, "runnel_epochs_total", run, "").unwrap() > 0.0);
    assert!(sample(
        &samples,
        "runnel_state_rows",
        run,
        "operator=\"stateStoreSave\""
    )
    .is_some());
    assert!(sample(&samples, "runnel_watermark_seconds", run, "").unwrap() > 0.0);
    assert!(sample(&samples, "runnel_watermark_lag_seconds", run, "").is_some());
    assert!(sample(&samples, "runnel_checkpoint_duration_seconds", run, "").is_some());
    assert!(sample(&samples, "runnel_checkpoint_written_bytes_total", run, "").unwrap() > 0.0);
    assert!(sample(&samples, "runnel_latency_seconds_count", run, "").unwrap() > 0.0);
    assert!(
        sample(
            &samples,
            "runnel_latency_seconds_bucket",
            run,
            "le=\"+Inf\""
        )
        .unwrap()
            > 0.0
    );
    for q in ["0.5", "0.99", "0.999"] {
        let v = sample(
            &samples,
            "runnel_latency_quantile_seconds",
            run,
            &format!("quantile=\"{q}\""),
        );
        assert!(v.unwrap() > 0.0, "quantile {q}");
    }
    for ring in [
        "from_task=\"0\",to_task=\"1\"",
        "from_task=\"1\",to_task=\"3\"",
    ] {
        let fill = sample(&samples, "runnel_ring_fill_ratio", run, ring);
        assert!(fill.is_some_and(|f| (0.0..=1.0).contains(&f)), "{ring}");
        assert!(sample(&samples, "runnel_ring_full_waits_total", run, ring).is_some());
    }
    assert_eq!(sample(&samples, "runnel_query_running", run, ""), Some(1.0));
    assert_eq!(
        sample(&samples, "runnel_query_running", stopped.run_id(), ""),
        Some(0.0)
    );
    assert_eq!(
        sample(&samples, "runnel_input_rows_total", stopped.run_id(), ""),
        Some(2_000.0)
    );

    // A query stopped after it was served: listed as stopped, with its end.
    running.stop().unwrap();
    let r = get_json(addr, &format!("/api/queries/{}", running.run_id()));
    assert_eq!(r["status"], "stopped");
    assert!(r["endTime"].is_string());
}

#[test]
fn a_non_loopback_address_is_refused_unless_allowed() {
    let (sink, _t) = MemorySink::new("ui_remote");
    let query = DataFrame::from_source("events", SequenceSource::new(10, 2, 1))
        .write_stream(sink)
        .start()
        .unwrap();
    query.await_termination().unwrap();
    for addr in ["0.0.0.0:0", "[::]:0"] {
        match query.serve_ui(addr) {
            Err(UiError::NotLoopback { addr: refused }) => assert!(!refused.ip().is_loopback()),
            other => panic!("{addr}: {other:?}"),
        }
    }
    let err = query.serve_ui("0.0.0.0:0").unwrap_err().to_string();
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(matches!(
        query.serve_ui("not an address"),
        Err(UiError::Address { .. })
    ));
    // Said explicitly, it is served.
    let addr = query
        .serve_ui_with(&UiOptions::new("0.0.0.0:0").allow_remote(true))
        .unwrap();
    assert!(addr.ip().is_unspecified());
    let loopback = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    let list = get_json(loopback, "/api/queries");
    assert_eq!(find(&list, query.run_id())["status"], "stopped");
}
