//! The vectorised plan runner: one query's operators over Arrow batches.

use arrow::record_batch::RecordBatch;

use super::aggregate::VectorAggregate;
use super::exec::{run_ops, Flight, WatermarkTracker};
use crate::clock::now_ns;
use crate::error::{EngineError, Result};
use crate::io::OutputMode;
use crate::plan::{DataFrame, PhysOp, PhysicalPlan, QueryConfig};
use crate::schema::builder::BatchBuilder;
use crate::schema::{SchemaRef, NO_TIME};
use crate::table::StreamJoinState;

/// Runs a query's plan over Arrow record batches, keeping its state
/// (aggregation, watermark) from batch to batch. This is micro-batch mode's
/// engine without the offset log, the commit log or a sink: the driver uses
/// it, and so can a program that already has its data in batches.
pub struct BatchRunner {
    pub(crate) physical: PhysicalPlan,
    pub(crate) tracker: WatermarkTracker,
    pub(crate) aggregate: Option<VectorAggregate>,
    /// The stream-stream join's state, if the plan joins two streams.
    pub(crate) join: Option<StreamJoinState>,
    delay_us: Option<i64>,
}

impl BatchRunner {
    /// A runner for the plan `df` describes (its source is not used: batches
    /// are handed in), producing output as `mode` says.
    pub fn new(df: &DataFrame, mode: OutputMode) -> Result<BatchRunner> {
        if let Some(e) = df.error() {
            return Err(e.clone());
        }
        let config = QueryConfig {
            output_mode: mode,
            ..QueryConfig::default()
        };
        Ok(Self::from_physical(PhysicalPlan::new(
            df.logical_plan(),
            &config,
            false,
        )?))
    }

    pub(crate) fn from_physical(physical: PhysicalPlan) -> BatchRunner {
        let aggregate = physical
            .aggregate
            .as_ref()
            .map(|(a, _)| VectorAggregate::new(a.spec.clone()));
        let delay_us = physical.pre.iter().find_map(|(op, _)| match op {
            PhysOp::Watermark { delay_us, .. } => Some(*delay_us),
            _ => None,
        });
        let join = physical.pre.iter().find_map(|(op, _)| match op {
            PhysOp::StreamJoin { join, .. } => Some(StreamJoinState::new(join.clone())),
            _ => None,
        });
        BatchRunner {
            join,
            physical,
            tracker: WatermarkTracker {
                max_event_time_us: NO_TIME,
            },
            aggregate,
            delay_us,
        }
    }

    /// The schema of the output batches.
    pub fn output_schema(&self) -> SchemaRef {
        self.physical.output_schema.clone()
    }

    /// Runs one input batch (in the source's schema) through the plan and
    /// returns the output it produces: the rows themselves for a stateless
    /// query; for an aggregation, the changed groups (update), the whole
    /// table (complete) or the windows the watermark closed (append).
    pub fn run(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let flight = Flight {
            batch,
            ingest_ns: vec![0; n],
            watermark_us: None,
        };
        let (out, _) = self.run_flight(flight)?;
        // Name the columns as the plan does.
        RecordBatch::try_new(self.output_schema(), out.batch.columns().to_vec())
            .map_err(|e| EngineError::Eval(e.to_string()))
    }

    /// Runs a batch with its per-row ingest times; returns the output and the
    /// ingest times whose latency the batch completes (every input row that
    /// reached the sink or an aggregate).
    pub(crate) fn run_flight(&mut self, flight: Flight) -> Result<(Flight, Vec<u64>)> {
        let flight = run_ops(
            &self.physical.pre,
            flight,
            &mut self.tracker,
            &mut self.join,
        )?;
        let (output, latency_ingest) = match self.aggregate.as_mut() {
            None => {
                let ingest = flight.ingest_ns.clone();
                (flight, ingest)
            }
            Some(agg) => {
                let (agg_phys, _) = self
                    .physical
                    .aggregate
                    .as_ref()
                    .expect("an aggregation was planned");
                let mut built = BatchBuilder::new(&agg_phys.output_schema)?;
                agg.process(&flight, &mut built)?;
                if let Some(delay) = self.delay_us {
                    agg.advance(self.tracker.watermark(delay), &mut built);
                }
                let rows = built.num_rows();
                let out = Flight {
                    batch: built.finish()?,
                    ingest_ns: vec![now_ns(); rows],
                    watermark_us: None,
                };
                (out, flight.ingest_ns)
            }
        };
        let output = run_ops(&self.physical.post, output, &mut self.tracker, &mut None)?;
        Ok((output, latency_ingest))
    }
}
