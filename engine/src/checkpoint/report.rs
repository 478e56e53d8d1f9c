//! How the tasks of a query report their parts of an epoch to its coordinator.
//!
//! Owns the messages ([`CoordMsg`]) and the sending end every task holds
//! ([`EpochReporter`]): a source's offset at a marker, a stateful operator's
//! snapshot ([`OperatorSnapshot`]), the sink's acknowledgement, a task's exit;
//! and the coordinator's receiving end ([`ReportInbox`]). Sending never
//! blocks and never fails a task (a gone coordinator means the query is
//! ending). It must not decide what is durable: the coordinator collects the
//! parts and the checkpoint core writes them.
//!
//! The coordinator sleeps on the inbox with the tasks' own wake-up handshake
//! ([`TaskWaker`]), never by spinning or yielding: on a machine whose cores
//! are all busy with spinning tasks, a waiting thread that yields stays
//! runnable and takes a time slice from one of them at every scheduler tick.
//! Every part wakes it except a source's mark of an epoch that is not the
//! last: the source sends it before it passes the epoch's marker on, so it
//! is already in the inbox when a later part (the sink's acknowledgement at
//! the latest) wakes the coordinator, and the source's task spends no
//! system call on it. (An aggregation may report its snapshot after the
//! marker has moved on, as it copies its groups between events, so a
//! snapshot does wake.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::error::EngineError;
use crate::io::SourceOffset;
use crate::metrics::{EpochLatency, IngestTimes};
use crate::state::StateSnapshot;
use crate::table::JoinSnapshot;
use crate::wake::TaskWaker;

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
// A few messages per task and epoch: their size does not matter, and
// boxing the sink's histograms would allocate on its task every epoch.
#[allow(clippy::large_enum_variant)]
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
        latency: EpochLatency,
        ingest: IngestTimes,
    },
    TaskExited {
        error: Option<EngineError>,
    },
}

/// A connected reporter and inbox: what the tasks send, the coordinator
/// receives.
pub(crate) fn report_channel() -> (EpochReporter, ReportInbox) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let waker = Arc::new(TaskWaker::new());
    (
        EpochReporter {
            tx,
            waker: waker.clone(),
        },
        ReportInbox { rx, waker },
    )
}

/// The coordinator's end: the tasks' reports, and a wait for the next one
/// that parks the thread (see the module docs).
pub(crate) struct ReportInbox {
    rx: Receiver<CoordMsg>,
    waker: Arc<TaskWaker>,
}

impl ReportInbox {
    /// The next report if there is one (tests read the inbox directly).
    #[cfg(test)]
    pub(crate) fn try_recv(&self) -> Result<CoordMsg, TryRecvError> {
        self.rx.try_recv()
    }

    /// The next report, waiting until `deadline` at the latest. Must be
    /// called from one thread only (the waker is bound to it).
    pub(crate) fn recv_until(&self, deadline: Instant) -> Result<CoordMsg, RecvTimeoutError> {
        self.waker.bind_current();
        loop {
            match self.rx.try_recv() {
                Ok(msg) => return Ok(msg),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvTimeoutError::Timeout);
            }
            // The handshake: a report sent after the look above either
            // finds the flag set by `park_unless` (and wakes this thread)
            // or is seen by `has_work` here. Parts that do not wake (see
            // the module docs) are read at the next wake-up or deadline.
            self.waker
                .park_unless(|| !self.rx.is_empty(), left.min(MAX_INBOX_PARK));
        }
    }
}

/// The longest the coordinator sleeps without looking at its inbox: a bound
/// on how late a report that did not wake it is read when no epoch tick is
/// due sooner.
const MAX_INBOX_PARK: Duration = Duration::from_millis(100);

/// How tasks talk to the coordinator (cloned into every task).
#[derive(Clone)]
pub(crate) struct EpochReporter {
    tx: Sender<CoordMsg>,
    waker: Arc<TaskWaker>,
}

impl EpochReporter {
    /// Sends a part that can complete an epoch, waking the coordinator if
    /// it sleeps.
    fn send_and_wake(&self, msg: CoordMsg) {
        let _ = self.tx.send(msg);
        self.waker.wake_if_sleeping();
    }

    pub(crate) fn snapshot(
        &self,
        epoch: u64,
        op_id: usize,
        partition: usize,
        snapshot: OperatorSnapshot,
    ) {
        self.send_and_wake(CoordMsg::Snapshot {
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
        let msg = CoordMsg::SourceMarked {
            epoch,
            offset,
            rows,
            is_final,
            metrics,
        };
        if is_final {
            self.send_and_wake(msg);
        } else {
            let _ = self.tx.send(msg);
        }
    }

    pub(crate) fn sink_committed(
        &self,
        epoch: u64,
        state: serde_json::Value,
        rows: u64,
        latency: EpochLatency,
        ingest: IngestTimes,
    ) {
        self.send_and_wake(CoordMsg::SinkCommitted {
            epoch,
            state,
            rows,
            latency,
            ingest,
        });
    }

    pub(crate) fn exited(&self, error: Option<EngineError>) {
        self.send_and_wake(CoordMsg::TaskExited { error });
    }
}
