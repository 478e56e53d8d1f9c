//! Latency histograms and progress reports.
//!
//! Owns the fixed-bound latency histogram every sink records into (created
//! once, so recording never allocates), [`IngestTimes`] (one epoch's ingest
//! times, turned into latency to durability when the epoch commits), the
//! percentile summary a query exposes, [`StreamingQueryProgress`] with
//! Spark's field names, and [`RingGauge`] (a ring's fill, sampled per epoch). It must
//! not take locks on the per-event path: histograms are recorded by one task
//! and handed over whole once per epoch.

mod progress;
mod ring;

pub use ring::{RingFill, RingGauge};

pub use progress::{
    DurationMs, EventTimeStats, SinkProgress, SourceProgress, StateOperatorProgress,
    StreamingQueryProgress,
};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The largest latency a histogram holds: 100 s in nanoseconds (larger
/// values are clamped to it, and still counted).
pub const MAX_LATENCY_NS: u64 = 100_000_000_000;

/// A latency histogram in nanoseconds with 3 significant digits.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of recorded events.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl LatencySummary {
    /// Summarises a nanosecond histogram.
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            p9999: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// Sums over every progress report of one run of a query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryTotals {
    /// Epochs (continuous) or batches (micro-batch) reported.
    pub reports: u64,
    /// Rows read.
    pub input_rows: u64,
    /// Rows written to the sink.
    pub output_rows: u64,
    /// Rows dropped as later than the watermark.
    pub late_rows: u64,
    /// Bytes of state files written to the checkpoint.
    pub checkpoint_bytes: u64,
}

impl QueryTotals {
    /// Adds one report.
    pub fn add(&mut self, p: &StreamingQueryProgress) {
        self.reports += 1;
        self.input_rows += p.num_input_rows;
        self.output_rows += p.sink.num_output_rows;
        self.late_rows += p
            .state_operators
            .iter()
            .map(|s| s.num_rows_dropped_by_watermark)
            .sum::<u64>();
        self.checkpoint_bytes += p.checkpoint_bytes.unwrap_or(0);
    }
}

/// How far before the epoch's base an ingest time may lie and still be
/// recorded exactly (earlier ones are counted as ingested at that point).
const INGEST_SLACK_NS: u64 = 10_000_000;

/// The ingest times of the rows one epoch handed to the sink, kept as a
/// histogram of `ingest − base` (recording never allocates), so that each
/// row's latency to **durability** (its epoch's commit) can be computed once
/// the commit time is known. Rows of an epoch entered after the previous
/// epoch's marker reached the source, so `base` (the previous marker at the
/// sink, less 10 ms) precedes nearly all of them; an earlier one is counted
/// as ingested at `base`.
#[derive(Clone, Debug)]
pub struct IngestTimes {
    hist: Histogram<u64>,
    base_ns: u64,
}

impl IngestTimes {
    /// Empty, for rows ingested from about `now_ns` on.
    pub fn starting(now_ns: u64) -> IngestTimes {
        IngestTimes {
            hist: new_latency_histogram(),
            base_ns: now_ns.saturating_sub(INGEST_SLACK_NS),
        }
    }

    /// Records one row's ingest time.
    #[inline]
    pub fn record(&mut self, ingest_ns: u64) {
        self.hist
            .saturating_record(ingest_ns.saturating_sub(self.base_ns).max(1));
    }

    /// Empties it for the next epoch (rows from about `now_ns` on), keeping
    /// its memory.
    pub fn restart(&mut self, now_ns: u64) {
        self.hist.reset();
        self.base_ns = now_ns.saturating_sub(INGEST_SLACK_NS);
    }

    /// Adds every recorded row's latency to durability, for an epoch that
    /// became durable at `durable_ns`, to `out`.
    pub fn durable_into(&self, durable_ns: u64, out: &mut Histogram<u64>) {
        for v in self.hist.iter_recorded() {
            let ingest = self.base_ns + v.value_iterated_to();
            out.saturating_record_n(durable_ns.saturating_sub(ingest).max(1), v.count_at_value());
        }
    }
}
