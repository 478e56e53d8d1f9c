//! Values, rows and events: the data model of continuous mode.
//!
//! Owns [`Value`] (one SQL value, null in every type), [`Row`] (a compact row
//! that keeps up to [`ROW_INLINE`] values inline, so building a row allocates
//! nothing), [`Event`] (a row with its event time, the watermark it was seen
//! under and its ingest time) and the schema helpers. Schemas are Arrow
//! schemas; [`arrow`] converts rows to Arrow arrays and back, [`column`](mod@column)
//! reads a batch's columns typed, [`builder`] builds a batch value by value,
//! and `cast`
//! converts values between types with Spark's rules. This module must not know about operators or I/O.

pub mod arrow;
pub mod builder;
mod cast;
pub mod column;
mod text;

pub(crate) use cast::{cast_value, cast_value_in};
pub use text::Str;

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

pub use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::error::{EngineError, Result};

/// Number of values a [`Row`] holds without a heap allocation.
pub const ROW_INLINE: usize = 8;

/// Marker for "no time": an event without event time, or no watermark yet.
pub const NO_TIME: i64 = i64::MIN;

/// The Arrow type runnel uses for timestamps: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow type runnel uses for `array<element>`: a list whose items are
/// nullable and named `element`.
pub fn list_type(element: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("element", element, true)))
}

/// The element type of an `array<T>` type, `None` for any other type.
pub fn element_type(dt: &DataType) -> Option<&DataType> {
    match dt {
        DataType::List(f) => Some(f.data_type()),
        _ => None,
    }
}

/// Whether `dt` is one of the types the engine evaluates.
pub fn is_supported_type(dt: &DataType) -> bool {
    if let Some(e) = element_type(dt) {
        return is_supported_type(e);
    }
    matches!(
        dt,
        DataType::Boolean
            | DataType::Int64
            | DataType::Float64
            | DataType::Utf8
            | DataType::Date32
            | DataType::Null
    ) || matches!(dt, DataType::Timestamp(TimeUnit::Microsecond, _))
}

/// The field metadata key that holds a column's qualifier: the table or
/// alias it came from (`r` in `r.Country`). Only name resolution reads it.
pub(crate) const QUALIFIER_KEY: &str = "runnel.qualifier";

/// The qualifier of a column (see [`qualified`]), if it has one.
pub fn qualifier_of(field: &Field) -> Option<&str> {
    field.metadata().get(QUALIFIER_KEY).map(String::as_str)
}

/// `field` qualified by `qualifier`, so that `qualifier.column` names it.
pub fn qualified_field(field: &Field, qualifier: &str) -> Field {
    let mut meta = field.metadata().clone();
    meta.insert(QUALIFIER_KEY.to_string(), qualifier.to_string());
    field.clone().with_metadata(meta)
}

/// `schema` with every column qualified by `qualifier`, so that
/// `qualifier.column` names it (Spark's `df.alias("r")`).
pub fn qualified(schema: &Schema, qualifier: &str) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| qualified_field(f, qualifier))
        .collect();
    Arc::new(Schema::new(fields))
}

/// The SQL name of a type, as Spark prints it (`bigint`, `array<string>`).
pub fn type_name(dt: &DataType) -> std::borrow::Cow<'static, str> {
    std::borrow::Cow::Borrowed(match dt {
        DataType::Boolean => "boolean",
        DataType::Int64 => "bigint",
        DataType::Float64 => "double",
        DataType::Utf8 => "string",
        DataType::Date32 => "date",
        DataType::Timestamp(..) => "timestamp",
        DataType::Null => "void",
        DataType::List(f) => {
            return std::borrow::Cow::Owned(format!("array<{}>", type_name(f.data_type())))
        }
        _ => "unsupported",
    })
}

/// Builds a schema from `(name, type)` pairs; every field is nullable.
pub fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// Parses a Spark DDL schema string such as `OrderID double, OrderDate
/// string, Quantity int` (types: string, int/integer, bigint/long,
/// double/float, boolean, timestamp, date; names may be `back-quoted`).
/// `int` becomes bigint: the engine computes on 64-bit integers.
pub fn parse_ddl(ddl: &str) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = Vec::new();
    for (n, part) in ddl.split(',').enumerate() {
        let part = part.trim();
        if part.is_empty() {
            return Err(EngineError::Plan(format!(
                "schema '{ddl}': column {} is empty",
                n + 1
            )));
        }
        let (name, ty) = if let Some(rest) = part.strip_prefix('`') {
            let end = rest.find('`').ok_or_else(|| {
                EngineError::Plan(format!("schema '{ddl}': unclosed ` in '{part}'"))
            })?;
            (rest[..end].to_string(), rest[end + 1..].trim())
        } else {
            let mut it = part.splitn(2, char::is_whitespace);
            let name = it.next().unwrap_or_default().to_string();
            (name, it.next().unwrap_or("").trim())
        };
        let ty = ty.strip_prefix(':').unwrap_or(ty).trim();
        let dt = match ddl_type(ty) {
            Some(dt) => dt,
            None if ty.is_empty() => {
                return Err(EngineError::Plan(format!(
                    "schema '{ddl}': column `{name}` has no type"
                )))
            }
            None => {
                return Err(EngineError::Plan(format!(
                    "schema '{ddl}': unknown type '{}' for column `{name}` \
                     (use string, int, bigint, double, boolean, timestamp, date or array<T>)",
                    ty.to_ascii_lowercase()
                )))
            }
        };
        if fields.iter().any(|f| f.name().eq_ignore_ascii_case(&name)) {
            return Err(EngineError::Plan(format!(
                "schema '{ddl}': column `{name}` appears twice"
            )));
        }
        fields.push(Field::new(name, dt, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// One DDL type name (any case), `array<T>` included.
fn ddl_type(ty: &str) -> Option<DataType> {
    let lower = ty.trim().to_ascii_lowercase();
    if let Some(inner) = lower
        .strip_prefix("array<")
        .and_then(|r| r.strip_suffix('>'))
    {
        return ddl_type(inner).map(list_type);
    }
    Some(match lower.as_str() {
        "string" | "varchar" | "text" => DataType::Utf8,
        "int" | "integer" | "bigint" | "long" | "smallint" | "tinyint" => DataType::Int64,
        "double" | "float" | "real" => DataType::Float64,
        "boolean" | "bool" => DataType::Boolean,
        "timestamp" => timestamp_type(),
        "date" => DataType::Date32,
        _ => return None,
    })
}

/// The schema as Spark's DDL text (`a bigint, b string`).
pub fn to_ddl(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), type_name(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One SQL value. Every type has a null ([`Value::Null`]).
///
/// Numbers are stored inline; strings are [`Str`] (inline when short,
/// shared otherwise), so cloning a value never allocates.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    #[default]
    Null,
    /// `boolean`.
    Boolean(bool),
    /// `bigint`.
    Int64(i64),
    /// `double`.
    Float64(f64),
    /// `string`.
    Utf8(Str),
    /// `timestamp`: microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// `date`: days since the Unix epoch.
    Date(i32),
    /// `array<T>`: the elements, shared (cloning never copies them). The
    /// element type is the schema's; elements may be null.
    List(Arc<[Value]>),
}

impl Value {
    /// Whether this is SQL NULL.
    #[inline]
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Utf8(Str::new(s))
    }

    /// The value as an `i64` where that is lossless (ints, timestamps, dates).
    #[inline]
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int64(v) | Value::Timestamp(v) => Some(*v),
            Value::Date(d) => Some(*d as i64),
            _ => None,
        }
    }

    /// The value as an `f64` (any number).
    #[inline]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int64(v) => Some(*v as f64),
            Value::Float64(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as a bool.
    #[inline]
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The type of this value alone: a null is `void`, an array's element
    /// type is its first non-null element's (`void` when it has none).
    pub fn data_type(&self) -> DataType {
        match self {
            Value::Null => DataType::Null,
            Value::Boolean(_) => DataType::Boolean,
            Value::Int64(_) => DataType::Int64,
            Value::Float64(_) => DataType::Float64,
            Value::Utf8(_) => DataType::Utf8,
            Value::Timestamp(_) => timestamp_type(),
            Value::Date(_) => DataType::Date32,
            Value::List(items) => list_type(
                items
                    .iter()
                    .find(|v| !v.is_null())
                    .map_or(DataType::Null, Value::data_type),
            ),
        }
    }

    /// An array value.
    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(items.into_iter().collect())
    }

    /// The value as an array's elements.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Utf8(s) => Some(s),
            _ => None,
        }
    }

    /// Parses text as a value of type `dt` (numbers, booleans, timestamps as
    /// `yyyy-MM-dd HH:mm:ss` or ISO 8601, dates); `None` when it does not parse.
    pub fn parse_as(text: &str, dt: &DataType) -> Option<Value> {
        let v = cast_value(&Value::str(text), dt);
        (!v.is_null()).then_some(v)
    }

    /// SQL ordering of two non-null values of comparable types; `None` when
    /// either is null or the types do not compare.
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Int64(a), Int64(b)) => Some(a.cmp(b)),
            (Timestamp(a), Timestamp(b)) => Some(a.cmp(b)),
            (Date(a), Date(b)) => Some(a.cmp(b)),
            (Boolean(a), Boolean(b)) => Some(a.cmp(b)),
            (Utf8(a), Utf8(b)) => Some(a.as_str().cmp(b.as_str())),
            (Float64(a), Float64(b)) => Some(total_cmp_f64(*a, *b)),
            (Int64(a), Float64(b)) => Some(total_cmp_f64(*a as f64, *b)),
            (Float64(a), Int64(b)) => Some(total_cmp_f64(*a, *b as f64)),
            // Arrays order element by element (a null element first), then
            // by length, as Spark orders them.
            (List(a), List(b)) => {
                for (x, y) in a.iter().zip(b.iter()) {
                    let o = match (x.is_null(), y.is_null()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => Ordering::Less,
                        (false, true) => Ordering::Greater,
                        _ => x.sql_cmp(y)?,
                    };
                    if o != Ordering::Equal {
                        return Some(o);
                    }
                }
                Some(a.len().cmp(&b.len()))
            }
            _ => None,
        }
    }
}

/// Spark orders NaN above every other double and treats NaN = NaN.
fn total_cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        // -0.0 == 0.0 in SQL.
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Grouping equality: null equals null, NaN equals NaN, -0.0 equals 0.0 (as
/// in Spark's GROUP BY). This is not the SQL `=` operator, which returns null
/// on null inputs; see the expression evaluator for that.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Null, _) | (_, Value::Null) => false,
            (Value::Float64(a), Value::Float64(b)) => total_cmp_f64(*a, *b) == Ordering::Equal,
            (Value::Int64(a), Value::Int64(b)) => a == b,
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::Date(a), Value::Date(b)) => a == b,
            (Value::Boolean(a), Value::Boolean(b)) => a == b,
            (Value::Utf8(a), Value::Utf8(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => state.write_u8(0),
            Value::Boolean(b) => {
                state.write_u8(1);
                b.hash(state)
            }
            Value::Int64(v) => {
                state.write_u8(2);
                v.hash(state)
            }
            Value::Float64(v) => {
                state.write_u8(3);
                let canonical = if v.is_nan() {
                    f64::NAN
                } else if *v == 0.0 {
                    0.0
                } else {
                    *v
                };
                canonical.to_bits().hash(state)
            }
            Value::Utf8(s) => {
                state.write_u8(4);
                s.hash(state)
            }
            Value::Timestamp(v) => {
                state.write_u8(5);
                v.hash(state)
            }
            Value::Date(v) => {
                state.write_u8(6);
                v.hash(state)
            }
            Value::List(items) => {
                state.write_u8(7);
                items.hash(state)
            }
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int64(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int64(v as i64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float64(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::str(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Utf8(Str::new(v))
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl fmt::Display for Value {
    /// Spark-like text: null as `null`, timestamps `YYYY-MM-DD HH:MM:SS[.ffffff]`
    /// UTC, doubles in shortest round-trip form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Int64(v) => write!(f, "{v}"),
            Value::Float64(v) => crate::time::write_double(f, *v),
            Value::Utf8(s) => f.write_str(s),
            Value::Timestamp(us) => f.write_str(&crate::time::format_timestamp_us(*us)),
            Value::Date(d) => f.write_str(&crate::time::format_date(*d)),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A row of values, up to [`ROW_INLINE`] of them stored inline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Row(SmallVec<[Value; ROW_INLINE]>);

impl Row {
    /// An empty row.
    #[inline]
    pub fn new() -> Row {
        Row(SmallVec::new())
    }

    /// Appends a value.
    #[inline]
    pub fn push(&mut self, v: impl Into<Value>) {
        self.0.push(v.into())
    }

    /// Removes every value, keeping the storage.
    #[inline]
    pub fn clear(&mut self) {
        self.0.clear()
    }
}

impl Deref for Row {
    type Target = [Value];
    #[inline]
    fn deref(&self) -> &[Value] {
        &self.0
    }
}

impl DerefMut for Row {
    #[inline]
    fn deref_mut(&mut self) -> &mut [Value] {
        &mut self.0
    }
}

impl FromIterator<Value> for Row {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Row(iter.into_iter().collect())
    }
}

impl From<Vec<Value>> for Row {
    fn from(v: Vec<Value>) -> Self {
        Row(SmallVec::from_vec(v))
    }
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{v}")?;
        }
        f.write_str("]")
    }
}

/// Builds a [`Row`] from values: `row![1, "a", 2.5]`.
#[macro_export]
macro_rules! row {
    ($($v:expr),* $(,)?) => {{
        let mut r = $crate::Row::new();
        $( r.push($crate::Value::from($v)); )*
        r
    }};
}

/// A row moving through continuous mode, with its times.
#[derive(Clone, Debug)]
pub struct Event {
    /// The values.
    pub row: Row,
    /// Event time in µs (the watermark column's value), or [`NO_TIME`].
    pub event_time_us: i64,
    /// The watermark (µs) in force when this event entered the stream: the
    /// maximum event time of every earlier event minus the delay, or [`NO_TIME`].
    pub watermark_us: i64,
    /// When the event entered the engine, in [`crate::clock::now_ns`] time;
    /// for a generator, the time it was scheduled.
    pub ingest_ns: u64,
}

impl Event {
    /// An event with no event time, ingested at `ingest_ns`.
    #[inline]
    pub fn new(row: Row, ingest_ns: u64) -> Event {
        Event {
            row,
            event_time_us: NO_TIME,
            watermark_us: NO_TIME,
            ingest_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_schemas_parse_like_spark() {
        let s =
            parse_ddl("OrderID double, OrderDate string, `Unit Price` int, ts TIMESTAMP").unwrap();
        assert_eq!(
            to_ddl(&s),
            "OrderID double, OrderDate string, Unit Price bigint, ts timestamp"
        );
        assert!(parse_ddl("a double, b")
            .unwrap_err()
            .to_string()
            .contains("`b` has no type"));
        assert!(parse_ddl("a decimal")
            .unwrap_err()
            .to_string()
            .contains("unknown type 'decimal'"));
        assert!(parse_ddl("a int, A int")
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }

    #[test]
    fn small_rows_stay_inline() {
        let r = row![1i64, "a", 2.5, true, Value::Null];
        assert_eq!(r.len(), 5);
        assert!(!r.0.spilled());
    }

    #[test]
    fn grouping_equality_treats_nan_and_null_as_equal() {
        assert_eq!(Value::Float64(f64::NAN), Value::Float64(f64::NAN));
        assert_eq!(Value::Null, Value::Null);
        assert_eq!(Value::Float64(-0.0), Value::Float64(0.0));
        assert_ne!(Value::Int64(1), Value::Float64(1.0));
    }

    #[test]
    fn sql_cmp_orders_mixed_numbers_and_rejects_null() {
        assert_eq!(
            Value::Int64(1).sql_cmp(&Value::Float64(1.5)),
            Some(Ordering::Less)
        );
        assert_eq!(Value::Null.sql_cmp(&Value::Int64(1)), None);
    }
}
