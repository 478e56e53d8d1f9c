//! The JSON API's documents: the list of queries, one query's recent
//! progress, its latency (percentiles and the HdrHistogram, encoded).

use std::sync::atomic::Ordering;

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::metrics::{LatencySummary, QueryTotals, RingFill, StreamingQueryProgress};
use crate::query::{lock, QueryMode, QueryShared};
use crate::time::format_iso_ms;

/// One task of the task graph: its number and what runs in it.
#[derive(Serialize)]
pub(super) struct TaskRow {
    task: u64,
    runs: String,
}

/// A query as `/api/queries` lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct QueryDoc {
    id: String,
    run_id: String,
    name: Option<String>,
    mode: &'static str,
    guarantee: &'static str,
    checkpointed: bool,
    /// `running`, `stopped` or `failed`.
    status: &'static str,
    start_time: String,
    end_time: Option<String>,
    error: Option<String>,
    last_batch_id: Option<u64>,
    totals: QueryTotals,
    task_graph: Vec<TaskRow>,
    /// The rings between tasks and their fill at the last epoch marker.
    rings: Vec<RingFill>,
    /// Why `rings` is empty, when it is.
    rings_note: Option<&'static str>,
}

/// `running`, `stopped` or `failed`.
pub(super) fn status(q: &QueryShared) -> &'static str {
    if q.active.load(Ordering::SeqCst) {
        "running"
    } else if lock(&q.error).is_some() {
        "failed"
    } else {
        "stopped"
    }
}

/// The task graph's lines (`task N: a -> b -> c`) as rows.
fn task_rows(graph: &str) -> Vec<TaskRow> {
    graph
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("task ")?;
            let (n, runs) = rest.split_once(": ")?;
            Some(TaskRow {
                task: n.parse().ok()?,
                runs: runs.to_string(),
            })
        })
        .collect()
}

/// Why a query shows no rings.
fn rings_note(mode: QueryMode, empty: bool) -> Option<&'static str> {
    match (mode, empty) {
        (_, false) => None,
        (QueryMode::MicroBatch, true) => {
            Some("micro-batch has no rings: the driver runs each batch to completion, then hands it to the commit writer")
        }
        (QueryMode::Continuous, true) => {
            Some("the whole query runs fused in one task: no rings between tasks")
        }
    }
}

/// The document of one query.
pub(super) fn query_doc(q: &QueryShared) -> QueryDoc {
    let last_batch_id = lock(&q.progress).back().map(|p| p.batch_id);
    let rings = q.ring_fill();
    QueryDoc {
        id: q.id.clone(),
        run_id: q.run_id.clone(),
        name: q.name.clone(),
        mode: q.info.mode.as_str(),
        guarantee: q.info.mode.guarantee(),
        checkpointed: q.info.checkpointed,
        status: status(q),
        start_time: format_iso_ms(q.started_at_us),
        end_time: q.end_time_us().map(format_iso_ms),
        error: lock(&q.error).as_ref().map(|e| e.to_string()),
        last_batch_id,
        totals: lock(&q.totals).clone(),
        task_graph: task_rows(&q.info.task_graph),
        rings_note: rings_note(q.info.mode, rings.is_empty()),
        rings,
    }
}

/// The query's recent progress reports, oldest first.
pub(super) fn progress(q: &QueryShared) -> Vec<StreamingQueryProgress> {
    lock(&q.progress).iter().cloned().collect()
}

/// A histogram in the HdrHistogram V2 compressed encoding (the form of
/// HdrHistogram's interval logs), base64.
#[derive(Serialize)]
pub(super) struct EncodedHistogram {
    unit: &'static str,
    encoding: &'static str,
    data: String,
}

fn encode(h: &Histogram<u64>) -> EncodedHistogram {
    let mut bytes = Vec::new();
    let data = match V2DeflateSerializer::new().serialize(h, &mut bytes) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(&bytes),
        Err(e) => {
            tracing::warn!("live view: cannot encode a latency histogram: {e:?}");
            String::new()
        }
    };
    EncodedHistogram {
        unit: "nanoseconds",
        encoding: "HdrHistogram V2 compressed, base64",
        data,
    }
}

/// `/api/queries/{id}/latency`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LatencyDoc {
    /// Unit of the percentiles.
    unit: &'static str,
    /// Ingest to the sink's hand-off, every row of the run.
    end_to_end: LatencySummary,
    /// Ingest to the commit of the row's epoch or batch.
    durable: LatencySummary,
    histogram: EncodedHistogram,
    durable_histogram: EncodedHistogram,
}

/// The latency document of one query.
pub(super) fn latency(q: &QueryShared) -> LatencyDoc {
    let end_to_end = lock(&q.latency).clone();
    let durable = lock(&q.durable).clone();
    LatencyDoc {
        unit: "microseconds",
        end_to_end: LatencySummary::of(&end_to_end),
        durable: LatencySummary::of(&durable),
        histogram: encode(&end_to_end),
        durable_histogram: encode(&durable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_rows_read_the_graph_lines() {
        let rows = task_rows(
            "task 0: source(a) -> ring(4096) -> task 1\ntask 1: ring from task 0 -> sink(x)\n",
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].task, 1);
        assert_eq!(rows[1].runs, "ring from task 0 -> sink(x)");
    }
}
