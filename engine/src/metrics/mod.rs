//! Latency histograms and progress reports.
//!
//! Owns the fixed-bound latency histogram every sink records into (created
//! once, so recording never allocates), [`EpochLatency`] (one epoch's
//! hand-off latencies with their exact sum), [`IngestTimes`] (one epoch's ingest
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
    /// Summarises the latencies `end_ns - ingest` of rows that all reached
    /// the same point at `end_ns` (a batch's rows at its sink hand-off),
    /// exactly, from the samples themselves: for a few thousand rows this
    /// is far cheaper than a histogram, whose counts alone are hundreds of
    /// kilobytes to allocate and walk. `ingest_ns` is sorted in place.
    pub fn of_batch(end_ns: u64, ingest_ns: &mut [u64]) -> LatencySummary {
        if ingest_ns.is_empty() {
            return LatencySummary::default();
        }
        // The latest ingest has the smallest latency: descending ingest
        // times are ascending latencies.
        ingest_ns.sort_unstable_by(|a, b| b.cmp(a));
        let n = ingest_ns.len();
        let latency = |i: usize| end_ns.saturating_sub(ingest_ns[i]).max(1);
        let us = |ns: u64| ns as f64 / 1000.0;
        // The smallest sample with at least a fraction `q` of the samples
        // at or below it (a histogram's quantile, without its rounding).
        let at = |q: f64| us(latency(((q * n as f64).ceil() as usize).clamp(1, n) - 1));
        let total: u128 = (0..n).map(|i| latency(i) as u128).sum();
        LatencySummary {
            count: n as u64,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            p9999: at(0.9999),
            max: us(latency(n - 1)),
            mean: total as f64 / n as f64 / 1000.0,
        }
    }

    /// Summarises a nanosecond histogram.
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        let mut s = LatencySummary::of_quantiles(h);
        if s.count > 0 {
            s.mean = h.mean() / 1000.0;
        }
        s
    }

    /// [`LatencySummary::of`] without the mean (zero), which takes a pass
    /// over every counter.
    fn of_quantiles(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        // The five quantiles in one pass over the counts.
        let mut q = h
            .value_at_quantiles([0.50, 0.90, 0.99, 0.999, 0.9999])
            .map(us);
        let mut next = || q.next().unwrap_or(0.0);
        LatencySummary {
            count: h.len(),
            p50: next(),
            p90: next(),
            p99: next(),
            p999: next(),
            p9999: next(),
            max: us(h.max()),
            mean: 0.0,
        }
    }
}

/// Sub-buckets per power of two in a latency histogram (3 significant
/// digits): values below this are counted one by one.
const SUB_BUCKETS: u64 = 2048;

/// Where a value (at most [`MAX_LATENCY_NS`]) is counted in a latency
/// histogram's layout: the power-of-two bucket from its leading zeros, the
/// sub-bucket from its top 11 bits.
#[inline(always)]
fn tally_index(v: u64) -> usize {
    let bucket = 53 - (v | (SUB_BUCKETS - 1)).leading_zeros() as u64;
    ((bucket << 10) + (v >> bucket)) as usize
}

/// The smallest value counted at `index` (the inverse of [`tally_index`]).
fn tally_value(index: usize) -> u64 {
    let i = index as u64;
    if i < SUB_BUCKETS {
        i
    } else {
        let bucket = (i >> 10) - 1;
        ((i & 1023) + 1024) << bucket
    }
}

/// Counts recorded in a latency histogram's buckets with a few
/// instructions each (a leading-zero count, a shift, an increment) and
/// added to the histogram when it is read: the histogram's own recording
/// checks its bounds, tracks the smallest and largest value and the total
/// on every call. Only the buckets counted since the last fold are visited
/// by it. Each bucket's counts stand for values the histogram cannot tell
/// apart, so the histogram read after a fold is the one that recording
/// every value would have made.
#[derive(Clone)]
struct Tally {
    counts: Box<[u64]>,
    /// Buckets whose count went from zero to one, in that order (room for
    /// every bucket is kept, so pushing never allocates).
    touched: Vec<u16>,
}

impl Tally {
    fn new() -> Tally {
        let len = tally_index(MAX_LATENCY_NS) + 1;
        debug_assert!(len <= usize::from(u16::MAX));
        Tally {
            counts: vec![0; len].into_boxed_slice(),
            touched: Vec::with_capacity(len),
        }
    }

    /// Counts `v`, which must be at most [`MAX_LATENCY_NS`].
    #[inline(always)]
    fn record(&mut self, v: u64) {
        debug_assert!(v <= MAX_LATENCY_NS);
        let i = tally_index(v);
        let c = &mut self.counts[i];
        if *c == 0 {
            // At most one push per bucket between folds: within capacity.
            self.touched.push(i as u16);
        }
        *c += 1;
    }

    /// Adds the counts to `h` and empties the tally.
    fn fold_into(&mut self, h: &mut Histogram<u64>) {
        for i in self.touched.drain(..) {
            let c = std::mem::take(&mut self.counts[usize::from(i)]);
            h.saturating_record_n(tally_value(usize::from(i)), c);
        }
    }

    /// Empties the tally without adding its counts anywhere.
    fn clear(&mut self) {
        for i in self.touched.drain(..) {
            self.counts[usize::from(i)] = 0;
        }
    }
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tally({} buckets pending)", self.touched.len())
    }
}

/// One epoch's latencies at the sink hand-off: their histogram and their
/// exact sum, so that the epoch's summary takes one short pass over the
/// counters (the quantiles stop at the last one asked) and no pass for the
/// mean. A latency is recorded with a few instructions and reaches the
/// histogram when it is read.
pub struct EpochLatency {
    hist: Histogram<u64>,
    pending: Tally,
    sum_ns: u64,
}

impl EpochLatency {
    /// An empty one (its histogram is allocated here, once).
    pub fn new() -> EpochLatency {
        EpochLatency {
            hist: new_latency_histogram(),
            pending: Tally::new(),
            sum_ns: 0,
        }
    }

    /// Records one latency (clamped to [`MAX_LATENCY_NS`], as the
    /// histogram clamps it).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let ns = ns.min(MAX_LATENCY_NS);
        self.pending.record(ns);
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// The histogram of every latency recorded.
    pub fn histogram(&mut self) -> &Histogram<u64> {
        self.pending.fold_into(&mut self.hist);
        &self.hist
    }

    /// The percentiles; the mean is the exact one.
    pub fn summary(&mut self) -> LatencySummary {
        let mut s = LatencySummary::of_quantiles(self.histogram());
        if s.count > 0 {
            s.mean = self.sum_ns as f64 / s.count as f64 / 1000.0;
        }
        s
    }

    /// Empties it for reuse.
    pub fn clear(&mut self) {
        self.pending.clear();
        self.hist.reset();
        self.sum_ns = 0;
    }
}

impl Default for EpochLatency {
    fn default() -> Self {
        EpochLatency::new()
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
    pending: Tally,
    base_ns: u64,
}

impl IngestTimes {
    /// Empty, for rows ingested from about `now_ns` on.
    pub fn starting(now_ns: u64) -> IngestTimes {
        IngestTimes {
            hist: new_latency_histogram(),
            pending: Tally::new(),
            base_ns: now_ns.saturating_sub(INGEST_SLACK_NS),
        }
    }

    /// Records one row's ingest time (one later than the histogram's
    /// bound after `base` is counted at the bound, as the histogram
    /// clamps it).
    #[inline]
    pub fn record(&mut self, ingest_ns: u64) {
        self.pending.record(
            ingest_ns
                .saturating_sub(self.base_ns)
                .clamp(1, MAX_LATENCY_NS),
        );
    }

    /// Empties it, keeping its memory. This touches every counter (a few
    /// hundred kilobytes): the continuous coordinator does it before it
    /// hands the times back, so that the sink's task only calls
    /// [`IngestTimes::rebase`].
    pub fn clear(&mut self) {
        self.pending.clear();
        self.hist.reset();
    }

    /// Starts an emptied one ([`IngestTimes::clear`]) on the next epoch's
    /// rows, ingested from about `now_ns` on; constant time.
    pub fn rebase(&mut self, now_ns: u64) {
        debug_assert!(
            self.hist.is_empty() && self.pending.touched.is_empty(),
            "rebased before it was cleared"
        );
        self.base_ns = now_ns.saturating_sub(INGEST_SLACK_NS);
    }

    /// Brings the recorded times into the histogram (what
    /// [`IngestTimes::durable_into`] reads); cheap when already done.
    pub fn settle(&mut self) {
        self.pending.fold_into(&mut self.hist);
    }

    /// Adds every recorded row's latency to durability, for an epoch that
    /// became durable at `durable_ns`, to `out`.
    pub fn durable_into(&mut self, durable_ns: u64, out: &mut Histogram<u64>) {
        self.settle();
        for v in self.hist.iter_recorded() {
            let ingest = self.base_ns + v.value_iterated_to();
            out.saturating_record_n(durable_ns.saturating_sub(ingest).max(1), v.count_at_value());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_summary_has_the_histogram_quantiles_and_the_exact_mean() {
        let mut e = EpochLatency::new();
        let mut h = new_latency_histogram();
        for ns in [1_000u64, 2_000, 3_000, 10_000, 1_000_000] {
            e.record(ns);
            h.saturating_record(ns);
        }
        // Beyond the histogram's bound: clamped in both the counts and
        // the sum.
        e.record(u64::MAX);
        h.saturating_record(u64::MAX);
        let (epoch, whole) = (e.summary(), LatencySummary::of(&h));
        assert_eq!(epoch.count, 6);
        assert_eq!(
            (epoch.p50, epoch.p90, epoch.p99, epoch.max),
            (whole.p50, whole.p90, whole.p99, whole.max)
        );
        let exact = (1_000 + 2_000 + 3_000 + 10_000 + 1_000_000 + MAX_LATENCY_NS) as f64 / 6.0;
        assert_eq!(epoch.mean, exact / 1000.0);
        assert_eq!(e.histogram().len(), 6);
        e.clear();
        assert_eq!(e.summary(), LatencySummary::default());
        e.record(5_000);
        assert_eq!(e.summary().mean, 5.0);
    }

    /// Values at the edges of the histogram's buckets and a spread of
    /// random ones up to its bound.
    fn edge_and_random_values() -> Vec<u64> {
        let mut v: Vec<u64> = (0..5000).collect();
        for p in 0..37 {
            let x = 1u64 << p;
            v.extend([x - 1, x, x + 1, 3 * x / 2]);
        }
        v.push(MAX_LATENCY_NS);
        // A fixed 64-bit mixing sequence: the same values every run.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Spread over the magnitudes, as latencies are.
            v.push((x >> (x % 40 + 24)) % (MAX_LATENCY_NS + 1));
        }
        v.retain(|&x| x <= MAX_LATENCY_NS);
        v
    }

    #[test]
    fn a_tally_bucket_is_the_histograms_bucket() {
        let h = new_latency_histogram();
        for v in edge_and_random_values() {
            let at = tally_value(tally_index(v));
            assert!(at <= v, "{v}: counted at {at}");
            assert_eq!(
                h.lowest_equivalent(at),
                h.lowest_equivalent(v),
                "{v}: counted at {at}"
            );
            assert_eq!(tally_index(at), tally_index(v), "{v}");
        }
        assert!(tally_index(MAX_LATENCY_NS) < usize::from(u16::MAX));
    }

    #[test]
    fn latencies_and_ingest_times_read_as_if_each_was_recorded_in_the_histogram() {
        let values = edge_and_random_values();
        let mut direct = new_latency_histogram();
        let mut epoch = EpochLatency::new();
        let mut ingest = IngestTimes::starting(INGEST_SLACK_NS);
        for (k, &v) in values.iter().enumerate() {
            direct.saturating_record(v.max(1));
            epoch.record(v.max(1));
            ingest.record(v.max(1));
            if k == values.len() / 2 {
                // A read in the middle folds what was counted so far.
                assert_eq!(epoch.histogram().len(), k as u64 + 1);
            }
        }
        let recorded = |h: &Histogram<u64>| -> Vec<(u64, u64)> {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        let h = epoch.histogram().clone();
        assert_eq!(recorded(&h), recorded(&direct));
        assert_eq!(
            (h.len(), h.min(), h.max()),
            (direct.len(), direct.min(), direct.max())
        );
        assert_eq!(h.mean(), direct.mean());
        // Durable at the base: each row's latency to durability is its own
        // offset, clamped to 1 ns, as the direct histogram has them.
        let mut durable = new_latency_histogram();
        ingest.durable_into(0, &mut durable);
        assert_eq!(durable.len(), direct.len());
        epoch.clear();
        ingest.clear();
        assert_eq!(epoch.summary(), LatencySummary::default());
        ingest.rebase(0);
        ingest.record(5);
        let mut once = new_latency_histogram();
        ingest.durable_into(10, &mut once);
        assert_eq!(once.len(), 1);
    }

    #[test]
    fn a_batch_summary_from_its_samples_agrees_with_a_histogram() {
        // 1,000 rows ingested 1 µs apart, all handed over at 2 ms.
        let end = 2_000_000u64;
        let mut ingest: Vec<u64> = (0..1000u64).map(|i| 1_000_000 + i * 1000).collect();
        let mut h = new_latency_histogram();
        for i in &ingest {
            h.saturating_record(end - i);
        }
        let exact = LatencySummary::of_batch(end, &mut ingest);
        let binned = LatencySummary::of(&h);
        assert_eq!(exact.count, 1000);
        // Latencies of 1 to 1,000 µs: the 500th smallest is 500 µs.
        assert_eq!(exact.p50, 500.0);
        assert_eq!(exact.p90, 900.0);
        assert_eq!(exact.p99, 990.0);
        assert_eq!(exact.max, 1000.0);
        assert_eq!(exact.mean, 500.5);
        // The histogram rounds to three significant digits.
        for (a, b) in [
            (exact.p50, binned.p50),
            (exact.p90, binned.p90),
            (exact.p99, binned.p99),
            (exact.p999, binned.p999),
            (exact.max, binned.max),
            (exact.mean, binned.mean),
        ] {
            assert!((a - b).abs() <= a / 500.0, "{a} against {b}");
        }
        assert_eq!(binned.p50, h.value_at_quantile(0.5) as f64 / 1000.0);
        assert_eq!(binned.p9999, h.value_at_quantile(0.9999) as f64 / 1000.0);
        assert_eq!(
            LatencySummary::of_batch(end, &mut []),
            LatencySummary::default()
        );
        // A row ingested after the hand-off counts as 1 ns, as in a histogram.
        let s = LatencySummary::of_batch(end, &mut [end + 5]);
        assert_eq!((s.count, s.max), (1, 0.001));
    }
}
