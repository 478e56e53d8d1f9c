//! Physical planning: binding, Spark's validity rules, and operator chaining.
//!
//! Operators on one-to-one edges share a task (plain calls). Rings appear only
//! where data changes thread: after a source that blocks on I/O, at a keyed
//! hash exchange into `parallelism` aggregation tasks, and at the fan-in of
//! those tasks into the sink's task. With parallelism 1 and a non-blocking
//! source the whole query is one task and no ring at all.

use std::sync::Arc;

use crate::error::{plan_err, Result};
use crate::expr::{bind_expr_in, resolve_column, BoundExpr, Expr};
use crate::io::OutputMode;
use crate::ops::{BoundAggregate, FlatMapFn};
use crate::plan::logical::{JoinSpec, JoinType, StreamJoinSpec};
use crate::plan::{LogicalOp, LogicalPlan, QueryConfig};
use crate::schema::{Schema, SchemaRef};
use crate::table::{key_type, start_refresh, BoundJoin, BoundStreamJoin, JoinIndex, SideOp};
use crate::time::Zone;

/// A bound row operator (everything but the aggregation).
#[derive(Clone)]
pub(crate) enum PhysOp {
    Filter(BoundExpr),
    Project(Vec<BoundExpr>),
    FlatMap(FlatMapFn, SchemaRef),
    /// See `LogicalOp::Generate`; `array` is bound to the input.
    Generate {
        array: BoundExpr,
        position: bool,
        outer: bool,
    },
    Watermark {
        column: usize,
        delay_us: i64,
        op_id: usize,
    },
    /// A stream-static join; the table's index is built when the plan is.
    Join(Arc<BoundJoin>),
    /// A stream-stream join over the rows of both sources
    /// (`io::JoinedSources`); each runtime keeps its state.
    StreamJoin {
        join: Arc<BoundStreamJoin>,
        op_id: usize,
        /// The joined rows' schema.
        schema: SchemaRef,
    },
}

/// The aggregation of a plan, bound.
#[derive(Clone)]
pub(crate) struct PhysAggregate {
    pub(crate) spec: BoundAggregate,
    pub(crate) op_id: usize,
    /// The expressions rows are hash-partitioned by (the grouping keys).
    pub(crate) partition_keys: Vec<BoundExpr>,
    /// The schema of the aggregation's output rows.
    pub(crate) output_schema: SchemaRef,
}

/// A checked, bound plan and its task layout.
#[derive(Clone)]
pub(crate) struct PhysicalPlan {
    pub(crate) pre: Vec<(PhysOp, String)>,
    pub(crate) aggregate: Option<(PhysAggregate, String)>,
    pub(crate) post: Vec<(PhysOp, String)>,
    pub(crate) output_schema: SchemaRef,
    pub(crate) key_columns: Option<Vec<usize>>,
    pub(crate) partitions: usize,
    pub(crate) source_task_separate: bool,
    pub(crate) ring_capacity: usize,
}

impl PhysicalPlan {
    pub(crate) fn new(
        plan: &LogicalPlan,
        config: &QueryConfig,
        source_blocking: bool,
    ) -> Result<PhysicalPlan> {
        let mut schema = plan.source_schema.clone();
        let mut pre = Vec::new();
        let mut post = Vec::new();
        let mut aggregate: Option<(PhysAggregate, String)> = None;
        let mut watermark_column: Option<String> = None;
        // Each key is a group of interchangeable columns (a window is kept
        // by either of its bounds); every group must survive projections.
        let mut key_columns: Option<Vec<Vec<usize>>> = None;
        let mode = config.output_mode;
        let zone = config.time_zone;
        let bind_expr = |e: &Expr, schema: &crate::schema::Schema| bind_expr_in(e, schema, zone);

        for (op_id, node) in plan.nodes.iter().enumerate() {
            let label = node.op.to_string();
            let phys = match &node.op {
                LogicalOp::Filter(p) => PhysOp::Filter(bind_expr(p, &schema)?.0),
                LogicalOp::Project(exprs) => {
                    let bound = exprs
                        .iter()
                        .map(|e| bind_expr(e, &schema).map(|b| b.0))
                        .collect::<Result<Vec<_>>>()?;
                    key_columns = key_columns.and_then(|keys| project_keys(&keys, exprs, &schema));
                    PhysOp::Project(bound)
                }
                LogicalOp::FlatMap(f) => {
                    key_columns = None;
                    PhysOp::FlatMap(f.clone(), node.schema.clone())
                }
                // The input's columns keep their places: keys survive.
                LogicalOp::Generate {
                    array,
                    position,
                    outer,
                } => PhysOp::Generate {
                    array: bind_expr(array, &schema)?.0,
                    position: *position,
                    outer: *outer,
                },
                LogicalOp::Join(j) => {
                    if aggregate.is_some() {
                        return plan_err(
                            "a join after a streaming aggregation is not supported; join the \
                             stream with the table before grouping it",
                        );
                    }
                    PhysOp::Join(Arc::new(bind_join(j, &node.schema, zone)?))
                }
                LogicalOp::StreamJoin(j) => {
                    if mode != OutputMode::Append {
                        return plan_err(format!(
                            "{mode} output mode is not supported for a stream-stream join: a \
                             joined row is final once emitted, so only append output mode is \
                             (as in Spark)"
                        ));
                    }
                    if plan
                        .nodes
                        .iter()
                        .any(|n| matches!(n.op, LogicalOp::Aggregate { .. }))
                    {
                        return plan_err(
                            "an aggregation after a stream-stream join is not supported yet; \
                             write the joined rows to a sink and aggregate them in another query",
                        );
                    }
                    PhysOp::StreamJoin {
                        join: Arc::new(bind_stream_join(j, &node.schema, zone)?),
                        op_id,
                        schema: node.schema.clone(),
                    }
                }
                LogicalOp::Watermark {
                    column, delay_us, ..
                } => {
                    if aggregate.is_some() {
                        return plan_err(
                            "a watermark must be defined before the aggregation it applies to",
                        );
                    }
                    watermark_column = Some(column.clone());
                    PhysOp::Watermark {
                        column: resolve_column(&schema, column)?,
                        delay_us: *delay_us,
                        op_id,
                    }
                }
                LogicalOp::Aggregate { keys, window, aggs } => {
                    if aggregate.is_some() {
                        return plan_err(
                            "multiple streaming aggregations are not supported in one query",
                        );
                    }
                    let bound_keys = keys
                        .iter()
                        .map(|e| bind_expr(e, &schema).map(|b| b.0))
                        .collect::<Result<Vec<_>>>()?;
                    let bound_window = match window {
                        Some((at, w)) => Some((*at, bind_expr(&w.time, &schema)?.0, w.shape)),
                        None => None,
                    };
                    let bound_aggs = aggs
                        .iter()
                        .map(|a| match &a.arg {
                            None => Ok((a.func, None, crate::schema::DataType::Int64)),
                            Some(e) => {
                                let (b, f) = bind_expr(e, &schema)?;
                                Ok((a.func, Some(b), f.data_type().clone()))
                            }
                        })
                        .collect::<Result<Vec<_>>>()?;
                    if mode == OutputMode::Append {
                        check_append(window.as_ref().map(|(_, w)| &w.time), &watermark_column)?;
                    }
                    let mut groups: Vec<Vec<usize>> = Vec::new();
                    let mut col = 0;
                    for k in 0..=keys.len() {
                        if window.as_ref().is_some_and(|(at, _)| *at == k) {
                            groups.push(vec![col, col + 1]);
                            col += 2;
                        }
                        if k < keys.len() {
                            groups.push(vec![col]);
                            col += 1;
                        }
                    }
                    key_columns = Some(groups);
                    let spec = BoundAggregate {
                        keys: bound_keys.clone(),
                        window: bound_window,
                        aggs: bound_aggs,
                        mode,
                        has_watermark: watermark_column.is_some(),
                    };
                    aggregate = Some((
                        PhysAggregate {
                            spec,
                            op_id,
                            partition_keys: bound_keys,
                            output_schema: node.schema.clone(),
                        },
                        label.clone(),
                    ));
                    schema = node.schema.clone();
                    continue;
                }
            };
            if aggregate.is_some() {
                post.push((phys, label));
            } else {
                pre.push((phys, label));
            }
            schema = node.schema.clone();
        }

        if aggregate.is_none() && mode == OutputMode::Complete {
            return plan_err(
                "complete output mode is not supported when there are no streaming aggregations",
            );
        }
        let partitions = if aggregate.is_some() {
            config.parallelism.max(1)
        } else {
            1
        };
        Ok(PhysicalPlan {
            pre,
            aggregate,
            post,
            output_schema: schema,
            key_columns: key_columns.map(|groups| groups.into_iter().map(|g| g[0]).collect()),
            partitions,
            source_task_separate: source_blocking,
            ring_capacity: config.ring_capacity,
        })
    }

    /// Number of threads the query runs on (tasks, not counting the coordinator).
    pub(crate) fn task_count(&self) -> usize {
        let separate = usize::from(self.source_task_separate);
        if self.partitions > 1 {
            1 + separate + self.partitions + 1
        } else {
            1 + separate
        }
    }

    /// The task graph as text.
    pub(crate) fn describe(&self, source: &str, sink: &str) -> String {
        let mut out = String::new();
        let mut task = 0;
        let mut head = vec![format!("source({source})")];
        if self.source_task_separate {
            out.push_str(&format!(
                "task {task}: source({source}) -> ring({}) -> task {}\n",
                self.ring_capacity,
                task + 1
            ));
            task += 1;
            head = vec![format!("ring from task {}", task - 1)];
        }
        let names =
            |ops: &[(PhysOp, String)]| ops.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>();
        if self.partitions > 1 {
            let (_, agg_label) = self
                .aggregate
                .as_ref()
                .expect("partitions > 1 implies an aggregation");
            let mut chain = head;
            chain.extend(names(&self.pre));
            chain.push(format!(
                "exchange(hash of the grouping keys into {} rings of {})",
                self.partitions, self.ring_capacity
            ));
            out.push_str(&format!("task {task}: {}\n", chain.join(" -> ")));
            let first_agg = task + 1;
            let sink_task = first_agg + self.partitions;
            for p in 0..self.partitions {
                let mut chain = vec![
                    format!("ring from task {task}"),
                    format!("{agg_label} [partition {p}]"),
                ];
                chain.extend(names(&self.post));
                chain.push(format!("ring({}) -> task {sink_task}", self.ring_capacity));
                out.push_str(&format!("task {}: {}\n", first_agg + p, chain.join(" -> ")));
            }
            out.push_str(&format!(
                "task {sink_task}: fan-in({} rings, epoch markers forwarded once seen on all) -> sink({sink})\n",
                self.partitions
            ));
        } else {
            let mut chain = head;
            chain.extend(names(&self.pre));
            if let Some((_, l)) = &self.aggregate {
                chain.push(l.clone());
            }
            chain.extend(names(&self.post));
            chain.push(format!("sink({sink})"));
            out.push_str(&format!("task {task}: {}\n", chain.join(" -> ")));
        }
        out
    }
}

/// Binds a join and builds its index: the stream's keys on the joined row
/// (the stream's columns come first), the table's on the table, both cast to
/// the key types.
fn bind_join(j: &JoinSpec, joined: &Schema, zone: Zone) -> Result<BoundJoin> {
    let mut stream_keys = Vec::with_capacity(j.keys.len());
    let mut table_keys = Vec::with_capacity(j.keys.len());
    for (s, t) in &j.keys {
        let (sb, tb) = bind_key_pair((s, joined), (t, &j.table_schema), zone)?;
        stream_keys.push(sb);
        table_keys.push(tb);
    }
    let condition = match &j.condition {
        Some(c) => Some(bind_expr_in(c, joined, zone)?.0),
        None => None,
    };
    let index = Arc::new(JoinIndex::build(&j.table, &table_keys)?);
    let live = match j.table.refresh() {
        Some(refresh) => Some(start_refresh(
            j.table.name(),
            refresh,
            index.clone(),
            table_keys,
        )?),
        None => None,
    };
    Ok(BoundJoin {
        index,
        live,
        stream_keys,
        condition,
        outer: j.how == JoinType::LeftOuter,
    })
}

/// Binds one key pair of a join, each expression on its own input, both
/// cast to the type they are compared in (`key_type`).
fn bind_key_pair(
    (a, a_schema): (&Expr, &Schema),
    (b, b_schema): (&Expr, &Schema),
    zone: Zone,
) -> Result<(BoundExpr, BoundExpr)> {
    let (ab, af) = bind_expr_in(a, a_schema, zone)?;
    let (bb, bf) = bind_expr_in(b, b_schema, zone)?;
    let to = key_type(af.data_type(), bf.data_type(), &format!("{a} = {b}"))?;
    let cast = |e: BoundExpr, from: &crate::schema::DataType| {
        if *from == to {
            e
        } else {
            BoundExpr::Cast {
                expr: Box::new(e),
                to: to.clone(),
                zone,
            }
        }
    };
    Ok((cast(ab, af.data_type()), cast(bb, bf.data_type())))
}

/// Binds a stream-stream join: each side's keys on its own row, cast to the
/// key types; the condition on the joined row; each side's event-time column.
fn bind_stream_join(j: &StreamJoinSpec, joined: &Schema, zone: Zone) -> Result<BoundStreamJoin> {
    let mut keys: [Vec<BoundExpr>; 2] = [Vec::new(), Vec::new()];
    for (l, r) in &j.keys {
        let (lb, rb) = bind_key_pair((l, &j.sides[0].schema), (r, &j.sides[1].schema), zone)?;
        keys[0].push(lb);
        keys[1].push(rb);
    }
    let condition = match &j.condition {
        Some(c) => Some(bind_expr_in(c, joined, zone)?.0),
        None => None,
    };
    let mut side_ops: [Vec<SideOp>; 2] = [Vec::new(), Vec::new()];
    for (s, side) in j.sides.iter().enumerate() {
        let mut schema = side.input.clone();
        for node in &side.ops {
            match &node.op {
                LogicalOp::Filter(p) => {
                    side_ops[s].push(SideOp::Filter(bind_expr_in(p, &schema, zone)?.0))
                }
                LogicalOp::Project(exprs) => side_ops[s].push(SideOp::Project(
                    exprs
                        .iter()
                        .map(|e| bind_expr_in(e, &schema, zone).map(|b| b.0))
                        .collect::<Result<Vec<_>>>()?,
                )),
                // The event time is read at the join, from the side's row.
                LogicalOp::Watermark { .. } => {}
                other => {
                    return plan_err(format!("{other} cannot come before a stream-stream join"))
                }
            }
            schema = node.schema.clone();
        }
    }
    let watermark = |s: usize| -> Result<Option<(usize, i64)>> {
        match &j.sides[s].watermark {
            Some(w) => Ok(Some((
                resolve_column(&j.sides[s].schema, &w.column)?,
                w.delay_us,
            ))),
            None => Ok(None),
        }
    };
    Ok(BoundStreamJoin {
        input_widths: [
            j.sides[0].input.fields().len(),
            j.sides[1].input.fields().len(),
        ],
        side_ops,
        widths: [
            j.sides[0].schema.fields().len(),
            j.sides[1].schema.fields().len(),
        ],
        keys,
        condition,
        watermark: [watermark(0)?, watermark(1)?],
        range: j.range,
        preserve: [j.how == JoinType::LeftOuter, j.how == JoinType::RightOuter],
    })
}

/// Spark's rule: append mode with an aggregation needs a watermark, and the
/// grouping must include a window on the watermark column.
fn check_append(window_time: Option<&Expr>, watermark: &Option<String>) -> Result<()> {
    let Some(wm) = watermark else {
        return plan_err(
            "append output mode is not supported for streaming aggregations without a watermark \
             (add with_watermark / watermark=COL:DELAY, or use update or complete mode)",
        );
    };
    match window_time {
        Some(Expr::Column(c)) if c.eq_ignore_ascii_case(wm) => Ok(()),
        _ => plan_err(format!(
            "append output mode needs the aggregation to group by a window on the watermark column `{wm}`"
        )),
    }
}

/// Where the key columns land after a projection, if every key survives as a
/// plain column reference (a key group survives when any of its columns does).
fn project_keys(keys: &[Vec<usize>], exprs: &[Expr], input: &SchemaRef) -> Option<Vec<Vec<usize>>> {
    let source_of = |e: &Expr| -> Option<usize> {
        let mut e = e;
        while let Expr::Alias { expr, .. } = e {
            e = expr;
        }
        match e {
            Expr::Column(c) => resolve_column(input, c).ok(),
            _ => None,
        }
    };
    keys.iter()
        .map(|group| {
            let kept: Vec<usize> = exprs
                .iter()
                .enumerate()
                .filter(|(_, e)| source_of(e).is_some_and(|s| group.contains(&s)))
                .map(|(i, _)| i)
                .collect();
            (!kept.is_empty()).then_some(kept)
        })
        .collect()
}
