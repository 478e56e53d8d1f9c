//! Translation of sqlparser expressions into the SQL expression tree.
//!
//! Owns what expression syntax the front end accepts: literals, operators,
//! `CAST`, `IS [NOT] NULL`, `IS [NOT] DISTINCT FROM`, `BETWEEN`, `IN (...)`,
//! `CASE`, `[NOT] LIKE` / `ILIKE` / `RLIKE`, `||`, `DIV`, the aggregates,
//! `window`, and calls of the function registry with their arities and
//! literal arguments (checked here so that errors point at the argument),
//! table-qualified column names and `window.start` / `window.end`. Everything else is rejected with an
//! error naming the construct and pointing at it. It must not look at the
//! input schema (columns are resolved when the query is applied).

use sqlparser::ast::{
    self, BinaryOperator, CastKind, DuplicateTreatment, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectNamePart, Spanned, UnaryOperator,
};
use sqlparser::keywords::Keyword;

use super::error::{error_at, Span};
use super::ir::{AggKind, Kind, Node, WindowCall, WindowPart};
use super::tokens::Tokens;
use crate::error::{EngineError, Result};
use crate::expr::functions;
use crate::expr::BinaryOp;
use crate::plan::WindowShape;
use crate::schema::{timestamp_type, DataType, Value};
use crate::state::{distinct, AggFunc};

/// The message for a function that does not exist, with the nearest name.
fn unknown_function(name: &str) -> String {
    crate::expr::unknown_function(name)
}

/// The aggregates besides count, sum, avg, min and max, by the names SQL
/// calls them (each name also names the output column, as in Spark).
const OTHER_AGGREGATES: [(&str, AggFunc); 13] = [
    (
        "first",
        AggFunc::First {
            ignore_nulls: false,
        },
    ),
    (
        "first_value",
        AggFunc::First {
            ignore_nulls: false,
        },
    ),
    (
        "last",
        AggFunc::Last {
            ignore_nulls: false,
        },
    ),
    (
        "last_value",
        AggFunc::Last {
            ignore_nulls: false,
        },
    ),
    ("stddev", AggFunc::StddevSamp),
    ("std", AggFunc::StddevSamp),
    ("stddev_samp", AggFunc::StddevSamp),
    ("stddev_pop", AggFunc::StddevPop),
    ("variance", AggFunc::VarSamp),
    ("var_samp", AggFunc::VarSamp),
    ("var_pop", AggFunc::VarPop),
    (
        "approx_count_distinct",
        // Spark's default rsd, 0.05 (a test holds the two equal).
        AggFunc::ApproxCountDistinct { precision: 9 },
    ),
    ("collect_list", AggFunc::CollectList),
];

/// Whether `name` (lower case) is an aggregate function.
fn is_aggregate_name(name: &str) -> bool {
    matches!(name, "count" | "sum" | "avg" | "min" | "max")
        || OTHER_AGGREGATES.iter().any(|(n, _)| *n == name)
}

/// What a translation needs to know about the query.
pub(crate) struct Cx<'a> {
    pub(crate) sql: &'a str,
    pub(crate) tokens: &'a Tokens,
    /// The FROM table's name parts, as written.
    pub(crate) table: &'a [String],
    /// The FROM table's alias.
    pub(crate) alias: Option<&'a str>,
    /// The names of the LATERAL VIEWs, which qualify their columns.
    pub(crate) views: &'a [String],
    /// The joined table, if the query has a JOIN.
    pub(crate) joined: Option<Joined<'a>>,
}

/// The table of a JOIN, as written.
#[derive(Clone, Copy)]
pub(crate) struct Joined<'a> {
    /// Its name parts.
    pub(crate) table: &'a [String],
    /// Its alias.
    pub(crate) alias: Option<&'a str>,
}

/// Whether `parts` name a table: its alias when it has one (as in Spark),
/// else its full name or its last part.
fn names(parts: &[Ident], table: &[String], alias: Option<&str>) -> bool {
    let eq = |a: &Ident, b: &String| a.value.eq_ignore_ascii_case(b);
    if let Some(alias) = alias {
        return parts.len() == 1 && parts[0].value.eq_ignore_ascii_case(alias);
    }
    (parts.len() == table.len() && parts.iter().zip(table).all(|(p, n)| eq(p, n)))
        || (parts.len() == 1 && table.last().is_some_and(|last| eq(&parts[0], last)))
}

/// A table's qualifier: its alias, else the last part of its name.
fn qualifier(table: &[String], alias: Option<&str>) -> String {
    alias
        .map(str::to_string)
        .or_else(|| table.last().cloned())
        .unwrap_or_default()
}

/// A function argument: `*` or an expression.
enum Arg<'e> {
    Star(Span),
    Expr(&'e ast::Expr),
}

impl<'a> Cx<'a> {
    /// An error at `span`.
    pub(crate) fn err(&self, span: Span, msg: impl std::fmt::Display) -> EngineError {
        error_at(self.sql, span, msg)
    }

    /// The error for a subquery, pointing at its SELECT.
    pub(crate) fn subquery_error(&self, q: &ast::Query, fallback: Span) -> EngineError {
        let span = match &*q.body {
            ast::SetExpr::Select(s) => s.select_token.0.span.into(),
            _ => fallback,
        };
        self.err(span, "subqueries are not supported on a streaming query")
    }

    /// Translates one expression.
    pub(crate) fn expr(&self, e: &ast::Expr) -> Result<Node> {
        use ast::Expr as E;
        let span = self.tokens.expr_span(e);
        let node = |kind: Kind| Ok(Node::new(kind, span));
        match e {
            E::Identifier(id) => node(Kind::Column(id.value.clone())),
            E::CompoundIdentifier(parts) => self.compound(parts, span),
            E::Value(v) => self.value(&v.value, span),
            E::TypedString(t) => self.typed_string(t, span),
            E::BinaryOp {
                left,
                op: BinaryOperator::MyIntegerDivide,
                right,
            } if reassociate_div(left, right).is_some() => {
                let fixed = reassociate_div(left, right).unwrap_or_else(|| e.clone());
                self.expr(&fixed)
            }
            E::BinaryOp {
                left,
                op: op @ (BinaryOperator::Plus | BinaryOperator::Minus),
                right,
            } if matches!(**right, E::Interval(_))
                || (*op == BinaryOperator::Plus && matches!(**left, E::Interval(_))) =>
            {
                let (ts, iv) = match (&**left, &**right) {
                    (x, E::Interval(iv)) => (x, iv),
                    (E::Interval(iv), x) => (x, iv),
                    _ => return Err(self.err(span, "INTERVAL is not supported here")),
                };
                let sign = if *op == BinaryOperator::Minus { -1 } else { 1 };
                self.add_interval(ts, iv, sign, span)
            }
            E::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Plus => BinaryOp::Add,
                    BinaryOperator::Minus => BinaryOp::Sub,
                    BinaryOperator::Multiply => BinaryOp::Mul,
                    BinaryOperator::Divide => BinaryOp::Div,
                    BinaryOperator::Modulo => BinaryOp::Mod,
                    BinaryOperator::MyIntegerDivide => BinaryOp::IntDiv,
                    BinaryOperator::Spaceship => BinaryOp::NullSafeEq,
                    BinaryOperator::StringConcat => {
                        // `a || b` is Spark's concat(a, b).
                        return node(Kind::Function {
                            name: "concat".into(),
                            args: vec![self.expr(left)?, self.expr(right)?],
                        });
                    }
                    BinaryOperator::Eq => BinaryOp::Eq,
                    BinaryOperator::NotEq => BinaryOp::NotEq,
                    BinaryOperator::Lt => BinaryOp::Lt,
                    BinaryOperator::LtEq => BinaryOp::LtEq,
                    BinaryOperator::Gt => BinaryOp::Gt,
                    BinaryOperator::GtEq => BinaryOp::GtEq,
                    BinaryOperator::And => BinaryOp::And,
                    BinaryOperator::Or => BinaryOp::Or,
                    other => {
                        let at = self.tokens.expr_span(left).end;
                        let op_span = self.tokens.next_token(at).unwrap_or(span);
                        return Err(self.err(
                            op_span,
                            format!(
                                "operator `{other}` is not supported; supported: \
                                 + - * / % DIV || = != <> < <= > >= <=> AND OR NOT"
                            ),
                        ));
                    }
                };
                node(Kind::Binary {
                    op,
                    left: Box::new(self.expr(left)?),
                    right: Box::new(self.expr(right)?),
                })
            }
            E::UnaryOp { op, expr } => {
                let inner = self.expr(expr)?;
                match op {
                    UnaryOperator::Minus => match inner.kind {
                        // Spark folds a minus sign into a number literal.
                        Kind::Literal(Value::Int64(v)) => {
                            node(Kind::Literal(Value::Int64(v.wrapping_neg())))
                        }
                        Kind::Literal(Value::Float64(v)) => node(Kind::Literal(Value::Float64(-v))),
                        _ => node(Kind::Negate(Box::new(inner))),
                    },
                    UnaryOperator::Plus => node(inner.kind),
                    UnaryOperator::Not | UnaryOperator::BangNot => node(Kind::Not(Box::new(inner))),
                    other => Err(self.err(span, format!("operator `{other}` is not supported"))),
                }
            }
            E::Nested(inner) => Ok(Node::new(self.expr(inner)?.kind, span)),
            E::IsNull(x) => node(Kind::IsNull(Box::new(self.expr(x)?))),
            E::IsNotNull(x) => node(Kind::IsNotNull(Box::new(self.expr(x)?))),
            E::Between {
                expr,
                negated,
                low,
                high,
            } => node(Kind::Between {
                expr: Box::new(self.expr(expr)?),
                low: Box::new(self.expr(low)?),
                high: Box::new(self.expr(high)?),
                negated: *negated,
            }),
            E::InList {
                expr,
                list,
                negated,
            } => node(Kind::InList {
                expr: Box::new(self.expr(expr)?),
                list: list.iter().map(|x| self.expr(x)).collect::<Result<_>>()?,
                negated: *negated,
            }),
            E::Cast {
                kind,
                expr,
                data_type,
                format,
                ..
            } => {
                if format.is_some() {
                    return Err(self.err(span, "CAST ... FORMAT is not supported"));
                }
                if *kind == CastKind::SafeCast {
                    return Err(self.err(span, "SAFE_CAST is not supported; use CAST"));
                }
                let (to, type_name) = cast_type(data_type).ok_or_else(|| {
                    self.err(
                        span,
                        format!(
                            "cannot cast to `{data_type}`; supported types: string, int, \
                             bigint, double, boolean, timestamp, date"
                        ),
                    )
                })?;
                node(Kind::Cast {
                    expr: Box::new(self.expr(expr)?),
                    to,
                    type_name,
                })
            }
            E::Function(f) => self.function(f, span),
            E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => {
                let eq = Node::new(
                    Kind::Binary {
                        op: BinaryOp::NullSafeEq,
                        left: Box::new(self.expr(a)?),
                        right: Box::new(self.expr(b)?),
                    },
                    span,
                );
                if matches!(e, E::IsDistinctFrom(..)) {
                    node(Kind::Not(Box::new(eq)))
                } else {
                    Ok(eq)
                }
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = operand.as_deref().map(|o| self.expr(o)).transpose()?;
                let mut branches = Vec::with_capacity(conditions.len());
                for w in conditions {
                    let c = self.expr(&w.condition)?;
                    // A simple CASE compares the operand with each value.
                    let c = match &operand {
                        Some(o) => {
                            let at = c.span;
                            Node::new(
                                Kind::Binary {
                                    op: BinaryOp::Eq,
                                    left: Box::new(o.clone()),
                                    right: Box::new(c),
                                },
                                at,
                            )
                        }
                        None => c,
                    };
                    branches.push((c, self.expr(&w.result)?));
                }
                let otherwise = else_result
                    .as_deref()
                    .map(|x| self.expr(x).map(Box::new))
                    .transpose()?;
                node(Kind::Case {
                    branches,
                    otherwise,
                })
            }
            E::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            }
            | E::ILike {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                let name = if matches!(e, E::Like { .. }) {
                    "like"
                } else {
                    "ilike"
                };
                if *any {
                    return Err(self.err(
                        span,
                        format!("`{} ANY` is not supported", name.to_uppercase()),
                    ));
                }
                let escape = escape_char.as_ref().map(|c| ast::Expr::Value(c.clone()));
                let mut args = vec![Arg::Expr(expr), Arg::Expr(pattern)];
                if let Some(x) = &escape {
                    args.push(Arg::Expr(x));
                }
                let call = self.registry_call(name, &args, span, span)?;
                if *negated {
                    node(Kind::Not(Box::new(call)))
                } else {
                    Ok(call)
                }
            }
            E::RLike {
                negated,
                expr,
                pattern,
                ..
            } => {
                let args = [Arg::Expr(expr), Arg::Expr(pattern)];
                let call = self.registry_call("rlike", &args, span, span)?;
                if *negated {
                    node(Kind::Not(Box::new(call)))
                } else {
                    Ok(call)
                }
            }
            E::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![Arg::Expr(expr)];
                if let Some(from) = substring_from {
                    args.push(Arg::Expr(from));
                }
                if let Some(len) = substring_for {
                    args.push(Arg::Expr(len));
                }
                self.registry_call("substring", &args, span, span)
            }
            E::Trim {
                trim_where,
                trim_what: None,
                expr,
                trim_characters: None,
            } => {
                let name = match trim_where {
                    None | Some(ast::TrimWhereField::Both) => "trim",
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                };
                self.registry_call(name, &[Arg::Expr(expr)], span, span)
            }
            E::Trim { .. } => Err(self.err(
                span,
                "TRIM with characters to remove is not supported; TRIM, LTRIM and RTRIM remove spaces",
            )),
            E::Ceil {
                expr,
                field: ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime),
            } => self.registry_call("ceil", &[Arg::Expr(expr)], span, span),
            E::Floor {
                expr,
                field: ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime),
            } => self.registry_call("floor", &[Arg::Expr(expr)], span, span),
            E::Subquery(q) => Err(self.subquery_error(q, span)),
            E::Exists { subquery, .. } | E::InSubquery { subquery, .. } => {
                Err(self.subquery_error(subquery, span))
            }
            E::GroupingSets(_) | E::Cube(_) | E::Rollup(_) => {
                let kw = match e {
                    E::GroupingSets(_) => Keyword::GROUPING,
                    E::Cube(_) => Keyword::CUBE,
                    _ => Keyword::ROLLUP,
                };
                let at = self.tokens.last_keyword(kw).unwrap_or(span);
                Err(self.err(
                    at,
                    "GROUPING SETS, ROLLUP and CUBE are not supported on a streaming query",
                ))
            }
            other => Err(self.err(
                span,
                format!("{} is not supported", describe_unsupported(other)),
            )),
        }
    }

    /// `t.col`, `alias.col`, `window.start`, `window.end`.
    fn compound(&self, parts: &[Ident], span: Span) -> Result<Node> {
        let n = self.qualifier_len(parts);
        let rest = &parts[n..];
        match rest {
            [c] if n > 0 => {
                let name = match self.join_qualifier(&parts[..n]) {
                    Some(q) => format!("{q}.{}", c.value),
                    None => c.value.clone(),
                };
                Ok(Node::new(Kind::Column(name), span))
            }
            [w, field] if w.value.eq_ignore_ascii_case("window") => {
                let part = if field.value.eq_ignore_ascii_case("start") {
                    WindowPart::Start
                } else if field.value.eq_ignore_ascii_case("end") {
                    WindowPart::End
                } else {
                    return Err(self.err(
                        field.span.into(),
                        format!(
                            "window has no field `{}`; use window.start or window.end",
                            field.value
                        ),
                    ));
                };
                Ok(Node::new(Kind::WindowField(part), span))
            }
            _ if n == 0 => {
                let mut from = match self.alias {
                    Some(a) => format!("`{}` AS `{a}`", self.table.join(".")),
                    None => format!("`{}`", self.table.join(".")),
                };
                if let Some(j) = self.joined {
                    from.push_str(&match j.alias {
                        Some(a) => format!(" and `{}` AS `{a}`", j.table.join(".")),
                        None => format!(" and `{}`", j.table.join(".")),
                    });
                }
                Err(self.err(
                    parts[0].span.into(),
                    format!(
                        "table or alias `{}` cannot be resolved; the query reads {from}",
                        parts[0].value
                    ),
                ))
            }
            _ => Err(self.err(
                span,
                format!(
                    "nested field access `{}` is not supported",
                    parts
                        .iter()
                        .map(|p| p.value.as_str())
                        .collect::<Vec<_>>()
                        .join(".")
                ),
            )),
        }
    }

    /// How many leading parts of `parts` name the FROM table (0 if none),
    /// leaving at least one part for the column.
    pub(crate) fn qualifier_len(&self, parts: &[Ident]) -> usize {
        (1..parts.len())
            .find(|&k| self.names_table(&parts[..k]))
            .unwrap_or(0)
    }

    /// Whether `parts` name the FROM table: its alias when it has one (as in
    /// Spark), else its full name or its last part.
    pub(crate) fn names_table(&self, parts: &[Ident]) -> bool {
        if parts.len() == 1
            && self
                .views
                .iter()
                .any(|v| parts[0].value.eq_ignore_ascii_case(v))
        {
            return true;
        }
        names(parts, self.table, self.alias)
            || self.joined.is_some_and(|j| names(parts, j.table, j.alias))
    }

    /// In a query with a JOIN, the qualifier of the table `parts` name (the
    /// stream's or the joined table's), which the columns of the joined
    /// rows carry; `None` without a join or for a LATERAL VIEW.
    pub(crate) fn join_qualifier(&self, parts: &[Ident]) -> Option<String> {
        let j = self.joined?;
        if names(parts, j.table, j.alias) {
            return Some(qualifier(j.table, j.alias));
        }
        if names(parts, self.table, self.alias) {
            return Some(qualifier(self.table, self.alias));
        }
        None
    }

    fn value(&self, v: &ast::Value, span: Span) -> Result<Node> {
        use ast::Value as V;
        let lit = |v: Value| Ok(Node::new(Kind::Literal(v), span));
        match v {
            V::Number(text, _) => {
                let is_int = !text.contains(['.', 'e', 'E']);
                match (is_int, text.parse::<i64>(), text.parse::<f64>()) {
                    (true, Ok(i), _) => lit(Value::Int64(i)),
                    (_, _, Ok(f)) => lit(Value::Float64(f)),
                    _ => Err(self.err(span, format!("`{text}` is not a number"))),
                }
            }
            V::SingleQuotedString(s)
            | V::EscapedStringLiteral(s)
            | V::UnicodeStringLiteral(s)
            | V::NationalStringLiteral(s)
            | V::TripleSingleQuotedString(s)
            | V::TripleDoubleQuotedString(s) => lit(Value::str(s)),
            // Double quotes delimit identifiers (ANSI), not strings.
            V::DoubleQuotedString(s) => Ok(Node::new(Kind::Column(s.clone()), span)),
            V::Boolean(b) => lit(Value::Boolean(*b)),
            V::Null => lit(Value::Null),
            other => Err(self.err(span, format!("literal `{other}` is not supported"))),
        }
    }

    /// `TIMESTAMP '2011-01-01 00:00:00'`, `DATE '2011-01-01'`.
    fn typed_string(&self, t: &ast::TypedString, span: Span) -> Result<Node> {
        let text = match &t.value.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        };
        let value = match &t.data_type {
            ast::DataType::Timestamp(..)
            | ast::DataType::TimestampNtz(_)
            | ast::DataType::Datetime(_) => {
                crate::time::parse_timestamp_us(&text).map(Value::Timestamp)
            }
            ast::DataType::Date => crate::time::parse_date(&text).map(Value::Date),
            other => {
                return Err(self.err(span, format!("`{other} '...'` literals are not supported")))
            }
        };
        match value {
            Some(v) => Ok(Node::new(Kind::Literal(v), span)),
            None => Err(self.err(
                t.value.span.into(),
                format!("'{text}' is not a valid {}", t.data_type),
            )),
        }
    }

    fn function(&self, f: &ast::Function, span: Span) -> Result<Node> {
        let name_span: Span = f.name.span().into();
        let name = match f.name.0.as_slice() {
            [ObjectNamePart::Identifier(id)] => id.value.to_ascii_lowercase(),
            _ => return Err(self.err(name_span, unknown_function(&f.name.to_string()))),
        };
        if f.over.is_some() {
            let at = self
                .tokens
                .keyword(Keyword::OVER, name_span.end, false)
                .unwrap_or(span);
            return Err(self.err(
                at,
                format!("window functions (`{name}(...) OVER ...`) are not supported on a streaming query"),
            ));
        }
        if f.filter.is_some() {
            let at = self
                .tokens
                .keyword(Keyword::FILTER, name_span.end, false)
                .unwrap_or(span);
            return Err(self.err(at, "FILTER (WHERE ...) on aggregates is not supported"));
        }
        if !f.within_group.is_empty() || f.null_treatment.is_some() {
            return Err(self.err(
                span,
                format!("`{name}` with WITHIN GROUP or IGNORE/RESPECT NULLS is not supported"),
            ));
        }
        if !matches!(f.parameters, FunctionArguments::None) {
            return Err(self.err(span, format!("parameters of `{name}` are not supported")));
        }
        let raw: &[FunctionArg] = match &f.args {
            FunctionArguments::List(l) => {
                if l.duplicate_treatment == Some(DuplicateTreatment::Distinct) {
                    let at = self
                        .tokens
                        .keyword(Keyword::DISTINCT, name_span.end, false)
                        .unwrap_or(span);
                    let msg = if is_aggregate_name(&name) {
                        // Spark's own reason (its check of streaming plans).
                        "Distinct aggregations are not supported on streaming DataFrames/Datasets. \
                         Consider using approx_count_distinct() instead."
                            .to_string()
                    } else {
                        format!("DISTINCT specified, but `{name}` is not an aggregate function")
                    };
                    return Err(self.err(at, msg));
                }
                if let Some(c) = l.clauses.first() {
                    return Err(self.err(
                        span,
                        format!("`{c}` inside a function call is not supported"),
                    ));
                }
                &l.args
            }
            FunctionArguments::None => &[],
            FunctionArguments::Subquery(q) => return Err(self.subquery_error(q, span)),
        };
        let mut args = Vec::with_capacity(raw.len());
        for a in raw {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(Arg::Expr(e)),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => {
                    let at = self.tokens.star_in(span).unwrap_or(span);
                    args.push(Arg::Star(at));
                }
                other => {
                    return Err(self.err(
                        span,
                        format!("argument `{other}` of `{name}` is not supported"),
                    ))
                }
            }
        }
        let agg = match name.as_str() {
            "count" => Some(AggKind::Count),
            "sum" => Some(AggKind::Sum),
            "avg" => Some(AggKind::Avg),
            "min" => Some(AggKind::Min),
            "max" => Some(AggKind::Max),
            _ => None,
        };
        if let Some(node) = self.other_aggregate(&name, &args, span)? {
            return Ok(node);
        }
        if let Some(func) = agg {
            return match (func, args.as_slice()) {
                (AggKind::Count, [Arg::Star(_)]) => {
                    Ok(Node::new(Kind::Aggregate { func, arg: None }, span))
                }
                (_, [Arg::Expr(e)]) => Ok(Node::new(
                    Kind::Aggregate {
                        func,
                        arg: Some(Box::new(self.expr(e)?)),
                    },
                    span,
                )),
                (_, [Arg::Star(at)]) => Err(self.err(
                    *at,
                    format!("`*` is only allowed in count(*), not in {name}"),
                )),
                _ => Err(self.arity(&name, "1", args.len(), span)),
            };
        }
        if name == "window" {
            return self.window(&args, span);
        }
        if functions::GENERATORS.contains(&name.as_str()) {
            let [arg] = args.as_slice() else {
                return Err(self.arity(&name, "1", args.len(), span));
            };
            return Ok(Node::new(
                Kind::Function {
                    name,
                    args: vec![self.arg(arg)?],
                },
                span,
            ));
        }
        self.registry_call(&name, &args, span, name_span)
    }

    /// A call of an aggregate other than count, sum, avg, min and max
    /// (`None` for any other name): `first`/`last[_value](x[, ignoreNulls])`,
    /// the standard deviations and variances, `approx_count_distinct(x[, rsd])`.
    fn other_aggregate(&self, name: &str, args: &[Arg<'_>], span: Span) -> Result<Option<Node>> {
        let Some(&(canonical, func)) = OTHER_AGGREGATES.iter().find(|(n, _)| *n == name) else {
            return Ok(None);
        };
        let two = matches!(
            func,
            AggFunc::First { .. } | AggFunc::Last { .. } | AggFunc::ApproxCountDistinct { .. }
        );
        let (first, second) = match args {
            [a] => (a, None),
            [a, b] if two => (a, Some(b)),
            _ => {
                let expected = if two { "1 or 2" } else { "1" };
                return Err(self.arity(name, expected, args.len(), span));
            }
        };
        if let Arg::Star(at) = first {
            return Err(self.err(
                *at,
                format!("`*` is only allowed in count(*), not in {name}"),
            ));
        }
        let mut func = func;
        if let Some(b) = second {
            let n = self.arg(b)?;
            match (&mut func, &n.kind) {
                (
                    AggFunc::First { ignore_nulls } | AggFunc::Last { ignore_nulls },
                    Kind::Literal(Value::Boolean(v)),
                ) => *ignore_nulls = *v,
                (AggFunc::First { .. } | AggFunc::Last { .. }, _) => {
                    return Err(self.err(
                        n.span,
                        format!("the second argument of {name} (ignoreNulls) must be a boolean literal"),
                    ))
                }
                (AggFunc::ApproxCountDistinct { precision }, Kind::Literal(v))
                    if v.as_f64().is_some() && !matches!(v, Value::Boolean(_)) =>
                {
                    let rsd = v.as_f64().unwrap_or(f64::NAN);
                    *precision = distinct::precision_for_rsd(rsd).ok_or_else(|| {
                        self.err(
                            n.span,
                            format!(
                                "the relative standard deviation of {name} must be between \
                                 {:.5} and 0.39, but it is {rsd}",
                                1.106 / f64::from(1u32 << (distinct::MAX_PRECISION / 2))
                            ),
                        )
                    })?;
                }
                _ => {
                    return Err(self.err(
                        n.span,
                        format!(
                            "the second argument of {name} (the relative standard deviation) must be a number literal"
                        ),
                    ))
                }
            }
        }
        let Arg::Expr(e) = first else {
            return Ok(None);
        };
        Ok(Some(Node::new(
            Kind::Aggregate {
                func: AggKind::Other {
                    func,
                    name: canonical,
                },
                arg: Some(Box::new(self.expr(e)?)),
            },
            span,
        )))
    }

    /// A call of the registry function `name`: its arity, its literal
    /// arguments (checked here so that an error points at the argument),
    /// and Spark's explicit default digits of `round(x)`, named `round(x, 0)`.
    fn registry_call(
        &self,
        name: &str,
        args: &[Arg<'_>],
        span: Span,
        name_span: Span,
    ) -> Result<Node> {
        let Some(def) = functions::lookup(name) else {
            return Err(self.err(name_span, unknown_function(name)));
        };
        functions::check_arity(def, name, args.len()).map_err(|m| self.err(span, m))?;
        let mut nodes = Vec::with_capacity(args.len() + 1);
        for (i, a) in args.iter().enumerate() {
            let n = self.arg(a)?;
            if def.literal_args.contains(&i) {
                let Kind::Literal(v) = &n.kind else {
                    return Err(self.err(
                        n.span,
                        format!(
                            "the {} argument of {name} must be {}",
                            functions::ordinal(i),
                            def.literal_what
                        ),
                    ));
                };
                (def.check_literal)(i, v).map_err(|m| self.err(n.span, m))?;
            }
            nodes.push(n);
        }
        if matches!(def.name, "round" | "bround") && nodes.len() == 1 {
            nodes.push(Node::new(Kind::Literal(Value::Int64(0)), span));
        }
        Ok(Node::new(
            Kind::Function {
                name: name.to_string(),
                args: nodes,
            },
            span,
        ))
    }

    /// `ts ± INTERVAL '…'`: `timestampadd` of the interval's months, then
    /// of its microseconds.
    fn add_interval(
        &self,
        ts: &ast::Expr,
        iv: &ast::Interval,
        sign: i64,
        span: Span,
    ) -> Result<Node> {
        let at = self.tokens.expr_span(&iv.value);
        let mut text = match &*iv.value {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
                ast::Value::Number(n, _) => n.clone(),
                other => other.to_string(),
            },
            _ => return Err(self.err(at, "an INTERVAL must be a literal such as '1 hour'")),
        };
        if iv.last_field.is_some() {
            return Err(self.err(at, "INTERVAL ranges (`... TO ...`) are not supported"));
        }
        if let Some(f) = &iv.leading_field {
            text = format!("{text} {f}");
        }
        let (months, micros) =
            interval_parts(&text).map_err(|m| self.err(at, format!("INTERVAL '{text}': {m}")))?;
        let mut node = self.expr(ts)?;
        for (unit, n) in [("MONTH", months), ("MICROSECOND", micros)] {
            if n == 0 {
                continue;
            }
            let lit = |v: Value| Node::new(Kind::Literal(v), at);
            let n = n
                .checked_mul(sign)
                .ok_or_else(|| self.err(at, "the INTERVAL is too large"))?;
            node = Node::new(
                Kind::Function {
                    name: "timestampadd".into(),
                    args: vec![lit(Value::str(unit)), lit(Value::Int64(n)), node],
                },
                span,
            );
        }
        Ok(node)
    }

    /// `window(time, size[, slide[, start]])`.
    fn window(&self, args: &[Arg<'_>], span: Span) -> Result<Node> {
        if !(2..=4).contains(&args.len()) {
            return Err(self.arity("window", "2 to 4", args.len(), span));
        }
        let time = self.arg(&args[0])?;
        let what = [
            "",
            "the window duration",
            "the slide duration",
            "the start time",
        ];
        let mut texts = Vec::new();
        for (i, a) in args.iter().enumerate().skip(1) {
            let (text, at) = self.string_arg(a, what[i], span)?;
            crate::time::parse_duration_us(&text)
                .map_err(|e| self.err(at, format!("{}: {e}", what[i])))?;
            texts.push(text);
        }
        WindowShape::parse(
            &texts[0],
            texts.get(1).map(String::as_str),
            texts.get(2).map(String::as_str),
        )
        .map_err(|e| match e {
            EngineError::Plan(m) => self.err(span, m),
            other => other,
        })?;
        let mut texts = texts.into_iter();
        let call = WindowCall {
            time,
            size: texts.next().unwrap_or_default(),
            slide: texts.next(),
            start: texts.next(),
        };
        Ok(Node::new(Kind::Window(Box::new(call)), span))
    }

    fn arg(&self, a: &Arg<'_>) -> Result<Node> {
        match a {
            Arg::Expr(e) => self.expr(e),
            Arg::Star(at) => Err(self.err(*at, "`*` is only allowed in count(*)")),
        }
    }

    /// A string literal argument ('...' or "..."), with its span.
    fn string_arg(&self, a: &Arg<'_>, what: &str, call: Span) -> Result<(String, Span)> {
        let e = match a {
            Arg::Expr(e) => e,
            Arg::Star(at) => return Err(self.err(*at, format!("{what} must be a string literal"))),
        };
        let at = self.tokens.expr_span(e);
        match e {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                    Ok((s.clone(), at))
                }
                _ => Err(self.err(at, format!("{what} must be a string literal"))),
            },
            _ => Err(self.err(
                if at.is_none() { call } else { at },
                format!("{what} must be a string literal"),
            )),
        }
    }

    fn arity(&self, name: &str, expected: &str, given: usize, span: Span) -> EngineError {
        let s = if expected == "1" { "" } else { "s" };
        self.err(
            span,
            format!("function `{name}` takes {expected} argument{s}, but {given} were given"),
        )
    }
}

/// `a DIV <right>` as Spark's precedence reads it. The parser takes all of
/// `<right>` as the divisor (`a DIV 10 = 2` as `a DIV (10 = 2)`), but `DIV`
/// binds like `*`: the division takes the leftmost operand of an
/// unparenthesized operator on its right, which then applies to the quotient.
/// `None` when `<right>` needs no change.
fn reassociate_div(left: &ast::Expr, right: &ast::Expr) -> Option<ast::Expr> {
    use ast::Expr as E;
    let div = |r: &ast::Expr| {
        reassociate_div(left, r).unwrap_or_else(|| E::BinaryOp {
            left: Box::new(left.clone()),
            op: BinaryOperator::MyIntegerDivide,
            right: Box::new(r.clone()),
        })
    };
    Some(match right {
        E::BinaryOp {
            left: l,
            op,
            right: r,
        } => E::BinaryOp {
            left: Box::new(div(l)),
            op: op.clone(),
            right: r.clone(),
        },
        E::IsNull(x) => E::IsNull(Box::new(div(x))),
        E::IsNotNull(x) => E::IsNotNull(Box::new(div(x))),
        E::IsDistinctFrom(x, y) => E::IsDistinctFrom(Box::new(div(x)), y.clone()),
        E::IsNotDistinctFrom(x, y) => E::IsNotDistinctFrom(Box::new(div(x)), y.clone()),
        E::Between {
            expr,
            negated,
            low,
            high,
        } => E::Between {
            expr: Box::new(div(expr)),
            negated: *negated,
            low: low.clone(),
            high: high.clone(),
        },
        E::InList {
            expr,
            list,
            negated,
        } => E::InList {
            expr: Box::new(div(expr)),
            list: list.clone(),
            negated: *negated,
        },
        _ => return None,
    })
}

/// The months and the microseconds of an interval's text (`1 month 2
/// days`, `3 hours`, `1 year`).
fn interval_parts(text: &str) -> std::result::Result<(i64, i64), String> {
    let toks: Vec<&str> = text.split_whitespace().collect();
    let toks = match toks.first() {
        Some(t) if t.eq_ignore_ascii_case("interval") => &toks[1..],
        _ => &toks[..],
    };
    if toks.is_empty() || toks.len() % 2 != 0 {
        return Err("write it as pairs of a number and a unit".into());
    }
    let (mut months, mut rest) = (0i64, Vec::new());
    for pair in toks.chunks(2) {
        let unit = pair[1].to_ascii_lowercase();
        let per = match unit.as_str() {
            "year" | "years" => Some(12),
            "month" | "months" => Some(1),
            _ => None,
        };
        match per {
            Some(per) => {
                let n: i64 = pair[0]
                    .parse()
                    .map_err(|_| format!("`{}` is not a whole number", pair[0]))?;
                months = n
                    .checked_mul(per)
                    .and_then(|m| months.checked_add(m))
                    .ok_or("too large")?;
            }
            None => rest.push(format!("{} {unit}", pair[0])),
        }
    }
    let micros = if rest.is_empty() {
        0
    } else {
        crate::time::parse_duration_us(&rest.join(" "))?
    };
    Ok((months, micros))
}

/// The runnel type and Spark's name for a CAST target.
fn cast_type(t: &ast::DataType) -> Option<(DataType, &'static str)> {
    use ast::DataType as T;
    Some(match t {
        T::String(_) | T::Varchar(_) | T::Text | T::Char(_) => (DataType::Utf8, "STRING"),
        T::Int(_) | T::Integer(_) | T::Int32 => (DataType::Int64, "INT"),
        T::BigInt(_) | T::Int64 | T::Int8(_) => (DataType::Int64, "BIGINT"),
        T::SmallInt(_) => (DataType::Int64, "SMALLINT"),
        T::TinyInt(_) => (DataType::Int64, "TINYINT"),
        T::Double(_) | T::DoublePrecision | T::Float64 | T::Float8 => (DataType::Float64, "DOUBLE"),
        T::Float(_) | T::Real | T::Float32 | T::Float4 => (DataType::Float64, "FLOAT"),
        T::Boolean | T::Bool => (DataType::Boolean, "BOOLEAN"),
        T::Timestamp(..) | T::TimestampNtz(_) | T::Datetime(_) => (timestamp_type(), "TIMESTAMP"),
        T::Date => (DataType::Date32, "DATE"),
        _ => return None,
    })
}

/// A short name for an expression kind the front end does not support.
fn describe_unsupported(e: &ast::Expr) -> String {
    use ast::Expr as E;
    let name = match e {
        E::Like { .. } => "LIKE",
        E::ILike { .. } => "ILIKE",
        E::RLike { .. } => "RLIKE",
        E::SimilarTo { .. } => "SIMILAR TO",
        E::Case { .. } => "CASE",
        E::Interval(_) => "INTERVAL",
        E::Extract { .. } => "EXTRACT",
        E::Substring { .. } => "SUBSTRING",
        E::Trim { .. } => "TRIM",
        E::Ceil { .. } => "CEIL",
        E::Floor { .. } => "FLOOR",
        E::Position { .. } => "POSITION",
        E::AtTimeZone { .. } => "AT TIME ZONE",
        E::IsTrue(_) | E::IsNotTrue(_) | E::IsFalse(_) | E::IsNotFalse(_) => "IS [NOT] TRUE/FALSE",
        E::IsUnknown(_) | E::IsNotUnknown(_) => "IS [NOT] UNKNOWN",
        E::IsDistinctFrom(..) | E::IsNotDistinctFrom(..) => "IS [NOT] DISTINCT FROM",
        E::Tuple(_) => "a tuple",
        E::Array(_) => "an array",
        E::Map(_) => "a map",
        E::Struct { .. } => "a struct",
        _ => return format!("expression `{e}`"),
    };
    format!("`{name}`")
}
