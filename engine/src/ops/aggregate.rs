//! Windowed, keyed aggregation with Spark's watermark and output-mode rules.

use smallvec::SmallVec;

use super::{Next, Operator};
use crate::checkpoint::{EpochReporter, OperatorSnapshot};
use crate::clock::now_ns;
use crate::error::Result;
use crate::expr::BoundExpr;
use crate::io::OutputMode;
use crate::schema::builder::ValueSink;
use crate::schema::{DataType, Event, Row, Value, NO_TIME};
use crate::state::{Accumulator, AggFunc, GroupKey, WindowedState, GLOBAL_WINDOW};
use crate::window::WindowShape;

/// An aggregation resolved against its input schema.
#[derive(Clone, Debug)]
pub(crate) struct BoundAggregate {
    /// Grouping key expressions (without the window).
    pub(crate) keys: Vec<BoundExpr>,
    /// Where the window columns go among the keys, with its time expression
    /// and shape.
    pub(crate) window: Option<(usize, BoundExpr, WindowShape)>,
    /// `(function, argument, argument type)` per aggregate.
    pub(crate) aggs: Vec<(AggFunc, Option<BoundExpr>, DataType)>,
    /// The query's output mode.
    pub(crate) mode: OutputMode,
    /// Whether a watermark is defined upstream.
    pub(crate) has_watermark: bool,
}

impl BoundAggregate {
    pub(crate) fn new_accumulators(&self) -> SmallVec<[Accumulator; 4]> {
        self.aggs
            .iter()
            .map(|(f, _, t)| f.new_accumulator(t))
            .collect()
    }

    /// Whether closed windows are dropped (and late rows with them): only
    /// with a watermark, and never in complete mode (Spark keeps all state).
    pub(crate) fn evicts(&self) -> bool {
        self.has_watermark && self.mode != OutputMode::Complete && self.window.is_some()
    }

    pub(crate) fn window_size(&self) -> i64 {
        self.window.as_ref().map_or(i64::MAX, |(_, _, s)| s.size_us)
    }

    /// The output row of one group: keys with the window's start and end at
    /// the window's position, then the aggregates.
    #[inline]
    pub(crate) fn output_row(&self, start: i64, key: &[Value], accs: &[Accumulator]) -> Row {
        let mut row = Row::new();
        self.fill_output_row(&mut row, start, key, accs);
        row
    }

    /// [`BoundAggregate::output_row`]'s values, in order, into an existing
    /// (empty) row or a batch being built.
    #[inline]
    pub(crate) fn fill_output_row(
        &self,
        row: &mut impl ValueSink,
        start: i64,
        key: &[Value],
        accs: &[Accumulator],
    ) {
        let window_at = self.window.as_ref().map(|(pos, _, _)| *pos);
        for (i, v) in key.iter().enumerate() {
            if window_at == Some(i) {
                push_window(row, start, self.window_size());
            }
            row.push_value(v.clone());
        }
        if window_at == Some(key.len()) {
            push_window(row, start, self.window_size());
        }
        for acc in accs {
            row.push_value(acc.result());
        }
    }
}

#[inline]
fn push_window(row: &mut impl ValueSink, start: i64, size: i64) {
    row.push_value(Value::Timestamp(start));
    row.push_value(Value::Timestamp(start.saturating_add(size)));
}

/// Counters of one aggregation partition, reported with each snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AggCounters {
    pub(crate) rows_updated: u64,
    pub(crate) rows_dropped_late: u64,
}

/// What a snapshot begun at a marker reports once it is copied out.
#[derive(Clone, Copy, Debug)]
struct SnapshotDue {
    epoch: u64,
    watermark_us: i64,
    rows_total: u64,
    counters: AggCounters,
}

/// A snapshot of at most this many changed groups is copied at the marker.
const SYNC_SNAPSHOT_GROUPS: usize = 256;
/// Groups copied into a pending snapshot after each event, at least.
const SNAPSHOT_GROUPS_PER_EVENT: usize = 2;
/// Groups copied into a pending snapshot after each event, at most: a full
/// snapshot of a state much larger than an epoch's events copies more than
/// two per event so as to be done in about half an epoch (at the next
/// marker what is left is copied at once, stalling that event).
const MAX_SNAPSHOT_GROUPS_PER_EVENT: usize = 256;
/// Changed groups copied into a pending snapshot when the task goes idle.
const SNAPSHOT_GROUPS_PER_TICK: usize = 16;

/// One partition of a keyed, windowed aggregation.
///
/// On an epoch marker it snapshots its state without stalling: the groups
/// changed since the previous marker, or every group when a full snapshot
/// is due (the state decides). The marker only starts a copy-on-write
/// snapshot (small ones are copied at once), which is then copied out a few
/// groups per event (enough to be done in about half an epoch) and per idle
/// moment, and reported to the coordinator when complete (at the latest at
/// the next marker or the end of the stream).
pub(crate) struct AggregateOp {
    pub(crate) spec: BoundAggregate,
    pub(crate) state: WindowedState,
    pub(crate) watermark: i64,
    pub(crate) op_id: usize,
    pub(crate) partition: usize,
    pub(crate) reporter: EpochReporter,
    pub(crate) next: Next,
    key: GroupKey,
    /// The output event of update and complete mode, reused: its row is
    /// rebuilt in place for each update.
    out: Event,
    counters: AggCounters,
    /// The snapshot being copied out, if any.
    snapshot_due: Option<SnapshotDue>,
    /// Events since the last marker.
    events: u64,
    /// Groups the pending snapshot copies after each event.
    per_event: usize,
    /// Emptied snapshot buffers coming back from the coordinator.
    pub(crate) spare_state_buffers:
        Option<crossbeam_channel::Receiver<crate::state::StateSnapshot>>,
}

impl AggregateOp {
    pub(crate) fn new(
        spec: BoundAggregate,
        op_id: usize,
        partition: usize,
        reporter: EpochReporter,
        next: Next,
    ) -> AggregateOp {
        AggregateOp {
            spec,
            state: WindowedState::new(),
            watermark: NO_TIME,
            op_id,
            partition,
            reporter,
            next,
            key: GroupKey::new(),
            out: Event::new(Row::new(), 0),
            counters: AggCounters::default(),
            snapshot_due: None,
            events: 0,
            per_event: SNAPSHOT_GROUPS_PER_EVENT,
            spare_state_buffers: None,
        }
    }

    /// Copies what is left of the pending snapshot and reports it.
    fn finish_snapshot(&mut self) {
        if let Some(due) = self.snapshot_due.take() {
            let delta = self.state.finish_snapshot();
            self.reporter.snapshot(
                due.epoch,
                self.op_id,
                self.partition,
                OperatorSnapshot::Aggregate {
                    delta,
                    watermark_us: due.watermark_us,
                    rows_total: due.rows_total,
                    rows_updated: due.counters.rows_updated,
                    rows_dropped_late: due.counters.rows_dropped_late,
                },
            );
        }
    }

    /// Copies up to `budget` more groups into the pending snapshot, and
    /// reports it once complete.
    #[inline]
    fn drain_snapshot(&mut self, budget: usize) {
        if self.snapshot_due.is_some() && self.state.drain_snapshot(budget) {
            self.finish_snapshot();
        }
    }

    /// Moves the watermark forward; in append mode, closed windows are emitted
    /// (with `ingest_ns` as their ingest time) and, with a watermark, evicted.
    fn advance(&mut self, wm: i64, ingest_ns: u64) -> Result<()> {
        self.watermark = wm;
        if !self.spec.evicts() {
            return Ok(());
        }
        let AggregateOp {
            spec, state, next, ..
        } = self;
        let emit = spec.mode == OutputMode::Append;
        let mut result = Ok(());
        state.evict_closed(wm, spec.window_size(), |start, key, accs| {
            if emit && result.is_ok() {
                let row = spec.output_row(start, key, accs);
                let mut ev = Event::new(row, ingest_ns);
                ev.watermark_us = wm;
                result = next.on_event(&mut ev);
            }
        });
        result
    }

    #[inline]
    fn update(&mut self, start: i64, ev: &Event) -> Result<()> {
        let AggregateOp {
            spec,
            state,
            next,
            key,
            out,
            counters,
            ..
        } = self;
        let (stored_key, accs) = state.group_mut(start, key, || spec.new_accumulators());
        for ((func, arg, _), acc) in spec.aggs.iter().zip(accs.iter_mut()) {
            match (func, arg) {
                (AggFunc::CountStar, _) | (_, None) => acc.update(&Value::Boolean(true)),
                (_, Some(e)) => acc.update(&e.eval(&ev.row)),
            }
        }
        counters.rows_updated += 1;
        if spec.mode != OutputMode::Append {
            out.row.clear();
            spec.fill_output_row(&mut out.row, start, stored_key, accs);
            out.event_time_us = ev.event_time_us;
            out.watermark_us = ev.watermark_us;
            out.ingest_ns = ev.ingest_ns;
            next.on_event(out)?;
        }
        Ok(())
    }
}

impl Operator for AggregateOp {
    #[inline]
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        let result = self.aggregate(ev);
        self.events += 1;
        self.drain_snapshot(self.per_event);
        result
    }

    fn on_watermark(&mut self, wm: i64) -> Result<()> {
        if wm > self.watermark {
            self.advance(wm, now_ns())?;
        }
        self.next.on_watermark(wm)
    }

    fn on_marker(&mut self, epoch: u64) -> Result<()> {
        self.finish_snapshot();
        // Every buffer back so far: the larger ones are kept, so the
        // snapshot begun now finds room made for it.
        if let Some(spare) = &self.spare_state_buffers {
            while let Ok(buffer) = spare.try_recv() {
                self.state.recycle(buffer);
            }
        }
        self.state.begin_snapshot();
        self.snapshot_due = Some(SnapshotDue {
            epoch,
            watermark_us: self.watermark,
            rows_total: self.state.num_groups() as u64,
            counters: std::mem::take(&mut self.counters),
        });
        let left = self.state.snapshot_remaining();
        if left <= SYNC_SNAPSHOT_GROUPS {
            self.finish_snapshot();
        }
        // Done in about half as many events as the last epoch had.
        let events = std::mem::take(&mut self.events).max(1);
        let wanted = (left as u64).saturating_mul(2).div_ceil(events);
        self.per_event = usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .clamp(SNAPSHOT_GROUPS_PER_EVENT, MAX_SNAPSHOT_GROUPS_PER_EVENT);
        self.next.on_marker(epoch)
    }

    fn on_tick(&mut self) -> Result<()> {
        self.drain_snapshot(SNAPSHOT_GROUPS_PER_TICK.max(self.per_event));
        self.next.on_tick()
    }

    fn on_end(&mut self) -> Result<()> {
        self.finish_snapshot();
        self.next.on_end()
    }
}

impl AggregateOp {
    /// Folds one event into its groups.
    #[inline]
    fn aggregate(&mut self, ev: &mut Event) -> Result<()> {
        if ev.watermark_us > self.watermark {
            self.advance(ev.watermark_us, ev.ingest_ns)?;
        }
        self.key.clear();
        for k in &self.spec.keys {
            self.key.push(k.eval(&ev.row));
        }
        let Some((_, time, shape)) = &self.spec.window else {
            return self.update(GLOBAL_WINDOW, ev);
        };
        // A row without event time belongs to no window (as in Spark).
        let Some(ts) = time.eval(&ev.row).as_i64() else {
            return Ok(());
        };
        let shape = *shape;
        let evicts = self.spec.evicts();
        for start in shape.assign(ts) {
            if evicts
                && self.watermark != NO_TIME
                && start.saturating_add(shape.size_us) <= self.watermark
            {
                self.counters.rows_dropped_late += 1;
                continue;
            }
            self.update(start, ev)?;
        }
        Ok(())
    }
}
