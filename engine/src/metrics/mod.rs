//! Latency histograms and progress reports.
//!
//! Owns the fixed-bound latency histogram every sink records into (created
//! once, so recording never allocates), the percentile summary a query
//! exposes, and [`StreamingQueryProgress`] with Spark's field names. It must
//! not take locks on the per-event path: histograms are recorded by one task
//! and handed over whole once per epoch.

mod progress;

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
