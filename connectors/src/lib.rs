//! Sources and sinks for runnel.
//!
//! This crate owns every connector that touches the outside world (files,
//! sockets, the on-disk partitioned log, PostgreSQL). It implements the engine's
//! [`runnel::Source`] and [`runnel::Sink`] traits and must not reach into the
//! engine's internals: everything it needs is the engine's public API.
//!
//! The Kafka connectors ([`kafka`]) are behind the cargo feature `kafka` (on
//! by default): without it the crate builds without rdkafka and librdkafka.
#![deny(missing_docs)]

pub mod console;
pub mod file_sink;
pub mod files;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod log;
pub mod null;
mod options;
mod partitions;
pub mod postgres;
pub mod rate;
mod record;
pub mod socket;

pub use console::ConsoleSink;
pub use file_sink::{FileFormat, FileSink};
pub use files::{
    read_parquet_table, read_table, BadRecordPolicy, CleanSource, FileSource, FileSourceOptions,
    FileTableReloader,
};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaSink, KafkaSinkOptions, KafkaSource, KafkaSourceOptions};
pub use log::{
    read_log_table, LogSink, LogSource, LogSourceOptions, LogTableReloader, StartingOffsets,
};
pub use null::{NullSink, RowCounter};
pub use postgres::{Delivery, PostgresSink, PostgresSinkOptions};
pub use rate::RateSource;
pub use socket::SocketSource;
