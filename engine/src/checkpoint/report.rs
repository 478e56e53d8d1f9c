//! How the tasks of a query report their parts of an epoch to its coordinator.
//!
//! Owns the messages ([`CoordMsg`]) and the sending end every task holds
//! ([`EpochReporter`]): a source's offset at a marker, a stateful operator's
//! snapshot ([`OperatorSnapshot`]), the sink's acknowledgement, a task's exit.
//! Sending never blocks and never fails a task (a gone coordinator means the
//! query is ending). It must not decide what is durable: the coordinator
//! collects the parts and the checkpoint core writes them.

use crossbeam_channel::Sender;
use hdrhistogram::Histogram;

use crate::error::EngineError;
use crate::io::SourceOffset;
use crate::metrics::IngestTimes;
use crate::state::StateSnapshot;
use crate::table::JoinSnapshot;

/// What a stateful operator hands over at an epoch marker.
#[derive(Debug)]
pub(crate) enum OperatorSnapshot {
    /// The watermark operator's position.
    Watermark {
        max_event_time_us: i64,
        watermark_us: i64,
    },
    /// An aggregation partition's changes since the previous epoch.
    Aggregate {
        delta: StateSnapshot,
        watermark_us: i64,
        rows_total: u64,
        rows_updated: u64,
        rows_dropped_late: u64,
    },
    /// A stream-stream join's whole state (`None` without a checkpoint).
    StreamJoin {
        state: Option<JoinSnapshot>,
        watermark_us: i64,
        rows_total: u64,
        rows_dropped_late: u64,
    },
}

/// One part of an epoch, from a task to the coordinator.
pub(crate) enum CoordMsg {
    SourceMarked {
        epoch: u64,
        offset: SourceOffset,
        rows: u64,
        is_final: bool,
        metrics: Vec<(String, u64)>,
    },
    Snapshot {
        epoch: u64,
        op_id: usize,
        partition: usize,
        snapshot: OperatorSnapshot,
    },
    SinkCommitted {
        epoch: u64,
        state: serde_json::Value,
        rows: u64,
        latency: Histogram<u64>,
        ingest: IngestTimes,
    },
    TaskExited {
        error: Option<EngineError>,
    },
}

/// How tasks talk to the coordinator (cloned into every task).
#[derive(Clone)]
pub(crate) struct EpochReporter {
    tx: Sender<CoordMsg>,
}

impl EpochReporter {
    pub(crate) fn new(tx: Sender<CoordMsg>) -> EpochReporter {
        EpochReporter { tx }
    }

    pub(crate) fn snapshot(
        &self,
        epoch: u64,
        op_id: usize,
        partition: usize,
        snapshot: OperatorSnapshot,
    ) {
        let _ = self.tx.send(CoordMsg::Snapshot {
            epoch,
            op_id,
            partition,
            snapshot,
        });
    }

    pub(crate) fn source_marked(
        &self,
        epoch: u64,
        offset: SourceOffset,
        rows: u64,
        is_final: bool,
        metrics: Vec<(String, u64)>,
    ) {
        let _ = self.tx.send(CoordMsg::SourceMarked {
            epoch,
            offset,
            rows,
            is_final,
            metrics,
        });
    }

    pub(crate) fn sink_committed(
        &self,
        epoch: u64,
        state: serde_json::Value,
        rows: u64,
        latency: Histogram<u64>,
        ingest: IngestTimes,
    ) {
        let _ = self.tx.send(CoordMsg::SinkCommitted {
            epoch,
            state,
            rows,
            latency,
            ingest,
        });
    }

    pub(crate) fn exited(&self, error: Option<EngineError>) {
        let _ = self.tx.send(CoordMsg::TaskExited { error });
    }
}
