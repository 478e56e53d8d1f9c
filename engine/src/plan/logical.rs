//! The logical plan: a source followed by a chain of operators.

use std::fmt;

use crate::expr::Expr;
use crate::ops::FlatMapFn;
use crate::plan::{AggExpr, WindowShape};
use crate::schema::{type_name, SchemaRef};
use crate::table::StaticTable;

/// A time window in a grouping, resolved to its shape.
#[derive(Clone, Debug)]
pub(crate) struct WindowSpec {
    pub(crate) time: Expr,
    pub(crate) shape: WindowShape,
    pub(crate) text: String,
}

/// One logical operator.
#[derive(Clone)]
pub(crate) enum LogicalOp {
    Filter(Expr),
    Project(Vec<Expr>),
    FlatMap(FlatMapFn),
    /// One row per element of an array (`explode` and its kin): the input's
    /// columns, then the element's position (when `position`), then the
    /// element. With `outer`, a null or empty array gives one row of nulls.
    Generate {
        array: Expr,
        position: bool,
        outer: bool,
    },
    /// A stream-static join (the table on the right).
    Join(Box<JoinSpec>),
    /// A stream-stream join: always the first operator, over the rows of
    /// both sources read together (`io::JoinedSources`).
    StreamJoin(Box<StreamJoinSpec>),
    Watermark {
        column: String,
        delay_us: i64,
        delay_text: String,
    },
    Aggregate {
        /// Grouping keys in order; the window (if any) sits at `window_at`.
        keys: Vec<Expr>,
        window: Option<(usize, WindowSpec)>,
        aggs: Vec<AggExpr>,
    },
}

/// A logical operator with the schema it produces.
#[derive(Clone)]
pub(crate) struct PlanNode {
    pub(crate) op: LogicalOp,
    pub(crate) schema: SchemaRef,
}

/// What a query computes: one source and a chain of operators.
#[derive(Clone)]
pub struct LogicalPlan {
    pub(crate) source_name: String,
    pub(crate) source_schema: SchemaRef,
    pub(crate) nodes: Vec<PlanNode>,
}

impl LogicalPlan {
    /// The schema of the plan's output.
    pub fn schema(&self) -> SchemaRef {
        self.nodes
            .last()
            .map_or_else(|| self.source_schema.clone(), |n| n.schema.clone())
    }
}

fn schema_text(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(exprs: &[Expr]) -> String {
    exprs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for LogicalOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogicalOp::Filter(p) => write!(f, "Filter {p}"),
            LogicalOp::Project(e) => write!(f, "Project [{}]", list(e)),
            LogicalOp::FlatMap(_) => write!(f, "FlatMap <user function>"),
            LogicalOp::Generate {
                array,
                position,
                outer,
            } => {
                let pos = if *position { "pos" } else { "" };
                let out = if *outer { "_outer" } else { "" };
                write!(f, "Generate {pos}explode{out}({array})")
            }
            LogicalOp::Join(j) => write!(
                f,
                "Join {}, {}, static table {} AS {} [{}]",
                j.how,
                j.on,
                j.table.name(),
                j.qualifier,
                schema_text(&j.table.schema())
            ),
            LogicalOp::StreamJoin(j) => {
                write!(f, "StreamStreamJoin {}, {}", j.how, j.on)?;
                for (side, what) in j.sides.iter().zip(["left", "right"]) {
                    match &side.watermark {
                        Some(w) => write!(
                            f,
                            ", {what} {} (watermark {}, {})",
                            side.name, w.column, w.delay_text
                        )?,
                        None => write!(f, ", {what} {} (no watermark)", side.name)?,
                    }
                }
                Ok(())
            }
            LogicalOp::Watermark {
                column, delay_text, ..
            } => write!(f, "EventTimeWatermark {column}, {delay_text}"),
            LogicalOp::Aggregate { keys, window, aggs } => {
                let mut k: Vec<String> = keys.iter().map(|e| e.to_string()).collect();
                if let Some((at, w)) = window {
                    k.insert(*at, w.text.clone());
                }
                let a: Vec<String> = aggs.iter().map(|a| a.to_string()).collect();
                write!(f, "Aggregate [{}], [{}]", k.join(", "), a.join(", "))
            }
        }
    }
}

impl fmt::Display for LogicalPlan {
    /// Spark's tree form: the last operator first, the source at the bottom.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut depth = 0;
        for node in self.nodes.iter().rev() {
            let pad = if depth == 0 {
                String::new()
            } else {
                format!("{}+- ", "   ".repeat(depth - 1))
            };
            writeln!(f, "{pad}{}", node.op)?;
            depth += 1;
        }
        let pad = if depth == 0 {
            String::new()
        } else {
            format!("{}+- ", "   ".repeat(depth - 1))
        };
        match self.nodes.first().map(|n| &n.op) {
            Some(LogicalOp::StreamJoin(j)) => writeln!(
                f,
                "{pad}StreamingSources {} [{}], {} [{}]",
                j.sides[0].name,
                schema_text(&j.sides[0].schema),
                j.sides[1].name,
                schema_text(&j.sides[1].schema)
            ),
            _ => writeln!(
                f,
                "{pad}StreamingSource {} [{}]",
                self.source_name,
                schema_text(&self.source_schema)
            ),
        }
    }
}

/// Which rows of a join are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinType {
    /// Rows with at least one match on the other side, once per match.
    Inner,
    /// Every row of the left side (the stream of a stream-static join):
    /// once per match, or once with nulls for the right side's columns
    /// when none matches.
    LeftOuter,
    /// Every row of the right side: once per match, or once with nulls for
    /// the left side's columns (stream-stream joins only).
    RightOuter,
    /// Every row of both sides (refused on streams: see the README).
    FullOuter,
}

impl fmt::Display for JoinType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JoinType::Inner => "Inner",
            JoinType::LeftOuter => "LeftOuter",
            JoinType::RightOuter => "RightOuter",
            JoinType::FullOuter => "FullOuter",
        })
    }
}

/// A join as the logical plan records it.
#[derive(Clone)]
pub(crate) struct JoinSpec {
    pub(crate) table: StaticTable,
    /// The table's qualifier: its alias, else its name.
    pub(crate) qualifier: String,
    pub(crate) how: JoinType,
    /// The condition as written.
    pub(crate) on: Expr,
    /// `(stream side, table side)` of each key equality.
    pub(crate) keys: Vec<(Expr, Expr)>,
    /// The rest of the condition, on the joined row.
    pub(crate) condition: Option<Expr>,
    /// The table's schema, qualified.
    pub(crate) table_schema: SchemaRef,
}

/// A side's watermark as a stream-stream join records it.
#[derive(Clone, Debug)]
pub(crate) struct SideWatermark {
    pub(crate) column: String,
    pub(crate) delay_us: i64,
    pub(crate) delay_text: String,
}

/// One side of a stream-stream join.
#[derive(Clone)]
pub(crate) struct JoinSide {
    /// The source's name (its qualifier unless aliased).
    pub(crate) name: String,
    /// The source's columns, as it emits them.
    pub(crate) input: SchemaRef,
    /// The side's operators before the join (filters, projections and at
    /// most one watermark), each with the schema it produces.
    pub(crate) ops: Vec<PlanNode>,
    /// The side's columns at the join, qualified.
    pub(crate) schema: SchemaRef,
    pub(crate) watermark: Option<SideWatermark>,
}

/// A stream-stream join as the logical plan records it.
#[derive(Clone)]
pub(crate) struct StreamJoinSpec {
    pub(crate) sides: [JoinSide; 2],
    pub(crate) how: JoinType,
    /// The condition as written.
    pub(crate) on: Expr,
    /// `(left side, right side)` of each key equality.
    pub(crate) keys: Vec<(Expr, Expr)>,
    /// The rest of the condition, on the joined row.
    pub(crate) condition: Option<Expr>,
    /// `(lo, hi)`: the condition bounds `t_left - t_right` (µs) to this range.
    pub(crate) range: Option<(i64, i64)>,
}
