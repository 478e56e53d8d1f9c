//! A batch in flight: the Arrow batch an operator hands the next, with each
//! row's ingest time and watermark.
//!
//! Owns that carrier and how a batch is built from bare arrays. It must not
//! know any operator.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::error::{EngineError, Result};

/// A batch moving through the plan, with per-row times.
pub(crate) struct Flight {
    pub(crate) batch: RecordBatch,
    pub(crate) ingest_ns: Vec<u64>,
    pub(crate) watermark_us: Option<Vec<i64>>,
}

/// A batch from arrays, named positionally (operators bind by index).
pub(crate) fn batch_of(columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
        .collect();
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| EngineError::Eval(e.to_string()))
}
