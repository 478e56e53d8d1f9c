//! The builder's stream-stream join: `DataFrame::join_stream`.
//!
//! Owns Spark's rules for joining two streams (at least one key equality
//! between the sides; left and right outer joins need a watermark on both
//! sides and an event-time range between them; no full outer join; no
//! aggregation before the join; a side may filter and project, its
//! watermark last), splitting the condition into key
//! equalities, the rest, and the event-time range it implies, and the
//! joined schema (the left side's columns, then the right's, each qualified
//! by its side's name or alias). It must not bind or run anything: the
//! physical plan binds, the runtimes run.

use std::sync::Arc;

use super::builder::DataFrame;
use super::join::{conjuncts, key_or_rest, stream_side};
use super::logical::{
    JoinSide, JoinType, LogicalOp, LogicalPlan, PlanNode, SideWatermark, StreamJoinSpec,
};
use crate::error::{plan_err, Result};
use crate::expr::{bind_expr, resolve_column, BinaryOp, Expr};
use crate::io::JoinedSources;
use crate::schema::{qualifier_of, DataType, Field, Schema, SchemaRef, Value};

/// A side of the join as the builder hands it over.
fn side_of(df: &DataFrame, what: &str) -> Result<JoinSide> {
    let mut watermark = None;
    for node in &df.plan.nodes {
        match &node.op {
            LogicalOp::Watermark {
                column,
                delay_us,
                delay_text,
            } => {
                watermark = Some(SideWatermark {
                    column: column.clone(),
                    delay_us: *delay_us,
                    delay_text: delay_text.clone(),
                })
            }
            LogicalOp::Aggregate { .. } => {
                return plan_err(format!(
                    "the {what} side of a stream-stream join ({}) is aggregated: a stream-stream \
                     join after a streaming aggregation is not supported in append output mode \
                     (Spark refuses it too: the aggregation's rows would join before they are \
                     final); aggregate after the join",
                    df.plan.source_name
                ))
            }
            LogicalOp::StreamJoin(_) => {
                return plan_err(format!(
                    "the {what} side of a stream-stream join is itself a stream-stream join: \
                     only two streams can be joined in one query"
                ))
            }
            LogicalOp::Filter(_) | LogicalOp::Project(_) if watermark.is_none() => {}
            LogicalOp::Filter(_) | LogicalOp::Project(_) => {
                return plan_err(format!(
                    "the {what} side of a stream-stream join ({}) has `{}` after its watermark: \
                     define the watermark last on a side (filters and projections before it)",
                    df.plan.source_name, node.op
                ))
            }
            other => {
                return plan_err(format!(
                    "the {what} side of a stream-stream join ({}) has `{other}` before the join: \
                     a side may have filters, projections and a watermark; do the rest after \
                     the join",
                    df.plan.source_name
                ))
            }
        }
    }
    let schema = df.schema();
    let name = schema
        .fields()
        .iter()
        .find_map(|f| qualifier_of(f).map(str::to_string))
        .unwrap_or_else(|| df.plan.source_name.clone());
    Ok(JoinSide {
        schema: stream_side(&schema, &name),
        input: stream_side(&df.plan.source_schema, &name),
        ops: df.plan.nodes.clone(),
        name,
        watermark,
    })
}

/// A term `column ± constant µs` of a range condition: which side's
/// event-time column, and the constant.
fn time_term(e: &Expr, sides: &[JoinSide; 2]) -> Option<(usize, i64)> {
    match e {
        Expr::Column(c) => (0..2).find_map(|s| {
            let w = sides[s].watermark.as_ref()?;
            let at = resolve_column(&sides[s].schema, c).ok()?;
            let wm_at = resolve_column(&sides[s].schema, &w.column).ok()?;
            (at == wm_at).then_some((s, 0))
        }),
        Expr::Function { name, args } if name.eq_ignore_ascii_case("timestampadd") => {
            match args.as_slice() {
                [Expr::Literal(Value::Utf8(unit)), Expr::Literal(Value::Int64(n)), inner]
                    if unit.eq_ignore_ascii_case("MICROSECOND") =>
                {
                    let (s, off) = time_term(inner, sides)?;
                    Some((s, off.checked_add(*n)?))
                }
                _ => None,
            }
        }
        Expr::Alias { expr, .. } => time_term(expr, sides),
        _ => None,
    }
}

/// The bounds a conjunct puts on `t_left - t_right`, if it compares the
/// sides' event-time columns: `(lower, upper)`.
fn range_bound(e: &Expr, sides: &[JoinSide; 2]) -> Option<(Option<i64>, Option<i64>)> {
    let Expr::Binary { op, left, right } = e else {
        return None;
    };
    let (a, oa) = time_term(left, sides)?;
    let (b, ob) = time_term(right, sides)?;
    if a == b {
        return None;
    }
    // t_a + oa OP t_b + ob, i.e. t_a - t_b OP ob - oa.
    let c = ob.checked_sub(oa)?;
    let (is_lower, c) = match op {
        BinaryOp::GtEq | BinaryOp::Gt => (true, c),
        BinaryOp::LtEq | BinaryOp::Lt => (false, c),
        _ => return None,
    };
    // As t_left - t_right: flip when a is the right side.
    let (is_lower, c) = if a == 0 {
        (is_lower, c)
    } else {
        (!is_lower, c.checked_neg()?)
    };
    Some(if is_lower {
        (Some(c), None)
    } else {
        (None, Some(c))
    })
}

/// Checks and splits a stream-stream join.
fn plan_stream_join(
    sides: [JoinSide; 2],
    on: Expr,
    how: JoinType,
) -> Result<(StreamJoinSpec, SchemaRef)> {
    if how == JoinType::FullOuter {
        return plan_err(
            "a full outer stream-stream join is not supported: use a left or a right outer join \
             (with watermarks on both sides and an event-time range condition)",
        );
    }
    if sides[0].name.eq_ignore_ascii_case(&sides[1].name) {
        return plan_err(format!(
            "both sides of the stream-stream join are named `{}`: give one an alias \
             (DataFrame::alias, or FROM a x JOIN a y in SQL) so that their columns can be told apart",
            sides[0].name
        ));
    }
    let nullable = [how == JoinType::RightOuter, how == JoinType::LeftOuter];
    let mut fields: Vec<Field> = Vec::new();
    for (s, side) in sides.iter().enumerate() {
        fields.extend(side.schema.fields().iter().map(|f| {
            let f = f.as_ref().clone();
            if nullable[s] {
                f.with_nullable(true)
            } else {
                f
            }
        }));
    }
    let joined = Arc::new(Schema::new(fields));
    let (_, field) = bind_expr(&on, &joined)?;
    if !matches!(field.data_type(), DataType::Boolean | DataType::Null) {
        return plan_err(format!("join condition {on} is not a boolean"));
    }
    let mut parts = Vec::new();
    conjuncts(&on, &mut parts);
    let mut keys = Vec::new();
    let mut rest: Option<Expr> = None;
    let (mut lo, mut hi): (Option<i64>, Option<i64>) = (None, None);
    for part in parts {
        if let Some((l, h)) = range_bound(&part, &sides) {
            lo = match (lo, l) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            hi = match (hi, h) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        key_or_rest(
            part,
            &sides[0].schema,
            &sides[1].schema,
            &mut keys,
            &mut rest,
        )?;
    }
    if keys.is_empty() {
        return plan_err(format!(
            "a stream-stream join needs at least one equality between a column of `{}` and a \
             column of `{}` in its condition, but {on} has none (cross joins of streams are not \
             supported)",
            sides[0].name, sides[1].name
        ));
    }
    let range = match (lo, hi) {
        (Some(lo), Some(hi)) => Some((lo, hi)),
        _ => None,
    };
    if matches!(how, JoinType::LeftOuter | JoinType::RightOuter) {
        let missing: Vec<&str> = sides
            .iter()
            .filter(|s| s.watermark.is_none())
            .map(|s| s.name.as_str())
            .collect();
        if !missing.is_empty() {
            return plan_err(format!(
                "a {} stream-stream join needs a watermark on both sides, to know when a row \
                 will find no match, but `{}` has none (with_watermark, or watermark=COL:DELAY \
                 on its source)",
                outer_name(how),
                missing.join("` and `")
            ));
        }
        if range.is_none() {
            let col = |s: usize| {
                let w = sides[s]
                    .watermark
                    .as_ref()
                    .map_or("t", |w| w.column.as_str());
                format!("{}.{col}", sides[s].name, col = w)
            };
            return plan_err(format!(
                "a {} stream-stream join needs an event-time range condition between the sides' \
                 watermark columns, to know when a row will find no match, but {on} bounds \
                 {} - {} {}; add e.g. {} BETWEEN {} AND {} + INTERVAL 1 HOUR",
                outer_name(how),
                col(0),
                col(1),
                match (lo, hi) {
                    (None, None) => "neither way",
                    (Some(_), None) => "only from below",
                    _ => "only from above",
                },
                col(0),
                col(1),
                col(1)
            ));
        }
    }
    Ok((
        StreamJoinSpec {
            sides,
            how,
            on,
            keys,
            condition: rest,
            range,
        },
        joined,
    ))
}

fn outer_name(how: JoinType) -> &'static str {
    match how {
        JoinType::RightOuter => "right outer",
        _ => "left outer",
    }
}

impl DataFrame {
    /// Joins this stream (the left side) with another stream (Spark's
    /// stream-stream join) on `on`, which must include at least one
    /// equality between a left and a right expression; its other
    /// conditions are checked on the joined row. Each side may have filters,
    /// projections and a watermark ([`DataFrame::with_watermark`], last)
    /// before the join. Inner joins keep every match (state grows without bound
    /// unless both sides have watermarks and `on` bounds the sides' event
    /// times to a range, e.g. `a.t >= b.t AND a.t <= b.t + INTERVAL 1 HOUR`,
    /// when rows no row to come can match are evicted). Left and right
    /// outer joins need both watermarks and the range, and emit each
    /// unmatched row of the kept side once, with nulls, when the watermark
    /// passes its range. Full outer joins are refused. The joined rows have
    /// the left side's columns, then the right's, qualified by each side's
    /// source name or alias; only append output mode is supported.
    pub fn join_stream(self, right: DataFrame, on: Expr, how: JoinType) -> DataFrame {
        let mut left = self;
        if left.error.is_some() {
            return left;
        }
        if let Some(e) = right.error {
            left.error = Some(e);
            return left;
        }
        let sides = side_of(&left, "left").and_then(|l| Ok([l, side_of(&right, "right")?]));
        let planned = sides.and_then(|sides| plan_stream_join(sides, on, how));
        let (spec, joined) = match planned {
            Ok(p) => p,
            Err(e) => {
                left.error = Some(e);
                return left;
            }
        };
        let name = format!("{}+{}", spec.sides[0].name, spec.sides[1].name);
        let source = JoinedSources::new(
            &spec.sides[0].name,
            left.source,
            &spec.sides[1].name,
            right.source,
        );
        let schema = crate::io::Source::schema(&source);
        DataFrame {
            source: Box::new(source),
            plan: LogicalPlan {
                source_name: name,
                source_schema: schema,
                nodes: vec![PlanNode {
                    op: LogicalOp::StreamJoin(Box::new(spec)),
                    schema: joined,
                }],
            },
            error: None,
        }
    }
}
