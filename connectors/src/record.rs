//! How a result row becomes a record of a partitioned log (the on-disk log
//! sink and the Kafka sink share it): which columns give the key, the value
//! and the timestamp, and their byte encodings.
//!
//! * **key**: the `key` column's text, if the schema has one and it is not
//!   null;
//! * **value**: the `value` column's text if the schema has one (null stays
//!   null), else the whole row as one JSON object (null columns omitted,
//!   timestamps and dates as text, as the JSON file sink writes them);
//! * **timestamp**: the `timestamp` column in milliseconds if the schema has
//!   one of type timestamp and it is not null, else the wall clock.
//!
//! Encoding writes into buffers the caller keeps, so a sink allocates
//! nothing per record once they have grown. This module owns no I/O.

use std::io::Write;

use runnel::clock::wall_now_ms;
use runnel::{DataType, Row, Schema, Value};

/// Where a record's parts come from in a result row.
#[derive(Debug)]
pub(crate) struct RecordLayout {
    key: Option<usize>,
    value: Option<usize>,
    timestamp: Option<usize>,
    /// `"name":`, JSON-escaped, per column (for whole-row JSON values).
    json_names: Vec<Vec<u8>>,
}

impl RecordLayout {
    /// The layout of rows of `schema`.
    pub(crate) fn new(schema: &Schema) -> RecordLayout {
        let find = |name: &str| schema.fields().iter().position(|f| f.name() == name);
        RecordLayout {
            key: find("key"),
            value: find("value"),
            timestamp: find("timestamp")
                .filter(|&i| matches!(schema.field(i).data_type(), DataType::Timestamp(..))),
            json_names: schema
                .fields()
                .iter()
                .map(|f| {
                    let mut b = serde_json::to_vec(f.name()).expect("a string serializes");
                    b.push(b':');
                    b
                })
                .collect(),
        }
    }

    /// Writes the row's key and value into the buffers; returns whether
    /// each is present (`false`: null).
    #[inline]
    pub(crate) fn encode(&self, row: &Row, key: &mut Vec<u8>, value: &mut Vec<u8>) -> (bool, bool) {
        let has_key = match self.key {
            Some(i) => encode_text(&row[i], key),
            None => false,
        };
        let has_value = match self.value {
            Some(i) => encode_text(&row[i], value),
            None => {
                encode_json(row, &self.json_names, value);
                true
            }
        };
        (has_key, has_value)
    }

    /// The record's timestamp in milliseconds since the epoch.
    #[inline]
    pub(crate) fn timestamp_ms(&self, row: &Row) -> i64 {
        self.timestamp
            .and_then(|i| row[i].as_i64())
            .map_or_else(wall_now_ms, |us| us.div_euclid(1000))
    }
}

/// Writes a value's text form; `false` for null.
fn encode_text(v: &Value, out: &mut Vec<u8>) -> bool {
    out.clear();
    match v {
        Value::Null => false,
        Value::Utf8(s) => {
            out.extend_from_slice(s.as_bytes());
            true
        }
        other => {
            let _ = write!(out, "{other}");
            true
        }
    }
}

/// Writes the whole row as a JSON object, null columns omitted.
fn encode_json(row: &Row, names: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    out.push(b'{');
    let mut first = true;
    for (v, name) in row.iter().zip(names) {
        if v.is_null() {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(name);
        match v {
            Value::Null => {}
            Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int64(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float64(x) if x.is_finite() => {
                let _ = serde_json::to_writer(&mut *out, x);
            }
            Value::Utf8(s) => {
                let _ = serde_json::to_writer(&mut *out, &**s);
            }
            other => {
                let _ = serde_json::to_writer(&mut *out, &other.to_string());
            }
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel::{row, schema, timestamp_type};

    #[test]
    fn a_row_without_key_or_value_columns_becomes_a_json_value() {
        let s = schema(&[
            ("a", DataType::Utf8),
            ("b", DataType::Int64),
            ("c", DataType::Float64),
            ("t", timestamp_type()),
            ("n", DataType::Utf8),
        ]);
        let layout = RecordLayout::new(&s);
        assert_eq!(
            (layout.key, layout.value, layout.timestamp),
            (None, None, None)
        );
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let r = row!["x\"y", 7i64, 1.0, Value::Timestamp(1_000_000), Value::Null];
        assert_eq!(layout.encode(&r, &mut k, &mut v), (false, true));
        assert_eq!(
            String::from_utf8(v).unwrap(),
            r#"{"a":"x\"y","b":7,"c":1.0,"t":"1970-01-01 00:00:01"}"#
        );
    }

    #[test]
    fn key_value_and_timestamp_columns_are_used_as_they_are() {
        let s = schema(&[
            ("key", DataType::Int64),
            ("value", DataType::Utf8),
            ("timestamp", timestamp_type()),
        ]);
        let layout = RecordLayout::new(&s);
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let r = row![42i64, "hello", Value::Timestamp(1_500_000)];
        assert_eq!(layout.encode(&r, &mut k, &mut v), (true, true));
        assert_eq!((&k[..], &v[..]), (&b"42"[..], &b"hello"[..]));
        assert_eq!(layout.timestamp_ms(&r), 1_500);
        let r = row![Value::Null, Value::Null, Value::Null];
        assert_eq!(layout.encode(&r, &mut k, &mut v), (false, false));
        assert!(layout.timestamp_ms(&r) > 1_500);
    }
}
