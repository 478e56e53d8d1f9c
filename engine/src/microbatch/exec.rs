//! Stateless operators over Arrow batches.
//!
//! A batch in flight carries, beside its columns, each row's ingest time
//! (for latency) and, after a watermark operator, the watermark in force
//! before each row: the same per-row watermark continuous mode stamps on its
//! events, so lateness is decided identically in both modes.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::compute::{filter, take};
use arrow::datatypes::TimestampMicrosecondType;

pub(crate) use super::flight::{batch_of, Flight};
use crate::error::{EngineError, Result};
use crate::plan::PhysOp;
use crate::schema::arrow::{batch_to_rows, rows_to_batch};
use crate::schema::{Row, NO_TIME};
use crate::table::StreamJoinState;

fn arrow_err(e: arrow::error::ArrowError) -> EngineError {
    EngineError::Eval(e.to_string())
}

fn keep<T: Copy>(values: &[T], mask: &BooleanArray) -> Vec<T> {
    values
        .iter()
        .enumerate()
        .filter(|(i, _)| mask.is_valid(*i) && mask.value(*i))
        .map(|(_, v)| *v)
        .collect()
}

/// `explode` over a batch: each row repeated once per element of its
/// array (Arrow's `take` on every column), then the positions, then the
/// elements; with `outer`, a null or empty array keeps its row once with
/// nulls. Rows keep their ingest times and watermarks.
fn generate(flight: Flight, arrays: ArrayRef, position: bool, outer: bool) -> Result<Flight> {
    let n = flight.batch.num_rows();
    let mut rows: Vec<u32> = Vec::with_capacity(n);
    let mut elements: Vec<Option<u32>> = Vec::with_capacity(n);
    let mut positions: Vec<Option<i64>> = Vec::new();
    let index = |i: usize| {
        u32::try_from(i)
            .map_err(|_| EngineError::Eval("a batch's arrays hold more than 2^32 elements".into()))
    };
    let lists = arrays.as_list_opt::<i32>();
    for i in 0..n {
        let range = match lists {
            Some(l) if l.is_valid(i) => {
                let o = l.value_offsets();
                o[i] as usize..o[i + 1] as usize
            }
            _ => 0..0,
        };
        if range.is_empty() {
            if outer {
                rows.push(index(i)?);
                elements.push(None);
                positions.push(None);
            }
            continue;
        }
        let start = range.start;
        for j in range {
            rows.push(index(i)?);
            elements.push(Some(index(j)?));
            if position {
                positions.push(Some((j - start) as i64));
            }
        }
    }
    let take_rows = arrow::array::UInt32Array::from(rows);
    let mut columns = flight
        .batch
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), &take_rows, None).map_err(arrow_err))
        .collect::<Result<Vec<_>>>()?;
    if position {
        columns.push(Arc::new(arrow::array::Int64Array::from(positions)));
    }
    let element_indices = arrow::array::UInt32Array::from(elements);
    columns.push(match lists {
        Some(l) => take(l.values().as_ref(), &element_indices, None).map_err(arrow_err)?,
        None => arrow::array::new_null_array(&arrow::datatypes::DataType::Null, take_rows.len()),
    });
    let picked = |values: &[u64]| -> Vec<u64> {
        take_rows
            .values()
            .iter()
            .map(|&i| values[i as usize])
            .collect()
    };
    let ingest_ns = picked(&flight.ingest_ns);
    let watermark_us = flight
        .watermark_us
        .as_ref()
        .map(|w| take_rows.values().iter().map(|&i| w[i as usize]).collect());
    Ok(Flight {
        batch: batch_of(columns, take_rows.len())?,
        ingest_ns,
        watermark_us,
    })
}

/// The per-row watermark operator's carried state.
#[derive(Debug)]
pub(crate) struct WatermarkTracker {
    pub(crate) max_event_time_us: i64,
}

impl WatermarkTracker {
    pub(crate) fn watermark(&self, delay_us: i64) -> i64 {
        if self.max_event_time_us == NO_TIME {
            NO_TIME
        } else {
            self.max_event_time_us.saturating_sub(delay_us)
        }
    }
}

/// Runs `ops` over a flight. `tracker` is the watermark operator's state (the
/// plan has at most one), `join` the stream-stream join's.
pub(crate) fn run_ops(
    ops: &[(PhysOp, String)],
    mut flight: Flight,
    tracker: &mut WatermarkTracker,
    join: &mut Option<StreamJoinState>,
) -> Result<Flight> {
    for (op, _) in ops {
        let n = flight.batch.num_rows();
        flight = match op {
            PhysOp::Filter(predicate) => {
                let mask = predicate.eval_array(&flight.batch)?;
                let mask = mask
                    .as_boolean_opt()
                    .cloned()
                    .unwrap_or_else(|| BooleanArray::new_null(n));
                let columns = flight
                    .batch
                    .columns()
                    .iter()
                    .map(|c| filter(c.as_ref(), &mask).map_err(arrow_err))
                    .collect::<Result<Vec<_>>>()?;
                let ingest_ns = keep(&flight.ingest_ns, &mask);
                let rows = ingest_ns.len();
                Flight {
                    batch: batch_of(columns, rows)?,
                    watermark_us: flight.watermark_us.as_ref().map(|w| keep(w, &mask)),
                    ingest_ns,
                }
            }
            PhysOp::Project(exprs) => {
                let columns = exprs
                    .iter()
                    .map(|e| e.eval_array(&flight.batch))
                    .collect::<Result<Vec<_>>>()?;
                Flight {
                    batch: batch_of(columns, n)?,
                    ..flight
                }
            }
            PhysOp::FlatMap(func, schema) => {
                let rows = batch_to_rows(&flight.batch)?;
                let mut out: Vec<Row> = Vec::new();
                let mut ingest = Vec::new();
                let mut wms = Vec::new();
                for (i, row) in rows.iter().enumerate() {
                    func(row, &mut |r| {
                        out.push(r);
                        ingest.push(flight.ingest_ns[i]);
                        if let Some(w) = &flight.watermark_us {
                            wms.push(w[i]);
                        }
                    });
                }
                Flight {
                    batch: rows_to_batch(schema, &out)?,
                    ingest_ns: ingest,
                    watermark_us: flight.watermark_us.as_ref().map(|_| wms),
                }
            }
            PhysOp::Generate {
                array,
                position,
                outer,
            } => {
                let arrays = array.eval_array(&flight.batch)?;
                generate(flight, arrays, *position, *outer)?
            }
            PhysOp::Join(j) => super::join::join(flight, j)?,
            PhysOp::StreamJoin { schema, .. } => {
                let state = join.as_mut().ok_or_else(|| {
                    EngineError::Eval("the stream-stream join has no state".into())
                })?;
                super::stream_join::join(flight, state, schema)?
            }
            PhysOp::Watermark {
                column, delay_us, ..
            } => {
                let times = flight
                    .batch
                    .column(*column)
                    .as_primitive_opt::<TimestampMicrosecondType>()
                    .ok_or_else(|| {
                        EngineError::Eval(format!(
                            "the watermark column is {}, not a timestamp",
                            flight.batch.column(*column).data_type()
                        ))
                    })?;
                let mut wms = Vec::with_capacity(n);
                for i in 0..n {
                    wms.push(tracker.watermark(*delay_us));
                    if times.is_valid(i) {
                        tracker.max_event_time_us = tracker.max_event_time_us.max(times.value(i));
                    }
                }
                Flight {
                    watermark_us: Some(wms),
                    ..flight
                }
            }
        };
    }
    Ok(flight)
}
