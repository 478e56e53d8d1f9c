//! The Kafka source and sink end to end, against a real Kafka-compatible
//! broker (tansu, started by `tools/kafka-test-broker.sh`): round trips
//! Kafka → query → Kafka in both modes, restarts on a checkpoint, `runnel
//! run` processes killed with SIGKILL and restarted, and the error paths.
//!
//! The broker is found through `RUNNEL_KAFKA_BROKER=HOST:PORT` and topics are
//! created with the `tansu` binary named by `RUNNEL_TANSU`. Without them
//! every test here FAILS (it does not skip): run the suite with
//! `bash tools/test.sh`, which starts the broker, or start one yourself:
//!
//! ```text
//! set -a; eval "$(bash tools/kafka-test-broker.sh start)"; set +a
//! cargo test -p runnel-connectors --test kafka
//! ```
//!
//! Every test uses topics of its own (unique names), so tests run in
//! parallel against one broker and a broker can be reused across runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use runnel::{
    col, schema, DataFrame, DataType, MemorySink, MemorySource, Result, Row, Trigger, Value,
};
use runnel_connectors::{
    KafkaSink, KafkaSinkOptions, KafkaSource, KafkaSourceOptions, StartingOffsets,
};
use runnel_tests::{kill_and_restart, Rng};

const LIMIT: Duration = Duration::from_secs(90);
const PARTITIONS: i32 = 3;

// ---------------------------------------------------------------- broker

const HOW_TO: &str = "the Kafka tests need the test broker: run them with `bash tools/test.sh`, \
    or start it first with `set -a; eval \"$(bash tools/kafka-test-broker.sh start)\"; set +a`";

fn broker() -> String {
    match std::env::var("RUNNEL_KAFKA_BROKER") {
        Ok(b) if !b.trim().is_empty() => b.trim().to_string(),
        _ => panic!("RUNNEL_KAFKA_BROKER is not set: {HOW_TO}"),
    }
}

fn tansu() -> String {
    match std::env::var("RUNNEL_TANSU") {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => panic!("RUNNEL_TANSU (the tansu binary, for creating topics) is not set: {HOW_TO}"),
    }
}

/// A topic name no other test (or earlier run on the same broker) uses.
fn unique(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{name}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn create_topic(name: &str, partitions: i32) -> String {
    let status = Command::new(tansu())
        .args(["topic", "create", name, "--partitions"])
        .arg(partitions.to_string())
        .arg("--broker")
        .arg(format!("tcp://{}", broker()))
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): {HOW_TO}", tansu()));
    assert!(status.success(), "tansu topic create {name} failed");
    // Wait until the broker's metadata lists the topic with its partitions.
    let c = consumer();
    let t = Instant::now();
    loop {
        if let Ok(md) = c.fetch_metadata(Some(name), Duration::from_secs(5)) {
            if md.topics().iter().any(|t| {
                t.name() == name && t.error().is_none() && t.partitions().len() as i32 == partitions
            }) {
                return name.to_string();
            }
        }
        assert!(t.elapsed() < LIMIT, "topic {name} never showed up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn address(topic: &str) -> String {
    format!("{}/{topic}", broker())
}

/// The test producer. One record per batch: tansu 0.6.0 returns nothing to
/// a fetch that starts in the middle of a record batch (shown by
/// `cargo run -p runnel-benches --bin kafka-e2e -- --probe`), so a query restarted at an
/// offset inside a batch would never get its next record from it. Real
/// Kafka brokers return the whole batch and the client skips the records
/// before the offset.
fn producer() -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("enable.idempotence", "true")
        .set("batch.num.messages", "1")
        .set("linger.ms", "0")
        .create()
        .expect("test producer")
}

fn consumer() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("test-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("test consumer")
}

/// Produces records `from..to`: key `k{i}`, value `{i}`, partition
/// `i % PARTITIONS`; waits for every delivery.
fn produce(topic: &str, from: u64, to: u64) {
    produce_with(producer(), topic, from, to)
}

fn produce_with(p: BaseProducer, topic: &str, from: u64, to: u64) {
    for i in from..to {
        let key = format!("k{i}");
        let value = i.to_string();
        let mut rec = BaseRecord::to(topic)
            .key(&key)
            .payload(&value)
            .partition((i % PARTITIONS as u64) as i32);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                // Only a full queue is waited out: any other refusal (a
                // partition the topic lacks) fails the test at once.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    p.poll(Duration::from_millis(5));
                }
                Err((e, _)) => panic!("producing to {topic}: {e}"),
            }
        }
        if i % 1000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(60))
        .expect("test records delivered");
}

/// Every record's value in `topic`, read from the start until `expect`
/// records arrived and nothing more came for a moment (so that duplicates
/// are seen too), or until nothing came for 5 s.
fn read_values(topic: &str, partitions: i32, expect: usize) -> Vec<String> {
    let c = consumer();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut last = Instant::now();
    let started = Instant::now();
    loop {
        let quiet = last.elapsed();
        if (out.len() >= expect && quiet > Duration::from_millis(700))
            || quiet > Duration::from_secs(5)
        {
            return out;
        }
        assert!(started.elapsed() < LIMIT, "reading {topic} took too long");
        match c.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                out.push(String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap());
                last = Instant::now();
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
}

/// Counts of each value.
fn counts(values: &[String]) -> BTreeMap<u64, u32> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("not a number: {v}")),
        )
        .or_insert(0) += 1;
    }
    m
}

/// Checks that every record `0..n` is in `values` exactly once.
fn assert_exactly_once(values: &[String], n: u64, what: &str) {
    let c = counts(values);
    let missing: Vec<u64> = (0..n).filter(|i| !c.contains_key(i)).take(20).collect();
    assert!(missing.is_empty(), "{what}: records lost, e.g. {missing:?}");
    let dup: Vec<(&u64, &u32)> = c.iter().filter(|(_, k)| **k > 1).take(20).collect();
    assert!(
        dup.is_empty(),
        "{what}: records written twice, e.g. {dup:?}"
    );
    assert_eq!(c.len() as u64, n, "{what}: records outside 0..{n}");
}

/// Checks that every record `0..n` is in `values` at least once; returns
/// how many duplicates there are.
fn assert_no_loss(values: &[String], n: u64, what: &str) -> usize {
    let c = counts(values);
    let missing: Vec<u64> = (0..n).filter(|i| !c.contains_key(i)).take(20).collect();
    assert!(missing.is_empty(), "{what}: records lost, e.g. {missing:?}");
    assert_eq!(c.len() as u64, n, "{what}: records outside 0..{n}");
    values.len() - n as usize
}

// ----------------------------------------------------------------- queries

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Continuous,
    MicroBatch,
}

const MODES: [Mode; 2] = [Mode::Continuous, Mode::MicroBatch];

fn trigger(mode: Mode) -> Trigger {
    match mode {
        Mode::Continuous => Trigger::Continuous {
            epoch_interval: Duration::from_millis(50),
        },
        Mode::MicroBatch => Trigger::ProcessingTime(Duration::ZERO),
    }
}

fn until_idle() -> KafkaSourceOptions {
    KafkaSourceOptions {
        starting_offsets: StartingOffsets::Earliest,
        until_idle: true,
        idle_timeout: Duration::from_millis(400),
        ..KafkaSourceOptions::default()
    }
}

/// kafka `from` → `select(key, value)` → kafka `to`, until idle.
fn copy(
    from: &str,
    to: &str,
    mode: Mode,
    options: KafkaSourceOptions,
    checkpoint: Option<&Path>,
) -> Result<()> {
    let source = KafkaSource::new(&address(from), options)?;
    let sink = KafkaSink::new(&address(to), KafkaSinkOptions::default())?;
    let mut w = DataFrame::from_source("t", source)
        .select([col("key"), col("value")])
        .write_stream(sink)
        .trigger(trigger(mode));
    if let Some(c) = checkpoint {
        w = w.checkpoint(c);
    }
    let q = w.start()?;
    assert!(
        q.await_termination_timeout(LIMIT)?,
        "{mode:?} query did not end"
    );
    Ok(())
}

// ------------------------------------------------------------------- tests

#[test]
fn round_trip_in_both_modes_accounts_for_every_record() {
    const N: u64 = 20_000;
    let input = create_topic(&unique("rt-in"), PARTITIONS);
    produce(&input, 0, N);
    for mode in MODES {
        let out = create_topic(&unique("rt-out"), 2);
        let started = Instant::now();
        copy(&input, &out, mode, until_idle(), None).unwrap();
        eprintln!("{mode:?}: {N} records in {:?}", started.elapsed());
        assert_exactly_once(&read_values(&out, 2, N as usize), N, &format!("{mode:?}"));
    }
}

#[test]
fn the_source_emits_every_column_in_offset_order() {
    const N: u64 = 3_000;
    let input = create_topic(&unique("cols"), PARTITIONS);
    produce(&input, 0, N);
    for mode in MODES {
        let (sink, table) = MemorySink::new("rows");
        let options = KafkaSourceOptions {
            max_records_per_trigger: Some(700),
            ..until_idle()
        };
        let q = DataFrame::from_source("t", KafkaSource::new(&address(&input), options).unwrap())
            .write_stream(sink)
            .trigger(trigger(mode))
            .start()
            .unwrap();
        assert!(q.await_termination_timeout(LIMIT).unwrap());
        let rows: Vec<Row> = table.rows();
        assert_eq!(rows.len() as u64, N, "{mode:?}");
        let mut last: BTreeMap<i64, i64> = BTreeMap::new();
        for r in &rows {
            let i: u64 = match &r[1] {
                Value::Utf8(s) => s.parse().unwrap(),
                other => panic!("value {other:?}"),
            };
            assert_eq!(r[0], Value::str(&format!("k{i}")));
            assert_eq!(r[2], Value::str(&input));
            let (p, o) = (r[3].as_i64().unwrap(), r[4].as_i64().unwrap());
            assert_eq!(p, (i % PARTITIONS as u64) as i64);
            if let Some(prev) = last.insert(p, o) {
                assert_eq!(o, prev + 1, "{mode:?}: partition {p} offsets in order");
            }
            assert!(matches!(r[5], Value::Timestamp(_)), "{:?}", r[5]);
        }
        if mode == Mode::MicroBatch {
            let batches = q.recent_progress().len();
            assert!(
                batches >= 5,
                "max_records_per_trigger=700 over {N}: {batches} batches"
            );
        }
        // The backlog: records behind the ends the client last saw. Some
        // report of the micro-batch run (700 of 3,000 a batch) has some;
        // once everything is read, none is left.
        let backlogs: Vec<Option<u64>> = q
            .recent_progress()
            .iter()
            .map(|p| p.sources[0].metrics.get("offsetsBehindLatest").copied())
            .collect();
        assert_eq!(backlogs.last(), Some(&Some(0)), "{mode:?}: {backlogs:?}");
        if mode == Mode::MicroBatch {
            assert!(
                backlogs.iter().any(|b| b.is_some_and(|b| b > 0)),
                "{backlogs:?}"
            );
        }
    }
}

#[test]
fn a_restart_resumes_from_the_checkpoint_not_from_the_broker() {
    for mode in MODES {
        let input = create_topic(&unique("restart-in"), PARTITIONS);
        let out = create_topic(&unique("restart-out"), 1);
        let dir = tempfile::tempdir().unwrap();
        produce(&input, 0, 4_000);
        let group1 = unique("g1");
        copy(
            &input,
            &out,
            mode,
            KafkaSourceOptions {
                group: Some(group1.clone()),
                max_records_per_trigger: Some(1_000),
                ..until_idle()
            },
            Some(dir.path()),
        )
        .unwrap();
        // Durable offsets were committed to the group, for lag monitoring.
        let c = consumer();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(&input, p);
        }
        let committed = ClientConfig::new()
            .set("bootstrap.servers", broker())
            .set("group.id", &group1)
            .create::<BaseConsumer>()
            .unwrap()
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap();
        let total: i64 = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                other => panic!("{mode:?}: partition {} committed {other:?}", e.partition()),
            })
            .sum();
        assert_eq!(total, 4_000, "{mode:?}: committed offsets {committed:?}");
        drop(c);

        // A second run with another group (which has committed nothing):
        // it must resume from the checkpoint, reading only the new records.
        produce(&input, 4_000, 7_000);
        copy(
            &input,
            &out,
            mode,
            KafkaSourceOptions {
                group: Some(unique("g2")),
                ..until_idle()
            },
            Some(dir.path()),
        )
        .unwrap();
        assert_exactly_once(&read_values(&out, 1, 7_000), 7_000, &format!("{mode:?}"));
    }
}

/// Per-partition offsets, by partition number as text.
type Offsets = BTreeMap<String, i64>;

/// Micro-batch offset log entries `(batch, start, end)` in batch order, the
/// offsets summed over partitions.
fn offset_log(checkpoint: &Path) -> Vec<(u64, Offsets, Offsets)> {
    let (dir, _) = runnel::checkpoint::CheckpointDir::open(checkpoint).unwrap();
    let parts = |v: &serde_json::Value| -> Offsets {
        v.get(0)
            .and_then(|s| s["offset"]["partitions"].as_object())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    };
    dir.offset_batches()
        .unwrap()
        .into_iter()
        .map(|batch| {
            let entry = dir.read_offset_entry(batch).unwrap();
            let e = serde_json::to_value(&entry).unwrap();
            (entry.batch_id, parts(&e["start"]), parts(&e["end"]))
        })
        .collect()
}

fn runnel_binary() -> PathBuf {
    // target/<profile>/deps/<test> -> target/<profile>/runnel
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("runnel");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p runnel-tools` (cargo test --workspace \
         builds it)",
        bin.display()
    );
    bin
}

fn spawn_runnel(mode: &str, input: &str, out: &str, checkpoint: &Path) -> Child {
    Command::new(runnel_binary())
        .args(["run", "--mode", mode, "--sql", "SELECT key, value FROM t"])
        .arg("--source")
        .arg(format!(
            "t=kafka:{}?starting_offsets=earliest&idle_timeout=500ms&max_records_per_trigger=2000",
            address(input)
        ))
        .arg("--sink")
        .arg(format!("kafka:{}", address(out)))
        .arg("--checkpoint")
        .arg(checkpoint)
        .args(["--until-idle", "--progress", "none", "--epoch-ms", "50"])
        .env("RUST_LOG", "warn")
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(checkpoint.with_extension("log"))
                .unwrap(),
        )
        .spawn()
        .expect("start runnel run")
}

/// Prints the runs' stderr if the test fails.
struct ShowLog(PathBuf);

impl Drop for ShowLog {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "stderr of the runs ({}):\n{}",
                self.0.display(),
                std::fs::read_to_string(&self.0).unwrap_or_default()
            );
        }
    }
}

#[test]
fn runnel_run_survives_sigkill_without_losing_records() {
    const N: u64 = 30_000;
    let bin = runnel_binary();
    let mut rng = Rng::from_env();
    for mode in ["continuous", "microbatch"] {
        let input = create_topic(&unique("kill-in"), PARTITIONS);
        let out = create_topic(&unique("kill-out"), 2);
        produce(&input, 0, N);
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("ckpt");
        let _show_log_on_failure = ShowLog(ckpt.with_extension("log"));
        let kills = kill_and_restart(
            &mut rng,
            3,
            (150, 900),
            || spawn_runnel(mode, &input, &out, &ckpt),
            || {},
        );
        let values = read_values(&out, 2, N as usize);
        let dups = assert_no_loss(&values, N, mode);
        eprintln!(
            "{mode}: {kills} SIGKILLs of {}, {N} records, {dups} duplicates",
            bin.display()
        );
        if mode == "microbatch" {
            // Batches tile the input: each starts where the previous one
            // ended, so no restart re-read a committed range (a re-run of
            // a batch that had not committed keeps its id and range).
            let log = offset_log(&ckpt);
            assert!(!log.is_empty());
            for w in log.windows(2) {
                let ((a, _, a_end), (b, b_start, _)) = (&w[0], &w[1]);
                if *b == a + 1 {
                    assert_eq!(a_end, b_start, "batch {b} starts where batch {a} ended");
                }
            }
            let (_, _, last_end) = log.last().unwrap();
            assert_eq!(last_end.values().sum::<i64>(), N as i64);
        }
    }
}

#[test]
fn an_unreachable_broker_ends_the_query_with_a_clear_error() {
    broker(); // like every test here, fail without the test broker
              // Nothing listens on port 1.
    let options = KafkaSourceOptions {
        timeout: Duration::from_secs(2),
        ..until_idle()
    };
    for mode in MODES {
        let started = Instant::now();
        let source = KafkaSource::new("127.0.0.1:1/in", options.clone()).unwrap();
        let (sink, _) = MemorySink::new("x");
        let r = DataFrame::from_source("t", source)
            .write_stream(sink)
            .trigger(trigger(mode))
            .start()
            .and_then(|q| q.await_termination_timeout(LIMIT).map(|_| ()));
        let e = r
            .expect_err("an unreachable broker is an error")
            .to_string();
        assert!(e.contains("cannot reach the Kafka broker"), "{mode:?}: {e}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{mode:?}: took too long"
        );
    }
    // The sink too.
    let (source, producer) = MemorySource::new(schema(&[("value", DataType::Utf8)]));
    drop(producer);
    let sink = KafkaSink::new(
        "127.0.0.1:1/out",
        KafkaSinkOptions::from_pairs([("timeout", "2s")]).unwrap(),
    )
    .unwrap();
    let r = DataFrame::from_source("t", source)
        .write_stream(sink)
        .start()
        .and_then(|q| q.await_termination_timeout(LIMIT).map(|_| ()));
    let e = r
        .expect_err("an unreachable broker is an error")
        .to_string();
    assert!(e.contains("cannot reach the Kafka broker"), "sink: {e}");
}

#[test]
fn an_unknown_topic_ends_the_query_with_a_clear_error() {
    let missing = unique("no-such-topic");
    for mode in MODES {
        let source = KafkaSource::new(&address(&missing), until_idle()).unwrap();
        let (sink, _) = MemorySink::new("x");
        let r = DataFrame::from_source("t", source)
            .write_stream(sink)
            .trigger(trigger(mode))
            .start()
            .and_then(|q| q.await_termination_timeout(LIMIT).map(|_| ()));
        let e = r.expect_err("an unknown topic is an error").to_string();
        assert!(
            e.contains(&missing) && e.contains("does not exist"),
            "{mode:?}: {e}"
        );
    }
    // `produce` spreads records over PARTITIONS partitions.
    let input = create_topic(&unique("unknown-out-in"), PARTITIONS);
    produce(&input, 0, 10);
    let e = copy(&input, &missing, Mode::MicroBatch, until_idle(), None)
        .expect_err("an unknown output topic is an error")
        .to_string();
    assert!(
        e.contains(&missing) && e.contains("does not exist"),
        "sink: {e}"
    );
}

#[test]
fn a_record_too_large_ends_the_query_with_a_clear_error() {
    let out = create_topic(&unique("too-large"), 1);
    let (source, mut producer) = MemorySource::new(schema(&[("value", DataType::Utf8)]));
    producer.push(runnel::row!["small"]).unwrap();
    producer.push(runnel::row!["x".repeat(20_000)]).unwrap();
    drop(producer);
    let sink = KafkaSink::new(
        &address(&out),
        KafkaSinkOptions::from_pairs([("kafka.message.max.bytes", "10000")]).unwrap(),
    )
    .unwrap();
    let r = DataFrame::from_source("t", source)
        .write_stream(sink)
        .start()
        .and_then(|q| q.await_termination_timeout(LIMIT).map(|_| ()));
    let e = r.expect_err("a record too large is an error").to_string();
    assert!(e.contains("larger than"), "{e}");
}

#[test]
fn runnel_run_exits_non_zero_on_an_unreachable_broker_or_unknown_topic() {
    let bin = runnel_binary();
    let dir = tempfile::tempdir().unwrap();
    let missing = unique("cli-missing");
    for (source, what) in [
        (
            "t=kafka:127.0.0.1:1/in?timeout=2s".to_string(),
            "cannot reach the Kafka broker".to_string(),
        ),
        (
            format!("t=kafka:{}", address(&missing)),
            format!("topic '{missing}' does not exist"),
        ),
    ] {
        for mode in ["continuous", "microbatch"] {
            let out = Command::new(&bin)
                .args(["run", "--mode", mode, "--sql", "SELECT value FROM t"])
                .args(["--source", &source, "--sink", "null", "--until-idle"])
                .arg("--checkpoint")
                .arg(dir.path().join(unique("c")))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{mode} {source}: exit 0");
            assert!(stderr.contains(&what), "{mode} {source}: {stderr}");
        }
    }
}

/// A broker of this test's own (same tansu binary), to be killed.
struct DoomedBroker {
    child: Child,
    address: String,
}

impl DoomedBroker {
    fn start() -> DoomedBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu())
            .arg("broker")
            .arg("--storage-engine=memory://tansu/")
            .arg(format!("--listener-url={url}"))
            .arg(format!("--advertised-listener-url={url}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}): {HOW_TO}", tansu()));
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < LIMIT, "the second broker did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = Command::new(tansu())
            .args([
                "topic",
                "create",
                "t",
                "--partitions",
                "1",
                "--broker",
                &url,
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        DoomedBroker {
            child,
            address: format!("127.0.0.1:{port}/t"),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DoomedBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn losing_the_broker_mid_stream_ends_the_query_with_a_clear_error() {
    broker(); // like every test here, fail without the test broker
              // The source: reading, then the broker goes away.
    let mut doomed = DoomedBroker::start();
    let options = KafkaSourceOptions {
        starting_offsets: StartingOffsets::Earliest,
        timeout: Duration::from_secs(2),
        ..KafkaSourceOptions::default()
    };
    let (sink, table) = MemorySink::new("x");
    let q = DataFrame::from_source("t", KafkaSource::new(&doomed.address, options).unwrap())
        .write_stream(sink)
        .trigger(trigger(Mode::Continuous))
        .start()
        .unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            doomed.address.split('/').next().unwrap(),
        )
        .create()
        .unwrap();
    p.send(BaseRecord::<str, str>::to("t").payload("1"))
        .unwrap();
    p.flush(Duration::from_secs(10)).unwrap();
    drop(p);
    let t = Instant::now();
    while table.rows().is_empty() {
        assert!(t.elapsed() < LIMIT, "the record never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    doomed.kill();
    let killed = Instant::now();
    let e = q
        .await_termination_timeout(LIMIT)
        .expect_err("losing the broker is an error")
        .to_string();
    assert!(e.contains("lost the Kafka broker"), "source: {e}");
    eprintln!(
        "source failed {:?} after the broker died: {e}",
        killed.elapsed()
    );

    // The sink: writing, then the broker goes away.
    let mut doomed = DoomedBroker::start();
    let (source, mut producer) = MemorySource::new(schema(&[("value", DataType::Utf8)]));
    let sink = KafkaSink::new(
        &doomed.address,
        KafkaSinkOptions::from_pairs([("timeout", "2s")]).unwrap(),
    )
    .unwrap();
    let q = DataFrame::from_source("t", source)
        .write_stream(sink)
        .trigger(trigger(Mode::Continuous))
        .start()
        .unwrap();
    producer.push(runnel::row!["before"]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    doomed.kill();
    let killed = Instant::now();
    let mut i = 0u64;
    let e = loop {
        if let Some(e) = q.exception() {
            break e.to_string();
        }
        assert!(killed.elapsed() < LIMIT, "the sink never failed");
        let _ = producer.push(runnel::row![format!("after {i}")]);
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(e.contains("not acknowledged within"), "sink: {e}");
    eprintln!(
        "sink failed {:?} after the broker died: {e}",
        killed.elapsed()
    );
}

/// `runnel bench --source kafka:HOST:PORT/TOPIC`: a writer thread produces on
/// the schedule, the engine consumes the topic from its end, and the run is
/// labelled `kafka` with latency from each record's scheduled time and the
/// engine's own share, in both modes.
#[test]
fn runnel_bench_measures_a_kafka_topic() {
    let topic = create_topic(&unique("bench"), 1);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("runs.json");
    let out = Command::new(runnel_binary())
        .args(["bench", "--mode", "both", "--rate", "1000"])
        .arg("--source")
        .arg(format!("kafka:{}", address(&topic)))
        .args(["--duration", "2", "--warmup", "1", "--no-floor"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("continuous kafka 1000/s") && stdout.contains("microbatch kafka 1000/s"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for run in report["runs"].as_array().unwrap() {
        assert_eq!(run["source"], "kafka", "{run}");
        assert!(run["events"].as_u64().unwrap() > 0, "{run}");
        assert!(run["latency_us"]["p50"].as_f64().unwrap() > 0.0, "{run}");
        assert!(run["engine_us"]["p50"].is_number(), "{run}");
    }
}
