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
use crate::pace::Pacing;
use crate::schema::{timestamp_type, DataType, Field, Row, Schema, SchemaRef};
use crate::state::distinct::{MAX_PRECISION, MIN_PRECISION};
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

pub(crate) fn agg(func: AggFunc, arg: Option<Expr>) -> AggExpr {
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
/// `first(e)`: the group's first value in arrival order (in a micro-batch,
/// row order), null included.
pub fn first(e: Expr) -> AggExpr {
    agg(
        AggFunc::First {
            ignore_nulls: false,
        },
        Some(e),
    )
}
/// `first(e, true)`: the group's first non-null value.
pub fn first_ignore_nulls(e: Expr) -> AggExpr {
    agg(AggFunc::First { ignore_nulls: true }, Some(e))
}
/// `last(e)`: the group's last value in arrival order, null included.
pub fn last(e: Expr) -> AggExpr {
    agg(
        AggFunc::Last {
            ignore_nulls: false,
        },
        Some(e),
    )
}
/// `last(e, true)`: the group's last non-null value.
pub fn last_ignore_nulls(e: Expr) -> AggExpr {
    agg(AggFunc::Last { ignore_nulls: true }, Some(e))
}
/// `stddev(e)`, the sample standard deviation (as [`stddev_samp`]).
pub fn stddev(e: Expr) -> AggExpr {
    stddev_samp(e)
}
/// `stddev_samp(e)`: the sample standard deviation, a double; null for
/// fewer than two non-null values.
pub fn stddev_samp(e: Expr) -> AggExpr {
    agg(AggFunc::StddevSamp, Some(e))
}
/// `stddev_pop(e)`: the population standard deviation, a double; null
/// without a non-null value.
pub fn stddev_pop(e: Expr) -> AggExpr {
    agg(AggFunc::StddevPop, Some(e))
}
/// `variance(e)`, the sample variance (as [`var_samp`]).
pub fn variance(e: Expr) -> AggExpr {
    var_samp(e)
}
/// `var_samp(e)`: the sample variance, a double; null for fewer than two
/// non-null values.
pub fn var_samp(e: Expr) -> AggExpr {
    agg(AggFunc::VarSamp, Some(e))
}
/// `var_pop(e)`: the population variance, a double; null without a
/// non-null value.
pub fn var_pop(e: Expr) -> AggExpr {
    agg(AggFunc::VarPop, Some(e))
}
/// `approx_count_distinct(e)`: the estimated number of distinct non-null
/// values (a bigint), with Spark's default relative standard deviation 0.05.
pub fn approx_count_distinct(e: Expr) -> AggExpr {
    approx_count_distinct_rsd(e, crate::state::distinct::DEFAULT_RSD)
}
/// `approx_count_distinct(e, rsd)`: as [`approx_count_distinct`] with the
/// relative standard deviation `rsd` (between about 0.0022 and 0.39;
/// another value fails the query's planning).
pub fn approx_count_distinct_rsd(e: Expr, rsd: f64) -> AggExpr {
    // An rsd out of range gets precision 0, which planning refuses.
    let precision = crate::state::distinct::precision_for_rsd(rsd).unwrap_or(0);
    agg(AggFunc::ApproxCountDistinct { precision }, Some(e))
}
/// `collect_list(e)`: the group's non-null values in arrival order, as an
/// array (empty when there is none).
pub fn collect_list(e: Expr) -> AggExpr {
    agg(AggFunc::CollectList, Some(e))
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
    /// Continuous mode: how the checkpoint's work (applying each epoch's
    /// state changes to its copy and encoding them) is spread out, so that
    /// it does not hold a CPU a spinning task or producer needs for
    /// milliseconds at a time (default [`Pacing::DEFAULT`]; `None` runs it
    /// in one go, which makes epochs durable sooner). The pauses of one
    /// epoch's work add up to at most a quarter of the epoch interval.
    pub checkpoint_pacing: Option<Pacing>,
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
            checkpoint_pacing: Some(Pacing::DEFAULT),
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

    pub(crate) fn push_op(
        mut self,
        op: impl FnOnce(&SchemaRef) -> Result<(LogicalOp, SchemaRef)>,
    ) -> DataFrame {
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
        self.push_op(|schema| {
            let (_, field) = bind_expr(&predicate, schema)?;
            if !matches!(field.data_type(), DataType::Boolean) {
                return Err(EngineError::Plan(format!(
                    "filter condition {predicate} is not a boolean"
                )));
            }
            Ok((LogicalOp::Filter(predicate), schema.clone()))
        })
    }

    /// Computes new columns (`select` in SQL). One item may be a generator
    /// ([`explode`](crate::expr::explode) and its kin), as in Spark: each
    /// input row then gives one output row per element of the array, the
    /// other items repeated.
    pub fn select(self, exprs: impl IntoIterator<Item = Expr>) -> DataFrame {
        let exprs: Vec<Expr> = exprs.into_iter().collect();
        let generators: Vec<usize> = (0..exprs.len())
            .filter(|&i| crate::expr::as_generator(&exprs[i]).is_some())
            .collect();
        match generators.as_slice() {
            [] => self.project(exprs),
            [at] => self.select_generating(exprs.clone(), *at),
            _ => {
                let list: Vec<String> = generators.iter().map(|&i| exprs[i].to_string()).collect();
                self.fail(format!(
                    "only one generator is allowed in a select list, but found {}: {}",
                    generators.len(),
                    list.join(", ")
                ))
            }
        }
    }

    /// `LATERAL VIEW generator t AS names`: keeps every column and adds the
    /// generator's (`col`, or `pos` and `col` for the positional ones, unless
    /// `names` gives them), one row per element of the array.
    pub fn lateral_view(self, generator: Expr, names: &[&str]) -> DataFrame {
        let Some((array, position, outer, called)) = crate::expr::as_generator(&generator) else {
            return self.fail(format!(
                "LATERAL VIEW needs a generator (explode, explode_outer, posexplode, \
                 posexplode_outer), not {generator}"
            ));
        };
        let wanted = 1 + usize::from(position);
        let names: Vec<String> = match names {
            [] if position => vec!["pos".into(), "col".into()],
            [] => vec!["col".into()],
            given if given.len() == wanted => given.iter().map(|n| n.to_string()).collect(),
            given => {
                return self.fail(format!(
                    "{called} gives {wanted} column{}, but {} name{} given: {}",
                    if wanted == 1 { "" } else { "s" },
                    given.len(),
                    if given.len() == 1 { " was" } else { "s were" },
                    given.join(", ")
                ))
            }
        };
        let taken = self.schema();
        if let Some(n) = names.iter().find(|n| {
            taken
                .fields()
                .iter()
                .any(|f| f.name().eq_ignore_ascii_case(n))
        }) {
            return self.fail(format!(
                "the generated column `{n}` would have the name of an existing column; \
                 name it otherwise"
            ));
        }
        let array = array.clone();
        self.generate(array, position, outer, names)
    }

    /// A select list with a generator at `at`: the generator's columns are
    /// added under names no column has, then the list is projected with the
    /// generator replaced by them.
    fn select_generating(self, mut exprs: Vec<Expr>, at: usize) -> DataFrame {
        let Some((array, position, outer, called)) = crate::expr::as_generator(&exprs[at]) else {
            return self;
        };
        let array = array.clone();
        let alias = match &exprs[at] {
            Expr::Alias { name, .. } => Some(name.clone()),
            _ => None,
        };
        if position && alias.is_some() {
            return self.fail(format!(
                "{called} gives two columns (pos, col): name them in a LATERAL VIEW \
                 (LATERAL VIEW {called}(...) t AS p, c) instead of with one alias"
            ));
        }
        let taken = self.schema();
        let hidden = |base: &str| -> String {
            let mut name = format!("__{base}");
            while taken
                .fields()
                .iter()
                .any(|f| f.name().eq_ignore_ascii_case(&name))
            {
                name.insert(0, '_');
            }
            name
        };
        let (pos_name, col_name) = (hidden("generated_pos"), hidden("generated_col"));
        let mut names = Vec::new();
        let mut items = Vec::new();
        if position {
            names.push(pos_name.clone());
            items.push(col(&pos_name).alias("pos"));
        }
        names.push(col_name.clone());
        items.push(col(&col_name).alias(alias.as_deref().unwrap_or("col")));
        exprs.splice(at..=at, items);
        self.generate(array, position, outer, names).project(exprs)
    }

    fn generate(self, array: Expr, position: bool, outer: bool, names: Vec<String>) -> DataFrame {
        self.push_op(|schema| {
            let (_, field) = bind_expr(&array, schema)?;
            let element = match field.data_type() {
                DataType::List(f) => f.data_type().clone(),
                DataType::Null => DataType::Null,
                other => {
                    return Err(EngineError::Plan(format!(
                        "the argument of {} must be an array, but {array} is {}",
                        generator_name(position, outer),
                        crate::schema::type_name(other)
                    )))
                }
            };
            let mut fields: Vec<Field> = schema.fields().iter().map(|f| (**f).clone()).collect();
            let mut names = names.into_iter();
            if position {
                fields.push(Field::new(
                    names.next().unwrap_or_default(),
                    DataType::Int64,
                    true,
                ));
            }
            fields.push(Field::new(names.next().unwrap_or_default(), element, true));
            Ok((
                LogicalOp::Generate {
                    array,
                    position,
                    outer,
                },
                Arc::new(Schema::new(fields)),
            ))
        })
    }

    /// Records `message` as the chain's error (the first error stays).
    pub(crate) fn fail(mut self, message: String) -> DataFrame {
        if self.error.is_none() {
            self.error = Some(EngineError::Plan(message));
        }
        self
    }

    /// A projection without generators.
    fn project(self, exprs: Vec<Expr>) -> DataFrame {
        self.push_op(|schema| {
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
        self.push_op(move |_| Ok((LogicalOp::FlatMap(func), schema)))
    }

    /// Declares `column` (a timestamp) as event time, tolerating rows up to
    /// `delay` (`"10 minutes"`) late: Spark's `withWatermark`.
    pub fn with_watermark(self, column: &str, delay: &str) -> DataFrame {
        self.push_op(|schema| {
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

/// The SQL name of the generator with these flags.
fn generator_name(position: bool, outer: bool) -> &'static str {
    match (position, outer) {
        (false, false) => "explode",
        (false, true) => "explode_outer",
        (true, false) => "posexplode",
        (true, true) => "posexplode_outer",
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
        self.df.push_op(|schema| aggregate_node(schema, keys, aggs))
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
        if let AggFunc::ApproxCountDistinct { precision } = a.func {
            if !(MIN_PRECISION..=MAX_PRECISION).contains(&precision) {
                return Err(EngineError::Plan(format!(
                    "{a}: the relative standard deviation must be between {:.5} and 0.39 \
                     (HyperLogLog needs {MIN_PRECISION} to {MAX_PRECISION} bits of register index)",
                    1.106 / f64::from(1u32 << (MAX_PRECISION / 2))
                )));
            }
        }
        let input = match &a.arg {
            None => DataType::Int64,
            Some(e) => {
                let (_, f) = bind_expr(e, schema)?;
                let t = f.data_type().clone();
                let numeric = matches!(t, DataType::Int64 | DataType::Float64 | DataType::Null);
                if a.func.needs_number() && !numeric {
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
    /// Sets how continuous mode spreads out its checkpoint work (see
    /// [`QueryConfig::checkpoint_pacing`]; `None`: in one go).
    pub fn checkpoint_pacing(mut self, pacing: Option<Pacing>) -> Self {
        self.config.checkpoint_pacing = pacing;
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
