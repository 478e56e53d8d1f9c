//! Rows to Arrow record batches and back.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Date32Array, Date32Builder, Float64Array,
    Float64Builder, Int64Array, Int64Builder, ListArray, NullArray, StringArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::error::{EngineError, Result};
use crate::schema::{DataType, Row, SchemaRef, Value};

/// The value at `i` of an array of one of the engine's types; an array whose
/// concrete type does not match its data type, or a type the engine does not
/// have, is an error naming the type.
#[inline]
pub fn value_at(array: &dyn Array, i: usize) -> Result<Value> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    let any = array.as_any();
    let v = match array.data_type() {
        DataType::Int64 => any
            .downcast_ref::<Int64Array>()
            .map(|a| Value::Int64(a.value(i))),
        DataType::Float64 => any
            .downcast_ref::<Float64Array>()
            .map(|a| Value::Float64(a.value(i))),
        DataType::Boolean => any
            .downcast_ref::<BooleanArray>()
            .map(|a| Value::Boolean(a.value(i))),
        DataType::Utf8 => any
            .downcast_ref::<StringArray>()
            .map(|a| Value::str(a.value(i))),
        DataType::Timestamp(..) => any
            .downcast_ref::<TimestampMicrosecondArray>()
            .map(|a| Value::Timestamp(a.value(i))),
        DataType::Date32 => any
            .downcast_ref::<Date32Array>()
            .map(|a| Value::Date(a.value(i))),
        // A null array has no validity buffer: every element is null.
        DataType::Null => Some(Value::Null),
        DataType::List(_) => match any.downcast_ref::<ListArray>() {
            Some(a) => {
                let items = a.value(i);
                let mut out = Vec::with_capacity(items.len());
                for j in 0..items.len() {
                    out.push(value_at(items.as_ref(), j)?);
                }
                Some(Value::List(out.into()))
            }
            None => None,
        },
        _ => None,
    };
    v.ok_or_else(|| {
        EngineError::Eval(format!(
            "a column of type {} cannot be read as an engine value",
            array.data_type()
        ))
    })
}

/// Builds one column of `dt` from values produced by `get`.
pub fn build_array(
    dt: &DataType,
    len: usize,
    mut get: impl FnMut(usize) -> Value,
) -> Result<ArrayRef> {
    macro_rules! build {
        ($builder:ty, $variant:ident) => {{
            let mut b = <$builder>::with_capacity(len);
            for i in 0..len {
                match get(i) {
                    Value::$variant(v) => b.append_value(v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match dt {
        DataType::Int64 => build!(Int64Builder, Int64),
        DataType::Float64 => build!(Float64Builder, Float64),
        DataType::Boolean => build!(BooleanBuilder, Boolean),
        DataType::Date32 => build!(Date32Builder, Date),
        DataType::Timestamp(_, tz) => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(len);
            for i in 0..len {
                match get(i) {
                    Value::Timestamp(v) => b.append_value(v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish().with_timezone_opt(tz.clone())) as ArrayRef
        }
        DataType::Utf8 => {
            let mut b = StringBuilder::with_capacity(len, len * 8);
            for i in 0..len {
                match get(i) {
                    Value::Utf8(s) => b.append_value(&*s),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }
        DataType::Null => Arc::new(NullArray::new(len)) as ArrayRef,
        DataType::List(field) => build_list(field, len, &mut get)?,
        other => {
            return Err(EngineError::Eval(format!(
                "type {other} cannot be built into a batch"
            )))
        }
    })
}

/// Builds an `array<T>` column (not generic, so that building its element
/// column does not instantiate [`build_array`] without end).
fn build_list(
    field: &arrow_schema::FieldRef,
    len: usize,
    get: &mut dyn FnMut(usize) -> Value,
) -> Result<ArrayRef> {
    // The lists' elements go into one child column; each slot's list is an
    // offset range of it.
    let mut offsets: Vec<i32> = Vec::with_capacity(len + 1);
    offsets.push(0);
    let mut valid: Vec<bool> = Vec::with_capacity(len);
    let mut items: Vec<Value> = Vec::new();
    for i in 0..len {
        match get(i) {
            Value::List(l) => {
                items.extend(l.iter().cloned());
                valid.push(true);
            }
            _ => valid.push(false),
        }
        let end = i32::try_from(items.len()).map_err(|_| {
            EngineError::Eval("a batch's arrays hold more than 2^31 elements".into())
        })?;
        offsets.push(end);
    }
    let values = build_array(field.data_type(), items.len(), |j| {
        std::mem::take(&mut items[j])
    })?;
    let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
    let list = ListArray::try_new(
        field.clone(),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        values,
        nulls,
    )
    .map_err(|e| EngineError::Eval(format!("cannot build an array column: {e}")))?;
    Ok(Arc::new(list))
}

/// Builds a record batch of `schema` from rows.
pub fn rows_to_batch(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(c, f)| build_array(f.data_type(), rows.len(), |i| rows[i][c].clone()))
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
    .map_err(|e| EngineError::Eval(format!("cannot build a batch: {e}")))
}

/// Fills `row` with row `i` of `batch` (cleared first), so a caller going
/// row by row reuses one row.
pub fn row_at(batch: &RecordBatch, i: usize, row: &mut Row) -> Result<()> {
    row.clear();
    for column in batch.columns() {
        row.push(value_at(column.as_ref(), i)?);
    }
    Ok(())
}

/// The rows of a batch.
pub fn batch_to_rows(batch: &RecordBatch) -> Result<Vec<Row>> {
    (0..batch.num_rows())
        .map(|i| {
            batch
                .columns()
                .iter()
                .map(|a| value_at(a.as_ref(), i))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use crate::schema::{schema, timestamp_type};

    #[test]
    fn rows_round_trip_through_batches() {
        let s = schema(&[
            ("a", DataType::Int64),
            ("b", DataType::Utf8),
            ("c", timestamp_type()),
            ("d", DataType::Float64),
            ("e", DataType::Boolean),
            ("f", DataType::Date32),
        ]);
        let rows = vec![
            row![1i64, "x", Value::Timestamp(5), 1.5, true, Value::Date(3)],
            row![
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null
            ],
        ];
        let batch = rows_to_batch(&s, &rows).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch_to_rows(&batch).unwrap(), rows);
    }
}
