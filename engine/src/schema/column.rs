//! Typed read access to one column of a record batch.
//!
//! Owns [`Column`]: an Arrow array of one of the engine's types, downcast
//! once when a batch arrives, so a sink that writes a batch reads each
//! element with a plain index instead of a downcast per element, and writes
//! its text or JSON form straight into a byte buffer (no `Value`, no string
//! allocation for strings and numbers). A column of another type is an
//! error when the reader is made, never a default value later. This module
//! must not know about sinks or their formats beyond the two text forms
//! every sink shares.

use std::io::Write;

use arrow::array::{
    Array, BooleanArray, Date32Array, Float64Array, Int64Array, ListArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow::record_batch::RecordBatch;

use crate::error::{EngineError, Result};
use crate::schema::{DataType, Value};
use crate::time::{format_date, format_timestamp_us};

/// One column of a batch, downcast to its concrete array type.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Column<'a> {
    /// `boolean`.
    Boolean(&'a BooleanArray),
    /// `bigint`.
    Int64(&'a Int64Array),
    /// `double`.
    Float64(&'a Float64Array),
    /// `string`.
    Utf8(&'a StringArray),
    /// `timestamp` (µs, UTC).
    Timestamp(&'a TimestampMicrosecondArray),
    /// `date`.
    Date(&'a Date32Array),
    /// `array<T>`.
    List(&'a ListArray),
    /// A column of nulls only.
    Null,
}

impl<'a> Column<'a> {
    /// The typed view of `array`; an array of a type the engine does not
    /// have, or whose concrete type does not match its data type, is an
    /// error naming the type.
    pub fn new(array: &'a dyn Array) -> Result<Column<'a>> {
        let any = array.as_any();
        let col = match array.data_type() {
            DataType::Boolean => any.downcast_ref().map(Column::Boolean),
            DataType::Int64 => any.downcast_ref().map(Column::Int64),
            DataType::Float64 => any.downcast_ref().map(Column::Float64),
            DataType::Utf8 => any.downcast_ref().map(Column::Utf8),
            DataType::Timestamp(..) => any.downcast_ref().map(Column::Timestamp),
            DataType::Date32 => any.downcast_ref().map(Column::Date),
            DataType::List(f) if crate::schema::is_supported_type(f.data_type()) => {
                any.downcast_ref().map(Column::List)
            }
            DataType::Null => Some(Column::Null),
            _ => None,
        };
        col.ok_or_else(|| {
            EngineError::Eval(format!(
                "a column of type {} cannot be read as an engine value",
                array.data_type()
            ))
        })
    }

    /// Typed views of every column of `batch`, in order.
    pub fn all(batch: &'a RecordBatch) -> Result<Vec<Column<'a>>> {
        batch.columns().iter().map(|c| Column::new(c)).collect()
    }

    fn array(&self) -> Option<&'a dyn Array> {
        Some(match *self {
            Column::Boolean(a) => a,
            Column::Int64(a) => a,
            Column::Float64(a) => a,
            Column::Utf8(a) => a,
            Column::Timestamp(a) => a,
            Column::Date(a) => a,
            Column::List(a) => a,
            Column::Null => return None,
        })
    }

    /// Whether element `i` is null.
    #[inline]
    pub fn is_null(&self, i: usize) -> bool {
        self.array().is_none_or(|a| a.is_null(i))
    }

    /// Element `i` as a [`Value`] (strings are copied into a new value).
    #[inline]
    pub fn value(&self, i: usize) -> Value {
        if self.is_null(i) {
            return Value::Null;
        }
        match *self {
            Column::Boolean(a) => Value::Boolean(a.value(i)),
            Column::Int64(a) => Value::Int64(a.value(i)),
            Column::Float64(a) => Value::Float64(a.value(i)),
            Column::Utf8(a) => Value::str(a.value(i)),
            Column::Timestamp(a) => Value::Timestamp(a.value(i)),
            Column::Date(a) => Value::Date(a.value(i)),
            // The element type was checked when the column was made.
            Column::List(a) => crate::schema::arrow::value_at(a, i).unwrap_or(Value::Null),
            Column::Null => Value::Null,
        }
    }

    /// Element `i` as a string, if this is a string column and the element
    /// is not null.
    #[inline]
    pub fn str(&self, i: usize) -> Option<&'a str> {
        match *self {
            Column::Utf8(a) if a.is_valid(i) => Some(a.value(i)),
            _ => None,
        }
    }

    /// Element `i` as an integer, for `bigint` and `timestamp` (µs) columns
    /// when it is not null.
    #[inline]
    pub fn i64(&self, i: usize) -> Option<i64> {
        match *self {
            Column::Int64(a) if a.is_valid(i) => Some(a.value(i)),
            Column::Timestamp(a) if a.is_valid(i) => Some(a.value(i)),
            _ => None,
        }
    }

    /// Appends element `i`'s text, as [`Value`]'s `Display` writes it, to
    /// `out`; returns `false` (writing nothing) when it is null.
    #[inline]
    pub fn write_text(&self, i: usize, out: &mut Vec<u8>) -> bool {
        if self.is_null(i) {
            return false;
        }
        match *self {
            Column::Boolean(a) => {
                out.extend_from_slice(if a.value(i) { b"true" } else { b"false" })
            }
            Column::Int64(a) => {
                // Writing to a `Vec` cannot fail.
                let _ = write!(out, "{}", a.value(i));
            }
            Column::Float64(a) => {
                let _ = write!(out, "{}", Value::Float64(a.value(i)));
            }
            Column::Utf8(a) => out.extend_from_slice(a.value(i).as_bytes()),
            Column::Timestamp(a) => {
                out.extend_from_slice(format_timestamp_us(a.value(i)).as_bytes())
            }
            Column::Date(a) => out.extend_from_slice(format_date(a.value(i)).as_bytes()),
            Column::List(_) => {
                let _ = write!(out, "{}", self.value(i));
            }
            Column::Null => return false,
        }
        true
    }

    /// Appends element `i`'s JSON form (see [`write_value_json`]) to `out`;
    /// returns `false` (writing nothing) when it is null.
    #[inline]
    pub fn write_json(&self, i: usize, out: &mut Vec<u8>) -> bool {
        if self.is_null(i) {
            return false;
        }
        match *self {
            Column::Boolean(_) | Column::Int64(_) => {
                self.write_text(i, out);
            }
            Column::Float64(a) => write_double_json(a.value(i), out),
            Column::Utf8(a) => write_str_json(a.value(i), out),
            _ => write_value_json(&self.value(i), out),
        }
        true
    }
}

/// Appends a value's text, as its `Display` writes it, to `out`; returns
/// `false` (writing nothing) for null.
#[inline]
pub fn write_value_text(v: &Value, out: &mut Vec<u8>) -> bool {
    match v {
        Value::Null => return false,
        Value::Utf8(s) => out.extend_from_slice(s.as_bytes()),
        // Writing to a `Vec` cannot fail.
        other => {
            let _ = write!(out, "{other}");
        }
    }
    true
}

/// Appends a value's JSON form to `out`, the form every JSON-writing sink
/// uses: booleans and integers as JSON literals, finite doubles as numbers,
/// strings escaped, arrays as JSON arrays of their elements' forms, and
/// every other value (timestamps, dates, NaN,
/// infinities) as its text in a JSON string; null as `null`.
#[inline]
pub fn write_value_json(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int64(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float64(x) => write_double_json(*x, out),
        Value::Utf8(s) => write_str_json(s, out),
        Value::List(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value_json(v, out);
            }
            out.push(b']');
        }
        other => write_str_json(&other.to_string(), out),
    }
}

#[inline]
fn write_double_json(x: f64, out: &mut Vec<u8>) {
    if x.is_finite() {
        // Serialising a finite double into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, &x);
    } else {
        write_str_json(&Value::Float64(x).to_string(), out);
    }
}

#[inline]
fn write_str_json(s: &str, out: &mut Vec<u8>) {
    // Serialising a string into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::arrow::rows_to_batch;
    use crate::schema::{schema, timestamp_type, Row};

    #[test]
    fn text_and_json_match_the_value_forms() {
        let s = schema(&[
            ("b", DataType::Boolean),
            ("i", DataType::Int64),
            ("x", DataType::Float64),
            ("s", DataType::Utf8),
            ("t", timestamp_type()),
            ("d", DataType::Date32),
        ]);
        let rows = vec![
            Row::from(vec![
                Value::Boolean(true),
                Value::Int64(i64::MIN),
                Value::Float64(0.1),
                Value::str("a \"q\""),
                Value::Timestamp(1_500_000),
                Value::Date(1),
            ]),
            Row::from(vec![
                Value::Null,
                Value::Int64(7),
                Value::Float64(f64::NAN),
                Value::Null,
                Value::Null,
                Value::Null,
            ]),
        ];
        let batch = rows_to_batch(&s, &rows).unwrap();
        let cols = Column::all(&batch).unwrap();
        for (r, row) in rows.iter().enumerate() {
            for (c, col) in cols.iter().enumerate() {
                assert_eq!(col.value(r), row[c]);
                let mut text = Vec::new();
                assert_eq!(col.write_text(r, &mut text), !row[c].is_null());
                if !row[c].is_null() {
                    assert_eq!(String::from_utf8(text).unwrap(), row[c].to_string());
                }
            }
        }
        let mut json = Vec::new();
        cols[3].write_json(0, &mut json);
        cols[2].write_json(1, &mut json);
        cols[4].write_json(0, &mut json);
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#""a \"q\"""NaN""1970-01-01 00:00:01.5""#
        );
    }

    #[test]
    fn an_unknown_type_is_an_error() {
        let a = arrow::array::Int32Array::from(vec![1]);
        assert!(Column::new(&a).is_err());
    }
}
