//! Binding: resolving column names and checking types.

use std::sync::Arc;

use super::case;
use super::functions::{self, Arg, ArgInfo, Direct, FunctionDef, Kernel};
use super::{BinaryOp, Expr};
use crate::error::{plan_err, Result};
use crate::schema::{
    cast_value_in, is_supported_type, list_type, qualifier_of, timestamp_type, type_name, DataType,
    Field, Schema, Value,
};
use crate::time::Zone;

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
        /// The session time zone, for casts between text, dates and
        /// timestamps.
        zone: Zone,
    },
    /// A call of a registry function.
    Call(Box<BoundCall>),
    /// `CASE WHEN ... END`.
    Case(Box<BoundCase>),
}

/// A bound function call: the function, its kernels (with anything compiled
/// at bind time, such as a pattern) and its arguments, already cast to the
/// types the function's type rule asked for.
#[derive(Clone, Debug)]
pub struct BoundCall {
    /// Which function.
    pub(crate) func: &'static FunctionDef,
    pub(crate) kernel: Kernel,
    pub(crate) args: Vec<BoundExpr>,
    /// The type each argument has (a null argument: the type it stands for).
    pub(crate) arg_types: Arc<[DataType]>,
    pub(crate) ret: DataType,
    /// The kernel's direct row form for these arguments, when they are all
    /// columns or literals and the kernel has one.
    pub(crate) direct: Option<Direct>,
}

/// A bound `CASE`: conditions are booleans, results are cast to `ret`.
#[derive(Clone, Debug)]
pub struct BoundCase {
    pub(crate) branches: Vec<(BoundExpr, BoundExpr)>,
    pub(crate) otherwise: BoundExpr,
    pub(crate) ret: DataType,
    /// One closure for the whole `CASE` (built when it is bound).
    pub(crate) direct: Direct,
}

/// Finds a column by name: an exact match first, then a unique
/// case-insensitive match (Spark's default resolution), then
/// `qualifier.column` for a column of a joined table or an alias. A name two
/// joined tables both have is ambiguous and must be qualified.
pub fn resolve_column(schema: &Schema, name: &str) -> Result<usize> {
    let exact: Vec<usize> = positions(schema, |f| f.name() == name);
    match exact.as_slice() {
        [i] => return Ok(*i),
        [first, ..] if !from_tables(schema, &exact) => return Ok(*first),
        [_, ..] => return ambiguous(schema, name, &exact),
        [] => {}
    }
    let matches = positions(schema, |f| f.name().eq_ignore_ascii_case(name));
    match matches.as_slice() {
        [i] => Ok(*i),
        [] => {
            // `qualifier.column`: a column of a joined table or an alias.
            if let Some((qualifier, column)) = name.split_once('.') {
                let qualified = positions(schema, |f| {
                    f.name().eq_ignore_ascii_case(column)
                        && qualifier_of(f).is_some_and(|q| q.eq_ignore_ascii_case(qualifier))
                });
                match qualified.as_slice() {
                    [i] => return Ok(*i),
                    [_, ..] => return ambiguous(schema, name, &qualified),
                    [] => {}
                }
            }
            plan_err(format!(
                "column `{name}` cannot be resolved; input columns: [{}]",
                column_list(schema)
            ))
        }
        _ if from_tables(schema, &matches) => ambiguous(schema, name, &matches),
        _ => plan_err(format!(
            "column reference `{name}` is ambiguous; input columns: [{}]",
            column_list(schema)
        )),
    }
}

fn positions(schema: &Schema, pick: impl Fn(&Field) -> bool) -> Vec<usize> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| pick(f))
        .map(|(i, _)| i)
        .collect()
}

/// Whether the columns at `at` come from different tables (a join).
fn from_tables(schema: &Schema, at: &[usize]) -> bool {
    let first = qualifier_of(schema.field(at[0]));
    first.is_some() && at.iter().any(|&i| qualifier_of(schema.field(i)) != first)
}

/// Spark's error for a name that more than one joined table has.
fn ambiguous<T>(schema: &Schema, name: &str, at: &[usize]) -> Result<T> {
    let could: Vec<String> = at
        .iter()
        .map(|&i| {
            let f = schema.field(i);
            match qualifier_of(f) {
                Some(q) => format!("{q}.{}", f.name()),
                None => f.name().clone(),
            }
        })
        .collect();
    plan_err(format!(
        "reference `{name}` is ambiguous, could be: {}; qualify it with its table or alias",
        could.join(", ")
    ))
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
/// (named as Spark would name it). Times are read in UTC; see
/// [`bind_expr_in`].
pub fn bind_expr(expr: &Expr, schema: &Schema) -> Result<(BoundExpr, Field)> {
    bind_expr_in(expr, schema, Zone::UTC)
}

/// [`bind_expr`] in a session time zone: the zone the time functions and
/// the casts between text, dates and timestamps read and build local times
/// in.
pub fn bind_expr_in(expr: &Expr, schema: &Schema, zone: Zone) -> Result<(BoundExpr, Field)> {
    let (bound, dt) = bind(expr, schema, zone)?;
    let dt = if dt == DataType::Null {
        DataType::Utf8
    } else {
        dt
    };
    Ok((bound, Field::new(expr.output_name(), dt, true)))
}

fn bind(expr: &Expr, schema: &Schema, zone: Zone) -> Result<(BoundExpr, DataType)> {
    Ok(match expr {
        Expr::Column(name) => {
            let i = resolve_column(schema, name)?;
            let dt = schema.field(i).data_type().clone();
            if !is_supported_type(&dt) {
                return plan_err(format!("column `{name}` has unsupported type {dt}"));
            }
            (BoundExpr::Column(i), dt)
        }
        Expr::Literal(v) => (BoundExpr::Literal(v.clone()), v.data_type()),
        Expr::Alias { expr, .. } => bind(expr, schema, zone)?,
        Expr::Not(e) => {
            let (b, t) = bind(e, schema, zone)?;
            expect_boolean(&t, e)?;
            (BoundExpr::Not(Box::new(b)), DataType::Boolean)
        }
        Expr::Negate(e) => {
            let (b, t) = bind(e, schema, zone)?;
            if !is_numeric(&t) && t != DataType::Null {
                return plan_err(format!("cannot negate {} value in {expr}", type_name(&t)));
            }
            (BoundExpr::Negate(Box::new(b)), t)
        }
        Expr::IsNull(e) => (
            BoundExpr::IsNull(Box::new(bind(e, schema, zone)?.0)),
            DataType::Boolean,
        ),
        Expr::IsNotNull(e) => (
            BoundExpr::IsNotNull(Box::new(bind(e, schema, zone)?.0)),
            DataType::Boolean,
        ),
        Expr::Cast { expr: e, to } => {
            let to = normalize_type(to)?;
            let (b, from) = bind(e, schema, zone)?;
            if matches!(from, DataType::List(_)) && to != DataType::Utf8 && to != from {
                return plan_err(format!(
                    "cannot cast {} to {} in {expr}: an array casts only to string",
                    type_name(&from),
                    type_name(&to)
                ));
            }
            (
                BoundExpr::Cast {
                    expr: Box::new(b),
                    to: to.clone(),
                    zone,
                },
                to,
            )
        }
        Expr::Function { name, args } => bind_call(name, args, schema, expr, zone)?,
        Expr::Case {
            branches,
            otherwise,
        } => bind_case(branches, otherwise.as_deref(), schema, expr, zone)?,
        Expr::Window(_) => {
            return plan_err(format!(
                "{expr} can only be used as a grouping key (group_by / GROUP BY)"
            ))
        }
        Expr::Binary { op, left, right } => bind_binary(*op, left, right, schema, expr, zone)?,
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
        DataType::List(f) | DataType::LargeList(f) => list_type(normalize_type(f.data_type())?),
        other => return plan_err(format!("type {other} is not supported")),
    })
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
    zone: Zone,
) -> Result<(BoundExpr, DataType)> {
    let (mut l, mut lt) = bind(left, schema, zone)?;
    let (mut r, mut rt) = bind(right, schema, zone)?;
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
                l = cast_node(l, &rt, zone);
                lt = rt.clone();
            } else if rt == DataType::Utf8 && (is_numeric(&lt) || is_temporal(&lt)) {
                r = cast_node(r, &lt, zone);
                rt = lt.clone();
            } else if is_temporal(&lt) && is_temporal(&rt) && lt != rt {
                l = cast_node(l, &timestamp_type(), zone);
                r = cast_node(r, &timestamp_type(), zone);
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
                l = cast_node(l, &DataType::Float64, zone);
                lt = DataType::Float64;
            }
            if rt == DataType::Utf8 {
                r = cast_node(r, &DataType::Float64, zone);
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
            if op == BinaryOp::IntDiv {
                // Spark's `div` is on longs: doubles are cast (truncated).
                if lt == DataType::Float64 {
                    l = cast_node(l, &DataType::Int64, zone);
                    lt = DataType::Int64;
                }
                if rt == DataType::Float64 {
                    r = cast_node(r, &DataType::Int64, zone);
                    rt = DataType::Int64;
                }
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

fn cast_node(b: BoundExpr, to: &DataType, zone: Zone) -> BoundExpr {
    // Fold casts of literals at bind time, so the hot path compares constants.
    if let BoundExpr::Literal(v) = &b {
        return BoundExpr::Literal(cast_value_in(v, to, zone));
    }
    BoundExpr::Cast {
        expr: Box::new(b),
        to: to.clone(),
        zone,
    }
}

/// The names callable besides the registry's, for suggestions.
pub(crate) const OTHER_FUNCTIONS: [&str; 23] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "first_value",
    "last",
    "last_value",
    "stddev",
    "std",
    "stddev_samp",
    "stddev_pop",
    "variance",
    "var_samp",
    "var_pop",
    "approx_count_distinct",
    "collect_list",
    "window",
    "explode",
    "explode_outer",
    "posexplode",
    "posexplode_outer",
];

/// The message for an unknown function: the nearest callable name and the
/// list of them.
pub(crate) fn unknown_function(name: &str) -> String {
    let mut msg = format!("function `{name}` is not supported");
    if let Some(n) = functions::nearest(name, &OTHER_FUNCTIONS) {
        msg.push_str(&format!("; did you mean `{n}`?"));
    }
    let all: Vec<&str> = functions::names(&OTHER_FUNCTIONS).collect();
    msg.push_str(&format!(" Supported: {}", all.join(", ")));
    msg
}

fn bind_call(
    name: &str,
    args: &[Expr],
    schema: &Schema,
    whole: &Expr,
    zone: Zone,
) -> Result<(BoundExpr, DataType)> {
    if functions::GENERATORS
        .iter()
        .any(|g| g.eq_ignore_ascii_case(name))
    {
        return plan_err(format!(
            "the generator {name} is allowed only as a whole item of the select list or in \
             LATERAL VIEW, not inside another expression: {whole}"
        ));
    }
    let Some(func) = functions::lookup(name) else {
        return plan_err(unknown_function(name));
    };
    functions::check_arity(func, name, args.len())
        .or_else(|m| plan_err(format!("{m} in {whole}")))?;
    let mut bound = Vec::with_capacity(args.len());
    let mut infos = Vec::with_capacity(args.len());
    for a in args {
        let (b, dt) = bind(a, schema, zone)?;
        let literal = match &b {
            BoundExpr::Literal(v) => Some(v.clone()),
            _ => None,
        };
        infos.push(ArgInfo { dt, literal });
        bound.push(b);
    }
    for &i in func.literal_args {
        let Some(info) = infos.get(i) else { continue };
        match &info.literal {
            None => {
                return plan_err(format!(
                    "the {} argument of {name} must be {} in {whole}",
                    functions::ordinal(i),
                    func.literal_what
                ))
            }
            Some(v) => {
                (func.check_literal)(i, v).or_else(|m| plan_err(format!("{m} in {whole}")))?
            }
        }
    }
    let resolved = func
        .resolve
        .resolve(name, &infos, zone)
        .or_else(|m| plan_err(format!("{m} in {whole}")))?;
    let args: Vec<BoundExpr> = bound
        .into_iter()
        .zip(infos)
        .zip(resolved.arg_types.iter())
        .map(|((b, info), want)| {
            if info.dt == *want || info.dt == DataType::Null || *want == DataType::Null {
                b
            } else {
                cast_node(b, want, zone)
            }
        })
        .collect();
    let ret = resolved.ret.clone();
    let direct = direct_form(func, &resolved.kernel, &args, &ret);
    Ok((
        BoundExpr::Call(Box::new(BoundCall {
            func,
            kernel: resolved.kernel,
            args,
            arg_types: resolved.arg_types.into(),
            ret: resolved.ret,
            direct,
        })),
        ret,
    ))
}

/// The kernel's direct form for a call, if it has one for these arguments:
/// an argument the function reads at bind time is passed as null, as the
/// row form gets it; any other argument that is not a column or a literal
/// is evaluated by its own tree. None for a call whose type is null (it is
/// null).
fn direct_form(
    func: &FunctionDef,
    kernel: &Kernel,
    args: &[BoundExpr],
    ret: &DataType,
) -> Option<Direct> {
    if *ret == DataType::Null {
        return None;
    }
    let from = args
        .iter()
        .enumerate()
        .map(|(i, a)| match a {
            _ if func.literal_args.contains(&i) => Arg::Literal(Value::Null),
            BoundExpr::Column(c) => Arg::Column(*c),
            BoundExpr::Literal(v) => Arg::Literal(v.clone()),
            other => {
                let e = other.clone();
                Arg::Computed(Direct::new(move |row: &[Value]| e.eval(row)))
            }
        })
        .collect::<Vec<Arg>>();
    kernel.direct(&from)
}

fn bind_case(
    branches: &[(Expr, Expr)],
    otherwise: Option<&Expr>,
    schema: &Schema,
    whole: &Expr,
    zone: Zone,
) -> Result<(BoundExpr, DataType)> {
    let mut conds = Vec::with_capacity(branches.len());
    let mut results = Vec::with_capacity(branches.len() + 1);
    for (c, r) in branches {
        let (cb, ct) = bind(c, schema, zone)?;
        expect_boolean(&ct, c)?;
        conds.push(cb);
        results.push(bind(r, schema, zone)?);
    }
    results.push(match otherwise {
        Some(e) => bind(e, schema, zone)?,
        None => (BoundExpr::Literal(Value::Null), DataType::Null),
    });
    let types: Vec<DataType> = results.iter().map(|(_, t)| t.clone()).collect();
    let ret =
        functions::common_type("CASE", &types).or_else(|m| plan_err(format!("{m} in {whole}")))?;
    let mut results: Vec<BoundExpr> = results
        .into_iter()
        .map(|(b, t)| {
            if t == ret || t == DataType::Null {
                b
            } else {
                cast_node(b, &ret, zone)
            }
        })
        .collect();
    let otherwise = results.pop().unwrap_or(BoundExpr::Literal(Value::Null));
    let branches: Vec<(BoundExpr, BoundExpr)> = conds.into_iter().zip(results).collect();
    let direct = case::direct_case(&branches, &otherwise);
    Ok((
        BoundExpr::Case(Box::new(BoundCase {
            branches,
            otherwise,
            ret: ret.clone(),
            direct,
        })),
        ret,
    ))
}
