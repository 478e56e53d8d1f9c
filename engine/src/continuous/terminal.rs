//! The last stage of a task's chain: a ring to one task, a keyed exchange
//! into several, or the sink.

use std::hash::{Hash, Hasher};

use crossbeam_channel::Receiver;
use rustc_hash::FxHasher;

use super::ring::{Message, RingSender};
use crate::checkpoint::EpochReporter;
use crate::clock::now_ns;
use crate::error::Result;
use crate::expr::BoundExpr;
use crate::io::Sink;
use crate::metrics::{EpochLatency, IngestTimes};
use crate::ops::Operator;
use crate::schema::{Event, Value};

/// Hash partitioning shared by the exchange and state redistribution on
/// recovery: the same key values always pick the same partition.
pub(crate) fn partition_of<'a>(
    values: impl Iterator<Item = &'a Value>,
    partitions: usize,
) -> usize {
    let mut h = FxHasher::default();
    for v in values {
        v.hash(&mut h);
    }
    // Fx's low bits are weak: mix before reducing.
    let mixed = h.finish().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    (mixed % partitions as u64) as usize
}

/// Moves a lent event out (its row is taken, leaving an empty row behind)
/// to send it to another task.
#[inline]
fn take_event(ev: &mut Event) -> Event {
    Event {
        row: std::mem::take(&mut ev.row),
        event_time_us: ev.event_time_us,
        watermark_us: ev.watermark_us,
        ingest_ns: ev.ingest_ns,
    }
}

/// Sends everything to one downstream task.
pub(crate) struct RingOut {
    pub(crate) ring: RingSender,
}

impl Operator for RingOut {
    #[inline]
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        self.ring.send(Message::Data(take_event(ev)))
    }
    fn on_watermark(&mut self, wm: i64) -> Result<()> {
        self.ring.send(Message::Watermark(wm))
    }
    fn on_marker(&mut self, epoch: u64) -> Result<()> {
        self.ring.send(Message::Marker(epoch))
    }
    fn on_tick(&mut self) -> Result<()> {
        Ok(())
    }
    fn on_end(&mut self) -> Result<()> {
        self.ring.send(Message::End)
    }
}

/// Routes events by a hash of their grouping keys; broadcasts watermarks,
/// markers and the end of the stream to every partition.
pub(crate) struct ExchangeOut {
    pub(crate) keys: Vec<BoundExpr>,
    pub(crate) rings: Vec<RingSender>,
    scratch: Vec<Value>,
}

impl ExchangeOut {
    pub(crate) fn new(keys: Vec<BoundExpr>, rings: Vec<RingSender>) -> ExchangeOut {
        ExchangeOut {
            scratch: Vec::with_capacity(keys.len()),
            keys,
            rings,
        }
    }

    fn broadcast(&mut self, mut make: impl FnMut() -> Message) -> Result<()> {
        for r in &mut self.rings {
            r.send(make())?;
        }
        Ok(())
    }
}

impl Operator for ExchangeOut {
    #[inline]
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        self.scratch.clear();
        for k in &self.keys {
            self.scratch.push(k.eval(&ev.row));
        }
        let p = partition_of(self.scratch.iter(), self.rings.len());
        self.rings[p].send(Message::Data(take_event(ev)))
    }
    fn on_watermark(&mut self, wm: i64) -> Result<()> {
        self.broadcast(|| Message::Watermark(wm))
    }
    fn on_marker(&mut self, epoch: u64) -> Result<()> {
        self.broadcast(|| Message::Marker(epoch))
    }
    fn on_tick(&mut self) -> Result<()> {
        Ok(())
    }
    fn on_end(&mut self) -> Result<()> {
        self.broadcast(|| Message::End)
    }
}

/// Writes to the sink, records each event's latency (now − ingest time) into
/// a fixed-bound histogram and its ingest time (for the latency to
/// durability, computed at commit), and commits the sink on every epoch
/// marker.
pub(crate) struct SinkOut {
    pub(crate) sink: Box<dyn Sink>,
    hist: EpochLatency,
    ingest: IngestTimes,
    spare: Receiver<(EpochLatency, IngestTimes)>,
    reporter: EpochReporter,
    rows: u64,
}

impl SinkOut {
    pub(crate) fn new(
        sink: Box<dyn Sink>,
        spare: Receiver<(EpochLatency, IngestTimes)>,
        reporter: EpochReporter,
    ) -> SinkOut {
        SinkOut {
            sink,
            hist: EpochLatency::new(),
            ingest: IngestTimes::starting(now_ns()),
            spare,
            reporter,
            rows: 0,
        }
    }
}

impl Operator for SinkOut {
    #[inline]
    fn on_event(&mut self, ev: &mut Event) -> Result<()> {
        self.sink.write(&ev.row)?;
        let latency = now_ns().saturating_sub(ev.ingest_ns).max(1);
        self.hist.record(latency);
        self.ingest.record(ev.ingest_ns);
        self.rows += 1;
        Ok(())
    }
    fn on_watermark(&mut self, _wm: i64) -> Result<()> {
        Ok(())
    }
    fn on_marker(&mut self, epoch: u64) -> Result<()> {
        let state = self.sink.commit(epoch)?;
        // Hand the epoch's histograms over whole; take back ones the
        // coordinator has already emptied (allocating only when it has
        // none to return yet), so no counter is touched here.
        let now = now_ns();
        let (fresh, mut fresh_ingest) = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| (EpochLatency::new(), IngestTimes::starting(now)));
        fresh_ingest.rebase(now);
        let hist = std::mem::replace(&mut self.hist, fresh);
        let ingest = std::mem::replace(&mut self.ingest, fresh_ingest);
        self.reporter
            .sink_committed(epoch, state, std::mem::take(&mut self.rows), hist, ingest);
        Ok(())
    }
    fn on_tick(&mut self) -> Result<()> {
        self.sink.idle()
    }
    fn on_end(&mut self) -> Result<()> {
        self.sink.close()
    }
}
