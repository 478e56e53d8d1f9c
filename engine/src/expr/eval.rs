//! The row evaluator: one bound expression against one row.
//!
//! SQL null semantics throughout: arithmetic and comparisons with a null
//! operand are null; `AND`/`OR`/`NOT` are three-valued; division or modulo by
//! zero is null (Spark's non-ANSI behaviour); integer overflow wraps.

use smallvec::SmallVec;

use super::bind::BoundCall;
use super::compare::compare;
use super::functions::Direct;
use super::{BinaryOp, BoundExpr};
use crate::schema::{cast_value_in, DataType, Value};

/// An operand by reference when it is a column or a literal (no clone),
/// else evaluated into `tmp`.
#[inline(always)]
fn operand<'a>(e: &'a BoundExpr, row: &'a [Value], tmp: &'a mut Value) -> &'a Value {
    match e {
        BoundExpr::Column(i) => &row[*i],
        BoundExpr::Literal(v) => v,
        other => {
            *tmp = other.eval(row);
            tmp
        }
    }
}

/// `l op r` for `+ - * %` (SQL nulls; `int`: wrapping bigint arithmetic).
#[inline(always)]
fn arith(op: BinaryOp, int: bool, l: &Value, r: &Value) -> Value {
    if l.is_null() || r.is_null() {
        Value::Null
    } else if int {
        arith_int(op, l.as_i64().unwrap_or(0), r.as_i64().unwrap_or(0))
    } else {
        arith_f64(op, l.as_f64().unwrap_or(0.0), r.as_f64().unwrap_or(0.0))
    }
}

/// The direct form of `column arith k` on bigints with a bigint literal
/// `k` (`value % 10000`): one closure per operator, each calling
/// [`arith_int`] with that operator as a constant, so no operator is
/// matched per row; a value that is not a bigint goes through [`arith`].
/// `None` for any other shape.
pub(super) fn direct_int_arith(e: &BoundExpr) -> Option<Direct> {
    let BoundExpr::Arith {
        op,
        left,
        right,
        int: true,
    } = e
    else {
        return None;
    };
    let (BoundExpr::Column(i), BoundExpr::Literal(lit @ Value::Int64(k))) =
        (left.as_ref(), right.as_ref())
    else {
        return None;
    };
    let (op, i, k, lit) = (*op, *i, *k, lit.clone());
    macro_rules! form {
        ($op:expr) => {
            Direct::new(move |row: &[Value]| match &row[i] {
                Value::Int64(x) => arith_int($op, *x, k),
                v => arith(op, true, v, &lit),
            })
        };
    }
    Some(match op {
        BinaryOp::Add => form!(BinaryOp::Add),
        BinaryOp::Sub => form!(BinaryOp::Sub),
        BinaryOp::Mul => form!(BinaryOp::Mul),
        BinaryOp::Mod => form!(BinaryOp::Mod),
        BinaryOp::IntDiv => form!(BinaryOp::IntDiv),
        _ => return None,
    })
}

#[inline(always)]
fn bool_value(b: Option<bool>) -> Value {
    match b {
        Some(b) => Value::Boolean(b),
        None => Value::Null,
    }
}

impl BoundExpr {
    /// Evaluates against `row`.
    ///
    /// The common shapes (a column, a literal, arithmetic or a comparison
    /// between a column and a literal or another column) are handled here,
    /// reading their operands by reference; everything else goes through a
    /// separate, out-of-line function so that this one stays small.
    #[inline]
    pub fn eval(&self, row: &[Value]) -> Value {
        match self {
            BoundExpr::Column(i) => row[*i].clone(),
            BoundExpr::Literal(v) => v.clone(),
            BoundExpr::Arith {
                op,
                left,
                right,
                int,
            } => match (left.as_ref(), right.as_ref()) {
                (BoundExpr::Column(i), BoundExpr::Literal(v)) => arith(*op, *int, &row[*i], v),
                (BoundExpr::Column(i), BoundExpr::Column(j)) => {
                    arith(*op, *int, &row[*i], &row[*j])
                }
                _ => self.eval_other(row),
            },
            BoundExpr::Compare { op, left, right } => match (left.as_ref(), right.as_ref()) {
                (BoundExpr::Column(i), BoundExpr::Literal(v)) => {
                    bool_value(compare(*op, &row[*i], v))
                }
                _ => self.eval_other(row),
            },
            BoundExpr::Call(c) => c.eval(row),
            BoundExpr::Case(c) => c.direct.call(row),
            BoundExpr::Cast { expr, to, zone } => match expr.as_ref() {
                BoundExpr::Column(i) => cast_value_in(&row[*i], to, *zone),
                _ => self.eval_other(row),
            },
            _ => self.eval_other(row),
        }
    }

    /// [`BoundExpr::eval`] for the less common shapes.
    #[inline(never)]
    fn eval_other(&self, row: &[Value]) -> Value {
        match self {
            BoundExpr::Column(i) => row[*i].clone(),
            BoundExpr::Literal(v) => v.clone(),
            BoundExpr::Arith {
                op,
                left,
                right,
                int,
            } => {
                let (mut lt, mut rt) = (Value::Null, Value::Null);
                let l = operand(left, row, &mut lt);
                let r = operand(right, row, &mut rt);
                arith(*op, *int, l, r)
            }
            BoundExpr::Compare { .. } => bool_value(self.eval_bool(row)),
            BoundExpr::Div(left, right) => {
                let (mut lt, mut rt) = (Value::Null, Value::Null);
                let l = operand(left, row, &mut lt);
                let r = operand(right, row, &mut rt);
                match (l.as_f64(), r.as_f64()) {
                    (Some(_), Some(0.0)) => Value::Null,
                    (Some(n), Some(d)) => Value::Float64(n / d),
                    _ => Value::Null,
                }
            }
            BoundExpr::And(..) | BoundExpr::Or(..) | BoundExpr::Not(_) => {
                bool_value(self.eval_bool(row))
            }
            BoundExpr::Negate(e) => match e.eval(row) {
                Value::Int64(v) => Value::Int64(v.wrapping_neg()),
                Value::Float64(v) => Value::Float64(-v),
                _ => Value::Null,
            },
            BoundExpr::IsNull(_) | BoundExpr::IsNotNull(_) => bool_value(self.eval_bool(row)),
            BoundExpr::Cast { expr, to, zone } => {
                let mut t = Value::Null;
                cast_value_in(operand(expr, row, &mut t), to, *zone)
            }
            BoundExpr::Call(c) => c.eval(row),
            // `eval` runs a `CASE`'s direct form; walked branch by branch
            // here, it is what the direct form is tested against.
            BoundExpr::Case(c) => {
                for (cond, result) in &c.branches {
                    if cond.eval_bool(row) == Some(true) {
                        return result.eval(row);
                    }
                }
                c.otherwise.eval(row)
            }
        }
    }

    /// Evaluates a boolean expression: `Some(true)`, `Some(false)` or `None`
    /// for null. Short-circuits the three-valued logic without building values.
    #[inline]
    pub fn eval_bool(&self, row: &[Value]) -> Option<bool> {
        // The common predicate shapes inline; the rest out of line.
        if let BoundExpr::Compare { op, left, right } = self {
            match (left.as_ref(), right.as_ref()) {
                (BoundExpr::Column(i), BoundExpr::Literal(v)) => return compare(*op, &row[*i], v),
                (l @ BoundExpr::Arith { .. }, BoundExpr::Literal(v)) => {
                    return compare(*op, &l.eval(row), v)
                }
                _ => {}
            }
        }
        self.eval_bool_other(row)
    }

    #[inline(never)]
    fn eval_bool_other(&self, row: &[Value]) -> Option<bool> {
        match self {
            BoundExpr::And(l, r) => match l.eval_bool(row) {
                Some(false) => Some(false),
                lv => match (lv, r.eval_bool(row)) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
            },
            BoundExpr::Or(l, r) => match l.eval_bool(row) {
                Some(true) => Some(true),
                lv => match (lv, r.eval_bool(row)) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
            },
            BoundExpr::Not(e) => e.eval_bool(row).map(|b| !b),
            BoundExpr::Compare { op, left, right } => {
                // Columns and literals are compared by reference: no clones.
                match (left.as_ref(), right.as_ref()) {
                    (BoundExpr::Column(i), BoundExpr::Literal(v)) => compare(*op, &row[*i], v),
                    (BoundExpr::Column(i), BoundExpr::Column(j)) => {
                        compare(*op, &row[*i], &row[*j])
                    }
                    (l, BoundExpr::Literal(v)) => compare(*op, &l.eval(row), v),
                    (l, r) => {
                        let (mut lt, mut rt) = (Value::Null, Value::Null);
                        let l = operand(l, row, &mut lt);
                        let r = operand(r, row, &mut rt);
                        compare(*op, l, r)
                    }
                }
            }
            BoundExpr::IsNull(e) => {
                let mut t = Value::Null;
                Some(operand(e, row, &mut t).is_null())
            }
            BoundExpr::IsNotNull(e) => {
                let mut t = Value::Null;
                Some(!operand(e, row, &mut t).is_null())
            }
            BoundExpr::Column(i) => row[*i].as_bool(),
            other => other.eval(row).as_bool(),
        }
    }

    /// [`BoundExpr::eval`] of this node without its direct form (the
    /// row kernel, the `CASE` walked branch by branch): what the direct
    /// form must agree with.
    #[cfg(test)]
    pub(crate) fn eval_without_direct(&self, row: &[Value]) -> Value {
        match self {
            BoundExpr::Call(c) => c.eval_by_kernel(row),
            BoundExpr::Case(_) => self.eval_other(row),
            other => other.eval(row),
        }
    }

    /// Whether a row passes this predicate (only a true result passes).
    #[inline]
    pub fn passes(&self, row: &[Value]) -> bool {
        self.eval_bool(row) == Some(true)
    }
}

#[inline(always)]
fn arith_int(op: BinaryOp, a: i64, b: i64) -> Value {
    match op {
        BinaryOp::Add => Value::Int64(a.wrapping_add(b)),
        BinaryOp::Sub => Value::Int64(a.wrapping_sub(b)),
        BinaryOp::Mul => Value::Int64(a.wrapping_mul(b)),
        BinaryOp::Mod if b == 0 => Value::Null,
        BinaryOp::Mod => Value::Int64(a.wrapping_rem(b)),
        BinaryOp::IntDiv if b == 0 => Value::Null,
        BinaryOp::IntDiv => Value::Int64(a.wrapping_div(b)),
        _ => Value::Null,
    }
}

fn arith_f64(op: BinaryOp, a: f64, b: f64) -> Value {
    match op {
        BinaryOp::Add => Value::Float64(a + b),
        BinaryOp::Sub => Value::Float64(a - b),
        BinaryOp::Mul => Value::Float64(a * b),
        BinaryOp::Mod if b == 0.0 => Value::Null,
        BinaryOp::Mod => Value::Float64(a % b),
        _ => Value::Null,
    }
}

/// The argument passed where a function reads a literal at bind time.
static NULL: Value = Value::Null;

/// Whether an argument reaches a kernel as it is, without being evaluated.
#[inline(always)]
fn is_direct(a: &BoundExpr) -> bool {
    matches!(a, BoundExpr::Column(_) | BoundExpr::Literal(_))
}

/// Argument `i` of a call, `a`, as the kernel gets it: the row's value for
/// a column, the literal itself, `NULL` for an argument read at bind time,
/// else the next of the arguments evaluated beforehand (`computed`).
#[inline(always)]
fn pass_arg<'a>(
    i: usize,
    a: &'a BoundExpr,
    row: &'a [Value],
    literal_args: &[usize],
    computed: &mut std::slice::Iter<'a, Value>,
) -> &'a Value {
    match a {
        _ if literal_args.contains(&i) => &NULL,
        BoundExpr::Column(c) => &row[*c],
        BoundExpr::Literal(v) => v,
        _ => computed.next().unwrap_or(&NULL),
    }
}

impl BoundCall {
    /// Evaluates the arguments and calls the row kernel with them by
    /// reference: a column or a literal argument is passed as it is (no
    /// copy, nothing to drop). A call whose type is null is null.
    #[inline]
    pub(crate) fn eval(&self, row: &[Value]) -> Value {
        match &self.direct {
            Some(d) => d.call(row),
            None => self.eval_by_kernel(row),
        }
    }

    /// [`BoundCall::eval`] through the row kernel, for a call without a
    /// direct form.
    #[inline(never)]
    fn eval_by_kernel(&self, row: &[Value]) -> Value {
        if matches!(self.ret, DataType::Null) {
            return Value::Null;
        }
        let n = self.args.len();
        if n <= 4 && self.args.iter().all(is_direct) {
            // The common case: nothing to evaluate first.
            let mut args: [&Value; 4] = [&NULL; 4];
            let mut none = [].iter();
            for (i, (slot, a)) in args.iter_mut().zip(&self.args).enumerate() {
                *slot = pass_arg(i, a, row, self.func.literal_args, &mut none);
            }
            return self.kernel.row(&args[..n]);
        }
        self.eval_computed(row)
    }

    /// [`BoundCall::eval`] with arguments that are evaluated first (onto
    /// the stack, up to four).
    #[inline(never)]
    fn eval_computed(&self, row: &[Value]) -> Value {
        let literal_args = self.func.literal_args;
        let mut owned: SmallVec<[Value; 4]> = SmallVec::new();
        for (i, a) in self.args.iter().enumerate() {
            if !literal_args.contains(&i) && !is_direct(a) {
                owned.push(a.eval(row));
            }
        }
        let mut owned = owned.iter();
        let args: SmallVec<[&Value; 8]> = self
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| pass_arg(i, a, row, literal_args, &mut owned))
            .collect();
        self.kernel.row(&args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::functions::round_half_up;
    use crate::expr::{bind_expr, col, lit, not, Expr};
    use crate::row;
    use crate::schema::{cast_value, DataType};
    use crate::schema::{schema, timestamp_type};
    use crate::time;

    fn eval(e: Expr, r: &[Value]) -> Value {
        let s = schema(&[
            ("a", DataType::Int64),
            ("b", DataType::Float64),
            ("s", DataType::Utf8),
            ("t", timestamp_type()),
            ("flag", DataType::Boolean),
        ]);
        bind_expr(&e, &s).unwrap().0.eval(r)
    }

    #[test]
    fn arithmetic_with_nulls_and_zero() {
        let r = row![7i64, 2.0, "x", Value::Null, Value::Null];
        assert_eq!(eval(col("a") + lit(1i64), &r), Value::Int64(8));
        assert_eq!(eval(col("a") % lit(3i64), &r), Value::Int64(1));
        assert_eq!(eval(lit(-7i64) % lit(3i64), &r), Value::Int64(-1));
        assert_eq!(eval(col("a") / lit(2i64), &r), Value::Float64(3.5));
        assert_eq!(eval(col("a") / lit(0i64), &r), Value::Null);
        assert_eq!(eval(col("a") % lit(0i64), &r), Value::Null);
        assert_eq!(eval(col("a") * col("b"), &r), Value::Float64(14.0));
        assert_eq!(
            eval(col("a") + col("t").cast(DataType::Int64), &r),
            Value::Null
        );
        assert_eq!(eval(lit(i64::MAX) + lit(1i64), &r), Value::Int64(i64::MIN));
    }

    #[test]
    fn three_valued_logic() {
        let r = row![1i64, 0.0, "x", Value::Null, Value::Null];
        let null_bool = || col("flag");
        let t = || lit(true);
        let f = || lit(false);
        assert_eq!(eval(null_bool().and(f()), &r), Value::Boolean(false));
        assert_eq!(eval(null_bool().and(t()), &r), Value::Null);
        assert_eq!(eval(null_bool().or(t()), &r), Value::Boolean(true));
        assert_eq!(eval(null_bool().or(f()), &r), Value::Null);
        assert_eq!(eval(not(null_bool()), &r), Value::Null);
        assert_eq!(eval(col("flag").is_null(), &r), Value::Boolean(true));
        assert_eq!(eval(col("a").eq(lit(Value::Null)), &r), Value::Null);
    }

    #[test]
    fn comparisons_coerce_like_spark() {
        let ts = time::parse_timestamp_us("2011-01-02 00:00:00").unwrap();
        let r = row![5i64, 5.0, "abc", Value::Timestamp(ts), true];
        assert_eq!(eval(col("a").eq(col("b")), &r), Value::Boolean(true));
        assert_eq!(
            eval(col("T").gt(lit("2011-01-01")), &r),
            Value::Boolean(true)
        );
        assert_eq!(eval(col("s").lt(lit("abd")), &r), Value::Boolean(true));
        assert_eq!(eval(col("a").gt_eq(lit("5")), &r), Value::Boolean(true));
    }

    #[test]
    fn casts() {
        assert_eq!(
            cast_value(&Value::str(" 42 "), &DataType::Int64),
            Value::Int64(42)
        );
        assert_eq!(
            cast_value(&Value::str("4.9"), &DataType::Int64),
            Value::Int64(4)
        );
        assert_eq!(
            cast_value(&Value::str("x"), &DataType::Float64),
            Value::Null
        );
        assert_eq!(
            cast_value(&Value::Float64(-3.7), &DataType::Int64),
            Value::Int64(-3)
        );
        assert_eq!(
            cast_value(&Value::Timestamp(90_000_000), &DataType::Int64),
            Value::Int64(90)
        );
        assert_eq!(
            cast_value(&Value::Float64(1.0), &DataType::Utf8),
            Value::str("1.0")
        );
    }

    #[test]
    fn round_is_half_up_on_the_decimal_form() {
        assert_eq!(round_half_up(2.5, 0), 3.0);
        assert_eq!(round_half_up(-2.5, 0), -3.0);
        assert_eq!(round_half_up(2.675, 2), 2.68);
        assert_eq!(round_half_up(1234.5678, -2), 1200.0);
        assert_eq!(round_half_up(0.004, 2), 0.0);
        assert_eq!(round_half_up(9.995, 2), 10.0);
    }

    #[test]
    fn unknown_column_names_the_inputs() {
        let s = schema(&[("a", DataType::Int64)]);
        let err = bind_expr(&col("nope"), &s).unwrap_err().to_string();
        assert!(err.contains("`nope`") && err.contains("[a]"), "{err}");
        let err = bind_expr(&(col("a").and(lit(true))), &s)
            .unwrap_err()
            .to_string();
        assert!(err.contains("boolean"), "{err}");
    }
}
