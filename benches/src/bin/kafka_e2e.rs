//! End-to-end latency and ingest throughput through a Kafka broker:
//! producer → topic → runnel query (`select(key, value)`) → topic → consumer.
//!
//! Open loop: record *i* is due at `start + i/rate`; its value carries its
//! scheduled wall-clock time, and the consumer of the output topic charges
//! each record from that time to its arrival. The producer sleeps until a
//! record is due (it must not take a core from the query) and never moves
//! the schedule, so a late query shows up as latency. The first second is
//! warm-up and left out. The `floor` run sends the same records through the
//! broker with no query in between (producer → topic → consumer). Each
//! query run also reports runnel's own share of the path, from the source's
//! poll returning a record to the sink's producer accepting the output
//! record (the engine's latency histogram, same endpoint in both modes),
//! and the output is counted by distinct record id (duplicates reported,
//! never counted as deliveries).
//!
//! Needs a broker and, for creating topics, the tansu binary (tansu 0.6.0
//! does not create topics on first use):
//!
//! ```text
//! set -a; eval "$(bash tools/kafka-test-broker.sh start)"; set +a
//! cargo run --release -p runnel-benches --bin kafka-e2e -- --rates 10000,100000 --secs 10 --runs 3
//! ```
//!
//! `--probe` instead shows the test broker's fetch-inside-a-batch limitation
//! (see the Kafka tests).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use runnel::{col, DataFrame, StreamingQuery, Trigger};
use runnel_connectors::{
    KafkaSink, KafkaSinkOptions, KafkaSource, KafkaSourceOptions, StartingOffsets,
};

/// Kafka → runnel → Kafka latency and throughput.
#[derive(Parser, Debug)]
#[command(name = "kafka-e2e")]
struct Args {
    /// Broker HOST:PORT [env: RUNNEL_KAFKA_BROKER]
    #[arg(long, env = "RUNNEL_KAFKA_BROKER")]
    broker: String,
    /// The tansu binary, for creating topics [env: RUNNEL_TANSU]
    #[arg(long, env = "RUNNEL_TANSU")]
    tansu: String,
    /// Record rates (records/s) of the latency runs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    rates: Vec<u64>,
    /// Seconds per latency run (the first is warm-up).
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Runs per (mode, rate); the table shows each run and the median.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Sink option KEY=VALUE (repeatable), e.g. `kafka.linger.ms=5`.
    #[arg(long = "sink-option")]
    sink_options: Vec<String>,
    /// Records in the ingest throughput run (0: skip it).
    #[arg(long, default_value_t = 1_000_000)]
    throughput_records: u64,
    /// Only show the test broker's fetch-inside-a-batch limitation.
    #[arg(long)]
    probe: bool,
}

const PARTITIONS: i32 = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Floor,
    Continuous,
    MicroBatch,
}

impl Mode {
    fn trigger(self) -> Trigger {
        match self {
            Mode::Continuous => Trigger::Continuous {
                epoch_interval: Duration::from_millis(100),
            },
            _ => Trigger::ProcessingTime(Duration::ZERO),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Floor => "floor (no query)",
            Mode::Continuous => "continuous",
            Mode::MicroBatch => "micro-batch",
        }
    }
}

struct Bench {
    args: Args,
}

fn unique(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}-{}-{}-{}",
        std::process::id(),
        wall_ns() % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

/// Percentile of sorted values.
fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl Bench {
    fn create_topic(&self, name: &str, partitions: i32) -> String {
        let status = Command::new(&self.args.tansu)
            .args(["topic", "create", name, "--partitions"])
            .arg(partitions.to_string())
            .arg("--broker")
            .arg(format!("tcp://{}", self.args.broker))
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {} ({e})", self.args.tansu));
        assert!(status.success(), "tansu topic create {name} failed");
        let c = self.consumer();
        let t = Instant::now();
        loop {
            if let Ok(md) = c.fetch_metadata(Some(name), Duration::from_secs(5)) {
                if md.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && t.partitions().len() as i32 == partitions
                }) {
                    return name.to_string();
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "topic {name} never showed up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn consumer(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.args.broker)
            .set("group.id", unique("bench-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("consumer")
    }

    fn address(&self, topic: &str) -> String {
        format!("{}/{topic}", self.args.broker)
    }

    fn sink(&self, topic: &str) -> KafkaSink {
        let options = KafkaSinkOptions::from_pairs(self.args.sink_options.iter().map(|p| {
            p.split_once('=')
                .unwrap_or_else(|| panic!("--sink-option {p}: expected KEY=VALUE"))
        }))
        .expect("sink options");
        KafkaSink::new(&self.address(topic), options).expect("sink")
    }

    /// One open-loop latency run (warm-up excluded, see [`Run`]).
    fn latency_run(&self, mode: Mode, rate: u64) -> Run {
        let input = self.create_topic(&unique("lat-in"), 1);
        if mode == Mode::Floor {
            return self.latency_of(&input, &input, rate, None);
        }
        let out = self.create_topic(&unique("lat-out"), 1);
        let source = KafkaSource::new(
            &self.address(&input),
            KafkaSourceOptions {
                starting_offsets: StartingOffsets::Earliest,
                ..KafkaSourceOptions::default()
            },
        )
        .expect("source");
        let q = DataFrame::from_source("t", source)
            .select([col("key"), col("value")])
            .write_stream(self.sink(&out))
            .trigger(mode.trigger())
            .start()
            .expect("query");
        self.latency_of(&input, &out, rate, Some(q))
    }

    fn latency_of(&self, input: &str, out: &str, rate: u64, q: Option<StreamingQuery>) -> Run {
        let total = rate * self.args.secs;
        let c = self.consumer();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(out, 0, Offset::Beginning)
            .expect("partition");
        c.assign(&tpl).expect("assign");
        let reader = std::thread::spawn(move || {
            let mut lat = Vec::with_capacity(total as usize);
            // Distinct record ids, so that a duplicate cannot hide a loss.
            let mut got = vec![false; total as usize];
            let mut seen = 0u64;
            let mut duplicates = 0u64;
            let mut last = Instant::now();
            while seen < total && last.elapsed() < Duration::from_secs(20) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    let now = wall_ns();
                    last = Instant::now();
                    let v = std::str::from_utf8(m.payload().unwrap_or_default()).expect("utf-8");
                    let (i, sched) = v.split_once(':').expect("i:scheduled");
                    let (i, sched): (u64, u64) =
                        (i.parse().expect("i"), sched.parse().expect("scheduled"));
                    if std::mem::replace(&mut got[i as usize], true) {
                        duplicates += 1;
                        continue;
                    }
                    seen += 1;
                    if i >= rate {
                        lat.push(now.saturating_sub(sched) / 1000);
                    }
                }
            }
            (lat, seen, duplicates)
        });
        std::thread::sleep(Duration::from_millis(500));
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.args.broker)
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()
            .expect("producer");
        let start = wall_ns() + 10_000_000;
        let interval = 1_000_000_000 / rate;
        let mut baseline = None;
        for i in 0..total {
            if i == rate {
                // The warm-up second is scheduled: what the engine recorded
                // so far is left out of its share.
                baseline = q.as_ref().map(StreamingQuery::latency_histogram);
            }
            let sched = start + i * interval;
            let now = wall_ns();
            if sched > now + 50_000 {
                std::thread::sleep(Duration::from_nanos(sched - now));
            }
            let value = format!("{i}:{sched}");
            let mut rec = BaseRecord::<str, str>::to(input).payload(&value);
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        rec = back;
                        p.poll(Duration::from_millis(1));
                    }
                }
            }
            if i % 256 == 0 {
                p.poll(Duration::ZERO);
            }
        }
        p.flush(Duration::from_secs(30)).expect("flush");
        let (mut lat, seen, duplicates) = reader.join().expect("reader");
        let share = q.map(|q| {
            q.stop().expect("stop");
            let mut h = q.latency_histogram();
            if let Some(b) = baseline {
                h.subtract(&b).expect("histogram baseline");
            }
            runnel::LatencySummary::of(&h)
        });
        assert_eq!(seen, total, "at {rate}/s: records missing");
        lat.sort_unstable();
        Run {
            lat,
            share,
            duplicates,
        }
    }

    /// Records/s of copying `n` records already in `input` until idle
    /// (the idle timeout is not counted).
    fn throughput_run(&self, mode: Mode, input: &str, n: u64) -> f64 {
        let out = self.create_topic(&unique("tp-out"), PARTITIONS);
        let idle = Duration::from_millis(500);
        let source = KafkaSource::new(
            &self.address(input),
            KafkaSourceOptions {
                starting_offsets: StartingOffsets::Earliest,
                until_idle: true,
                idle_timeout: idle,
                max_records_per_trigger: Some(50_000),
                ..KafkaSourceOptions::default()
            },
        )
        .expect("source");
        let started = Instant::now();
        let q = DataFrame::from_source("t", source)
            .select([col("key"), col("value")])
            .write_stream(self.sink(&out))
            .trigger(mode.trigger())
            .start()
            .expect("query");
        assert!(q
            .await_termination_timeout(Duration::from_secs(600))
            .expect("query failed"));
        n as f64 / started.elapsed().saturating_sub(idle).as_secs_f64()
    }

    fn produce_bulk(&self, topic: &str, n: u64) {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.args.broker)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        for i in 0..n {
            let (key, value) = (format!("k{i}"), i.to_string());
            let mut rec = BaseRecord::to(topic)
                .key(&key)
                .payload(&value)
                .partition((i % PARTITIONS as u64) as i32);
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(_), back)) => {
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
        p.flush(Duration::from_secs(120)).expect("flush");
    }

    fn probe(&self) {
        let t = self.create_topic(&unique("probe"), 1);
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.args.broker)
            .set("linger.ms", "100")
            .create()
            .expect("producer");
        for i in 0..1000 {
            let v = i.to_string();
            p.send(BaseRecord::<str, str>::to(&t).payload(&v).partition(0))
                .expect("send");
        }
        p.flush(Duration::from_secs(10)).expect("flush");
        for start in [0i64, 1, 500, 999] {
            let c = self.consumer();
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&t, 0, Offset::Offset(start))
                .expect("partition");
            c.assign(&tpl).expect("assign");
            let t0 = Instant::now();
            let mut got = Vec::new();
            while t0.elapsed() < Duration::from_secs(3) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                    got.push(m.offset());
                }
            }
            println!(
                "fetch from offset {start}: {} records, first {:?}, last {:?}",
                got.len(),
                got.first(),
                got.last()
            );
        }
    }
}

/// One latency run's figures.
struct Run {
    /// End to end (producer → broker → [runnel → broker] → consumer), µs,
    /// sorted, one per distinct record after the warm-up second.
    lat: Vec<u64>,
    /// runnel's own share, from the consumer's poll returning a record to
    /// the producer accepting the output record (the engine's histogram,
    /// warm-up left out); `None` for the broker floor.
    share: Option<runnel::LatencySummary>,
    /// Records the output consumer saw more than once.
    duplicates: u64,
}

fn main() {
    let args = Args::parse();
    let bench = Bench { args };
    if bench.args.probe {
        bench.probe();
        return;
    }
    let secs = bench.args.secs;
    println!(
        "Kafka → runnel → Kafka, open loop, {secs} s per run (first second warm-up), latency in µs"
    );
    println!();
    println!(
        "| mode | rate/s | run | p50 | p90 | p99 | p99.9 | max | measured | runnel p50 | runnel p99 | duplicates |"
    );
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &rate in &bench.args.rates {
        for mode in [Mode::Floor, Mode::Continuous, Mode::MicroBatch] {
            let mut cols: [Vec<f64>; 7] = Default::default();
            for run in 1..=bench.args.runs {
                let r = bench.latency_run(mode, rate);
                let lat = &r.lat;
                let row = [
                    pct(lat, 0.5),
                    pct(lat, 0.9),
                    pct(lat, 0.99),
                    pct(lat, 0.999),
                    lat.last().copied().unwrap_or(0),
                ];
                for (c, v) in cols.iter_mut().zip(row) {
                    c.push(v as f64);
                }
                let share = |f: fn(&runnel::LatencySummary) -> f64| {
                    r.share
                        .as_ref()
                        .map_or("-".to_string(), |s| format!("{:.1}", f(s)))
                };
                if let Some(s) = &r.share {
                    cols[5].push(s.p50);
                    cols[6].push(s.p99);
                }
                println!(
                    "| {} | {rate} | {run} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    mode.name(),
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                    row[4],
                    lat.len(),
                    share(|s| s.p50),
                    share(|s| s.p99),
                    r.duplicates
                );
            }
            if bench.args.runs > 1 {
                let [p50, p90, p99, p999, max, s50, s99] = cols;
                let m: Vec<String> = [p50, p90, p99, p999, max]
                    .into_iter()
                    .map(|c| format!("{:.0}", median(c)))
                    .collect();
                let s = |c: Vec<f64>| {
                    if c.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{:.1}", median(c))
                    }
                };
                println!(
                    "| **{}** | {rate} | median | {} | | {} | {} | |",
                    mode.name(),
                    m.join(" | "),
                    s(s50),
                    s(s99)
                );
            }
        }
    }
    let n = bench.args.throughput_records;
    if n == 0 {
        return;
    }
    let input = bench.create_topic(&unique("tp-in"), PARTITIONS);
    let started = Instant::now();
    bench.produce_bulk(&input, n);
    println!();
    println!(
        "producer (linger 5 ms): {n} records in {:.1} s ({:.0}/s)",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );
    for mode in [Mode::Continuous, Mode::MicroBatch] {
        let mut rates = Vec::new();
        for _ in 0..bench.args.runs {
            rates.push(bench.throughput_run(mode, &input, n));
        }
        let each: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "ingest {}: {n} records, median {:.0} records/s (runs: {})",
            mode.name(),
            median(rates),
            each.join(", ")
        );
    }
}
