//! Results: one scenario's figures, one run's, and the medians of several.
//!
//! Owns [`ScenarioResult`] (latency percentiles, events, achieved rate,
//! generator lag, backlog and `target_met` as defined by
//! [`crate::config::Bounds`]), [`RunReport`], [`Summary`] (medians across
//! runs) and the plain-text table that puts every figure next to the floor of
//! the same run. Serialisable, so a CLI can also print JSON.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::{BenchConfig, Bounds, Scenario};
use crate::generator::GeneratorReport;
use crate::stats::{figures, median, median_summary, LatencySummary};

/// The figures of one scenario in one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// What was measured.
    pub scenario: Scenario,
    /// The scheduled rate (events/s).
    pub rate: u64,
    /// The engine's wait strategy (`-` for the references).
    pub wait: String,
    /// End-to-end latency (µs) from the scheduled time: to the sink for the
    /// engine, to the consumer for the floor, to the (no-op) push for slip.
    pub latency: LatencySummary,
    /// Events generated after the warm-up.
    pub events: u64,
    /// Rows the sink (or the floor's consumer) received over the whole run.
    pub rows_out: u64,
    /// Measured events per second actually pushed.
    pub achieved_rate: f64,
    /// How late the generator pushed each measured event (µs).
    pub generator_lag: LatencySummary,
    /// How late the last event was pushed (µs).
    pub final_lag_us: f64,
    /// Rows still queued in front of the consumer when the schedule ended.
    pub backlog_at_end: u64,
    /// Events that found the ring full (backpressure) at least once.
    pub full_events: u64,
    /// Whether the generator kept the schedule and the consumer kept up (see
    /// [`Bounds`]).
    pub target_met: bool,
}

impl ScenarioResult {
    /// Assembles a result from what the generator saw and the latency
    /// histogram (ns) of the measured events.
    pub fn new(
        scenario: Scenario,
        config: &BenchConfig,
        latency: &Histogram<u64>,
        generator: &GeneratorReport,
        rows_out: u64,
    ) -> ScenarioResult {
        ScenarioResult {
            scenario,
            rate: config.rate,
            wait: if scenario.is_engine() {
                config.wait.to_string()
            } else {
                "-".to_string()
            },
            latency: LatencySummary::of(latency),
            events: generator.measured_events,
            rows_out,
            achieved_rate: generator.achieved_rate(),
            generator_lag: LatencySummary::of(&generator.lag),
            final_lag_us: generator.final_lag_ns as f64 / 1000.0,
            backlog_at_end: generator.backlog_at_end,
            full_events: generator.full_events,
            target_met: target_met(&config.bounds, config.rate, generator),
        }
    }
}

/// Whether a run met its target rate, by the rules documented on [`Bounds`].
pub fn target_met(bounds: &Bounds, rate: u64, g: &GeneratorReport) -> bool {
    let final_lag_ns = bounds.final_lag.as_nanos() as u64;
    let backlog_bound = (rate as f64 * bounds.final_lag.as_secs_f64()).ceil() as u64;
    !g.closed_early
        && g.final_lag_ns <= final_lag_ns
        && g.max_lag_ns <= bounds.max_lag.as_nanos() as u64
        && g.backlog_at_end <= backlog_bound
}

/// Every scenario of one run, measured one after the other in one process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The settings.
    pub config: BenchConfig,
    /// One result per scenario, in the order measured.
    pub results: Vec<ScenarioResult>,
}

impl RunReport {
    /// The result of `scenario`, if it was measured.
    pub fn get(&self, scenario: Scenario) -> Option<&ScenarioResult> {
        self.results.iter().find(|r| r.scenario == scenario)
    }
}

/// One scenario's figures, as medians across runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// What was measured.
    pub scenario: Scenario,
    /// Runs summarised.
    pub runs: usize,
    /// Field-by-field medians of the latency percentiles (µs).
    pub latency: LatencySummary,
    /// Median measured events.
    pub events: f64,
    /// Median achieved rate (events/s).
    pub achieved_rate: f64,
    /// Median of the generator's largest lag (µs).
    pub generator_max_lag_us: f64,
    /// Median of the generator's final lag (µs).
    pub final_lag_us: f64,
    /// Median backlog at the end (rows).
    pub backlog_at_end: f64,
    /// Runs that met the target rate.
    pub target_met_runs: usize,
}

/// Medians across runs of one configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The settings (of the first run).
    pub config: BenchConfig,
    /// One row per scenario.
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    /// Summarises runs of one configuration.
    pub fn of(runs: &[RunReport]) -> Summary {
        let config = runs.first().map(|r| r.config.clone()).unwrap_or_default();
        let mut rows = Vec::new();
        for sc in Scenario::ALL {
            let all: Vec<&ScenarioResult> = runs.iter().filter_map(|r| r.get(sc)).collect();
            if all.is_empty() {
                continue;
            }
            let lat: Vec<LatencySummary> = all.iter().map(|r| r.latency.clone()).collect();
            rows.push(SummaryRow {
                scenario: sc,
                runs: all.len(),
                latency: median_summary(&lat),
                events: median(all.iter().map(|r| r.events as f64)),
                achieved_rate: median(all.iter().map(|r| r.achieved_rate)),
                generator_max_lag_us: median(all.iter().map(|r| r.generator_lag.max)),
                final_lag_us: median(all.iter().map(|r| r.final_lag_us)),
                backlog_at_end: median(all.iter().map(|r| r.backlog_at_end as f64)),
                target_met_runs: all.iter().filter(|r| r.target_met).count(),
            });
        }
        Summary { config, rows }
    }

    /// The row of `scenario`, if measured.
    pub fn get(&self, scenario: Scenario) -> Option<&SummaryRow> {
        self.rows.iter().find(|r| r.scenario == scenario)
    }

    /// The summary as a plain-text table: one line per scenario, and under
    /// each engine scenario its ratio to the floor of the same runs.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let runs = self.rows.first().map_or(0, |r| r.runs);
        let _ = writeln!(
            out,
            "rate {} ev/s | {} s measured after {} s warm-up | wait={} | epoch {} ms | {} keys | ring {} | median of {} run{}",
            c.rate,
            c.duration.as_secs_f64(),
            c.warmup.as_secs_f64(),
            c.wait,
            c.epoch_interval.as_millis(),
            c.keys,
            c.ring_capacity,
            runs,
            if runs == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            out,
            "{:<15} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8} {:>10} {:>11} {:>11} {:>10}",
            "scenario",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "p99.99 µs",
            "max µs",
            "mean µs",
            "events",
            "ach. ev/s",
            "lag max µs",
            "target_met"
        );
        let floor = self.get(Scenario::Floor).map(|r| &r.latency);
        let slip = self.get(Scenario::Slip).map(|r| &r.latency);
        for r in &self.rows {
            let f = figures(&r.latency);
            let _ = writeln!(
                out,
                "{:<15} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8} {:>10} {:>11} {:>11} {:>10}",
                r.scenario.name(),
                fmt_us(f[0]),
                fmt_us(f[1]),
                fmt_us(f[2]),
                fmt_us(f[3]),
                fmt_us(f[4]),
                fmt_us(f[5]),
                fmt_us(f[6]),
                r.events as u64,
                r.achieved_rate.round() as u64,
                fmt_us(r.generator_max_lag_us),
                format!("{}/{}", r.target_met_runs, r.runs)
            );
            // A fused or push-fed pipeline has one spinning thread and no
            // ring, like the slip; the others a producer thread and a ring,
            // like the floor.
            let (reference, label) = if r.scenario.is_fused() || r.scenario.is_push() {
                (slip, "  ×slip")
            } else {
                (floor, "  ×floor")
            };
            if let (true, Some(fl)) = (r.scenario.is_engine(), reference) {
                let ff = figures(fl);
                let ratio = |i: usize| {
                    if ff[i] > 0.0 {
                        format!("{:.1}x", f[i] / ff[i])
                    } else {
                        "-".to_string()
                    }
                };
                let _ = writeln!(
                    out,
                    "{:<15} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8}",
                    label,
                    ratio(0),
                    ratio(1),
                    ratio(2),
                    ratio(3),
                    ratio(4),
                    ratio(5),
                    ratio(6)
                );
            }
        }
        out
    }
}

/// A latency figure in µs with sensible precision.
pub fn fmt_us(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 1000.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// The result of a closed-loop (as fast as possible) throughput run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThroughputReport {
    /// The pipeline measured.
    pub scenario: Scenario,
    /// The engine's wait strategy.
    pub wait: String,
    /// Whether the rows were all in the source ring before the query started
    /// (the engine alone) rather than pushed by a live producer thread.
    #[serde(default)]
    pub prefill: bool,
    /// Events pushed.
    pub events: u64,
    /// Rows the sink received.
    pub rows_out: u64,
    /// Seconds from the first push until the sink had seen everything.
    pub seconds: f64,
    /// Events per second.
    pub events_per_sec: f64,
    /// Pushes that found the source ring full (the engine was the bottleneck).
    pub full_events: u64,
}

/// The median throughput of several closed-loop runs, as a table.
pub fn throughput_table(reports: &[ThroughputReport]) -> String {
    let mut out = String::new();
    let Some(first) = reports.first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "max throughput (closed loop, {}) | scenario {} | wait={} | {} events per run",
        if first.prefill {
            "prefilled ring: the engine alone"
        } else {
            "live producer thread"
        },
        first.scenario,
        first.wait,
        first.events
    );
    for (i, r) in reports.iter().enumerate() {
        let _ = writeln!(
            out,
            "run {:>2}: {:>12.0} events/s  ({:.3} s, {} rows out, {:.1}% of pushes found the ring full)",
            i + 1,
            r.events_per_sec,
            r.seconds,
            r.rows_out,
            100.0 * r.full_events as f64 / r.events.max(1) as f64
        );
    }
    let _ = writeln!(
        out,
        "median: {:.0} events/s over {} run{}",
        median(reports.iter().map(|r| r.events_per_sec)),
        reports.len(),
        if reports.len() == 1 { "" } else { "s" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;
    use std::time::Duration;

    fn gen_report(final_lag_ns: u64, max_lag_ns: u64, backlog: u64) -> GeneratorReport {
        GeneratorReport {
            events: 10,
            measured_events: 10,
            lag: new_histogram(),
            max_lag_ns,
            final_lag_ns,
            measure_start_ns: 0,
            last_push_ns: 1_000,
            full_events: 0,
            backlog_at_end: backlog,
            closed_early: false,
        }
    }

    #[test]
    fn target_met_follows_the_bounds() {
        let b = Bounds {
            final_lag: Duration::from_millis(10),
            max_lag: Duration::from_millis(100),
        };
        assert!(target_met(&b, 100_000, &gen_report(1_000, 5_000_000, 10)));
        // Behind at the end.
        assert!(!target_met(
            &b,
            100_000,
            &gen_report(20_000_000, 20_000_000, 0)
        ));
        // One stall too long.
        assert!(!target_met(&b, 100_000, &gen_report(0, 200_000_000, 0)));
        // 10 ms at 100k/s is 1,000 rows of backlog.
        assert!(target_met(&b, 100_000, &gen_report(0, 0, 1_000)));
        assert!(!target_met(&b, 100_000, &gen_report(0, 0, 1_001)));
    }

    #[test]
    fn summary_takes_medians_and_counts_targets() {
        let config = BenchConfig::default();
        let mk = |p50: f64, met: bool| ScenarioResult {
            scenario: Scenario::Floor,
            rate: 1,
            wait: "-".into(),
            latency: LatencySummary {
                p50,
                ..Default::default()
            },
            events: 1,
            rows_out: 1,
            achieved_rate: 1.0,
            generator_lag: LatencySummary::default(),
            final_lag_us: 0.0,
            backlog_at_end: 0,
            full_events: 0,
            target_met: met,
        };
        let runs: Vec<RunReport> = [(1.0, true), (3.0, false), (2.0, true)]
            .into_iter()
            .map(|(p, m)| RunReport {
                config: config.clone(),
                results: vec![mk(p, m)],
            })
            .collect();
        let s = Summary::of(&runs);
        let row = s.get(Scenario::Floor).unwrap();
        assert_eq!(row.latency.p50, 2.0);
        assert_eq!(row.target_met_runs, 2);
        assert!(s.table().contains("2/3"));
    }
}
