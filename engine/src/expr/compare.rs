//! SQL comparison of two values: the one rule both the row evaluator and
//! the binder's direct forms use.
//!
//! Owns the three-valued result of `=`, `<>`, `<`, `<=`, `>`, `>=` and
//! `<=>` on two values. It must not evaluate expressions.

use std::cmp::Ordering;

use super::BinaryOp;
use crate::schema::Value;

/// `l op r`: `None` (null) when either side is null or they do not
/// compare, except for `<=>`, which is never null.
#[inline]
pub(super) fn compare(op: BinaryOp, l: &Value, r: &Value) -> Option<bool> {
    // Two bigints, the most common comparison, without the general
    // ordering's call.
    let ord = match (l, r) {
        (Value::Int64(a), Value::Int64(b)) => Some(a.cmp(b)),
        _ => l.sql_cmp(r),
    };
    let Some(ord) = ord else {
        // `<=>` is never null: two nulls are equal, a null and a value not.
        return (op == BinaryOp::NullSafeEq).then(|| l.is_null() && r.is_null());
    };
    Some(match op {
        BinaryOp::NullSafeEq => ord == Ordering::Equal,
        BinaryOp::Eq => ord == Ordering::Equal,
        BinaryOp::NotEq => ord != Ordering::Equal,
        BinaryOp::Lt => ord == Ordering::Less,
        BinaryOp::LtEq => ord != Ordering::Greater,
        BinaryOp::Gt => ord == Ordering::Greater,
        BinaryOp::GtEq => ord != Ordering::Less,
        _ => return None,
    })
}
