//! Latency figures: histograms and their percentiles.
//!
//! Owns the histogram every harness thread records into (the engine's own
//! bounds, so figures are comparable and recording never allocates) and the
//! medians that summarise several runs ([`median`], [`median_summary`]).
//! Percentiles are the engine's own [`LatencySummary`] (µs).

use hdrhistogram::Histogram;
pub use runnel::metrics::LatencySummary;

/// A nanosecond histogram with the engine's bounds (1 ns to 100 s, 3
/// significant digits); larger values are clamped, and still counted.
pub fn new_histogram() -> Histogram<u64> {
    runnel::metrics::new_latency_histogram()
}

/// Records `ns` (at least 1) into `h`, clamping at the histogram's top.
#[inline]
pub fn record(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns.max(1));
}

/// The figures in table order: p50, p90, p99, p99.9, p99.99, max, mean.
pub fn figures(s: &LatencySummary) -> [f64; 7] {
    [s.p50, s.p90, s.p99, s.p999, s.p9999, s.max, s.mean]
}

/// The field-by-field median of several summaries (count included).
pub fn median_summary(all: &[LatencySummary]) -> LatencySummary {
    let m = |f: fn(&LatencySummary) -> f64| median(all.iter().map(f));
    LatencySummary {
        count: median(all.iter().map(|s| s.count as f64)) as u64,
        p50: m(|s| s.p50),
        p90: m(|s| s.p90),
        p99: m(|s| s.p99),
        p999: m(|s| s.p999),
        p9999: m(|s| s.p9999),
        max: m(|s| s.max),
        mean: m(|s| s.mean),
    }
}

/// The median of some numbers (the mean of the middle two for an even
/// count; 0 for none). NaNs sort last.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
    }

    #[test]
    fn stats_are_in_microseconds() {
        let mut h = new_histogram();
        for ns in 1..=1000u64 {
            record(&mut h, ns * 1000);
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.max - 1000.0).abs() < 1.0, "{s:?}");
    }
}
