//! The DataFrame-style builder: `source → filter/select/with_column/flat_map →
//! with_watermark → group_by(...).agg(...) → write_stream(sink).start()`.
//!
//! Each call checks itself against the schema at that point; the first error
//! is kept and returned by `start`/`explain`, so a chain reads like Spark's
//! and fails with the message of the call that went wrong.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::logical::{LogicalOp, LogicalPlan, PlanNode, WindowSpec};
use crate::checkpoint::Storage;
use crate::error::{EngineError, Result};
use crate::expr::{bind_expr, col, Expr};
use crate::io::{OutputMode, Sink, Source};
use crate::ops::FlatMapFn;
use crate::schema::{timestamp_type, DataType, Field, Row, Schema, SchemaRef};
use crate::state::AggFunc;
use crate::time::Zone;
use crate::wake::WaitStrategy;
use crate::window::WindowShape;

/// An aggregate in `agg(...)`: `count_star()`, `sum(col("x")).alias("total")`.
#[derive(Clone, Debug, PartialEq)]
pub struct AggExpr {
    pub(crate) func: AggFunc,
    pub(crate) arg: Option<Expr>,
    pub(crate) alias: Option<String>,
}

impl AggExpr {
    /// Names the output column.
    pub fn alias(mut self, name: impl Into<String>) -> AggExpr {
        self.alias = Some(name.into());
        self
    }

    /// The output column name (Spark's default: `sum(x)`, `count(1)`).
    pub fn output_name(&self) -> String {
        match &self.alias {
            Some(a) => a.clone(),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for AggExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arg {
            None => write!(f, "{}(1)", self.func.name()),
            Some(e) => write!(f, "{}({e})", self.func.name()),
        }
    }
}

fn agg(func: AggFunc, arg: Option<Expr>) -> AggExpr {
    AggExpr {
        func,
        arg,
        alias: None,
    }
}

/// `count(*)`: rows in the group.
pub fn count_star() -> AggExpr {
    agg(AggFunc::CountStar, None)
}
/// `count(e)`: rows where `e` is not null.
pub fn count(e: Expr) -> AggExpr {
    agg(AggFunc::Count, Some(e))
}
/// `sum(e)`.
pub fn sum(e: Expr) -> AggExpr {
    agg(AggFunc::Sum, Some(e))
}
/// `avg(e)`.
pub fn avg(e: Expr) -> AggExpr {
    agg(AggFunc::Avg, Some(e))
}
/// `min(e)`.
pub fn min(e: Expr) -> AggExpr {
    agg(AggFunc::Min, Some(e))
}
/// `max(e)`.
pub fn max(e: Expr) -> AggExpr {
    agg(AggFunc::Max, Some(e))
}

/// When a query produces results, and so which mode it runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Continuous mode: every event is processed as it arrives; an epoch is
    /// checkpointed every `epoch_interval`. At-least-once.
    Continuous {
        /// Time between epoch markers.
        epoch_interval: Duration,
    },
    /// Micro-batch mode, a batch every interval (`Duration::ZERO`: as fast as
    /// possible, the next batch as soon as the last is done). Exactly-once.
    ProcessingTime(Duration),
    /// Micro-batch mode: process everything available at start (in as many
    /// batches as the source's limits need), then stop. Exactly-once.
    AvailableNow,
}

impl Trigger {
    /// Whether this trigger runs the query in micro-batch mode.
    pub fn is_micro_batch(&self) -> bool {
        !matches!(self, Trigger::Continuous { .. })
    }
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger::Continuous {
            epoch_interval: Duration::from_millis(100),
        }
    }
}

/// How a query runs (everything that is not what it computes).
#[derive(Clone, Debug)]
pub struct QueryConfig {
    /// Output mode (default append).
    pub output_mode: OutputMode,
    /// The query's name (as `queryName` in Spark).
    pub name: Option<String>,
    /// Checkpoint directory; without one nothing survives a restart.
    pub checkpoint: Option<PathBuf>,
    /// The trigger (default continuous, 100 ms epochs).
    pub trigger: Trigger,
    /// How idle tasks wait (default [`WaitStrategy::Adaptive`]).
    pub wait: WaitStrategy,
    /// Partitions of a keyed aggregation (default 1: the whole query runs
    /// in one task, with no ring at all).
    pub parallelism: usize,
    /// Messages per ring between tasks (default 4096).
    pub ring_capacity: usize,
    /// Epoch manifests kept in the checkpoint (default 20).
    pub retain_epochs: usize,
    /// What the checkpoint is written through (default `None`: the local
    /// file system). Tests pass a [`crate::checkpoint::CrashFs`] to cut the
    /// power between any two writes.
    pub checkpoint_storage: Option<Arc<dyn Storage>>,
    /// Start with a checkpoint although the source cannot replay (a push
    /// source, a socket): rows received after the last durable epoch are
    /// lost by a crash. Without this, such a query is refused at start, as
    /// it could not keep its guarantee (default `false`).
    pub allow_rows_lost_on_crash: bool,
    /// The session time zone (Spark's `spark.sql.session.timeZone`, default
    /// UTC): the zone in which time functions read local fields (`hour`,
    /// `to_date`, `date_format`, ...), text without an offset is read, and
    /// timestamps are cast to text and dates. Event-time windows do not
    /// depend on it: they are aligned to the epoch plus their start time.
    pub time_zone: Zone,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            output_mode: OutputMode::Append,
            name: None,
            checkpoint: None,
            trigger: Trigger::default(),
            wait: WaitStrategy::default(),
            parallelism: 1,
            ring_capacity: 4096,
            retain_epochs: 20,
            checkpoint_storage: None,
            time_zone: Zone::UTC,
            allow_rows_lost_on_crash: false,
        }
    }
}

/// A stream of rows being described; nothing runs until
/// [`DataStreamWriter::start`].
pub struct DataFrame {
    pub(crate) source: Box<dyn Source>,
    pub(crate) plan: LogicalPlan,
    pub(crate) error: Option<EngineError>,
}

impl DataFrame {
    /// A stream read from `source`, named `name` in plans and progress.
    pub fn from_source(name: &str, source: impl Source) -> DataFrame {
        Self::from_boxed_source(name, Box::new(source))
    }

    /// [`DataFrame::from_source`] for an already boxed source.
    pub fn from_boxed_source(name: &str, source: Box<dyn Source>) -> DataFrame {
        let schema = source.schema();
        let error = schema
            .fields()
            .iter()
            .find_map(|f| {
                crate::expr::bind_expr(&col(f.name()), &schema)
                    .err()
                    .map(|_| (f.name().clone(), f.data_type().clone()))
            })
            .map(|(n, t)| {
                EngineError::Plan(format!("source column `{n}` has unsupported type {t}"))
            });
        DataFrame {
            source,
            plan: LogicalPlan {
                source_name: name.to_string(),
                source_schema: schema,
                nodes: Vec::new(),
            },
            error,
        }
    }

    /// The schema at this point of the chain.
    pub fn schema(&self) -> SchemaRef {
        self.plan.schema()
    }

    /// The first error a call in the chain made, if any (it is also what
    /// `start` and `explain` return).
    pub fn error(&self) -> Option<&EngineError> {
        self.error.as_ref()
    }

    /// The logical plan so far.
    pub fn logical_plan(&self) -> &LogicalPlan {
        &self.plan
    }

    fn push(mut self, op: impl FnOnce(&SchemaRef) -> Result<(LogicalOp, SchemaRef)>) -> DataFrame {
        if self.error.is_none() {
            match op(&self.schema()) {
                Ok((op, schema)) => self.plan.nodes.push(PlanNode { op, schema }),
                Err(e) => self.error = Some(e),
            }
        }
        self
    }

    /// Keeps rows where `predicate` is true (`where` in SQL).
    pub fn filter(self, predicate: Expr) -> DataFrame {
        self.push(|schema| {
            let (_, field) = bind_expr(&predicate, schema)?;
            if !matches!(field.data_type(), DataType::Boolean) {
                return Err(EngineError::Plan(format!(
                    "filter condition {predicate} is not a boolean"
                )));
            }
            Ok((LogicalOp::Filter(predicate), schema.clone()))
        })
    }

    /// Computes new columns (`select` in SQL).
    pub fn select(self, exprs: impl IntoIterator<Item = Expr>) -> DataFrame {
        let exprs: Vec<Expr> = exprs.into_iter().collect();
        self.push(|schema| {
            let fields = exprs
                .iter()
                .map(|e| bind_expr(e, schema).map(|(_, f)| f))
                .collect::<Result<Vec<Field>>>()?;
            Ok((LogicalOp::Project(exprs), Arc::new(Schema::new(fields))))
        })
    }

    /// Adds a column, or replaces the one with the same name.
    pub fn with_column(self, name: &str, expr: Expr) -> DataFrame {
        let schema = self.schema();
        let mut exprs: Vec<Expr> = Vec::new();
        let mut replaced = false;
        for f in schema.fields() {
            if f.name().eq_ignore_ascii_case(name) {
                exprs.push(expr.clone().alias(name));
                replaced = true;
            } else {
                exprs.push(col(f.name()));
            }
        }
        if !replaced {
            exprs.push(expr.alias(name));
        }
        self.select(exprs)
    }

    /// Replaces each row by the rows `func` emits; `schema` describes them.
    pub fn flat_map(
        self,
        schema: SchemaRef,
        func: impl Fn(&Row, &mut dyn FnMut(Row)) + Send + Sync + 'static,
    ) -> DataFrame {
        let func: FlatMapFn = Arc::new(func);
        self.push(move |_| Ok((LogicalOp::FlatMap(func), schema)))
    }

    /// Declares `column` (a timestamp) as event time, tolerating rows up to
    /// `delay` (`"10 minutes"`) late: Spark's `withWatermark`.
    pub fn with_watermark(self, column: &str, delay: &str) -> DataFrame {
        self.push(|schema| {
            let i = crate::expr::resolve_column(schema, column)?;
            if !matches!(schema.field(i).data_type(), DataType::Timestamp(..)) {
                return Err(EngineError::Plan(format!(
                    "watermark column `{column}` must be a timestamp, not {}",
                    crate::schema::type_name(schema.field(i).data_type())
                )));
            }
            let delay_us = crate::time::parse_duration_us(delay)
                .map_err(|e| EngineError::Plan(format!("watermark delay: {e}")))?;
            Ok((
                LogicalOp::Watermark {
                    column: schema.field(i).name().clone(),
                    delay_us,
                    delay_text: delay.to_string(),
                },
                schema.clone(),
            ))
        })
    }

    /// Groups by keys, at most one of which is a [`crate::expr::window`].
    pub fn group_by(self, keys: impl IntoIterator<Item = Expr>) -> GroupedData {
        GroupedData {
            df: self,
            keys: keys.into_iter().collect(),
        }
    }

    /// Starts describing where results go.
    pub fn write_stream(self, sink: impl Sink) -> DataStreamWriter {
        self.write_stream_boxed(Box::new(sink))
    }

    /// [`DataFrame::write_stream`] for an already boxed sink.
    pub fn write_stream_boxed(self, sink: Box<dyn Sink>) -> DataStreamWriter {
        DataStreamWriter {
            df: self,
            sink,
            config: QueryConfig::default(),
        }
    }
}

/// A grouped stream waiting for its aggregates.
pub struct GroupedData {
    df: DataFrame,
    keys: Vec<Expr>,
}

impl GroupedData {
    /// Computes aggregates per group (and window).
    pub fn agg(self, aggs: impl IntoIterator<Item = AggExpr>) -> DataFrame {
        let aggs: Vec<AggExpr> = aggs.into_iter().collect();
        let keys = self.keys;
        self.df.push(|schema| aggregate_node(schema, keys, aggs))
    }

    /// `count(*)` per group, in a column named `count`.
    pub fn count(self) -> DataFrame {
        self.agg([count_star().alias("count")])
    }
}

fn aggregate_node(
    schema: &SchemaRef,
    keys: Vec<Expr>,
    aggs: Vec<AggExpr>,
) -> Result<(LogicalOp, SchemaRef)> {
    if aggs.is_empty() {
        return Err(EngineError::Plan("agg needs at least one aggregate".into()));
    }
    let mut fields = Vec::new();
    let mut plain_keys = Vec::new();
    let mut window = None;
    for key in keys {
        match key {
            Expr::Window(w) => {
                if window.is_some() {
                    return Err(EngineError::Plan(
                        "only one window() may appear among the grouping keys".into(),
                    ));
                }
                let (_, tf) = bind_expr(&w.time, schema)?;
                if !matches!(tf.data_type(), DataType::Timestamp(..)) {
                    return Err(EngineError::Plan(format!(
                        "window() needs a timestamp, but {} is {}",
                        w.time,
                        crate::schema::type_name(tf.data_type())
                    )));
                }
                let shape = WindowShape::parse(&w.size, w.slide.as_deref(), w.start.as_deref())?;
                let text = Expr::Window(w.clone()).to_string();
                window = Some((
                    plain_keys.len(),
                    WindowSpec {
                        time: w.time,
                        shape,
                        text,
                    },
                ));
                fields.push(Field::new("window_start", timestamp_type(), true));
                fields.push(Field::new("window_end", timestamp_type(), true));
            }
            other => {
                let (_, f) = bind_expr(&other, schema)?;
                fields.push(f);
                plain_keys.push(other);
            }
        }
    }
    for a in &aggs {
        let input = match &a.arg {
            None => DataType::Int64,
            Some(e) => {
                let (_, f) = bind_expr(e, schema)?;
                let t = f.data_type().clone();
                let numeric = matches!(t, DataType::Int64 | DataType::Float64 | DataType::Null);
                if matches!(a.func, AggFunc::Sum | AggFunc::Avg) && !numeric {
                    return Err(EngineError::Plan(format!(
                        "{a} needs a number, but {e} is {}",
                        crate::schema::type_name(&t)
                    )));
                }
                t
            }
        };
        fields.push(Field::new(
            a.output_name(),
            a.func.result_type(&input),
            true,
        ));
    }
    Ok((
        LogicalOp::Aggregate {
            keys: plain_keys,
            window,
            aggs,
        },
        Arc::new(Schema::new(fields)),
    ))
}

/// Where and how a stream's results are written: Spark's `writeStream`.
pub struct DataStreamWriter {
    pub(crate) df: DataFrame,
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) config: QueryConfig,
}

impl DataStreamWriter {
    /// Sets the output mode.
    pub fn output_mode(mut self, mode: OutputMode) -> Self {
        self.config.output_mode = mode;
        self
    }
    /// Names the query.
    pub fn query_name(mut self, name: &str) -> Self {
        self.config.name = Some(name.to_string());
        self
    }
    /// Sets the checkpoint directory.
    pub fn checkpoint(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.checkpoint = Some(dir.into());
        self
    }
    /// Sets the checkpoint directory on a [`Storage`] of the caller's.
    pub fn checkpoint_on(mut self, dir: impl Into<PathBuf>, storage: Arc<dyn Storage>) -> Self {
        self.config.checkpoint = Some(dir.into());
        self.config.checkpoint_storage = Some(storage);
        self
    }
    /// Accepts a checkpoint over a source that cannot replay: rows received
    /// after the last durable epoch are lost by a crash (see
    /// [`QueryConfig::allow_rows_lost_on_crash`]).
    pub fn allow_rows_lost_on_crash(mut self) -> Self {
        self.config.allow_rows_lost_on_crash = true;
        self
    }
    /// Sets the trigger.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.config.trigger = trigger;
        self
    }
    /// Sets the wait strategy of idle tasks.
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.config.wait = wait;
        self
    }
    /// Sets the session time zone (see [`QueryConfig::time_zone`]); make one
    /// with [`Zone::parse`], e.g. `Zone::parse("Europe/Paris")`.
    pub fn time_zone(mut self, zone: Zone) -> Self {
        self.config.time_zone = zone;
        self
    }
    /// Sets the number of partitions of a keyed aggregation.
    pub fn parallelism(mut self, n: usize) -> Self {
        self.config.parallelism = n.max(1);
        self
    }
    /// Sets every option at once.
    pub fn config(mut self, config: QueryConfig) -> Self {
        self.config = config;
        self
    }
    /// The options so far.
    pub fn query_config(&self) -> &QueryConfig {
        &self.config
    }

    /// The logical plan and the task graph, as text; runs nothing.
    pub fn explain(&self) -> Result<String> {
        if let Some(e) = &self.df.error {
            return Err(e.clone());
        }
        let physical =
            super::PhysicalPlan::new(&self.df.plan, &self.config, self.df.source.is_blocking())?;
        Ok(format!(
            "== Logical Plan ==\n{}\n== Task Graph (continuous, {} task{}) ==\n{}",
            self.df.plan,
            physical.task_count(),
            if physical.task_count() == 1 { "" } else { "s" },
            physical.describe(&self.df.plan.source_name, &self.sink.describe())
        ))
    }
}
