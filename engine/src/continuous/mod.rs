//! Continuous mode: long-running tasks linked by lock-free rings.
//!
//! Owns the runtime of continuous mode: the rings and their messages
//! (`ring`), the terminal stages of
//! a chain (ring out, keyed exchange, sink), the task loops, the epoch
//! coordinator (markers, snapshots, manifests, progress) and start-up with
//! recovery. Tasks wait and are woken through [`crate::wake`] and report
//! their epoch parts through `checkpoint::EpochReporter`. It must
//! not evaluate expressions itself (that is `ops` and
//! `expr`) nor know any file format but the checkpoint's.

mod coordinator;
mod handoff;
mod push;
mod ring;
mod runtime;
mod task;
mod terminal;

pub use crate::wake::{TaskWaker, WaitStrategy};
pub use push::{PushSource, Pusher};
pub use ring::Message;
pub(crate) use runtime::start;
