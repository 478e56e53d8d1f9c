//! Keyed aggregation state and its snapshots.
//!
//! Owns the accumulators of the aggregate functions ([`Accumulator`]; the
//! distinct-count sketch in [`distinct`]), the
//! state of one windowed aggregation partition ([`WindowedState`]: windows in
//! time order, each its groups' keys and accumulators in columns with a hash
//! table of their positions), the
//! snapshot form written to checkpoints and when a snapshot should be full
//! ([`FullEvery`]). Both execution modes share it. It
//! must not know about rings, tasks or files.

mod accumulator;
mod backing;
mod columns;
pub mod distinct;
mod groups;
mod policy;
mod windowed;

pub use accumulator::{Accumulator, AggFunc, Moments, Statistic};
pub use columns::SnapshotColumns;
pub use distinct::DistinctSketch;
pub use groups::{Accumulators, GroupKey, Shape, ShapeMismatch, WindowGroups};
pub use policy::FullEvery;
pub use windowed::{SnapshotGroups, StateSnapshot, WindowedState, GLOBAL_WINDOW};
