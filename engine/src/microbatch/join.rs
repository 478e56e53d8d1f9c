//! The stream-static join over a batch: a vectorised hash join.
//!
//! Owns probing the static table's shared index with a batch's key columns
//! (hashed in place from the Arrow arrays, the index's way, so no value is
//! built per row), and assembling the joined batch with Arrow's `take` on
//! both sides from the probe's row indices. The extra condition, if any, is
//! evaluated once over the batch of candidate pairs. Each output row keeps
//! its stream row's ingest time and watermark. It must not build or change
//! the index.

use std::hash::{Hash, Hasher};

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::take;
use arrow::record_batch::RecordBatch;
use rustc_hash::FxHasher;

use super::flight::{batch_of, Flight};
use crate::error::{EngineError, Result};
use crate::schema::column::Column;
use crate::schema::Value;
use crate::table::BoundJoin;

fn arrow_err(e: arrow::error::ArrowError) -> EngineError {
    EngineError::Eval(e.to_string())
}

/// Hashes element `i` (not null) as `Value::hash` hashes its value.
#[inline]
fn hash_at(c: &Column<'_>, i: usize, h: &mut FxHasher) {
    match c {
        Column::Int64(a) => {
            h.write_u8(2);
            a.value(i).hash(h)
        }
        Column::Utf8(a) => {
            h.write_u8(4);
            a.value(i).hash(h)
        }
        Column::Timestamp(a) => {
            h.write_u8(5);
            a.value(i).hash(h)
        }
        Column::Date(a) => {
            h.write_u8(6);
            a.value(i).hash(h)
        }
        Column::Boolean(a) => {
            h.write_u8(1);
            a.value(i).hash(h)
        }
        other => other.value(i).hash(h),
    }
}

/// Whether element `i` (not null) equals `v`, as `Value`'s equality says.
#[inline]
fn eq_at(c: &Column<'_>, i: usize, v: &Value) -> bool {
    match (c, v) {
        (Column::Int64(a), Value::Int64(x)) => a.value(i) == *x,
        (Column::Utf8(a), Value::Utf8(x)) => a.value(i) == &**x,
        (Column::Timestamp(a), Value::Timestamp(x)) => a.value(i) == *x,
        (Column::Date(a), Value::Date(x)) => a.value(i) == *x,
        (Column::Boolean(a), Value::Boolean(x)) => a.value(i) == *x,
        (other, v) => other.value(i) == *v,
    }
}

/// Element `i` of a single integer-like key column (not null).
#[inline]
fn int_key(keys: &[Column<'_>], i: usize) -> Option<i64> {
    match keys {
        [Column::Int64(a)] => Some(a.value(i)),
        [Column::Timestamp(a)] => Some(a.value(i)),
        [Column::Date(a)] => Some(i64::from(a.value(i))),
        _ => None,
    }
}

/// The joined batch of `left` stream rows and `right` table rows (a `None`
/// gives nulls for the table's columns).
fn assemble(
    stream: &RecordBatch,
    table: &RecordBatch,
    left: &UInt32Array,
    right: &UInt32Array,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(stream.num_columns() + table.num_columns());
    for c in stream.columns() {
        columns.push(take(c.as_ref(), left, None).map_err(arrow_err)?);
    }
    for c in table.columns() {
        columns.push(take(c.as_ref(), right, None).map_err(arrow_err)?);
    }
    batch_of(columns, left.len())
}

/// Joins a batch with the static table.
pub(crate) fn join(flight: Flight, join: &BoundJoin) -> Result<Flight> {
    let n = flight.batch.num_rows();
    let key_arrays = join
        .stream_keys
        .iter()
        .map(|k| k.eval_array(&flight.batch))
        .collect::<Result<Vec<_>>>()?;
    let keys = key_arrays
        .iter()
        .map(|a| Column::new(a.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    // A refreshing table: the whole batch is joined with one version.
    let index = join.index_now();
    let mut left: Vec<u32> = Vec::with_capacity(n);
    let mut right: Vec<Option<u32>> = Vec::with_capacity(n);
    let row_index = |i: usize| {
        u32::try_from(i).map_err(|_| EngineError::Eval("a batch holds more than 2^32 rows".into()))
    };
    for i in 0..n {
        let matches: &[u32] = if keys.iter().any(|c| c.is_null(i)) {
            &[]
        } else if let Some(rows) = int_key(&keys, i).and_then(|x| index.probe_int(x)) {
            rows
        } else {
            let mut h = FxHasher::default();
            for c in &keys {
                hash_at(c, i, &mut h);
            }
            index.probe_hashed(h.finish(), |key| {
                keys.iter().zip(key).all(|(c, v)| eq_at(c, i, v))
            })
        };
        let i = row_index(i)?;
        for &r in matches {
            left.push(i);
            right.push(Some(r));
        }
        if matches.is_empty() && join.outer {
            left.push(i);
            right.push(None);
        }
    }
    let table = index.table().batch();
    if let Some(condition) = &join.condition {
        let candidates = assemble(
            &flight.batch,
            table,
            &UInt32Array::from(left.clone()),
            &UInt32Array::from(right.clone()),
        )?;
        let mask = condition.eval_array(&candidates)?;
        let mask = mask.as_boolean_opt();
        let passes = |k: usize| mask.is_some_and(|m| m.is_valid(k) && m.value(k));
        let (mut kept_left, mut kept_right) = (Vec::new(), Vec::new());
        let mut k = 0;
        while k < left.len() {
            let i = left[k];
            let mut any = false;
            while k < left.len() && left[k] == i {
                if right[k].is_some() && passes(k) {
                    kept_left.push(i);
                    kept_right.push(right[k]);
                    any = true;
                }
                k += 1;
            }
            if !any && join.outer {
                kept_left.push(i);
                kept_right.push(None);
            }
        }
        left = kept_left;
        right = kept_right;
    }
    let ingest_ns = left.iter().map(|&i| flight.ingest_ns[i as usize]).collect();
    let watermark_us = flight
        .watermark_us
        .as_ref()
        .map(|w| left.iter().map(|&i| w[i as usize]).collect());
    let batch = assemble(
        &flight.batch,
        table,
        &UInt32Array::from(left),
        &UInt32Array::from(right),
    )?;
    Ok(Flight {
        batch,
        ingest_ns,
        watermark_us,
    })
}
