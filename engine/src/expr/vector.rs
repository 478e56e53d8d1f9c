//! The Arrow evaluator: one bound expression over a whole record batch.
//!
//! The hot operators (columns, literals, arithmetic, comparisons, boolean
//! logic, null tests, `CASE`) run on Arrow compute kernels; a function call
//! runs its column kernel from the function registry. Casts evaluate element
//! by element with the row evaluator's own code. Property tests hold every
//! kernel path to the row evaluator.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array,
    Scalar, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::kernels::{boolean, cmp, numeric, zip::zip};
use arrow::compute::{cast, nullif};
use arrow::datatypes::{Float64Type, Int64Type};
use arrow::record_batch::RecordBatch;

use super::bind::{BoundCall, BoundCase};
use super::functions::true_mask;
use super::{BinaryOp, BoundExpr};
use crate::error::{EngineError, Result};
use crate::schema::arrow::{build_array, value_at};
use crate::schema::{timestamp_type, DataType, Row, Value};

fn kernel_err(e: arrow::error::ArrowError) -> EngineError {
    EngineError::Eval(e.to_string())
}

/// A constant as a column of `len` slots, built in one pass per type.
fn literal_array(v: &Value, len: usize) -> Result<ArrayRef> {
    Ok(match v {
        Value::Null => new_null_array(&DataType::Null, len),
        Value::Boolean(b) => Arc::new(BooleanArray::from(vec![*b; len])),
        Value::Int64(x) => Arc::new(Int64Array::from_value(*x, len)),
        Value::Float64(x) => Arc::new(Float64Array::from_value(*x, len)),
        Value::Utf8(s) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            s.as_str(),
            len,
        ))),
        Value::Timestamp(x) => {
            let a = TimestampMicrosecondArray::from_value(*x, len);
            match timestamp_type() {
                DataType::Timestamp(_, tz) => Arc::new(a.with_timezone_opt(tz)),
                _ => Arc::new(a),
            }
        }
        Value::Date(d) => Arc::new(Date32Array::from_value(*d, len)),
        Value::List(_) => build_array(&v.data_type(), len, |_| v.clone())?,
    })
}

fn as_f64(a: &ArrayRef) -> Result<ArrayRef> {
    match a.data_type() {
        DataType::Float64 => Ok(a.clone()),
        DataType::Null => Ok(new_null_array(&DataType::Float64, a.len())),
        _ => cast(a, &DataType::Float64).map_err(kernel_err),
    }
}

fn as_i64(a: &ArrayRef) -> Result<ArrayRef> {
    match a.data_type() {
        DataType::Int64 => Ok(a.clone()),
        DataType::Null => Ok(new_null_array(&DataType::Int64, a.len())),
        _ => cast(a, &DataType::Int64).map_err(kernel_err),
    }
}

/// Sets to null every slot where `divisor` is zero (division and modulo by
/// zero are null in Spark's default mode).
fn null_zero_divisor(divisor: &ArrayRef) -> Result<ArrayRef> {
    let zero = match divisor.data_type() {
        DataType::Int64 => cmp::eq(divisor, &Int64Array::new_scalar(0)).map_err(kernel_err)?,
        // -0.0 is a zero divisor too (Arrow's total order would say otherwise).
        _ => divisor
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|v| v == 0.0))
            .collect(),
    };
    nullif(divisor, &zero).map_err(kernel_err)
}

impl BoundExpr {
    /// Evaluates over every row of `batch`.
    pub fn eval_array(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        let n = batch.num_rows();
        match self {
            BoundExpr::Column(i) => Ok(batch.column(*i).clone()),
            BoundExpr::Literal(v) => literal_array(v, n),
            BoundExpr::Arith {
                op,
                left,
                right,
                int,
            } => {
                let (l, r) = (left.eval_array(batch)?, right.eval_array(batch)?);
                let (l, r) = if *int {
                    (as_i64(&l)?, as_i64(&r)?)
                } else {
                    (as_f64(&l)?, as_f64(&r)?)
                };
                match op {
                    BinaryOp::Add if *int => numeric::add_wrapping(&l, &r),
                    BinaryOp::Sub if *int => numeric::sub_wrapping(&l, &r),
                    BinaryOp::Mul if *int => numeric::mul_wrapping(&l, &r),
                    BinaryOp::Add => numeric::add(&l, &r),
                    BinaryOp::Sub => numeric::sub(&l, &r),
                    BinaryOp::Mul => numeric::mul(&l, &r),
                    BinaryOp::Mod if *int => {
                        // i64::MIN % -1 overflows in the kernel; the row
                        // evaluator wraps it to 0. Evaluate that case by hand.
                        let r = null_zero_divisor(&r)?;
                        let (la, ra) =
                            (l.as_primitive::<Int64Type>(), r.as_primitive::<Int64Type>());
                        let out: Int64Array = la
                            .iter()
                            .zip(ra.iter())
                            .map(|(a, b)| Some(a?.wrapping_rem(b?)))
                            .collect();
                        return Ok(Arc::new(out));
                    }
                    BinaryOp::IntDiv => {
                        // Truncating division; by zero is null, and
                        // i64::MIN div -1 wraps as in the row evaluator.
                        let r = null_zero_divisor(&r)?;
                        let (la, ra) =
                            (l.as_primitive::<Int64Type>(), r.as_primitive::<Int64Type>());
                        let out: Int64Array = la
                            .iter()
                            .zip(ra.iter())
                            .map(|(a, b)| Some(a?.wrapping_div(b?)))
                            .collect();
                        return Ok(Arc::new(out));
                    }
                    BinaryOp::Mod => numeric::rem(&l, &null_zero_divisor(&r)?),
                    _ => return self.eval_elementwise(batch),
                }
                .map_err(kernel_err)
            }
            BoundExpr::Div(left, right) => {
                let l = as_f64(&left.eval_array(batch)?)?;
                let r = null_zero_divisor(&as_f64(&right.eval_array(batch)?)?)?;
                numeric::div(&l, &r).map_err(kernel_err)
            }
            BoundExpr::Compare { op, left, right } => {
                let (mut l, mut r) = (left.eval_array(batch)?, right.eval_array(batch)?);
                let null_side =
                    l.data_type() == &DataType::Null || r.data_type() == &DataType::Null;
                if null_side && *op == BinaryOp::NullSafeEq {
                    // x <=> NULL is whether x is null.
                    let other = if l.data_type() == &DataType::Null {
                        &r
                    } else {
                        &l
                    };
                    return Ok(Arc::new(is_null(other, true)));
                }
                if null_side {
                    return Ok(new_null_array(&DataType::Boolean, n));
                }
                if l.data_type().is_nested() {
                    // Arrays compare element by element through the row
                    // comparison; Arrow's kernels take flat types only.
                    return self.eval_elementwise(batch);
                }
                if l.data_type() != r.data_type() {
                    let both_numeric = [l.data_type(), r.data_type()]
                        .iter()
                        .all(|t| matches!(t, DataType::Int64 | DataType::Float64));
                    if !both_numeric {
                        return self.eval_elementwise(batch);
                    }
                    l = as_f64(&l)?;
                    r = as_f64(&r)?;
                }
                if l.data_type() == &DataType::Float64 {
                    // Spark: -0.0 = 0.0 and NaN = NaN (Arrow's total order
                    // separates zeros and NaNs by sign).
                    l = normalize_zero(&l)?;
                    r = normalize_zero(&r)?;
                }
                let out = match op {
                    BinaryOp::Eq => cmp::eq(&l, &r),
                    BinaryOp::NotEq => cmp::neq(&l, &r),
                    BinaryOp::Lt => cmp::lt(&l, &r),
                    BinaryOp::LtEq => cmp::lt_eq(&l, &r),
                    BinaryOp::Gt => cmp::gt(&l, &r),
                    BinaryOp::GtEq => cmp::gt_eq(&l, &r),
                    BinaryOp::NullSafeEq => cmp::not_distinct(&l, &r),
                    _ => return self.eval_elementwise(batch),
                }
                .map_err(kernel_err)?;
                Ok(Arc::new(out))
            }
            BoundExpr::And(l, r) | BoundExpr::Or(l, r) => {
                let la = bool_array(&l.eval_array(batch)?)?;
                let ra = bool_array(&r.eval_array(batch)?)?;
                let out = if matches!(self, BoundExpr::And(..)) {
                    boolean::and_kleene(&la, &ra)
                } else {
                    boolean::or_kleene(&la, &ra)
                }
                .map_err(kernel_err)?;
                Ok(Arc::new(out))
            }
            BoundExpr::Not(e) => {
                let a = bool_array(&e.eval_array(batch)?)?;
                Ok(Arc::new(boolean::not(&a).map_err(kernel_err)?))
            }
            BoundExpr::IsNull(e) => {
                let a = e.eval_array(batch)?;
                Ok(Arc::new(is_null(&a, true)))
            }
            BoundExpr::IsNotNull(e) => {
                let a = e.eval_array(batch)?;
                Ok(Arc::new(is_null(&a, false)))
            }
            BoundExpr::Negate(e) => {
                let a = e.eval_array(batch)?;
                match a.data_type() {
                    DataType::Int64 => numeric::neg_wrapping(&a).map_err(kernel_err),
                    DataType::Float64 => numeric::neg(&a).map_err(kernel_err),
                    _ => Ok(new_null_array(&DataType::Null, n)),
                }
            }
            BoundExpr::Call(c) => c.eval_array(batch),
            BoundExpr::Case(c) => c.eval_array(batch),
            _ => self.eval_elementwise(batch),
        }
    }

    /// The output type of this expression over `batch`'s schema.
    fn data_type_over(&self, batch: &RecordBatch) -> DataType {
        // Evaluate on an empty slice: cheap, and exact by construction.
        self.eval_array(&batch.slice(0, 0))
            .map(|a| a.data_type().clone())
            .unwrap_or(DataType::Null)
    }

    /// Element by element with the row evaluator.
    fn eval_elementwise(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        let n = batch.num_rows();
        let mut values = Vec::with_capacity(n);
        let mut row = Row::new();
        for i in 0..n {
            row.clear();
            for c in batch.columns() {
                row.push(value_at(c.as_ref(), i)?);
            }
            values.push(self.eval(&row));
        }
        build_array(&self.static_type(batch), n, |i| values[i].clone())
    }

    /// The result type of this node over `batch`'s schema.
    fn static_type(&self, batch: &RecordBatch) -> DataType {
        match self {
            BoundExpr::Cast { to, .. } => to.clone(),
            BoundExpr::Call(c) => c.ret.clone(),
            BoundExpr::Case(c) => c.ret.clone(),
            BoundExpr::Compare { .. }
            | BoundExpr::And(..)
            | BoundExpr::Or(..)
            | BoundExpr::Not(_)
            | BoundExpr::IsNull(_)
            | BoundExpr::IsNotNull(_) => DataType::Boolean,
            BoundExpr::Div(..) => DataType::Float64,
            BoundExpr::Arith { int: true, .. } => DataType::Int64,
            BoundExpr::Arith { int: false, .. } => DataType::Float64,
            BoundExpr::Negate(e) => e.data_type_over(batch),
            BoundExpr::Column(i) => batch.schema().field(*i).data_type().clone(),
            BoundExpr::Literal(v) => v.data_type(),
        }
    }
}

/// An argument array of the type it stands for: a null array (a bare NULL)
/// becomes a null array of `dt`.
fn typed(a: ArrayRef, dt: &DataType) -> ArrayRef {
    if a.data_type() == &DataType::Null && *dt != DataType::Null {
        new_null_array(dt, a.len())
    } else {
        a
    }
}

/// A one-slot array repeated `n` times.
fn literal_array_of(one: &ArrayRef, n: usize) -> Result<ArrayRef> {
    let v = value_at(one.as_ref(), 0)?;
    let a = literal_array(&v, n)?;
    Ok(typed(a, one.data_type()))
}

impl BoundCall {
    /// Evaluates the arguments and calls the column kernel; a call whose
    /// type is null is a null array.
    fn eval_array(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        let n = batch.num_rows();
        if self.ret == DataType::Null {
            return Ok(new_null_array(&DataType::Null, n));
        }
        let mut args = Vec::with_capacity(self.args.len());
        for (i, (a, dt)) in self.args.iter().zip(self.arg_types.iter()).enumerate() {
            if self.func.literal_args.contains(&i) {
                // Read at bind time (a pattern, a unit): the kernel
                // does not look at it.
                args.push(new_null_array(dt, n));
            } else {
                args.push(typed(a.eval_array(batch)?, dt));
            }
        }
        self.kernel.column(&args, n)
    }
}

impl BoundCase {
    /// Every branch over the whole batch, then Arrow's `zip` from the last
    /// branch to the first, so that the first true condition wins.
    fn eval_array(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        let n = batch.num_rows();
        if self.ret == DataType::Null {
            return Ok(new_null_array(&DataType::Null, n));
        }
        // A constant result stays one value (an Arrow scalar) until zipped.
        let datum = |e: &BoundExpr| -> Result<(ArrayRef, bool)> {
            Ok(match e {
                BoundExpr::Literal(v) => (typed(literal_array(v, 1)?, &self.ret), true),
                other => (typed(other.eval_array(batch)?, &self.ret), false),
            })
        };
        let (mut acc, mut acc_scalar) = datum(&self.otherwise)?;
        for (cond, result) in self.branches.iter().rev() {
            let mask = true_mask(&bool_array(&cond.eval_array(batch)?)?);
            let (r, r_scalar) = datum(result)?;
            acc = match (r_scalar, acc_scalar) {
                (true, true) => zip(&mask, &Scalar::new(r), &Scalar::new(acc)),
                (true, false) => zip(&mask, &Scalar::new(r), &acc),
                (false, true) => zip(&mask, &r, &Scalar::new(acc)),
                (false, false) => zip(&mask, &r, &acc),
            }
            .map_err(kernel_err)?;
            acc_scalar = false;
        }
        if acc_scalar {
            return literal_array_of(&acc, n);
        }
        Ok(acc)
    }
}

fn normalize_zero(a: &ArrayRef) -> Result<ArrayRef> {
    let f = a.as_primitive::<Float64Type>();
    // Also one NaN: Arrow's total order tells NaNs apart by sign and payload.
    let out: Float64Array = f.unary(|v| {
        if v == 0.0 {
            0.0
        } else if v.is_nan() {
            f64::NAN
        } else {
            v
        }
    });
    Ok(Arc::new(out))
}

fn bool_array(a: &ArrayRef) -> Result<BooleanArray> {
    match a.data_type() {
        DataType::Boolean => Ok(a.as_boolean().clone()),
        DataType::Null => Ok(BooleanArray::new_null(a.len())),
        other => Err(EngineError::Eval(format!(
            "expected a boolean array, got {other}"
        ))),
    }
}

fn is_null(a: &ArrayRef, want_null: bool) -> BooleanArray {
    // Logical nulls: a NullArray has no null buffer but every slot is null.
    let nulls = a.logical_nulls();
    (0..a.len())
        .map(|i| Some(nulls.as_ref().is_some_and(|n| n.is_null(i)) == want_null))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{bind_expr, col, lit, not, Expr};
    use crate::schema::arrow::{batch_to_rows, rows_to_batch};
    use crate::schema::schema;
    use proptest::prelude::*;

    fn test_schema() -> crate::schema::SchemaRef {
        schema(&[
            ("a", DataType::Int64),
            ("b", DataType::Int64),
            ("x", DataType::Float64),
            ("s", DataType::Utf8),
            ("f", DataType::Boolean),
        ])
    }

    fn value_strategy(col: usize) -> BoxedStrategy<Value> {
        let null = Just(Value::Null);
        match col {
            0 | 1 => prop_oneof![1 => null, 6 => (-5i64..5).prop_map(Value::Int64)].boxed(),
            2 => prop_oneof![
                1 => null,
                6 => prop_oneof![(-4i32..4).prop_map(|v| v as f64 / 2.0), Just(-0.0), Just(f64::NAN)]
                    .prop_map(Value::Float64)
            ]
            .boxed(),
            3 => prop_oneof![1 => null, 4 => "[a-c]{0,2}".prop_map(Value::from)].boxed(),
            _ => prop_oneof![1 => null, 4 => any::<bool>().prop_map(Value::Boolean)].boxed(),
        }
    }

    fn rows_strategy() -> impl Strategy<Value = Vec<Row>> {
        prop::collection::vec(
            (
                value_strategy(0),
                value_strategy(1),
                value_strategy(2),
                value_strategy(3),
                value_strategy(4),
            )
                .prop_map(|(a, b, x, s, f)| Row::from(vec![a, b, x, s, f])),
            0..40,
        )
    }

    fn numeric_expr() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![
            Just(col("a")),
            Just(col("b")),
            Just(col("x")),
            (-3i64..4).prop_map(lit),
            Just(lit(0.5)),
            Just(lit(Value::Null)),
        ];
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| l + r),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| l - r),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| l * r),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| l / r),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| l % r),
                inner.clone().prop_map(|e| -e),
                inner.prop_map(|e| e.cast(DataType::Int64)),
            ]
        })
    }

    fn bool_expr() -> impl Strategy<Value = Expr> {
        let cmp = (numeric_expr(), numeric_expr(), 0..6usize).prop_map(|(l, r, op)| match op {
            0 => l.eq(r),
            1 => l.not_eq(r),
            2 => l.lt(r),
            3 => l.lt_eq(r),
            4 => l.gt(r),
            _ => l.gt_eq(r),
        });
        let leaf = prop_oneof![
            cmp,
            Just(col("f")),
            Just(col("s").lt(lit("b"))),
            numeric_expr().prop_map(|e| e.is_null()),
            Just(lit(Value::Null).cast(DataType::Boolean)),
        ];
        leaf.prop_recursive(2, 8, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| l.and(r)),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| l.or(r)),
                inner.prop_map(not),
            ]
        })
    }

    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float64(x), Value::Float64(y)) => {
                (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
            }
            _ => a == b,
        }
    }

    fn check(expr: &Expr, rows: &[Row]) {
        let s = test_schema();
        let (bound, _) = bind_expr(expr, &s).unwrap();
        let batch = rows_to_batch(&s, rows).unwrap();
        let array = bound.eval_array(&batch).unwrap();
        assert_eq!(array.len(), rows.len());
        for (i, row) in rows.iter().enumerate() {
            let by_row = bound.eval(row);
            let by_kernel = value_at(array.as_ref(), i).unwrap();
            assert!(
                same(&by_row, &by_kernel),
                "{expr} on {row}: row evaluator {by_row:?}, Arrow evaluator {by_kernel:?}"
            );
        }
        // The batch round trip itself is exact.
        assert_eq!(batch_to_rows(&batch).unwrap(), rows);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn arrow_and_row_evaluators_agree_on_numbers(e in numeric_expr(), rows in rows_strategy()) {
            check(&e, &rows);
        }

        #[test]
        fn arrow_and_row_evaluators_agree_on_predicates(e in bool_expr(), rows in rows_strategy()) {
            check(&e, &rows);
        }
    }

    #[test]
    fn functions_fall_back_to_the_row_evaluator() {
        let rows = vec![
            Row::from(vec![
                Value::Int64(1),
                Value::Null,
                Value::Float64(2.675),
                Value::str("Ab"),
                Value::Boolean(true),
            ]),
            Row::from(vec![Value::Null; 5]),
        ];
        check(&crate::expr::round(col("x"), 2), &rows);
        check(&crate::expr::upper(col("s")), &rows);
        check(&col("a").cast(DataType::Utf8), &rows);
        check(&col("s").cast(DataType::Int64), &rows);
    }
}
