//! Building a record batch value by value, without rows in between.
//!
//! Owns [`BatchBuilder`], which appends each value straight to its column's
//! Arrow builder, and [`ValueSink`], the one interface through which code
//! that produces an output row's values (an aggregation's keys, window and
//! results) fills either a [`Row`] or a batch. A value of another type than
//! its column is an error when the batch is finished, never a silent null.
//! This module must not know where the values come from.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, NullArray,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::error::{EngineError, Result};
use crate::schema::{DataType, Row, SchemaRef, Value};

/// Where the values of output rows go, one after another in column order.
pub trait ValueSink {
    /// Appends the next value.
    fn push_value(&mut self, v: Value);
}

impl ValueSink for Row {
    #[inline]
    fn push_value(&mut self, v: Value) {
        self.push(v);
    }
}

enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Date(Date32Builder),
    Null(usize),
    /// `array<T>`: the type and each row's value, built at the end.
    List(DataType, Vec<Value>),
}

impl ColumnBuilder {
    fn new(dt: &DataType) -> Result<ColumnBuilder> {
        Ok(match dt {
            DataType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::new()),
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::new()),
            DataType::Float64 => ColumnBuilder::Float64(Float64Builder::new()),
            DataType::Utf8 => ColumnBuilder::Utf8(StringBuilder::new()),
            DataType::Timestamp(_, tz) => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new(), tz.clone())
            }
            DataType::Date32 => ColumnBuilder::Date(Date32Builder::new()),
            DataType::Null => ColumnBuilder::Null(0),
            DataType::List(_) => ColumnBuilder::List(dt.clone(), Vec::new()),
            other => {
                return Err(EngineError::Eval(format!(
                    "type {other} cannot be built into a batch"
                )))
            }
        })
    }

    /// Appends `v`; hands it back when it is not of the column's type.
    #[inline]
    fn append(&mut self, v: Value) -> std::result::Result<(), Value> {
        match (self, v) {
            (ColumnBuilder::Null(n), Value::Null) => *n += 1,
            (ColumnBuilder::Boolean(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Int64(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Float64(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Utf8(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Timestamp(b, _), Value::Null) => b.append_null(),
            (ColumnBuilder::Date(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Boolean(b), Value::Boolean(x)) => b.append_value(x),
            (ColumnBuilder::Int64(b), Value::Int64(x)) => b.append_value(x),
            (ColumnBuilder::Float64(b), Value::Float64(x)) => b.append_value(x),
            (ColumnBuilder::Utf8(b), Value::Utf8(x)) => b.append_value(&*x),
            (ColumnBuilder::Timestamp(b, _), Value::Timestamp(x)) => b.append_value(x),
            (ColumnBuilder::Date(b), Value::Date(x)) => b.append_value(x),
            (ColumnBuilder::List(_, rows), v @ (Value::Null | Value::List(_))) => rows.push(v),
            (_, other) => return Err(other),
        }
        Ok(())
    }

    fn finish(self) -> Result<ArrayRef> {
        Ok(match self {
            ColumnBuilder::Boolean(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(mut b, tz) => Arc::new(b.finish().with_timezone_opt(tz)),
            ColumnBuilder::Date(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Null(n) => Arc::new(NullArray::new(n)),
            ColumnBuilder::List(dt, mut rows) => {
                crate::schema::arrow::build_array(&dt, rows.len(), |i| {
                    std::mem::take(&mut rows[i])
                })?
            }
        })
    }
}

/// A record batch being built row by row, each value appended to its
/// column's builder as it comes.
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    /// The column the next value goes to.
    next: usize,
    rows: usize,
    /// The first value that did not fit its column: (column, value).
    mismatch: Option<(usize, Value)>,
}

impl BatchBuilder {
    /// An empty batch of `schema`; a column of a type the engine does not
    /// have is an error naming it.
    pub fn new(schema: &SchemaRef) -> Result<BatchBuilder> {
        Ok(BatchBuilder {
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnBuilder::new(f.data_type()))
                .collect::<Result<_>>()?,
            schema: schema.clone(),
            next: 0,
            rows: 0,
            mismatch: None,
        })
    }

    /// Rows completed so far.
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// The batch; an error if a value did not fit its column or the last
    /// row is incomplete.
    pub fn finish(self) -> Result<RecordBatch> {
        if let Some((c, v)) = self.mismatch {
            let f = self.schema.field(c);
            return Err(EngineError::Eval(format!(
                "value {v} does not fit column `{}` of type {}",
                f.name(),
                f.data_type()
            )));
        }
        if self.next != 0 {
            return Err(EngineError::Eval(format!(
                "a row of the batch has {} of its {} values",
                self.next,
                self.columns.len()
            )));
        }
        let columns: Vec<ArrayRef> = self
            .columns
            .into_iter()
            .map(ColumnBuilder::finish)
            .collect::<Result<_>>()?;
        RecordBatch::try_new_with_options(
            self.schema,
            columns,
            &RecordBatchOptions::new().with_row_count(Some(self.rows)),
        )
        .map_err(|e| EngineError::Eval(format!("cannot build a batch: {e}")))
    }
}

impl ValueSink for BatchBuilder {
    #[inline]
    fn push_value(&mut self, v: Value) {
        let c = self.next;
        let Some(col) = self.columns.get_mut(c) else {
            // More values than columns: reported as a mismatch.
            self.mismatch
                .get_or_insert((c.min(self.schema.fields().len().saturating_sub(1)), v));
            return;
        };
        if let Err(v) = col.append(v) {
            // Keep the column's length right; the batch is refused anyway.
            let _ = col.append(Value::Null);
            self.mismatch.get_or_insert((c, v));
        }
        self.next += 1;
        if self.next == self.columns.len() {
            self.next = 0;
            self.rows += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::arrow::batch_to_rows;
    use crate::schema::{schema, timestamp_type};

    #[test]
    fn values_land_in_their_columns() {
        let s = schema(&[
            ("k", DataType::Utf8),
            ("t", timestamp_type()),
            ("n", DataType::Int64),
        ]);
        let rows = vec![
            Row::from(vec![Value::str("a"), Value::Timestamp(5), Value::Int64(1)]),
            Row::from(vec![Value::Null, Value::Null, Value::Int64(2)]),
        ];
        let mut b = BatchBuilder::new(&s).unwrap();
        for r in &rows {
            for v in r.iter() {
                b.push_value(v.clone());
            }
        }
        assert_eq!(b.num_rows(), 2);
        let batch = b.finish().unwrap();
        assert_eq!(batch.schema(), s);
        assert_eq!(batch_to_rows(&batch).unwrap(), rows);
    }

    #[test]
    fn a_value_of_another_type_is_an_error() {
        let s = schema(&[("n", DataType::Int64)]);
        let mut b = BatchBuilder::new(&s).unwrap();
        b.push_value(Value::Float64(1.5));
        let e = b.finish().unwrap_err().to_string();
        assert!(e.contains("1.5") && e.contains("`n`"), "{e}");
        let mut b =
            BatchBuilder::new(&schema(&[("a", DataType::Int64), ("b", DataType::Int64)])).unwrap();
        b.push_value(Value::Int64(1));
        assert!(b.finish().is_err(), "an incomplete row");
    }
}
