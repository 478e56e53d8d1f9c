//! runnel: a stream processing engine built for latency.
//!
//! One query, written once with the DataFrame-style builder, runs in
//! **continuous** mode: long-running operator tasks linked by lock-free SPSC
//! rings, each event processed as it arrives, epoch-marker checkpoints,
//! at-least-once recovery.
//!
//! ```no_run
//! use runnel::{col, lit, schema, window, count_star, DataFrame, DataType, MemorySink,
//!              MemorySource, OutputMode, row, timestamp_type, Value};
//!
//! let (source, mut producer) = MemorySource::new(schema(&[
//!     ("user", DataType::Utf8),
//!     ("ts", timestamp_type()),
//! ]));
//! let (sink, table) = MemorySink::new("clicks_per_minute");
//! let query = DataFrame::from_source("clicks", source)
//!     .with_watermark("ts", "10 seconds")
//!     .group_by([window(col("ts"), "1 minute"), col("user")])
//!     .agg([count_star().alias("clicks")])
//!     .write_stream(sink)
//!     .output_mode(OutputMode::Update)
//!     .start()
//!     .unwrap();
//! producer.push(row!["ada", Value::Timestamp(1_000_000)]).unwrap();
//! drop(producer); // end of stream
//! query.await_termination().unwrap();
//! println!("{:?}", table.rows());
//! ```
//!
//! Modules, from the bottom layer up (a module imports only lower layers;
//! ARCHITECTURE.md lists them): [`error`], [`clock`], [`time`], [`metrics`]
//! (latency and progress); [`wake`] (waiting and wake-ups),
//! [`window`](mod@window) (window shapes); [`schema`](mod@schema) (values,
//! rows, events, casts, Arrow conversion); [`query`] (the running query's
//! handle), [`expr`] (expressions), [`state`] (aggregation state); [`io`]
//! (source and sink traits, in-memory source and sinks); [`checkpoint`]
//! (durable epochs); the row operators; [`plan`] (builder, plans, task graph);
//! [`continuous`] and [`microbatch`] (the runtimes), [`sql`]; then the start
//! of a query, which picks the runtime; and at the top, with the cargo
//! feature `ui`, the live view (`ui`: a web page, a JSON API and Prometheus
//! metrics of running queries, `StreamingQuery::serve_ui`).
#![deny(missing_docs)]

pub mod checkpoint;
pub mod clock;
pub mod continuous;
pub mod error;
pub mod expr;
pub mod io;
mod launch;
pub mod metrics;
pub mod microbatch;
mod ops;
pub mod pace;
pub mod plan;
pub mod query;
pub mod schema;
pub mod sql;
pub mod state;
mod suggest;
pub mod table;
pub mod time;
#[cfg(feature = "ui")]
pub mod ui;
pub mod wake;
pub mod window;

pub use continuous::{PushSource, Pusher, WaitStrategy};
pub use error::{EngineError, Result};
pub use expr::{
    call, case_when, coalesce, col, concat, date_format, explode, explode_outer, lit, lower, not,
    posexplode, posexplode_outer, round, sliding_window, split, upper, window, window_with_start,
    Expr,
};
pub use io::{
    CallbackSink, ChannelSink, DurableEpochs, DurableWait, FileOffset, MemoryProducer, MemorySink,
    MemorySource, MemoryTable, OffsetError, OutputMode, PollStatus, Replayable, Sink, SinkContext,
    Source, SourceBatch, SourceContext, SourceOffset, SourceOutput, Subscriber, Subscription,
    WhenFull,
};
pub use metrics::{LatencySummary, QueryTotals, RingFill, StreamingQueryProgress};
pub use ops::FlatMapFn;
pub use pace::Pacing;
pub use plan::{
    approx_count_distinct, approx_count_distinct_rsd, avg, collect_list, count, count_star, first,
    first_ignore_nulls, last, last_ignore_nulls, max, min, stddev, stddev_pop, stddev_samp, sum,
    var_pop, var_samp, variance, AggExpr, DataFrame, DataStreamWriter, GroupedData, JoinType,
    QueryConfig, Trigger,
};
pub use query::{QueryMode, StreamingQuery};
pub use schema::{schema, timestamp_type, DataType, Event, Field, Row, Schema, SchemaRef, Value};
pub use table::StaticTable;
pub use time::Zone;
