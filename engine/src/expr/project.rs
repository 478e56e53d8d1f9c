//! A `select`'s expressions made ready for the per-event loop.
//!
//! Owns [`Projection`]: each output column decided once, when the query
//! starts, as a copy of an input column, a direct form (a function call's,
//! a `CASE`'s or bigint arithmetic with a literal) or a tree to walk, so that building an output
//! row takes one dispatch per column. It must not evaluate anything of its
//! own: values come from the row, the direct forms and `eval`'s walk, and
//! give what [`BoundExpr::eval`] gives for the same expression.

use super::eval::direct_int_arith;
use super::functions::Direct;
use super::BoundExpr;
use crate::schema::{Row, Value};

/// How one output column is made.
#[derive(Clone, Debug)]
enum Step {
    /// A copy of the input's column.
    Column(usize),
    /// A call or a `CASE`, through its closure.
    Direct(Direct),
    /// Anything else, by walking its tree.
    Tree(BoundExpr),
}

/// The output columns of a projection, each decided once.
#[derive(Clone, Debug)]
pub struct Projection {
    steps: Box<[Step]>,
}

impl Projection {
    /// The projection computing `exprs`, in order.
    pub fn new(exprs: &[BoundExpr]) -> Projection {
        let steps = exprs
            .iter()
            .map(|e| match e {
                BoundExpr::Column(i) => Step::Column(*i),
                BoundExpr::Call(c) => match &c.direct {
                    Some(d) => Step::Direct(d.clone()),
                    None => Step::Tree(e.clone()),
                },
                BoundExpr::Case(c) => Step::Direct(c.direct.clone()),
                other => match direct_int_arith(other) {
                    Some(d) => Step::Direct(d),
                    None => Step::Tree(other.clone()),
                },
            })
            .collect();
        Projection { steps }
    }

    /// How many columns it makes.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether it makes no column.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Replaces `out`'s values with the projection of `row`: in place when
    /// `out` already has one value per column (the previous event's, in a
    /// reused row), else by building it again.
    #[inline]
    pub fn eval_into(&self, row: &[Value], out: &mut Row) {
        if out.len() == self.steps.len() {
            for (slot, s) in out.iter_mut().zip(self.steps.iter()) {
                *slot = s.eval(row);
            }
        } else {
            out.clear();
            for s in self.steps.iter() {
                out.push(s.eval(row));
            }
        }
    }
}

impl Step {
    /// The column's value for `row`.
    #[inline(always)]
    fn eval(&self, row: &[Value]) -> Value {
        match self {
            Step::Column(i) => row[*i].clone(),
            Step::Direct(d) => d.call(row),
            Step::Tree(e) => e.eval(row),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{bind_expr, call, case_when, coalesce, col, concat, lit, Expr};
    use crate::schema::{schema, timestamp_type, DataType};

    #[test]
    fn each_column_is_what_its_expression_evaluates_to() {
        let s = schema(&[
            ("name", DataType::Utf8),
            ("qty", DataType::Int64),
            ("ts", timestamp_type()),
        ]);
        let exprs: Vec<Expr> = vec![
            col("qty"),
            col("name"),
            case_when(
                [(col("qty").gt(lit(10i64)), lit("big"))],
                Some(lit("small")),
            ),
            col("name").like("a%"),
            coalesce([col("qty"), lit(0i64)]),
            call("hour", [col("ts")]),
            concat([col("name"), lit("-"), col("name")]),
            (col("qty") + lit(1i64)) * lit(2i64),
            lit("a literal"),
        ];
        let bound: Vec<BoundExpr> = exprs
            .iter()
            .map(|e| bind_expr(e, &s).expect("binds").0)
            .collect();
        let projection = Projection::new(&bound);
        assert_eq!(projection.len(), exprs.len());
        let long = "a name longer than a value holds in place";
        // A row of another length first: built again, then reused in place.
        let mut out = Row::from(vec![Value::Null; 2]);
        for (name, qty, ts) in [
            (
                Value::str("ada"),
                Value::Int64(12),
                Value::Timestamp(3_600_000_000 * 5),
            ),
            (Value::str(long), Value::Null, Value::Timestamp(-1)),
            (Value::Null, Value::Int64(-3), Value::Null),
        ] {
            let row = [name, qty, ts];
            projection.eval_into(&row, &mut out);
            let expected: Vec<Value> = bound.iter().map(|e| e.eval(&row)).collect();
            assert_eq!(&out[..], &expected[..], "row {row:?}");
        }
    }

    #[test]
    fn bigint_arithmetic_with_a_literal_is_what_the_tree_gives() {
        let s = schema(&[("i", DataType::Int64), ("f", DataType::Float64)]);
        let mut exprs = Vec::new();
        for a in crate::expr::test_ops::ARITH {
            for k in [0i64, -1, 1, 3, i64::MAX, i64::MIN] {
                exprs.push(a(col("i"), lit(k)));
                exprs.push(a(col("f"), lit(k)));
            }
        }
        let bound: Vec<BoundExpr> = exprs
            .iter()
            .map(|e| bind_expr(e, &s).expect("binds").0)
            .collect();
        let projection = Projection::new(&bound);
        let mut out = Row::new();
        for i in [i64::MIN, i64::MIN + 1, -7, -1, 0, 1, 7, i64::MAX] {
            for row in [
                [Value::Int64(i), Value::Float64(i as f64)],
                [Value::Null, Value::Null],
            ] {
                projection.eval_into(&row, &mut out);
                let expected: Vec<Value> = bound.iter().map(|e| e.eval(&row)).collect();
                assert_eq!(&out[..], &expected[..], "row {row:?}");
            }
        }
    }
}
