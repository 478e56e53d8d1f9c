//! Latency and throughput harnesses for runnel's continuous mode.
//!
//! The harness is **open loop**: a generator thread schedules events at a
//! fixed rate and stamps each with its *scheduled* time as ingest time, so a
//! stalled engine (or a full ring) shows up as latency instead of silently
//! slowing the generator down (no coordinated omission). Every engine figure
//! is measured next to the machine's floor, in the same process, with the
//! same generator: a bare ring hop between two spinning threads, and the
//! generator's own schedule slip.
//!
//! Modules:
//! - [`config`]: scenarios, run settings, the bounds behind `target_met`;
//! - [`generator`]: the schedule, the open-loop generator and its targets;
//! - [`floor`]: the reference scenarios (floor and slip);
//! - [`pipeline`]: the benchmark queries, a null sink, engine runs
//!   (open loop with warm-up exclusion, and closed-loop maximum throughput);
//! - [`report`]: results, medians across runs, the table;
//! - [`stats`]: latency percentiles and histograms;
//! - [`cli`]: argument parsing and the runner behind the `latency` bench.
//!
//! ```no_run
//! use runnel_benches::{run_once, BenchConfig, Summary};
//!
//! let config = BenchConfig { rate: 100_000, ..BenchConfig::default() };
//! let runs: Vec<_> = (0..3).map(|_| run_once(&config).unwrap()).collect();
//! println!("{}", Summary::of(&runs).table());
//! ```
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod floor;
pub mod generator;
pub mod pipeline;
pub mod postgres;
pub mod report;
pub mod stats;

use std::fmt;

pub use config::{parse_scenarios, BenchConfig, Bounds, Scenario, DEFAULT_WAIT};
pub use floor::{run_floor, run_slip};
pub use generator::{run_open_loop, GeneratorReport, Offer, Schedule, Target};
pub use pipeline::{
    join_query, keyed_query, max_throughput, run_engine, run_fused, stateless_query, NullSink,
    ThroughputConfig,
};
pub use report::{RunReport, ScenarioResult, Summary, ThroughputReport};
pub use stats::LatencySummary;

/// Why a benchmark could not run.
#[derive(Debug)]
pub enum BenchError {
    /// The settings make no sense.
    Config(String),
    /// The engine refused the query or failed while running it.
    Engine(runnel::EngineError),
    /// A harness thread could not start or panicked.
    Thread(String),
    /// The warm-up baseline could not be subtracted.
    Histogram(String),
}

impl BenchError {
    pub(crate) fn thread(e: std::io::Error) -> BenchError {
        BenchError::Thread(format!("cannot start a thread: {e}"))
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Config(m) => write!(f, "bad benchmark settings: {m}"),
            BenchError::Engine(e) => write!(f, "the engine failed: {e}"),
            BenchError::Thread(m) => f.write_str(m),
            BenchError::Histogram(m) => write!(f, "latency histogram: {m}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<runnel::EngineError> for BenchError {
    fn from(e: runnel::EngineError) -> Self {
        BenchError::Engine(e)
    }
}

/// Measures one scenario once.
pub fn run_scenario(
    scenario: Scenario,
    config: &BenchConfig,
) -> Result<ScenarioResult, BenchError> {
    match scenario {
        Scenario::Slip => run_slip(config),
        Scenario::Floor => run_floor(config),
        Scenario::Stateless | Scenario::Keyed | Scenario::PushStateless | Scenario::PushKeyed => {
            run_engine(scenario, config)
        }
        Scenario::FusedStateless
        | Scenario::FusedKeyed
        | Scenario::FusedFunctions
        | Scenario::FusedTextPlain
        | Scenario::FusedTextFunctions
        | Scenario::FusedLookup
        | Scenario::FusedJoin => run_fused(scenario, config),
    }
}

/// Measures every scenario of `config` once, one after the other, in the
/// order of [`Scenario::ALL`] (the references first).
pub fn run_once(config: &BenchConfig) -> Result<RunReport, BenchError> {
    config.validate().map_err(BenchError::Config)?;
    let mut results = Vec::new();
    for sc in Scenario::ALL {
        if config.scenarios.contains(&sc) {
            results.push(run_scenario(sc, config)?);
        }
    }
    Ok(RunReport {
        config: config.clone(),
        results,
    })
}
