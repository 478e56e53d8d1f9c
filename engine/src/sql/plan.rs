//! Planning a checked query onto a [`DataFrame`].
//!
//! Owns resolving column names against the input schema (keeping each name's
//! span, so errors point at it), GROUP BY ordinals and SELECT aliases,
//! collecting and deduplicating aggregate calls, rewriting SELECT and HAVING
//! over the aggregation's output columns, Spark's output column names, and
//! the builder calls: `filter` (WHERE), `group_by(..).agg(..)`, `filter`
//! (HAVING), `select`. It must not parse SQL; type rules stay the builder's
//! (every expression is bound with [`bind_expr`] to find the one that fails).

use super::error::{error_at, Span};
use super::ir::{AggKind, Kind, Node, WindowCall};
use super::parse::{Item, Parsed, ParsedJoin};
use crate::error::{EngineError, Result};
use crate::expr::{
    bind_expr, col, not, resolve_column, sliding_window, window, window_with_start, BinaryOp, Expr,
};
use crate::plan::{avg, count, count_star, max, min, sum, AggExpr, DataFrame, JoinType};
use crate::schema::{qualified, qualifier_of, type_name, DataType, Schema, SchemaRef, Value};
use crate::table::StaticTable;

/// Replaces a node while lowering, or rejects it.
type Hook<'h> = dyn FnMut(&Node) -> Result<Option<Expr>> + 'h;

const WHOLE_WINDOW_IN_EXPRESSION: &str =
    "the window can only be selected on its own; use window.start and window.end in expressions";

/// A SELECT item after `*` expansion and column resolution.
struct OutItem {
    node: Node,
    alias: Option<String>,
}

struct Planner<'a> {
    sql: &'a str,
    schema: SchemaRef,
    has_window_key: bool,
}

/// Builds `p` on `input`, joining one of `tables` or the stream `joined`
/// if the query has a JOIN.
pub(crate) fn apply(
    p: &Parsed,
    input: DataFrame,
    joined: Option<DataFrame>,
    tables: &[StaticTable],
) -> Result<DataFrame> {
    if let Some(e) = input.error() {
        return Err(e.clone());
    }
    let mut input = input;
    match (&p.join, joined) {
        (Some(j), Some(stream)) => input = join_stream(p, j, input, stream)?,
        (Some(j), None) => input = join(p, j, input, tables)?,
        (None, Some(_)) => {
            return Err(EngineError::Plan(format!(
                "a stream to join was given, but the query has no JOIN (it reads `{}` alone)",
                p.table
            )))
        }
        (None, None) => {}
    }
    for v in &p.lateral_views {
        let pl = Planner {
            sql: &p.sql,
            schema: input.schema(),
            has_window_key: false,
        };
        let generator = pl.resolve(&v.generator, &|_| None)?;
        let generator = pl.lower(&generator, &pl.schema, &mut |n| pl.reject_aggregates(n))?;
        let names: Vec<&str> = v.columns.iter().map(String::as_str).collect();
        input = pl.checked(input.lateral_view(generator, &names))?;
    }
    let pl = Planner {
        sql: &p.sql,
        schema: input.schema(),
        has_window_key: p.group_by.iter().any(|k| matches!(k.kind, Kind::Window(_))),
    };
    let mut items = Vec::new();
    for item in &p.items {
        match item {
            Item::Wildcard(span, qualifier) => items.extend(
                (0..pl.schema.fields().len())
                    .filter(|&i| {
                        qualifier.as_ref().is_none_or(|q| {
                            qualifier_of(pl.schema.field(i))
                                .is_some_and(|f| f.eq_ignore_ascii_case(q))
                        })
                    })
                    .map(|i| OutItem {
                        node: Node::new(Kind::Column(spelling(&pl.schema, i)), *span),
                        alias: None,
                    }),
            ),
            Item::Expr { node, alias } => items.push(OutItem {
                node: pl.resolve(node, &|_| None)?,
                alias: alias.clone(),
            }),
        }
    }
    let selection = match &p.selection {
        Some(w) => Some(pl.resolve(w, &|_| None)?),
        None => None,
    };
    let mut df = input;
    if let Some(w) = &selection {
        let predicate = pl.condition(w, &pl.schema, &mut |n| pl.reject_aggregates(n), "WHERE")?;
        df = pl.checked(df.filter(predicate))?;
    }
    if !p.aggregate {
        let only_star = matches!(p.items.as_slice(), [Item::Wildcard(_, None)]);
        if only_star {
            return Ok(df);
        }
        let mut exprs = Vec::with_capacity(items.len());
        for it in &items {
            let e = pl.lower(&it.node, &pl.schema, &mut |n| pl.reject_aggregates(n))?;
            let generator = matches!(&it.node.kind, Kind::Function { name, .. }
                if crate::expr::functions::GENERATORS.contains(&name.as_str()));
            if generator && it.alias.is_none() {
                // A generator's columns are named by the generator (`col`).
                exprs.push(e);
            } else {
                exprs.push(named(e, &output_name(it)));
            }
        }
        return pl.checked(df.select(exprs));
    }
    pl.aggregate(p, &items, df)
}

/// The stream joined with the static table the query names: the stream's
/// columns qualified by its alias (or name), the table's by its own.
fn join(p: &Parsed, j: &ParsedJoin, input: DataFrame, tables: &[StaticTable]) -> Result<DataFrame> {
    let err = |span: Span, msg: String| error_at(&p.sql, span, msg);
    let find = |name: &str| tables.iter().find(|t| t.name().eq_ignore_ascii_case(name));
    if find(&p.table).is_some() {
        return Err(err(
            j.span,
            format!(
                "the static table `{}` is on the left of the join, but a stream-static join \
                 keeps the static table on the right: write FROM {} {} JOIN {}",
                p.table,
                j.table,
                if j.how == JoinType::LeftOuter {
                    "LEFT OUTER"
                } else {
                    "INNER"
                },
                p.table
            ),
        ));
    }
    let Some(table) = find(&j.table) else {
        if j.table.eq_ignore_ascii_case(&p.table) {
            return Err(err(
                j.span,
                format!(
                    "a stream cannot be joined with itself (`{}` is read once); join it with \
                     another stream or with a static table",
                    p.table
                ),
            ));
        }
        let known = if tables.is_empty() {
            "no static tables were given".to_string()
        } else {
            let names: Vec<&str> = tables.iter().map(StaticTable::name).collect();
            format!("the static tables are: {}", names.join(", "))
        };
        return Err(err(
            j.span,
            format!(
                "table `{}` cannot be found: it is neither a stream the query reads nor a static \
                 table ({known})",
                j.table
            ),
        ));
    };
    match j.how {
        JoinType::RightOuter => {
            return Err(err(
                j.how_span,
                "RIGHT OUTER JOIN with the static table on the right is not supported: it \
                 would have to emit the table rows no stream row ever matches; use INNER or \
                 LEFT OUTER JOIN (the stream's rows are kept)"
                    .into(),
            ))
        }
        JoinType::FullOuter => {
            return Err(err(
                j.how_span,
                "FULL OUTER JOIN with a stream is not supported: it would have to emit the \
                 table rows no stream row ever matches; use LEFT OUTER JOIN"
                    .into(),
            ))
        }
        JoinType::Inner | JoinType::LeftOuter => {}
    }
    let input = input.alias(&p.qualifier);
    let stream = input.schema();
    let table_schema = qualified(&table.schema(), &j.qualifier);
    let on = join_condition(p, j, &stream, &table_schema)?;
    let joined = input.join_as(table, &j.qualifier, on, j.how);
    match joined.error() {
        Some(EngineError::Plan(m)) => Err(error_at(&p.sql, j.on.span, m)),
        Some(e) => Err(e.clone()),
        None => Ok(joined),
    }
}

/// A join's ON condition, resolved and lowered over the columns of both
/// inputs (`left`'s, then `right`'s); aggregates in it are refused.
fn join_condition(p: &Parsed, j: &ParsedJoin, left: &Schema, right: &Schema) -> Result<Expr> {
    let fields: Vec<crate::schema::Field> = left
        .fields()
        .iter()
        .chain(right.fields().iter())
        .map(|f| f.as_ref().clone())
        .collect();
    let pl = Planner {
        sql: &p.sql,
        schema: std::sync::Arc::new(Schema::new(fields)),
        has_window_key: false,
    };
    let on = pl.resolve(&j.on, &|_| None)?;
    pl.lower(&on, &pl.schema, &mut |n| pl.reject_aggregates(n))
}

/// The stream joined with the other stream the query names: each side's
/// columns qualified by its alias (or name). Spark's refusals point at the
/// kind of join (FULL) or at the ON condition (a missing watermark or range).
fn join_stream(p: &Parsed, j: &ParsedJoin, left: DataFrame, right: DataFrame) -> Result<DataFrame> {
    if let Some(e) = right.error() {
        return Err(e.clone());
    }
    if j.how == JoinType::FullOuter {
        return Err(error_at(
            &p.sql,
            j.how_span,
            "FULL OUTER JOIN of two streams is not supported: use LEFT or RIGHT OUTER JOIN \
             (with a watermark on both streams and an event-time range in ON)",
        ));
    }
    if j.table.eq_ignore_ascii_case(&p.table) && j.qualifier.eq_ignore_ascii_case(&p.qualifier) {
        return Err(error_at(
            &p.sql,
            j.span,
            "both sides of the join have the same name: give one an alias",
        ));
    }
    let left = left.alias(&p.qualifier);
    let right = right.alias(&j.qualifier);
    let on = join_condition(p, j, &left.schema(), &right.schema())?;
    let joined = left.join_stream(right, on, j.how);
    match joined.error() {
        Some(EngineError::Plan(m)) => Err(error_at(&p.sql, j.on.span, m)),
        Some(e) => Err(e.clone()),
        None => Ok(joined),
    }
}

/// How a resolved column is written so that it stays unambiguous: its
/// name, or `qualifier.name` when a joined table has a column of that name
/// too.
fn spelling(schema: &Schema, i: usize) -> String {
    let f = schema.field(i);
    let same = schema
        .fields()
        .iter()
        .filter(|g| g.name().eq_ignore_ascii_case(f.name()))
        .count();
    match qualifier_of(f) {
        Some(q) if same > 1 => format!("{q}.{}", f.name()),
        _ => f.name().clone(),
    }
}

/// Spark's output name of a SELECT item.
fn output_name(it: &OutItem) -> String {
    match (&it.alias, &it.node.kind) {
        (Some(a), _) => a.clone(),
        // A qualified column is named by the column alone (`s.Country` is
        // `Country`), as in Spark.
        (None, Kind::Column(c)) if c.contains('.') && !c.starts_with('`') => c
            .split_once('.')
            .map_or_else(|| c.clone(), |(_, name)| name.to_string()),
        (None, Kind::WindowField(part)) => part.column().to_string(),
        (None, _) => it.node.to_string(),
    }
}

/// `e AS name`, unless `e` already is the column `name`.
fn named(e: Expr, name: &str) -> Expr {
    match &e {
        Expr::Column(c) if c == name => e,
        _ => e.alias(name),
    }
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

/// A prefix for internal column names that no input column starts with.
fn internal_prefix(schema: &Schema, base: &str) -> String {
    let mut prefix = base.to_string();
    while schema
        .fields()
        .iter()
        .any(|f| f.name().to_ascii_lowercase().starts_with(&prefix))
    {
        prefix.insert(0, '_');
    }
    prefix
}

impl Planner<'_> {
    fn err(&self, span: Span, msg: impl std::fmt::Display) -> EngineError {
        error_at(self.sql, span, msg)
    }

    /// A builder error moved to `span`.
    fn at(&self, span: Span, e: EngineError) -> EngineError {
        match e {
            EngineError::Plan(m) => self.err(span, m),
            other => other,
        }
    }

    /// The DataFrame, or the error its last builder call recorded.
    fn checked(&self, df: DataFrame) -> Result<DataFrame> {
        match df.error() {
            Some(e) => Err(e.clone()),
            None => Ok(df),
        }
    }

    /// Resolves every column name to the schema's spelling. A name that is
    /// no column may be the grouping window (`window`) or what `fallback`
    /// gives (a SELECT alias).
    fn resolve(&self, n: &Node, fallback: &dyn Fn(&str) -> Option<Node>) -> Result<Node> {
        n.rewrite(&mut |n: &Node| {
            let Kind::Column(name) = &n.kind else {
                return Ok(None);
            };
            match resolve_column(&self.schema, name) {
                Ok(i) => Ok(Some(Node::new(
                    Kind::Column(spelling(&self.schema, i)),
                    n.span,
                ))),
                Err(e) => {
                    let unknown = !self
                        .schema
                        .fields()
                        .iter()
                        .any(|f| f.name().eq_ignore_ascii_case(name));
                    if unknown && self.has_window_key && name.eq_ignore_ascii_case("window") {
                        return Ok(Some(Node::new(Kind::WindowWhole, n.span)));
                    }
                    if unknown {
                        if let Some(sub) = fallback(name) {
                            return Ok(Some(Node::new(sub.kind, n.span)));
                        }
                    }
                    let e = self.at(n.span, e);
                    Err(match e {
                        EngineError::Sql {
                            message,
                            line,
                            column,
                        } if unknown && self.double_quoted(n.span) => EngineError::Sql {
                            message: message.replacen(
                                " at line",
                                " (double quotes delimit names; write a string as 'text') at line",
                                1,
                            ),
                            line,
                            column,
                        },
                        other => other,
                    })
                }
            }
        })
    }

    /// Whether the text at `span` starts with a double quote.
    fn double_quoted(&self, span: Span) -> bool {
        self.sql
            .split('\n')
            .nth((span.start.line as usize).saturating_sub(1))
            .and_then(|line| {
                line.chars()
                    .nth((span.start.col as usize).saturating_sub(1))
            })
            == Some('"')
    }

    /// The hook outside an aggregation: aggregates and windows do not exist.
    fn reject_aggregates(&self, n: &Node) -> Result<Option<Expr>> {
        match n.kind {
            Kind::Aggregate { .. } => {
                Err(self.err(n.span, "aggregate functions are not allowed here"))
            }
            Kind::Window(_) | Kind::WindowField(_) | Kind::WindowWhole => Err(self.err(
                n.span,
                format!("`{n}` cannot be used here; it exists only after GROUP BY window(...)"),
            )),
            _ => Ok(None),
        }
    }

    /// Turns a node into an engine expression bound against `schema`,
    /// pointing any type error at the smallest expression that has it.
    fn lower(&self, n: &Node, schema: &Schema, hook: &mut Hook<'_>) -> Result<Expr> {
        if let Some(e) = hook(n)? {
            return Ok(e);
        }
        let e = match &n.kind {
            Kind::Column(c) => col(c.as_str()),
            Kind::Literal(v) => Expr::Literal(v.clone()),
            Kind::Binary { op, left, right } => binary(
                *op,
                self.lower(left, schema, hook)?,
                self.lower(right, schema, hook)?,
            ),
            Kind::Not(x) => not(self.lower(x, schema, hook)?),
            Kind::Negate(x) => Expr::Negate(Box::new(self.lower(x, schema, hook)?)),
            Kind::IsNull(x) => self.lower(x, schema, hook)?.is_null(),
            Kind::IsNotNull(x) => self.lower(x, schema, hook)?.is_not_null(),
            Kind::Cast { expr, to, .. } => self.lower(expr, schema, hook)?.cast(to.clone()),
            Kind::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let x = self.lower(expr, schema, hook)?;
                let lo = self.lower(low, schema, hook)?;
                let hi = self.lower(high, schema, hook)?;
                let b = binary(
                    BinaryOp::And,
                    binary(BinaryOp::GtEq, x.clone(), lo),
                    binary(BinaryOp::LtEq, x, hi),
                );
                if *negated {
                    not(b)
                } else {
                    b
                }
            }
            Kind::InList {
                expr,
                list,
                negated,
            } => {
                let x = self.lower(expr, schema, hook)?;
                let mut any: Option<Expr> = None;
                for item in list {
                    let eq = binary(BinaryOp::Eq, x.clone(), self.lower(item, schema, hook)?);
                    any = Some(match any {
                        None => eq,
                        Some(acc) => binary(BinaryOp::Or, acc, eq),
                    });
                }
                let any = any.unwrap_or(Expr::Literal(Value::Boolean(false)));
                if *negated {
                    not(any)
                } else {
                    any
                }
            }
            Kind::Function { name, args } => Expr::Function {
                name: name.clone(),
                args: args
                    .iter()
                    .map(|a| self.lower(a, schema, hook))
                    .collect::<Result<_>>()?,
            },
            Kind::Case {
                branches,
                otherwise,
            } => Expr::Case {
                branches: branches
                    .iter()
                    .map(|(c, r)| Ok((self.lower(c, schema, hook)?, self.lower(r, schema, hook)?)))
                    .collect::<Result<_>>()?,
                otherwise: match otherwise {
                    Some(e) => Some(Box::new(self.lower(e, schema, hook)?)),
                    None => None,
                },
            },
            Kind::Aggregate { .. } | Kind::Window(_) | Kind::WindowField(_) | Kind::WindowWhole => {
                return Err(self.err(n.span, format!("{n} is not allowed here")))
            }
        };
        if let Some((array, _, _, name)) = crate::expr::as_generator(&e) {
            // A generator is no value: its argument is what has a type.
            let (_, field) = bind_expr(array, schema).map_err(|err| self.at(n.span, err))?;
            if !matches!(field.data_type(), DataType::List(_) | DataType::Null) {
                return Err(self.err(
                    n.span,
                    format!(
                        "the argument of {name} must be an array, but {array} is {}",
                        type_name(field.data_type())
                    ),
                ));
            }
            return Ok(e);
        }
        bind_expr(&e, schema).map_err(|err| self.at(n.span, err))?;
        Ok(e)
    }

    /// The condition of WHERE or HAVING: a boolean (a bare NULL is a null
    /// boolean, as in Spark).
    fn condition(
        &self,
        n: &Node,
        schema: &Schema,
        hook: &mut Hook<'_>,
        clause: &str,
    ) -> Result<Expr> {
        if matches!(n.kind, Kind::Literal(Value::Null)) {
            return Ok(Expr::Literal(Value::Null).cast(DataType::Boolean));
        }
        let e = self.lower(n, schema, hook)?;
        let (_, field) = bind_expr(&e, schema).map_err(|err| self.at(n.span, err))?;
        if field.data_type() == &DataType::Boolean {
            return Ok(e);
        }
        Err(self.err(
            n.span,
            format!(
                "the {clause} condition must be a boolean, but `{n}` is {}",
                type_name(field.data_type())
            ),
        ))
    }

    /// An aggregate call as the builder's [`AggExpr`] (argument bound and
    /// type-checked against the input).
    fn agg_expr(&self, n: &Node) -> Result<AggExpr> {
        let Kind::Aggregate { func, arg } = &n.kind else {
            return Err(self.err(n.span, format!("{n} is not an aggregate")));
        };
        let Some(arg) = arg else {
            return Ok(count_star());
        };
        let e = self.lower(arg, &self.schema, &mut |x| self.reject_aggregates(x))?;
        let (_, field) = bind_expr(&e, &self.schema).map_err(|err| self.at(arg.span, err))?;
        let t = field.data_type();
        let needs_number = match func {
            AggKind::Sum | AggKind::Avg => true,
            AggKind::Other { func, .. } => func.needs_number(),
            _ => false,
        };
        if needs_number
            && !matches!(t, DataType::Int64 | DataType::Float64)
            && !matches!(arg.kind, Kind::Literal(Value::Null))
        {
            return Err(self.err(
                n.span,
                format!(
                    "function {} needs a number, but `{arg}` is {}",
                    func.name(),
                    type_name(t)
                ),
            ));
        }
        Ok(match func {
            // count(1), count('x'): every row, as count(*).
            AggKind::Count if matches!(&e, Expr::Literal(v) if !v.is_null()) => count_star(),
            AggKind::Count => count(e),
            AggKind::Sum => sum(e),
            AggKind::Avg => avg(e),
            AggKind::Min => min(e),
            AggKind::Max => max(e),
            AggKind::Other { func, .. } => crate::plan::agg(*func, Some(e)),
        })
    }

    /// GROUP BY keys resolved: ordinals and SELECT aliases replaced by the
    /// items they name.
    fn group_keys(&self, p: &Parsed, items: &[OutItem]) -> Result<Vec<Node>> {
        let alias_of = |name: &str| {
            items
                .iter()
                .find(|it| {
                    it.alias
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(name))
                })
                .map(|it| it.node.clone())
        };
        let mut keys = Vec::with_capacity(p.group_by.len());
        for key in &p.group_by {
            let resolved = match key.kind {
                Kind::Literal(Value::Int64(pos)) => {
                    let Some(it) = usize::try_from(pos)
                        .ok()
                        .and_then(|i| i.checked_sub(1))
                        .and_then(|i| items.get(i))
                    else {
                        return Err(self.err(
                            key.span,
                            format!(
                                "GROUP BY position {pos} is not in the select list (valid range is [1, {}])",
                                items.len()
                            ),
                        ));
                    };
                    if it.node.find_aggregate().is_some() {
                        return Err(self.err(
                            key.span,
                            format!(
                                "GROUP BY position {pos} refers to `{}`, which contains an aggregate function",
                                it.node
                            ),
                        ));
                    }
                    it.node.clone()
                }
                _ => self.resolve(key, &alias_of)?,
            };
            if let Some(a) = resolved.find_aggregate() {
                return Err(self.err(
                    key.span,
                    format!("GROUP BY refers to `{a}`, an aggregate function"),
                ));
            }
            keys.push(resolved);
        }
        Ok(keys)
    }

    fn aggregate(&self, p: &Parsed, items: &[OutItem], df: DataFrame) -> Result<DataFrame> {
        let keys = self.group_keys(p, items)?;
        let having = match &p.having {
            Some(h) => {
                let alias_of = |name: &str| {
                    items
                        .iter()
                        .find(|it| {
                            it.alias
                                .as_deref()
                                .is_some_and(|a| a.eq_ignore_ascii_case(name))
                        })
                        .map(|it| it.node.clone())
                };
                Some(self.resolve(h, &alias_of)?)
            }
            None => None,
        };

        // Grouping keys: the window becomes window_start/window_end; plain
        // columns keep their names; other expressions get internal names.
        let key_prefix = internal_prefix(&self.schema, "_key");
        let agg_prefix = internal_prefix(&self.schema, "_agg");
        let mut window_key: Option<&Node> = None;
        let mut plain: Vec<(&Node, String)> = Vec::new();
        let mut key_exprs = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if let Kind::Window(w) = &key.kind {
                window_key = Some(key);
                key_exprs.push(self.window_key(w)?);
                continue;
            }
            let e = self.lower(key, &self.schema, &mut |n| self.reject_aggregates(n))?;
            let name = match &key.kind {
                Kind::Column(c) => c.clone(),
                _ => format!("{key_prefix}{i}"),
            };
            key_exprs.push(named(e, &name));
            plain.push((key, name));
        }

        // Aggregate calls of SELECT and HAVING, each computed once.
        let mut agg_exprs: Vec<AggExpr> = Vec::new();
        let mut agg_names: Vec<(Node, String)> = Vec::new();
        let mut calls: Vec<&Node> = Vec::new();
        for it in items {
            collect_aggregates(&it.node, &mut calls);
        }
        if let Some(h) = &having {
            collect_aggregates(h, &mut calls);
        }
        for call in calls {
            if agg_names.iter().any(|(n, _)| n == call) {
                continue;
            }
            // count(*) and count(1) are the same aggregate: compare the
            // builder's form.
            let a = self.agg_expr(call)?;
            let i = match agg_exprs.iter().position(|x| *x == a) {
                Some(i) => i,
                None => {
                    agg_exprs.push(a);
                    agg_exprs.len() - 1
                }
            };
            agg_names.push((call.clone(), format!("{agg_prefix}{i}")));
        }
        if agg_exprs.is_empty() {
            // GROUP BY without aggregates (Spark's distinct rows): the
            // builder needs one aggregate; count rows, never selected.
            agg_exprs.push(count_star());
        }
        let agg_exprs: Vec<AggExpr> = agg_exprs
            .into_iter()
            .enumerate()
            .map(|(i, a)| a.alias(format!("{agg_prefix}{i}")))
            .collect();

        let mut df = self.checked(df.group_by(key_exprs).agg(agg_exprs))?;
        let post = df.schema();
        let mut hook = |n: &Node| -> Result<Option<Expr>> {
            if let Some((_, name)) = plain.iter().find(|(k, _)| *k == n) {
                return Ok(Some(col(name.as_str())));
            }
            match &n.kind {
                Kind::Aggregate { .. } => {
                    let name = agg_names
                        .iter()
                        .find(|(a, _)| a == n)
                        .map(|(_, name)| name.clone())
                        .ok_or_else(|| self.err(n.span, format!("{n} was not computed")))?;
                    Ok(Some(col(name)))
                }
                Kind::WindowField(part) => Ok(Some(col(part.column()))),
                Kind::WindowWhole => Err(self.err(n.span, WHOLE_WINDOW_IN_EXPRESSION)),
                Kind::Window(_) if window_key.is_some_and(|w| w == n) => {
                    Err(self.err(n.span, WHOLE_WINDOW_IN_EXPRESSION))
                }
                Kind::Column(_) | Kind::Window(_) => Err(self.err(
                    n.span,
                    format!(
                        "expression `{n}` is neither present in the group by, \
                         nor is it an aggregate function"
                    ),
                )),
                _ => Ok(None),
            }
        };

        if let Some(h) = &having {
            let predicate = self.condition(h, &post, &mut hook, "HAVING")?;
            df = self.checked(df.filter(predicate))?;
        }

        let mut exprs = Vec::with_capacity(items.len() + 1);
        for it in items {
            let whole_window = matches!(it.node.kind, Kind::WindowWhole)
                || (matches!(it.node.kind, Kind::Window(_))
                    && window_key.is_some_and(|w| *w == it.node));
            if whole_window {
                let (start, end) = match &it.alias {
                    Some(a) => (format!("{a}_start"), format!("{a}_end")),
                    None => ("window_start".to_string(), "window_end".to_string()),
                };
                exprs.push(named(col("window_start"), &start));
                exprs.push(named(col("window_end"), &end));
                continue;
            }
            let e = self.lower(&it.node, &post, &mut hook)?;
            exprs.push(named(e, &output_name(it)));
        }
        self.checked(df.select(exprs))
    }

    /// The engine's window key for `window(time, size[, slide[, start]])`.
    fn window_key(&self, w: &WindowCall) -> Result<Expr> {
        let time = self.lower(&w.time, &self.schema, &mut |n| self.reject_aggregates(n))?;
        let (_, field) = bind_expr(&time, &self.schema).map_err(|e| self.at(w.time.span, e))?;
        if !matches!(field.data_type(), DataType::Timestamp(..)) {
            return Err(self.err(
                w.time.span,
                format!(
                    "window() needs a timestamp, but `{}` is {}",
                    w.time,
                    type_name(field.data_type())
                ),
            ));
        }
        Ok(match (&w.slide, &w.start) {
            (None, _) => window(time, &w.size),
            (Some(slide), None) => sliding_window(time, &w.size, slide),
            (Some(slide), Some(start)) => window_with_start(time, &w.size, slide, start),
        })
    }
}

/// Every aggregate call in `n`, outermost first.
fn collect_aggregates<'n>(n: &'n Node, out: &mut Vec<&'n Node>) {
    if matches!(n.kind, Kind::Aggregate { .. }) {
        out.push(n);
        return;
    }
    for c in n.children() {
        collect_aggregates(c, out);
    }
}
