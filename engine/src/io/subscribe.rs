//! Result subscriptions: the sink hands each output row to the application
//! as it is produced, through a callback or a bounded channel.
//!
//! Owns [`Subscriber`] (what the application implements, or a closure),
//! [`CallbackSink`] and [`ChannelSink`] with its receiving end
//! ([`Subscription`]). In append mode each row is a new result row; in update
//! mode each row is the new value of its group (a delta). Rows are handed
//! over as they reach the sink, before their epoch is durable (continuous
//! mode is at-least-once: after a crash a subscriber may see a row again);
//! [`Subscriber::on_commit`] says when an epoch or batch became durable. The
//! query's latency histogram records each row's latency after the hand-off
//! returns, so a slow subscriber shows up as latency. It must not buffer
//! rows itself or allocate per row beyond the row's own clone.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::{Sink, SinkContext};
use crate::error::{EngineError, Result};
use crate::schema::Row;

/// What receives a query's output rows.
pub trait Subscriber: Send + 'static {
    /// One output row (in update mode, the new value of its group).
    fn on_row(&mut self, row: &Row);

    /// Every row handed over so far belongs to durable epochs (or batches)
    /// up to and including `epoch`.
    fn on_commit(&mut self, _epoch: u64) {}
}

impl<F: FnMut(&Row) + Send + 'static> Subscriber for F {
    #[inline]
    fn on_row(&mut self, row: &Row) {
        self(row)
    }
}

/// A sink that calls a [`Subscriber`] for every output row, on the thread
/// that produces it (with a push source: the pushing thread).
pub struct CallbackSink<S: Subscriber> {
    subscriber: S,
}

impl<S: Subscriber> CallbackSink<S> {
    /// A sink calling `subscriber`.
    pub fn new(subscriber: S) -> CallbackSink<S> {
        CallbackSink { subscriber }
    }
}

impl<S: Subscriber> Sink for CallbackSink<S> {
    fn describe(&self) -> String {
        "CallbackSink".to_string()
    }

    fn open(&mut self, _ctx: &SinkContext, _recovered: Option<&serde_json::Value>) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn write(&mut self, row: &Row) -> Result<()> {
        self.subscriber.on_row(row);
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<serde_json::Value> {
        self.subscriber.on_commit(epoch);
        Ok(serde_json::Value::Null)
    }
}

/// What a [`ChannelSink`] does when its channel is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait for the reader (backpressure: the query slows down, and the
    /// wait shows up as latency). The default.
    #[default]
    Block,
    /// Fail the query with an error naming the channel's capacity.
    Fail,
}

/// A sink that sends every output row into a bounded channel read through a
/// [`Subscription`].
pub struct ChannelSink {
    tx: Sender<Row>,
    capacity: usize,
    when_full: WhenFull,
}

/// The reading end of a [`ChannelSink`]: output rows in order. The stream
/// ends (`recv` answers `None`) when the query has ended and every row was
/// read.
pub struct Subscription {
    rx: Receiver<Row>,
}

impl ChannelSink {
    /// A sink and its subscription, holding up to `capacity` unread rows.
    pub fn new(capacity: usize) -> (ChannelSink, Subscription) {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        (
            ChannelSink {
                tx,
                capacity: capacity.max(1),
                when_full: WhenFull::Block,
            },
            Subscription { rx },
        )
    }

    /// What to do when the reader falls `capacity` rows behind.
    pub fn when_full(mut self, when_full: WhenFull) -> ChannelSink {
        self.when_full = when_full;
        self
    }
}

impl Subscription {
    /// The next row, waiting for it; `None` once the query has ended and
    /// every row was read.
    pub fn recv(&self) -> Option<Row> {
        self.rx.recv().ok()
    }

    /// The next row if one is waiting.
    pub fn try_recv(&self) -> Option<Row> {
        self.rx.try_recv().ok()
    }

    /// The next row, waiting at most `timeout`: `Ok(None)` when the query
    /// has ended, `Err(())` on time-out.
    #[allow(clippy::result_unit_err)]
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Result<Option<Row>, ()> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => Ok(Some(r)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Err(()),
        }
    }

    /// The rows waiting now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no row is waiting now.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl Iterator for Subscription {
    type Item = Row;
    fn next(&mut self) -> Option<Row> {
        self.recv()
    }
}

impl Sink for ChannelSink {
    fn describe(&self) -> String {
        format!("ChannelSink[{}]", self.capacity)
    }

    fn open(&mut self, _ctx: &SinkContext, _recovered: Option<&serde_json::Value>) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn write(&mut self, row: &Row) -> Result<()> {
        match self.tx.try_send(row.clone()) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(row)) => match self.when_full {
                WhenFull::Block => self.tx.send(row).map_err(|_| {
                    EngineError::Sink("the subscription was dropped while the query ran".into())
                }),
                WhenFull::Fail => Err(EngineError::Sink(format!(
                    "the subscription's reader is {} rows behind (its capacity)",
                    self.capacity
                ))),
            },
            Err(TrySendError::Disconnected(_)) => Err(EngineError::Sink(
                "the subscription was dropped while the query ran".into(),
            )),
        }
    }

    fn commit(&mut self, _epoch: u64) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }
}
