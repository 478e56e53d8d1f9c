//! Binding: resolving column names and checking types.

use std::sync::Arc;

use super::{BinaryOp, Expr, ScalarFunction};
use crate::error::{plan_err, EngineError, Result};
use crate::schema::{is_supported_type, timestamp_type, type_name, DataType, Field, Schema, Value};

/// An expression resolved against a schema: columns are indices, every node's
/// type is known. Evaluate it with [`BoundExpr::eval`].
#[derive(Clone, Debug)]
pub enum BoundExpr {
    /// The value of column `index`.
    Column(usize),
    /// A constant.
    Literal(Value),
    /// `+ - * %` on two numbers; `int` when both sides are `bigint`.
    Arith {
        /// The operator (never `Div`).
        op: BinaryOp,
        /// Left operand.
        left: Box<BoundExpr>,
        /// Right operand.
        right: Box<BoundExpr>,
        /// Integer arithmetic (wrapping) rather than double.
        int: bool,
    },
    /// `/`: always a double.
    Div(Box<BoundExpr>, Box<BoundExpr>),
    /// A comparison.
    Compare {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<BoundExpr>,
        /// Right operand.
        right: Box<BoundExpr>,
    },
    /// Three-valued AND.
    And(Box<BoundExpr>, Box<BoundExpr>),
    /// Three-valued OR.
    Or(Box<BoundExpr>, Box<BoundExpr>),
    /// Three-valued NOT.
    Not(Box<BoundExpr>),
    /// Arithmetic negation.
    Negate(Box<BoundExpr>),
    /// `IS NULL`.
    IsNull(Box<BoundExpr>),
    /// `IS NOT NULL`.
    IsNotNull(Box<BoundExpr>),
    /// A cast to `to`.
    Cast {
        /// The operand.
        expr: Box<BoundExpr>,
        /// The target type.
        to: DataType,
    },
    /// `round(e, digits)`.
    Round(Box<BoundExpr>, i32),
    /// `lower(e)`.
    Lower(Box<BoundExpr>),
    /// `upper(e)`.
    Upper(Box<BoundExpr>),
    /// `date_format(e, pattern)`, pattern already translated.
    DateFormat(Box<BoundExpr>, Arc<str>),
}

/// Finds a column by name: an exact match first, then a unique
/// case-insensitive match (Spark's default resolution).
pub fn resolve_column(schema: &Schema, name: &str) -> Result<usize> {
    if let Some(i) = schema.fields().iter().position(|f| f.name() == name) {
        return Ok(i);
    }
    let matches: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name().eq_ignore_ascii_case(name))
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [i] => Ok(*i),
        [] => plan_err(format!(
            "column `{name}` cannot be resolved; input columns: [{}]",
            column_list(schema)
        )),
        _ => plan_err(format!(
            "column reference `{name}` is ambiguous; input columns: [{}]",
            column_list(schema)
        )),
    }
}

fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_numeric(dt: &DataType) -> bool {
    matches!(dt, DataType::Int64 | DataType::Float64)
}

fn is_temporal(dt: &DataType) -> bool {
    matches!(dt, DataType::Timestamp(..) | DataType::Date32)
}

/// Binds `expr` to `schema`, returning the bound tree and its output field
/// (named as Spark would name it).
pub fn bind_expr(expr: &Expr, schema: &Schema) -> Result<(BoundExpr, Field)> {
    let (bound, dt) = bind(expr, schema)?;
    let dt = if dt == DataType::Null {
        DataType::Utf8
    } else {
        dt
    };
    Ok((bound, Field::new(expr.output_name(), dt, true)))
}

fn bind(expr: &Expr, schema: &Schema) -> Result<(BoundExpr, DataType)> {
    Ok(match expr {
        Expr::Column(name) => {
            let i = resolve_column(schema, name)?;
            let dt = schema.field(i).data_type().clone();
            if !is_supported_type(&dt) {
                return plan_err(format!("column `{name}` has unsupported type {dt}"));
            }
            (BoundExpr::Column(i), dt)
        }
        Expr::Literal(v) => (BoundExpr::Literal(v.clone()), literal_type(v)),
        Expr::Alias { expr, .. } => bind(expr, schema)?,
        Expr::Not(e) => {
            let (b, t) = bind(e, schema)?;
            expect_boolean(&t, e)?;
            (BoundExpr::Not(Box::new(b)), DataType::Boolean)
        }
        Expr::Negate(e) => {
            let (b, t) = bind(e, schema)?;
            if !is_numeric(&t) && t != DataType::Null {
                return plan_err(format!("cannot negate {} value in {expr}", type_name(&t)));
            }
            (BoundExpr::Negate(Box::new(b)), t)
        }
        Expr::IsNull(e) => (
            BoundExpr::IsNull(Box::new(bind(e, schema)?.0)),
            DataType::Boolean,
        ),
        Expr::IsNotNull(e) => (
            BoundExpr::IsNotNull(Box::new(bind(e, schema)?.0)),
            DataType::Boolean,
        ),
        Expr::Cast { expr: e, to } => {
            let to = normalize_type(to)?;
            let (b, _) = bind(e, schema)?;
            (
                BoundExpr::Cast {
                    expr: Box::new(b),
                    to: to.clone(),
                },
                to,
            )
        }
        Expr::Function { func, args } => bind_function(*func, args, schema, expr)?,
        Expr::Window(_) => {
            return plan_err(format!(
                "{expr} can only be used as a grouping key (group_by / GROUP BY)"
            ))
        }
        Expr::Binary { op, left, right } => bind_binary(*op, left, right, schema, expr)?,
    })
}

/// Maps the types users may name to the types the engine evaluates.
pub(crate) fn normalize_type(dt: &DataType) -> Result<DataType> {
    Ok(match dt {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => DataType::Int64,
        DataType::Float32 | DataType::Float64 => DataType::Float64,
        DataType::Timestamp(..) => timestamp_type(),
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8,
        DataType::Boolean | DataType::Date32 => dt.clone(),
        other => return plan_err(format!("type {other} is not supported")),
    })
}

fn literal_type(v: &Value) -> DataType {
    match v {
        Value::Null => DataType::Null,
        Value::Boolean(_) => DataType::Boolean,
        Value::Int64(_) => DataType::Int64,
        Value::Float64(_) => DataType::Float64,
        Value::Utf8(_) => DataType::Utf8,
        Value::Timestamp(_) => timestamp_type(),
        Value::Date(_) => DataType::Date32,
    }
}

fn expect_boolean(t: &DataType, e: &Expr) -> Result<()> {
    if matches!(t, DataType::Boolean | DataType::Null) {
        Ok(())
    } else {
        plan_err(format!(
            "{e} is {} but a boolean is required here",
            type_name(t)
        ))
    }
}

fn bind_binary(
    op: BinaryOp,
    left: &Expr,
    right: &Expr,
    schema: &Schema,
    whole: &Expr,
) -> Result<(BoundExpr, DataType)> {
    let (mut l, mut lt) = bind(left, schema)?;
    let (mut r, mut rt) = bind(right, schema)?;
    match op {
        BinaryOp::And | BinaryOp::Or => {
            expect_boolean(&lt, left)?;
            expect_boolean(&rt, right)?;
            let (l, r) = (Box::new(l), Box::new(r));
            let b = if op == BinaryOp::And {
                BoundExpr::And(l, r)
            } else {
                BoundExpr::Or(l, r)
            };
            Ok((b, DataType::Boolean))
        }
        _ if op.is_comparison() => {
            // Implicit casts Spark users rely on: a string compared with a
            // number, timestamp or date is cast to the other side's type.
            if lt == DataType::Utf8 && (is_numeric(&rt) || is_temporal(&rt)) {
                l = cast_node(l, &rt);
                lt = rt.clone();
            } else if rt == DataType::Utf8 && (is_numeric(&lt) || is_temporal(&lt)) {
                r = cast_node(r, &lt);
                rt = lt.clone();
            } else if is_temporal(&lt) && is_temporal(&rt) && lt != rt {
                l = cast_node(l, &timestamp_type());
                r = cast_node(r, &timestamp_type());
                lt = timestamp_type();
                rt = lt.clone();
            }
            let comparable = lt == DataType::Null
                || rt == DataType::Null
                || (is_numeric(&lt) && is_numeric(&rt))
                || same_kind(&lt, &rt);
            if !comparable {
                return plan_err(format!(
                    "cannot compare {} with {} in {whole}",
                    type_name(&lt),
                    type_name(&rt)
                ));
            }
            Ok((
                BoundExpr::Compare {
                    op,
                    left: Box::new(l),
                    right: Box::new(r),
                },
                DataType::Boolean,
            ))
        }
        _ => {
            // Arithmetic. Strings are cast to double, as Spark does.
            if lt == DataType::Utf8 {
                l = cast_node(l, &DataType::Float64);
                lt = DataType::Float64;
            }
            if rt == DataType::Utf8 {
                r = cast_node(r, &DataType::Float64);
                rt = DataType::Float64;
            }
            let ok = |t: &DataType| is_numeric(t) || *t == DataType::Null;
            if !ok(&lt) || !ok(&rt) {
                return plan_err(format!(
                    "arithmetic needs numbers, got {} and {} in {whole}",
                    type_name(&lt),
                    type_name(&rt)
                ));
            }
            let (l, r) = (Box::new(l), Box::new(r));
            if op == BinaryOp::Div {
                return Ok((BoundExpr::Div(l, r), DataType::Float64));
            }
            let int = lt != DataType::Float64 && rt != DataType::Float64;
            let out = if int {
                DataType::Int64
            } else {
                DataType::Float64
            };
            Ok((
                BoundExpr::Arith {
                    op,
                    left: l,
                    right: r,
                    int,
                },
                out,
            ))
        }
    }
}

fn same_kind(a: &DataType, b: &DataType) -> bool {
    matches!((a, b), (DataType::Timestamp(..), DataType::Timestamp(..))) || a == b
}

fn cast_node(b: BoundExpr, to: &DataType) -> BoundExpr {
    // Fold casts of literals at bind time, so the hot path compares constants.
    if let BoundExpr::Literal(v) = &b {
        return BoundExpr::Literal(crate::schema::cast_value(v, to));
    }
    BoundExpr::Cast {
        expr: Box::new(b),
        to: to.clone(),
    }
}

fn bind_function(
    func: ScalarFunction,
    args: &[Expr],
    schema: &Schema,
    whole: &Expr,
) -> Result<(BoundExpr, DataType)> {
    let arity_err = |n: &str| -> Result<(BoundExpr, DataType)> {
        plan_err(format!("{} takes {n} argument(s) in {whole}", func.name()))
    };
    match func {
        ScalarFunction::Round => {
            if args.is_empty() || args.len() > 2 {
                return arity_err("1 or 2");
            }
            let (b, t) = bind(&args[0], schema)?;
            let digits = match args.get(1) {
                None => 0,
                Some(Expr::Literal(Value::Int64(d))) => *d as i32,
                Some(other) => {
                    return plan_err(format!(
                        "round's second argument must be an integer literal, got {other}"
                    ))
                }
            };
            if !is_numeric(&t) && t != DataType::Null {
                return plan_err(format!(
                    "round needs a number, got {} in {whole}",
                    type_name(&t)
                ));
            }
            Ok((BoundExpr::Round(Box::new(b), digits), t))
        }
        ScalarFunction::Lower | ScalarFunction::Upper => {
            if args.len() != 1 {
                return arity_err("1");
            }
            let (b, t) = bind(&args[0], schema)?;
            let b = if t == DataType::Utf8 {
                b
            } else {
                cast_node(b, &DataType::Utf8)
            };
            let node = if func == ScalarFunction::Lower {
                BoundExpr::Lower(Box::new(b))
            } else {
                BoundExpr::Upper(Box::new(b))
            };
            Ok((node, DataType::Utf8))
        }
        ScalarFunction::DateFormat => {
            if args.len() != 2 {
                return arity_err("2");
            }
            let (b, t) = bind(&args[0], schema)?;
            let b = match t {
                DataType::Timestamp(..) => b,
                _ => cast_node(b, &timestamp_type()),
            };
            let pattern = match &args[1] {
                Expr::Literal(Value::Utf8(p)) => p.clone(),
                other => {
                    return plan_err(format!(
                        "date_format's pattern must be a string literal, got {other}"
                    ))
                }
            };
            let chrono_pattern = crate::time::spark_pattern_to_chrono(&pattern)
                .map_err(|e| EngineError::Plan(format!("{e} in {whole}")))?;
            Ok((
                BoundExpr::DateFormat(Box::new(b), Arc::from(chrono_pattern)),
                DataType::Utf8,
            ))
        }
    }
}
