//! Aggregate functions and their running accumulators.

use serde::{Deserialize, Serialize};

use super::distinct::{self, DistinctSketch};
use crate::schema::{list_type, DataType, Value};

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
    /// `first(e[, ignoreNulls])`: the first value in arrival (row) order;
    /// without `ignore_nulls` a null first value is the result.
    First {
        /// Skip nulls: the first non-null value.
        ignore_nulls: bool,
    },
    /// `last(e[, ignoreNulls])`: the last value in arrival (row) order.
    Last {
        /// Skip nulls: the last non-null value.
        ignore_nulls: bool,
    },
    /// `stddev_samp(e)` (`stddev`, `std`): a double; null for fewer than two
    /// non-null inputs.
    StddevSamp,
    /// `stddev_pop(e)`: a double; null without a non-null input.
    StddevPop,
    /// `var_samp(e)` (`variance`): a double; null for fewer than two
    /// non-null inputs.
    VarSamp,
    /// `var_pop(e)`: a double; null without a non-null input.
    VarPop,
    /// `approx_count_distinct(e[, rsd])`: a bigint estimate of the number of
    /// distinct non-null values, from `2^precision` HyperLogLog registers
    /// (see [`distinct::precision_for_rsd`]).
    ApproxCountDistinct {
        /// Register-index bits, 4 to 18 (9 for Spark's default rsd 0.05).
        precision: u8,
    },
    /// `collect_list(e)`: the group's non-null values in arrival order, as
    /// an array (empty when there is none).
    CollectList,
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
            AggFunc::First { .. } => "first",
            AggFunc::Last { .. } => "last",
            AggFunc::StddevSamp => "stddev_samp",
            AggFunc::StddevPop => "stddev_pop",
            AggFunc::VarSamp => "var_samp",
            AggFunc::VarPop => "var_pop",
            AggFunc::ApproxCountDistinct { .. } => "approx_count_distinct",
            AggFunc::CollectList => "collect_list",
        }
    }

    /// Whether the argument must be a number (or null).
    pub fn needs_number(self) -> bool {
        matches!(
            self,
            AggFunc::Sum
                | AggFunc::Avg
                | AggFunc::StddevSamp
                | AggFunc::StddevPop
                | AggFunc::VarSamp
                | AggFunc::VarPop
        )
    }

    /// The result type for an input of type `input` (Spark's rules).
    pub fn result_type(self, input: &DataType) -> DataType {
        match self {
            AggFunc::CountStar | AggFunc::Count | AggFunc::ApproxCountDistinct { .. } => {
                DataType::Int64
            }
            AggFunc::Avg
            | AggFunc::StddevSamp
            | AggFunc::StddevPop
            | AggFunc::VarSamp
            | AggFunc::VarPop => DataType::Float64,
            AggFunc::Sum => match input {
                DataType::Int64 => DataType::Int64,
                _ => DataType::Float64,
            },
            AggFunc::Min | AggFunc::Max | AggFunc::First { .. } | AggFunc::Last { .. } => {
                input.clone()
            }
            AggFunc::CollectList => list_type(input.clone()),
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
            AggFunc::First { ignore_nulls } => Accumulator::First {
                value: None,
                ignore_nulls,
            },
            AggFunc::Last { ignore_nulls } => Accumulator::Last {
                value: None,
                ignore_nulls,
            },
            AggFunc::StddevSamp => {
                Accumulator::Moments(Box::new(Moments::new(Statistic::StddevSamp)))
            }
            AggFunc::StddevPop => {
                Accumulator::Moments(Box::new(Moments::new(Statistic::StddevPop)))
            }
            AggFunc::VarSamp => Accumulator::Moments(Box::new(Moments::new(Statistic::VarSamp))),
            AggFunc::VarPop => Accumulator::Moments(Box::new(Moments::new(Statistic::VarPop))),
            AggFunc::ApproxCountDistinct { precision } => {
                Accumulator::Distinct(Box::new(DistinctSketch::new(precision)))
            }
            AggFunc::CollectList => Accumulator::CollectList(Vec::new()),
        }
    }
}

/// Which statistic a [`Moments`] accumulator reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Statistic {
    /// Sample standard deviation.
    StddevSamp,
    /// Population standard deviation.
    StddevPop,
    /// Sample variance.
    VarSamp,
    /// Population variance.
    VarPop,
}

/// The running count, mean and sum of squared deviations from the mean of
/// the non-null inputs (Welford's update; Chan's merge of two partials),
/// and the statistic to report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Number of non-null inputs.
    pub n: i64,
    /// Their mean.
    pub mean: f64,
    /// The sum of their squared deviations from the mean.
    pub m2: f64,
    /// What [`Accumulator::result`] reports.
    pub of: Statistic,
}

impl Moments {
    /// No input yet.
    pub fn new(of: Statistic) -> Moments {
        Moments {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            of,
        }
    }

    /// Adds one input.
    #[inline]
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        let delta_n = delta / self.n as f64;
        self.mean += delta_n;
        self.m2 += delta * (delta - delta_n);
    }

    /// Folds in a partial of later inputs.
    pub fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            // Exactly the partial: the same result as adding its inputs here.
            self.n = other.n;
            self.mean = other.mean;
            self.m2 = other.m2;
            return;
        }
        let (n1, n2) = (self.n as f64, other.n as f64);
        let n = n1 + n2;
        let delta = other.mean - self.mean;
        let delta_n = delta / n;
        self.mean += delta_n * n2;
        self.m2 += other.m2 + delta * delta_n * n1 * n2;
        self.n += other.n;
    }

    /// The statistic: null without input; the sample statistics are null
    /// for one input (Spark 3's `spark.sql.legacy.statisticalAggregate=false`).
    pub fn result(&self) -> Value {
        let n = self.n as f64;
        let var = match (self.of, self.n) {
            (_, 0) => return Value::Null,
            (Statistic::StddevSamp | Statistic::VarSamp, 1) => return Value::Null,
            (Statistic::StddevSamp | Statistic::VarSamp, _) => self.m2 / (n - 1.0),
            (Statistic::StddevPop | Statistic::VarPop, _) => self.m2 / n,
        };
        Value::Float64(match self.of {
            Statistic::StddevSamp | Statistic::StddevPop => var.sqrt(),
            Statistic::VarSamp | Statistic::VarPop => var,
        })
    }
}

/// The running state of one aggregate for one group.
///
/// Checkpoints store it by variant index: new variants go at the end.
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
    /// `first`: the first value taken (`Some(Null)`: a null was first).
    First {
        /// The first value, once there is one.
        value: Option<Value>,
        /// Whether nulls are skipped.
        ignore_nulls: bool,
    },
    /// `last`: the last value taken (`Some(Null)`: a null was last).
    Last {
        /// The last value, once there is one.
        value: Option<Value>,
        /// Whether nulls are skipped.
        ignore_nulls: bool,
    },
    /// The standard deviations and variances: boxed, so that the common
    /// accumulators are 32 bytes rather than 40 (every group holds room for
    /// four inline). Serialised as the value itself.
    Moments(Box<Moments>),
    /// `approx_count_distinct`'s sketch.
    Distinct(Box<DistinctSketch>),
    /// `collect_list`'s values so far, in arrival order.
    CollectList(Vec<Value>),
}

impl Accumulator {
    /// Adds one input. `count(*)` passes [`Value::Boolean`]`(true)` for every row.
    #[inline]
    pub fn update(&mut self, v: &Value) {
        match self {
            Accumulator::First {
                value,
                ignore_nulls,
            } => {
                if value.is_none() && !(*ignore_nulls && v.is_null()) {
                    *value = Some(v.clone());
                }
            }
            Accumulator::Last {
                value,
                ignore_nulls,
            } => {
                if !(*ignore_nulls && v.is_null()) {
                    *value = Some(v.clone());
                }
            }
            _ if v.is_null() => {}
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
            Accumulator::Moments(m) => {
                if let Some(x) = v.as_f64() {
                    m.push(x);
                }
            }
            Accumulator::Distinct(s) => {
                if let Some(h) = distinct::hash_value(v) {
                    s.insert_hash(h);
                }
            }
            Accumulator::CollectList(items) => items.push(v.clone()),
        }
    }

    /// Folds another partial accumulator of the same function into this
    /// one; `other` holds the later inputs (what `first`/`last` go by).
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
            (
                Accumulator::First {
                    value: a @ None, ..
                },
                Accumulator::First { value: Some(b), .. },
            ) => *a = Some(b.clone()),
            (Accumulator::Last { value: a, .. }, Accumulator::Last { value: Some(b), .. }) => {
                *a = Some(b.clone());
            }
            (Accumulator::Moments(a), Accumulator::Moments(b)) => a.merge(b),
            (Accumulator::Distinct(a), Accumulator::Distinct(b)) => a.merge(b),
            (Accumulator::CollectList(a), Accumulator::CollectList(b)) => {
                a.extend(b.iter().cloned())
            }
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
            Accumulator::First { value, .. } | Accumulator::Last { value, .. } => {
                value.clone().unwrap_or(Value::Null)
            }
            Accumulator::Moments(m) => m.result(),
            Accumulator::Distinct(s) => Value::Int64(s.estimate()),
            Accumulator::CollectList(items) => Value::list(items.iter().cloned()),
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

    fn feed(f: AggFunc, t: &DataType, values: &[Value]) -> Accumulator {
        let mut acc = f.new_accumulator(t);
        for v in values {
            acc.update(v);
        }
        acc
    }

    #[test]
    fn first_and_last_keep_nulls_unless_told_to_skip_them() {
        let vals = [Value::Null, Value::Int64(2), Value::Int64(3), Value::Null];
        let t = DataType::Int64;
        let first = |ignore_nulls| feed(AggFunc::First { ignore_nulls }, &t, &vals).result();
        let last = |ignore_nulls| feed(AggFunc::Last { ignore_nulls }, &t, &vals).result();
        assert_eq!(first(false), Value::Null);
        assert_eq!(first(true), Value::Int64(2));
        assert_eq!(last(false), Value::Null);
        assert_eq!(last(true), Value::Int64(3));
        // Partials merged in order give what one pass gives: a null seen
        // first stays first.
        for ignore_nulls in [false, true] {
            for split in 0..=vals.len() {
                let (a, b) = vals.split_at(split);
                for f in [
                    AggFunc::First { ignore_nulls },
                    AggFunc::Last { ignore_nulls },
                ] {
                    let mut acc = feed(f, &t, a);
                    acc.merge(&feed(f, &t, b));
                    assert_eq!(acc.result(), feed(f, &t, &vals).result(), "{f:?} {split}");
                }
            }
        }
        assert_eq!(
            feed(
                AggFunc::First {
                    ignore_nulls: false
                },
                &t,
                &[]
            )
            .result(),
            Value::Null
        );
    }

    #[test]
    fn standard_deviations_and_variances_by_hand() {
        // 2 4 4 4 5 5 7 9: mean 5, squared deviations 9+1+1+1+0+0+4+16 = 32.
        let mut vals: Vec<Value> = [2, 4, 4, 4, 5, 5, 7, 9].map(Value::Int64).to_vec();
        vals.insert(3, Value::Null);
        let t = DataType::Int64;
        let r = |f: AggFunc, v: &[Value]| feed(f, &t, v).result();
        let close = |v: Value, want: f64| {
            let got = v.as_f64().unwrap();
            assert!((got - want).abs() < 1e-12, "{got} != {want}");
        };
        close(r(AggFunc::VarPop, &vals), 4.0);
        close(r(AggFunc::StddevPop, &vals), 2.0);
        close(r(AggFunc::VarSamp, &vals), 32.0 / 7.0);
        close(r(AggFunc::StddevSamp, &vals), (32.0f64 / 7.0).sqrt());
        // One value: the sample statistics are null, the population ones 0.
        let one = [Value::Float64(3.5), Value::Null];
        assert_eq!(r(AggFunc::VarSamp, &one), Value::Null);
        assert_eq!(r(AggFunc::StddevSamp, &one), Value::Null);
        assert_eq!(r(AggFunc::VarPop, &one), Value::Float64(0.0));
        assert_eq!(r(AggFunc::StddevPop, &one), Value::Float64(0.0));
        // No non-null value: all null.
        for f in [
            AggFunc::VarSamp,
            AggFunc::VarPop,
            AggFunc::StddevSamp,
            AggFunc::StddevPop,
        ] {
            assert_eq!(r(f, &[Value::Null]), Value::Null);
            assert_eq!(r(f, &[]), Value::Null);
        }
        // Merging partials, any split, gives the one-pass answer.
        for split in 0..=vals.len() {
            let (a, b) = vals.split_at(split);
            let mut acc = feed(AggFunc::VarSamp, &t, a);
            acc.merge(&feed(AggFunc::VarSamp, &t, b));
            close(acc.result(), 32.0 / 7.0);
        }
        // Stable where the naive sum of squares is not.
        let big: Vec<Value> = [1e9 + 4.0, 1e9 + 7.0, 1e9 + 13.0, 1e9 + 16.0]
            .map(Value::Float64)
            .to_vec();
        close(r(AggFunc::VarSamp, &big), 30.0);
    }

    fn distinct_of(values: impl Iterator<Item = Value>) -> Accumulator {
        let mut acc =
            AggFunc::ApproxCountDistinct { precision: 9 }.new_accumulator(&DataType::Int64);
        for v in values {
            acc.update(&v);
        }
        acc
    }

    #[test]
    fn approx_count_distinct_is_exact_when_small_and_close_when_large() {
        assert_eq!(distinct_of(std::iter::empty()).result(), Value::Int64(0));
        assert_eq!(
            distinct_of([Value::Null].into_iter()).result(),
            Value::Int64(0)
        );
        // Repeats and nulls are not counted.
        let small = (0..30).flat_map(|i| [Value::Int64(i % 10), Value::Null]);
        assert_eq!(distinct_of(small).result(), Value::Int64(10));
        for n in [1i64, 2, 3, 5, 20, 50] {
            let est = distinct_of((0..n).map(Value::Int64))
                .result()
                .as_i64()
                .unwrap();
            let err = (est - n).abs() as f64 / n as f64;
            assert!(err <= 0.05, "{n}: {est}");
        }
        let n = 100_000i64;
        let est = distinct_of((0..n).map(Value::Int64))
            .result()
            .as_i64()
            .unwrap();
        let err = (est - n).abs() as f64 / n as f64;
        assert!(err <= 3.0 * 0.05, "{est} for {n}");
        // Strings too, and partials merge as one sketch.
        let mut a = distinct_of((0..5000).map(|i| Value::str(&format!("k{i}"))));
        let b = distinct_of((2500..7500).map(|i| Value::str(&format!("k{i}"))));
        a.merge(&b);
        let est = a.result().as_i64().unwrap();
        assert!((est - 7500).abs() as f64 <= 7500.0 * 0.15, "{est}");
    }

    #[test]
    fn a_restored_sketch_keeps_counting_without_recounting() {
        let acc = distinct_of((0..1000).map(Value::Int64));
        let bytes = postcard::to_stdvec(&acc).unwrap();
        let mut back: Accumulator = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, acc);
        // Values seen before the restart add nothing; new ones count.
        let before = back.result();
        for i in 0..1000 {
            back.update(&Value::Int64(i));
        }
        assert_eq!(back.result(), before);
        for i in 1000..2000 {
            back.update(&Value::Int64(i));
        }
        assert_eq!(back, distinct_of((0..2000).map(Value::Int64)));
    }
}
