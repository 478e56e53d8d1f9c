//! The socket source, the console sink and the null sink through the
//! engine: a local TCP peer that sends lines and closes, the console's text
//! checked byte for byte, row counts of the null sink.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use runnel::{
    col, count_star, schema, timestamp_type, DataFrame, DataType, MemorySink, OutputMode, Row,
    Sink, SinkContext, Source, Trigger, Value,
};
use runnel_connectors::log::LogTopic;
use runnel_connectors::socket::MAX_LINE_BYTES;
use runnel_connectors::{
    ConsoleSink, LogSource, LogSourceOptions, NullSink, SocketSource, StartingOffsets,
};

const LIMIT: Duration = Duration::from_secs(60);

fn continuous() -> Trigger {
    Trigger::Continuous {
        epoch_interval: Duration::from_millis(20),
    }
}

/// A listener on a free local port, and a thread that accepts one
/// connection, hands it to `serve`, then closes it.
fn peer(serve: impl FnOnce(&mut TcpStream) + Send + 'static) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        serve(&mut stream);
    });
    (port, t)
}

fn values(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect()
}

// ------------------------------------------------------------------ socket

#[test]
fn socket_lines_arrive_in_order_and_the_query_ends_when_the_peer_closes() {
    let (port, peer) = peer(|s| {
        for i in 0..2_000 {
            writeln!(s, "line {i}").unwrap();
        }
        s.write_all(b"crlf\r\n\n\xffbad utf8\nlast without break")
            .unwrap();
    });
    let (sink, table) = MemorySink::new("lines");
    let q = DataFrame::from_source("s", SocketSource::new(&port.to_string()).unwrap())
        .write_stream(sink)
        .trigger(continuous())
        .start()
        .unwrap();
    assert!(
        q.await_termination_timeout(LIMIT).unwrap(),
        "query did not end"
    );
    peer.join().unwrap();
    let mut expected: Vec<String> = (0..2_000).map(|i| format!("line {i}")).collect();
    expected.extend(["crlf", "", "\u{fffd}bad utf8", "last without break"].map(String::from));
    assert_eq!(values(&table.rows()), expected);
}

#[test]
fn socket_skips_and_counts_lines_over_one_mib() {
    let (port, peer) = peer(|s| {
        s.write_all(b"a\n").unwrap();
        s.write_all(&vec![b'x'; MAX_LINE_BYTES + 10]).unwrap();
        s.write_all(b"\nb\n").unwrap();
        // Exactly at the limit: kept.
        s.write_all(&vec![b'y'; MAX_LINE_BYTES]).unwrap();
        s.write_all(b"\r\nc\n").unwrap();
        s.write_all(&vec![b'z'; MAX_LINE_BYTES * 2]).unwrap();
    });
    let (sink, table) = MemorySink::new("lines");
    let q = DataFrame::from_source("s", SocketSource::new(&format!(":{port}")).unwrap())
        .write_stream(sink)
        .trigger(continuous())
        .start()
        .unwrap();
    assert!(q.await_termination_timeout(LIMIT).unwrap());
    peer.join().unwrap();
    let got = values(&table.rows());
    assert_eq!(
        got.len(),
        4,
        "{:?}",
        got.iter().map(String::len).collect::<Vec<_>>()
    );
    assert_eq!(
        (got[0].as_str(), got[1].as_str(), got[3].as_str()),
        ("a", "b", "c")
    );
    assert_eq!(got[2], "y".repeat(MAX_LINE_BYTES));
    let bad = q
        .recent_progress()
        .iter()
        .filter_map(|p| p.sources.first()?.metrics.get("badRecords").copied())
        .max();
    assert_eq!(bad, Some(2));
}

#[test]
fn socket_connection_refused_names_the_address() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = DataFrame::from_source(
        "s",
        SocketSource::new(&format!("127.0.0.1:{port}")).unwrap(),
    )
    .write_stream(MemorySink::new("x").0)
    .trigger(continuous())
    .start()
    .map(|_| ())
    .expect_err("the query must not start")
    .to_string();
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

#[test]
fn socket_source_is_not_replayable_and_has_no_micro_batch_mode() {
    // Refused when the query starts, before anything connects: nothing
    // listens on this port, and the error is about the mode.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let source = SocketSource::new(&port.to_string()).unwrap();
    assert!(!source.is_replayable());
    let err = DataFrame::from_source("s", source)
        .write_stream(MemorySink::new("x").0)
        .trigger(Trigger::AvailableNow)
        .start()
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot run in micro-batch mode"), "{err}");
}

#[test]
fn stopping_a_query_closes_a_silent_connection() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (port, peer) = peer(move |s| {
        s.write_all(b"hello\n").unwrap();
        // Stay silent until the source hangs up.
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        tx.send(n).unwrap();
    });
    let (sink, table) = MemorySink::new("x");
    let source = SocketSource::new(&port.to_string())
        .unwrap()
        .with_include_timestamp(true);
    assert_eq!(source.schema().fields().len(), 2);
    let q = DataFrame::from_source("s", source)
        .write_stream(sink)
        .trigger(continuous())
        .start()
        .unwrap();
    let t = Instant::now();
    while table.is_empty() {
        assert!(t.elapsed() < LIMIT);
        thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    q.stop().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(
        rx.recv_timeout(LIMIT).unwrap(),
        0,
        "the peer sees the close"
    );
    peer.join().unwrap();
    let rows = table.rows();
    assert_eq!(rows[0][0], Value::str("hello"));
    assert!(matches!(rows[0][1], Value::Timestamp(t) if t > 1_600_000_000_000_000));
}

// ----------------------------------------------------------------- console

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn console_prints_spark_tables_per_epoch() {
    let out = Captured::default();
    let mut sink = ConsoleSink::with_writer(Box::new(out.clone()));
    let ctx = SinkContext {
        schema: schema(&[
            ("window_start", timestamp_type()),
            ("user", DataType::Utf8),
            ("count", DataType::Int64),
            ("avg", DataType::Float64),
        ]),
        output_mode: OutputMode::Append,
        key_columns: None,
        query_id: "test".into(),
        replays_same_rows: true,
        checkpointed: false,
        durable: runnel::DurableEpochs::default(),
    };
    sink.open(&ctx, None).unwrap();
    sink.commit(2).unwrap(); // an empty epoch prints nothing
    let ts = 1_293_840_000_000_000; // 2011-01-01 00:00:00
    sink.write(&Row::from(vec![
        Value::Timestamp(ts),
        Value::str("ada"),
        Value::Int64(12),
        Value::Float64(1.5),
    ]))
    .unwrap();
    sink.write(&Row::from(vec![
        Value::Timestamp(ts + 60_000_000),
        Value::str("a very long user name indeed"),
        Value::Int64(7),
        Value::Null,
    ]))
    .unwrap();
    sink.commit(3).unwrap();
    assert_eq!(
        out.text(),
        "-------------------------------------------\n\
         Batch: 3\n\
         -------------------------------------------\n\
         +-------------------+--------------------+-----+----+\n\
         |       window_start|                user|count| avg|\n\
         +-------------------+--------------------+-----+----+\n\
         |2011-01-01 00:00:00|                 ada|   12| 1.5|\n\
         |2011-01-01 00:01:00|a very long user ...|    7|null|\n\
         +-------------------+--------------------+-----+----+\n\
         \n"
    );
}

#[test]
fn console_update_and_complete_modes_keep_the_table_by_key() {
    let ctx = |mode| SinkContext {
        schema: schema(&[("k", DataType::Utf8), ("n", DataType::Int64)]),
        output_mode: mode,
        key_columns: Some(vec![0]),
        query_id: "test".into(),
        replays_same_rows: true,
        checkpointed: false,
        durable: runnel::DurableEpochs::default(),
    };
    let kv = |k: &str, n: i64| Row::from(vec![Value::str(k), Value::Int64(n)]);
    let table = |rows: &[(&str, i64)]| {
        let mut s = String::from("+---+---+\n|  k|  n|\n+---+---+\n");
        for (k, n) in rows {
            s.push_str(&format!("|{k:>3}|{n:>3}|\n"));
        }
        s + "+---+---+\n"
    };
    let header = |b: u64| format!("{0}\nBatch: {b}\n{0}\n", "-".repeat(43));

    let out = Captured::default();
    let mut sink = ConsoleSink::with_writer(Box::new(out.clone()));
    sink.open(&ctx(OutputMode::Complete), None).unwrap();
    sink.write(&kv("a", 1)).unwrap();
    sink.write(&kv("b", 1)).unwrap();
    sink.commit(0).unwrap();
    sink.commit(1).unwrap();
    sink.write(&kv("a", 2)).unwrap();
    sink.commit(2).unwrap();
    assert_eq!(
        out.text(),
        format!(
            "{}{}\n{}{}\n",
            header(0),
            table(&[("a", 1), ("b", 1)]),
            header(2),
            table(&[("a", 2), ("b", 1)])
        )
    );

    let out = Captured::default();
    let mut sink = ConsoleSink::with_writer(Box::new(out.clone()));
    sink.open(&ctx(OutputMode::Update), None).unwrap();
    sink.write(&kv("a", 1)).unwrap();
    sink.write(&kv("b", 1)).unwrap();
    sink.write(&kv("a", 2)).unwrap();
    sink.commit(5).unwrap();
    sink.write(&kv("b", 3)).unwrap();
    sink.commit(6).unwrap();
    assert_eq!(
        out.text(),
        format!(
            "{}{}\n{}{}\n",
            header(5),
            table(&[("a", 2), ("b", 1)]),
            header(6),
            table(&[("b", 3)])
        )
    );
}

#[test]
fn console_shows_at_most_num_rows() {
    let out = Captured::default();
    let mut sink = ConsoleSink::with_writer(Box::new(out.clone()))
        .with_options([("numRows", "2"), ("truncate", "false")])
        .unwrap();
    let ctx = SinkContext {
        schema: schema(&[("value", DataType::Utf8)]),
        output_mode: OutputMode::Append,
        key_columns: None,
        query_id: "test".into(),
        replays_same_rows: true,
        checkpointed: false,
        durable: runnel::DurableEpochs::default(),
    };
    sink.open(&ctx, None).unwrap();
    for v in ["x", "a rather long value over twenty characters", "z"] {
        sink.write(&Row::from(vec![Value::str(v)])).unwrap();
    }
    sink.commit(0).unwrap();
    let text = out.text();
    assert!(
        text.ends_with(
            "|value                                     |\n\
             +------------------------------------------+\n\
             |x                                         |\n\
             |a rather long value over twenty characters|\n\
             +------------------------------------------+\n\
             only showing top 2 rows\n\n"
        ),
        "{text}"
    );
}

fn one_partition_topic(dir: &Path, values: &[(&str, &str)]) -> LogTopic {
    let topic = LogTopic::create(dir, "t", 1).unwrap();
    let mut producer = topic.producer().unwrap();
    for (i, (k, v)) in values.iter().enumerate() {
        producer
            .send(None, Some(k.as_bytes()), Some(v.as_bytes()), i as i64)
            .unwrap();
    }
    producer.sync().unwrap();
    topic
}

fn log_options(per_trigger: Option<u64>) -> LogSourceOptions {
    LogSourceOptions {
        starting_offsets: StartingOffsets::Earliest,
        until_idle: true,
        max_records_per_trigger: per_trigger,
        ..LogSourceOptions::default()
    }
}

#[test]
fn console_through_the_engine_in_append_and_complete_modes() {
    let dir = tempfile::tempdir().unwrap();
    let topic = one_partition_topic(
        dir.path(),
        &[("u", "first"), ("u", "second"), ("u", "third")],
    );

    let out = Captured::default();
    DataFrame::from_source(
        "t",
        LogSource::new(topic.path(), log_options(Some(2))).unwrap(),
    )
    .select([col("offset"), col("value")])
    .write_stream(ConsoleSink::with_writer(Box::new(out.clone())))
    .trigger(Trigger::AvailableNow)
    .start()
    .unwrap()
    .await_termination()
    .unwrap();
    let rule = "-".repeat(43);
    assert_eq!(
        out.text(),
        format!(
            "{rule}\nBatch: 0\n{rule}\n\
             +------+------+\n\
             |offset| value|\n\
             +------+------+\n\
             |     0| first|\n\
             |     1|second|\n\
             +------+------+\n\n\
             {rule}\nBatch: 1\n{rule}\n\
             +------+-----+\n\
             |offset|value|\n\
             +------+-----+\n\
             |     2|third|\n\
             +------+-----+\n\n"
        )
    );

    let out = Captured::default();
    DataFrame::from_source(
        "t",
        LogSource::new(topic.path(), log_options(Some(2))).unwrap(),
    )
    .group_by([col("key")])
    .agg([count_star().alias("count")])
    .write_stream(ConsoleSink::with_writer(Box::new(out.clone())))
    .output_mode(OutputMode::Complete)
    .trigger(Trigger::AvailableNow)
    .start()
    .unwrap()
    .await_termination()
    .unwrap();
    assert_eq!(
        out.text(),
        format!(
            "{rule}\nBatch: 0\n{rule}\n\
             +---+-----+\n|key|count|\n+---+-----+\n|  u|    2|\n+---+-----+\n\n\
             {rule}\nBatch: 1\n{rule}\n\
             +---+-----+\n|key|count|\n+---+-----+\n|  u|    3|\n+---+-----+\n\n"
        )
    );
}

// -------------------------------------------------------------------- null

#[test]
fn null_sink_counts_rows_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<(String, String)> = (0..2_500)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let topic = one_partition_topic(dir.path(), &pairs);
    for trig in [continuous(), Trigger::AvailableNow] {
        let sink = NullSink::new();
        let counter = sink.counter();
        let q = DataFrame::from_source(
            "t",
            LogSource::new(topic.path(), log_options(Some(1_000))).unwrap(),
        )
        .write_stream(sink)
        .trigger(trig)
        .start()
        .unwrap();
        assert!(q.await_termination_timeout(LIMIT).unwrap());
        assert_eq!(counter.rows(), 2_500, "{trig:?}");
        assert!(counter.commits() >= 1);
        let latency = q.latency();
        assert!(
            latency.count >= 1,
            "the engine measures latency at the null sink too"
        );
    }
}
