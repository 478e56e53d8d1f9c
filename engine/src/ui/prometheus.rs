//! `/metrics`: every served query's figures in the Prometheus text format
//! (OpenMetrics), encoded by `prometheus-client` from what the query already
//! holds, at scrape time.
//!
//! Names (all labelled `query` (the name, empty when none), `id`, `run_id`):
//! `runnel_input_rows_total`, `runnel_output_rows_total`,
//! `runnel_late_rows_total`, `runnel_epochs_total` (counters, over the run);
//! `runnel_state_rows` (per `operator`), `runnel_watermark_seconds` (Unix
//! time), `runnel_watermark_lag_seconds` (wall time of the report minus the
//! watermark), `runnel_checkpoint_duration_seconds` (the last commit),
//! `runnel_checkpoint_written_bytes_total`, `runnel_query_running` (1 while
//! running); `runnel_source_backlog` (per `source`: offsets behind the end of
//! its log or topic, or rows waiting in its ring, at the last report);
//! `runnel_ring_fill_ratio` and `runnel_ring_full_waits_total` (per ring,
//! labelled `from_task`, `to_task`: its fill at the last epoch marker, and
//! the sends that found it full); `runnel_latency_seconds` (a histogram of
//! end-to-end latency, from the HdrHistogram) and
//! `runnel_latency_quantile_seconds` (per `quantile`: 0.5, 0.99, 0.999;
//! `prometheus-client` has no summary type).

use std::fmt;
use std::sync::Arc;

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::metrics::{RingFill, StreamingQueryProgress};
use crate::query::{lock, QueryShared};
use crate::time::parse_timestamp_us;

/// The content type of the encoded text.
pub(super) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BOUNDS: [f64; 16] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 1.0, 10.0,
];

/// Reads the registry's queries at each scrape.
#[derive(Debug)]
struct Queries;

/// One query's figures, read once per scrape.
struct Snapshot {
    labels: Vec<(&'static str, String)>,
    running: bool,
    totals: crate::metrics::QueryTotals,
    last: Option<StreamingQueryProgress>,
    latency: Histogram<u64>,
    rings: Vec<RingFill>,
}

impl Snapshot {
    fn of(q: &Arc<QueryShared>) -> Snapshot {
        Snapshot {
            labels: vec![
                ("query", q.name.clone().unwrap_or_default()),
                ("id", q.id.clone()),
                ("run_id", q.run_id.clone()),
            ],
            running: super::api::status(q) == "running",
            totals: lock(&q.totals).clone(),
            last: lock(&q.progress).back().cloned(),
            latency: lock(&q.latency).clone(),
            rings: q.ring_fill(),
        }
    }

    fn with(&self, key: &'static str, value: String) -> Vec<(&'static str, String)> {
        let mut l = self.labels.clone();
        l.push((key, value));
        l
    }
}

/// Counters and gauges: one value per query, or none when unknown.
fn family<T, F>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    queries: &[Snapshot],
    value: F,
) -> fmt::Result
where
    F: Fn(&Snapshot) -> Option<T>,
    T: Into<f64>,
{
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    for q in queries {
        if let Some(v) = value(q) {
            let v: f64 = v.into();
            let mut m = metric.encode_family(&q.labels)?;
            match kind {
                MetricType::Counter => m.encode_counter::<NoLabelSet, _, f64>(&v, None)?,
                _ => m.encode_gauge(&v)?,
            }
        }
    }
    Ok(())
}

fn seconds_of_ms(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The last report's checkpoint commit time: `walCommit` (continuous) or
/// `commitOffsets` (micro-batch).
fn checkpoint_ms(p: &StreamingQueryProgress) -> Option<u64> {
    p.checkpoint_bytes?;
    p.duration_ms
        .get("walCommit")
        .or_else(|| p.duration_ms.get("commitOffsets"))
        .copied()
}

/// The source metric that says how far the source is behind the end of
/// its input.
const BACKLOG: &str = "offsetsBehindLatest";

/// A query's labels plus a ring's two tasks.
fn ring_labels(q: &Snapshot, r: &RingFill) -> Vec<(&'static str, String)> {
    let mut l = q.with("from_task", r.from.to_string());
    l.push(("to_task", r.to.to_string()));
    l
}

fn watermark_us(p: &StreamingQueryProgress) -> Option<i64> {
    parse_timestamp_us(p.event_time.watermark.as_deref()?)
}

impl Collector for Queries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let queries: Vec<Snapshot> = super::registry::all()
            .iter()
            .map(|q| Snapshot::of(&q.shared))
            .collect();
        let e = &mut encoder;
        use MetricType::{Counter, Gauge};
        family(
            e,
            "runnel_query_running",
            "1 while the query runs, 0 once it stopped or failed",
            None,
            Gauge,
            &queries,
            |q| Some(u32::from(q.running)),
        )?;
        family(
            e,
            "runnel_input_rows",
            "Rows read",
            None,
            Counter,
            &queries,
            |q| Some(q.totals.input_rows as f64),
        )?;
        family(
            e,
            "runnel_output_rows",
            "Rows written to the sink",
            None,
            Counter,
            &queries,
            |q| Some(q.totals.output_rows as f64),
        )?;
        family(
            e,
            "runnel_late_rows",
            "Rows dropped as later than the watermark",
            None,
            Counter,
            &queries,
            |q| Some(q.totals.late_rows as f64),
        )?;
        family(
            e,
            "runnel_epochs",
            "Epochs (continuous) or batches (micro-batch) completed",
            None,
            Counter,
            &queries,
            |q| Some(q.totals.reports as f64),
        )?;
        family(
            e,
            "runnel_checkpoint_written",
            "Bytes of state files written to the checkpoint",
            Some(&Unit::Bytes),
            Counter,
            &queries,
            |q| Some(q.totals.checkpoint_bytes as f64),
        )?;
        family(
            e,
            "runnel_checkpoint_duration",
            "Time the last epoch's or batch's checkpoint commit took",
            Some(&Unit::Seconds),
            Gauge,
            &queries,
            |q| q.last.as_ref().and_then(checkpoint_ms).map(seconds_of_ms),
        )?;
        family(
            e,
            "runnel_watermark",
            "The event-time watermark, as Unix time",
            Some(&Unit::Seconds),
            Gauge,
            &queries,
            |q| {
                q.last
                    .as_ref()
                    .and_then(watermark_us)
                    .map(|w| w as f64 / 1e6)
            },
        )?;
        family(
            e,
            "runnel_watermark_lag",
            "Wall time of the last report minus the watermark",
            Some(&Unit::Seconds),
            Gauge,
            &queries,
            |q| {
                let p = q.last.as_ref()?;
                Some((parse_timestamp_us(&p.timestamp)? - watermark_us(p)?) as f64 / 1e6)
            },
        )?;
        {
            let mut metric = e.encode_descriptor(
                "runnel_state_rows",
                "Groups held in state, per stateful operator",
                None,
                Gauge,
            )?;
            for q in &queries {
                for op in q.last.iter().flat_map(|p| &p.state_operators) {
                    let labels = q.with("operator", op.operator_name.clone());
                    metric
                        .encode_family(&labels)?
                        .encode_gauge(&(op.num_rows_total as f64))?;
                }
            }
        }
        {
            let mut metric = e.encode_descriptor(
                "runnel_source_backlog",
                "Offsets behind the end of the source's log or topic (or rows waiting in its ring), at the last report",
                None,
                Gauge,
            )?;
            for q in &queries {
                let sources = q.last.iter().flat_map(|p| &p.sources);
                for (i, source) in sources.enumerate() {
                    if let Some(behind) = source.metrics.get(BACKLOG) {
                        let labels = q.with("source", i.to_string());
                        metric
                            .encode_family(&labels)?
                            .encode_gauge(&(*behind as f64))?;
                    }
                }
            }
        }
        {
            let mut metric = e.encode_descriptor(
                "runnel_ring_fill_ratio",
                "Messages waiting in a ring between two tasks over its capacity, at the last epoch marker",
                None,
                Gauge,
            )?;
            for q in &queries {
                for r in &q.rings {
                    metric
                        .encode_family(&ring_labels(q, r))?
                        .encode_gauge(&r.fill_ratio)?;
                }
            }
        }
        {
            let mut metric = e.encode_descriptor(
                "runnel_ring_full_waits",
                "Sends into a ring between two tasks that found it full and waited (backpressure)",
                None,
                Counter,
            )?;
            for q in &queries {
                for r in &q.rings {
                    metric
                        .encode_family(&ring_labels(q, r))?
                        .encode_counter::<NoLabelSet, _, f64>(&(r.full_waits as f64), None)?;
                }
            }
        }
        {
            let mut metric = e.encode_descriptor(
                "runnel_latency",
                "End-to-end latency of every row written: ingest to the sink's hand-off",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for q in &queries {
                let (sum, count, buckets) = latency_buckets(&q.latency);
                metric
                    .encode_family(&q.labels)?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        {
            let mut metric = e.encode_descriptor(
                "runnel_latency_quantile",
                "Quantiles of end-to-end latency over the run",
                Some(&Unit::Seconds),
                Gauge,
            )?;
            for q in &queries {
                if q.latency.is_empty() {
                    continue;
                }
                for (name, quantile) in [("0.5", 0.5), ("0.99", 0.99), ("0.999", 0.999)] {
                    let labels = q.with("quantile", name.to_string());
                    let v = q.latency.value_at_quantile(quantile) as f64 / 1e9;
                    metric.encode_family(&labels)?.encode_gauge(&v)?;
                }
            }
        }
        Ok(())
    }
}

/// Sum (s), count and per-bucket counts (the last bucket `+Inf`) of a
/// nanosecond histogram.
fn latency_buckets(h: &Histogram<u64>) -> (f64, u64, Vec<(f64, u64)>) {
    let mut buckets: Vec<(f64, u64)> = LATENCY_BOUNDS.iter().map(|b| (*b, 0)).collect();
    buckets.push((f64::MAX, 0));
    for v in h.iter_recorded() {
        let s = h.highest_equivalent(v.value_iterated_to()) as f64 / 1e9;
        let i = LATENCY_BOUNDS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        buckets[i].1 += v.count_at_value();
    }
    (h.mean() * h.len() as f64 / 1e9, h.len(), buckets)
}

/// The registry every scrape encodes.
fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut r = Registry::default();
        r.register_collector(Box::new(Queries));
        r
    })
}

/// The text of `/metrics`.
pub(super) fn render() -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry()) {
        tracing::warn!("live view: cannot encode the metrics: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_hold_every_value() {
        let mut h = crate::metrics::new_latency_histogram();
        h.record(5_000).unwrap(); // 5 µs
        h.record(2_000_000).unwrap(); // 2 ms
        h.record(50_000_000_000).unwrap(); // 50 s
        let (_, count, buckets) = latency_buckets(&h);
        assert_eq!(count, 3);
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 3);
        assert_eq!(buckets[0].1, 1);
        assert_eq!(buckets.last().unwrap().1, 1);
    }
}
