//! The command line of the latency harness, shared by the `latency` bench
//! binary and any CLI that embeds the harness.
//!
//! Owns [`BenchArgs`] (parsing of `--scenario --rate --duration --warmup
//! --wait --runs ...`), [`USAGE`] and [`run_cli`], which runs the requested
//! runs, prints each run as it finishes and then the table of medians.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{parse_scenarios, BenchConfig, Scenario};
use crate::pipeline::{max_throughput, ThroughputConfig};
use crate::report::{throughput_table, RunReport, Summary, ThroughputReport};
use crate::{run_once, BenchError};

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Open-loop latency runs.
    Latency(BenchConfig),
    /// Closed-loop maximum throughput runs.
    MaxThroughput(ThroughputConfig),
    /// No run: the medians of runs saved earlier with `--json` (files of one
    /// configuration, e.g. runs taken one at a time in quiet moments).
    Merge(Vec<PathBuf>),
}

/// Parsed arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchArgs {
    /// What to run.
    pub mode: Mode,
    /// How many times (medians are taken across runs).
    pub runs: usize,
    /// Also write every run and the summary as JSON to this file.
    pub json: Option<PathBuf>,
}

/// The help text.
pub const USAGE: &str = "\
runnel latency harness (open loop, coordinated-omission free)

usage: cargo bench -p runnel-benches --bench latency -- [options]

  --scenario S      stateless | keyed | fused-stateless | fused-keyed |
                    fused-functions | fused-text-plain |
                    fused-text-functions | fused-lookup | fused-join |
                    push-stateless | push-keyed | floor |
                    slip | all, or a comma list (default all; slip and floor
                    are always measured too). fused-*: the same pipelines fed
                    by the engine's rate source inside the query's task (one
                    spinning thread instead of a producer thread and a ring);
                    fused-functions: fused-stateless with five scalar
                    functions (CASE, LIKE, coalesce, hour, concat) projected;
                    fused-text-plain / fused-text-functions: the same
                    pipeline up to its last projection (a text column cast
                    first), then five plain column references or the five
                    functions: the projection's cost with nothing else apart;
                    fused-lookup: fused-stateless joined with a 100,000-row
                    static table (every event matches one row);
                    fused-join: two streams of --rate each, generated in the
                    task that joins them (interval join, 1-minute range,
                    10 s watermarks)
  --rate N          events per second scheduled (default 100000; 1k, 1M, 1.5M accepted)
  --duration S      measured seconds after the warm-up (default 10)
  --warmup S        warm-up seconds excluded from the figures (default 2)
  --wait W          adaptive | spin | yield | park: how idle engine tasks wait (default adaptive)
  --runs K          runs; the table shows medians across runs (default 3)
  --epoch-ms N      epoch interval in ms (default 100)
  --keys N          distinct keys of the keyed scenario (default 10000)
  --ring N          slots of the source ring and the floor's ring (default 65536)
  --max-lag-ms N    target_met bound: largest generator lag (default 100)
  --final-lag-ms N  target_met bound: lag of the last event and backlog (default 10)
  --max-throughput  closed loop instead: push as fast as possible, report events/s
                    (scenario stateless or keyed)
  --events N        events per closed-loop run (default 20000000)
  --prefill         closed loop from a ring filled before the start (engine alone)
  --json FILE       also write every run and the medians as JSON
  --merge FILE...   run nothing: print the medians of runs saved with --json
  --help            this text
";

/// Parses a count: digits with optional `_`, or a number with a `k`/`m`
/// suffix (`100k`, `1.5M`).
fn parse_count(flag: &str, v: &str) -> Result<u64, String> {
    let t = v.trim().replace('_', "");
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        _ => (t.as_str(), 1.0),
    };
    let x: f64 = num
        .parse()
        .map_err(|_| format!("{flag}: '{v}' is not a number"))?;
    if !x.is_finite() || x < 0.0 {
        return Err(format!("{flag}: '{v}' is not a non-negative number"));
    }
    Ok((x * mul).round() as u64)
}

fn parse_secs(flag: &str, v: &str) -> Result<Duration, String> {
    let x: f64 = v
        .trim()
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("{flag}: '{v}' is not a number of seconds"))?;
    if !x.is_finite() || x < 0.0 {
        return Err(format!(
            "{flag}: '{v}' is not a non-negative number of seconds"
        ));
    }
    Ok(Duration::from_secs_f64(x))
}

impl BenchArgs {
    /// Parses arguments (without the program name). `--bench`, which `cargo
    /// bench` appends, is ignored. Flags take their value as the next
    /// argument or after `=`.
    pub fn parse<I, S>(args: I) -> Result<BenchArgs, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut config = BenchConfig::default();
        let mut scenarios: Option<String> = None;
        let mut runs = 3usize;
        let mut json = None;
        let mut closed_loop = false;
        let mut prefill = false;
        let mut events = ThroughputConfig::default().events;
        let mut merge: Vec<PathBuf> = Vec::new();
        let mut merging = false;
        let mut it = args.into_iter().map(Into::into);
        while let Some(arg) = it.next() {
            if merging && !arg.starts_with("--") {
                merge.push(PathBuf::from(arg));
                continue;
            }
            merging = false;
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let value = |it: &mut dyn Iterator<Item = String>| -> Result<String, String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => it.next().ok_or_else(|| format!("{flag} needs a value")),
                }
            };
            match flag.as_str() {
                "--bench" | "--nocapture" => {}
                "--help" | "-h" => return Err(USAGE.to_string()),
                "--scenario" => scenarios = Some(value(&mut it)?),
                "--rate" => config.rate = parse_count(&flag, &value(&mut it)?)?,
                "--duration" => config.duration = parse_secs(&flag, &value(&mut it)?)?,
                "--warmup" => config.warmup = parse_secs(&flag, &value(&mut it)?)?,
                "--wait" => config.wait = value(&mut it)?.parse()?,
                "--runs" => runs = parse_count(&flag, &value(&mut it)?)?.max(1) as usize,
                "--epoch-ms" => {
                    config.epoch_interval =
                        Duration::from_millis(parse_count(&flag, &value(&mut it)?)?)
                }
                "--keys" => config.keys = parse_count(&flag, &value(&mut it)?)?,
                "--ring" => config.ring_capacity = parse_count(&flag, &value(&mut it)?)? as usize,
                "--max-lag-ms" => {
                    config.bounds.max_lag =
                        Duration::from_millis(parse_count(&flag, &value(&mut it)?)?)
                }
                "--final-lag-ms" => {
                    config.bounds.final_lag =
                        Duration::from_millis(parse_count(&flag, &value(&mut it)?)?)
                }
                "--max-throughput" => closed_loop = true,
                "--prefill" => prefill = true,
                "--events" => events = parse_count(&flag, &value(&mut it)?)?.max(1),
                "--json" => json = Some(PathBuf::from(value(&mut it)?)),
                "--merge" => {
                    merging = true;
                    merge.extend(inline.clone().map(PathBuf::from));
                }
                other => return Err(format!("unknown argument '{other}'\n\n{USAGE}")),
            }
        }
        let mode = if !merge.is_empty() {
            Mode::Merge(merge)
        } else if merging {
            return Err("--merge needs at least one file".into());
        } else if closed_loop {
            let scenario = match scenarios.as_deref() {
                None => Scenario::Stateless,
                Some(s) => s.parse::<Scenario>()?,
            };
            if !scenario.is_engine() || scenario.is_fused() {
                return Err(
                    "--max-throughput measures the stateless, keyed, push-stateless or push-keyed pipeline"
                        .into(),
                );
            }
            Mode::MaxThroughput(ThroughputConfig {
                scenario,
                events,
                wait: config.wait,
                epoch_interval: config.epoch_interval,
                keys: config.keys,
                ring_capacity: config.ring_capacity,
                prefill,
            })
        } else {
            config.scenarios = parse_scenarios(scenarios.as_deref().unwrap_or("all"))?;
            config.validate()?;
            Mode::Latency(config)
        };
        Ok(BenchArgs { mode, runs, json })
    }
}

/// Runs what `args` asks for, writing progress and the final table to `out`.
pub fn run_cli(args: &BenchArgs, out: &mut dyn Write) -> Result<(), BenchError> {
    let io = |e: std::io::Error| BenchError::Config(format!("cannot write the report: {e}"));
    match &args.mode {
        Mode::Latency(config) => {
            let mut reports: Vec<RunReport> = Vec::new();
            for k in 0..args.runs {
                let report = run_once(config)?;
                writeln!(out, "--- run {}/{}", k + 1, args.runs).map_err(io)?;
                write!(
                    out,
                    "{}",
                    Summary::of(std::slice::from_ref(&report)).table()
                )
                .map_err(io)?;
                out.flush().map_err(io)?;
                reports.push(report);
            }
            let summary = Summary::of(&reports);
            writeln!(out, "=== medians across {} runs", reports.len()).map_err(io)?;
            write!(out, "{}", summary.table()).map_err(io)?;
            if let Some(path) = &args.json {
                let doc = serde_json::json!({ "runs": reports, "summary": summary });
                std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap_or_default())
                    .map_err(io)?;
            }
        }
        Mode::Merge(paths) => {
            let mut runs: Vec<RunReport> = Vec::new();
            let mut throughput: Vec<ThroughputReport> = Vec::new();
            for path in paths {
                let text = std::fs::read(path).map_err(|e| {
                    BenchError::Config(format!("cannot read {}: {e}", path.display()))
                })?;
                let doc: SavedRuns = serde_json::from_slice(&text).map_err(|e| {
                    BenchError::Config(format!("{} is not a saved run: {e}", path.display()))
                })?;
                runs.extend(doc.runs);
                throughput.extend(doc.throughput);
            }
            if let Some(first) = runs.first() {
                if runs.iter().any(|r| !same_setup(&r.config, &first.config)) {
                    return Err(BenchError::Config(
                        "the saved runs were made with different settings".into(),
                    ));
                }
                writeln!(out, "=== medians across {} saved runs", runs.len()).map_err(io)?;
                write!(out, "{}", Summary::of(&runs).table()).map_err(io)?;
            }
            write!(out, "{}", throughput_table(&throughput)).map_err(io)?;
        }
        Mode::MaxThroughput(config) => {
            let mut reports = Vec::new();
            for _ in 0..args.runs {
                reports.push(max_throughput(config)?);
            }
            write!(out, "{}", throughput_table(&reports)).map_err(io)?;
            if let Some(path) = &args.json {
                let doc = serde_json::json!({ "throughput": reports });
                std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap_or_default())
                    .map_err(io)?;
            }
        }
    }
    Ok(())
}

/// What `--json` writes (either part may be missing).
#[derive(serde::Deserialize)]
struct SavedRuns {
    #[serde(default)]
    runs: Vec<RunReport>,
    #[serde(default)]
    throughput: Vec<ThroughputReport>,
}

/// Whether two runs measured the same thing (the scenario list may differ).
fn same_setup(a: &BenchConfig, b: &BenchConfig) -> bool {
    a.rate == b.rate
        && a.duration == b.duration
        && a.warmup == b.warmup
        && a.wait == b.wait
        && a.epoch_interval == b.epoch_interval
        && a.keys == b.keys
        && a.ring_capacity == b.ring_capacity
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel::WaitStrategy;

    #[test]
    fn parses_the_documented_example() {
        let a = BenchArgs::parse([
            "--rate",
            "100000",
            "--duration",
            "10",
            "--bench",
            "--wait=spin",
            "--runs",
            "5",
        ])
        .unwrap();
        assert_eq!(a.runs, 5);
        let Mode::Latency(c) = a.mode else {
            panic!("latency mode expected")
        };
        assert_eq!(c.rate, 100_000);
        assert_eq!(c.duration, Duration::from_secs(10));
        assert_eq!(c.wait, WaitStrategy::BusySpin);
        assert_eq!(c.scenarios, Scenario::ALL.to_vec());
    }

    #[test]
    fn parses_suffixes_and_closed_loop() {
        let a = BenchArgs::parse(["--max-throughput", "--events", "5M", "--scenario", "keyed"])
            .unwrap();
        let Mode::MaxThroughput(t) = a.mode else {
            panic!("throughput mode expected")
        };
        assert_eq!(t.events, 5_000_000);
        assert_eq!(t.scenario, Scenario::Keyed);
        assert_eq!(parse_count("--rate", "1.5M").unwrap(), 1_500_000);
        assert_eq!(parse_count("--rate", "100k").unwrap(), 100_000);
    }

    #[test]
    fn merge_takes_file_lists() {
        let a = BenchArgs::parse(["--merge", "a.json", "b.json", "--bench"]).unwrap();
        assert_eq!(
            a.mode,
            Mode::Merge(vec![PathBuf::from("a.json"), PathBuf::from("b.json")])
        );
        assert!(BenchArgs::parse(["--merge"]).is_err());
    }

    #[test]
    fn rejects_nonsense() {
        assert!(BenchArgs::parse(["--rate", "fast"]).is_err());
        assert!(BenchArgs::parse(["--rate", "0"]).is_err());
        assert!(BenchArgs::parse(["--frobnicate"]).is_err());
        assert!(BenchArgs::parse(["--max-throughput", "--scenario", "floor"]).is_err());
    }
}
