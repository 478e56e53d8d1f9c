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

use runnel::clock::wall_now_ms;
use runnel::schema::column::{write_value_json, write_value_text, Column};
use runnel::{DataType, Row, Schema};

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
        self.encode_cells(&RowCells(row), key, value)
    }

    /// [`RecordLayout::encode`] for row `i` of a batch whose columns are
    /// `cols`, read from the typed columns.
    #[inline]
    pub(crate) fn encode_at(
        &self,
        cols: &[Column<'_>],
        i: usize,
        key: &mut Vec<u8>,
        value: &mut Vec<u8>,
    ) -> (bool, bool) {
        self.encode_cells(&BatchCells(cols, i), key, value)
    }

    /// The record's timestamp in milliseconds since the epoch.
    #[inline]
    pub(crate) fn timestamp_ms(&self, row: &Row) -> i64 {
        Self::ms_or_now(self.timestamp.and_then(|i| row[i].as_i64()))
    }

    /// [`RecordLayout::timestamp_ms`] for row `i` of a batch.
    #[inline]
    pub(crate) fn timestamp_ms_at(&self, cols: &[Column<'_>], i: usize) -> i64 {
        Self::ms_or_now(self.timestamp.and_then(|c| cols[c].i64(i)))
    }

    fn ms_or_now(us: Option<i64>) -> i64 {
        us.map_or_else(wall_now_ms, |us| us.div_euclid(1000))
    }

    #[inline]
    fn encode_cells(
        &self,
        cells: &impl Cells,
        key: &mut Vec<u8>,
        value: &mut Vec<u8>,
    ) -> (bool, bool) {
        key.clear();
        value.clear();
        let has_key = self.key.is_some_and(|c| cells.text(c, key));
        let has_value = match self.value {
            Some(c) => cells.text(c, value),
            None => {
                // The whole row as one JSON object, null columns omitted.
                value.push(b'{');
                let mut first = true;
                for (c, name) in self.json_names.iter().enumerate() {
                    if cells.is_null(c) {
                        continue;
                    }
                    if !first {
                        value.push(b',');
                    }
                    first = false;
                    value.extend_from_slice(name);
                    cells.json(c, value);
                }
                value.push(b'}');
                true
            }
        };
        (has_key, has_value)
    }
}

/// The columns of one record, from a row or from a batch.
trait Cells {
    fn is_null(&self, c: usize) -> bool;
    /// Appends column `c`'s text; `false` (nothing written) for null.
    fn text(&self, c: usize, out: &mut Vec<u8>) -> bool;
    /// Appends column `c`'s JSON form (it is not null).
    fn json(&self, c: usize, out: &mut Vec<u8>);
}

struct RowCells<'a>(&'a Row);

impl Cells for RowCells<'_> {
    #[inline]
    fn is_null(&self, c: usize) -> bool {
        self.0[c].is_null()
    }
    #[inline]
    fn text(&self, c: usize, out: &mut Vec<u8>) -> bool {
        write_value_text(&self.0[c], out)
    }
    #[inline]
    fn json(&self, c: usize, out: &mut Vec<u8>) {
        write_value_json(&self.0[c], out);
    }
}

struct BatchCells<'a, 'b>(&'a [Column<'b>], usize);

impl Cells for BatchCells<'_, '_> {
    #[inline]
    fn is_null(&self, c: usize) -> bool {
        self.0[c].is_null(self.1)
    }
    #[inline]
    fn text(&self, c: usize, out: &mut Vec<u8>) -> bool {
        self.0[c].write_text(self.1, out)
    }
    #[inline]
    fn json(&self, c: usize, out: &mut Vec<u8>) {
        self.0[c].write_json(self.1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel::schema::arrow::rows_to_batch;
    use runnel::{row, schema, timestamp_type, Value};

    /// Every row encoded from a batch's columns as from the row itself.
    fn assert_batch_encodes_as_rows(s: &runnel::SchemaRef, rows: &[Row]) {
        let layout = RecordLayout::new(s);
        let batch = rows_to_batch(s, rows).unwrap();
        let cols = Column::all(&batch).unwrap();
        for (i, r) in rows.iter().enumerate() {
            let (mut k, mut v, mut bk, mut bv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let present = layout.encode(r, &mut k, &mut v);
            assert_eq!(layout.encode_at(&cols, i, &mut bk, &mut bv), present);
            assert_eq!((bk, bv), (k, v), "row {i}");
            if r.iter().any(|v| matches!(v, Value::Timestamp(_))) {
                assert_eq!(layout.timestamp_ms_at(&cols, i), layout.timestamp_ms(r));
            }
        }
    }

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
        let rows = [
            r,
            row![Value::Null, -3i64, f64::NAN, Value::Null, ""],
            row!["", Value::Null, -0.5, Value::Timestamp(-1), "é\n"],
        ];
        assert_batch_encodes_as_rows(&s, &rows);
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
        assert_batch_encodes_as_rows(&s, &[row![42i64, "hello", Value::Timestamp(1_500_999)]]);
    }
}
