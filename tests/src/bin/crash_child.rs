//! The query the crash tests kill and restart.
//!
//! `runnel-crash-child --checkpoint DIR --out FILE --rows N --rate R
//!  --query stateless|windowed --sink csv|lines [--parallelism P]
//!  [--mode continuous|microbatch] [--start-us T]`
//!
//! Runs a rate source of N rows at R rows/s through the chosen query into the
//! chosen sink (continuous mode with 20 ms epochs, or micro-batch mode as fast
//! as possible), and exits 0 when the source is exhausted.
//! `lines` is an at-least-once sink that appends each row's `value` on its own
//! line and never cuts back (so replays show up as duplicates); it only
//! removes a torn last line left by a kill.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use runnel::{
    col, count_star, lit, sum, window, DataFrame, EngineError, OutputMode, Row, Sink, SinkContext,
    Trigger,
};
use runnel_connectors::{FileSink, RateSource};

struct LinesSink {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
}

impl Sink for LinesSink {
    fn describe(&self) -> String {
        format!("LinesSink[{}]", self.path.display())
    }
    fn open(&mut self, _: &SinkContext, _: Option<&serde_json::Value>) -> runnel::Result<()> {
        let io = |e: std::io::Error| EngineError::Sink(format!("{}: {e}", self.path.display()));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(io)?;
        let mut text = Vec::new();
        f.read_to_end(&mut text).map_err(io)?;
        let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        f.set_len(keep as u64).map_err(io)?;
        f.seek(SeekFrom::Start(keep as u64)).map_err(io)?;
        self.file = Some(f);
        Ok(())
    }
    fn write(&mut self, row: &Row) -> runnel::Result<()> {
        writeln!(self.buf, "{}", row[0]).map_err(|e| EngineError::Sink(e.to_string()))
    }
    fn commit(&mut self, _epoch: u64) -> runnel::Result<serde_json::Value> {
        let f = self.file.as_mut().expect("opened");
        f.write_all(&self.buf)
            .and_then(|_| f.sync_data())
            .map_err(|e| EngineError::Sink(e.to_string()))?;
        self.buf.clear();
        Ok(serde_json::Value::Null)
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let need = |name: &str| {
        arg(&args, name).unwrap_or_else(|| {
            eprintln!("missing {name}");
            std::process::exit(2)
        })
    };
    let checkpoint = PathBuf::from(need("--checkpoint"));
    let out = PathBuf::from(need("--out"));
    let rows: u64 = need("--rows").parse().expect("--rows N");
    let rate: u64 = need("--rate").parse().expect("--rate R");
    let query = need("--query");
    let sink_kind = need("--sink");
    let parallelism: usize =
        arg(&args, "--parallelism").map_or(1, |p| p.parse().expect("--parallelism P"));

    let sink: Box<dyn Sink> = match sink_kind.as_str() {
        "csv" => Box::new(FileSink::csv(&out)),
        "lines" => Box::new(LinesSink {
            path: out.clone(),
            file: None,
            buf: Vec::new(),
        }),
        other => panic!("unknown sink {other}"),
    };
    let mut rate_source = RateSource::new(rate).with_limit(rows);
    if let Some(t) = arg(&args, "--start-us") {
        rate_source = rate_source.with_start_time(t.parse().expect("--start-us T"));
    }
    let trigger = match arg(&args, "--mode").as_deref() {
        None | Some("continuous") => Trigger::Continuous {
            epoch_interval: Duration::from_millis(20),
        },
        Some("microbatch") => Trigger::ProcessingTime(Duration::ZERO),
        Some(other) => panic!("unknown mode {other}"),
    };
    let df = DataFrame::from_source("rate", rate_source);
    let (df, mode) = match query.as_str() {
        "stateless" => (
            df.filter(col("value").gt_eq(lit(0i64)))
                .select([col("value"), (col("value") * lit(2i64)).alias("doubled")]),
            OutputMode::Append,
        ),
        "windowed" => (
            df.group_by([window(col("timestamp"), "1 second")])
                .agg([count_star().alias("n"), sum(col("value")).alias("total")]),
            OutputMode::Update,
        ),
        other => panic!("unknown query {other}"),
    };
    let result = df
        .write_stream_boxed(sink)
        .output_mode(mode)
        .checkpoint(&checkpoint)
        .parallelism(parallelism)
        .trigger(trigger)
        .start()
        .and_then(|q| q.await_termination());
    if let Err(e) = result {
        eprintln!("query failed: {e}");
        std::process::exit(1);
    }
}
