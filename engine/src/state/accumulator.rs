//! Aggregate functions and their running accumulators.

use serde::{Deserialize, Serialize};

use crate::schema::{DataType, Value};

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggFunc {
    /// `count(*)`: every row.
    CountStar,
    /// `count(e)`: rows where `e` is not null.
    Count,
    /// `sum(e)`: null when no non-null input.
    Sum,
    /// `avg(e)`: a double; null when no non-null input.
    Avg,
    /// `min(e)`.
    Min,
    /// `max(e)`.
    Max,
}

impl AggFunc {
    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::CountStar | AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
        }
    }

    /// The result type for an input of type `input` (Spark's rules).
    pub fn result_type(self, input: &DataType) -> DataType {
        match self {
            AggFunc::CountStar | AggFunc::Count => DataType::Int64,
            AggFunc::Avg => DataType::Float64,
            AggFunc::Sum => match input {
                DataType::Int64 => DataType::Int64,
                _ => DataType::Float64,
            },
            AggFunc::Min | AggFunc::Max => input.clone(),
        }
    }

    /// A fresh accumulator for an input of type `input`.
    pub fn new_accumulator(self, input: &DataType) -> Accumulator {
        match self {
            AggFunc::CountStar | AggFunc::Count => Accumulator::Count(0),
            AggFunc::Sum if *input == DataType::Int64 => Accumulator::SumInt(None),
            AggFunc::Sum => Accumulator::SumFloat(None),
            AggFunc::Avg => Accumulator::Avg { sum: 0.0, count: 0 },
            AggFunc::Min => Accumulator::Min(Value::Null),
            AggFunc::Max => Accumulator::Max(Value::Null),
        }
    }
}

/// The running state of one aggregate for one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Accumulator {
    /// A count.
    Count(i64),
    /// An integer sum (wrapping, as Spark's non-ANSI mode); `None` until a non-null input.
    SumInt(Option<i64>),
    /// A double sum; `None` until a non-null input.
    SumFloat(Option<f64>),
    /// An average's running sum and count.
    Avg {
        /// Sum of the inputs.
        sum: f64,
        /// Number of non-null inputs.
        count: i64,
    },
    /// The least value so far (null until a non-null input).
    Min(Value),
    /// The greatest value so far.
    Max(Value),
}

impl Accumulator {
    /// Adds one input. `count(*)` passes [`Value::Boolean`]`(true)` for every row.
    #[inline]
    pub fn update(&mut self, v: &Value) {
        if v.is_null() {
            return;
        }
        match self {
            Accumulator::Count(n) => *n += 1,
            Accumulator::SumInt(s) => {
                let x = v.as_i64().unwrap_or(0);
                *s = Some(s.unwrap_or(0).wrapping_add(x));
            }
            Accumulator::SumFloat(s) => {
                let x = v.as_f64().unwrap_or(0.0);
                *s = Some(s.unwrap_or(0.0) + x);
            }
            Accumulator::Avg { sum, count } => {
                *sum += v.as_f64().unwrap_or(0.0);
                *count += 1;
            }
            Accumulator::Min(m) => {
                if m.is_null() || v.sql_cmp(m) == Some(std::cmp::Ordering::Less) {
                    *m = v.clone();
                }
            }
            Accumulator::Max(m) => {
                if m.is_null() || v.sql_cmp(m) == Some(std::cmp::Ordering::Greater) {
                    *m = v.clone();
                }
            }
        }
    }

    /// Folds another partial accumulator of the same function into this one.
    pub fn merge(&mut self, other: &Accumulator) {
        match (self, other) {
            (Accumulator::Count(a), Accumulator::Count(b)) => *a += b,
            (Accumulator::SumInt(a), Accumulator::SumInt(Some(b))) => {
                *a = Some(a.unwrap_or(0).wrapping_add(*b))
            }
            (Accumulator::SumFloat(a), Accumulator::SumFloat(Some(b))) => {
                *a = Some(a.unwrap_or(0.0) + b)
            }
            (Accumulator::Avg { sum, count }, Accumulator::Avg { sum: s2, count: c2 }) => {
                *sum += s2;
                *count += c2;
            }
            (a @ Accumulator::Min(_), Accumulator::Min(v))
            | (a @ Accumulator::Max(_), Accumulator::Max(v)) => a.update(v),
            _ => {}
        }
    }

    /// The aggregate's current result.
    #[inline]
    pub fn result(&self) -> Value {
        match self {
            Accumulator::Count(n) => Value::Int64(*n),
            Accumulator::SumInt(s) => s.map_or(Value::Null, Value::Int64),
            Accumulator::SumFloat(s) => s.map_or(Value::Null, Value::Float64),
            Accumulator::Avg { count: 0, .. } => Value::Null,
            Accumulator::Avg { sum, count } => Value::Float64(sum / *count as f64),
            Accumulator::Min(v) | Accumulator::Max(v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_are_ignored_and_empty_sums_are_null() {
        let mut sum = AggFunc::Sum.new_accumulator(&DataType::Int64);
        let mut cnt = AggFunc::Count.new_accumulator(&DataType::Int64);
        let mut avg = AggFunc::Avg.new_accumulator(&DataType::Int64);
        for acc in [&mut sum, &mut cnt, &mut avg] {
            acc.update(&Value::Null);
        }
        assert_eq!(sum.result(), Value::Null);
        assert_eq!(cnt.result(), Value::Int64(0));
        assert_eq!(avg.result(), Value::Null);
        for v in [1i64, 2, 6] {
            for acc in [&mut sum, &mut cnt, &mut avg] {
                acc.update(&Value::Int64(v));
            }
        }
        assert_eq!(sum.result(), Value::Int64(9));
        assert_eq!(cnt.result(), Value::Int64(3));
        assert_eq!(avg.result(), Value::Float64(3.0));
    }

    #[test]
    fn min_max_over_strings_and_merge() {
        let mut min = AggFunc::Min.new_accumulator(&DataType::Utf8);
        let mut max = AggFunc::Max.new_accumulator(&DataType::Utf8);
        for s in ["pear", "apple", "zucchini"] {
            min.update(&Value::str(s));
            max.update(&Value::str(s));
        }
        assert_eq!(min.result(), Value::str("apple"));
        assert_eq!(max.result(), Value::str("zucchini"));
        let mut other = AggFunc::Min.new_accumulator(&DataType::Utf8);
        other.update(&Value::str("aardvark"));
        min.merge(&other);
        assert_eq!(min.result(), Value::str("aardvark"));
    }
}
