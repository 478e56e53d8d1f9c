//! The rings between tasks.
//!
//! Owns [`Message`] (what travels between tasks: data, watermarks, epoch
//! markers, end of stream) and the two ends of a bounded `rtrb` SPSC ring
//! wrapped with the consumer's [`TaskWaker`]. A full ring is backpressure: the
//! sender waits, it never grows the ring. The sender gives up when the query
//! is stopping, so a dead consumer never wedges its producer. Both ends keep
//! the ring's [`RingGauge`] off the per-event path: the consumer samples the
//! fill at each epoch marker, the sender counts the sends that found the
//! ring full.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{EngineError, Result};
use crate::metrics::RingGauge;
use crate::schema::Event;
use crate::wake::{Backoff, TaskWaker, WaitStrategy};

/// What travels on a ring, in order.
// The event travels inline: boxing it would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Message {
    /// One event.
    Data(Event),
    /// The sender's watermark advanced to this value (µs).
    Watermark(i64),
    /// Everything before this belongs to epochs up to and including this one.
    Marker(u64),
    /// The sender will send nothing more.
    End,
}

/// The producing end of a ring.
pub(crate) struct RingSender {
    ring: rtrb::Producer<Message>,
    waker: Arc<TaskWaker>,
    notify: bool,
    stop: Arc<AtomicBool>,
    gauge: Arc<RingGauge>,
}

/// The consuming end of a ring.
pub(crate) struct RingReceiver {
    pub(crate) ring: rtrb::Consumer<Message>,
    gauge: Arc<RingGauge>,
}

/// A ring of `capacity` messages into the task woken by `waker`. `strategy`
/// is the consumer's wait strategy: only a consumer that may park needs the
/// producer's fence-and-check after each push. `gauge` is the ring's fill
/// gauge (its capacity should be `capacity`).
pub(crate) fn ring(
    capacity: usize,
    waker: Arc<TaskWaker>,
    strategy: WaitStrategy,
    stop: Arc<AtomicBool>,
    gauge: Arc<RingGauge>,
) -> (RingSender, RingReceiver) {
    let (tx, rx) = rtrb::RingBuffer::new(capacity.max(2));
    (
        RingSender {
            ring: tx,
            waker,
            notify: matches!(strategy, WaitStrategy::Park | WaitStrategy::Adaptive),
            stop,
            gauge: gauge.clone(),
        },
        RingReceiver { ring: rx, gauge },
    )
}

impl RingSender {
    /// Sends a message, waiting while the ring is full.
    #[inline]
    pub(crate) fn send(&mut self, msg: Message) -> Result<()> {
        let mut msg = msg;
        let mut backoff = Backoff::default();
        let mut waited = false;
        loop {
            match self.ring.push(msg) {
                Ok(()) => {
                    if self.notify {
                        self.waker.wake_if_sleeping();
                    }
                    return Ok(());
                }
                Err(rtrb::PushError::Full(back)) => {
                    msg = back;
                    if !waited {
                        waited = true;
                        self.gauge.full();
                    }
                    if self.ring.is_abandoned() || self.stop.load(Ordering::Relaxed) {
                        return Err(EngineError::Stopped);
                    }
                    // Make sure a parked consumer knows there is work.
                    self.waker.wake_if_sleeping();
                    backoff.snooze();
                }
            }
        }
    }
}

impl RingReceiver {
    /// Takes the next message, if any.
    #[inline]
    pub(crate) fn try_recv(&mut self) -> Option<Message> {
        self.ring.pop().ok()
    }

    /// Records how many messages wait now (called at each epoch marker).
    #[inline]
    pub(crate) fn sample_fill(&self) {
        self.gauge.sample(self.ring.slots());
    }

    /// Whether a message is waiting.
    #[inline]
    pub(crate) fn has_data(&self) -> bool {
        !self.ring.is_empty()
    }
}
