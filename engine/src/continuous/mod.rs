//! Continuous mode: long-running tasks linked by lock-free rings.
//!
//! Owns the runtime of continuous mode: wait strategies and wake-ups
//! ([`wait`]), the rings and their messages ([`ring`]), the terminal stages of
//! a chain (ring out, keyed exchange, sink), the task loops, the epoch
//! coordinator (markers, snapshots, manifests, progress) and start-up with
//! recovery. It must not evaluate expressions itself (that is `ops` and
//! `expr`) nor know any file format but the checkpoint's.

mod coordinator;
mod handoff;
mod push;
mod ring;
mod runtime;
mod task;
mod terminal;
mod wait;

#[cfg(test)]
pub(crate) use coordinator::CoordMsg;
pub(crate) use coordinator::{EpochReporter, OperatorSnapshot};
pub use push::{PushSource, Pusher};
pub use ring::Message;
pub(crate) use runtime::start;
pub use wait::{TaskWaker, WaitStrategy};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Flags and counters shared by every task of one running query.
#[derive(Debug)]
pub(crate) struct Control {
    /// A graceful stop was requested: sources end the stream after one last epoch.
    pub(crate) stop: AtomicBool,
    /// The query failed: every task leaves as soon as it can.
    pub(crate) abort: Arc<AtomicBool>,
    /// The newest epoch the coordinator asked sources to mark.
    pub(crate) requested_epoch: AtomicU64,
    /// The newest durable epoch.
    pub(crate) committed_epoch: AtomicU64,
    /// Every task's waker.
    pub(crate) wakers: Vec<Arc<TaskWaker>>,
}

impl Control {
    pub(crate) fn wake_all(&self) {
        for w in &self.wakers {
            w.wake();
        }
    }

    pub(crate) fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }
}
