//! Latency histograms and progress reports.
//!
//! Owns the fixed-bound latency histogram of a query (created once, so
//! recording never allocates), the tally a sink counts an epoch's values
//! in (the same buckets, a few instructions a value, read by visiting only
//! the buckets used), [`EpochLatency`] (one epoch's hand-off latencies with
//! their exact sum), [`IngestTimes`] (one epoch's ingest times, turned into
//! latency to durability when the epoch commits), the
//! percentile summary a query exposes, [`StreamingQueryProgress`] with
//! Spark's field names, and [`RingGauge`] (a ring's fill, sampled per epoch). It must
//! not take locks on the per-event path: an epoch's values are counted by one
//! task and handed over whole once per epoch.

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
            mean: h.mean() / 1000.0,
        }
    }
}

/// Sub-buckets per power of two in a latency histogram (3 significant
/// digits): values below this are counted one by one.
const SUB_BUCKETS: u64 = 2048;

/// Where a value (at most [`MAX_LATENCY_NS`]) is counted in a latency
/// histogram's layout: the power-of-two bucket from its leading zeros, the
/// sub-bucket from its top 11 bits. Indexes grow with the values.
#[inline(always)]
fn tally_index(v: u64) -> usize {
    let bucket = 53 - (v | (SUB_BUCKETS - 1)).leading_zeros() as u64;
    ((bucket << 10) + (v >> bucket)) as usize
}

/// The smallest and the largest value counted at `index` (the inverse of
/// [`tally_index`]; the histogram's lowest and highest equivalent values).
fn tally_range(index: usize) -> (u64, u64) {
    let i = index as u64;
    if i < SUB_BUCKETS {
        (i, i)
    } else {
        let bucket = (i >> 10) - 1;
        let low = ((i & 1023) + 1024) << bucket;
        (low, low + (1 << bucket) - 1)
    }
}

/// Values counted in a latency histogram's buckets with a few instructions
/// each (a leading-zero count, a shift, an increment), where a histogram's
/// own recording checks its bounds and tracks the smallest and largest
/// value and the total on every call. Reading it visits only the buckets
/// counted in (each noted when its count leaves zero), never the whole
/// layout, and emptying it zeroes only those. Each bucket stands for
/// values a histogram cannot tell apart, so what is read from it, or added
/// from it to a histogram, is what recording every value would have given.
struct Tally {
    counts: Box<[u64]>,
    /// The buckets counted in (room for every bucket is kept, so noting
    /// one never allocates).
    touched: Vec<u16>,
    /// Values counted.
    len: u64,
}

/// The first value past the last bucket of a latency histogram's counters
/// (they reach past its bound, [`MAX_LATENCY_NS`], to the end of its
/// bucket of powers of two).
const TALLY_LIMIT: u64 = 1 << 37;

impl Clone for Tally {
    /// A copy with room for every bucket, as [`Tally::new`] makes it.
    fn clone(&self) -> Tally {
        let mut touched = Vec::with_capacity(self.counts.len());
        touched.extend_from_slice(&self.touched);
        Tally {
            counts: self.counts.clone(),
            touched,
            len: self.len,
        }
    }
}

impl Tally {
    fn new() -> Tally {
        let len = tally_index(TALLY_LIMIT - 1) + 1;
        debug_assert!(len <= usize::from(u16::MAX));
        Tally {
            counts: vec![0; len].into_boxed_slice(),
            touched: Vec::with_capacity(len),
            len: 0,
        }
    }

    /// Counts `v`, which must be below [`TALLY_LIMIT`].
    #[inline(always)]
    fn record(&mut self, v: u64) {
        debug_assert!(v < TALLY_LIMIT);
        let i = tally_index(v);
        let c = &mut self.counts[i];
        if *c == 0 {
            // At most one note per bucket between clears: within capacity.
            self.touched.push(i as u16);
        }
        *c += 1;
        self.len += 1;
    }

    /// The buckets counted in with their counts, in no particular order.
    fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.touched
            .iter()
            .map(|&i| (usize::from(i), self.counts[usize::from(i)]))
    }

    /// Adds every value counted to `h`.
    fn add_into(&self, h: &mut Histogram<u64>) {
        for (i, c) in self.buckets() {
            h.saturating_record_n(tally_range(i).0, c);
        }
    }

    /// The quantiles `qs` (ascending) and the largest value, as a latency
    /// histogram gives them: for quantile `q` the largest value of the
    /// first bucket at which the running count reaches `ceil(q × n)` (at
    /// least 1). Sorts the noted buckets (their order does not matter).
    fn quantiles<const N: usize>(&mut self, qs: [f64; N]) -> ([u64; N], u64) {
        let mut out = [0; N];
        if self.len == 0 {
            return (out, 0);
        }
        self.touched.sort_unstable();
        let mut k = 0;
        let mut running = 0;
        for &i in &self.touched {
            let i = usize::from(i);
            running += self.counts[i];
            while k < N && running >= ((qs[k] * self.len as f64).ceil() as u64).max(1) {
                out[k] = tally_range(i).1;
                k += 1;
            }
        }
        let last = usize::from(*self.touched.last().expect("not empty"));
        (out, tally_range(last).1)
    }

    /// Empties it, keeping its memory.
    fn clear(&mut self) {
        for i in self.touched.drain(..) {
            self.counts[usize::from(i)] = 0;
        }
        self.len = 0;
    }
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tally({} values in {} buckets)",
            self.len,
            self.touched.len()
        )
    }
}

/// One epoch's latencies at the sink hand-off: counted in a histogram's
/// buckets with their exact sum. Recording is a few instructions; reading
/// the epoch's summary or adding it to the query's histogram visits only
/// the buckets the epoch used, and emptying it zeroes only those.
pub struct EpochLatency {
    tally: Tally,
    sum_ns: u64,
}

impl EpochLatency {
    /// An empty one (its counters are allocated here, once).
    pub fn new() -> EpochLatency {
        EpochLatency {
            tally: Tally::new(),
            sum_ns: 0,
        }
    }

    /// Records one latency (clamped to [`MAX_LATENCY_NS`], as a histogram
    /// clamps it).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let ns = ns.min(MAX_LATENCY_NS);
        self.tally.record(ns);
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Adds the epoch's latencies to `h`.
    pub fn add_into(&self, h: &mut Histogram<u64>) {
        self.tally.add_into(h);
    }

    /// The percentiles, as a histogram of the same latencies gives them;
    /// the mean is the exact one.
    pub fn summary(&mut self) -> LatencySummary {
        let n = self.tally.len;
        if n == 0 {
            return LatencySummary::default();
        }
        let ([p50, p90, p99, p999, p9999], max) =
            self.tally.quantiles([0.50, 0.90, 0.99, 0.999, 0.9999]);
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            count: n,
            p50: us(p50),
            p90: us(p90),
            p99: us(p99),
            p999: us(p999),
            p9999: us(p9999),
            max: us(max),
            mean: self.sum_ns as f64 / n as f64 / 1000.0,
        }
    }

    /// Empties it for reuse.
    pub fn clear(&mut self) {
        self.tally.clear();
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

/// The ingest times of the rows one epoch handed to the sink, counted in a
/// histogram's buckets as `ingest − base` (recording never allocates), so
/// that each row's latency to **durability** (its epoch's commit) can be
/// computed once the commit time is known. Rows of an epoch entered after
/// the previous epoch's marker reached the source, so `base` (the previous
/// marker at the sink, less 10 ms) precedes nearly all of them; an earlier
/// one is counted as ingested at `base`.
#[derive(Clone, Debug)]
pub struct IngestTimes {
    tally: Tally,
    base_ns: u64,
}

impl IngestTimes {
    /// Empty, for rows ingested from about `now_ns` on.
    pub fn starting(now_ns: u64) -> IngestTimes {
        IngestTimes {
            tally: Tally::new(),
            base_ns: now_ns.saturating_sub(INGEST_SLACK_NS),
        }
    }

    /// Records one row's ingest time. An offset from `base` past the
    /// histogram's counters is counted at its bound, as the histogram's
    /// saturating recording counts it.
    #[inline]
    pub fn record(&mut self, ingest_ns: u64) {
        let offset = ingest_ns.saturating_sub(self.base_ns).max(1);
        self.tally.record(if offset < TALLY_LIMIT {
            offset
        } else {
            MAX_LATENCY_NS
        });
    }

    /// Empties it, keeping its memory (only the buckets it used are
    /// zeroed): the continuous coordinator does it before it hands the
    /// times back, so that the sink's task only calls
    /// [`IngestTimes::rebase`].
    pub fn clear(&mut self) {
        self.tally.clear();
    }

    /// Starts an emptied one ([`IngestTimes::clear`]) on the next epoch's
    /// rows, ingested from about `now_ns` on; constant time.
    pub fn rebase(&mut self, now_ns: u64) {
        debug_assert!(self.tally.len == 0, "rebased before it was cleared");
        self.base_ns = now_ns.saturating_sub(INGEST_SLACK_NS);
    }

    /// Adds every recorded row's latency to durability, for an epoch that
    /// became durable at `durable_ns`, to `out`. A row counts as ingested
    /// at the latest time its bucket stands for.
    pub fn durable_into(&self, durable_ns: u64, out: &mut Histogram<u64>) {
        for (i, c) in self.tally.buckets() {
            let ingest = self.base_ns + tally_range(i).1;
            out.saturating_record_n(durable_ns.saturating_sub(ingest).max(1), c);
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
        let mut h2 = new_latency_histogram();
        e.add_into(&mut h2);
        assert_eq!(h2.len(), 6);
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
            let (low, high) = tally_range(tally_index(v));
            assert_eq!(
                (low, high),
                (h.lowest_equivalent(v), h.highest_equivalent(v)),
                "{v}"
            );
            assert_eq!(tally_index(low), tally_index(v), "{v}");
            assert_eq!(tally_index(high), tally_index(v), "{v}");
        }
        assert!(tally_index(MAX_LATENCY_NS) < usize::from(u16::MAX));
    }

    /// The latencies to durability of rows ingested at `base + offset`,
    /// computed from a histogram of the offsets, as the sink did before
    /// the tally.
    fn durable_by_histogram(base: u64, offsets: &Histogram<u64>, at: u64) -> Histogram<u64> {
        let mut out = new_latency_histogram();
        for v in offsets.iter_recorded() {
            let ingest = base + v.value_iterated_to();
            out.saturating_record_n(at.saturating_sub(ingest).max(1), v.count_at_value());
        }
        out
    }

    #[test]
    fn latencies_and_ingest_times_read_as_if_each_was_recorded_in_a_histogram() {
        let recorded = |h: &Histogram<u64>| -> Vec<(u64, u64)> {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        let mut all = edge_and_random_values();
        // Past the histogram's bound: the latency is clamped to it; an
        // ingest offset is counted in its bucket while the counters reach,
        // and at the bound beyond them, as the histogram does.
        all.extend([
            MAX_LATENCY_NS + 1,
            120_000_000_000,
            TALLY_LIMIT - 1,
            TALLY_LIMIT,
        ]);
        // Epochs of several sizes, reusing the same counters.
        let mut epoch = EpochLatency::new();
        let mut ingest = IngestTimes::starting(INGEST_SLACK_NS);
        for n in [1usize, 2, 3, 10, 999, 1000, all.len()] {
            let mut direct = new_latency_histogram();
            let mut offsets = new_latency_histogram();
            for &v in &all[all.len() - n..] {
                let v = v.max(1);
                direct.saturating_record(v.min(MAX_LATENCY_NS));
                offsets.saturating_record(v);
                epoch.record(v);
                ingest.record(v);
            }
            // The summary's quantiles and largest value are the
            // histogram's.
            let (got, want) = (epoch.summary(), LatencySummary::of(&direct));
            assert_eq!(
                (got.count, got.p50, got.p90, got.p99, got.p999, got.p9999, got.max),
                (want.count, want.p50, want.p90, want.p99, want.p999, want.p9999, want.max),
                "{n} values"
            );
            // Added to a histogram: the same counts, minimum, maximum and
            // mean as recording each value.
            let mut added = new_latency_histogram();
            epoch.add_into(&mut added);
            assert_eq!(recorded(&added), recorded(&direct), "{n} values");
            assert_eq!(
                (added.len(), added.min(), added.max(), added.mean()),
                (direct.len(), direct.min(), direct.max(), direct.mean())
            );
            // Latency to durability: what the histogram of the offsets gave.
            for at in [0, 5_000_000, MAX_LATENCY_NS / 2, u64::MAX] {
                let mut durable = new_latency_histogram();
                ingest.durable_into(at, &mut durable);
                assert_eq!(
                    recorded(&durable),
                    recorded(&durable_by_histogram(0, &offsets, at)),
                    "{n} values, durable at {at}"
                );
            }
            epoch.clear();
            ingest.clear();
            ingest.rebase(INGEST_SLACK_NS);
            assert_eq!(epoch.summary(), LatencySummary::default());
        }
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
