//! Micro-batch mode: offset log, commit log, Arrow batches, exactly-once.
//!
//! Owns the driver loop (per batch: ask the source for its latest offset,
//! append its offset-log entry durably, read exactly that range, run the
//! plan column-wise on Arrow record batches, hand the output to the sink
//! under batch id `n`, then its manifest on the commit writer's thread while the
//! next batch runs), the vectorised operators (the stream-static join among
//! them: a hash probe per row, then Arrow `take` on both sides) and the
//! vectorised aggregation into the shared state store. It runs the same
//! physical plan, window assignment, watermark and output-mode rules as
//! continuous mode; it must not keep state anywhere but the state store, and
//! must not read a range it has not logged first.

mod aggregate;
mod commit;
mod driver;
mod exec;
mod flight;
mod join;
mod runner;
mod stream_join;

pub(crate) use driver::start;
pub use runner::BatchRunner;
