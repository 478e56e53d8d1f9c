//! Parsing a query and checking its shape.
//!
//! Owns the sqlparser call (Spark dialect), the rule "one SELECT over one
//! table, joined with at most one static table (INNER or LEFT OUTER, ON a
//! condition)", the rejection of every clause a streaming query cannot have
//! (other joins, UNION, WITH, DISTINCT, ORDER BY, LIMIT, GROUPING SETS, ...) and the
//! checks across clauses that need no schema (aggregates in WHERE, where
//! `window(...)` and `window.start` may appear). It must not look at the
//! input schema or build plans.

use sqlparser::ast::{
    self, GroupByExpr, ObjectNamePart, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    SetOperator, Spanned, Statement, TableFactor,
};
use sqlparser::dialect::SparkSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;

use super::error::{error_at, syntax_error, Pos, Span};
use super::ir::{Kind, Node};
use super::tokens::Tokens;
use super::translate::{Cx, Joined};
use crate::error::{EngineError, Result};
use crate::plan::JoinType;

/// The message for clauses that order or cut a stream.
const QUERY_RESULT_LATER: &str =
    "not supported on a streaming query; query the result table afterwards with `runnel sql`";

/// One SELECT item.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    /// `*`, or `t.*` (with `t`'s qualifier when the query joins a table:
    /// then only `t`'s columns).
    Wildcard(Span, Option<String>),
    /// An expression, with its alias.
    Expr { node: Node, alias: Option<String> },
}

/// A checked query: one SELECT over one table.
#[derive(Clone, Debug)]
pub(crate) struct Parsed {
    pub(crate) sql: String,
    /// The FROM table as written (parts joined by `.`).
    pub(crate) table: String,
    /// `LATERAL VIEW [OUTER] generator(...) name AS col, ...`, in order.
    pub(crate) lateral_views: Vec<LateralView>,
    pub(crate) items: Vec<Item>,
    pub(crate) selection: Option<Node>,
    pub(crate) group_by: Vec<Node>,
    pub(crate) having: Option<Node>,
    /// GROUP BY, HAVING or an aggregate call in SELECT.
    pub(crate) aggregate: bool,
    /// The FROM table's qualifier (its alias, else the last part of its name).
    pub(crate) qualifier: String,
    /// `JOIN table ON ...`, if any.
    pub(crate) join: Option<ParsedJoin>,
}

/// The query's `[INNER | LEFT OUTER] JOIN table [alias] ON condition`.
#[derive(Clone, Debug)]
pub(crate) struct ParsedJoin {
    /// The joined table's name as written (parts joined by `.`).
    pub(crate) table: String,
    /// Its qualifier (its alias, else the last part of its name).
    pub(crate) qualifier: String,
    /// Where the joined table is named.
    pub(crate) span: Span,
    pub(crate) how: JoinType,
    /// Where the kind of join is written (`RIGHT`, `FULL`, `LEFT`, `JOIN`).
    pub(crate) how_span: Span,
    /// The ON condition.
    pub(crate) on: Node,
}

/// The FROM clause: the table, its alias, and the join.
struct From {
    parts: Vec<String>,
    alias: Option<String>,
    join: Option<JoinClause>,
}

/// A join before its condition is translated.
struct JoinClause {
    parts: Vec<String>,
    alias: Option<String>,
    span: Span,
    how: JoinType,
    how_span: Span,
    on: ast::Expr,
}

/// One `LATERAL VIEW`: its generator call (`OUTER` already folded into
/// the `_outer` form) and the names of the columns it adds.
#[derive(Clone, Debug)]
pub(crate) struct LateralView {
    pub(crate) generator: Node,
    pub(crate) columns: Vec<String>,
}

fn lateral_view(cx: &Cx<'_>, v: &ast::LateralView) -> Result<LateralView> {
    let mut generator = cx.expr(&v.lateral_view)?;
    let Kind::Function { name, .. } = &mut generator.kind else {
        return Err(error_at(
            cx.sql,
            generator.span,
            "LATERAL VIEW needs a generator: explode, explode_outer, posexplode or posexplode_outer",
        ));
    };
    if !crate::expr::functions::GENERATORS.contains(&name.as_str()) {
        let msg = format!(
            "LATERAL VIEW needs a generator (explode, explode_outer, posexplode or \
             posexplode_outer), not {name}"
        );
        return Err(error_at(cx.sql, generator.span, &msg));
    }
    if v.outer && !name.ends_with("_outer") {
        name.push_str("_outer");
    }
    Ok(LateralView {
        generator,
        columns: v
            .lateral_col_alias
            .iter()
            .map(|c| c.value.clone())
            .collect(),
    })
}

/// Parses `sql` and checks its shape.
pub(crate) fn parse(sql: &str) -> Result<Parsed> {
    let dialect = SparkSqlDialect {};
    let tokens = Tokens::new(&dialect, sql);
    let statements = Parser::parse_sql(&dialect, sql)
        .map_err(|e| syntax_error(sql, &e, |p, found| tokens.parser_error_token(p, found)))?;
    let err = |span: Span, msg: &str| error_at(sql, span, msg);
    let statement = match statements.as_slice() {
        [] => {
            return Err(EngineError::Plan(
                "empty query; expected SELECT ... FROM <table>".into(),
            ))
        }
        [one] => one,
        many => {
            return Err(error_at(
                sql,
                tokens.after_first_semicolon(),
                format!(
                    "only one statement is supported, but the query has {}",
                    many.len()
                ),
            ))
        }
    };
    let Statement::Query(query) = statement else {
        return Err(err(
            tokens.first(),
            "only a SELECT query is supported on a stream",
        ));
    };
    let start = Pos { line: 1, col: 1 };
    let kw = |k: Keyword| tokens.keyword(k, start, false).unwrap_or(Span::NONE);
    if let Some(with) = &query.with {
        return Err(err(
            with.with_token.0.span.into(),
            "WITH (common table expressions) is not supported; write one SELECT over the stream",
        ));
    }
    let select = match &*query.body {
        SetExpr::Select(s) => s,
        SetExpr::SetOperation { op, .. } => {
            let (k, name) = match op {
                SetOperator::Union => (Keyword::UNION, "UNION"),
                SetOperator::Except => (Keyword::EXCEPT, "EXCEPT"),
                SetOperator::Intersect => (Keyword::INTERSECT, "INTERSECT"),
                SetOperator::Minus => (Keyword::MINUS, "MINUS"),
            };
            return Err(err(
                kw(k),
                &format!("{name} is not supported on a streaming query; run one query per stream"),
            ));
        }
        SetExpr::Query(q) => {
            return Err(err(
                q.body.span().into(),
                "a parenthesized query is not supported; write SELECT ... FROM <table>",
            ))
        }
        other => {
            return Err(err(
                other.span().into(),
                "only SELECT ... FROM <table> is supported",
            ))
        }
    };
    if query.order_by.is_some() {
        let at = tokens.last_keyword(Keyword::ORDER).unwrap_or(Span::NONE);
        return Err(err(at, &format!("ORDER BY is {QUERY_RESULT_LATER}")));
    }
    if query.limit_clause.is_some() || query.fetch.is_some() {
        let at = [Keyword::LIMIT, Keyword::OFFSET, Keyword::FETCH]
            .into_iter()
            .find_map(|k| tokens.last_keyword(k))
            .unwrap_or(Span::NONE);
        return Err(err(at, &format!("LIMIT is {QUERY_RESULT_LATER}")));
    }
    if !query.locks.is_empty()
        || query.for_clause.is_some()
        || query.settings.is_some()
        || query.format_clause.is_some()
        || !query.pipe_operators.is_empty()
    {
        let at = [Keyword::FOR, Keyword::SETTINGS, Keyword::FORMAT]
            .into_iter()
            .find_map(|k| tokens.last_keyword(k))
            .unwrap_or(Span::NONE);
        return Err(err(
            at,
            "clauses after the SELECT (FOR, SETTINGS, FORMAT, |>) are not supported",
        ));
    }
    check_select_clauses(select, sql, &tokens)?;

    let From {
        parts: table_parts,
        alias,
        join,
    } = from_table(select, sql, &tokens)?;
    let view_names: Vec<String> = select
        .lateral_views
        .iter()
        .map(|v| v.lateral_view_name.to_string())
        .collect();
    let cx = Cx {
        sql,
        tokens: &tokens,
        table: &table_parts,
        alias: alias.as_deref(),
        views: &view_names,
        joined: join.as_ref().map(|j| Joined {
            table: &j.parts,
            alias: j.alias.as_deref(),
        }),
    };
    let parsed_join = match &join {
        Some(j) => Some(ParsedJoin {
            table: j.parts.join("."),
            qualifier: qualifier_of(&j.parts, j.alias.as_deref()),
            span: j.span,
            how: j.how,
            how_span: j.how_span,
            on: cx.expr(&j.on)?,
        }),
        None => None,
    };
    let lateral_views = select
        .lateral_views
        .iter()
        .map(|v| lateral_view(&cx, v))
        .collect::<Result<Vec<_>>>()?;
    let items = select
        .projection
        .iter()
        .map(|item| select_item(&cx, item))
        .collect::<Result<Vec<_>>>()?;
    let selection = select.selection.as_ref().map(|e| cx.expr(e)).transpose()?;
    let group_by = match &select.group_by {
        GroupByExpr::All(_) => {
            let at = tokens
                .keyword(
                    Keyword::ALL,
                    Span::from(select.select_token.0.span).start,
                    true,
                )
                .unwrap_or(Span::NONE);
            return Err(err(at, "GROUP BY ALL is not supported; list the keys"));
        }
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                let at = [
                    Keyword::ROLLUP,
                    Keyword::CUBE,
                    Keyword::TOTALS,
                    Keyword::GROUPING,
                ]
                .into_iter()
                .find_map(|k| tokens.last_keyword(k))
                .unwrap_or(Span::NONE);
                return Err(err(
                    at,
                    "GROUPING SETS, ROLLUP and CUBE are not supported on a streaming query",
                ));
            }
            exprs
                .iter()
                .map(|e| cx.expr(e))
                .collect::<Result<Vec<_>>>()?
        }
    };
    let having = select.having.as_ref().map(|e| cx.expr(e)).transpose()?;
    let parsed = Parsed {
        sql: sql.to_string(),
        table: table_parts.join("."),
        lateral_views,
        aggregate: !group_by.is_empty()
            || having.is_some()
            || items.iter().any(|i| match i {
                Item::Expr { node, .. } => node.find_aggregate().is_some(),
                Item::Wildcard(..) => false,
            }),
        items,
        selection,
        group_by,
        having,
        qualifier: qualifier_of(&table_parts, alias.as_deref()),
        join: parsed_join,
    };
    check_placement(&parsed)?;
    Ok(parsed)
}

/// Rejects the SELECT clauses a streaming query cannot have.
fn check_select_clauses(s: &ast::Select, sql: &str, tokens: &Tokens) -> Result<()> {
    let select_span: Span = s.select_token.0.span.into();
    let from = select_span.start;
    let at = |k: Keyword| tokens.keyword(k, from, true).unwrap_or(select_span);
    let fail = |span: Span, msg: &str| Err(error_at(sql, span, msg));
    if matches!(
        s.distinct,
        Some(ast::Distinct::Distinct) | Some(ast::Distinct::On(_))
    ) {
        return fail(
            at(Keyword::DISTINCT),
            "SELECT DISTINCT is not supported on a streaming query; GROUP BY the columns instead",
        );
    }
    if s.top.is_some() {
        return fail(at(Keyword::TOP), &format!("TOP is {QUERY_RESULT_LATER}"));
    }
    if !s.sort_by.is_empty() {
        return fail(
            at(Keyword::SORT),
            &format!("SORT BY is {QUERY_RESULT_LATER}"),
        );
    }
    let unsupported: [(bool, Keyword, &str); 9] = [
        (s.into.is_some(), Keyword::INTO, "SELECT INTO"),
        (s.prewhere.is_some(), Keyword::PREWHERE, "PREWHERE"),
        (!s.connect_by.is_empty(), Keyword::CONNECT, "CONNECT BY"),
        (!s.cluster_by.is_empty(), Keyword::CLUSTER, "CLUSTER BY"),
        (
            !s.distribute_by.is_empty(),
            Keyword::DISTRIBUTE,
            "DISTRIBUTE BY",
        ),
        (s.qualify.is_some(), Keyword::QUALIFY, "QUALIFY"),
        (s.exclude.is_some(), Keyword::EXCLUDE, "EXCLUDE"),
        (
            !s.optimizer_hints.is_empty(),
            Keyword::SELECT,
            "a query hint",
        ),
        (
            s.select_modifiers.is_some() || s.value_table_mode.is_some(),
            Keyword::SELECT,
            "this SELECT modifier",
        ),
    ];
    if let Some((_, k, name)) = unsupported.iter().find(|(bad, _, _)| *bad) {
        return fail(
            at(*k),
            &format!("{name} is not supported on a streaming query"),
        );
    }
    if let Some(w) = s.named_window.first() {
        return fail(
            w.0.span.into(),
            "WINDOW clauses (window functions) are not supported on a streaming query",
        );
    }
    if s.flavor != ast::SelectFlavor::Standard {
        return fail(
            select_span,
            "FROM-first queries are not supported; write SELECT ... FROM",
        );
    }
    Ok(())
}

/// A table's qualifier: its alias, else the last part of its name.
fn qualifier_of(parts: &[String], alias: Option<&str>) -> String {
    alias
        .map(str::to_string)
        .or_else(|| parts.last().cloned())
        .unwrap_or_default()
}

/// A plain table name and its alias, from FROM or JOIN.
fn table_name(
    relation: &TableFactor,
    sql: &str,
    what: &str,
) -> Result<(Vec<String>, Option<String>)> {
    let fail = |span: Span, msg: &str| Err(error_at(sql, span, msg));
    match relation {
        TableFactor::Table {
            name,
            alias,
            args,
            with_hints,
            version,
            partitions,
            sample,
            ..
        } => {
            let span: Span = relation.span().into();
            let plain = format!("only a plain table name is supported in {what}");
            if args.is_some()
                || !with_hints.is_empty()
                || version.is_some()
                || !partitions.is_empty()
                || sample.is_some()
            {
                return fail(span, &plain);
            }
            let mut parts = Vec::new();
            for p in &name.0 {
                match p {
                    ObjectNamePart::Identifier(id) => parts.push(id.value.clone()),
                    _ => return fail(span, &plain),
                }
            }
            let alias = match alias {
                Some(a) if !a.columns.is_empty() => {
                    return fail(
                        span,
                        &format!("column aliases on the {what} table are not supported"),
                    )
                }
                Some(a) => Some(a.name.value.clone()),
                None => None,
            };
            Ok((parts, alias))
        }
        TableFactor::Derived { subquery, .. } => {
            let span = match &*subquery.body {
                SetExpr::Select(inner) => inner.select_token.0.span.into(),
                _ => relation.span().into(),
            };
            fail(span, "subqueries are not supported on a streaming query")
        }
        other => fail(
            other.span().into(),
            &format!("only a table name is supported in {what} on a streaming query"),
        ),
    }
}

/// The FROM table's name parts and alias, and its join if any.
fn from_table(s: &ast::Select, sql: &str, tokens: &Tokens) -> Result<From> {
    let fail = |span: Span, msg: &str| Err(error_at(sql, span, msg));
    let twj = match s.from.as_slice() {
        [] => {
            return fail(
                s.select_token.0.span.into(),
                "a streaming query reads one table: add FROM <table>",
            )
        }
        [one] => one,
        [_, second, ..] => {
            return fail(
                second.relation.span().into(),
                "FROM lists more than one table, which is a cross join: not supported on a \
                 streaming query; write FROM stream JOIN table ON stream.key = table.key",
            )
        }
    };
    let (parts, alias) = table_name(&twj.relation, sql, "FROM")?;
    let join = match twj.joins.as_slice() {
        [] => None,
        [join] => Some(join_clause(twj, join, sql, tokens)?),
        [_, second, ..] => {
            return fail(
                second.relation.span().into(),
                "only one JOIN per query is supported",
            )
        }
    };
    Ok(From { parts, alias, join })
}

/// Checks one JOIN: a stream-static join is INNER or LEFT OUTER, ON a
/// condition.
fn join_clause(
    twj: &ast::TableWithJoins,
    join: &ast::Join,
    sql: &str,
    tokens: &Tokens,
) -> Result<JoinClause> {
    use ast::JoinConstraint as C;
    use ast::JoinOperator as J;
    let rel: Span = twj.relation.span().into();
    let target: Span = join.relation.span().into();
    let before_target = |k: Keyword| {
        tokens
            .keyword(k, rel.end, true)
            .filter(|s| s.start <= target.start)
    };
    let keyword = before_target(Keyword::JOIN).unwrap_or(target);
    let at = |k: Keyword| before_target(k).unwrap_or(keyword);
    let fail = |span: Span, msg: &str| Err(error_at(sql, span, msg));
    let (how, constraint) =
        match &join.join_operator {
            J::Join(c) | J::Inner(c) => (JoinType::Inner, c),
            J::Left(c) | J::LeftOuter(c) => (JoinType::LeftOuter, c),
            // Refused with a static table, and FULL with a stream too, once
            // the plan knows which the joined table is.
            J::Right(c) | J::RightOuter(c) => (JoinType::RightOuter, c),
            J::FullOuter(c) => (JoinType::FullOuter, c),
            J::CrossJoin(_) => return fail(
                at(Keyword::CROSS),
                "CROSS JOIN is not supported on a streaming query; join ON an equality of keys \
                 (stream.key = table.key)",
            ),
            other => {
                let name = match other {
                    J::Semi(_) | J::LeftSemi(_) | J::RightSemi(_) => "a SEMI JOIN",
                    J::Anti(_) | J::LeftAnti(_) | J::RightAnti(_) => "an ANTI JOIN",
                    J::AsOf { .. } => "an ASOF JOIN",
                    _ => "this kind of join",
                };
                return fail(
                    keyword,
                    &format!(
                    "{name} is not supported on a streaming query; use INNER or LEFT OUTER JOIN"
                ),
                );
            }
        };
    let how_span = match how {
        JoinType::RightOuter => at(Keyword::RIGHT),
        JoinType::FullOuter => at(Keyword::FULL),
        JoinType::LeftOuter => at(Keyword::LEFT),
        JoinType::Inner => keyword,
    };
    let (parts, alias) = table_name(&join.relation, sql, "JOIN")?;
    let on = match constraint {
        C::On(e) => e.clone(),
        C::Using(_) => {
            return fail(
                tokens
                    .keyword(Keyword::USING, target.end, true)
                    .unwrap_or(keyword),
                "JOIN ... USING is not supported; write ON stream.key = table.key",
            )
        }
        C::Natural => {
            return fail(
                at(Keyword::NATURAL),
                "NATURAL JOIN is not supported; write ON stream.key = table.key",
            )
        }
        C::None => {
            return fail(
                keyword,
                "a JOIN without ON is a cross join, which is not supported on a streaming \
                 query; add ON stream.key = table.key",
            )
        }
    };
    Ok(JoinClause {
        parts,
        alias,
        span: target,
        how,
        how_span,
        on,
    })
}

fn select_item(cx: &Cx<'_>, item: &SelectItem) -> Result<Item> {
    let wildcard_opts = |o: &ast::WildcardAdditionalOptions, span: Span| -> Result<()> {
        if o.opt_ilike.is_some()
            || o.opt_exclude.is_some()
            || o.opt_except.is_some()
            || o.opt_replace.is_some()
            || o.opt_rename.is_some()
            || o.opt_alias.is_some()
        {
            return Err(cx.err(
                span,
                "modifiers of `*` (EXCEPT, REPLACE, ...) are not supported",
            ));
        }
        Ok(())
    };
    match item {
        SelectItem::UnnamedExpr(e) => Ok(Item::Expr {
            node: cx.expr(e)?,
            alias: None,
        }),
        SelectItem::ExprWithAlias { expr, alias } => Ok(Item::Expr {
            node: cx.expr(expr)?,
            alias: Some(alias.value.clone()),
        }),
        SelectItem::ExprWithAliases { expr, .. } => Err(cx.err(
            cx.tokens.expr_span(expr),
            "several aliases for one item are not supported",
        )),
        SelectItem::Wildcard(o) => {
            let span: Span = o.wildcard_token.0.span.into();
            wildcard_opts(o, span)?;
            Ok(Item::Wildcard(span, None))
        }
        SelectItem::QualifiedWildcard(kind, o) => {
            let star: Span = o.wildcard_token.0.span.into();
            let SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
                return Err(cx.err(star, "`<expression>.*` is not supported"));
            };
            let span = Span::from(name.span()).union(star);
            wildcard_opts(o, span)?;
            let parts: Vec<ast::Ident> = name
                .0
                .iter()
                .filter_map(|p| p.as_ident().cloned())
                .collect();
            if parts.len() != name.0.len() || !cx.names_table(&parts) {
                return Err(cx.err(
                    name.span().into(),
                    format!("table or alias `{name}` cannot be resolved"),
                ));
            }
            Ok(Item::Wildcard(span, cx.join_qualifier(&parts)))
        }
    }
}

/// Where aggregates and windows may appear, across clauses.
fn check_placement(p: &Parsed) -> Result<()> {
    let err = |n: &Node, msg: &str| Err(error_at(&p.sql, n.span, msg));
    let is_window = |n: &Node| matches!(n.kind, Kind::Window(_));
    let is_field = |n: &Node| matches!(n.kind, Kind::WindowField(_));

    // GROUP BY: at most one window, on its own; no aggregates.
    let mut window_key: Option<&Node> = None;
    for key in &p.group_by {
        if let Some(a) = key.find_aggregate() {
            return err(a, "aggregate functions are not allowed in GROUP BY");
        }
        if is_window(key) {
            if window_key.is_some() {
                return err(key, "only one window() may appear among the GROUP BY keys");
            }
            window_key = Some(key);
            if let Kind::Window(w) = &key.kind {
                if let Some(inner) = w.time.find(&|n| is_window(n) || is_field(n)) {
                    return err(inner, "a window's time column cannot itself be a window");
                }
            }
            continue;
        }
        if let Some(w) = key.find(&is_window) {
            return err(w, "window() must be a GROUP BY key on its own");
        }
        if let Some(f) = key.find(&is_field) {
            return err(f, &format!("{f} is not available in GROUP BY"));
        }
    }

    // WHERE runs before the aggregation.
    if let Some(w) = &p.selection {
        if let Some(a) = w.find_aggregate() {
            return err(
                a,
                "aggregate functions are not allowed in WHERE; filter on aggregates with HAVING",
            );
        }
        if let Some(n) = w.find(&is_window) {
            return err(n, "window() is only allowed as a GROUP BY key");
        }
        if let Some(f) = w.find(&is_field) {
            return err(
                f,
                &format!(
                    "{f} is not available in WHERE; it exists after the aggregation (use HAVING)"
                ),
            );
        }
    }

    // SELECT and HAVING.
    let mut exprs: Vec<(&Node, bool)> = p
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Expr { node, .. } => Some((node, true)),
            Item::Wildcard(..) => None,
        })
        .collect();
    if let Some(h) = &p.having {
        exprs.push((h, false));
    }
    for (e, is_select_item) in exprs {
        check_nested(e, &p.sql)?;
        let top_window = is_select_item && is_window(e);
        if top_window && window_key.is_none() {
            return err(e, "window() in SELECT needs the same window() in GROUP BY");
        }
        let inner_window = if top_window {
            e.children().into_iter().find_map(|c| c.find(&is_window))
        } else {
            e.find(&is_window)
        };
        if let Some(w) = inner_window {
            return err(
                w,
                "window() can only be a GROUP BY key or a SELECT item on its own; \
                 use window.start and window.end in expressions",
            );
        }
        if window_key.is_none() {
            if let Some(f) = e.find(&is_field) {
                return err(f, &format!("{f} needs GROUP BY window(...)"));
            }
        }
    }
    Ok(())
}

/// Checks every aggregate call under `n` (inclusive).
fn check_nested(n: &Node, sql: &str) -> Result<()> {
    if matches!(n.kind, Kind::Aggregate { .. }) {
        return check_aggregate_args(n, sql);
    }
    n.children()
        .into_iter()
        .try_for_each(|c| check_nested(c, sql))
}

/// An aggregate's argument holds no aggregate, window or window field.
fn check_aggregate_args(agg: &Node, sql: &str) -> Result<()> {
    let Kind::Aggregate { arg: Some(arg), .. } = &agg.kind else {
        return Ok(());
    };
    if let Some(inner) = arg.find_aggregate() {
        return Err(error_at(
            sql,
            inner.span,
            "aggregate functions cannot be nested (an aggregate's argument cannot contain another aggregate)",
        ));
    }
    if let Some(w) = arg.find(&|n| {
        matches!(
            n.kind,
            Kind::Window(_) | Kind::WindowField(_) | Kind::WindowWhole
        )
    }) {
        return Err(error_at(
            sql,
            w.span,
            format!("{w} cannot be used inside an aggregate function"),
        ));
    }
    Ok(())
}
