//! `StreamingQueryProgress`, with Spark's JSON field names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::LatencySummary;

/// Wall-clock durations of the phases of an epoch or batch, in ms (Spark's
/// `durationMs`; keys such as `triggerExecution`, `walCommit`, `addBatch`).
pub type DurationMs = BTreeMap<String, u64>;

/// Event-time statistics (Spark's `eventTime`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventTimeStats {
    /// The watermark, ISO 8601.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// The largest event time seen, ISO 8601.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

/// Progress of one stateful operator (Spark's `stateOperators[]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateOperatorProgress {
    /// The operator's name.
    pub operator_name: String,
    /// Groups held.
    pub num_rows_total: u64,
    /// Group updates in this epoch.
    pub num_rows_updated: u64,
    /// Rows (per window) dropped as late.
    pub num_rows_dropped_by_watermark: u64,
    /// Partitions of the operator.
    pub num_partitions: u64,
}

/// Progress of one source (Spark's `sources[]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceProgress {
    /// What the source is.
    pub description: String,
    /// Offset at the start of the epoch.
    pub start_offset: serde_json::Value,
    /// Offset at its end.
    pub end_offset: serde_json::Value,
    /// Rows read in the epoch.
    pub num_input_rows: u64,
    /// Input rate.
    pub input_rows_per_second: f64,
    /// Processing rate.
    pub processed_rows_per_second: f64,
    /// Source-specific counters (bad records, files).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, u64>,
}

/// Progress of the sink (Spark's `sink`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkProgress {
    /// What the sink is.
    pub description: String,
    /// Rows written in the epoch.
    pub num_output_rows: u64,
}

/// One progress report, per epoch (continuous) or batch (micro-batch), with
/// the field names of Spark's `StreamingQueryProgress`, plus end-to-end
/// latency percentiles.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamingQueryProgress {
    /// The query id (stable across restarts on one checkpoint).
    pub id: String,
    /// The run id (new per start).
    pub run_id: String,
    /// The query's name.
    pub name: Option<String>,
    /// When the epoch or batch ended, ISO 8601.
    pub timestamp: String,
    /// The epoch or batch id.
    pub batch_id: u64,
    /// Rows read.
    pub num_input_rows: u64,
    /// Rows read per second of wall time since the previous report.
    pub input_rows_per_second: f64,
    /// Rows processed per second of processing time.
    pub processed_rows_per_second: f64,
    /// Phase durations.
    pub duration_ms: DurationMs,
    /// Event-time statistics.
    pub event_time: EventTimeStats,
    /// Stateful operators.
    pub state_operators: Vec<StateOperatorProgress>,
    /// Sources.
    pub sources: Vec<SourceProgress>,
    /// The sink.
    pub sink: SinkProgress,
    /// End-to-end latency (µs) of the rows written in this epoch or batch.
    pub latency_micros: LatencySummary,
    /// Bytes of state files this epoch or batch wrote to the checkpoint
    /// (absent without a checkpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_bytes: Option<u64>,
}

impl std::fmt::Display for StreamingQueryProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_string_pretty(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(std::fmt::Error),
        }
    }
}
