//! The stream-static join of continuous mode: one hash probe per event.
//!
//! Owns `JoinOp`, which probes the static table's shared index with the
//! event's key values and emits one event per matching table row (the
//! stream's values, then the table's), each keeping the input's event time,
//! watermark and ingest time. The joined row is built in place in one reused
//! output event, and the key in one reused buffer, so an event allocates
//! nothing here. It must not build or change the index (the plan builds it
//! once, and every task shares it read-only; a refreshing table's thread
//! swaps in new versions, which the operator takes between two events).

use std::sync::Arc;

use super::{Next, Operator};
use crate::error::Result;
use crate::schema::{Event, Row, Value};
use crate::table::{BoundJoin, IndexView};

/// Joins each event with the static table's rows of the same key.
pub(crate) struct JoinOp {
    join: Arc<BoundJoin>,
    /// The index probed: a refreshing table's newest version.
    view: IndexView,
    /// How many columns the table has (the nulls of an unmatched outer row).
    table_width: usize,
    /// The event's key values, reused.
    key: Vec<Value>,
    /// The output event, reused: the joined row is built in place.
    out: Event,
    next: Next,
}

impl JoinOp {
    pub(crate) fn new(join: Arc<BoundJoin>, next: Next) -> JoinOp {
        let table_width = join.index.table().schema().fields().len();
        let key = Vec::with_capacity(join.stream_keys.len());
        JoinOp {
            view: join.view(),
            join,
            table_width,
            key,
            out: Event::new(Row::new(), 0),
            next,
        }
    }
}

impl Operator for JoinOp {
    #[inline]
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        let JoinOp {
            join,
            view,
            table_width,
            key,
            out,
            next,
        } = self;
        view.follow(join.live.as_deref());
        let index = &view.index;
        key.clear();
        for k in &join.stream_keys {
            key.push(k.eval(&ev.row));
        }
        out.event_time_us = ev.event_time_us;
        out.watermark_us = ev.watermark_us;
        out.ingest_ns = ev.ingest_ns;
        let mut matched = false;
        for row in index.probe_rows(key) {
            out.row.clear();
            for v in ev.row.iter().chain(row) {
                out.row.push(v.clone());
            }
            if join.condition.as_ref().is_none_or(|c| c.passes(&out.row)) {
                matched = true;
                next.on_event(out)?;
            }
        }
        if !matched && join.outer {
            out.row.clear();
            for v in ev.row.iter() {
                out.row.push(v.clone());
            }
            for _ in 0..*table_width {
                out.row.push(Value::Null);
            }
            next.on_event(out)?;
        }
        Ok(())
    }

    forward_control!();
}
