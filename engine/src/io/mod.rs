//! The contracts between the engine and the outside world.
//!
//! Owns the [`Source`] and [`Sink`] traits that connectors implement, the
//! contexts handed to them, and the in-memory source and sink that let the
//! engine run (and be tested, and be embedded) without any connector. Nothing
//! here opens files or sockets.

mod joined;
mod memory;
mod offset;
mod sink;
mod source;
mod subscribe;

pub use joined::{JoinedSources, SIDE_COLUMN};
pub use memory::{MemoryProducer, MemorySink, MemorySource, MemoryTable, PushError};
pub use offset::{deserialize_stored as deserialize_stored_offset, FileOffset, OffsetError};
pub use sink::{upsert_by_key, DurableEpochs, DurableWait, OutputMode, Sink, SinkContext};
pub use source::{
    PollStatus, Replayable, Source, SourceBatch, SourceContext, SourceOffset, SourceOutput,
};
pub use subscribe::{CallbackSink, ChannelSink, Subscriber, Subscription, WhenFull};
