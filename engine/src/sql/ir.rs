//! The SQL expression tree, between sqlparser's AST and runnel's [`Expr`].
//!
//! Owns [`Node`] (an expression with the span of query text it came from),
//! structural equality that ignores spans (how SELECT items are matched to
//! GROUP BY keys), traversal, and the text Spark gives an expression, which
//! is the default name of an output column (`sum((a * b))`, `count(1)`,
//! `CAST(x AS STRING)`). It must not parse SQL or build plans.
//!
//! [`Expr`]: crate::expr::Expr

use std::fmt;

use super::error::Span;
use crate::expr::{write_case, BinaryOp};
use crate::schema::{DataType, Value};
use crate::state::AggFunc;

/// An expression of the query, with where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) span: Span,
}

/// Equality of the expression only: two spellings of the same expression in
/// different places of the query are equal.
impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        self.kind == other.kind
    }
}

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggKind {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// Any other aggregate: the function and the name it was called by
    /// (`stddev`, `first_value`), which names its output column.
    Other {
        func: AggFunc,
        name: &'static str,
    },
}

impl AggKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            AggKind::Other { name, .. } => name,
            AggKind::Count => "count",
            AggKind::Sum => "sum",
            AggKind::Avg => "avg",
            AggKind::Min => "min",
            AggKind::Max => "max",
        }
    }
}

/// `window.start` or `window.end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WindowPart {
    Start,
    End,
}

impl WindowPart {
    /// The column the aggregation produces for this part.
    pub(crate) fn column(self) -> &'static str {
        match self {
            WindowPart::Start => "window_start",
            WindowPart::End => "window_end",
        }
    }
}

/// `window(time, size[, slide[, start]])`, durations already checked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WindowCall {
    pub(crate) time: Node,
    pub(crate) size: String,
    pub(crate) slide: Option<String>,
    pub(crate) start: Option<String>,
}

/// What an expression is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    /// A column, by name (the schema's spelling once resolved).
    Column(String),
    Literal(Value),
    Binary {
        op: BinaryOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    Not(Box<Node>),
    Negate(Box<Node>),
    IsNull(Box<Node>),
    IsNotNull(Box<Node>),
    Cast {
        expr: Box<Node>,
        to: DataType,
        /// The type as Spark prints it (`INT`, `STRING`).
        type_name: &'static str,
    },
    Between {
        expr: Box<Node>,
        low: Box<Node>,
        high: Box<Node>,
        negated: bool,
    },
    InList {
        expr: Box<Node>,
        list: Vec<Node>,
        negated: bool,
    },
    /// A call of a registry function, by the name as written (lowercase).
    Function {
        name: String,
        args: Vec<Node>,
    },
    /// `CASE WHEN c THEN r ... [ELSE e] END` (a simple CASE is translated
    /// into this searched form, as Spark does).
    Case {
        branches: Vec<(Node, Node)>,
        otherwise: Option<Box<Node>>,
    },
    /// An aggregate call; `count(*)` has no argument.
    Aggregate {
        func: AggKind,
        arg: Option<Box<Node>>,
    },
    Window(Box<WindowCall>),
    /// `window.start` / `window.end` of the grouping window.
    WindowField(WindowPart),
    /// The bare name `window`: both columns of the grouping window.
    WindowWhole,
}

impl Node {
    pub(crate) fn new(kind: Kind, span: Span) -> Node {
        Node { kind, span }
    }

    /// The direct sub-expressions.
    pub(crate) fn children(&self) -> Vec<&Node> {
        match &self.kind {
            Kind::Column(_) | Kind::Literal(_) | Kind::WindowField(_) | Kind::WindowWhole => {
                vec![]
            }
            Kind::Binary { left, right, .. } => vec![left, right],
            Kind::Not(e) | Kind::Negate(e) | Kind::IsNull(e) | Kind::IsNotNull(e) => vec![e],
            Kind::Cast { expr, .. } => vec![expr],
            Kind::Between {
                expr, low, high, ..
            } => vec![expr, low, high],
            Kind::InList { expr, list, .. } => {
                let mut v: Vec<&Node> = vec![expr];
                v.extend(list.iter());
                v
            }
            Kind::Function { args, .. } => args.iter().collect(),
            Kind::Case {
                branches,
                otherwise,
            } => {
                let mut v: Vec<&Node> = Vec::new();
                for (c, r) in branches {
                    v.push(c);
                    v.push(r);
                }
                v.extend(otherwise.iter().map(|e| &**e));
                v
            }
            Kind::Aggregate { arg, .. } => arg.iter().map(|a| &**a).collect(),
            Kind::Window(w) => vec![&w.time],
        }
    }

    /// The first node (this one included, parents before children) that
    /// satisfies `pred`.
    pub(crate) fn find(&self, pred: &dyn Fn(&Node) -> bool) -> Option<&Node> {
        if pred(self) {
            return Some(self);
        }
        self.children().into_iter().find_map(|c| c.find(pred))
    }

    /// The first aggregate call in this expression.
    pub(crate) fn find_aggregate(&self) -> Option<&Node> {
        self.find(&|n| matches!(n.kind, Kind::Aggregate { .. }))
    }

    /// Rebuilds the tree: `f` may replace a node (and its subtree) outright;
    /// otherwise the node is kept with its children rebuilt.
    pub(crate) fn rewrite<E>(
        &self,
        f: &mut dyn FnMut(&Node) -> Result<Option<Node>, E>,
    ) -> Result<Node, E> {
        if let Some(n) = f(self)? {
            return Ok(n);
        }
        let mut go = |n: &Node| n.rewrite(f).map(Box::new);
        let kind = match &self.kind {
            Kind::Column(_) | Kind::Literal(_) | Kind::WindowField(_) | Kind::WindowWhole => {
                self.kind.clone()
            }
            Kind::Binary { op, left, right } => Kind::Binary {
                op: *op,
                left: go(left)?,
                right: go(right)?,
            },
            Kind::Not(e) => Kind::Not(go(e)?),
            Kind::Negate(e) => Kind::Negate(go(e)?),
            Kind::IsNull(e) => Kind::IsNull(go(e)?),
            Kind::IsNotNull(e) => Kind::IsNotNull(go(e)?),
            Kind::Cast {
                expr,
                to,
                type_name,
            } => Kind::Cast {
                expr: go(expr)?,
                to: to.clone(),
                type_name,
            },
            Kind::Between {
                expr,
                low,
                high,
                negated,
            } => Kind::Between {
                expr: go(expr)?,
                low: go(low)?,
                high: go(high)?,
                negated: *negated,
            },
            Kind::InList {
                expr,
                list,
                negated,
            } => Kind::InList {
                expr: go(expr)?,
                list: list
                    .iter()
                    .map(|n| go(n).map(|b| *b))
                    .collect::<Result<_, E>>()?,
                negated: *negated,
            },
            Kind::Function { name, args } => Kind::Function {
                name: name.clone(),
                args: args
                    .iter()
                    .map(|n| go(n).map(|b| *b))
                    .collect::<Result<_, E>>()?,
            },
            Kind::Case {
                branches,
                otherwise,
            } => Kind::Case {
                branches: branches
                    .iter()
                    .map(|(c, r)| Ok((*go(c)?, *go(r)?)))
                    .collect::<Result<_, E>>()?,
                otherwise: match otherwise {
                    Some(e) => Some(go(e)?),
                    None => None,
                },
            },
            Kind::Aggregate { func, arg } => Kind::Aggregate {
                func: *func,
                arg: match arg {
                    Some(a) => Some(go(a)?),
                    None => None,
                },
            },
            Kind::Window(w) => Kind::Window(Box::new(WindowCall {
                time: *go(&w.time)?,
                size: w.size.clone(),
                slide: w.slide.clone(),
                start: w.start.clone(),
            })),
        };
        Ok(Node::new(kind, self.span))
    }
}

fn list(f: &mut fmt::Formatter<'_>, nodes: &[Node]) -> fmt::Result {
    for (i, n) in nodes.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{n}")?;
    }
    Ok(())
}

/// The text Spark gives the expression (its default column name): operators
/// in parentheses, string literals bare, `!=` as `(NOT (a = b))`.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Column(c) => f.write_str(c),
            Kind::Literal(v) => match v {
                Value::Null => f.write_str("NULL"),
                Value::Timestamp(_) => write!(f, "TIMESTAMP '{v}'"),
                Value::Date(_) => write!(f, "DATE '{v}'"),
                other => write!(f, "{other}"),
            },
            Kind::Binary {
                op: BinaryOp::NotEq,
                left,
                right,
            } => write!(f, "(NOT ({left} = {right}))"),
            Kind::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Kind::Not(e) => write!(f, "(NOT {e})"),
            Kind::Negate(e) => write!(f, "(- {e})"),
            Kind::IsNull(e) => write!(f, "({e} IS NULL)"),
            Kind::IsNotNull(e) => write!(f, "({e} IS NOT NULL)"),
            Kind::Cast {
                expr, type_name, ..
            } => write!(f, "CAST({expr} AS {type_name})"),
            Kind::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let inner = format!("({expr} BETWEEN {low} AND {high})");
                if *negated {
                    write!(f, "(NOT {inner})")
                } else {
                    f.write_str(&inner)
                }
            }
            Kind::InList {
                expr,
                list: items,
                negated,
            } => {
                if *negated {
                    f.write_str("(NOT ")?;
                }
                write!(f, "({expr} IN (")?;
                list(f, items)?;
                f.write_str("))")?;
                if *negated {
                    f.write_str(")")?;
                }
                Ok(())
            }
            Kind::Function { name, args } if name == "like" && args.len() == 2 => {
                write!(f, "{} LIKE {}", args[0], args[1])
            }
            Kind::Function { name, args } => {
                write!(f, "{name}(")?;
                list(f, args)?;
                f.write_str(")")
            }
            Kind::Case {
                branches,
                otherwise,
            } => write_case(f, branches, otherwise.as_deref()),
            Kind::Aggregate { func, arg: None } => write!(f, "{}(1)", func.name()),
            Kind::Aggregate { func, arg: Some(a) } => write!(f, "{}({a})", func.name()),
            Kind::Window(w) => {
                write!(f, "window({}, {}", w.time, w.size)?;
                if let Some(s) = &w.slide {
                    write!(f, ", {s}")?;
                }
                if let Some(s) = &w.start {
                    write!(f, ", {s}")?;
                }
                f.write_str(")")
            }
            Kind::WindowField(WindowPart::Start) => f.write_str("window.start"),
            Kind::WindowField(WindowPart::End) => f.write_str("window.end"),
            Kind::WindowWhole => f.write_str("window"),
        }
    }
}
