//! Turning the text of one field (CSV) or one JSON value into a [`Value`] of
//! its column's type, and inferring CSV column types from sample records.
//!
//! Pure functions over bytes and JSON values: this module must not do I/O or
//! decide what happens to a bad record (it only says why a value is bad).

use std::borrow::Cow;
use std::sync::Arc;

use super::json::Cell;
use runnel::{timestamp_type, DataType, Field, Schema, SchemaRef, Value};

/// The column types the file source reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Boolean,
    Int64,
    Float64,
    Utf8,
    Timestamp,
    Date,
}

impl Kind {
    fn of(dt: &DataType) -> Option<Kind> {
        Some(match dt {
            DataType::Boolean => Kind::Boolean,
            DataType::Int64 => Kind::Int64,
            DataType::Float64 => Kind::Float64,
            DataType::Utf8 => Kind::Utf8,
            DataType::Timestamp(runnel::schema::TimeUnit::Microsecond, _) => Kind::Timestamp,
            DataType::Date32 => Kind::Date,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Boolean => "boolean",
            Kind::Int64 => "bigint",
            Kind::Float64 => "double",
            Kind::Utf8 => "string",
            Kind::Timestamp => "timestamp",
            Kind::Date => "date",
        }
    }
}

/// One field parsed to its column's type; text borrows the record.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Parsed<'a> {
    Null,
    Boolean(bool),
    Int64(i64),
    Float64(f64),
    Str(&'a str),
    /// Text the parse had to own: text that was not UTF-8 (the bad bytes
    /// replaced), a JSON string with escapes, or a JSON value's text.
    Owned(String),
    Timestamp(i64),
    Date(i32),
}

impl Parsed<'_> {
    /// The engine value.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Parsed::Null => Value::Null,
            Parsed::Boolean(b) => Value::Boolean(b),
            Parsed::Int64(i) => Value::Int64(i),
            Parsed::Float64(f) => Value::Float64(f),
            Parsed::Str(s) => Value::str(s),
            Parsed::Owned(s) => Value::str(&s),
            Parsed::Timestamp(t) => Value::Timestamp(t),
            Parsed::Date(d) => Value::Date(d),
        }
    }
}

/// Converts fields of one schema; built once per source.
#[derive(Clone, Debug)]
pub(crate) struct Columns {
    pub(crate) names: Vec<String>,
    kinds: Vec<Kind>,
    null_value: String,
    /// A `strftime`-style pattern translated from the user's Spark pattern.
    ts_pattern: Option<String>,
}

impl Columns {
    /// Columns for `schema`; `Err` names a column of a type the source
    /// cannot read.
    pub(crate) fn new(
        schema: &Schema,
        null_value: &str,
        ts_pattern: Option<String>,
    ) -> std::result::Result<Columns, String> {
        let mut kinds = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            kinds.push(Kind::of(f.data_type()).ok_or_else(|| {
                format!(
                    "column `{}` has type {}; the file source reads boolean, bigint, double, \
                     string, timestamp and date",
                    f.name(),
                    f.data_type()
                )
            })?);
        }
        Ok(Columns {
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            kinds,
            null_value: null_value.to_string(),
            ts_pattern,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.kinds.len()
    }

    pub(crate) fn parse_ts(&self, text: &str) -> Option<i64> {
        if let Some(p) = &self.ts_pattern {
            if let Some(us) = runnel::time::parse_timestamp_with(text, p) {
                return Some(us);
            }
        }
        runnel::time::parse_timestamp_us(text)
    }

    fn bad_value(&self, i: usize, shown: &str) -> String {
        let mut shown = shown.to_string();
        if shown.len() > 64 {
            let mut cut = 61;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
            shown.push_str("...");
        }
        format!(
            "column `{}`: '{}' is not a {}",
            self.names[i],
            shown,
            self.kinds[i].name()
        )
    }

    /// The kind of column `i`.
    pub(crate) fn kind(&self, i: usize) -> Kind {
        self.kinds[i]
    }

    /// CSV field `i` parsed to its column's type without allocating (bar
    /// text that is not UTF-8): empty or `null_value` is null.
    pub(crate) fn csv_parsed<'a>(
        &self,
        i: usize,
        bytes: &'a [u8],
    ) -> std::result::Result<Parsed<'a>, String> {
        if bytes.is_empty() || bytes == self.null_value.as_bytes() {
            return Ok(Parsed::Null);
        }
        let kind = self.kinds[i];
        match std::str::from_utf8(bytes) {
            Ok(t) => self.text_parsed(i, t),
            Err(_) if kind == Kind::Utf8 => {
                Ok(Parsed::Owned(String::from_utf8_lossy(bytes).into_owned()))
            }
            Err(_) => Err(self.bad_value(i, &String::from_utf8_lossy(bytes))),
        }
    }

    /// Field `i` given as text (already known to be UTF-8), as
    /// [`Columns::csv_parsed`].
    #[inline]
    pub(crate) fn text_parsed<'a>(
        &self,
        i: usize,
        t: &'a str,
    ) -> std::result::Result<Parsed<'a>, String> {
        if t.is_empty() || t == self.null_value {
            return Ok(Parsed::Null);
        }
        let kind = self.kinds[i];
        let parsed = match kind {
            Kind::Utf8 => Some(Parsed::Str(t)),
            Kind::Int64 => t.trim().parse::<i64>().ok().map(Parsed::Int64),
            Kind::Float64 => t.trim().parse::<f64>().ok().map(Parsed::Float64),
            Kind::Boolean => {
                let t = t.trim();
                if t.eq_ignore_ascii_case("true") {
                    Some(Parsed::Boolean(true))
                } else if t.eq_ignore_ascii_case("false") {
                    Some(Parsed::Boolean(false))
                } else {
                    None
                }
            }
            Kind::Timestamp => self.parse_ts(t).map(Parsed::Timestamp),
            Kind::Date => runnel::time::parse_date(t).map(Parsed::Date),
        };
        parsed.ok_or_else(|| self.bad_value(i, t))
    }

    /// The value of CSV field `i`: empty or `null_value` is null.
    pub(crate) fn csv_field(&self, i: usize, bytes: &[u8]) -> std::result::Result<Value, String> {
        self.csv_parsed(i, bytes).map(Parsed::into_value)
    }

    /// JSON cell `i` (see [`super::json`]) parsed to its column's type:
    /// missing or `null` is null; a string column takes any value's JSON
    /// text; a number in a timestamp column is seconds since the epoch,
    /// fractions allowed.
    pub(crate) fn json_parsed<'a>(
        &self,
        i: usize,
        cell: Cell<'a>,
    ) -> std::result::Result<Parsed<'a>, String> {
        let kind = self.kinds[i];
        let ok = match (kind, &cell) {
            (_, Cell::Missing | Cell::Null) => Some(Parsed::Null),
            (Kind::Utf8, Cell::Str(_)) => {
                return Ok(match cell {
                    Cell::Str(Cow::Borrowed(s)) => Parsed::Str(s),
                    Cell::Str(Cow::Owned(s)) => Parsed::Owned(s),
                    _ => unreachable!("matched a string above"),
                })
            }
            (Kind::Utf8, Cell::Nested(_)) => {
                return Ok(match cell {
                    Cell::Nested(text) => Parsed::Owned(text),
                    _ => unreachable!("matched a nested value above"),
                })
            }
            (Kind::Utf8, other) => Some(Parsed::Owned(other.shown())),
            (Kind::Int64, Cell::Int(v)) => Some(Parsed::Int64(*v)),
            (Kind::Int64, Cell::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
                Some(Parsed::Int64(*f as i64))
            }
            (Kind::Float64, Cell::Int(v)) => Some(Parsed::Float64(*v as f64)),
            (Kind::Float64, Cell::UInt(v)) => Some(Parsed::Float64(*v as f64)),
            (Kind::Float64, Cell::Float(f)) => Some(Parsed::Float64(*f)),
            (Kind::Boolean, Cell::Bool(b)) => Some(Parsed::Boolean(*b)),
            (Kind::Timestamp, Cell::Int(s)) => s.checked_mul(1_000_000).map(Parsed::Timestamp),
            (Kind::Timestamp, Cell::Float(f)) if f.is_finite() && f.abs() < 9.2e12 => {
                Some(Parsed::Timestamp((f * 1e6).round() as i64))
            }
            (Kind::Timestamp, Cell::Str(s)) => self.parse_ts(s).map(Parsed::Timestamp),
            (Kind::Date, Cell::Str(s)) => runnel::time::parse_date(s).map(Parsed::Date),
            _ => None,
        };
        ok.ok_or_else(|| self.bad_value(i, &cell.shown()))
    }
}

/// What one column's sample values all are.
#[derive(Clone, Copy, Debug)]
struct Candidates {
    seen: bool,
    int: bool,
    double: bool,
    boolean: bool,
    timestamp: bool,
}

impl Default for Candidates {
    fn default() -> Self {
        Candidates {
            seen: false,
            int: true,
            double: true,
            boolean: true,
            timestamp: true,
        }
    }
}

/// Infers column types from sample records (each a list of field texts):
/// bigint if every non-null value is a whole number, else double if every
/// one is a number, else boolean, else timestamp, else string (also for a
/// column with no value at all). Records with a different number of fields
/// than `names` are left out (they will be bad records).
pub(crate) fn infer_schema(names: &[String], sample: &[Vec<String>], cols: &Columns) -> SchemaRef {
    let mut cands = vec![Candidates::default(); names.len()];
    for rec in sample.iter().filter(|r| r.len() == names.len()) {
        for (c, text) in cands.iter_mut().zip(rec) {
            if text.is_empty() || *text == cols.null_value {
                continue;
            }
            c.seen = true;
            let t = text.trim();
            if c.int {
                c.int = t.parse::<i64>().is_ok();
            }
            if c.double {
                c.double = t.parse::<f64>().is_ok() && t.bytes().any(|b| b.is_ascii_digit());
            }
            if c.boolean {
                c.boolean = t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false");
            }
            if c.timestamp {
                c.timestamp = cols.parse_ts(t).is_some();
            }
        }
    }
    let fields: Vec<Field> = names
        .iter()
        .zip(&cands)
        .map(|(n, c)| {
            let dt = if !c.seen {
                DataType::Utf8
            } else if c.int {
                DataType::Int64
            } else if c.double {
                DataType::Float64
            } else if c.boolean {
                DataType::Boolean
            } else if c.timestamp {
                timestamp_type()
            } else {
                DataType::Utf8
            };
            Field::new(n.clone(), dt, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Column names from a header record: an empty name becomes `_c{i}`, a
/// repeated one gets its position appended (as Spark does).
pub(crate) fn header_names(header: &[String]) -> Vec<String> {
    let mut names: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = h.trim();
            if h.is_empty() {
                format!("_c{i}")
            } else {
                h.to_string()
            }
        })
        .collect();
    let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    for i in 0..names.len() {
        if lower.iter().filter(|n| **n == lower[i]).count() > 1 {
            names[i] = format!("{}{i}", names[i]);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(kinds: &[(&str, DataType)]) -> Columns {
        Columns::new(&runnel::schema(kinds), "NA", None).unwrap()
    }

    #[test]
    fn csv_fields_parse_strictly() {
        let c = cols(&[
            ("i", DataType::Int64),
            ("d", DataType::Float64),
            ("b", DataType::Boolean),
            ("t", timestamp_type()),
            ("s", DataType::Utf8),
        ]);
        assert_eq!(c.csv_field(0, b" 42 ").unwrap(), Value::Int64(42));
        assert!(c
            .csv_field(0, b"4.5")
            .unwrap_err()
            .contains("is not a bigint"));
        assert_eq!(c.csv_field(1, b"4.5").unwrap(), Value::Float64(4.5));
        assert_eq!(c.csv_field(2, b"TRUE").unwrap(), Value::Boolean(true));
        assert!(c.csv_field(2, b"1").is_err());
        assert_eq!(
            c.csv_field(3, b"1970-01-01 00:00:01").unwrap(),
            Value::Timestamp(1_000_000)
        );
        assert_eq!(c.csv_field(4, b"").unwrap(), Value::Null);
        assert_eq!(c.csv_field(0, b"NA").unwrap(), Value::Null);
    }

    #[test]
    fn json_numbers_are_epoch_seconds_for_timestamps() {
        let c = cols(&[("t", timestamp_type()), ("i", DataType::Int64)]);
        assert_eq!(
            c.json_parsed(0, Cell::Float(1.5)).unwrap(),
            Parsed::Timestamp(1_500_000)
        );
        assert_eq!(
            c.json_parsed(0, Cell::Int(2)).unwrap(),
            Parsed::Timestamp(2_000_000)
        );
        assert_eq!(c.json_parsed(0, Cell::Missing).unwrap(), Parsed::Null);
        assert_eq!(
            c.json_parsed(1, Cell::Float(3.0)).unwrap(),
            Parsed::Int64(3)
        );
        let e = c.json_parsed(1, Cell::Str("x".into())).unwrap_err();
        assert_eq!(e, "column `i`: '\"x\"' is not a bigint");
        assert!(c.json_parsed(1, Cell::UInt(u64::MAX)).is_err());
    }

    #[test]
    fn inference_prefers_the_narrowest_type() {
        let names: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows = [
            vec!["1", "1", "true", "2010-12-01 08:26:00", "x"],
            vec!["2", "2.5", "false", "2010-12-01T08:26:00Z", ""],
        ];
        let sample: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .collect();
        let s = infer_schema(&names, &sample, &cols(&[]));
        let types: Vec<&DataType> = s.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types,
            vec![
                &DataType::Int64,
                &DataType::Float64,
                &DataType::Boolean,
                &timestamp_type(),
                &DataType::Utf8
            ]
        );
        assert_eq!(
            header_names(&["a".into(), "".into(), "A".into()]),
            vec!["a0", "_c1", "A2"]
        );
    }
}
