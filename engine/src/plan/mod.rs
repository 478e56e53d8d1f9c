//! Query plans: the builder users write, the logical plan it records, and the
//! physical plan (operator chaining into tasks) that continuous mode runs.
//!
//! Owns the DataFrame-style API ([`DataFrame`], [`GroupedData`],
//! [`DataStreamWriter`]), validation with Spark's rules (output modes,
//! watermarks), window shapes, and the task graph shown by `explain`. It must
//! not start threads or touch I/O; `start` hands a checked plan to the runtime.

mod builder;
mod logical;
mod physical;
mod window;

pub use builder::{
    avg, count, count_star, max, min, sum, AggExpr, DataFrame, DataStreamWriter, GroupedData,
    QueryConfig, Trigger,
};
pub(crate) use logical::LogicalOp;
pub use logical::LogicalPlan;
pub(crate) use physical::{PhysOp, PhysicalPlan};
pub use window::{WindowShape, WindowStarts};
