//! Start-up: recovery, wiring tasks and rings, spawning threads.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::thread;

use super::coordinator::{self, CoordinatorSetup};
use super::push::PushTask;
use super::ring::{ring, RingReceiver, RingSender};
use super::task::{panic_message, RingTask, SourceTask};
use super::terminal::{partition_of, ExchangeOut, RingOut, SinkOut};
use crate::checkpoint::{report_channel, EpochReporter};
use crate::checkpoint::{Checkpointer, Recovery};
use crate::error::{EngineError, Result};
use crate::expr::Predicate;
use crate::io::{DurableEpochs, Sink, SinkContext, Source, SourceContext};
use crate::metrics::RingGauge;
use crate::ops::{
    AggregateOp, FilterOp, FlatMapOp, GenerateOp, JoinOp, Next, ProjectOp, StreamJoinOp,
    WatermarkOp,
};
use crate::plan::{LogicalPlan, PhysOp, PhysicalPlan, QueryConfig, Trigger};
use crate::query::Control;
use crate::query::{QueryInfo, QueryMode, QueryShared, StreamingQuery};
use crate::schema::NO_TIME;
use crate::state::WindowedState;
use crate::table::{JoinSnapshot, StreamJoinState};
use crate::wake::{Idler, TaskWaker};

enum Task {
    Source(SourceTask),
    Push(PushTask),
    Ring(RingTask),
}

impl Task {
    fn run(self) -> Result<()> {
        match self {
            Task::Source(t) => t.run(),
            Task::Push(t) => t.run(),
            Task::Ring(t) => t.run(),
        }
    }
}

/// What a chain's stateful operators start from.
struct ChainInit {
    /// The watermark operator's largest event time.
    max_event_time: i64,
    /// A stream-stream join's recovered state.
    join: Option<JoinSnapshot>,
    /// Whether state is handed over at markers (there is a checkpoint).
    checkpointing: bool,
}

impl ChainInit {
    fn fresh() -> ChainInit {
        ChainInit {
            max_event_time: NO_TIME,
            join: None,
            checkpointing: false,
        }
    }
}

/// Builds the chain of `ops` in front of `tail`.
fn chain(
    ops: &[(PhysOp, String)],
    tail: Next,
    reporter: &EpochReporter,
    init: &mut ChainInit,
) -> Next {
    let max_event_time = init.max_event_time;
    ops.iter().rev().fold(tail, |next, (op, _)| -> Next {
        match op {
            PhysOp::Filter(p) => Box::new(FilterOp {
                predicate: Predicate::new(p),
                next,
            }),
            PhysOp::Project(e) => Box::new(ProjectOp::new(e.clone(), next)),
            PhysOp::FlatMap(f, _) => Box::new(FlatMapOp {
                func: f.clone(),
                next,
            }),
            PhysOp::Generate {
                array,
                position,
                outer,
            } => Box::new(GenerateOp::new(array.clone(), *position, *outer, next)),
            PhysOp::Join(j) => Box::new(JoinOp::new(j.clone(), next)),
            PhysOp::StreamJoin { join, op_id, .. } => {
                let mut state = StreamJoinState::new(join.clone());
                if let Some(snap) = init.join.take() {
                    state.restore(snap);
                }
                Box::new(StreamJoinOp::new(
                    state,
                    *op_id,
                    init.checkpointing,
                    reporter.clone(),
                    next,
                ))
            }
            PhysOp::Watermark {
                column,
                delay_us,
                op_id,
            } => Box::new(WatermarkOp {
                column: *column,
                delay_us: *delay_us,
                max_event_time,
                forwarded: NO_TIME,
                op_id: *op_id,
                reporter: reporter.clone(),
                next,
            }),
        }
    })
}

/// Starts a query in continuous mode.
pub(crate) fn start(
    mut source: Box<dyn Source>,
    plan: LogicalPlan,
    mut sink: Box<dyn Sink>,
    config: QueryConfig,
) -> Result<StreamingQuery> {
    let Trigger::Continuous { epoch_interval } = config.trigger else {
        return Err(EngineError::Plan(
            "continuous mode needs a continuous trigger".into(),
        ));
    };
    let physical = PhysicalPlan::new(&plan, &config, source.is_blocking())?;
    if config.checkpoint.is_some() && !source.is_replayable() && !config.allow_rows_lost_on_crash {
        return Err(EngineError::Plan(format!(
            "source {} cannot replay, so with a checkpoint the rows received after the last durable epoch would be lost by a crash; accept that explicitly (allow_rows_lost_on_crash) or run without a checkpoint",
            plan.source_name
        )));
    }
    let (checkpoint, query_id) = match &config.checkpoint {
        Some(path) => {
            let (ck, meta) = Checkpointer::open(
                path,
                config.checkpoint_storage.clone(),
                config.retain_epochs,
            )?;
            (Some(ck), meta.id)
        }
        None => (None, uuid::Uuid::new_v4().to_string()),
    };
    let partitions = physical.partitions;
    let mut recovered = match &checkpoint {
        Some(ck) => ck.recover(&plan.source_name, partitions, |key| {
            partition_of(key.iter(), partitions)
        })?,
        None => Recovery {
            aggregate: (0..partitions.max(1))
                .map(|_| WindowedState::new())
                .collect(),
            aggregate_watermark: NO_TIME,
            max_event_time: NO_TIME,
            ..Recovery::default()
        },
    };
    // Deltas exist to be written to a checkpoint: without one, aggregations
    // track no changes (nothing recorded per update, nothing copied per epoch).
    let track_changes = checkpoint.is_some();
    let start_epoch = recovered.epoch().map_or(1, |e| e + 1);

    let tasks_n = physical.task_count();
    let wakers: Vec<Arc<TaskWaker>> = (0..tasks_n)
        .map(|_| Arc::new(TaskWaker::for_strategy(config.wait)))
        .collect();
    let abort = Arc::new(AtomicBool::new(false));
    let control = Arc::new(Control {
        stop: AtomicBool::new(false),
        abort: abort.clone(),
        requested_epoch: AtomicU64::new(start_epoch - 1),
        committed_epoch: Arc::new(AtomicU64::new(start_epoch - 1)),
        wakers: wakers.clone(),
    });
    let info = QueryInfo {
        mode: QueryMode::Continuous,
        checkpointed: checkpoint.is_some(),
        task_graph: physical.describe(&plan.source_name, &sink.describe()),
    };
    let shared = Arc::new(QueryShared::new(
        query_id,
        config.name.clone(),
        info,
        control.clone(),
    ));
    let (reporter, coord_rx) = report_channel();
    let (spare_tx, spare_rx) = crossbeam_channel::bounded(2);
    // One return channel per aggregation partition: each takes back only
    // the buffers of its own snapshots, made ready for its next one.
    let (spare_state_tx, mut spare_state_rx): (Vec<_>, Vec<_>) = (0..physical.partitions.max(1))
        .map(|_| crossbeam_channel::bounded(2))
        .unzip();

    // Open the ends first, so that a bad source or sink fails `start` itself.
    let start_offset = recovered.source_offset.take();
    source.open(
        &SourceContext {
            name: plan.source_name.clone(),
            waker: wakers[0].clone(),
        },
        start_offset.as_ref(),
    )?;
    sink.open(
        &SinkContext {
            schema: physical.output_schema.clone(),
            output_mode: config.output_mode,
            key_columns: physical.key_columns.clone(),
            query_id: shared.id.clone(),
            replays_same_rows: false,
            checkpointed: checkpoint.is_some(),
            durable: DurableEpochs::new(control.committed_epoch.clone(), abort.clone()),
        },
        recovered.sink_state(),
    )?;
    let source_description = source.describe();
    let sink_description = sink.describe();

    let mut gauges = Vec::new();
    let mut mk_ring = |producer: usize, consumer: usize| -> (RingSender, RingReceiver) {
        let gauge = Arc::new(RingGauge::new(producer, consumer, physical.ring_capacity));
        gauges.push(gauge.clone());
        ring(
            physical.ring_capacity,
            wakers[consumer].clone(),
            config.wait,
            abort.clone(),
            gauge,
        )
    };
    let idler = || Idler::new(config.wait);
    let ring_task = |rings: Vec<RingReceiver>, chain: Next, task: usize| {
        Task::Ring(RingTask::new(
            rings,
            chain,
            control.clone(),
            wakers[task].clone(),
            idler(),
            start_epoch,
        ))
    };

    let mut tasks: Vec<Task> = Vec::new();
    let sink_out: Next = Box::new(SinkOut::new(sink, spare_rx, reporter.clone()));
    let head_task = usize::from(physical.source_task_separate);
    let mut init = ChainInit {
        max_event_time: recovered.max_event_time,
        join: recovered.join.take(),
        checkpointing: track_changes,
    };
    let head: Next;
    let mut later: Vec<Task> = Vec::new();
    if physical.partitions > 1 {
        let (agg, _) = physical
            .aggregate
            .clone()
            .expect("partitions > 1 implies an aggregation");
        let first_agg = head_task + 1;
        let sink_task = first_agg + physical.partitions;
        let mut to_sink = Vec::new();
        let mut to_aggs = Vec::new();
        for (p, state) in recovered.aggregate.drain(..).enumerate() {
            let (agg_tx, agg_rx) = mk_ring(head_task, first_agg + p);
            let (sink_tx, sink_rx) = mk_ring(first_agg + p, sink_task);
            to_sink.push(sink_rx);
            to_aggs.push(agg_tx);
            let post = chain(
                &physical.post,
                Box::new(RingOut { ring: sink_tx }),
                &reporter,
                &mut ChainInit::fresh(),
            );
            let mut op = AggregateOp::new(agg.spec.clone(), agg.op_id, p, reporter.clone(), post);
            op.state = state;
            op.state.set_change_tracking(track_changes);
            op.spare_state_buffers = Some(spare_state_rx[p].clone());
            op.watermark = recovered.aggregate_watermark;
            later.push(ring_task(vec![agg_rx], Box::new(op), first_agg + p));
        }
        later.push(ring_task(to_sink, sink_out, sink_task));
        let exchange = Box::new(ExchangeOut::new(agg.partition_keys.clone(), to_aggs));
        head = chain(&physical.pre, exchange, &reporter, &mut init);
    } else {
        let mut tail = chain(&physical.post, sink_out, &reporter, &mut ChainInit::fresh());
        if let Some((agg, _)) = &physical.aggregate {
            let mut op = AggregateOp::new(agg.spec.clone(), agg.op_id, 0, reporter.clone(), tail);
            op.state = recovered.aggregate.pop().unwrap_or_default();
            op.state.set_change_tracking(track_changes);
            op.spare_state_buffers = spare_state_rx.drain(..).next();
            op.watermark = recovered.aggregate_watermark;
            tail = Box::new(op);
        }
        head = chain(&physical.pre, tail, &reporter, &mut init);
    }
    let mut push_gate = None;
    let source_task = |chain: Next| {
        if PushTask::is_push(source.as_ref()) {
            // Producers run this chain on their own threads; the task only
            // places markers while they are idle and ends the stream.
            let task = PushTask::new(
                source.as_ref(),
                chain,
                reporter.clone(),
                control.clone(),
                wakers[0].clone(),
                start_epoch,
            )
            .expect("checked to be a push source");
            push_gate = Some(task.gate());
            return Task::Push(task);
        }
        Task::Source(SourceTask {
            source,
            chain,
            control: control.clone(),
            reporter: reporter.clone(),
            waker: wakers[0].clone(),
            idler: idler(),
            next_epoch: start_epoch,
            uncommitted: VecDeque::new(),
            rows_in_epoch: 0,
        })
    };
    if physical.source_task_separate {
        let (tx, rx) = mk_ring(0, 1);
        tasks.push(source_task(Box::new(RingOut { ring: tx })));
        tasks.push(ring_task(vec![rx], head, 1));
    } else {
        tasks.push(source_task(head));
    }
    tasks.extend(later);
    debug_assert_eq!(tasks.len(), tasks_n);
    *crate::query::lock(&shared.rings) = gauges;

    let expected_snapshots = physical
        .pre
        .iter()
        .filter(|(op, _)| matches!(op, PhysOp::Watermark { .. } | PhysOp::StreamJoin { .. }))
        .count()
        + if physical.aggregate.is_some() {
            physical.partitions
        } else {
            0
        };
    let mut threads = Vec::with_capacity(tasks_n + 1);
    let setup = CoordinatorSetup {
        rx: coord_rx,
        spare_histograms: spare_tx,
        spare_state_buffers: spare_state_tx,
        control: control.clone(),
        shared: shared.clone(),
        checkpoint,
        epoch_interval,
        pacing: config.checkpoint_pacing,
        tasks: tasks_n,
        expected_snapshots,
        aggregate_partitions: if physical.aggregate.is_some() {
            physical.partitions
        } else {
            0
        },
        stream_join: physical
            .pre
            .iter()
            .any(|(op, _)| matches!(op, PhysOp::StreamJoin { .. })),
        source_name: plan.source_name.clone(),
        source_description,
        sink_description,
        start_epoch,
        start_offset: start_offset.unwrap_or_default(),
        source_waker: wakers[0].clone(),
    };
    // No shadow of the state is seeded: each partition takes its own full
    // snapshots when they are due, and the coordinator writes what it gets.
    let name = config.name.clone().unwrap_or_else(|| "query".into());
    threads.push(
        thread::Builder::new()
            .name(format!("runnel-{name}-coordinator"))
            .spawn(move || {
                // A panic here must still end the query: nothing else
                // would record its end, and the handle would wait forever.
                let (shared, control) = (setup.shared.clone(), setup.control.clone());
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| coordinator::run(setup))) {
                    shared.fail(EngineError::Panic(format!(
                        "the coordinator panicked: {}",
                        panic_message(&p)
                    )));
                    control.abort();
                    shared.finish();
                }
            })
            .map_err(|e| EngineError::Plan(format!("cannot start a thread: {e}")))?,
    );
    for (i, task) in tasks.into_iter().enumerate() {
        let waker = wakers[i].clone();
        let task_control = control.clone();
        let reporter = reporter.clone();
        let spawned = thread::Builder::new()
            .name(format!("runnel-{name}-task-{i}"))
            .spawn(move || {
                waker.bind_current();
                let outcome = catch_unwind(AssertUnwindSafe(|| task.run()));
                let error = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(EngineError::Stopped)) => None,
                    Ok(Err(e)) => Some(e),
                    Err(payload) => Some(EngineError::Panic(panic_message(&payload))),
                };
                if error.is_some() {
                    task_control.abort();
                }
                reporter.exited(error);
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                control.abort();
                return Err(EngineError::Plan(format!("cannot start a thread: {e}")));
            }
        }
    }
    // Every task runs: producers may take the chain from now on (rows they
    // pushed before are drained here first).
    if let Some(gate) = push_gate {
        gate.open();
    }
    Ok(StreamingQuery::new(shared, threads))
}
