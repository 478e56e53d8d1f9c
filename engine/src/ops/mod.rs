//! Row operators of continuous mode.
//!
//! Owns the [`Operator`] trait (push-based: each operator owns the operator
//! after it and calls it directly, which is how chained operators share a task
//! with no ring between them) and the operators themselves: filter, project,
//! generate (`explode`), flat-map, stream-static join, stream-stream join, watermark and windowed
//! aggregation. Operators must not spawn
//! threads, block, or allocate per event beyond what the user's own
//! expressions do. Events are lent down the chain (`&mut Event`), so a fused
//! chain moves no event by value. Anything slow (snapshot serialisation, file
//! I/O) is handed to the coordinator.

/// The control methods of an operator that only passes them on to
/// `self.next` (everything but `on_event`).
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

mod aggregate;
mod join;
mod stateless;
mod stream_join;
mod watermark;

#[cfg(test)]
mod tests;

pub(crate) use aggregate::{AggregateOp, BoundAggregate};
pub(crate) use join::JoinOp;
pub use stateless::FlatMapFn;
pub(crate) use stateless::{FilterOp, FlatMapOp, GenerateOp, ProjectOp};
pub(crate) use stream_join::StreamJoinOp;
pub(crate) use watermark::WatermarkOp;

use crate::error::Result;
use crate::schema::Event;

/// One stage of a task's operator chain.
pub(crate) trait Operator: Send {
    /// Processes one event. The event is lent, not given: an operator that
    /// forwards it unchanged passes the same reference on (no copy of the
    /// event), one that changes it may change it in place, and a stage that
    /// must keep it (a ring) takes its row out with `std::mem::take`. After
    /// the call the caller must not rely on the event's contents.
    fn on_event(&mut self, ev: &mut Event) -> Result<()>;
    /// The watermark advanced to `wm` (µs).
    fn on_watermark(&mut self, wm: i64) -> Result<()>;
    /// Epoch `epoch` ends here: snapshot state, then forward the marker.
    fn on_marker(&mut self, epoch: u64) -> Result<()>;
    /// The task found no input: a chance to publish progress (watermarks).
    fn on_tick(&mut self) -> Result<()>;
    /// No more input will come.
    fn on_end(&mut self) -> Result<()>;
}

/// The boxed next stage.
pub(crate) type Next = Box<dyn Operator>;
