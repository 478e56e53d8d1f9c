//! Expressions: the tree users build, and its row evaluator.
//!
//! Owns the logical [`Expr`] tree with its builder functions ([`col`],
//! [`lit`], operators), binding a tree to a schema (`bind`: names resolved
//! case-insensitively, types checked, output type known) and evaluating a
//! bound tree against one row with SQL null semantics (`eval`). It must not
//! know about operators, windows or I/O.

mod bind;
mod eval;
mod vector;

pub use bind::{bind_expr, resolve_column, BoundExpr};

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
        )
    }
}

/// A scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScalarFunction {
    /// `round(x[, digits])`: half away from zero, as in Spark.
    Round,
    /// `lower(s)`
    Lower,
    /// `upper(s)`
    Upper,
    /// `date_format(ts, pattern)` with Spark/Java pattern letters.
    DateFormat,
}

impl ScalarFunction {
    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            ScalarFunction::Round => "round",
            ScalarFunction::Lower => "lower",
            ScalarFunction::Upper => "upper",
            ScalarFunction::DateFormat => "date_format",
        }
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
    /// A scalar function call.
    Function {
        /// Which function.
        func: ScalarFunction,
        /// Its arguments.
        args: Vec<Expr>,
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

/// `round(e, digits)`.
pub fn round(e: Expr, digits: i64) -> Expr {
    Expr::Function {
        func: ScalarFunction::Round,
        args: vec![e, lit(digits)],
    }
}

/// `lower(e)`.
pub fn lower(e: Expr) -> Expr {
    Expr::Function {
        func: ScalarFunction::Lower,
        args: vec![e],
    }
}

/// `upper(e)`.
pub fn upper(e: Expr) -> Expr {
    Expr::Function {
        func: ScalarFunction::Upper,
        args: vec![e],
    }
}

/// `date_format(e, pattern)` (Spark pattern letters such as `yyyy-MM-dd HH:mm`).
pub fn date_format(e: Expr, pattern: &str) -> Expr {
    Expr::Function {
        func: ScalarFunction::DateFormat,
        args: vec![e, lit(pattern)],
    }
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
            Expr::Function { func, args } => {
                write!(f, "{}(", func.name())?;
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
