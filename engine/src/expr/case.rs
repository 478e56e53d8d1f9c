//! The direct form of a `CASE`: the closure continuous mode calls for each
//! row instead of walking the branches' trees.
//!
//! Owns the shapes a condition and a result can take in that closure (a
//! bigint column, or a bigint column's arithmetic with a bigint literal,
//! against a bigint literal as a range test; a column against a literal;
//! a column, a literal, any other expression) and the building of one
//! closure per shape of a one-branch `CASE`, so that no
//! shape is decided again for each row. It must not decide types or casts
//! (binding does) nor hold any semantics of its own: the form must give
//! what the branches walked one by one give (`eval`'s walk is its test).

use super::compare::compare;
use super::functions::{Direct, Lit};
use super::{BinaryOp, BoundExpr};
use crate::schema::Value;

/// A condition, tested for a row: whether it is true (false and null are
/// not).
trait Cond: Send + Sync + 'static {
    fn holds(&self, row: &[Value]) -> bool;
}

/// A result, given for a row.
trait Out: Send + Sync + 'static {
    fn get(&self, row: &[Value]) -> Value;

    /// The literal this result always is, if it is one.
    fn as_lit(&self) -> Option<&Lit> {
        None
    }
}

/// `column op bigint literal` for `=`, `<`, `<=`, `>`, `>=` and `<>`: holds
/// when the column is a bigint in `lo..=hi` (`<>`: outside it).
struct IntRange {
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
struct IntArithRange {
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
struct ColumnCompare {
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
struct AnyCond(BoundExpr);

impl Cond for AnyCond {
    #[inline(always)]
    fn holds(&self, row: &[Value]) -> bool {
        self.0.eval_bool(row) == Some(true)
    }
}

/// A column's value.
struct ColumnOut(usize);

impl Out for ColumnOut {
    #[inline(always)]
    fn get(&self, row: &[Value]) -> Value {
        row[self.0].clone()
    }
}

/// A literal.
struct LitOut(Lit);

impl Out for LitOut {
    #[inline(always)]
    fn get(&self, _: &[Value]) -> Value {
        self.0.get()
    }

    fn as_lit(&self) -> Option<&Lit> {
        Some(&self.0)
    }
}

/// Any other result, evaluated by its tree.
struct AnyOut(BoundExpr);

impl Out for AnyOut {
    #[inline(always)]
    fn get(&self, row: &[Value]) -> Value {
        self.0.eval(row)
    }
}

/// A condition's shape, decided once.
enum CondKind {
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
    fn of(e: &BoundExpr) -> CondKind {
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

/// A result's shape, decided once.
enum OutKind {
    Column(ColumnOut),
    Lit(LitOut),
    Any(AnyOut),
}

impl OutKind {
    fn of(e: &BoundExpr) -> OutKind {
        match e {
            BoundExpr::Column(i) => OutKind::Column(ColumnOut(*i)),
            BoundExpr::Literal(v) => OutKind::Lit(LitOut(Lit::new(v.clone()))),
            other => OutKind::Any(AnyOut(other.clone())),
        }
    }
}

impl Out for OutKind {
    #[inline(always)]
    fn get(&self, row: &[Value]) -> Value {
        match self {
            OutKind::Column(o) => o.get(row),
            OutKind::Lit(o) => o.get(row),
            OutKind::Any(o) => o.get(row),
        }
    }
}

/// The direct form of `CASE WHEN c1 THEN r1 ... ELSE otherwise END`: the
/// first true condition's result, else `otherwise`. A `CASE` of one
/// branch (`CASE WHEN qty > 10 THEN 'big' ELSE 'small' END`, the common
/// one) gets a closure made for its condition's and results' shapes.
pub(super) fn direct_case(branches: &[(BoundExpr, BoundExpr)], otherwise: &BoundExpr) -> Direct {
    let otherwise = OutKind::of(otherwise);
    if let [(cond, result)] = branches {
        return one_branch(CondKind::of(cond), OutKind::of(result), otherwise);
    }
    let branches: Box<[(CondKind, OutKind)]> = branches
        .iter()
        .map(|(cond, result)| (CondKind::of(cond), OutKind::of(result)))
        .collect();
    Direct::new(move |row: &[Value]| {
        for (cond, result) in branches.iter() {
            if cond.holds(row) {
                return result.get(row);
            }
        }
        otherwise.get(row)
    })
}

/// `CASE WHEN c THEN a ELSE b END`, one closure for each shape of `c`,
/// `a` and `b`.
fn one_branch(c: CondKind, a: OutKind, b: OutKind) -> Direct {
    match c {
        CondKind::IntRange(c) => given_cond(c, a, b),
        CondKind::IntArithRange(c) => given_cond(c, a, b),
        CondKind::ColumnCompare(c) => given_cond(c, a, b),
        CondKind::Any(c) => given_cond(c, a, b),
    }
}

fn given_cond<C: Cond>(c: C, a: OutKind, b: OutKind) -> Direct {
    match a {
        OutKind::Column(a) => given_then(c, a, b),
        OutKind::Lit(a) => given_then(c, a, b),
        OutKind::Any(a) => given_then(c, a, b),
    }
}

fn given_then<C: Cond, A: Out>(c: C, a: A, b: OutKind) -> Direct {
    if let (Some(a), OutKind::Lit(b)) = (a.as_lit(), &b) {
        // Two literals (`THEN 'big' ELSE 'small'`): the condition picks
        // which to copy, with no branch on it to mispredict.
        let pair = [b.0.clone(), a.clone()];
        return Direct::new(move |row: &[Value]| pair[usize::from(c.holds(row))].get());
    }
    match b {
        OutKind::Column(b) => if_else(c, a, b),
        OutKind::Lit(b) => if_else(c, a, b),
        OutKind::Any(b) => if_else(c, a, b),
    }
}

fn if_else<C: Cond, A: Out, B: Out>(c: C, a: A, b: B) -> Direct {
    Direct::new(
        move |row: &[Value]| {
            if c.holds(row) {
                a.get(row)
            } else {
                b.get(row)
            }
        },
    )
}
