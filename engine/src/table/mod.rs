//! Static tables: the read-only side of a stream-static join.
//!
//! Owns [`StaticTable`] (a named table loaded once before a query starts,
//! held as rows for continuous mode and as one Arrow batch for micro-batch
//! mode, bounded by a row and a byte limit, [`TableLimits`]) and the join's hash index on the table's
//! key values (`JoinIndex`), built once per query start and shared
//! read-only (`Arc`) by every task. It also owns the join's bound form
//! (`BoundJoin`: the index, the stream's key expressions, the extra
//! condition) that both runtimes execute, and Spark's rule for the common
//! type of two join keys; and a refreshing table's reloads (`refresh`: a
//! thread of its own asks the connector's [`TableReloader`] whether the data
//! changed, and swaps a new index in whole). It must not do I/O itself
//! (connectors read files and hand over batches or reload through
//! [`TableReloader`]), and must not know about operators, tasks or batches
//! in flight. The stream-stream join's state lives here too
//! (`stream_join`: both sides' rows by key, `join_rows`, their watermarks
//! and eviction), executed by both runtimes alike.

mod index;
mod join_rows;
mod refresh;
mod static_table;
mod stream_join;

pub(crate) use index::{key_type, BoundJoin, JoinIndex};
pub(crate) use refresh::{start as start_refresh, IndexView, LiveIndex};
pub use refresh::{TableRefresh, TableReloader};
pub use static_table::{StaticTable, TableLimits, DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS};
pub(crate) use stream_join::{BoundStreamJoin, JoinSnapshot, SideOp, StreamJoinState};
