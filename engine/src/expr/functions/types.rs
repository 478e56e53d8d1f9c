//! Spark's implicit coercions for function arguments.
//!
//! Owns which argument types a function accepts for a wanted type (a
//! string where a number is wanted is cast to double, a date where a
//! timestamp is wanted is cast, anything where a string is wanted is cast to
//! text) and the wider common type of several arguments (`coalesce`,
//! `greatest`, `CASE`). It must not build kernels.

use crate::schema::{timestamp_type, type_name, DataType};

/// A kind of argument a function wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// A double (numbers and strings cast to it).
    Double,
    /// A bigint (strings cast to it; a double is refused, as in Spark).
    Long,
    /// A string (anything is cast to text).
    Str,
    /// A timestamp (strings and dates cast to it).
    Timestamp,
    /// A date (strings and timestamps cast to it).
    Date,
    /// A boolean.
    Bool,
}

impl Want {
    fn describe(self) -> &'static str {
        match self {
            Want::Double => "a number",
            Want::Long => "an integer",
            Want::Str => "a string",
            Want::Timestamp => "a timestamp",
            Want::Date => "a date",
            Want::Bool => "a boolean",
        }
    }

    fn target(self) -> DataType {
        match self {
            Want::Double => DataType::Float64,
            Want::Long => DataType::Int64,
            Want::Str => DataType::Utf8,
            Want::Timestamp => timestamp_type(),
            Want::Date => DataType::Date32,
            Want::Bool => DataType::Boolean,
        }
    }
}

/// Whether `dt` is a number.
pub(crate) fn is_numeric(dt: &DataType) -> bool {
    matches!(dt, DataType::Int64 | DataType::Float64)
}

/// The type argument `i` of `name` is cast to, when its type `dt` is
/// accepted where `want` is wanted.
pub(crate) fn coerce(name: &str, i: usize, dt: &DataType, want: Want) -> Result<DataType, String> {
    let ok = matches!(
        (dt, want),
        (DataType::Null, _)
            | (DataType::Utf8, Want::Str)
            | (
                DataType::Int64
                    | DataType::Float64
                    | DataType::Boolean
                    | DataType::Timestamp(..)
                    | DataType::Date32,
                Want::Str
            )
            | (
                DataType::Utf8,
                Want::Double | Want::Long | Want::Timestamp | Want::Date
            )
            | (DataType::Int64 | DataType::Float64, Want::Double)
            | (DataType::Int64, Want::Long)
            | (
                DataType::Timestamp(..) | DataType::Date32,
                Want::Timestamp | Want::Date
            )
            | (DataType::Boolean, Want::Bool)
    );
    if ok {
        Ok(want.target())
    } else {
        Err(format!(
            "the {} argument of {name} must be {}, got {}",
            super::ordinal(i),
            want.describe(),
            type_name(dt)
        ))
    }
}

/// A number argument: bigint stays bigint, double stays double, anything
/// else castable to a number becomes double.
pub(crate) fn numeric(name: &str, i: usize, dt: &DataType) -> Result<DataType, String> {
    if is_numeric(dt) {
        Ok(dt.clone())
    } else {
        coerce(name, i, dt, Want::Double)
    }
}

/// Spark's wider type of two types; `strings`: whether a string and a
/// number, date or timestamp widen to a string (`coalesce`, `CASE`), or do
/// not (`greatest`, `least`).
pub(crate) fn wider(a: &DataType, b: &DataType, strings: bool) -> Option<DataType> {
    use DataType as T;
    Some(match (a, b) {
        _ if a == b => a.clone(),
        (T::Null, t) | (t, T::Null) => t.clone(),
        (T::Int64, T::Float64) | (T::Float64, T::Int64) => T::Float64,
        (T::Timestamp(..), T::Timestamp(..)) => timestamp_type(),
        (T::Timestamp(..), T::Date32) | (T::Date32, T::Timestamp(..)) => timestamp_type(),
        (T::List(x), T::List(y)) => {
            crate::schema::list_type(wider(x.data_type(), y.data_type(), strings)?)
        }
        (T::Utf8, t) | (t, T::Utf8) if strings && *t != T::Boolean && !matches!(t, T::List(_)) => {
            T::Utf8
        }
        _ => return None,
    })
}

/// The wider type of every type in `types`, or the message naming them.
pub(crate) fn common(what: &str, types: &[DataType], strings: bool) -> Result<DataType, String> {
    let mut acc = DataType::Null;
    for t in types {
        acc = match wider(&acc, t, strings) {
            Some(w) => w,
            None => {
                let names: Vec<String> = types.iter().map(|t| type_name(t).into_owned()).collect();
                return Err(format!(
                    "the arguments of {what} need a common type, got {}",
                    names.join(", ")
                ));
            }
        };
    }
    Ok(acc)
}
