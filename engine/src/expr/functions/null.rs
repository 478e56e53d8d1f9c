//! Null handling and conditionals: `coalesce`, `nvl`/`ifnull`, `nvl2`,
//! `nullif`, `isnull`, `isnotnull`, `if`.
//!
//! Owns these functions' type rules (the arguments' wider common type, as
//! Spark's `coalesce` finds it) and kernels (Arrow's `zip` and null tests
//! for the columns). It must not evaluate expressions: arguments arrive
//! evaluated.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::compute::kernels::{cmp, zip::zip};

use super::kernel::{arrow_err, true_mask, Arg, Direct, Kernel, Lit};
use super::types::{coerce, common, Want};
use super::{def, ArgInfo, Category, FunctionDef, Resolved};
use crate::schema::{cast_value, DataType, Value};

pub(super) const DEFS: &[FunctionDef] = &[
    def(
        "coalesce",
        Category::Null,
        "coalesce(e1, e2, ...)",
        "the first argument that is not null; null when all are.",
        (1, None),
        coalesce,
    ),
    FunctionDef {
        aliases: &["ifnull"],
        ..def(
            "nvl",
            Category::Null,
            "nvl(e1, e2)",
            "`e1` unless it is null, else `e2`.",
            (2, Some(2)),
            coalesce,
        )
    },
    def(
        "nvl2",
        Category::Null,
        "nvl2(e1, e2, e3)",
        "`e2` when `e1` is not null, else `e3`.",
        (3, Some(3)),
        nvl2,
    ),
    def(
        "nullif",
        Category::Null,
        "nullif(e1, e2)",
        "null when `e1 = e2`, else `e1`.",
        (2, Some(2)),
        nullif,
    ),
    def(
        "isnull",
        Category::Null,
        "isnull(e)",
        "whether `e` is null (never null).",
        (1, Some(1)),
        isnull,
    ),
    def(
        "isnotnull",
        Category::Null,
        "isnotnull(e)",
        "whether `e` is not null (never null).",
        (1, Some(1)),
        isnull,
    ),
    def(
        "if",
        Category::Null,
        "if(cond, a, b)",
        "`a` when `cond` is true, else `b` (a null `cond` gives `b`).",
        (3, Some(3)),
        if_,
    ),
];

/// The first non-null of `args` (all of one type).
fn coalesce_columns(args: &[ArrayRef]) -> crate::error::Result<ArrayRef> {
    let mut acc = args[0].clone();
    for next in &args[1..] {
        if acc.null_count() == 0 {
            break;
        }
        let mask = arrow::compute::is_not_null(&acc).map_err(arrow_err)?;
        acc = zip(&mask, &acc, next).map_err(arrow_err)?;
    }
    Ok(acc)
}

fn coalesce(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let types: Vec<DataType> = args.iter().map(|a| a.dt.clone()).collect();
    let ret = common(name, &types, true)?;
    Ok(Resolved {
        arg_types: vec![ret.clone(); args.len()],
        ret,
        kernel: Kernel::new(
            |a: &[&Value]| {
                a.iter()
                    .find(|v| !v.is_null())
                    .map_or(Value::Null, |v| (*v).clone())
            },
            |a: &[ArrayRef], _| coalesce_columns(a),
        )
        .with_direct(|from: &[Arg]| {
            if from.iter().any(|a| matches!(a, Arg::Computed(_))) {
                return None;
            }
            // `coalesce(column, literal)`, the common shape: one test.
            if let [Arg::Column(i), Arg::Literal(v)] = from {
                let (i, v) = (*i, Lit::new(v.clone()));
                return Some(Direct::new(move |row: &[Value]| match &row[i] {
                    Value::Null => v.get(),
                    x => x.clone(),
                }));
            }
            let from: Box<[Arg]> = from.into();
            Some(Direct::new(move |row: &[Value]| {
                from.iter()
                    .filter_map(|a| a.get(row))
                    .find(|v| !v.is_null())
                    .map_or(Value::Null, Value::clone)
            }))
        }),
    })
}

fn nvl2(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let ret = common(name, &[args[1].dt.clone(), args[2].dt.clone()], true)?;
    Ok(Resolved {
        arg_types: vec![args[0].dt.clone(), ret.clone(), ret.clone()],
        ret,
        kernel: Kernel::new(
            |a: &[&Value]| {
                if a[0].is_null() {
                    a[2].clone()
                } else {
                    a[1].clone()
                }
            },
            |a: &[ArrayRef], _| {
                let mask = not_null(&a[0]);
                zip(&mask, &a[1], &a[2]).map_err(arrow_err)
            },
        ),
    })
}

/// Whether each slot is not null (a null array has no validity buffer but
/// every slot is null).
fn not_null(a: &ArrayRef) -> BooleanArray {
    match a.logical_nulls() {
        Some(n) => BooleanArray::new(n.inner().clone(), None),
        None => BooleanArray::from(vec![true; a.len()]),
    }
}

fn nullif(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let ret = args[0].dt.clone();
    // The second argument is cast to the common type; the first keeps its
    // type (it is the result) and is cast for the comparison only.
    let cmp_type = common(name, &[args[0].dt.clone(), args[1].dt.clone()], true)?;
    let same = ret == cmp_type && cmp_type != DataType::Float64 && !cmp_type.is_nested();
    let t = cmp_type.clone();
    let row = move |a: &[&Value]| {
        let l = cast_value(a[0], &t);
        let r = cast_value(a[1], &t);
        if l.sql_cmp(&r) == Some(std::cmp::Ordering::Equal) {
            Value::Null
        } else {
            a[0].clone()
        }
    };
    let kernel = if same {
        // One flat type without NaNs or signed zeros: Arrow's equality is SQL's.
        Kernel::new(row, |a: &[ArrayRef], _| {
            if a[0].data_type() == &DataType::Null {
                return Ok(a[0].clone());
            }
            let eq = cmp::eq(&a[0], &a[1]).map_err(arrow_err)?;
            arrow::compute::nullif(&a[0], &true_mask(&eq)).map_err(arrow_err)
        })
    } else {
        Kernel::rowwise(ret.clone(), row)
    };
    Ok(Resolved {
        arg_types: vec![args[0].dt.clone(), cmp_type],
        ret,
        kernel,
    })
}

fn isnull(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let want_null = name.eq_ignore_ascii_case("isnull");
    Ok(Resolved {
        arg_types: vec![args[0].dt.clone()],
        ret: DataType::Boolean,
        kernel: Kernel::new(
            move |a: &[&Value]| Value::Boolean(a[0].is_null() == want_null),
            move |a: &[ArrayRef], _| {
                let valid = not_null(&a[0]);
                let out = if want_null {
                    arrow::compute::not(&valid).map_err(arrow_err)?
                } else {
                    valid
                };
                Ok(Arc::new(out) as ArrayRef)
            },
        ),
    })
}

fn if_(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let cond = coerce(name, 0, &args[0].dt, Want::Bool)?;
    let ret = common(name, &[args[1].dt.clone(), args[2].dt.clone()], true)?;
    Ok(Resolved {
        arg_types: vec![cond, ret.clone(), ret.clone()],
        ret,
        kernel: Kernel::new(
            |a: &[&Value]| {
                if a[0].as_bool() == Some(true) {
                    a[1].clone()
                } else {
                    a[2].clone()
                }
            },
            |a: &[ArrayRef], _| {
                let mask = true_mask(a[0].as_boolean());
                zip(&mask, &a[1], &a[2]).map_err(arrow_err)
            },
        ),
    })
}
