//! Conditions decided once: the shapes a boolean expression can take when
//! only whether it holds matters (a filter's predicate, a `CASE`'s
//! condition).
//!
//! Owns the shapes (a bigint column, or a bigint column's arithmetic with a
//! bigint literal, against a bigint literal as a range test; a column
//! against a literal; any other condition, by its tree) and [`Predicate`],
//! a filter's condition in its shape. It must not decide types or casts
//! (binding does) nor hold semantics of its own: a shape holds exactly when
//! the tree's [`BoundExpr::eval_bool`] is true (false and null do not).

use super::compare::compare;
use super::{BinaryOp, BoundExpr};
use crate::schema::Value;

/// A condition, tested for a row: whether it is true (false and null are
/// not).
pub(super) trait Cond: Send + Sync + 'static {
    fn holds(&self, row: &[Value]) -> bool;
}

/// `column op bigint literal` for `=`, `<`, `<=`, `>`, `>=` and `<>`: holds
/// when the column is a bigint in `lo..=hi` (`<>`: outside it).
pub(super) struct IntRange {
    col: usize,
    lo: i64,
    hi: i64,
    outside: bool,
    /// The comparison itself, for a value that is not a bigint.
    whole: ColumnCompare,
}

impl Cond for IntRange {
    #[inline(always)]
    fn holds(&self, row: &[Value]) -> bool {
        match &row[self.col] {
            Value::Int64(x) => ((self.lo <= *x) & (*x <= self.hi)) != self.outside,
            Value::Null => false,
            _ => self.whole.holds(row),
        }
    }
}

/// `(column arith k) op literal` on bigints (`value % 3 = 0`): the
/// arithmetic done in place, then a range test as [`IntRange`]'s.
pub(super) struct IntArithRange {
    col: usize,
    arith: BinaryOp,
    k: i64,
    lo: i64,
    hi: i64,
    outside: bool,
    /// The whole condition, for a value that is not a bigint.
    whole: AnyCond,
}

impl Cond for IntArithRange {
    #[inline(always)]
    fn holds(&self, row: &[Value]) -> bool {
        match &row[self.col] {
            Value::Int64(x) => {
                // The row evaluator's bigint arithmetic: wrapping, and a
                // modulo or quotient by zero is null (false here).
                let y = match self.arith {
                    BinaryOp::Add => x.wrapping_add(self.k),
                    BinaryOp::Sub => x.wrapping_sub(self.k),
                    BinaryOp::Mul => x.wrapping_mul(self.k),
                    BinaryOp::Mod if self.k != 0 => x.wrapping_rem(self.k),
                    BinaryOp::IntDiv if self.k != 0 => x.wrapping_div(self.k),
                    _ => return false,
                };
                ((self.lo <= y) & (y <= self.hi)) != self.outside
            }
            Value::Null => false,
            _ => self.whole.holds(row),
        }
    }
}

/// `column op literal`, compared in place.
pub(super) struct ColumnCompare {
    op: BinaryOp,
    col: usize,
    k: Value,
}

impl Cond for ColumnCompare {
    #[inline(always)]
    fn holds(&self, row: &[Value]) -> bool {
        compare(self.op, &row[self.col], &self.k) == Some(true)
    }
}

/// Any other condition, evaluated by its tree.
pub(super) struct AnyCond(BoundExpr);

impl Cond for AnyCond {
    #[inline(always)]
    fn holds(&self, row: &[Value]) -> bool {
        self.0.eval_bool(row) == Some(true)
    }
}

/// A condition's shape, decided once.
pub(super) enum CondKind {
    IntRange(IntRange),
    IntArithRange(IntArithRange),
    ColumnCompare(ColumnCompare),
    Any(AnyCond),
}

/// The bigints `y` for which `y op n` holds, as `lo..=hi` (`outside`: all
/// but those); `None` for an operator that is not a comparison, or a range
/// that is empty (`< i64::MIN`, `> i64::MAX`).
fn int_range(op: BinaryOp, n: i64) -> Option<(i64, i64, bool)> {
    match op {
        BinaryOp::Eq => Some((n, n, false)),
        BinaryOp::NotEq => Some((n, n, true)),
        BinaryOp::Lt => n.checked_sub(1).map(|h| (i64::MIN, h, false)),
        BinaryOp::LtEq => Some((i64::MIN, n, false)),
        BinaryOp::Gt => n.checked_add(1).map(|l| (l, i64::MAX, false)),
        BinaryOp::GtEq => Some((n, i64::MAX, false)),
        _ => None,
    }
}

impl CondKind {
    pub(super) fn of(e: &BoundExpr) -> CondKind {
        if let BoundExpr::Compare { op, left, right } = e {
            if let (
                BoundExpr::Arith {
                    op: arith,
                    left: a,
                    right: b,
                    int: true,
                },
                BoundExpr::Literal(Value::Int64(n)),
            ) = (left.as_ref(), right.as_ref())
            {
                if let (BoundExpr::Column(col), BoundExpr::Literal(Value::Int64(k))) =
                    (a.as_ref(), b.as_ref())
                {
                    if let Some((lo, hi, outside)) = int_range(*op, *n) {
                        return CondKind::IntArithRange(IntArithRange {
                            col: *col,
                            arith: *arith,
                            k: *k,
                            lo,
                            hi,
                            outside,
                            whole: AnyCond(e.clone()),
                        });
                    }
                }
            }
            if let (BoundExpr::Column(col), BoundExpr::Literal(k)) = (left.as_ref(), right.as_ref())
            {
                let (op, col) = (*op, *col);
                if let Value::Int64(n) = k {
                    if let Some((lo, hi, outside)) = int_range(op, *n) {
                        return CondKind::IntRange(IntRange {
                            col,
                            lo,
                            hi,
                            outside,
                            whole: ColumnCompare {
                                op,
                                col,
                                k: k.clone(),
                            },
                        });
                    }
                }
                return CondKind::ColumnCompare(ColumnCompare {
                    op,
                    col,
                    k: k.clone(),
                });
            }
        }
        CondKind::Any(AnyCond(e.clone()))
    }
}

impl Cond for CondKind {
    #[inline(always)]
    fn holds(&self, row: &[Value]) -> bool {
        match self {
            CondKind::IntRange(c) => c.holds(row),
            CondKind::IntArithRange(c) => c.holds(row),
            CondKind::ColumnCompare(c) => c.holds(row),
            CondKind::Any(c) => c.holds(row),
        }
    }
}

/// A filter's predicate, in its shape: whether a row passes (the
/// predicate is true; false and null drop it).
pub struct Predicate(CondKind);

impl Predicate {
    /// The predicate `e`, a bound boolean expression.
    pub fn new(e: &BoundExpr) -> Predicate {
        Predicate(CondKind::of(e))
    }

    /// Whether `row` passes: what `e.passes(row)` gives.
    #[inline]
    pub fn passes(&self, row: &[Value]) -> bool {
        self.0.holds(row)
    }
}

impl std::fmt::Debug for Predicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Predicate")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{bind_expr, col, lit};
    use crate::schema::{schema, DataType};

    #[test]
    fn a_predicate_passes_exactly_the_rows_its_tree_passes() {
        let s = schema(&[
            ("i", DataType::Int64),
            ("f", DataType::Float64),
            ("s", DataType::Utf8),
        ]);
        let edge = [i64::MIN, i64::MIN + 1, -7, -1, 0, 1, 3, 6, 7, i64::MAX];
        let mut rows: Vec<[Value; 3]> = edge
            .iter()
            .map(|&i| {
                [
                    Value::Int64(i),
                    Value::Float64(i as f64),
                    Value::str(&i.to_string()),
                ]
            })
            .collect();
        rows.push([Value::Null, Value::Float64(f64::NAN), Value::Null]);
        let (arith, compare) = (crate::expr::test_ops::ARITH, crate::expr::test_ops::COMPARE);
        let mut predicates = Vec::new();
        for c in compare {
            for n in [0i64, 1, -1, i64::MIN, i64::MAX] {
                for column in ["i", "f"] {
                    // `column op n` (a range test on bigints).
                    predicates.push(c(col(column), lit(n)));
                    for a in arith {
                        for k in [0i64, -1, 2, 3, i64::MAX] {
                            // `(column arith k) op n`.
                            predicates.push(c(a(col(column), lit(k)), lit(n)));
                        }
                    }
                }
            }
            // A string column against a literal; a condition of two
            // columns; a conjunction (any other condition).
            predicates.push(c(col("s"), lit("3")));
            predicates.push(c(col("i"), col("f")));
        }
        predicates.push(col("i").gt(lit(0i64)).and(col("s").eq(lit("7"))));
        predicates.push(col("i").is_null().or(col("f").lt(lit(0.5))));
        for e in &predicates {
            let bound = bind_expr(e, &s)
                .unwrap_or_else(|err| panic!("{e}: {err}"))
                .0;
            let p = Predicate::new(&bound);
            for row in &rows {
                assert_eq!(p.passes(row), bound.passes(row), "{e} on {row:?}");
            }
        }
    }
}
