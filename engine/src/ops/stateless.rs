//! Filter, project and flat-map: one-to-one operators that pass time and
//! control messages through untouched.

use std::sync::Arc;

use super::{Next, Operator};
use crate::error::Result;
use crate::expr::BoundExpr;
use crate::schema::{Event, Row};

macro_rules! forward_control {
    () => {
        #[inline]
        fn on_watermark(&mut self, wm: i64) -> Result<()> {
            self.next.on_watermark(wm)
        }
        #[inline]
        fn on_marker(&mut self, epoch: u64) -> Result<()> {
            self.next.on_marker(epoch)
        }
        #[inline]
        fn on_tick(&mut self) -> Result<()> {
            self.next.on_tick()
        }
        #[inline]
        fn on_end(&mut self) -> Result<()> {
            self.next.on_end()
        }
    };
}

/// Keeps events whose predicate is true (null and false drop the event).
pub(crate) struct FilterOp {
    pub(crate) predicate: BoundExpr,
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
    pub(crate) exprs: Vec<BoundExpr>,
    pub(crate) next: Next,
    /// The output event, reused: the new row is built in place.
    out: Event,
}

impl ProjectOp {
    pub(crate) fn new(exprs: Vec<BoundExpr>, next: Next) -> ProjectOp {
        ProjectOp {
            exprs,
            next,
            out: Event::new(Row::new(), 0),
        }
    }
}

impl Operator for ProjectOp {
    #[inline]
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        let out = &mut self.out;
        out.row.clear();
        for e in &self.exprs {
            out.row.push(e.eval(&ev.row));
        }
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
