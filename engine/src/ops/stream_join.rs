//! The stream-stream join of continuous mode.
//!
//! Owns `StreamJoinOp`, the first operator of a query joining two streams:
//! each event is a row of one side (`io::JoinedSources` tags it: the side's
//! columns, then whether it is the right side), handed to
//! the join's state (`table::StreamJoinState`), which emits the matches; the
//! joined rows go on in one reused event. Eviction (and with it an outer
//! join's unmatched rows) runs when the task is idle and at each epoch
//! marker, only if a watermark moved. At a marker it hands the coordinator
//! a copy of the state when the query has a checkpoint; the coordinator
//! writes it. Since the task reads both sources, the marker is aligned on
//! both inputs. It must not serialise state or do I/O. An event allocates
//! only when its row is kept in the state.

use super::{Next, Operator};
use crate::checkpoint::{EpochReporter, OperatorSnapshot};
use crate::error::Result;
use crate::schema::{Event, Row, Value, NO_TIME};
use crate::table::StreamJoinState;

/// Joins the rows of two streams (see the module docs).
pub(crate) struct StreamJoinOp {
    state: StreamJoinState,
    op_id: usize,
    /// Whether to copy the state at markers (there is a checkpoint).
    checkpointing: bool,
    reporter: EpochReporter,
    forwarded: i64,
    out: Event,
    next: Next,
}

impl StreamJoinOp {
    pub(crate) fn new(
        state: StreamJoinState,
        op_id: usize,
        checkpointing: bool,
        reporter: EpochReporter,
        next: Next,
    ) -> StreamJoinOp {
        StreamJoinOp {
            state,
            op_id,
            checkpointing,
            reporter,
            forwarded: NO_TIME,
            out: Event::new(Row::new(), 0),
            next,
        }
    }

    /// Evicts what the watermarks allow and forwards the join's watermark.
    fn advance(&mut self) -> Result<()> {
        let StreamJoinOp {
            state, out, next, ..
        } = self;
        let wm = state.watermark();
        state.evict(&mut |row: &Row, ingest_ns| {
            out.row.clone_from(row);
            out.event_time_us = NO_TIME;
            out.watermark_us = wm;
            out.ingest_ns = ingest_ns;
            next.on_event(out)
        })?;
        if wm > self.forwarded {
            self.forwarded = wm;
            self.next.on_watermark(wm)?;
        }
        Ok(())
    }
}

impl Operator for StreamJoinOp {
    #[inline]
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        let StreamJoinOp {
            state, out, next, ..
        } = self;
        // The compact row of `io::JoinedSources`: the side's columns, then
        // the side.
        let Some((tag, values)) = ev.row.split_last() else {
            return Ok(());
        };
        let side = usize::from(matches!(tag, Value::Boolean(true)));
        let wm = state.watermark();
        state.push(side, values, ev.ingest_ns, &mut |row: &Row, ingest_ns| {
            out.row.clone_from(row);
            out.event_time_us = NO_TIME;
            out.watermark_us = wm;
            out.ingest_ns = ingest_ns;
            next.on_event(out)
        })
    }

    fn on_watermark(&mut self, _wm: i64) -> Result<()> {
        // The join's watermark is its own (the smaller of the sides').
        Ok(())
    }

    fn on_marker(&mut self, epoch: u64) -> Result<()> {
        self.advance()?;
        let snapshot = OperatorSnapshot::StreamJoin {
            state: self.checkpointing.then(|| self.state.snapshot()),
            watermark_us: self.state.watermark(),
            rows_total: self.state.rows_total(),
            rows_dropped_late: self.state.take_dropped_late(),
        };
        self.reporter.snapshot(epoch, self.op_id, 0, snapshot);
        self.next.on_marker(epoch)
    }

    fn on_tick(&mut self) -> Result<()> {
        self.advance()?;
        self.next.on_tick()
    }

    fn on_end(&mut self) -> Result<()> {
        self.advance()?;
        self.next.on_end()
    }
}
