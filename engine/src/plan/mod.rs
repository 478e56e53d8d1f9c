//! Query plans: the builder users write, the logical plan it records, and the
//! physical plan (operator chaining into tasks) that continuous mode runs.
//!
//! Owns the DataFrame-style API ([`DataFrame`], [`GroupedData`],
//! [`DataStreamWriter`]), validation with Spark's rules (output modes,
//! watermarks) and the task graph shown by `explain`. It must not start
//! threads, start a runtime or touch I/O: `DataStreamWriter::start` lives in
//! the `launch` module above both runtimes.

mod builder;
mod join;
mod logical;
mod physical;
mod stream_join;

pub use crate::window::{WindowShape, WindowStarts};
pub(crate) use builder::agg;
pub use builder::{
    approx_count_distinct, approx_count_distinct_rsd, avg, collect_list, count, count_star, first,
    first_ignore_nulls, last, last_ignore_nulls, max, min, stddev, stddev_pop, stddev_samp, sum,
    var_pop, var_samp, variance, AggExpr, DataFrame, DataStreamWriter, GroupedData, QueryConfig,
    Trigger,
};
pub use logical::JoinType;
pub(crate) use logical::LogicalOp;
pub use logical::LogicalPlan;
pub(crate) use physical::{PhysOp, PhysicalPlan};
