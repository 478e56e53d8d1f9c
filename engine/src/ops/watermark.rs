//! The watermark operator: event time and the watermark, per event.

use super::{Next, Operator};
use crate::checkpoint::{EpochReporter, OperatorSnapshot};
use crate::error::Result;
use crate::schema::{Event, NO_TIME};

/// Stamps each event with its event time (the watermark column) and with the
/// watermark in force *before* it: the maximum event time of every earlier
/// event minus the delay. Stamping per event makes lateness a property of the
/// input order, the same however the stream is later partitioned.
pub(crate) struct WatermarkOp {
    pub(crate) column: usize,
    pub(crate) delay_us: i64,
    pub(crate) max_event_time: i64,
    pub(crate) forwarded: i64,
    pub(crate) op_id: usize,
    pub(crate) reporter: EpochReporter,
    pub(crate) next: Next,
}

impl WatermarkOp {
    #[inline]
    fn watermark(&self) -> i64 {
        if self.max_event_time == NO_TIME {
            NO_TIME
        } else {
            self.max_event_time.saturating_sub(self.delay_us)
        }
    }

    fn publish(&mut self) -> Result<()> {
        let wm = self.watermark();
        if wm > self.forwarded {
            self.forwarded = wm;
            self.next.on_watermark(wm)?;
        }
        Ok(())
    }
}

impl Operator for WatermarkOp {
    #[inline]
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        let ts = ev.row[self.column].as_i64().unwrap_or(NO_TIME);
        ev.event_time_us = ts;
        ev.watermark_us = self.watermark();
        if ts > self.max_event_time {
            self.max_event_time = ts;
        }
        self.next.on_event(ev)
    }

    fn on_watermark(&mut self, _wm: i64) -> Result<()> {
        // Upstream has no watermark of its own: this operator defines it.
        Ok(())
    }

    fn on_marker(&mut self, epoch: u64) -> Result<()> {
        self.publish()?;
        self.reporter.snapshot(
            epoch,
            self.op_id,
            0,
            OperatorSnapshot::Watermark {
                max_event_time_us: self.max_event_time,
                watermark_us: self.watermark(),
            },
        );
        self.next.on_marker(epoch)
    }

    fn on_tick(&mut self) -> Result<()> {
        self.publish()?;
        self.next.on_tick()
    }

    fn on_end(&mut self) -> Result<()> {
        self.publish()?;
        self.next.on_end()
    }
}
