//! Math: `abs`, `ceil`, `floor`, `round`, `bround`, `sqrt`, `pow`, `exp`,
//! `ln`, `log10`, `greatest`, `least`, `sign`.
//!
//! Owns these functions' type rules (Spark's result types: `ceil` and
//! `floor` give a bigint, `round` keeps its argument's type, the rest give a
//! double) and kernels, and the decimal rounding Spark does on the shortest
//! decimal form of a double. It must not evaluate expressions.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Float64Array};
use arrow::datatypes::Float64Type;

use super::kernel::{arrow_err, f64_to_f64, f64_to_i64, i64_to_i64, Kernel};
use super::types::{coerce, common, numeric, Want};
use super::{def, ArgInfo, Category, FunctionDef, Resolved};
use crate::schema::{DataType, Value};

pub(super) const DEFS: &[FunctionDef] = &[
    def(
        "abs",
        Category::Math,
        "abs(x)",
        "the absolute value, of `x`'s type.",
        (1, Some(1)),
        abs,
    ),
    def(
        "ceil",
        Category::Math,
        "ceil(x)",
        "the smallest integer not below `x`, as a bigint.",
        (1, Some(1)),
        ceil_floor,
    ),
    def(
        "floor",
        Category::Math,
        "floor(x)",
        "the largest integer not above `x`, as a bigint.",
        (1, Some(1)),
        ceil_floor,
    ),
    FunctionDef {
        literal_args: &[1],
        literal_what: "an integer literal",
        check_literal: int_literal,
        ..def(
            "round",
            Category::Math,
            "round(x[, d])",
            "`x` rounded half away from zero to `d` decimal places (default 0; negative rounds left of the point), of `x`'s type.",
            (1, Some(2)),
            round,
        )
    },
    FunctionDef {
        literal_args: &[1],
        literal_what: "an integer literal",
        check_literal: int_literal,
        ..def(
            "bround",
            Category::Math,
            "bround(x[, d])",
            "`x` rounded half to even (banker's rounding) to `d` decimal places, of `x`'s type.",
            (1, Some(2)),
            round,
        )
    },
    def(
        "sqrt",
        Category::Math,
        "sqrt(x)",
        "the square root, a double (NaN below zero).",
        (1, Some(1)),
        double_fn,
    ),
    FunctionDef {
        aliases: &["power"],
        ..def(
            "pow",
            Category::Math,
            "pow(x, y)",
            "`x` raised to `y`, a double.",
            (2, Some(2)),
            pow,
        )
    },
    def(
        "exp",
        Category::Math,
        "exp(x)",
        "e raised to `x`, a double.",
        (1, Some(1)),
        double_fn,
    ),
    def(
        "ln",
        Category::Math,
        "ln(x)",
        "the natural logarithm, a double; null when `x <= 0`.",
        (1, Some(1)),
        double_fn,
    ),
    def(
        "log10",
        Category::Math,
        "log10(x)",
        "the base-10 logarithm, a double; null when `x <= 0`.",
        (1, Some(1)),
        double_fn,
    ),
    def(
        "greatest",
        Category::Math,
        "greatest(e1, e2, ...)",
        "the largest argument, skipping nulls (NaN is above every number); null when all are null.",
        (2, None),
        extreme,
    ),
    def(
        "least",
        Category::Math,
        "least(e1, e2, ...)",
        "the smallest argument, skipping nulls; null when all are null.",
        (2, None),
        extreme,
    ),
    FunctionDef {
        aliases: &["signum"],
        ..def(
            "sign",
            Category::Math,
            "sign(x)",
            "-1.0, 0.0 or 1.0 as `x` is negative, zero or positive (a double).",
            (1, Some(1)),
            double_fn,
        )
    },
];

fn int_literal(i: usize, v: &Value) -> Result<(), String> {
    match v {
        Value::Int64(_) | Value::Null => Ok(()),
        _ => Err(format!(
            "the {} argument must be an integer literal",
            super::ordinal(i)
        )),
    }
}

fn abs(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let t = numeric(name, 0, &args[0].dt)?;
    let kernel = if t == DataType::Int64 {
        // i64::MIN stays i64::MIN, as Spark's non-ANSI abs wraps.
        i64_to_i64(|v| Some(v.wrapping_abs()))
    } else {
        f64_to_f64(|v| Some(v.abs()))
    };
    Ok(Resolved {
        arg_types: vec![t.clone()],
        ret: t,
        kernel,
    })
}

fn ceil_floor(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let t = numeric(name, 0, &args[0].dt)?;
    let ceil = name.eq_ignore_ascii_case("ceil");
    let kernel = match (t == DataType::Int64, ceil) {
        (true, _) => i64_to_i64(Some),
        // A double out of range saturates and NaN is 0, as Spark's toLong.
        (false, true) => f64_to_i64(|v| Some(v.ceil() as i64)),
        (false, false) => f64_to_i64(|v| Some(v.floor() as i64)),
    };
    Ok(Resolved {
        arg_types: vec![t],
        ret: DataType::Int64,
        kernel,
    })
}

fn round(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let t = numeric(name, 0, &args[0].dt)?;
    let digits = match args.get(1).map(|a| &a.literal) {
        None => 0,
        Some(Some(Value::Int64(d))) => (*d).clamp(-400, 400) as i32,
        Some(Some(Value::Null)) => {
            return Ok(Resolved {
                arg_types: vec![t.clone(), DataType::Int64],
                ret: t.clone(),
                kernel: Kernel::rowwise(t, |_| Value::Null),
            })
        }
        Some(_) => {
            return Err(format!(
                "the second argument of {name} must be an integer literal"
            ))
        }
    };
    let even = name.eq_ignore_ascii_case("bround");
    let kernel = if t == DataType::Int64 {
        i64_to_i64(move |v| Some(round_int(v, digits, even)))
    } else {
        f64_to_f64(move |v| Some(round_decimal(v, digits, even)))
    };
    let mut arg_types = vec![t.clone()];
    if args.len() > 1 {
        arg_types.push(DataType::Int64);
    }
    Ok(Resolved {
        arg_types,
        ret: t,
        kernel: with_ignored_args(kernel, args.len()),
    })
}

/// A one-argument kernel called with extra (literal) arguments it has
/// already read at bind time.
fn with_ignored_args(k: Kernel, n: usize) -> Kernel {
    if n == 1 {
        return k;
    }
    let r = k.clone();
    Kernel::new(
        move |a: &[&Value]| r.row(&a[..1]),
        move |a: &[ArrayRef], len| k.column(&a[..1], len),
    )
}

/// Rounds an integer at a negative number of decimal places (half away from
/// zero, or half to even); non-negative places keep it.
fn round_int(v: i64, digits: i32, even: bool) -> i64 {
    if digits >= 0 {
        return v;
    }
    let f = 10i128.pow(digits.unsigned_abs().min(38));
    let m = (v as i128).abs();
    let (q, r) = (m / f, m % f);
    let up = 2 * r > f || (2 * r == f && (!even || q % 2 == 1));
    let out = (q + i128::from(up)) * f;
    (if v < 0 { -out } else { out }) as i64
}

/// Rounds `v` at `digits` decimal places on its shortest decimal form (so
/// `round(2.675, 2)` is `2.68`, as in Spark): half away from zero, or half
/// to even (`bround`).
pub(crate) fn round_decimal(v: f64, digits: i32, even: bool) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut ds: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    // value = 0.ds * 10^(exp + 1); keep `keep` digits.
    let keep = exp + 1 + digits;
    if keep >= ds.len() as i32 {
        return v;
    }
    let magnitude = if keep < 0 {
        0.0
    } else {
        let k = keep as usize;
        let first = ds[k];
        let rest_zero = ds[k + 1..].iter().all(|&d| d == b'0');
        let prev_odd = k > 0 && (ds[k - 1] - b'0') % 2 == 1;
        let round_up = if even {
            first > b'5' || (first == b'5' && (!rest_zero || prev_odd))
        } else {
            first >= b'5'
        };
        ds.truncate(k);
        let mut int_digits: u128 = ds
            .iter()
            .fold(0u128, |acc, d| acc * 10 + (d - b'0') as u128);
        if round_up {
            int_digits += 1;
        }
        // int_digits * 10^(exp + 1 - keep) = int_digits / 10^digits
        format!("{int_digits}e{}", -digits)
            .parse()
            .unwrap_or(v.abs())
    };
    if v < 0.0 {
        -magnitude
    } else {
        magnitude
    }
}

fn double_fn(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let t = coerce(name, 0, &args[0].dt, Want::Double)?;
    let kernel = match name.to_ascii_lowercase().as_str() {
        "sqrt" => f64_to_f64(|v| Some(v.sqrt())),
        "exp" => f64_to_f64(|v| Some(v.exp())),
        "ln" => f64_to_f64(|v| (v > 0.0).then(|| v.ln())),
        "log10" => f64_to_f64(|v| (v > 0.0).then(|| v.log10())),
        _ => f64_to_f64(|v| {
            Some(if v.is_nan() {
                v
            } else if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            })
        }),
    };
    Ok(Resolved {
        arg_types: vec![t],
        ret: DataType::Float64,
        kernel,
    })
}

/// `x^y` as the JVM computes it: a NaN exponent gives NaN, and so does
/// `(±1)^±∞`.
fn java_pow(x: f64, y: f64) -> f64 {
    if y.is_nan() || (x.abs() == 1.0 && y.is_infinite()) {
        f64::NAN
    } else {
        x.powf(y)
    }
}

fn pow(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let a = coerce(name, 0, &args[0].dt, Want::Double)?;
    let b = coerce(name, 1, &args[1].dt, Want::Double)?;
    Ok(Resolved {
        arg_types: vec![a, b],
        ret: DataType::Float64,
        kernel: Kernel::new(
            |a: &[&Value]| match (&a[0], &a[1]) {
                (Value::Float64(x), Value::Float64(y)) => Value::Float64(java_pow(*x, *y)),
                _ => Value::Null,
            },
            |a: &[ArrayRef], _| {
                let out: Float64Array = arrow::compute::binary(
                    a[0].as_primitive::<Float64Type>(),
                    a[1].as_primitive::<Float64Type>(),
                    java_pow,
                )
                .map_err(arrow_err)?;
                Ok(Arc::new(out) as ArrayRef)
            },
        ),
    })
}

fn extreme(name: &str, args: &[ArgInfo]) -> Result<Resolved, String> {
    let types: Vec<DataType> = args.iter().map(|a| a.dt.clone()).collect();
    let t = common(name, &types, false)?;
    if t == DataType::Boolean {
        return Err(format!("{name} does not take booleans"));
    }
    let want = if name.eq_ignore_ascii_case("greatest") {
        Ordering::Greater
    } else {
        Ordering::Less
    };
    Ok(Resolved {
        arg_types: vec![t.clone(); args.len()],
        ret: t.clone(),
        kernel: Kernel::rowwise(t, move |a: &[&Value]| {
            let mut best: Option<&Value> = None;
            for v in a.iter().filter(|v| !v.is_null()) {
                best = match best {
                    Some(b) if v.sql_cmp(b) != Some(want) => Some(b),
                    _ => Some(v),
                };
            }
            best.cloned().unwrap_or_default()
        }),
    })
}
