//! Expressions: the tree users build, and its row evaluator.
//!
//! Owns the logical [`Expr`] tree with its builder functions ([`col`],
//! [`lit`], [`call`], [`case_when`], operators), binding a tree to a schema
//! (`bind`: names resolved case-insensitively, types checked, output type
//! known), the scalar function library (`functions`: one definition per
//! function, with both kernels) and evaluating a bound tree against one row
//! (`eval`) or a record batch (`vector`) with SQL null semantics. It must
//! not know about operators, windows or I/O.

mod bind;
mod case;
mod compare;
mod cond;
mod eval;
pub(crate) mod functions;
mod project;
mod vector;

pub(crate) use bind::unknown_function;
pub use bind::{bind_expr, bind_expr_in, resolve_column, BoundCall, BoundCase, BoundExpr};
pub use cond::Predicate;
pub use project::Projection;

/// The supported SQL functions and expressions as markdown (the README's
/// list is this text; `runnel` can print it).
pub fn supported_functions_markdown() -> String {
    functions::markdown()
}

use std::fmt;
use std::ops;

use crate::schema::{DataType, Value};

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (always a double, as in Spark; division by zero is null)
    Div,
    /// `%` (sign of the dividend; modulo by zero is null)
    Mod,
    /// `=`
    Eq,
    /// `!=` / `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `<=>` (null-safe equality: never null; `IS NOT DISTINCT FROM`)
    NullSafeEq,
    /// `DIV` (integer division truncating toward zero; by zero is null)
    IntDiv,
    /// `AND` (three-valued)
    And,
    /// `OR` (three-valued)
    Or,
}

impl BinaryOp {
    /// The operator as SQL writes it (`+`, `<=`, `AND`).
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::NullSafeEq => "<=>",
            BinaryOp::IntDiv => "div",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
        }
    }

    /// Whether the operator compares its operands.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
                | BinaryOp::NullSafeEq
        )
    }
}

/// An expression over the columns of a stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A column by name (matched case-insensitively, as in Spark).
    Column(String),
    /// A constant.
    Literal(Value),
    /// `left op right`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `NOT e` (three-valued).
    Not(Box<Expr>),
    /// `-e`.
    Negate(Box<Expr>),
    /// `e IS NULL`.
    IsNull(Box<Expr>),
    /// `e IS NOT NULL`.
    IsNotNull(Box<Expr>),
    /// `CAST(e AS type)`; a value that does not convert becomes null.
    Cast {
        /// The operand.
        expr: Box<Expr>,
        /// The target type.
        to: DataType,
    },
    /// A call of a scalar function of the registry, by name (any case,
    /// aliases included; resolved when the expression is bound).
    Function {
        /// The name as written.
        name: String,
        /// Its arguments.
        args: Vec<Expr>,
    },
    /// `CASE WHEN c1 THEN r1 ... [ELSE e] END`: the result of the first
    /// branch whose condition is true, else `e` (null without ELSE).
    Case {
        /// `(condition, result)` pairs, in order.
        branches: Vec<(Expr, Expr)>,
        /// The ELSE result.
        otherwise: Option<Box<Expr>>,
    },
    /// `window(time, size[, slide[, start]])`: only valid as a grouping key.
    Window(Box<WindowExpr>),
    /// `e AS name`.
    Alias {
        /// The aliased expression.
        expr: Box<Expr>,
        /// The output column name.
        name: String,
    },
}

/// Writes `CASE WHEN c THEN r … [ELSE e] END`, for every tree that has a
/// searched CASE (the expression tree, and SQL's before translation).
pub(crate) fn write_case<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    branches: &[(T, T)],
    otherwise: Option<&T>,
) -> fmt::Result {
    f.write_str("CASE")?;
    for (c, r) in branches {
        write!(f, " WHEN {c} THEN {r}")?;
    }
    if let Some(e) = otherwise {
        write!(f, " ELSE {e}")?;
    }
    f.write_str(" END")
}

/// A time window over `time`, for `group_by`: see [`window`].
#[derive(Clone, Debug, PartialEq)]
pub struct WindowExpr {
    /// The event-time column or expression (a timestamp).
    pub time: Expr,
    /// Window length, as Spark writes it (`"10 minutes"`).
    pub size: String,
    /// Slide (defaults to the size: tumbling windows).
    pub slide: Option<String>,
    /// Offset of window starts from the epoch.
    pub start: Option<String>,
}

/// A tumbling window of `size` over `time`: `window(col("ts"), "10 minutes")`.
/// Use it as a grouping key; the result has `window_start` and `window_end`.
pub fn window(time: Expr, size: &str) -> Expr {
    Expr::Window(Box::new(WindowExpr {
        time,
        size: size.to_string(),
        slide: None,
        start: None,
    }))
}

/// A sliding window: `sliding_window(col("ts"), "10 minutes", "5 minutes")`.
pub fn sliding_window(time: Expr, size: &str, slide: &str) -> Expr {
    Expr::Window(Box::new(WindowExpr {
        time,
        size: size.to_string(),
        slide: Some(slide.to_string()),
        start: None,
    }))
}

/// A window with a start offset: `window_with_start(col("ts"), "1 hour", "1 hour", "15 minutes")`.
pub fn window_with_start(time: Expr, size: &str, slide: &str, start: &str) -> Expr {
    Expr::Window(Box::new(WindowExpr {
        time,
        size: size.to_string(),
        slide: Some(slide.to_string()),
        start: Some(start.to_string()),
    }))
}

/// A column reference.
pub fn col(name: impl Into<String>) -> Expr {
    Expr::Column(name.into())
}

/// A literal.
pub fn lit(value: impl Into<Value>) -> Expr {
    Expr::Literal(value.into())
}

/// `NOT e`.
pub fn not(e: Expr) -> Expr {
    Expr::Not(Box::new(e))
}

/// A call of any scalar function of the registry by name:
/// `call("coalesce", [col("a"), lit(0i64)])`. An unknown name or a wrong
/// argument is reported when the query is built.
pub fn call(name: &str, args: impl IntoIterator<Item = Expr>) -> Expr {
    Expr::Function {
        name: name.to_string(),
        args: args.into_iter().collect(),
    }
}

/// `split(e, regex)`: the pieces of a string around a regular expression,
/// as `array<string>`.
pub fn split(e: Expr, regex: &str) -> Expr {
    call("split", [e, lit(regex)])
}

/// `explode(array)`: a generator, one row per element, for
/// [`select`](crate::DataFrame::select) or
/// [`lateral_view`](crate::DataFrame::lateral_view). Its column is `col`
/// unless aliased.
pub fn explode(array: Expr) -> Expr {
    call("explode", [array])
}

/// `explode_outer(array)`: as [`explode`], but a null or empty array keeps
/// its row once, with a null element.
pub fn explode_outer(array: Expr) -> Expr {
    call("explode_outer", [array])
}

/// `posexplode(array)`: as [`explode`], with the element's 0-based position
/// first (columns `pos` and `col`).
pub fn posexplode(array: Expr) -> Expr {
    call("posexplode", [array])
}

/// `posexplode_outer(array)`: [`posexplode`] that keeps a row for a null or
/// empty array.
pub fn posexplode_outer(array: Expr) -> Expr {
    call("posexplode_outer", [array])
}

/// A generator call (`explode` and its kin): its array argument, and
/// whether it gives positions and keeps empty arrays; `None` for any other
/// expression. An alias around the call is looked through.
pub(crate) fn as_generator(e: &Expr) -> Option<(&Expr, bool, bool, &str)> {
    match e {
        Expr::Alias { expr, .. } => as_generator(expr),
        Expr::Function { name, args } => {
            let lower = name.to_ascii_lowercase();
            let (position, outer) = match lower.as_str() {
                "explode" => (false, false),
                "explode_outer" => (false, true),
                "posexplode" => (true, false),
                "posexplode_outer" => (true, true),
                _ => return None,
            };
            Some((args.first()?, position, outer, name.as_str()))
        }
        _ => None,
    }
}

/// `CASE WHEN c1 THEN r1 ... ELSE otherwise END`.
pub fn case_when(
    branches: impl IntoIterator<Item = (Expr, Expr)>,
    otherwise: Option<Expr>,
) -> Expr {
    Expr::Case {
        branches: branches.into_iter().collect(),
        otherwise: otherwise.map(Box::new),
    }
}

/// `round(e, digits)`.
pub fn round(e: Expr, digits: i64) -> Expr {
    call("round", [e, lit(digits)])
}

/// `lower(e)`.
pub fn lower(e: Expr) -> Expr {
    call("lower", [e])
}

/// `upper(e)`.
pub fn upper(e: Expr) -> Expr {
    call("upper", [e])
}

/// `date_format(e, pattern)` (Spark pattern letters such as `yyyy-MM-dd HH:mm`).
pub fn date_format(e: Expr, pattern: &str) -> Expr {
    call("date_format", [e, lit(pattern)])
}

/// `coalesce(e1, e2, ...)`.
pub fn coalesce(args: impl IntoIterator<Item = Expr>) -> Expr {
    call("coalesce", args)
}

/// `concat(e1, e2, ...)`.
pub fn concat(args: impl IntoIterator<Item = Expr>) -> Expr {
    call("concat", args)
}

impl Expr {
    fn binary(self, op: BinaryOp, other: Expr) -> Expr {
        Expr::Binary {
            op,
            left: Box::new(self),
            right: Box::new(other),
        }
    }
    /// `self = other`.
    pub fn eq(self, other: Expr) -> Expr {
        self.binary(BinaryOp::Eq, other)
    }
    /// `self != other`.
    pub fn not_eq(self, other: Expr) -> Expr {
        self.binary(BinaryOp::NotEq, other)
    }
    /// `self < other`.
    pub fn lt(self, other: Expr) -> Expr {
        self.binary(BinaryOp::Lt, other)
    }
    /// `self <= other`.
    pub fn lt_eq(self, other: Expr) -> Expr {
        self.binary(BinaryOp::LtEq, other)
    }
    /// `self > other`.
    pub fn gt(self, other: Expr) -> Expr {
        self.binary(BinaryOp::Gt, other)
    }
    /// `self >= other`.
    pub fn gt_eq(self, other: Expr) -> Expr {
        self.binary(BinaryOp::GtEq, other)
    }
    /// `self AND other`.
    pub fn and(self, other: Expr) -> Expr {
        self.binary(BinaryOp::And, other)
    }
    /// `self OR other`.
    pub fn or(self, other: Expr) -> Expr {
        self.binary(BinaryOp::Or, other)
    }
    /// `self <=> other` (`IS NOT DISTINCT FROM`: null-safe equality).
    pub fn is_not_distinct_from(self, other: Expr) -> Expr {
        self.binary(BinaryOp::NullSafeEq, other)
    }
    /// `self IS DISTINCT FROM other`.
    pub fn is_distinct_from(self, other: Expr) -> Expr {
        not(self.binary(BinaryOp::NullSafeEq, other))
    }
    /// `self DIV other` (integer division).
    pub fn int_div(self, other: Expr) -> Expr {
        self.binary(BinaryOp::IntDiv, other)
    }
    /// `self LIKE pattern` (`_` any character, `%` any sequence, `\` escapes).
    pub fn like(self, pattern: &str) -> Expr {
        call("like", [self, lit(pattern)])
    }
    /// `self ILIKE pattern` (LIKE ignoring case).
    pub fn ilike(self, pattern: &str) -> Expr {
        call("ilike", [self, lit(pattern)])
    }
    /// `self RLIKE regex` (the regular expression matches somewhere).
    pub fn rlike(self, regex: &str) -> Expr {
        call("rlike", [self, lit(regex)])
    }
    /// `self IS NULL`.
    pub fn is_null(self) -> Expr {
        Expr::IsNull(Box::new(self))
    }
    /// `self IS NOT NULL`.
    pub fn is_not_null(self) -> Expr {
        Expr::IsNotNull(Box::new(self))
    }
    /// `CAST(self AS to)`.
    pub fn cast(self, to: DataType) -> Expr {
        Expr::Cast {
            expr: Box::new(self),
            to,
        }
    }
    /// `self AS name`.
    pub fn alias(self, name: impl Into<String>) -> Expr {
        Expr::Alias {
            expr: Box::new(self),
            name: name.into(),
        }
    }

    /// The output column name Spark would give this expression.
    pub fn output_name(&self) -> String {
        match self {
            Expr::Column(c) => c.clone(),
            Expr::Alias { name, .. } => name.clone(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(c) => f.write_str(c),
            Expr::Literal(Value::Utf8(s)) => write!(f, "'{s}'"),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Not(e) => write!(f, "(NOT {e})"),
            Expr::Negate(e) => write!(f, "(- {e})"),
            Expr::IsNull(e) => write!(f, "({e} IS NULL)"),
            Expr::IsNotNull(e) => write!(f, "({e} IS NOT NULL)"),
            Expr::Cast { expr, to } => {
                write!(f, "CAST({expr} AS {})", crate::schema::type_name(to))
            }
            Expr::Case {
                branches,
                otherwise,
            } => write_case(f, branches, otherwise.as_deref()),
            Expr::Function { name, args } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::Alias { expr, name } => write!(f, "{expr} AS {name}"),
            Expr::Window(w) => {
                write!(f, "window({}, '{}'", w.time, w.size)?;
                if let Some(s) = &w.slide {
                    write!(f, ", '{s}'")?;
                }
                if let Some(s) = &w.start {
                    write!(f, ", '{s}'")?;
                }
                f.write_str(")")
            }
        }
    }
}

macro_rules! arith_op {
    ($trait:ident, $method:ident, $op:expr) => {
        impl ops::$trait for Expr {
            type Output = Expr;
            fn $method(self, rhs: Expr) -> Expr {
                self.binary($op, rhs)
            }
        }
    };
}
arith_op!(Add, add, BinaryOp::Add);
arith_op!(Sub, sub, BinaryOp::Sub);
arith_op!(Mul, mul, BinaryOp::Mul);
arith_op!(Div, div, BinaryOp::Div);
arith_op!(Rem, rem, BinaryOp::Mod);

impl ops::Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::Negate(Box::new(self))
    }
}

impl ops::Not for Expr {
    type Output = Expr;
    fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }
}

/// Builders of every bigint arithmetic operator and every comparison, for
/// tests that try each.
#[cfg(test)]
pub(crate) mod test_ops {
    use super::Expr;

    /// An operator's builder.
    pub(crate) type Op = fn(Expr, Expr) -> Expr;

    /// `+`, `-`, `*`, `%` and `DIV`.
    pub(crate) const ARITH: [Op; 5] = [
        |a, b| a + b,
        |a, b| a - b,
        |a, b| a * b,
        |a, b| a % b,
        Expr::int_div,
    ];

    /// `=`, `<>`, `<`, `<=`, `>` and `>=`.
    pub(crate) const COMPARE: [Op; 6] = [
        Expr::eq,
        Expr::not_eq,
        Expr::lt,
        Expr::lt_eq,
        Expr::gt,
        Expr::gt_eq,
    ];
}
