//! Filter, project, generate and flat-map: row-at-a-time operators that
//! pass time and control messages through untouched.

use std::sync::Arc;

use super::{Next, Operator};
use crate::error::Result;
use crate::expr::{BoundExpr, Predicate, Projection};
use crate::schema::{Event, Row, Value};

/// Keeps events whose predicate is true (null and false drop the event).
pub(crate) struct FilterOp {
    pub(crate) predicate: Predicate,
    pub(crate) next: Next,
}

impl Operator for FilterOp {
    #[inline]
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        if self.predicate.passes(&ev.row) {
            self.next.on_event(ev)
        } else {
            Ok(())
        }
    }
    forward_control!();
}

/// Computes a new row from expressions over the old one.
pub(crate) struct ProjectOp {
    pub(crate) exprs: Projection,
    pub(crate) next: Next,
    /// The output event, reused: the new row is built in place.
    out: Event,
}

impl ProjectOp {
    pub(crate) fn new(exprs: Vec<BoundExpr>, next: Next) -> ProjectOp {
        ProjectOp {
            exprs: Projection::new(&exprs),
            next,
            out: Event::new(Row::new(), 0),
        }
    }
}

impl Operator for ProjectOp {
    #[inline]
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        let out = &mut self.out;
        self.exprs.eval_into(&ev.row, &mut out.row);
        out.event_time_us = ev.event_time_us;
        out.watermark_us = ev.watermark_us;
        out.ingest_ns = ev.ingest_ns;
        self.next.on_event(out)
    }
    forward_control!();
}

/// A user function from one row to any number of rows.
pub type FlatMapFn = Arc<dyn Fn(&Row, &mut dyn FnMut(Row)) + Send + Sync>;

/// Applies a user's flat-map function; every output row keeps the input's times.
pub(crate) struct FlatMapOp {
    pub(crate) func: FlatMapFn,
    pub(crate) next: Next,
}

impl Operator for FlatMapOp {
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        let mut result = Ok(());
        let next = &mut self.next;
        (self.func)(&ev.row, &mut |row| {
            if result.is_ok() {
                result = next.on_event(&mut Event {
                    row,
                    event_time_us: ev.event_time_us,
                    watermark_us: ev.watermark_us,
                    ingest_ns: ev.ingest_ns,
                });
            }
        });
        result
    }
    forward_control!();
}

/// One event per element of an array (`explode`, `posexplode` and their
/// `_outer` forms): each output row is the input row, then the element's
/// 0-based position (when `position`), then the element; every output
/// event keeps the input's times, ingest time included.
pub(crate) struct GenerateOp {
    pub(crate) array: BoundExpr,
    pub(crate) position: bool,
    pub(crate) outer: bool,
    pub(crate) next: Next,
    /// The output event, reused.
    out: Event,
}

impl GenerateOp {
    pub(crate) fn new(array: BoundExpr, position: bool, outer: bool, next: Next) -> GenerateOp {
        GenerateOp {
            array,
            position,
            outer,
            next,
            out: Event::new(Row::new(), 0),
        }
    }

    #[inline]
    fn emit(&mut self, input: &Event, pos: Value, item: Value) -> Result<()> {
        let out = &mut self.out;
        out.row.clear();
        for v in input.row.iter() {
            out.row.push(v.clone());
        }
        if self.position {
            out.row.push(pos);
        }
        out.row.push(item);
        out.event_time_us = input.event_time_us;
        out.watermark_us = input.watermark_us;
        out.ingest_ns = input.ingest_ns;
        self.next.on_event(out)
    }
}

impl Operator for GenerateOp {
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        match self.array.eval(&ev.row) {
            Value::List(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    self.emit(ev, Value::Int64(i as i64), item.clone())?;
                }
                Ok(())
            }
            _ if self.outer => self.emit(ev, Value::Null, Value::Null),
            _ => Ok(()),
        }
    }
    forward_control!();
}
