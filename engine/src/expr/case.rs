//! The direct form of a `CASE`: the closure continuous mode calls for each
//! row instead of walking the branches' trees.
//!
//! Owns the shapes a result can take in that closure (a column, a literal,
//! any other expression) and the building of one closure per shape of a
//! one-branch `CASE` (its condition's shapes are `cond`'s), so that no
//! shape is decided again for each row. It must not decide types or casts
//! (binding does) nor hold any semantics of its own: the form must give
//! what the branches walked one by one give (`eval`'s walk is its test).

use super::cond::{Cond, CondKind};
use super::functions::{Direct, Lit};
use super::BoundExpr;
use crate::schema::Value;

/// A result, given for a row.
trait Out: Send + Sync + 'static {
    fn get(&self, row: &[Value]) -> Value;

    /// The literal this result always is, if it is one.
    fn as_lit(&self) -> Option<&Lit> {
        None
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
